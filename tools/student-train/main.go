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
// Everything else is detect-train's loop (pkg/train): the run folder (--out,
// default output/<config name>) with config.yml, metrics.jsonl (the
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
// not given), their class list the student's data.classes, their anchors and
// masks the student's (for losses over head outputs), and they must hold the
// teacher feature maps the distill pairs name. The views are rebuilt with the
// student's data.augment, so the settings the replay reads from it rather than
// from the records (mean, std and expand fill; augment.Config.ReplaySettings)
// must be those teacher-dump recorded. Any difference is a clear error. Files
// from before teacher-dump recorded those settings are accepted with a warning.
// Without -t and distill.teacher the teacher is not checked (a warning says so).
//
// # Online
//
// With --teacher-weights, the teacher (-t, default distill.teacher) runs on
// each batch the student's loader makes, in inference mode (BatchNorm running
// statistics), on the student's own normalised input, as PaddleSlim's merged
// program does. For the same views the offline and online losses are equal.
//
// Learned 1x1 adapters (pairs with adapter: true whose channel counts differ)
// are parameters of the student named "distill.pair.<i>.adapter.0.*"; they
// are saved in its checkpoints.
//
// Exit codes: 0 done, 1 failure (including mismatched or truncated soft
// targets), 2 usage, 130 interrupted.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/distill"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/train"
	"yolodistill/pkg/yolo"
)

const name = "student-train"

type grammar struct {
	Config         string   `short:"c" placeholder:"CONFIG" help:"student configuration (YAML); optional with -r (the checkpoint's own configuration is used)."`
	Override       []string `short:"o" sep:"none" placeholder:"KEY=VALUE" help:"override a configuration key (repeatable)."`
	SoftTargets    []string `name:"soft-targets" placeholder:"FILE|-" help:"soft-target files written by teacher-dump, in order (comma-separated or repeated; - is stdin)."`
	Files          []string `arg:"" optional:"" placeholder:"FILE" help:"more soft-target files, after those of --soft-targets."`
	Teacher        string   `short:"t" placeholder:"CONFIG" help:"teacher configuration (default: distill.teacher of the student configuration)."`
	TeacherWeights string   `name:"teacher-weights" placeholder:"CKPT" help:"online mode: run the teacher with these weights (path or http(s) URL) on every batch."`
	Resume         string   `short:"r" placeholder:"CHECKPOINT" help:"resume exactly from a checkpoint of an earlier run."`
	Out            string   `name:"out" placeholder:"DIR" help:"run folder (default output/<config name>)."`
	Pretrained     string   `name:"pretrained" placeholder:"PATH|URL" help:"initialise the student from the fitting weights of a checkpoint (overrides train.pretrained)."`
	CacheDir       string   `name:"cache-dir" placeholder:"DIR" help:"download cache for URLs (default $XDG_CACHE_HOME/yolodistill or ~/.cache/yolodistill)."`
}

func main() {
	nn.TuneGC()
	ctx, stop := cli.SignalContext()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	if _, code, done := cli.Parse(name, "Train a student detector with knowledge distillation from soft targets or an online teacher.", &g, args, stderr); done {
		return code
	}
	log := cli.Logger{Name: name, W: stderr}
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
		return cli.ExitUsage
	case online && len(inputs) > 0:
		log.Printf("error: give either --soft-targets (offline) or --teacher-weights (online), not both")
		return cli.ExitUsage
	case !online && len(inputs) == 0:
		log.Printf("error: no teacher: give --soft-targets FILE|- (offline) or --teacher-weights T (online); detect-train trains without one")
		return cli.ExitUsage
	}
	if n := countStdin(inputs); n > 1 {
		log.Printf("error: - (stdin) is given %d times", n)
		return cli.ExitUsage
	}
	cfg, err := train.LoadRunConfig(g.Config, g.Resume, g.Override)
	if err != nil {
		return log.Fail(err)
	}
	out := g.Out
	if out == "" {
		base := g.Config
		if base == "" {
			base = filepath.Dir(g.Resume)
		}
		out = filepath.Join("output", strings.TrimSuffix(filepath.Base(base), filepath.Ext(base)))
	}
	s := &session{g: &g, cfg: cfg, log: log, stdin: stdin}
	defer s.close()
	opts, err := s.setup(ctx, inputs, online)
	if err != nil {
		return log.Fail(err)
	}
	opts.OutDir, opts.Stderr, opts.Bar = out, stderr, train.UseBar(stderr)
	res, err := train.Run(ctx, opts)
	if err != nil {
		if derr := s.d.err(); derr != nil {
			log.Printf("error: distillation loss: %v", derr)
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return cli.ExitInterrupted
		}
		return log.Fail(err)
	}
	if res.Best != "" {
		log.Printf("best %s %.4f: %s", cfg.Eval.Metric, res.BestScore, res.Best)
	}
	log.Printf("done: %d iterations, final loss %.4f, run folder %s", res.Iterations, res.LastLoss, out)
	train.ReportSkips(log.Printf, res)
	return cli.ExitOK
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

// session is one student-train run's distillation side.
type session struct {
	g     *grammar
	cfg   *config.Config
	log   cli.Logger
	stdin io.Reader
	d     *distiller
	ins   []input
}

func (s *session) close() {
	if s.d != nil {
		s.d.recipe.Close()
	}
	for _, in := range s.ins {
		in.r.Close()
	}
}

// usesHeads reports whether a recipe reads head outputs.
func usesHeads(r *distill.Recipe) bool {
	for _, t := range r.Terms {
		for _, ref := range t.Teacher {
			if ref.Head >= 0 {
				return true
			}
		}
	}
	return false
}

// setup makes the recipe, checks the teacher (soft-target metadata or the
// teacher configuration) and returns the loop's options with the hooks.
func (s *session) setup(ctx context.Context, inputs []string, online bool) (train.Options, error) {
	cfg, g := s.cfg, s.g
	opts := train.Options{Config: cfg, Resume: g.Resume, Pretrained: g.Pretrained, CacheDir: g.CacheDir, Name: name, Tool: name}
	rec, err := distill.NewRecipe(cfg.Distill, len(cfg.Model.AnchorMasks), cfg.Model.NumClasses, 0)
	if err != nil {
		return opts, fmt.Errorf("%s: %w", configName(cfg), err)
	}
	if rec.Kind == "none" {
		rec.Close()
		return opts, fmt.Errorf("%s: distill.loss is none: nothing to distil (set distill.loss, e.g. -o distill.loss=l2, or use detect-train)", configName(cfg))
	}
	s.d = &distiller{recipe: rec}
	want := softtarget.Meta{Classes: slices.Clone(cfg.Data.Classes), Features: rec.TeacherFeatures()}
	if usesHeads(rec) {
		want.Anchors, want.Masks = cfg.Model.Anchors, cfg.Model.AnchorMasks
	}
	teacherPath := g.Teacher
	if teacherPath == "" {
		teacherPath = cfg.TeacherPath()
	}
	var tc *config.Config
	if teacherPath != "" {
		if tc, err = config.Load(teacherPath, nil); err != nil {
			return opts, fmt.Errorf("teacher configuration: %w", err)
		}
		want.TeacherConfigHash = tc.ModelHash()
		if s.d.tspec, err = yolo.FromModelConfig(tc.Model); err != nil {
			return opts, fmt.Errorf("teacher %s: %w", teacherPath, err)
		}
	}
	opts.Hooks.Attach = s.d.attach
	if s.d.tspec != nil {
		// Adapters exist before a checkpoint is loaded, so -r restores them.
		opts.Hooks.Init = s.d.createParams
	}
	if online {
		if tc == nil {
			return opts, errors.New("online mode needs the teacher configuration: -t TEACHER (or distill.teacher in the student configuration)")
		}
		if err := s.setupOnline(ctx, tc, teacherPath, want); err != nil {
			return opts, err
		}
		opts.Hooks.Prepare = func(ctx context.Context, it int, b *augment.Batch, net *detector.Net) error {
			return s.d.prepareOnline(b.Images, len(b.Items), b.Size, b.Size)
		}
		s.log.Printf("online distillation (%s) from teacher %s", rec.Kind, teacherPath)
		return opts, nil
	}
	if teacherPath == "" {
		s.log.Printf("warning: no teacher configuration (-t or distill.teacher): the soft targets' teacher is not checked")
	}
	// The views are rebuilt with this configuration's augmentation: the
	// settings the records do not carry must be the dump's.
	aug := augment.FromConfig(cfg)
	want.Replay = aug.ReplaySettings(false)
	for _, path := range inputs {
		var r *softtarget.Reader
		if path == "-" {
			r, err = softtarget.NewReader(bufio.NewReaderSize(s.stdin, 1<<20), "-")
		} else {
			r, err = softtarget.Open(path)
		}
		if err != nil {
			return opts, err
		}
		s.ins = append(s.ins, input{name: path, r: r})
		if err := r.CheckCompatible(want); err != nil {
			return opts, err
		}
		if r.Meta().Replay == nil {
			s.log.Printf("warning: %s predates the augmentation-settings check (no %s in its metadata): "+
				"cannot verify that it was dumped with this configuration's data.augment mean, std and expand fill; re-dump it with this teacher-dump to have them checked",
				path, softtarget.KeyReplay)
		}
		if r.Meta().Encoding.Kind == softtarget.Sparse {
			if err := checkSparse(rec); err != nil {
				return opts, fmt.Errorf("%s: %w", path, err)
			}
			s.d.sparse = true
		}
	}
	if s.d.sparse {
		for _, m := range cfg.Model.AnchorMasks {
			s.d.anchors = append(s.d.anchors, len(m))
		}
	}
	split, err := dataset.OpenSplit(cfg, cfg.Data.TrainSplit, dataset.SplitOptions{})
	if err != nil {
		return opts, err
	}
	seq := newSequence(s.ins)
	if seq.cycle {
		batches := seq.total / int64(cfg.Train.BatchSize)
		s.log.Printf("offline distillation (%s): %d views in %d file(s), about %d batches per pass, %d iterations",
			rec.Kind, seq.total, len(s.ins), batches, cfg.Train.MaxIters)
	} else {
		s.log.Printf("offline distillation (%s) from %d input(s) including a stream, %d iterations", rec.Kind, len(s.ins), cfg.Train.MaxIters)
	}
	opened := false
	opts.Open = func(ctx context.Context, cfg *config.Config, state []byte) (train.Source, error) {
		if opened {
			return nil, errors.New("soft targets: the source can be opened once per run")
		}
		opened = true
		var st softState
		if len(state) > 0 {
			if err := json.Unmarshal(state, &st); err != nil {
				return nil, fmt.Errorf("soft-target position %q in the checkpoint: not a student-train position", state)
			}
		}
		need := int64(cfg.Train.MaxIters) - st.Batches
		if need <= 0 {
			return nil, fmt.Errorf("soft-target position %q: %d batches done, train.max_iters is %d", state, st.Batches, cfg.Train.MaxIters)
		}
		return openSoftSource(ctx, cfg, state, seq, split, s.d, need)
	}
	opts.Hooks.Prepare = func(ctx context.Context, it int, b *augment.Batch, net *detector.Net) error {
		return s.d.prepareOffline()
	}
	return opts, nil
}

// setupOnline loads the teacher model and checks it fits the student.
func (s *session) setupOnline(ctx context.Context, tc *config.Config, teacherPath string, want softtarget.Meta) error {
	got := softtarget.Meta{TeacherConfigHash: tc.ModelHash(), Classes: tc.Data.Classes, Anchors: tc.Model.Anchors, Masks: tc.Model.AnchorMasks}
	if err := got.CheckCompatible(softtarget.Meta{Classes: want.Classes, Anchors: want.Anchors, Masks: want.Masks}); err != nil {
		return fmt.Errorf("teacher %s: %w", teacherPath, err)
	}
	det, err := detector.New(tc)
	if err != nil {
		return fmt.Errorf("teacher %s: %w", teacherPath, err)
	}
	for _, f := range want.Features {
		if _, ok := lookupName(det.Spec, f); !ok {
			return fmt.Errorf("teacher %s has no tensor %q that distill.pairs names (model-inspect lists the names)", teacherPath, f)
		}
	}
	cache := s.g.CacheDir
	if cache == "" {
		cache = train.DefaultCacheDir()
	}
	ck, err := checkpoint.Open(ctx, s.g.TeacherWeights, cache)
	if err != nil {
		return fmt.Errorf("teacher weights: %w", err)
	}
	if err := det.LoadCheckpoint(ck); err != nil {
		return fmt.Errorf("teacher weights %s: %w", s.g.TeacherWeights, err)
	}
	s.d.teacher = det
	return nil
}

// lookupName reports whether name is a layer or alias of spec.
func lookupName(spec *yolo.Spec, name string) (string, bool) {
	for _, l := range spec.Layers {
		if l.Name == name {
			return name, true
		}
	}
	for _, a := range spec.Aliases {
		if a.Name == name {
			return a.Layer, true
		}
	}
	return "", false
}

func configName(cfg *config.Config) string {
	if cfg.Path != "" {
		return cfg.Path
	}
	return "configuration"
}
