package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/train"
)

// TestExactResumeAfterSIGKILL: a run killed (SIGKILL) after its checkpoint at
// 8 iterations (and after logging iterations 8 and 9), resumed with -r,
// logs the same losses, bit for bit, and ends with the same weights as a run
// that was never interrupted.
func TestExactResumeAfterSIGKILL(t *testing.T) {
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	extra := []string{"-o", "train.max_iters=14", "-o", "train.snapshot_iter=4"}
	if res := clitest.Run(t, run, tinyArgs(a, extra...)...); res.Code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", res.Code, res.Stderr)
	}
	cmd, log := child(t, 10, tinyArgs(b, extra...))
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(b, train.FinalFile)); err == nil {
		t.Fatalf("the killed run got to the end:\n%s", log)
	}
	if got := len(losses(t, b)); got < 10 {
		t.Fatalf("killed run logged %d records, want at least 10 (past the checkpoint)", got)
	}
	res := clitest.Run(t, run, tinyArgs(b, append(extra, "-r", train.SnapshotPath(b, 8))...)...)
	if res.Code != 0 {
		t.Fatalf("resumed run: exit %d\n%s", res.Code, res.Stderr)
	}
	if !strings.Contains(res.Stderr, "resumed from") {
		t.Errorf("no resume message:\n%s", res.Stderr)
	}
	ra, rb := losses(t, a), losses(t, b)
	if len(ra) < 14 || !reflect.DeepEqual(ra, rb) {
		t.Errorf("metrics differ:\nuninterrupted %+v\nresumed       %+v", ra, rb)
	}
	sameTensors(t, filepath.Join(a, train.FinalFile), filepath.Join(b, train.FinalFile))
	for _, f := range []string{train.BestFile, train.LossPlotFile, train.ConfigFile} {
		if _, err := os.Stat(filepath.Join(b, f)); err != nil {
			t.Errorf("resumed run folder lacks %s", f)
		}
	}
}

// TestSIGINTSavesAndExits130: SIGINT during training saves the state of the
// last completed iteration and exits 130; resuming from it finishes the run.
func TestSIGINTSavesAndExits130(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	extra := []string{"-o", "train.max_iters=8", "-o", "train.snapshot_iter=100", "-o", `data.eval_split=""`}
	cmd, log := child(t, 5, tinyArgs(dir, extra...))
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if cmd.ProcessState.ExitCode() != cli.ExitInterrupted {
		t.Fatalf("exit %v, want 130:\n%s", err, log)
	}
	want := train.SnapshotPath(dir, 5)
	if !strings.Contains(log.String(), "interrupted after 5 iterations; saved "+want) {
		t.Errorf("stderr does not name the checkpoint:\n%s", log)
	}
	c, err := checkpoint.Load(want)
	if err != nil || c.State.Iteration != 5 {
		t.Fatalf("interruption checkpoint: %v", err)
	}
	// -r without -c: the checkpoint's own configuration.
	if res := clitest.Run(t, run, "-r", want, "--out", dir); res.Code != 0 {
		t.Fatalf("resume: exit %d\n%s", res.Code, res.Stderr)
	}
	if len(losses(t, dir)) != 8 {
		t.Errorf("resumed run has %d records, want 8", len(losses(t, dir)))
	}
}

// TestNaNGuard: an absurd learning rate makes the loss non-finite; the tool
// exits 1 naming the iteration and the last good checkpoint, which loads.
func TestNaNGuard(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	res := clitest.Run(t, run, tinyArgs(dir, "-o", "train.base_lr=1e6", "-o", "train.warmup_steps=0",
		"-o", "train.max_iters=40", "-o", "train.snapshot_iter=1", "-o", "train.keep_last=1", "-o", `data.eval_split=""`)...)
	if res.Code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.Code, res.Stderr)
	}
	m := regexp.MustCompile(`error: iteration (\d+): loss is (NaN|[+-]Inf) .*the last good checkpoint is (\S+) `).FindStringSubmatch(res.Stderr)
	if m == nil {
		t.Fatalf("stderr does not name the iteration and checkpoint:\n%s", res.Stderr)
	}
	// Iteration N (counted from 1) failed: the last good state is the one
	// after N-1 iterations, model_<N-1>.ckpt.
	it, _ := strconv.Atoi(m[1])
	if m[3] != train.SnapshotPath(dir, it-1) {
		t.Errorf("last good checkpoint %s, want %s", m[3], train.SnapshotPath(dir, it-1))
	}
	c, err := checkpoint.Load(m[3])
	if err != nil || c.State.Iteration != int64(it-1) {
		t.Fatalf("last good checkpoint %s: %v", m[3], err)
	}
	if _, err := os.Stat(filepath.Join(dir, train.FinalFile)); err == nil {
		t.Error("model_final written after a non-finite loss")
	}
}
