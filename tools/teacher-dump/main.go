// Command teacher-dump runs a trained teacher detector over augmented views of
// the training split and stores its outputs ("soft targets") for
// student-train, as a soft-target Arrow IPC file or stream (pkg/softtarget).
//
//	teacher-dump [-c TEACHER] --weights T [--student-config S] [-o KEY=VALUE]...
//	    [--dataset PATH] [--views K] [--seed S] [--batch B] [--fp16]
//	    [--sparse THRESH] [--shard i/n] [--cache-mb MB] [--out FILE|-]
//
// Without -c the teacher's configuration is the one stored in the --weights
// checkpoint (the one its detect-train run used), -o applied to it.
//
// # Which views
//
// The views are the ones the student's own training loader would make:
// teacher-dump runs the training loader (augment.NewTrainLoader, the same one detect-train uses:
// data.train_split, the training augmentation of augment.FromConfig,
// a new shuffled order every epoch, the last partial batch dropped, every
// random choice derived from the seed and the batch position) for K epochs;
// view k of an image is its view of epoch k. With --seed equal to the
// student's train.seed (the default) the file holds, batch for batch, the
// sequence detect-train would train the student on in its first K epochs.
//
// The data and augmentation settings (data.*: format, root, split, classes,
// data.augment) and the batch size (train.batch_size) come from the student
// configuration (--student-config), because the student must see exactly
// these views; without --student-config they come from the teacher
// configuration (the presets give both the same data section). The distill
// section of the student configuration decides which named teacher feature
// maps are stored (pairs, fsp, soft_label with pairs); without it, none.
// When the student configuration names its teacher (distill.teacher), that
// configuration, with the student's distill.teacher_overrides and this
// command's -o applied, must have the model hash of the teacher run here: a
// dump for another teacher is refused here already, naming the keys that
// differ and the overrides that would fix it. The rule for overrides: what
// -o changes on a teacher here, student-train must be told with
// --teacher-override (or distill.teacher_overrides); the soft targets record
// the teacher's model settings, so student-train names them when they differ.
//
// --views K is the number of epochs of views. By default (0) it is sized
// from the student configuration: enough epochs for its train.max_iters
// batches of train.batch_size (floor(images / batch) batches per epoch),
// plus one epoch of margin, the rule a stream into student-train needs;
// without --student-config, 1.
//
// # Output
//
// One row per view, in training order: batches of train.batch_size views of
// one input size follow each other, so that student-train, batching the rows
// in file order, rebuilds the same batches. Each row holds the image id and
// file, the view index, the view's augment.Record (MarshalBinary), the
// input size, the teacher's raw head outputs per scale ([A*(5+C), H, W],
// deepest first), the requested feature maps ([C, H, W]) and the SHA-256 of
// the view's input pixels, which student-train compares with the view it
// rebuilds (soft-target schema version 2). The schema
// metadata carries the format version, the teacher's config hash
// (config.ModelHash), classes, anchors and masks, and the augmentation
// settings that rebuilding the views' pixels reads from the configuration
// rather than from the records (data.augment mean, std and, when expand is on,
// fill: augment.Config.ReplaySettings); student-train refuses soft
// targets whose settings differ from its own. The metadata also records the
// data settings the views came from (data.format, root, train_split and, for
// the synthetic set, data.synth), which student-train names when a view's
// pixels differ. --out FILE is checked before any work and written
// atomically (nothing at FILE until the dump is complete); --out - (the
// default) streams to stdout, ending with an end marker so that a reader
// tells a truncated stream from a complete one.
//
// --shard i/n keeps, of every epoch, the i-th of n contiguous ranges of
// batches; concatenating the shard files 0..n-1 (student-train takes several
// files) gives every batch of the unsharded dump (with --views 1, in the
// same order).
//
// Views whose pixels repeat an earlier view's (flips as the only
// augmentation at one input size give each image two distinct views, however
// many epochs) are written from memory instead of running the teacher again
// (--cache-mb, default 1024; 0 turns it off); the file is the same bytes.
//
// The output depends only on the configurations, the weights, the seed and
// the flags (and, as all float32 kernels here, on the build and its BLAS kernel
// set, not on GOMAXPROCS):
// two runs write the same bytes. Progress lines go to stderr.
//
// Input sizes (data.augment.multi_scale of the student configuration) whose
// teacher graphs would need more memory than the machine has available are
// refused before any work. A --weights URL is downloaded with
// --connect-timeout and --idle-timeout, with progress lines.
//
// Exit codes: 0 ok, 1 failure, 2 usage, 130 interrupted.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/teacher"

	"golang.org/x/term"
)

const name = "teacher-dump"

type grammar struct {
	Config          string   `short:"c" placeholder:"FILE" help:"teacher configuration (YAML) (default: the one stored in the --weights checkpoint)."`
	Override        []string `short:"o" sep:"none" placeholder:"KEY=VALUE" help:"override a key of the teacher configuration (repeatable; give student-train the same ones as --teacher-override)."`
	Weights         string   `required:"" placeholder:"CKPT" help:"teacher weights, path or http(s) URL: our checkpoint, a PaddleDetection tar or folder, .pdparams, PyTorch .pth/.pt or .safetensors."`
	StudentConfig   string   `name:"student-config" placeholder:"FILE" help:"student configuration: its data section, augmentation, batch size and distill pairs decide the views and the stored feature maps (default: the teacher configuration's data section, no feature maps)."`
	StudentOverride []string `name:"student-override" sep:"none" placeholder:"KEY=VALUE" help:"override a key of the student configuration (repeatable; use the same ones as student-train -o)."`
	Dataset         string   `placeholder:"PATH" help:"dataset folder (replaces data.root)."`
	Views           int      `default:"0" placeholder:"K" help:"augmented views per image: K epochs of the training loader (default: enough for the student's train.max_iters, plus one epoch)."`
	Seed            *int64   `placeholder:"S" help:"seed of the views (default: the student's train.seed)."`
	Batch           int      `placeholder:"B" help:"views per batch (default: the student's train.batch_size); student-train should use the same batch size."`
	FP16            bool     `name:"fp16" help:"store values as float16."`
	Sparse          *float64 `placeholder:"THRESH" help:"sparse form: objectness for every anchor, box and class logits only where sigmoid(objectness) >= THRESH."`
	Shard           string   `default:"0/1" placeholder:"i/n" help:"keep the i-th of n contiguous ranges of batches of every epoch."`
	Out             string   `default:"-" placeholder:"FILE|-" help:"output Arrow IPC file, or - for an Arrow IPC stream on stdout."`
	CacheDir        string   `name:"cache-dir" placeholder:"DIR" help:"where downloaded weights are kept."`
	CacheMB         int      `name:"cache-mb" default:"1024" placeholder:"MB" help:"memory for the teacher's outputs of views already run: a view whose pixels repeat an earlier one's (e.g. flips as the only augmentation) is written from memory, the file unchanged; 0 turns it off."`
	cli.NetFlags
}

func main() {
	nn.TuneGC()
	os.Exit(cli.Main(run))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	log := cli.Logger{Name: name, W: stderr}
	if _, code, done := cli.ParseVersion(name, cli.Describe("Teacher outputs for replayable augmented views of the training split, as soft targets (Arrow).",
		"teacher-dump --weights out/demo/teacher/model_final.ckpt --student-config pipelines/configs/demo_student.yml --out out/demo/soft.arrow"), nn.BuildInfo(), &g, args, stderr); done {
		return code
	}
	shard, nShards, err := parseShard(g.Shard)
	if err != nil {
		log.Printf("error: --shard: %v", err)
		return cli.ExitUsage
	}
	if g.Views < 0 {
		log.Printf("error: --views %d: need at least 1 (0: sized from the student's train.max_iters)", g.Views)
		return cli.ExitUsage
	}
	if g.Sparse != nil && !(*g.Sparse >= 0 && *g.Sparse < 1) {
		log.Printf("error: --sparse %v: the threshold is an objectness probability in [0, 1)", *g.Sparse)
		return cli.ExitUsage
	}
	if g.Batch < 0 {
		log.Printf("error: --batch %d", g.Batch)
		return cli.ExitUsage
	}
	if g.CacheMB < 0 {
		log.Printf("error: --cache-mb %d: want 0 (off) or more", g.CacheMB)
		return cli.ExitUsage
	}
	if len(g.StudentOverride) > 0 && g.StudentConfig == "" {
		log.Printf("error: --student-override needs --student-config")
		return cli.ExitUsage
	}
	if err := g.NetFlags.Check(); err != nil {
		return log.Fail(err)
	}
	ctx = checkpoint.WithFetch(ctx, checkpoint.FetchOptions{ConnectTimeout: g.ConnectTimeout, IdleTimeout: g.IdleTimeout, Logf: log.Printf})
	if f, ok := stdout.(*os.File); ok && g.Out == "-" && term.IsTerminal(int(f.Fd())) {
		log.Printf("error: refusing to write an Arrow stream to a terminal: give --out FILE, or pipe stdout into student-train --soft-targets -")
		return cli.ExitUsage
	}
	enc := softtarget.Encoding{Half: g.FP16}
	if g.Sparse != nil {
		enc.Kind, enc.Threshold = softtarget.Sparse, *g.Sparse
	}
	err = teacher.Dump(ctx, teacher.DumpOptions{
		Config: g.Config, Override: g.Override, Weights: g.Weights, CacheDir: g.CacheDir,
		StudentConfig: g.StudentConfig, StudentOverride: g.StudentOverride, Dataset: g.Dataset,
		Views: g.Views, Seed: g.Seed, Batch: g.Batch, Encoding: enc, Shard: shard, Shards: nShards,
		Out: g.Out, Stdout: stdout, CacheMB: g.CacheMB, Log: log.Printf,
	})
	if err != nil {
		return log.Fail(err)
	}
	return cli.ExitOK
}

// parseShard parses "i/n" with 0 <= i < n.
func parseShard(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		i, err = strconv.Atoi(a)
		if err == nil {
			n, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("%q: want i/n with 0 <= i < n", s)
	}
	return i, n, nil
}
