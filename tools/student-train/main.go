// Command student-train trains a student detector with knowledge
// distillation: the student's own YOLOv3 loss plus the distillation loss its
// configuration asks for (distill.loss: l2, fine_grained, fsp, soft_label or
// pairs; see distill.NewRecipe for the exact mapping), from soft targets
// stored by teacher-dump (offline) or from a teacher run in process on the
// same batch (online):
//
//	student-train -c STUDENT --soft-targets FILE[,FILE...]|- [FILE...] [-o KEY=VALUE]... [-r CKPT] [--out DIR]
//	student-train -c STUDENT -t TEACHER --teacher-weights T [-o KEY=VALUE]... [-r CKPT] [--out DIR]
//
// --teacher-override KEY=VALUE (repeatable) overrides a key of the teacher's
// configuration in both modes; it is appended to the student's
// distill.teacher_overrides, so the run's config.yml and checkpoints carry it.
//
// Everything else is detect-train's loop (pkg/train): the run folder (--out;
// default: with -r the checkpoint's own folder, else output/<config name>) with config.yml, metrics.jsonl (the
// distillation loss is logged in "parts" under its graph name, e.g.
// "distill.fine_grained", and is part of "loss"), periodic checkpoints,
// best_model.ckpt, model_final.ckpt and loss.png; exact resume with -r;
// progress on stderr.
//
// # Offline
//
// The soft-target inputs are read in the order given ("-" is stdin, once),
// and their views are trained on in that order: a batch is the next
// train.batch_size views, cut short where the input size changes (teacher-dump
// writes batches of its --batch, the student's train.batch_size by default,
// views of one size, so batches line up). Each view is rebuilt from its
// augmentation record from the student's training split (data.*): the same
// pixels and boxes the teacher saw. When every input is a file, the views are
// cycled for as many batches as train.max_iters needs (the same views again:
// dump more --views for more variety); a stream is read once, and one that
// holds fewer batches than train.max_iters is an error. After the last batch
// the rest of a stream is read to its end marker: a truncated stream fails the
// run (exit 1) before model_final.ckpt is written. Resuming (-r) from a
// stream skips the views already trained on: give it the same stream again.
//
// The soft targets must come from the student's teacher: their teacher
// config hash must equal the model hash of -t (or of distill.teacher when -t is
// not given) with distill.teacher_overrides and then --teacher-override
// applied (the -o teacher-dump was given; a mismatch names the keys that
// differ, from the teacher settings the soft targets record, and the
// --teacher-override flags that fix it), their class list the student's data.classes, their anchors and
// masks the student's (for losses over head outputs), and they must hold the
// teacher feature maps the distill pairs name. The views are rebuilt with the
// student's data.augment, so the settings the replay reads from it rather than
// from the records (mean, std and expand fill; augment.Config.ReplaySettings)
// must be those teacher-dump recorded. Any difference is a clear error. Files
// from before teacher-dump recorded those settings are accepted with a warning.
//
// Every rebuilt view is compared with the hash of the pixels the teacher saw,
// stored with it: the first that differs stops the run (exit 1, no run
// folder left when nothing was trained), naming the image, the view and the
// settings that explain it (another data.synth.seed or data.root than the
// dump's; else a replaced image file or another build). Soft targets from an
// older teacher-dump carry no hashes: they are used with a warning. The input
// sizes are the dumped ones: data.augment.multi_scale is not used offline (a
// warning says so when the soft targets hold a size it does not list).
// Without -t and distill.teacher the teacher is not checked (a warning says so).
//
// # Online
//
// With --teacher-weights, the teacher (-t, default distill.teacher) runs on
// each batch the student's loader makes, in inference mode (BatchNorm running
// statistics), on the student's own normalised input, as PaddleSlim's merged
// program does. For the same views the offline and online losses are equal.
//
// A runaway distillation (the distillation loss above distill.warn_ratio,
// default 100, times the detection loss for distill.warn_iters iterations in
// a row, default 20) gives one warning with both numbers and the
// distill.weight that drives it; training goes on.
//
// Learned 1x1 adapters (pairs with adapter: true whose channel counts differ)
// are parameters of the student named "distill.pair.<i>.adapter.0.*"; they
// are saved in its checkpoints.
//
// Before any work: distill pairs whose shapes cannot match (model-inspect
// lists the pairs that do) and input sizes that need more memory than the
// machine has available are refused; -r refuses a checkpoint detect-train
// wrote (naming the command that resumes it); the run folder is checked as
// detect-train's (--force, FAILED.txt).
//
// # Data parallel
//
// `mpirun -np N student-train ...` trains over N processes as detect-train
// does (pkg/train): each rank trains on its share of every batch. Offline,
// every rank reads the soft-target files and rebuilds every view of each
// batch (so that all of them make the same batches when a view's image cannot
// be loaded) and keeps its share; a stream (-) cannot feed several ranks: save
// teacher-dump's output to a file. Online, every rank loads the teacher and
// runs it on its share. Every rank reads the files it is given: they must be
// reachable from every node.
//
// Exit codes: 0 done, 1 failure (including mismatched or truncated soft
// targets), 2 usage, 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/dist"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/teacher"
	"yolodistill/pkg/train"
)

const name = "student-train"

type grammar struct {
	Config          string        `short:"c" placeholder:"CONFIG" help:"student configuration (YAML); optional with -r (the checkpoint's own configuration is used)."`
	Override        []string      `short:"o" sep:"none" placeholder:"KEY=VALUE" help:"override a configuration key (repeatable)."`
	SoftTargets     []string      `name:"soft-targets" placeholder:"FILE|-" help:"soft-target files written by teacher-dump, in order (comma-separated or repeated; - is stdin)."`
	Files           []string      `arg:"" optional:"" placeholder:"FILE" help:"more soft-target files, after those of --soft-targets."`
	Teacher         string        `short:"t" placeholder:"CONFIG" help:"teacher configuration (default: distill.teacher of the student configuration)."`
	TeacherOverride []string      `name:"teacher-override" sep:"none" placeholder:"KEY=VALUE" help:"override a key of the teacher's configuration (repeatable): the -o the teacher was trained or dumped with; appended to distill.teacher_overrides."`
	TeacherWeights  string        `name:"teacher-weights" placeholder:"CKPT" help:"online mode: run the teacher with these weights on every batch (path or http(s) URL: our checkpoint, a PaddleDetection tar or folder, .pdparams, PyTorch .pth/.pt or .safetensors)."`
	Resume          string        `short:"r" placeholder:"CHECKPOINT" help:"resume exactly from a checkpoint of an earlier run."`
	Out             string        `name:"out" placeholder:"DIR" help:"run folder (default: with -r the checkpoint's folder, else output/<config name>)."`
	Pretrained      string        `name:"pretrained" placeholder:"PATH|URL" help:"initialise the student from weights (overrides train.pretrained): as detect-train --pretrained."`
	CacheDir        string        `name:"cache-dir" placeholder:"DIR" help:"download cache for URLs (default $XDG_CACHE_HOME/yolodistill or ~/.cache/yolodistill)."`
	Force           bool          `help:"start afresh in a run folder that holds an earlier run's checkpoints (overwriting them); without it such a folder is refused."`
	MPITimeout      time.Duration `name:"mpi-timeout" default:"5m" placeholder:"DURATION" help:"under an MPI launcher: the longest a rank waits in one collective before it ends the job (watchdog)."`
	cli.NetFlags
}

func main() {
	nn.TuneGC()
	os.Exit(cli.Main(run))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	if _, code, done := cli.ParseVersion(name, cli.Describe("Train a student detector with knowledge distillation from soft targets or an online teacher.",
		"student-train -c pipelines/configs/demo_student.yml --soft-targets out/demo/soft.arrow --out out/demo/distilled",
		"student-train -c pipelines/configs/demo_student.yml --teacher-weights out/demo/teacher/model_final.ckpt --out out/demo/online"), nn.BuildInfo()+", "+dist.BuildInfo(), &g, args, stderr); done {
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
	var inputs []string
	for _, s := range append(slices.Clone(g.SoftTargets), g.Files...) {
		for _, f := range strings.Split(s, ",") {
			if f != "" {
				inputs = append(inputs, f)
			}
		}
	}
	online := g.TeacherWeights != ""
	switch {
	case g.Config == "" && g.Resume == "":
		log.Printf("error: -c CONFIG is required (or -r CHECKPOINT to continue a run with its own configuration)")
		return comm.End(cli.ExitUsage, nil)
	case online && len(inputs) > 0:
		log.Printf("error: give either --soft-targets (offline) or --teacher-weights (online), not both")
		return comm.End(cli.ExitUsage, nil)
	case !online && len(inputs) == 0:
		log.Printf("error: no teacher: give --soft-targets FILE|- (offline) or --teacher-weights T (online); detect-train trains without one")
		return comm.End(cli.ExitUsage, nil)
	}
	if n := countStdin(inputs); n > 1 {
		log.Printf("error: - (stdin) is given %d times", n)
		return comm.End(cli.ExitUsage, nil)
	} else if n == 1 && comm.Size() > 1 {
		log.Printf("error: a stream (-) cannot feed %d ranks (the launcher gives stdin to rank 0 only): save teacher-dump's output to a file and give that", comm.Size())
		return comm.End(cli.ExitUsage, nil)
	}
	if err := g.NetFlags.Check(); err != nil {
		return comm.End(log.Fail(err), err)
	}
	if g.Resume != "" {
		// A detect-train checkpoint has no distillation to resume (and its
		// stored configuration may name a teacher that is not there).
		if err := train.CheckResume(g.Resume, name); err != nil {
			return comm.End(log.Fail(err), err)
		}
	}
	if comm.Rank() > 0 {
		log.W = io.Discard // rank 0 reports the setup; errors come back through code
	}
	code, err := distil(ctx, g, inputs, stdin, log, comm)
	if err != nil && comm.Rank() > 0 && comm.Reports(err) {
		cli.Logger{Name: log.Name, W: stderr}.Fail(err)
	}
	return comm.End(code, err)
}

// distil sets up the distillation and runs the training; it reports on log
// and returns the exit code and the error (nil on success).
func distil(ctx context.Context, g grammar, inputs []string, stdin io.Reader, log cli.Logger, comm *dist.Comm) (int, error) {
	cfg, err := train.LoadRunConfig(g.Config, g.Resume, g.Override)
	if err != nil {
		return log.Fail(err), err
	}
	for _, o := range g.TeacherOverride {
		if k, _, ok := strings.Cut(o, "="); !ok || strings.TrimSpace(k) == "" {
			err := cli.Usagef("--teacher-override %q: want KEY=VALUE", o)
			return log.Fail(err), err
		}
	}
	cfg.Distill.TeacherOverrides = append(cfg.Distill.TeacherOverrides, g.TeacherOverride...)
	ctx = checkpoint.WithFetch(ctx, checkpoint.FetchOptions{ConnectTimeout: g.ConnectTimeout, IdleTimeout: g.IdleTimeout, Logf: log.Printf})
	out := g.Out
	if out == "" {
		out = train.DefaultOutDir(g.Config, g.Resume)
	}
	if msg, done := train.FinishedRun(g.Resume, cfg, out, name); done {
		log.Printf("%s", msg)
		return cli.ExitOK, nil
	}
	s, err := teacher.Setup(ctx, teacher.Options{Student: cfg, TeacherConfig: g.Teacher, Weights: g.TeacherWeights,
		Inputs: inputs, Stdin: stdin, CacheDir: g.CacheDir, Log: log.Printf})
	if err != nil {
		return log.Fail(err), err
	}
	defer s.Close()
	log.Printf("%s", s.Summary)
	opts := train.Options{Config: cfg, Resume: g.Resume, Pretrained: g.Pretrained, CacheDir: g.CacheDir, Name: name, Tool: name,
		Recipe: s.Recipe, OutDir: out, Stderr: log.W, Bar: train.UseBar(log.W), Force: g.Force, Dist: comm}
	s.Apply(&opts)
	res, err := train.Run(ctx, opts)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return cli.ExitInterrupted, err
		}
		if !comm.Reports(err) {
			return cli.Code(err), err
		}
		if derr := s.Err(); derr != nil {
			// The distillation loss failed: that is the cause, not the NaN
			// it made the step's total.
			var nf *train.NonFiniteError
			if errors.As(err, &nf) {
				last := "no checkpoint was written"
				if nf.LastCheckpoint != "" {
					last = "the last good checkpoint is " + nf.LastCheckpoint
				}
				return log.Fail(fmt.Errorf("iteration %d: distillation loss: %w (training stopped; %s)", nf.Iter, derr, last)), err
			}
			log.Printf("error: distillation loss: %v", derr)
		}
		return log.Fail(err), err
	}
	train.Summary(log.Printf, res, cfg, out)
	return cli.ExitOK, nil
}

func countStdin(inputs []string) int {
	n := 0
	for _, f := range inputs {
		if f == "-" {
			n++
		}
	}
	return n
}
