// Command detect-train trains a YOLOv3 detector (teacher or baseline
// student) from a configuration, PaddleDetection style:
//
//	detect-train -c CONFIG [-o key=value ...] [-r CHECKPOINT] [--out DIR] [--pretrained PATH|URL]
//
// -o overrides any configuration key (type-checked; an unknown key is an
// error suggesting the nearest one). -r resumes from a checkpoint of an
// earlier run exactly: the resumed run's losses are bit for bit those of an
// uninterrupted run (same configuration, build and BLAS kernel set, any
// GOMAXPROCS). With -r and no -c, the configuration stored in the
// checkpoint is used; resuming a finished run (the checkpoint at
// train.max_iters, model_final.ckpt in the run folder) says so and exits 0
// without touching the folder. --pretrained
// loads the weights that fit from a checkpoint file or an http(s) URL
// (downloaded once into $XDG_CACHE_HOME/yolodistill, ~/.cache/yolodistill by
// default); model tensors it lacks keep their initial values and are listed,
// tensors of another shape are an error naming them.
//
// The run folder (--out; default: with -r the checkpoint's own folder, else
// output/<config name>) is checked before any
// work: a folder this process can write in, and, unless --force or -r, one
// that holds no earlier run's checkpoints. It receives config.yml,
// metrics.jsonl (one JSON record per train.log_iter iterations: iter, lr,
// loss, parts, images_per_s, and eval scores), model_<N>.ckpt every
// train.snapshot_iter iterations (the last train.keep_last kept),
// best_model.ckpt (when data.eval_split is set), model_final.ckpt and
// loss.png. Progress goes to stderr: a bar on a terminal (NO_COLOR unset),
// plain lines otherwise. stdout is not used.
//
// A run that fails leaves FAILED.txt in its folder saying why and which
// checkpoint to resume from, or, when it wrote nothing of value, no folder.
// -r refuses a checkpoint that student-train wrote (naming the command that
// resumes it). Input sizes (data.augment.multi_scale, eval.size) whose graphs
// would need more memory than the machine has available are refused before
// training starts. --pretrained URLs are downloaded with --connect-timeout and
// --idle-timeout, with progress lines on stderr.
//
// Exit codes: 0 done, 1 failure (bad configuration or checkpoint, non-finite
// loss: the message names the iteration and the last good checkpoint), 2
// usage, 130 interrupted (SIGINT/SIGTERM: a checkpoint of the last completed
// iteration is saved first).
//
// Data parallel: `mpirun -np N detect-train ...` (or srun, or any MPI
// launcher) trains one run over N processes, each on its share of every
// global batch of train.batch_size images, with synchronised BatchNorm; rank
// 0 reads the weights, writes the run folder and reports (pkg/train). It needs
// a build with MPI (build tag mpi); a process a launcher started as one of
// several refuses to start without it. --mpi-timeout bounds every collective.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/dist"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/train"
)

const name = "detect-train"

type grammar struct {
	Config     string        `short:"c" placeholder:"CONFIG" help:"configuration (YAML); optional with -r (the checkpoint's own configuration is used)."`
	Override   []string      `short:"o" sep:"none" placeholder:"KEY=VALUE" help:"override a configuration key (repeatable)."`
	Resume     string        `short:"r" placeholder:"CHECKPOINT" help:"resume exactly from a checkpoint of an earlier run."`
	Out        string        `name:"out" placeholder:"DIR" help:"run folder (default: with -r the checkpoint's folder, else output/<config name>)."`
	Pretrained string        `name:"pretrained" placeholder:"PATH|URL" help:"initialise from weights, path or http(s) URL (overrides train.pretrained): our checkpoint (the tensors that fit), or a PaddleDetection tar or folder, .pdparams, PyTorch .pth/.pt or .safetensors (every part it holds, e.g. a backbone alone)."`
	CacheDir   string        `name:"cache-dir" placeholder:"DIR" help:"download cache for --pretrained URLs (default $XDG_CACHE_HOME/yolodistill or ~/.cache/yolodistill)."`
	Force      bool          `help:"start afresh in a run folder that holds an earlier run's checkpoints (overwriting them); without it such a folder is refused."`
	MPITimeout time.Duration `name:"mpi-timeout" default:"5m" placeholder:"DURATION" help:"under an MPI launcher: the longest a rank waits in one collective before it ends the job (watchdog)."`
	cli.NetFlags
}

// testHooks lets this package's tests pause a child process at a chosen
// iteration; it is never set outside tests.
var testHooks train.Hooks

func main() {
	nn.TuneGC()
	os.Exit(cli.Main(run))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	if _, code, done := cli.ParseVersion(name, cli.Describe("Train a YOLOv3 detector from a configuration; resume exactly with -r.",
		"detect-train -c pipelines/configs/demo_teacher.yml --out out/demo/teacher",
		"detect-train -r out/demo/teacher/model_200.ckpt"), nn.BuildInfo()+", "+dist.BuildInfo(), &g, args, stderr); done {
		return code
	}
	log := cli.Logger{Name: name, W: stderr}
	comm, err := dist.Init(dist.Options{Timeout: g.MPITimeout, Log: log.Printf})
	if err != nil {
		return log.Fail(err)
	}
	if comm.Rank() > 0 {
		log.Name = fmt.Sprintf("%s (rank %d of %d)", name, comm.Rank(), comm.Size())
	}
	if g.Config == "" && g.Resume == "" {
		log.Printf("error: -c CONFIG is required (or -r CHECKPOINT to continue a run with its own configuration)")
		return comm.End(cli.ExitUsage, nil)
	}
	if g.Resume != "" {
		// A student-train checkpoint would lose its distillation here.
		if err := train.CheckResume(g.Resume, name); err != nil {
			return comm.End(log.Fail(err), err)
		}
	}
	cfg, err := train.LoadRunConfig(g.Config, g.Resume, g.Override)
	if err != nil {
		return comm.End(log.Fail(err), err)
	}
	if err := g.NetFlags.Check(); err != nil {
		return comm.End(log.Fail(err), err)
	}
	ctx = checkpoint.WithFetch(ctx, checkpoint.FetchOptions{ConnectTimeout: g.ConnectTimeout, IdleTimeout: g.IdleTimeout, Logf: log.Printf})
	out := g.Out
	if out == "" {
		out = train.DefaultOutDir(g.Config, g.Resume)
	}
	if msg, done := train.FinishedRun(g.Resume, cfg, out, name); done {
		if comm.Rank() == 0 {
			log.Printf("%s", msg)
		}
		return comm.End(cli.ExitOK, nil)
	}
	res, err := train.Run(ctx, train.Options{
		Config:     cfg,
		OutDir:     out,
		Resume:     g.Resume,
		Pretrained: g.Pretrained,
		CacheDir:   g.CacheDir,
		Name:       name,
		Stderr:     stderr,
		Bar:        train.UseBar(stderr),
		Hooks:      testHooks,
		Tool:       name,
		Recipe:     "none",
		Force:      g.Force,
		Dist:       comm,
	})
	if err != nil {
		code := cli.Code(err)
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			code = cli.ExitInterrupted // the loop already said where the checkpoint is
		case comm.Reports(err):
			code = log.Fail(err)
		}
		return comm.End(code, err)
	}
	if comm.Rank() == 0 {
		train.Summary(log.Printf, res, cfg, out)
	}
	return comm.End(cli.ExitOK, nil)
}
