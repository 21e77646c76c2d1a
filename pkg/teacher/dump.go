package teacher

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/augment"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/distill"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/yolo"
)

// DumpOptions configure Dump (teacher-dump's flags).
type DumpOptions struct {
	Config          string   // the teacher configuration's path ("": the one stored in the Weights checkpoint)
	Override        []string // its -o overrides
	Weights         string   // the teacher's weights: a path or an http(s) URL
	CacheDir        string   // where downloaded weights are kept (checkpoint.DefaultCacheDir when "")
	StudentConfig   string   // the student configuration: data, batch size and pairs ("" = the teacher's data, no feature maps)
	StudentOverride []string // its -o overrides
	Dataset         string   // replaces data.root when not ""
	Views           int      // epochs of the training loader (views per image); 0: enough for the student's train.max_iters (NeededViews)
	Seed            *int64   // nil: the student's train.seed
	Batch           int      // views per batch; 0: the student's train.batch_size
	Encoding        softtarget.Encoding
	Shard, Shards   int    // keep the Shard-th of Shards contiguous ranges of batches of every epoch
	Out             string // output file, or "-" for a stream on Stdout
	Stdout          io.Writer
	CacheMB         int // memory for the outputs of views already run (0: off)
	// Log receives progress and warnings (one line each, no prefix); nil
	// discards them.
	Log func(format string, args ...any)
}

// Dump runs the teacher over K epochs of the student's training loader and
// writes one soft-target row per view (see the teacher-dump command for the
// whole contract): configurations, weights and split are loaded and checked
// before anything is written, a file output appears only when complete, and
// a stream ends with its end marker only when complete.
func Dump(ctx context.Context, opt DumpOptions) error {
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	if opt.Shards == 0 {
		opt.Shards = 1
	}
	d := &dumper{opt: &opt, log: opt.Log}
	if opt.CacheMB > 0 {
		d.cache = newViewCache(int64(opt.CacheMB) << 20)
	}
	if err := d.setup(ctx); err != nil {
		return err
	}
	return d.dump(ctx)
}

type dumper struct {
	opt *DumpOptions
	log func(format string, args ...any)

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
	g := d.opt
	if g.Out != "-" {
		// The output must be writable before hours of teacher runs.
		if err := atomicfile.Check(g.Out); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	var err error
	if d.teacher, err = detector.LoadConfig(g.Config, g.Weights, g.Override); err != nil {
		return err
	}
	desc := "-c " + shellArg(g.Config)
	if g.Config == "" {
		desc = "the configuration stored in " + g.Weights
	}
	if len(g.Override) > 0 {
		desc += " with -o " + strings.Join(quoteArgs(g.Override), " -o ")
	}
	d.data = d.teacher
	if g.StudentConfig != "" {
		st, err := config.Load(g.StudentConfig, g.StudentOverride)
		if err != nil {
			return err
		}
		if err := CheckStudent(st, d.teacher, desc, g.Override); err != nil {
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
	// The teacher runs at every size of the views: each must fit memory.
	tspec, err := yolo.FromModelConfig(d.teacher.Model)
	if err != nil {
		return fmt.Errorf("%s: %w", g.Config, err)
	}
	if err := detector.CheckSizes(tspec, d.data, "data.augment.multi_scale", d.data.Data.Augment.MultiScale, d.batch, false); err != nil {
		return err
	}
	var warn string
	if d.det, warn, err = detector.Load(ctx, d.teacher, g.Weights, g.CacheDir); err != nil {
		return fmt.Errorf("teacher weights: %w", err)
	}
	if warn != "" {
		d.log("warning: %s", warn)
	}
	for _, f := range d.features {
		if _, ok := d.det.Spec.Layer(f); !ok {
			return fmt.Errorf("%s: distill pairs ask for teacher feature map %q, which the teacher (%s) does not have (model-inspect -c %s lists the names)",
				g.StudentConfig, f, g.Config, g.Config)
		}
	}
	opt := dataset.SplitOptions{Root: g.Dataset}
	if d.split, err = dataset.OpenSplit(d.data, d.data.Data.TrainSplit, opt); err != nil {
		return err
	}
	if sum := d.split.Problems.Summary(); sum != "" {
		d.log("warning: training split %q: %s", d.split.Name, sum)
	}
	d.meta = Meta(d.teacher, g.Encoding, d.features)
	d.meta.Data = DataSettings(d.data, g.Dataset)
	d.aug = augment.FromConfig(d.data)
	d.meta.Replay = d.aug.ReplaySettings(true)
	return nil
}

// NeededViews is teacher-dump's default --views: enough epochs of
// perEpoch batches for maxIters batches (the student's train.max_iters; a
// stream must hold them all), plus one epoch of margin (student-train reads
// and drops the surplus). At least 1.
func NeededViews(maxIters, perEpoch int) int {
	if perEpoch <= 0 || maxIters <= 0 {
		return 1
	}
	return (maxIters+perEpoch-1)/perEpoch + 1
}

// dump writes the views.
func (d *dumper) dump(ctx context.Context) (err error) {
	g := d.opt
	var w *softtarget.Writer
	var bw *bufio.Writer
	if g.Out == "-" {
		bw = bufio.NewWriterSize(g.Stdout, 1<<20)
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
	lo, hi := g.Shard*per/g.Shards, (g.Shard+1)*per/g.Shards
	if g.Views == 0 {
		if g.StudentConfig == "" {
			g.Views = 1
			d.log("--views 1 (without --student-config there is no student's train.max_iters to size it from)")
		} else {
			g.Views = NeededViews(d.data.Train.MaxIters, per)
			d.log("--views %d: the student's train.max_iters %d batches over %d batches of %d per epoch of split %q, plus one epoch of margin",
				g.Views, d.data.Train.MaxIters, per, d.batch, d.split.Name)
		}
	}
	total := (hi - lo) * d.batch * g.Views
	where := g.Out
	if where == "-" {
		where = "stdout"
	}
	d.log("%d views (%d epochs x %d batches of %d) of split %q (%d images) -> %s, %s",
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
				d.log("warning: skipping an image that cannot be loaded (the next image takes its place): %v", sk.Err)
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
				d.log("%d/%d views, %.1f views/s", done, total, float64(done)/math.Max(el, 1e-9))
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
		d.log("wrote %d views to %s (teacher run on %d; %d repeated earlier views' pixels and came from memory)", w.Count(), where, d.computed, d.reused)
	} else {
		d.log("wrote %d views to %s", w.Count(), where)
	}
	if skips.Count() > 0 {
		d.log("warning: %d of %d images could not be loaded and were skipped", skips.Count(), n)
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
	keys := make([][sha256.Size]byte, n) // the views' pixel hashes, stored with them
	cached := make([]*cachedView, n)
	allCached := d.cache != nil
	for i := range n {
		keys[i] = viewKey(s, b.Images[i*pix:(i+1)*pix])
		if d.cache != nil {
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
	// The teacher's outputs and feature maps: read from the graph only when
	// it ran (a batch of cached views takes them from the cache).
	var outs [][]float32
	feats := make([][]float32, len(d.features))
	fshape := make([][]int, len(d.features))
	if !allCached {
		outs = net.Outputs()
	}
	for k, f := range d.features {
		if allCached { // its shape only
			for _, info := range net.Graph.Names() {
				if info.Name == f {
					fshape[k] = info.Shape
				}
			}
		} else {
			feats[k], fshape[k] = net.Graph.Tensor(f)
		}
		if !allCached && feats[k] == nil || len(fshape[k]) < 2 || fshape[k][0] != n {
			return fmt.Errorf("teacher feature map %q: no per-image tensor in the graph (shape %v)", f, fshape[k])
		}
	}
	v := softtarget.View{Outputs: make([]softtarget.Tensor, len(net.Shapes)), Features: map[string]softtarget.Tensor{}, InputH: s, InputW: s}
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
			for k := range net.Shapes {
				ov[k] = Unstack(outs[k], n, i)
			}
			for k := range d.features {
				fo[k] = Unstack(feats[k], n, i)
			}
			if cached[i] == nil {
				d.cache.put(keys[i], ov, fo)
			}
		}
		v.ImageID, v.File, v.ViewIndex, v.Aug, v.PixelHash = sm.ID, sm.File, epoch, aug, keys[i][:]
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
