package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/nn"
)

// tinyOverrides shrink the synthetic-set student preset to a CPU test size.
var tinyOverrides = []string{
	"model.head_width=0.125",
	"data.synth.num_images=40",
	"data.synth.image_size=64",
	"data.augment.multi_scale=[64]",
	"data.workers=1",
	"eval.size=64",
	"train.batch_size=2",
	"train.warmup_steps=0",
	"train.log_iter=1",
	`data.eval_split=""`,
}

func tinyConfig(t *testing.T, extra ...string) *config.Config {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "..", "pipelines", "configs", "synth_student.yml"), append(append([]string(nil), tinyOverrides...), extra...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// fixedSource returns the same batch forever.
type fixedSource struct{ b *augment.Batch }

func (s fixedSource) Next(ctx context.Context) (*augment.Batch, error) { return s.b, ctx.Err() }
func (s fixedSource) State() []byte                                    { return nil }
func (s fixedSource) Images() int                                      { return len(s.b.Items) }
func (s fixedSource) Close()                                           {}

// fixedBatch is the first two training images of the synthetic set at 64 px,
// without augmentation.
func fixedBatch(t *testing.T, cfg *config.Config) *augment.Batch {
	t.Helper()
	sp, err := dataset.OpenSplit(cfg, cfg.Data.TrainSplit, dataset.SplitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const size = 64
	aug := augment.FromConfig(cfg)
	b := &augment.Batch{Size: size, Images: make([]float32, 2*3*size*size)}
	for i := 0; i < 2; i++ {
		img, tg, err := sp.Source.Load(i)
		if err != nil {
			t.Fatal(err)
		}
		rec := augment.EvalRecord(int64(i), size, augment.InterpLinear)
		v, err := aug.Apply(&rec, img, tg, nil, nil, b.Images[i*3*size*size:(i+1)*3*size*size])
		if err != nil {
			t.Fatal(err)
		}
		b.Items = append(b.Items, augment.BatchItem{Index: i, Record: rec, Targets: v.Targets})
	}
	return b
}

func readRecords(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := ReadMetrics(f)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestLossFallsOnFixedBatch: 30 SGD steps on one fixed batch must fit it.
func TestLossFallsOnFixedBatch(t *testing.T) {
	cfg := tinyConfig(t, "train.max_iters=30", "train.snapshot_iter=100", "train.base_lr=0.002")
	b := fixedBatch(t, cfg)
	dir := t.TempDir()
	res, err := Run(context.Background(), Options{
		Config: cfg, OutDir: dir,
		Open: func(context.Context, *config.Config, []byte, augment.Shard) (Source, error) {
			return fixedSource{b}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, filepath.Join(dir, MetricsFile))
	if len(recs) != 30 {
		t.Fatalf("%d records, want 30", len(recs))
	}
	for i, r := range recs {
		if r.Iter != i+1 {
			t.Fatalf("record %d has iter %d, want %d (iterations count from 1)", i, r.Iter, i+1)
		}
	}
	mean := func(rs []Record) float64 {
		s := 0.0
		for _, r := range rs {
			s += r.Loss
		}
		return s / float64(len(rs))
	}
	first, last := mean(recs[:3]), mean(recs[len(recs)-3:])
	t.Logf("loss: first 3 mean %.3f, last 3 mean %.3f", first, last)
	if !(last < 0.5*first) {
		t.Errorf("loss did not halve on a fixed batch: first %.3f, last %.3f", first, last)
	}
	if res.Iterations != 30 || res.Checkpoint != filepath.Join(dir, FinalFile) {
		t.Errorf("result %+v", res)
	}
	c, err := checkpoint.Load(res.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Iteration != 30 || c.NumParams(checkpoint.SectionOptimizer) != c.NumParams(checkpoint.SectionParams) ||
		c.NumParams(checkpoint.SectionBNStats) == 0 || !strings.Contains(c.Config, "max_iters: 30") {
		t.Errorf("final checkpoint: iteration %d, %d optimizer values for %d params, %d bn stats",
			c.State.Iteration, c.NumParams(checkpoint.SectionOptimizer), c.NumParams(checkpoint.SectionParams), c.NumParams(checkpoint.SectionBNStats))
	}
	if _, err := os.Stat(filepath.Join(dir, LossPlotFile)); err != nil {
		t.Errorf("no loss plot: %v", err)
	}
}

// TestHooksAndCancel: an extra loss attached by a hook is logged and added to
// the total; cancelling during Prepare saves the state before that iteration.
func TestHooksAndCancel(t *testing.T) {
	cfg := tinyConfig(t, "train.max_iters=10", "train.snapshot_iter=100")
	b := fixedBatch(t, cfg)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var prepared []int
	_, err := Run(ctx, Options{
		Config: cfg, OutDir: dir,
		Open: func(context.Context, *config.Config, []byte, augment.Shard) (Source, error) {
			return fixedSource{b}, nil
		},
		Hooks: Hooks{
			Init: func(d *detector.Detector) error {
				// the adapter's parameters exist before any checkpoint is read
				c := d.Spec.AnchorsPerScale[0] * (5 + d.Spec.NumClasses)
				bd := nn.NewBuilder(d.Params, []int{1, c, 1, 1})
				bd.Conv("distill.adapter", bd.Input(), nn.ConvSpec{Out: 4, K: 1}, false)
				return bd.Err()
			},
			Attach: func(bd *nn.Builder, net *detector.Net) error {
				a := bd.Conv("distill.adapter", net.Built.Outputs[0], nn.ConvSpec{Out: 4, K: 1}, false)
				bd.Loss("extra", []*nn.Tensor{a}, func(ins, grads [][]float32) float64 { return 1.5 })
				return bd.Err()
			},
			Prepare: func(ctx context.Context, it int, _ *augment.Batch, _ *detector.Net) error {
				prepared = append(prepared, it)
				if it == 3 {
					cancel()
					return ctx.Err()
				}
				return nil
			},
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	c, err := checkpoint.Load(SnapshotPath(dir, 3))
	if err != nil {
		t.Fatalf("no interruption checkpoint: %v", err)
	}
	if c.State.Iteration != 3 {
		t.Errorf("interruption checkpoint at iteration %d, want 3", c.State.Iteration)
	}
	if c.Tensor(checkpoint.SectionParams, "distill.adapter.weight") == nil || c.Tensor(checkpoint.SectionOptimizer, "distill.adapter.weight") == nil {
		t.Error("the hook's adapter is not in the checkpoint")
	}
	recs := readRecords(t, filepath.Join(dir, MetricsFile))
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	for _, r := range recs {
		sum := r.Parts["xy"] + r.Parts["wh"] + r.Parts["obj"] + r.Parts["cls"] + r.Parts["extra"]
		if r.Parts["extra"] != 1.5 || math.Abs(sum-r.Loss) > 1e-9*r.Loss {
			t.Errorf("iter %d: parts %v do not add up to %g with extra 1.5", r.Iter, r.Parts, r.Loss)
		}
	}
}

// TestNonFiniteLossStops: a hook that poisons the loss at iteration 3 stops
// the run with an error naming it and the last checkpoint, which stays valid.
func TestNonFiniteLossStops(t *testing.T) {
	cfg := tinyConfig(t, "train.max_iters=10", "train.snapshot_iter=1", "train.keep_last=1")
	b := fixedBatch(t, cfg)
	dir := t.TempDir()
	poison := false
	_, err := Run(context.Background(), Options{
		Config: cfg, OutDir: dir,
		Open: func(context.Context, *config.Config, []byte, augment.Shard) (Source, error) {
			return fixedSource{b}, nil
		},
		Hooks: Hooks{
			Attach: func(bd *nn.Builder, net *detector.Net) error {
				bd.Loss("poison", net.Built.Outputs[:1], func(ins, grads [][]float32) float64 {
					if poison {
						return math.NaN()
					}
					return 0
				})
				return bd.Err()
			},
			Prepare: func(_ context.Context, it int, _ *augment.Batch, _ *detector.Net) error {
				poison = it == 2
				return nil
			},
		},
	})
	var nf *NonFiniteError
	if !errors.As(err, &nf) {
		t.Fatalf("error %v, want *NonFiniteError", err)
	}
	// The third step (iteration 3, after 2 completed ones) is poisoned; the
	// last good state is model_2.ckpt.
	want := SnapshotPath(dir, 2)
	if nf.Iter != 3 || nf.LastCheckpoint != want || !strings.Contains(err.Error(), "iteration 3:") || !strings.Contains(err.Error(), want) {
		t.Errorf("error %q (iter %d, last %q), want iteration 3 and %s", err, nf.Iter, nf.LastCheckpoint, want)
	}
	c, err := checkpoint.Load(want)
	if err != nil || c.State.Iteration != 2 {
		t.Fatalf("last good checkpoint: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FinalFile)); err == nil {
		t.Error("model_final written after a non-finite loss")
	}
}

// TestKeepLast: periodic checkpoints beyond train.keep_last are removed, the
// newest kept; a later-numbered file of an earlier run (started over with
// Force) is left alone.
func TestKeepLast(t *testing.T) {
	cfg := tinyConfig(t, "train.max_iters=5", "train.snapshot_iter=1", "train.keep_last=2")
	b := fixedBatch(t, cfg)
	dir := t.TempDir()
	stale := SnapshotPath(dir, 100)
	if err := os.WriteFile(stale, []byte("old run"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Options{
		Config: cfg, OutDir: dir, Force: true,
		Open: func(context.Context, *config.Config, []byte, augment.Shard) (Source, error) {
			return fixedSource{b}, nil
		},
	}); err != nil {
		t.Fatal(err)
	}
	for it, want := range map[int]bool{1: false, 2: false, 3: true, 4: true, 100: true} {
		_, err := os.Stat(SnapshotPath(dir, it))
		if got := err == nil; got != want {
			t.Errorf("model_%d.ckpt exists: %v, want %v", it, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, FinalFile)); err != nil {
		t.Error(err)
	}
}

// TestWatchWarns: Hooks.Watch sees every step's record (iterations from 1,
// the parts summing to the total) and what it returns is printed as one
// warning line, after the progress line of its iteration.
func TestWatchWarns(t *testing.T) {
	cfg := tinyConfig(t, "train.max_iters=3", "train.snapshot_iter=100")
	b := fixedBatch(t, cfg)
	var seen []int
	var log strings.Builder
	_, err := Run(context.Background(), Options{
		Config: cfg, OutDir: t.TempDir(), Stderr: &log, Name: "test",
		Open: func(context.Context, *config.Config, []byte, augment.Shard) (Source, error) {
			return fixedSource{b}, nil
		},
		Hooks: Hooks{Watch: func(rec Record) string {
			seen = append(seen, rec.Iter)
			sum := rec.Parts["xy"] + rec.Parts["wh"] + rec.Parts["obj"] + rec.Parts["cls"]
			if math.Abs(sum-rec.Loss) > 1e-9*rec.Loss || rec.Loss == 0 {
				t.Errorf("iteration %d: parts %v, total %g", rec.Iter, rec.Parts, rec.Loss)
			}
			if rec.Iter == 2 {
				return "runaway at 2"
			}
			return ""
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 || seen[0] != 1 || seen[2] != 3 {
		t.Errorf("Watch saw iterations %v, want [1 2 3]", seen)
	}
	out := log.String()
	if strings.Count(out, "warning") != 1 || !strings.Contains(out, "test: iter 2/3 ") ||
		!strings.Contains(out, "test: warning: runaway at 2\n") ||
		strings.Index(out, "test: iter 2/3 ") > strings.Index(out, "test: warning: runaway at 2") {
		t.Errorf("log:\n%s", out)
	}
}
