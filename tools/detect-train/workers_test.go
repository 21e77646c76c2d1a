package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"yolodistill/pkg/train"
)

// runWithProcs runs the tool to completion in a child process (a re-exec of
// the test binary, as child does) with the environment's GOMAXPROCS set to
// procs.
func runWithProcs(t *testing.T, procs int, args []string) {
	t.Helper()
	enc, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GOMAXPROCS=") && !strings.HasPrefix(e, "DETECT_TRAIN_") {
			env = append(env, e)
		}
	}
	cmd.Env = append(env, "GOMAXPROCS="+strconv.Itoa(procs), "DETECT_TRAIN_CHILD_ARGS="+string(enc))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("GOMAXPROCS=%d: %v\n%s", procs, err, log.String())
	}
}

// TestWorkerCountIndependence: the same training run (a few dozen
// iterations with multi-scale inputs and two evaluations) with GOMAXPROCS 1,
// 2, 3 and 8 logs the same losses and evaluation scores, bit for bit, and
// writes byte-identical checkpoints (periodic, best and final).
func TestWorkerCountIndependence(t *testing.T) {
	tmp := t.TempDir()
	extra := []string{"-o", "train.max_iters=24", "-o", "train.snapshot_iter=12", "-o", "train.keep_last=3",
		"-o", "data.synth.num_images=24", "-o", "train.batch_size=3", "-o", "eval.batch_size=3"}
	var refDir string
	var refRecs []train.Record
	var refCkpts []string
	for _, procs := range []int{1, 2, 3, 8} {
		dir := filepath.Join(tmp, "procs"+strconv.Itoa(procs))
		runWithProcs(t, procs, tinyArgs(dir, extra...))
		recs := losses(t, dir) // throughput (images_per_s) zeroed
		ckpts, err := filepath.Glob(filepath.Join(dir, "*.ckpt"))
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range ckpts {
			ckpts[i] = filepath.Base(c)
		}
		slices.Sort(ckpts)
		if refDir == "" {
			refDir, refRecs, refCkpts = dir, recs, ckpts
			if len(recs) < 24 || len(ckpts) < 3 {
				t.Fatalf("reference run logged %d records and wrote checkpoints %v; want 24 records and periodic, best and final checkpoints", len(recs), ckpts)
			}
			evals := 0
			for _, r := range recs {
				if r.Eval != nil {
					evals++
				}
			}
			if evals < 2 {
				t.Fatalf("reference run evaluated %d times, want at least 2", evals)
			}
			continue
		}
		if !reflect.DeepEqual(recs, refRecs) {
			for i := range min(len(recs), len(refRecs)) {
				if !reflect.DeepEqual(recs[i], refRecs[i]) {
					t.Errorf("GOMAXPROCS=%d: metrics record %d differs:\n got  %+v\n want %+v (GOMAXPROCS=1)", procs, i, recs[i], refRecs[i])
					break
				}
			}
			if len(recs) != len(refRecs) {
				t.Errorf("GOMAXPROCS=%d: %d metrics records, GOMAXPROCS=1 logged %d", procs, len(recs), len(refRecs))
			}
		}
		if !slices.Equal(ckpts, refCkpts) {
			t.Errorf("GOMAXPROCS=%d wrote checkpoints %v, GOMAXPROCS=1 wrote %v", procs, ckpts, refCkpts)
			continue
		}
		for _, c := range ckpts {
			a, err := os.ReadFile(filepath.Join(refDir, c))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, c))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("GOMAXPROCS=%d: %s differs from GOMAXPROCS=1's", procs, c)
			}
		}
	}
}
