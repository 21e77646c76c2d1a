package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/detector/detectortest"
	"yolodistill/pkg/dist"
)

// The data-parallel loop, with ranks inside the test process (dist.Local):
// the same code as under MPI, whose own tests (make test-mpi) run the tools.

// distExtra: a global batch of 4 (shares 2+2, and 1+1+2 over 3 ranks), two
// input sizes, an evaluation split.
var distExtra = []string{"train.batch_size=4", "data.augment.multi_scale=[64, 96]", "train.snapshot_iter=3",
	"train.keep_last=5", `data.eval_split="val"`, "eval.batch_size=4", "train.base_lr=0.002"}

// runRanks runs Run on n in-process ranks with opt; prepare (when not nil)
// adjusts each rank's options and may return its context (nil:
// context.Background()). It returns every rank's error and detector.
func runRanks(t *testing.T, n int, opt Options, prepare func(rank int, o *Options) context.Context) ([]error, []*detector.Detector) {
	t.Helper()
	comms := dist.Local(n, dist.Options{})
	errs := make([]error, n)
	dets := make([]*detector.Detector, n)
	var wg sync.WaitGroup
	for r := range n {
		o := opt
		o.Dist = comms[r]
		ctx := context.Background()
		if prepare != nil {
			if c := prepare(r, &o); c != nil {
				ctx = c
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Run(ctx, o)
			errs[r] = err
			if res != nil {
				dets[r] = res.Detector
			}
		}()
	}
	wg.Wait()
	return errs, dets
}

// TestDataParallelMatchesOneProcess: 2 iterations over 2 and 3 ranks log the
// losses of one process and end with its weights, BatchNorm running
// statistics and solver state, within distTol; every rank holds the same
// parameters, bit for bit; rank 0 alone writes, and its checkpoints record
// the world size; the collectives' share of the time is logged.
func TestDataParallelMatchesOneProcess(t *testing.T) {
	// seed 2: the two batches are at 64 and 96 px
	cfg := tinyConfig(t, "train.max_iters=2", "train.batch_size=4", "data.augment.multi_scale=[64, 96]", "train.base_lr=1e-4", "train.seed=2")
	tmp := t.TempDir()
	one := filepath.Join(tmp, "one")
	if _, err := Run(context.Background(), Options{Config: cfg, OutDir: one}); err != nil {
		t.Fatal(err)
	}
	ref, err := checkpoint.Load(filepath.Join(one, FinalFile))
	if err != nil {
		t.Fatal(err)
	}
	refRecs := readRecords(t, filepath.Join(one, MetricsFile))
	for _, n := range []int{2, 3} {
		dir := filepath.Join(tmp, fmt.Sprintf("ranks%d", n))
		var log bytes.Buffer
		errs, dets := runRanks(t, n, Options{Config: cfg, OutDir: dir, Stderr: &log, Name: "test"}, nil)
		for r, err := range errs {
			if err != nil {
				t.Fatalf("%d ranks: rank %d: %v\n%s", n, r, err, log.String())
			}
		}
		if !strings.Contains(log.String(), fmt.Sprintf("data parallel over %d ranks", n)) {
			t.Errorf("%d ranks: no start message:\n%s", n, log.String())
		}
		got, err := checkpoint.Load(filepath.Join(dir, FinalFile))
		if err != nil {
			t.Fatal(err)
		}
		if got.Meta["world_size"] != fmt.Sprint(n) || got.Meta["global_batch"] != "4" || ref.Meta["world_size"] != "1" {
			t.Errorf("%d ranks: meta %v, one process's %v", n, got.Meta, ref.Meta)
		}
		detectortest.CompareCheckpoints(t, fmt.Sprintf("%d ranks", n), got, ref, detectortest.DataParallelTol)
		for r := 1; r < n; r++ {
			for i, p := range dets[r].Params.Params() {
				if !reflect.DeepEqual(p.Data, dets[0].Params.Params()[i].Data) {
					t.Errorf("%d ranks: rank %d's %s differs from rank 0's", n, r, p.Name)
					break
				}
			}
		}
		recs := readRecords(t, filepath.Join(dir, MetricsFile))
		if len(recs) != len(refRecs) {
			t.Fatalf("%d ranks: %d metrics records, one process %d", n, len(recs), len(refRecs))
		}
		for i, r := range recs {
			w := refRecs[i]
			if r.Iter != w.Iter || math.Abs(r.Loss-w.Loss) > 1e-5*math.Abs(w.Loss) {
				t.Errorf("%d ranks: record %d: %+v, one process %+v", n, i, r, w)
			}
			if !(r.CollectiveShare > 0 && r.CollectiveShare < 1) {
				t.Errorf("%d ranks: record %d: collective share %v", n, i, r.CollectiveShare)
			}
		}
	}
}

// TestDataParallelStopAndResume: rank 1 alone is interrupted before iteration
// 4 (its context ends): every rank stops there, rank 0 saves model_4.ckpt,
// and both return the interruption (marked agreed). Resuming it on 2 ranks
// ends exactly as the uninterrupted 2-rank run: the same losses and the same
// checkpoint bytes but for the resume's own message.
func TestDataParallelStopAndResume(t *testing.T) {
	cfg := tinyConfig(t, append([]string{"train.max_iters=7"}, distExtra...)...)
	tmp := t.TempDir()
	whole, parted := filepath.Join(tmp, "whole"), filepath.Join(tmp, "parted")
	if errs, _ := runRanks(t, 2, Options{Config: cfg, OutDir: whole}, nil); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	var log bytes.Buffer
	errs, _ := runRanks(t, 2, Options{Config: cfg, OutDir: parted, Stderr: &log, Name: "test"}, func(rank int, o *Options) context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		o.Hooks.Prepare = func(ctx context.Context, it int, _ *augment.Batch, _ *detector.Net) error {
			if rank == 1 && it == 4 {
				cancel()
				return ctx.Err()
			}
			return nil
		}
		return ctx
	})
	for r, err := range errs {
		if !errors.Is(err, context.Canceled) || !dist.IsAgreed(err) {
			t.Errorf("rank %d: %v, want an agreed interruption", r, err)
		}
	}
	if !strings.Contains(log.String(), "interrupted after 4 iterations; saved "+SnapshotPath(parted, 4)) {
		t.Errorf("rank 0 did not report the checkpoint:\n%s", log.String())
	}
	resumed := Options{Config: cfg, OutDir: parted, Resume: SnapshotPath(parted, 4)}
	if errs, _ := runRanks(t, 2, resumed, nil); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	a, b := readRecords(t, filepath.Join(whole, MetricsFile)), readRecords(t, filepath.Join(parted, MetricsFile))
	for i := range a {
		a[i].ImagesPerS, a[i].CollectiveShare = 0, 0
	}
	for i := range b {
		b[i].ImagesPerS, b[i].CollectiveShare = 0, 0
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("metrics differ:\nuninterrupted %+v\nresumed       %+v", a, b)
	}
	ca, err := checkpoint.Load(filepath.Join(whole, FinalFile))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := checkpoint.Load(filepath.Join(parted, FinalFile))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ca.Sections, cb.Sections) || !bytes.Equal(ca.State.DataOrder, cb.State.DataOrder) {
		t.Error("the resumed 2-rank run ends with other tensors than the uninterrupted one")
	}
}

// TestDataParallelRankFailure: an error on rank 2 of 3 at iteration 3 stops
// every rank after 2 iterations, rank 0 saving model_2.ckpt and reporting
// the failing rank's message; resuming from it with another rank count (1)
// completes the run and says that it rounds differently.
func TestDataParallelRankFailure(t *testing.T) {
	cfg := tinyConfig(t, append([]string{"train.max_iters=4"}, distExtra...)...)
	dir := filepath.Join(t.TempDir(), "run")
	var log bytes.Buffer
	errs, _ := runRanks(t, 3, Options{Config: cfg, OutDir: dir, Stderr: &log, Name: "test"}, func(rank int, o *Options) context.Context {
		o.Hooks.Prepare = func(ctx context.Context, it int, _ *augment.Batch, _ *detector.Net) error {
			if rank == 2 && it == 2 {
				return errors.New("disk on fire")
			}
			return nil
		}
		return nil
	})
	for r, err := range errs {
		if err == nil || !dist.IsAgreed(err) || !strings.Contains(err.Error(), "rank 2 of 3: iteration 3: disk on fire") ||
			!strings.Contains(err.Error(), "rank 0 saved "+SnapshotPath(dir, 2)) {
			t.Errorf("rank %d: %v", r, err)
		}
	}
	c, err := checkpoint.Load(SnapshotPath(dir, 2))
	if err != nil || c.State.Iteration != 2 || c.Meta["world_size"] != "3" {
		t.Fatalf("the checkpoint after the failure: %v", err)
	}
	log.Reset()
	res, err := Run(context.Background(), Options{Config: cfg, OutDir: dir, Resume: SnapshotPath(dir, 2), Stderr: &log, Name: "test"})
	if err != nil || res.Iterations != 4 {
		t.Fatalf("resume: %v", err)
	}
	if !strings.Contains(log.String(), "written by a run over 3 rank(s), this one has 1") {
		t.Errorf("no message on the other rank count:\n%s", log.String())
	}
}

// TestDataParallelNaN: a non-finite loss stops every rank at the same
// iteration with the NonFiniteError (agreed), before any update.
func TestDataParallelNaN(t *testing.T) {
	cfg := tinyConfig(t, "train.max_iters=40", "train.base_lr=1e6", "train.batch_size=4", "train.snapshot_iter=1000")
	errs, _ := runRanks(t, 2, Options{Config: cfg, OutDir: filepath.Join(t.TempDir(), "run")}, nil)
	var iters []int
	for r, err := range errs {
		var nf *NonFiniteError
		if !errors.As(err, &nf) || !dist.IsAgreed(err) {
			t.Fatalf("rank %d: %v, want an agreed NonFiniteError", r, err)
		}
		iters = append(iters, nf.Iter)
	}
	if iters[0] != iters[1] {
		t.Errorf("ranks stopped at iterations %v", iters)
	}
}
