// Command teacher-dump runs a trained teacher detector over augmented views of
// the training split and stores its outputs ("soft targets") for
// student-train, as a soft-target Arrow IPC file or stream (pkg/softtarget).
//
//	teacher-dump -c TEACHER --weights T [--student-config S] [-o KEY=VALUE]...
//	    [--dataset PATH] [--views K] [--seed S] [--batch B] [--fp16]
//	    [--sparse THRESH] [--shard i/n] [--cache-mb MB] [--out FILE|-]
//
// # Which views
//
// The views are the ones the student's own training loader would make:
// teacher-dump runs pkg/train's loader (the same one detect-train uses:
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
// configuration's model hash must equal -c's: a dump for another teacher is
// refused here already.
//
// # Output
//
// One row per view, in training order: batches of train.batch_size views of
// one input size follow each other, so that student-train, batching the rows
// in file order, rebuilds the same batches. Each row holds the image id and
// file, the view index, the view's augment.Record (MarshalBinary), the
// input size, the teacher's raw head outputs per scale ([A*(5+C), H, W],
// deepest first) and the requested feature maps ([C, H, W]). The schema
// metadata carries the format version, the teacher's config hash
// (config.ModelHash), classes, anchors and masks, and the augmentation
// settings that rebuilding the views' pixels reads from the configuration
// rather than from the records (data.augment mean, std and, when expand is on,
// fill: augment.Config.ReplaySettings); student-train refuses soft
// targets whose settings differ from its own. --out FILE is written
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
// the flags (and, as all float32 kernels here, on GOMAXPROCS and the build):
// two runs write the same bytes. Progress lines go to stderr.
//
// Exit codes: 0 ok, 1 failure, 2 usage, 130 interrupted.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

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

	"golang.org/x/term"
)

const name = "teacher-dump"

type grammar struct {
	Config          string   `short:"c" required:"" placeholder:"FILE" help:"teacher configuration (YAML)."`
	Override        []string `short:"o" sep:"none" placeholder:"KEY=VALUE" help:"override a key of the teacher configuration (repeatable)."`
	Weights         string   `required:"" placeholder:"CKPT" help:"teacher checkpoint (path or http(s) URL)."`
	StudentConfig   string   `name:"student-config" placeholder:"FILE" help:"student configuration: its data section, augmentation, batch size and distill pairs decide the views and the stored feature maps (default: the teacher configuration's data section, no feature maps)."`
	StudentOverride []string `name:"student-override" sep:"none" placeholder:"KEY=VALUE" help:"override a key of the student configuration (repeatable; use the same ones as student-train -o)."`
	Dataset         string   `placeholder:"PATH" help:"dataset folder (replaces data.root)."`
	Views           int      `default:"1" placeholder:"K" help:"augmented views per image: K epochs of the training loader."`
	Seed            *int64   `placeholder:"S" help:"seed of the views (default: the student's train.seed)."`
	Batch           int      `placeholder:"B" help:"views per batch (default: the student's train.batch_size); student-train should use the same batch size."`
	FP16            bool     `name:"fp16" help:"store values as float16."`
	Sparse          *float64 `placeholder:"THRESH" help:"sparse form: objectness for every anchor, box and class logits only where sigmoid(objectness) >= THRESH."`
	Shard           string   `default:"0/1" placeholder:"i/n" help:"keep the i-th of n contiguous ranges of batches of every epoch."`
	Out             string   `default:"-" placeholder:"FILE|-" help:"output Arrow IPC file, or - for an Arrow IPC stream on stdout."`
	CacheDir        string   `name:"cache-dir" placeholder:"DIR" help:"where downloaded weights are kept."`
	CacheMB         int      `name:"cache-mb" default:"1024" placeholder:"MB" help:"memory for the teacher's outputs of views already run: a view whose pixels repeat an earlier one's (e.g. flips as the only augmentation) is written from memory, the file unchanged; 0 turns it off."`
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
	log := cli.Logger{Name: name, W: stderr}
	if _, code, done := cli.Parse(name, "Teacher outputs for replayable augmented views of the training split, as soft targets (Arrow).", &g, args, stderr); done {
		return code
	}
	shard, nShards, err := parseShard(g.Shard)
	if err != nil {
		log.Printf("error: --shard: %v", err)
		return cli.ExitUsage
	}
	if g.Views < 1 {
		log.Printf("error: --views %d: need at least 1", g.Views)
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
	if f, ok := stdout.(*os.File); ok && g.Out == "-" && term.IsTerminal(int(f.Fd())) {
		log.Printf("error: refusing to write an Arrow stream to a terminal: give --out FILE, or pipe stdout into student-train --soft-targets -")
		return cli.ExitUsage
	}
	d := &dumper{g: &g, log: log, shard: shard, nShards: nShards}
	if g.CacheMB > 0 {
		d.cache = newViewCache(int64(g.CacheMB) << 20)
	}
	if err := d.setup(ctx); err != nil {
		return log.Fail(err)
	}
	if err := d.dump(ctx, stdout); err != nil {
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

type dumper struct {
	g              *grammar
	log            cli.Logger
	shard, nShards int

	teacher  *config.Config
	data     *config.Config // the configuration whose data section and batch size make the views
	aug      augment.Config // data's augmentation: the views, and the settings their replay reads
	det      *detector.Detector
	split    *dataset.Split
	features []string
	meta     softtarget.Meta
	seed     int64
	batch    int

	cache            *viewCache // nil: --cache-mb 0
	computed, reused int        // views the teacher ran on / written from the cache
}

// setup loads the configurations, the teacher and the split, and checks what
// can be checked before anything is written.
func (d *dumper) setup(ctx context.Context) error {
	g := d.g
	var err error
	if d.teacher, err = config.Load(g.Config, g.Override); err != nil {
		return err
	}
	d.data = d.teacher
	if g.StudentConfig != "" {
		st, err := config.Load(g.StudentConfig, g.StudentOverride)
		if err != nil {
			return err
		}
		if err := checkStudent(st, d.teacher, g.Config); err != nil {
			return err
		}
		d.data = st
		heads := len(st.Model.AnchorMasks)
		rec, err := distill.NewRecipe(st.Distill, heads, st.Model.NumClasses, 1)
		if err != nil {
			return fmt.Errorf("%s: %w", g.StudentConfig, err)
		}
		d.features = rec.TeacherFeatures()
		rec.Close()
	} else if len(g.StudentOverride) > 0 {
		return errors.New("--student-override needs --student-config")
	}
	d.seed = d.data.Train.Seed
	if g.Seed != nil {
		d.seed = *g.Seed
	}
	d.batch = d.data.Train.BatchSize
	if g.Batch > 0 {
		d.batch = g.Batch
	}
	if d.det, err = detector.New(d.teacher); err != nil {
		return fmt.Errorf("%s: %w", g.Config, err)
	}
	for _, f := range d.features {
		if !hasTensor(d.det.Spec, f) {
			return fmt.Errorf("%s: distill pairs ask for teacher feature map %q, which the teacher (%s) does not have (model-inspect -c %s lists the names)",
				g.StudentConfig, f, g.Config, g.Config)
		}
	}
	cache := g.CacheDir
	if cache == "" {
		cache = train.DefaultCacheDir()
	}
	ck, err := checkpoint.Open(ctx, g.Weights, cache)
	if err != nil {
		return fmt.Errorf("teacher weights: %w", err)
	}
	if err := d.det.LoadCheckpoint(ck); err != nil {
		return fmt.Errorf("teacher weights %s: %w", g.Weights, err)
	}
	if h, ok := ck.Meta["model_hash"]; ok && h != d.teacher.ModelHash() {
		d.log.Printf("warning: %s was saved from another model configuration than %s (model hash %.12s, the configuration's %.12s)",
			g.Weights, g.Config, h, d.teacher.ModelHash())
	}
	opt := dataset.SplitOptions{Root: g.Dataset}
	if d.split, err = dataset.OpenSplit(d.data, d.data.Data.TrainSplit, opt); err != nil {
		return err
	}
	enc := softtarget.Encoding{Half: g.FP16}
	if g.Sparse != nil {
		enc.Kind, enc.Threshold = softtarget.Sparse, *g.Sparse
	}
	d.meta = MetaFor(d.teacher, enc, d.features)
	d.aug = augment.FromConfig(d.data)
	d.meta.Replay = d.aug.ReplaySettings(true)
	return nil
}

// checkStudent checks that a student configuration fits the teacher: the same
// class list, the same anchor masks (head output channels), and, when the
// student names its teacher configuration, the same model hash.
func checkStudent(st, teacher *config.Config, teacherPath string) error {
	if !slices.Equal(st.Data.Classes, teacher.Data.Classes) {
		return fmt.Errorf("%s: classes %q, the teacher %s has %q", st.Path, st.Data.Classes, teacherPath, teacher.Data.Classes)
	}
	if tp := st.TeacherPath(); tp != "" {
		tc, err := config.Load(tp, nil)
		if err != nil {
			return fmt.Errorf("%s: distill.teacher: %w", st.Path, err)
		}
		if tc.ModelHash() != teacher.ModelHash() {
			return fmt.Errorf("%s: distill.teacher is %s (model hash %.12s), but -c %s has model hash %.12s: another teacher",
				st.Path, tp, tc.ModelHash(), teacherPath, teacher.ModelHash())
		}
	}
	return nil
}

// hasTensor reports whether name is a layer name or alias of spec.
func hasTensor(spec *yolo.Spec, name string) bool {
	for _, l := range spec.Layers {
		if l.Name == name {
			return true
		}
	}
	for _, a := range spec.Aliases {
		if a.Name == name {
			return true
		}
	}
	return false
}

// MetaFor is the soft-target metadata of a teacher configuration: its model
// hash, classes, anchors and masks, with the given encoding and feature names.
func MetaFor(teacher *config.Config, enc softtarget.Encoding, features []string) softtarget.Meta {
	m := softtarget.Meta{
		TeacherConfigHash: teacher.ModelHash(),
		Classes:           slices.Clone(teacher.Data.Classes),
		Anchors:           slices.Clone(teacher.Model.Anchors),
		Encoding:          enc,
		Features:          slices.Clone(features),
	}
	for _, mk := range teacher.Model.AnchorMasks {
		m.Masks = append(m.Masks, slices.Clone(mk))
	}
	return m
}

// dump writes the views.
func (d *dumper) dump(ctx context.Context, stdout io.Writer) (err error) {
	g := d.g
	var w *softtarget.Writer
	var bw *bufio.Writer
	if g.Out == "-" {
		bw = bufio.NewWriterSize(stdout, 1<<20)
		w, err = softtarget.NewStreamWriter(bw, d.meta)
	} else {
		w, err = softtarget.CreateFile(g.Out, d.meta)
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			w.Abort()
			if bw != nil {
				bw.Flush() // a reader then sees a stream without its end marker: truncated
			}
		}
	}()

	n := d.split.Source.Len()
	per := n / d.batch
	if per == 0 {
		return fmt.Errorf("data: split %q of %s has %d images, fewer than one batch of %d", d.split.Name, d.split.Where, n, d.batch)
	}
	lo, hi := d.shard*per/d.nShards, (d.shard+1)*per/d.nShards
	total := (hi - lo) * d.batch * g.Views
	where := g.Out
	if where == "-" {
		where = "stdout"
	}
	d.log.Printf("%d views (%d epochs x %d batches of %d) of split %q (%d images) -> %s, %s",
		total, g.Views, hi-lo, d.batch, d.split.Name, n, where, d.meta.Encoding)
	start, lastLog := time.Now(), time.Now()
	done := 0
	skips := detector.SkipTally(d.data, n)
	for epoch := 0; epoch < g.Views; epoch++ {
		if hi == lo {
			break
		}
		l, err := augment.NewTrainLoader(d.data, d.split.Source, d.batch, uint64(d.seed))
		if err != nil {
			return fmt.Errorf("data: %w", err)
		}
		if err := l.Start(ctx, augment.Position{Epoch: epoch, Batch: lo}); err != nil {
			return err
		}
		for b := lo; b < hi; b++ {
			batch, err := l.Next(ctx)
			if err != nil {
				l.Close()
				return err
			}
			// A damaged image's slot holds the next image of the order, as
			// in detect-train and student-train: the views stay aligned.
			for _, sk := range skips.Add(batch.Skipped) {
				d.log.Printf("warning: skipping an image that cannot be loaded (the next image takes its place): %v", sk.Err)
			}
			if err := skips.Err(); err != nil {
				l.Close()
				return fmt.Errorf("split %q of %s: %w", d.split.Name, d.split.Where, err)
			}
			if err := d.writeBatch(w, batch, epoch); err != nil {
				l.Close()
				return err
			}
			done += len(batch.Items)
			if time.Since(lastLog) >= 5*time.Second || done == total {
				el := time.Since(start).Seconds()
				d.log.Printf("%d/%d views, %.1f views/s", done, total, float64(done)/math.Max(el, 1e-9))
				lastLog = time.Now()
			}
		}
		l.Close()
	}
	if err := w.Close(); err != nil {
		return err
	}
	if bw != nil {
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("stdout: %w", err)
		}
	}
	if d.reused > 0 {
		d.log.Printf("wrote %d views to %s (teacher run on %d; %d repeated earlier views' pixels and came from memory)", w.Count(), where, d.computed, d.reused)
	} else {
		d.log.Printf("wrote %d views to %s", w.Count(), where)
	}
	if skips.Count() > 0 {
		d.log.Printf("warning: %d of %d images could not be loaded and were skipped", skips.Count(), n)
	}
	return nil
}

// writeBatch runs the teacher on one batch (inference mode: BatchNorm running
// statistics) and writes one row per image. When every image of the batch is
// in the view cache, the teacher does not run.
func (d *dumper) writeBatch(w *softtarget.Writer, b *augment.Batch, epoch int) error {
	n, s := len(b.Items), b.Size
	net, err := d.det.Net(n, s, s, false)
	if err != nil {
		return err
	}
	// b.Images: [n, 3, s, s]
	pix := len(b.Images) / n
	keys := make([][sha256.Size]byte, n)
	cached := make([]*cachedView, n)
	allCached := d.cache != nil
	if d.cache != nil {
		for i := range n {
			keys[i] = viewKey(s, b.Images[i*pix:(i+1)*pix])
			if cached[i] = d.cache.get(keys[i]); cached[i] == nil {
				allCached = false
			}
		}
	}
	if !allCached {
		if err := net.Graph.SetInput(b.Images); err != nil {
			return err
		}
		if err := net.Graph.Forward(false); err != nil {
			return err
		}
		d.computed += n
	} else {
		d.reused += n
	}
	outs := net.Outputs()
	feats := make([][]float32, len(d.features))
	fshape := make([][]int, len(d.features))
	for k, f := range d.features {
		feats[k], fshape[k] = net.Graph.Tensor(f)
		if feats[k] == nil || len(fshape[k]) < 2 || fshape[k][0] != n {
			return fmt.Errorf("teacher feature map %q: no per-image tensor in the graph (shape %v)", f, fshape[k])
		}
	}
	v := softtarget.View{Outputs: make([]softtarget.Tensor, len(outs)), Features: map[string]softtarget.Tensor{}, InputH: s, InputW: s}
	for i, it := range b.Items {
		sm := &d.split.DS.Samples[it.Index]
		aug, err := it.Record.MarshalBinary()
		if err != nil {
			return err
		}
		var ov, fo [][]float32 // this image's slice of every output and feature map
		if allCached {
			ov, fo = cached[i].outs, cached[i].feats
		} else {
			ov, fo = make([][]float32, len(outs)), make([][]float32, len(d.features))
			for k, sh := range net.Shapes {
				per := sh[1] * sh[2] * sh[3]
				ov[k] = outs[k][i*per : (i+1)*per]
			}
			for k := range d.features {
				per := len(feats[k]) / n
				fo[k] = feats[k][i*per : (i+1)*per]
			}
			if cached[i] == nil {
				d.cache.put(keys[i], ov, fo)
			}
		}
		v.ImageID, v.File, v.ViewIndex, v.Aug = sm.ID, sm.File, epoch, aug
		for k, sh := range net.Shapes {
			v.Outputs[k] = softtarget.Tensor{Shape: []int{sh[1], sh[2], sh[3]}, Data: ov[k]}
		}
		for k, f := range d.features {
			v.Features[f] = softtarget.Tensor{Shape: slices.Clone(fshape[k][1:]), Data: fo[k]}
		}
		if err := w.Write(&v); err != nil {
			return err
		}
	}
	return nil
}
