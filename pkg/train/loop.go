package train

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/augment"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/dist"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/weights"
	"yolodistill/pkg/yolo/loss"
)

// Files of a run folder.
const (
	MetricsFile    = "metrics.jsonl"    // one Record per logged iteration
	FinalFile      = "model_final.ckpt" // the model after train.max_iters iterations
	BestFile       = "best_model.ckpt"  // the best evaluated model (when an eval split is set)
	LossPlotFile   = "loss.png"         // the loss parts, learning rate and evaluation scores, written at the end
	ConfigFile     = "config.yml"       // the run's configuration, canonical YAML
	periodicPrefix = "model_"
)

// SnapshotPath is the periodic checkpoint of a run folder after iters
// completed iterations: DIR/model_<iters>.ckpt.
func SnapshotPath(dir string, iters int) string {
	return filepath.Join(dir, periodicPrefix+strconv.Itoa(iters)+".ckpt")
}

var snapshotRE = regexp.MustCompile(`^model_([0-9]+)\.ckpt$`)

// Hooks extend the loop without changing it (student-train adds the
// distillation loss and feeds soft targets through them).
type Hooks struct {
	// Init is called once, right after the detector is created and before
	// a checkpoint or pretrained weights are loaded into it. Parameters that
	// Attach will create (a distillation adapter) must be created here, on a
	// throwaway nn.Builder over d.Params with the same names, so that
	// checkpoints save and restore them.
	Init func(d *detector.Detector) error
	// Attach is called once for every training graph (one per input size)
	// when it is built, after the detection loss "yolo" is attached: it may
	// attach more losses with b.Loss (each is logged under its name in
	// Record.Parts and added to the total) and add layers.
	Attach func(b *nn.Builder, net *detector.Net) error
	// Prepare is called before every step with the number of iterations
	// completed before it (it; the step is iteration it+1), the batch and
	// the graph the step runs on, after the batch is copied into
	// the graph's input: feed per-batch data (soft targets) to the losses
	// Attach made. An error stops training (a context error counts as an
	// interruption: the state before this iteration is saved).
	Prepare func(ctx context.Context, it int, batch *augment.Batch, net *detector.Net) error
	// Watch is called after every step with its record (rec.Iter the
	// iteration, counted from 1; the total and every part, summed over the
	// ranks, so the same on each): a non-empty result is printed as a
	// warning line (by rank 0). It must not block.
	Watch func(rec Record) string
}

// Options configure Run.
type Options struct {
	// Config is the run's configuration (validated).
	Config *config.Config
	// OutDir is the run folder (created if needed).
	OutDir string
	// Resume is a checkpoint to resume from ("" starts afresh).
	Resume string
	// Pretrained is a path or http(s) URL of weights that initialise a fresh
	// run ("" uses train.pretrained; ignored on resume): our checkpoint (the
	// tensors that fit are loaded) or any format pkg/weights reads (every
	// part the file holds must be complete; a backbone alone is fine).
	Pretrained string
	// CacheDir holds downloaded pretrained checkpoints (checkpoint.DefaultCacheDir when "").
	CacheDir string
	// Name prefixes progress and log lines ("detect-train").
	Name string
	// Stderr receives progress and messages (io.Discard when nil).
	Stderr io.Writer
	// Bar draws a progress bar instead of plain lines (see UseBar).
	Bar bool
	// Open opens the batch source (OpenLoader when nil).
	Open OpenSource
	// Hooks extend the loop.
	Hooks Hooks
	// Tool is stored in checkpoints' Meta["tool"]; a checkpoint another
	// tool wrote is refused on resume (ToolError).
	Tool string
	// Recipe describes the run's distillation ("none" for detect-train), in
	// checkpoints' Meta["recipe"].
	Recipe string
	// Force lets a fresh run start in a run folder that holds an earlier
	// run's checkpoints (they are overwritten as this run reaches them);
	// without it (and without Resume) such a folder is refused.
	Force bool
	// Dist joins the ranks of a data-parallel run (see Run); nil is a
	// single process (dist.Single).
	Dist *dist.Comm
}

// Result summarises a finished (or interrupted) run.
type Result struct {
	// Iterations completed (train.max_iters after a complete run).
	Iterations int
	// Started is the iteration this process started from (the resumed
	// checkpoint's; 0 for a fresh run).
	Started int
	// Checkpoint is the last checkpoint written (model_final after a
	// complete run, the interruption checkpoint after one).
	Checkpoint string
	// Best is best_model's path and BestScore its eval score ("" and NaN
	// when no evaluation ran).
	Best      string
	BestScore float64
	// LastLoss is the total loss of the last iteration run in this process.
	LastLoss float64
	// Detector is the trained model (its state is the final checkpoint's).
	Detector *detector.Detector
	// Skipped are the training images skipped because they could not be
	// loaded, and EvalSkipped the evaluation images left out of scores.
	Skipped, EvalSkipped []dataset.Skip
}

// NonFiniteError is returned when a step's loss is NaN or infinite. The
// parameters are not updated by that step; LastCheckpoint (if any) is the
// last good state on disk.
type NonFiniteError struct {
	Iter           int     // the iteration, counted from 1 (the step that would have completed Iter iterations)
	Loss           float64 // the offending total
	Parts          string  // each loss part, for the message
	LastCheckpoint string  // "" when none was written
}

func (e *NonFiniteError) Error() string {
	last := "no checkpoint was written"
	if e.LastCheckpoint != "" {
		last = "the last good checkpoint is " + e.LastCheckpoint
	}
	return fmt.Sprintf("iteration %d: loss is %v (%s): training stopped; %s (lower train.base_lr?)", e.Iter, e.Loss, e.Parts, last)
}

// trainer is one run's state.
type trainer struct {
	opt     Options
	cfg     *config.Config
	log     func(format string, args ...any)
	det     *detector.Detector
	crit    *loss.Criterion
	rf      *runFolder // rank 0's run folder (nil on other ranks)
	sgd     *nn.SGD
	sched   Schedule
	evalSp  *dataset.Split
	gts     [][]loss.GT
	parts   loss.Parts
	lossErr error

	lastCkpt  string
	best      float64
	bestPath  string
	metricKey string

	comm       *dist.Comm // the job's ranks (dist.Single: one process)
	rank, size int
	flat       []float32 // the gradients, packed for summing over the ranks

	skips        *augment.SkipTally // training images skipped so far
	resumedSkips []dataset.Skip     // those a resumed checkpoint lists
	evalSkips    *augment.SkipTally // evaluation images skipped, each reported once
}

// skippedMeta is the checkpoint Meta key that lists the training images
// skipped so far (JSON: skippedImage), so that a resumed run counts on.
const skippedMeta = "skipped_images"

type skippedImage struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// Run trains the detector of opt.Config: builds the Detector with the YOLOv3
// loss attached to every training graph (plus opt.Hooks), SGD with momentum
// and L2 decay, the warmup + piecewise schedule; resumes from opt.Resume or
// loads opt.Pretrained; then iterates batches from the source, logging
// Records to OutDir/metrics.jsonl and progress to Stderr, checkpointing
// every train.snapshot_iter iterations (model_<iters>.ckpt, the last
// train.keep_last kept; evaluation and best_model.ckpt when data.eval_split
// is set), and at the end model_final.ckpt and loss.png.
//
// A checkpoint holds the weights (params), BatchNorm statistics (bn_stats),
// the SGD velocities (optimizer), the number of completed iterations, the
// data-order position of the next batch (every random choice of the loader is
// a function of train.seed and that position), the train.seed in
// State.RNG, the configuration's canonical YAML, and in Meta the run's rank
// count (world_size) and global batch (global_batch). Resuming from it
// continues bit for bit as the uninterrupted run (same build, BLAS kernel
// set and rank count, any GOMAXPROCS).
//
// A non-finite loss stops the run with a *NonFiniteError before the update.
// When ctx is cancelled, the state after the last completed iteration is saved
// as model_<iters>.ckpt and an error wrapping ctx.Err() is returned
// (errors.Is(err, context.Canceled)).
//
// With opt.Dist of several ranks (data parallel), every rank calls Run with
// the same options: rank r trains on its contiguous share of every global
// batch of train.batch_size images (opt.Open's augment.Shard), BatchNorm is
// synchronised over the ranks (nn.ParamSet.SetBatchSync), the gradients are
// summed in rank order, so every rank holds the same parameters; rank 0
// alone restores (and broadcasts the state), writes the run folder and
// reports on opt.Stderr. An interruption, a non-finite loss or an error on
// any rank stops every rank after the same iteration, rank 0 saving a
// checkpoint first (the last good one for a non-finite loss); the errors
// every rank returns together are marked dist.Agreed.
func Run(ctx context.Context, opt Options) (res *Result, err error) {
	if opt.Config == nil {
		return nil, errors.New("train: no configuration")
	}
	if opt.Stderr == nil {
		opt.Stderr = io.Discard
	}
	loader := opt.Open == nil // batches from the configuration's loader (its sizes are data.augment.multi_scale)
	if loader {
		opt.Open = OpenLoader
	}
	if opt.Name == "" {
		opt.Name = "train"
	}
	comm := opt.Dist
	if comm == nil {
		comm = dist.Single()
	}
	if comm.Rank() > 0 {
		opt.Stderr, opt.Bar = io.Discard, false // rank 0 reports
	}
	cfg := opt.Config
	t := &trainer{opt: opt, cfg: cfg, best: math.Inf(-1), comm: comm, rank: comm.Rank(), size: comm.Size()}
	t.log = func(format string, args ...any) {
		fmt.Fprintf(opt.Stderr, "%s: %s\n", opt.Name, fmt.Sprintf(format, args...))
	}
	t.metricKey = "map"
	if cfg.Eval.Metric == "coco" {
		t.metricKey = "ap"
	}
	// Before any work: the run folder, the resumed checkpoint's tool and
	// the memory the input sizes need. Only rank 0 writes the run folder;
	// with several ranks a failed check is agreed on in startRanks, so that
	// every rank stops.
	var rf *runFolder
	pre := func() error {
		if t.rank == 0 {
			var err error
			if rf, err = prepareRunFolder(opt); err != nil {
				return err
			}
		}
		if opt.Resume != "" && opt.Tool != "" {
			if err := CheckResume(opt.Resume, opt.Tool); err != nil {
				return err
			}
		}
		return checkMemory(opt.Config, loader)
	}()
	defer func() {
		if rf == nil {
			return
		}
		if err != nil {
			rf.failed(err, opt.Name, t.lastCkpt, t.log)
		} else {
			rf.succeeded()
		}
	}()
	t.rf = rf
	defer func() {
		if t.crit != nil {
			t.crit.Close()
		}
	}()
	if t.size > 1 {
		start, state, err := t.startRanks(ctx, pre)
		if err != nil {
			return nil, err
		}
		t.det.Params.SetBatchSync(comm)
		return t.loop(ctx, start, state)
	}
	if pre != nil {
		return nil, pre
	}
	if err := t.setup(ctx); err != nil {
		return nil, err
	}
	start, state, err := t.restore(ctx)
	if err != nil {
		return nil, err
	}
	rf.wrote = true
	if err := os.MkdirAll(opt.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("run folder: %w", err)
	}
	if err := writeConfig(filepath.Join(opt.OutDir, ConfigFile), cfg); err != nil {
		return nil, err
	}
	if cfg.Data.EvalSplit != "" {
		if t.evalSp, err = dataset.OpenSplit(cfg, cfg.Data.EvalSplit, dataset.SplitOptions{}); err != nil {
			return nil, err
		}
		if sum := t.evalSp.Problems.Summary(); sum != "" {
			t.log("warning: evaluation split %q: %s", cfg.Data.EvalSplit, sum)
		}
	}
	return t.loop(ctx, start, state)
}

// setup builds the detector, loss and solver.
func (t *trainer) setup(ctx context.Context) error {
	cfg := t.cfg
	det, err := detector.New(cfg)
	if err != nil {
		return err
	}
	t.det = det
	lc := loss.Config{
		Path:         loss.OperatorPath,
		Anchors:      det.Anchors,
		Masks:        det.Masks,
		Strides:      det.Spec.Strides,
		NumClasses:   det.Spec.NumClasses,
		IgnoreThresh: float32(cfg.Loss.IgnoreThresh),
		LabelSmooth:  cfg.Loss.LabelSmooth,
		SmoothCap:    loss.PaddleSmoothCap,
		ScaleXY:      float32(cfg.Loss.ScaleXY),
	}
	if cfg.Loss.UseFineGrainedLoss {
		lc.Path = loss.FineGrainedPath
	}
	if t.crit, err = loss.New(lc); err != nil {
		return err
	}
	det.OnBuild = t.attach
	if t.opt.Hooks.Init != nil {
		if err := t.opt.Hooks.Init(det); err != nil {
			return err
		}
	}
	t.sgd = nn.NewSGD(det.Params, float32(cfg.Train.Momentum), float32(cfg.Train.WeightDecay))
	t.sched = Schedule{
		BaseLR: cfg.Train.BaseLR, Milestones: cfg.Train.Milestones, Gamma: cfg.Train.Gamma,
		WarmupSteps: cfg.Train.WarmupSteps, WarmupStartFactor: cfg.Train.WarmupStartFactor,
	}
	return nil
}

// attach adds the detection loss (and the hooks' losses) to a training graph.
func (t *trainer) attach(b *nn.Builder, net *detector.Net) error {
	b.Loss("yolo", net.Built.Outputs, func(ins, grads [][]float32) float64 {
		p, err := t.crit.Forward(ins, net.Shapes, t.gts, net.H, net.W, grads)
		if err != nil {
			t.lossErr = err
			return math.NaN()
		}
		t.parts = p
		return p.Total
	})
	if err := b.Err(); err != nil {
		return err
	}
	if t.opt.Hooks.Attach != nil {
		return t.opt.Hooks.Attach(b, net)
	}
	return nil
}

// restore loads the resume checkpoint or the pretrained weights; it returns
// the number of completed iterations and the data-order state.
func (t *trainer) restore(ctx context.Context) (int, []byte, error) {
	cfg := t.cfg
	if t.opt.Resume != "" {
		c, err := checkpoint.Load(t.opt.Resume)
		if err != nil {
			return 0, nil, err
		}
		if err := t.det.LoadCheckpoint(c); err != nil {
			return 0, nil, err
		}
		if err := t.loadOptimizer(c); err != nil {
			return 0, nil, err
		}
		if !sameConfig(c.Config, cfg) {
			t.log("warning: %s was written with another configuration (%s); the resumed run will not repeat the original exactly",
				t.opt.Resume, firstDiff(c.Config, string(cfg.YAML())))
		}
		it := int(c.State.Iteration)
		if it < 0 || it > cfg.Train.MaxIters {
			return 0, nil, fmt.Errorf("%s: checkpoint is at iteration %d, outside 0..train.max_iters (%d)", t.opt.Resume, it, cfg.Train.MaxIters)
		}
		if err := t.restoreMeta(c, t.opt.Resume); err != nil {
			return 0, nil, err
		}
		t.lastCkpt = t.opt.Resume
		t.log("resumed from %s at iteration %d", t.opt.Resume, it)
		if ws := cmp.Or(c.Meta[worldSizeMeta], "1"); ws != strconv.Itoa(t.size) && it < cfg.Train.MaxIters {
			t.log("%s was written by a run over %s rank(s), this one has %d: the same training (the global batch is train.batch_size, %d), "+
				"rounded differently (the ranks' sums add in another order): the run will not repeat the original bit for bit",
				t.opt.Resume, ws, t.size, cfg.Train.BatchSize)
		}
		return it, c.State.DataOrder, nil
	}
	src := t.opt.Pretrained
	if src == "" {
		src = cfg.Train.Pretrained
	}
	if src != "" {
		f, err := weights.Open(ctx, src, t.opt.CacheDir)
		if err != nil {
			return 0, nil, fmt.Errorf("pretrained weights: %w", err)
		}
		if f.Checkpoint == nil {
			return 0, nil, t.loadForeign(src, f)
		}
		c := f.Checkpoint
		if c.Path == "" || checkpoint.IsURL(src) {
			c.Path = src
		}
		miss, err := t.det.LoadPretrained(c)
		if err != nil {
			return 0, nil, fmt.Errorf("pretrained weights: %w", err)
		}
		var missing, unexpected []string
		for _, m := range miss {
			if m.Kind == checkpoint.Missing {
				missing = append(missing, m.Name)
			} else {
				unexpected = append(unexpected, m.Name)
			}
		}
		n := len(t.det.Tensors()) - len(missing)
		t.log("pretrained %s: loaded %d tensors", src, n)
		if len(missing) > 0 {
			t.log("pretrained %s: %d model tensors not in the checkpoint keep their initial values: %s", src, len(missing), listNames(missing))
		}
		if len(unexpected) > 0 {
			t.log("pretrained %s: %d checkpoint tensors not in the model were skipped: %s", src, len(unexpected), listNames(unexpected))
		}
	}
	return 0, nil, nil
}

// loadForeign loads pretrained weights of another framework (pkg/weights):
// every part of the model the file holds must be complete (a backbone alone
// is fine; the head then keeps its initialiser).
func (t *trainer) loadForeign(src string, f *weights.File) error {
	m, err := t.det.Map(f)
	if err != nil {
		return fmt.Errorf("pretrained weights: %w", err)
	}
	if err := m.Parts(); err != nil {
		return fmt.Errorf("pretrained weights: %w", err)
	}
	if _, err := t.det.LoadPretrained(m.Checkpoint()); err != nil {
		return fmt.Errorf("pretrained weights: %w", err)
	}
	t.log("pretrained %s: loaded %d tensors: %s", src, len(m.Found), m.Summary())
	for _, part := range []string{weights.PartBackbone, weights.PartHead} {
		if !m.Touches(part) {
			_, n := m.Covers(part)
			t.log("pretrained %s: the file holds no %s: its %d tensors keep their initial values", src, part, n)
		}
	}
	return nil
}

func listNames(names []string) string {
	const shown = 8
	if len(names) <= shown {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:shown], ", ") + fmt.Sprintf(", ... (%d more)", len(names)-shown)
}

// firstDiff describes the first differing line of two YAML texts.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(la), len(lb)); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: checkpoint %q, now %q", i+1, strings.TrimSpace(x), strings.TrimSpace(y))
		}
	}
	return "no difference"
}

func (t *trainer) loadOptimizer(c *checkpoint.Checkpoint) error {
	vel := t.sgd.State()
	targets := make([]checkpoint.Target, len(vel))
	for i, v := range vel {
		targets[i] = checkpoint.Target{Section: checkpoint.SectionOptimizer, Name: v.Name, Shape: v.Shape, Dst: v.Data}
	}
	_, err := c.LoadInto(targets, true)
	return err
}

// snapshot builds the checkpoint of the current state after iters iterations.
func (t *trainer) snapshot(iters int, dataState []byte) *checkpoint.Checkpoint {
	c := t.det.ToCheckpoint()
	for _, v := range t.sgd.State() {
		// names are unique and lengths match: Add cannot fail
		if err := c.Add(checkpoint.SectionOptimizer, v.Name, v.Shape, slices.Clone(v.Data)); err != nil {
			panic(err)
		}
	}
	seed := binary.LittleEndian.AppendUint64(nil, uint64(t.cfg.Train.Seed))
	c.State = checkpoint.State{
		Iteration: int64(iters),
		// Every random choice of the run derives from train.seed: parameter
		// initialisation (per parameter name) and the loader (per position).
		RNG:       map[string][]byte{"init": seed, "data": seed},
		DataOrder: slices.Clone(dataState),
	}
	if t.opt.Tool != "" {
		c.Meta["tool"] = t.opt.Tool
	}
	if t.opt.Recipe != "" {
		c.Meta["recipe"] = t.opt.Recipe
	}
	if !math.IsInf(t.best, -1) {
		c.Meta["best_score"] = strconv.FormatFloat(t.best, 'g', -1, 64)
	}
	c.Meta["metric"] = t.cfg.Eval.Metric
	c.Meta[worldSizeMeta] = strconv.Itoa(t.size)
	c.Meta[globalBatchMeta] = strconv.Itoa(t.cfg.Train.BatchSize)
	if t.skips != nil && t.skips.Count() > 0 {
		list := make([]skippedImage, 0, t.skips.Count())
		for _, s := range t.skips.Skips() {
			list = append(list, skippedImage{Index: s.Index, Error: s.Err.Error()})
		}
		js, _ := json.Marshal(list) // plain structs: cannot fail
		c.Meta[skippedMeta] = string(js)
	}
	return c
}

// save writes a checkpoint atomically.
func (t *trainer) save(path string, iters int, dataState []byte) error {
	if err := checkpoint.Save(path, t.snapshot(iters, dataState)); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	return nil
}

// prune removes the periodic checkpoints of iterations <= done beyond the
// last train.keep_last. Later ones (left by an earlier run in the same
// folder) are not touched: this run overwrites them when it gets there.
func (t *trainer) prune(done int) {
	ents, err := os.ReadDir(t.opt.OutDir)
	if err != nil {
		return
	}
	var iters []int
	for _, e := range ents {
		if m := snapshotRE.FindStringSubmatch(e.Name()); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && n <= done {
				iters = append(iters, n)
			}
		}
	}
	sort.Ints(iters)
	keep := t.cfg.Train.KeepLast
	for len(iters) > keep {
		os.Remove(SnapshotPath(t.opt.OutDir, iters[0]))
		iters = iters[1:]
	}
}

// evaluate scores the current model on the eval split.
// Images that cannot be loaded are left out of the score (see
// detector.DetectSplit) and reported once per run.
func (t *trainer) evaluate(ctx context.Context) (float64, error) {
	r, err := detector.Evaluate(ctx, t.det, t.evalSp, detector.EvalOptions{})
	if err != nil {
		return 0, err
	}
	for _, s := range t.evalSkips.Add(r.Skipped) {
		t.log("warning: evaluation split %q: skipping an image that cannot be loaded: %v", t.evalSp.Name, s.Err)
	}
	return r.Score, nil
}

func (t *trainer) loop(ctx context.Context, start int, state []byte) (*Result, error) {
	cfg, opt := t.cfg, t.opt
	lead, several := t.rank == 0, t.size > 1
	maxIters := cfg.Train.MaxIters
	res := &Result{Iterations: start, Started: start, BestScore: math.NaN(), Detector: t.det}
	// pending is rank 0's failure to write (several ranks): every rank learns
	// it at the next agreement point and stops there.
	var pending error
	var metrics *MetricsLog
	if lead {
		m, err := OpenMetrics(filepath.Join(opt.OutDir, MetricsFile), start)
		if err != nil {
			if !several {
				return nil, err
			}
			pending = err
		} else {
			metrics = m
			defer metrics.Close()
		}
	}
	writeRec := func(r Record) error {
		if metrics == nil {
			return nil
		}
		if err := metrics.Write(r); err != nil {
			return fmt.Errorf("%s: %w", MetricsFile, err)
		}
		return nil
	}

	var src Source
	if start < maxIters {
		var err error
		src, err = opt.Open(ctx, cfg, state, t.shard())
		if several {
			a, aerr := t.agree("opening the training data", statusOf(ctx, errors.Join(pending, err)))
			if aerr == nil && a.code != codeOK {
				aerr = t.stopErr(a, errors.Join(pending, err))
			}
			if aerr != nil {
				if src != nil {
					src.Close()
				}
				return nil, aerr
			}
		} else if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		defer func() { src.Close() }()
		if ps, ok := src.(interface{ Problems() dataset.Problems }); ok {
			if sum := ps.Problems().Summary(); sum != "" {
				t.log("warning: training split %q: %s", cfg.Data.TrainSplit, sum)
			}
		}
		state = src.State()
		t.skips = detector.SkipTally(cfg, src.Images())
		t.skips.Add(t.resumedSkips)
	}
	if t.evalSp != nil {
		t.evalSkips = detector.SkipTally(cfg, t.evalSp.Source.Len())
	}
	prog := Progress{W: opt.Stderr, Name: opt.Name, Total: maxIters, Bar: opt.Bar, Every: cfg.Train.LogIter}
	prog.Start(start)
	newline := func() {
		if opt.Bar {
			fmt.Fprintln(opt.Stderr)
		}
	}
	// interrupted saves the state after done iterations (rank 0; the ranks
	// agree that it is saved) and returns the interruption error.
	interrupted := func(done int, cause error) (*Result, error) {
		newline()
		p := SnapshotPath(opt.OutDir, done)
		if err := t.saveAll(p, done, state); err != nil {
			return nil, errors.Join(cause, err)
		}
		t.log("interrupted after %d iterations; saved %s (resume with -r %s)", done, p, p)
		res.Iterations, res.Checkpoint = done, p
		return res, t.agreed(fmt.Errorf("training interrupted: %w", cause))
	}
	// failed (several ranks) stops every rank after done iterations on a
	// rank's error, with a checkpoint of that state.
	failed := func(done int, a agreement, local error) (*Result, error) {
		newline()
		err := t.stopErr(a, local)
		p := SnapshotPath(opt.OutDir, done)
		if serr := t.saveAll(p, done, state); serr != nil {
			return nil, errors.Join(err, serr)
		}
		return nil, fmt.Errorf("%w; every rank stopped after %d iterations, and rank 0 saved %s (resume with -r %s)", err, done, p, p)
	}
	// agreeAt is an agreement point inside the loop (several ranks): it
	// returns done=true with what to return when some rank stops or fails.
	agreeAt := func(what string, done int, local error) (stop bool, r *Result, err error) {
		a, err := t.agree(what, statusOf(ctx, local))
		switch {
		case err != nil:
			return true, nil, err
		case a.code == codeStop:
			r, err = interrupted(done, t.stopErr(a, local))
			return true, r, err
		case a.code == codeErr:
			r, err = failed(done, a, local)
			return true, r, err
		}
		return false, nil, nil
	}

	logStart, logImages := time.Now(), 0
	busyStart, _ := t.comm.Busy()
	for it := start; it < maxIters; it++ {
		// The batch (this rank's share of it).
		var batch *augment.Batch
		err := ctx.Err()
		if err == nil {
			batch, err = src.Next(ctx)
		}
		if several {
			st := statusOf(ctx, errors.Join(pending, err))
			if batch != nil {
				st.Skips = toSkipped(batch.Skipped)
			}
			a, aerr := t.agree("the batch", st)
			switch {
			case aerr != nil:
				return nil, aerr
			case a.code == codeStop:
				return interrupted(it, t.stopErr(a, err))
			case a.code == codeErr:
				return failed(it, a, errors.Join(pending, err))
			}
			batch.Skipped = a.skips // every rank's, in rank (slot) order
		} else if err != nil {
			if ctx.Err() != nil {
				return interrupted(it, ctx.Err())
			}
			return nil, err
		}
		for _, s := range t.skips.Add(batch.Skipped) {
			newline()
			t.log("warning: skipping a training image that cannot be loaded (another image fills its place in the batch): %v", s.Err)
		}
		if err := t.skips.Err(); err != nil {
			// state is still this batch's position: the saved run starts with it.
			p := SnapshotPath(opt.OutDir, it)
			if serr := t.saveAll(p, it, state); serr != nil {
				return nil, errors.Join(err, serr)
			}
			return nil, t.agreed(fmt.Errorf("training split %q: %w; stopped after %d iterations and saved %s (resume with -r %s)",
				cfg.Data.TrainSplit, err, it, p, p))
		}

		// The step's graph, input, targets and the hooks' data.
		n := len(batch.Items)
		total := batch.Total
		if total == 0 {
			total = n
		}
		net, err := t.det.Net(n, batch.Size, batch.Size, true)
		if err == nil {
			err = net.Graph.SetBatchShare(n, total)
		}
		if err == nil {
			err = net.Graph.SetInput(batch.Images)
		}
		if !several && err != nil {
			return nil, err
		}
		if err == nil {
			t.setTargets(batch)
			if opt.Hooks.Prepare != nil {
				if perr := opt.Hooks.Prepare(ctx, it, batch, net); perr != nil {
					if !several && ctx.Err() != nil && errors.Is(perr, ctx.Err()) {
						return interrupted(it, perr)
					}
					err = fmt.Errorf("iteration %d: %w", it+1, perr)
					if !several {
						return nil, err
					}
				}
			}
		}
		if several {
			if stop, r, err := agreeAt("preparing the step", it, err); stop {
				return r, err
			}
		}

		// The step, and its losses over every rank.
		t.lossErr = nil
		vals, err := net.Graph.Step()
		if err != nil {
			err = fmt.Errorf("iteration %d: %w", it+1, err)
		} else if t.lossErr != nil {
			err = fmt.Errorf("iteration %d: loss: %w", it+1, t.lossErr)
		}
		if !several && err != nil {
			return nil, err
		}
		names := net.Graph.LossNames()
		parts := [4]float64{t.parts.XY, t.parts.WH, t.parts.Obj, t.parts.Cls}
		if several {
			sum, sparts, anyFailed, cerr := t.sumLosses(len(names), vals, parts, n, total, err)
			if cerr != nil {
				return nil, cerr
			}
			if anyFailed {
				// The step's forward pass has moved the BatchNorm running
				// statistics: the last good state is the last checkpoint.
				a, aerr := t.agree("a failed step", statusOf(context.Background(), err))
				if aerr != nil {
					return nil, aerr
				}
				last := "no checkpoint was written"
				if t.lastCkpt != "" {
					last = "the last good checkpoint is " + t.lastCkpt
				}
				newline()
				return nil, fmt.Errorf("%w; every rank stopped at iteration %d; %s", t.stopErr(a, err), it+1, last)
			}
			vals, parts = sum, sparts
		}
		rec := Record{Iter: it + 1, LR: t.sched.At(it), Parts: map[string]float64{
			"xy": parts[0], "wh": parts[1], "obj": parts[2], "cls": parts[3]}, Skipped: t.skips.Count()}
		total64 := 0.0
		for i, name := range names {
			total64 += vals[i]
			if i > 0 {
				rec.Parts[name] = vals[i]
			}
		}
		rec.Loss = total64
		if math.IsNaN(total64) || math.IsInf(total64, 0) {
			newline()
			return nil, t.agreed(&NonFiniteError{Iter: it + 1, Loss: total64, Parts: partsString(rec.Parts), LastCheckpoint: t.lastCkpt})
		}
		if several {
			if err := t.sumGrads(); err != nil {
				return nil, err
			}
		}
		t.sgd.Step(float32(rec.LR))
		state = src.State()
		done := it + 1
		res.LastLoss = total64

		logImages += total
		el := time.Since(logStart).Seconds()
		ips := 0.0
		if el > 0 {
			ips = float64(logImages) / el
		}
		rec.ImagesPerS = ips
		if several && el > 0 {
			busy, _ := t.comm.Busy()
			rec.CollectiveShare = (busy - busyStart).Seconds() / el
		}
		prog.Update(done, total64, ips)
		if opt.Hooks.Watch != nil {
			if w := opt.Hooks.Watch(rec); w != "" {
				newline()
				t.log("warning: %s", w)
			}
		}

		snap := done%cfg.Train.SnapshotIter == 0 && done < maxIters
		if snap && t.evalSp != nil {
			score, err := t.evaluate(ctx)
			if several {
				if err != nil {
					err = fmt.Errorf("evaluation after %d iterations: %w", done, err)
				}
				if stop, r, err := agreeAt("the evaluation", done, err); stop {
					return r, err
				}
			} else if err != nil {
				if ctx.Err() != nil {
					return interrupted(done, ctx.Err())
				}
				// Keep the training done so far.
				p := SnapshotPath(opt.OutDir, done)
				if serr := t.save(p, done, state); serr != nil {
					return nil, errors.Join(fmt.Errorf("evaluation after %d iterations: %w", done, err), serr)
				}
				return nil, fmt.Errorf("evaluation after %d iterations: %w (the training state is saved in %s: resume with -r %s)", done, err, p, p)
			}
			rec.Eval = map[string]float64{t.metricKey: score}
			newline()
			t.log("evaluation after %d iterations: %s %.4f", done, t.metricKey, score)
			if err := t.maybeBest(score, done, state); err != nil {
				if !several {
					return nil, err
				}
				pending = errors.Join(pending, err)
			}
		}
		if done%cfg.Train.LogIter == 0 || rec.Eval != nil || done == maxIters {
			if err := writeRec(rec); err != nil {
				if !several {
					return nil, err
				}
				pending = errors.Join(pending, err)
			}
			logStart, logImages = time.Now(), 0
			busyStart, _ = t.comm.Busy()
		}
		if snap {
			p := SnapshotPath(opt.OutDir, done)
			if lead {
				if err := t.save(p, done, state); err != nil {
					if !several {
						return nil, err
					}
					pending = errors.Join(pending, err)
				}
				t.prune(done)
			}
			t.lastCkpt = p
		}
	}

	// The end: model_final first (an evaluation failure must not discard
	// the training), then the evaluation, best_model and the loss plot.
	final := filepath.Join(opt.OutDir, FinalFile)
	if err := t.saveAll(final, maxIters, state); err != nil {
		return nil, err
	}
	t.lastCkpt = final
	res.Iterations, res.Checkpoint = maxIters, final
	if t.skips != nil {
		res.Skipped = t.skips.Skips()
	}
	if maxIters == 0 {
		// No step: model_final is the initialised (or pretrained) model, the
		// way to turn foreign weights into a checkpoint. Nothing to evaluate
		// or plot.
		t.log("train.max_iters is 0: saved the initialised model as %s", final)
		return res, metrics.Close()
	}
	if t.evalSp != nil {
		score, err := t.evaluate(ctx)
		if several {
			a, aerr := t.agree("the final evaluation", statusOf(ctx, err))
			if aerr != nil {
				return res, aerr
			}
			if a.code != codeOK {
				err = t.stopErr(a, err)
			}
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				t.log("interrupted in the final evaluation; the trained model is saved in %s", final)
				return res, t.agreed(fmt.Errorf("final evaluation: %w", cmp.Or(ctx.Err(), context.Canceled)))
			}
			return res, t.agreed(fmt.Errorf("final evaluation: %w (the trained model is saved in %s)", err, final))
		}
		t.log("evaluation after %d iterations: %s %.4f", maxIters, t.metricKey, score)
		if err := writeRec(Record{Iter: maxIters, LR: t.sched.At(maxIters - 1), Eval: map[string]float64{t.metricKey: score}}); err != nil {
			if !several {
				return nil, err
			}
			pending = errors.Join(pending, err)
		}
		if err := t.maybeBest(score, maxIters, state); err != nil {
			if !several {
				return nil, err
			}
			pending = errors.Join(pending, err)
		}
	}
	if t.evalSkips != nil {
		res.EvalSkipped = t.evalSkips.Skips()
	}
	if t.bestPath != "" {
		res.Best, res.BestScore = t.bestPath, t.best
	}
	if metrics != nil {
		if err := metrics.Close(); err != nil {
			if !several {
				return nil, err
			}
			pending = errors.Join(pending, err)
		}
		if err := t.plot(); err != nil {
			t.log("warning: loss plot: %v", err)
		}
	}
	if several {
		// The last agreement: rank 0 has written everything.
		a, err := t.agree("the end", statusOf(context.Background(), pending))
		if err == nil && a.code != codeOK {
			err = t.stopErr(a, pending)
		}
		if err != nil {
			return nil, err
		}
	}
	t.log("saved %s", final)
	return res, nil
}

// agreed marks err as returned by every rank together (several ranks).
func (t *trainer) agreed(err error) error {
	if t.size == 1 {
		return err
	}
	return dist.Agreed(err)
}

// saveAll writes the checkpoint of the state after iters iterations on rank
// 0; with several ranks, they agree that it was written (an error on rank 0
// is every rank's).
func (t *trainer) saveAll(path string, iters int, state []byte) error {
	var err error
	if t.rank == 0 {
		err = t.save(path, iters, state)
	}
	if t.size == 1 {
		return err
	}
	a, aerr := t.agree("saving "+filepath.Base(path), statusOf(context.Background(), err))
	if aerr != nil {
		return aerr
	}
	if a.code != codeOK {
		return t.stopErr(a, err)
	}
	return nil
}

// sumLosses adds the step's m losses and the four loss parts over the ranks
// (this rank's share of the global batch weighs n/total: its losses are
// means over its own images), with a flag for a failed step (local, this
// rank's failure): failed reports that some rank's step failed.
func (t *trainer) sumLosses(m int, vals []float64, parts [4]float64, n, total int, local error) (sum []float64, sparts [4]float64, failed bool, err error) {
	buf := make([]float64, m+5)
	if local == nil {
		copy(buf, vals)
		share := float64(n) / float64(total)
		for i, p := range parts {
			buf[m+i] = p * share
		}
	} else {
		buf[m+4] = 1
	}
	if err := t.comm.SumFloat64("losses", buf); err != nil {
		return nil, parts, false, err
	}
	if buf[m+4] > 0 {
		return nil, parts, true, nil
	}
	return buf[:m], [4]float64{buf[m], buf[m+1], buf[m+2], buf[m+3]}, false, nil
}

// maybeBest saves best_model when score beats the best so far.
func (t *trainer) maybeBest(score float64, iters int, state []byte) error {
	if !(score > t.best) {
		return nil
	}
	t.best = score
	t.bestPath = filepath.Join(t.opt.OutDir, BestFile)
	if t.rank != 0 {
		return nil // rank 0 writes
	}
	c := t.snapshot(iters, state)
	c.Meta["best_iteration"] = strconv.Itoa(iters)
	if err := checkpoint.Save(t.bestPath, c); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	return nil
}

func (t *trainer) plot() error {
	f, err := os.Open(filepath.Join(t.opt.OutDir, MetricsFile))
	if err != nil {
		return err
	}
	defer f.Close()
	recs, err := ReadMetrics(f)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	title := fmt.Sprintf("%s: %s YOLOv3, %d iterations", filepath.Base(t.opt.OutDir), t.cfg.Model.Backbone, t.cfg.Train.MaxIters)
	return PlotLosses(recs, title, filepath.Join(t.opt.OutDir, LossPlotFile))
}

// setTargets converts the batch's boxes to the loss's normalised GTs:
// centre and size divided by the input size, at most data.augment.max_boxes
// per image (PaddleDetection's PadBox), score = mixup weight.
func (t *trainer) setTargets(b *augment.Batch) {
	n := len(b.Items)
	if cap(t.gts) < n {
		t.gts = make([][]loss.GT, n)
	}
	t.gts = t.gts[:n]
	maxBoxes := t.cfg.Data.Augment.MaxBoxes
	for i, item := range b.Items {
		g := t.gts[i][:0]
		for j, tg := range item.Targets {
			if maxBoxes > 0 && j == maxBoxes {
				break
			}
			v := tg.NormCXCYWH(b.Size)
			g = append(g, loss.GT{CX: v[0], CY: v[1], W: v[2], H: v[3], Label: tg.Label, Score: float32(tg.Score)})
		}
		t.gts[i] = g
	}
}

func partsString(p map[string]float64) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%.6g", k, p[k])
	}
	return b.String()
}

func writeConfig(path string, cfg *config.Config) error {
	return atomicfile.WriteBytes(path, cfg.YAML())
}

// Summary writes the end of a finished run: the best evaluated model (when
// there was an evaluation), the iterations, the final loss and the run folder,
// then the images the run skipped because they could not be loaded.
func Summary(printf func(format string, args ...any), res *Result, cfg *config.Config, outDir string) {
	if res.Best != "" {
		printf("best %s %.4f: %s", cfg.Eval.Metric, res.BestScore, res.Best)
	}
	if res.Iterations == res.Started && res.Iterations > 0 {
		printf("done: %d iterations, all before this run (resumed at the end: nothing trained), run folder %s", res.Iterations, outDir)
	} else {
		printf("done: %d iterations, final loss %.4f, run folder %s", res.Iterations, res.LastLoss, outDir)
	}
	if n := len(res.Skipped); n > 0 {
		printf("warning: %d training image(s) could not be loaded and were skipped (metrics.jsonl skipped_images); the first: %v", n, res.Skipped[0].Err)
	}
	if n := len(res.EvalSkipped); n > 0 {
		printf("warning: %d evaluation image(s) could not be loaded and were left out of the scores; the first: %v", n, res.EvalSkipped[0].Err)
	}
}
