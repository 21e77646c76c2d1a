//go:build mpi && cgo

package main

// The tool under Open MPI (make test-mpi: YOLODISTILL_MPI_TESTS=1): this
// test binary's child mode (TestMain) is started by mpirun as 2 or 3 ranks.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/detector/detectortest"
	"yolodistill/pkg/train"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// job is an mpirun of the tool's child mode.
type job struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	code int
	took time.Duration
}

// startMPI starts `mpirun -np n` over the tool with args; mpiArgs go to
// mpirun, env (KEY=VALUE) to the ranks.
func startMPI(t *testing.T, n int, args, mpiArgs []string, env ...string) *job {
	t.Helper()
	if os.Getenv("YOLODISTILL_MPI_TESTS") != "1" {
		t.Skip("MPI tests run under make test-mpi (YOLODISTILL_MPI_TESTS=1)")
	}
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Fatal("mpirun not found: install openmpi-bin")
	}
	enc, _ := json.Marshal(args)
	env = append(env, "DETECT_TRAIN_CHILD_ARGS="+string(enc))
	a := []string{"--allow-run-as-root", "--oversubscribe", "-np", strconv.Itoa(n)}
	for _, e := range env {
		a = append(a, "-x", e)
	}
	a = append(append(a, mpiArgs...), os.Args[0], "-test.run=^$")
	j := &job{cmd: exec.Command(mpirun, a...), out: &lockedBuffer{}, done: make(chan struct{})}
	j.cmd.Stdout, j.cmd.Stderr = j.out, j.out
	start := time.Now()
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := j.cmd.Wait()
		j.took = time.Since(start)
		j.code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			j.code = ee.ExitCode()
		} else if err != nil {
			j.code = -1
		}
		close(j.done)
	}()
	t.Cleanup(func() {
		select {
		case <-j.done:
		default:
			j.cmd.Process.Kill()
			for _, pid := range j.ranks() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			<-j.done
		}
	})
	return j
}

// wait waits for the job to end (at most limit) and returns its exit code.
func (j *job) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-j.done:
		return j.code
	case <-time.After(limit):
		t.Fatalf("mpirun still runs after %v:\n%s", limit, j.out.String())
	}
	return 0
}

// runMPI runs the tool on n ranks to its end and returns the exit code and
// the output.
func runMPI(t *testing.T, n int, args []string, mpiArgs ...string) (int, string) {
	t.Helper()
	j := startMPI(t, n, args, mpiArgs)
	return j.wait(t, 5*time.Minute), j.out.String()
}

// waitPaused waits until count ranks have printed PAUSED.
func (j *job) waitPaused(t *testing.T, count int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for strings.Count(j.out.String(), "PAUSED") < count {
		select {
		case <-j.done:
			t.Fatalf("the job ended before pausing:\n%s", j.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ranks did not pause:\n%s", j.out.String())
		}
	}
}

// ranks returns the PIDs of mpirun's children (the ranks of a job on this
// machine) by rank.
func (j *job) ranks() map[int]int {
	out := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(j.cmd.Process.Pid) {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		for _, kv := range bytes.Split(env, []byte{0}) {
			if r, ok := strings.CutPrefix(string(kv), "OMPI_COMM_WORLD_RANK="); ok {
				n, _ := strconv.Atoi(r)
				out[n] = pid
			}
		}
	}
	return out
}

// mpiArgs is the tool's tiny run over a global batch of 4 (shares 2+2 and
// 1+1+2), as pkg/train's data-parallel tests run it.
func mpiArgs(dir string, extra ...string) []string {
	return tinyArgs(dir, append([]string{"-o", "train.batch_size=4", "-o", "train.warmup_steps=0", "-o", `data.eval_split=""`}, extra...)...)
}

// TestMPIMatchesOneProcess: mpirun -np 2 and -np 3 (uneven shares) reach
// after 2 iterations (at 64 and 96 px) the weights, BatchNorm running
// statistics and solver state of one process with the same global batch,
// within detectortest.DataParallelTol; rank 0 alone reports, and the
// checkpoints record the world size.
func TestMPIMatchesOneProcess(t *testing.T) {
	tmp := t.TempDir()
	extra := []string{"-o", "train.max_iters=2", "-o", "train.base_lr=1e-4", "-o", "train.seed=2"}
	one := filepath.Join(tmp, "one")
	if res := clitest.Run(t, run, mpiArgs(one, extra...)...); res.Code != 0 {
		t.Fatalf("one process: exit %d\n%s", res.Code, res.Stderr)
	}
	ref, err := checkpoint.Load(filepath.Join(one, train.FinalFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 3} {
		dir := filepath.Join(tmp, "ranks"+strconv.Itoa(n))
		code, out := runMPI(t, n, mpiArgs(dir, extra...))
		if code != 0 {
			t.Fatalf("%d ranks: exit %d\n%s", n, code, out)
		}
		if strings.Count(out, "done: 2 iterations") != 1 || !strings.Contains(out, "data parallel over "+strconv.Itoa(n)+" ranks (Open MPI") {
			t.Errorf("%d ranks: rank 0 alone should report:\n%s", n, out)
		}
		got, err := checkpoint.Load(filepath.Join(dir, train.FinalFile))
		if err != nil {
			t.Fatal(err)
		}
		if got.Meta["world_size"] != strconv.Itoa(n) {
			t.Errorf("%d ranks: world_size %q", n, got.Meta["world_size"])
		}
		detectortest.CompareCheckpoints(t, strconv.Itoa(n)+" ranks", got, ref, detectortest.DataParallelTol)
		for _, r := range losses(t, dir) {
			if !(r.CollectiveShare > 0 && r.CollectiveShare < 1) {
				t.Errorf("%d ranks: iteration %d: collective share %v", n, r.Iter, r.CollectiveShare)
			}
		}
	}
}

// TestMPIRankKilled: a rank killed (SIGKILL) while the other waits for it in
// a collective ends the whole job within seconds with a clear error, by
// mpirun itself or, with mpirun's abort off (orte_enable_recovery), by the
// survivor's watchdog (--mpi-timeout); the last periodic checkpoint is
// intact, and resuming from it completes the run.
func TestMPIRankKilled(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mpiArgs []string
		want    []string
	}{
		{"mpirun", nil, []string{"exited on signal 9"}},
		{"watchdog", []string{"--mca", "orte_enable_recovery", "1"},
			[]string{"error: rank 0 of 2 waited", "(preparing the step) for the other ranks: one of them has stopped or hangs; ending the job (the watchdog's limit is 3s)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			args := mpiArgs(dir, "-o", "train.max_iters=8", "-o", "train.snapshot_iter=2", "--mpi-timeout", "3s")
			j := startMPI(t, 2, args, tc.mpiArgs, "DETECT_TRAIN_PAUSE_AT=5", "DETECT_TRAIN_PAUSE_RANK=1")
			j.waitPaused(t, 1)
			pid, ok := j.ranks()[1]
			if !ok {
				t.Fatalf("no rank 1 among mpirun's children %v", j.ranks())
			}
			killed := time.Now()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			j.wait(t, time.Minute)
			took := time.Since(killed)
			out := j.out.String()
			if took > 20*time.Second {
				t.Errorf("the job ended %v after the kill", took)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			t.Logf("exit %d after %v:\n%s", j.code, took, out)
			if tc.name == "mpirun" && j.code == 0 {
				t.Errorf("mpirun exit 0 after a rank was killed:\n%s", out)
			}
			last := train.SnapshotPath(dir, 4)
			c, err := checkpoint.Load(last)
			if err != nil || c.State.Iteration != 4 {
				t.Fatalf("the last checkpoint: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, train.FinalFile)); err == nil {
				t.Fatal("the killed job wrote model_final")
			}
			// The resumed run is not under test for its watchdog: a longer
			// limit keeps a loaded machine (slow data opening) from ending it.
			code, out := runMPI(t, 2, append(args, "-r", last, "--mpi-timeout", "2m"))
			if code != 0 || len(losses(t, dir)) != 8 {
				t.Fatalf("resume: exit %d, %d records\n%s", code, len(losses(t, dir)), out)
			}
		})
	}
}

// TestMPIInterruptResume: SIGTERM to both ranks of a 2-rank run before
// iteration 5 stops both there with model_5.ckpt (exit 130); resuming it on
// 2 ranks gives the same losses and the same final tensors, bit for bit, as
// the uninterrupted 2-rank run.
func TestMPIInterruptResume(t *testing.T) {
	tmp := t.TempDir()
	whole, parted := filepath.Join(tmp, "whole"), filepath.Join(tmp, "parted")
	extra := []string{"-o", "train.max_iters=8", "-o", "train.snapshot_iter=100"}
	if code, out := runMPI(t, 2, mpiArgs(whole, extra...)); code != 0 {
		t.Fatalf("uninterrupted: exit %d\n%s", code, out)
	}
	j := startMPI(t, 2, mpiArgs(parted, extra...), nil, "DETECT_TRAIN_PAUSE_AT=5")
	j.waitPaused(t, 2)
	for r, pid := range j.ranks() {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	code := j.wait(t, time.Minute)
	saved := train.SnapshotPath(parted, 5)
	if code != 130 || !strings.Contains(j.out.String(), "interrupted after 5 iterations; saved "+saved) {
		t.Fatalf("interrupted job: exit %d\n%s", code, j.out.String())
	}
	if code, out := runMPI(t, 2, mpiArgs(parted, append(extra, "-r", saved)...)); code != 0 {
		t.Fatalf("resume: exit %d\n%s", code, out)
	}
	a, b := losses(t, whole), losses(t, parted)
	for _, rs := range [][]train.Record{a, b} {
		for i := range rs {
			rs[i].CollectiveShare = 0
		}
	}
	if len(a) != 8 || !reflect.DeepEqual(a, b) {
		t.Errorf("metrics differ:\nuninterrupted %+v\nresumed       %+v", a, b)
	}
	sameTensors(t, filepath.Join(whole, train.FinalFile), filepath.Join(parted, train.FinalFile))
}

// TestMPIWorldMismatch: a process whose launcher says 2 but whose MPI sees
// a world of 1 (a binary built against another MPI than the launcher's)
// refuses to start, naming the variable.
func TestMPIWorldMismatch(t *testing.T) {
	if os.Getenv("YOLODISTILL_MPI_TESTS") != "1" {
		t.Skip("MPI tests run under make test-mpi (YOLODISTILL_MPI_TESTS=1)")
	}
	t.Setenv("PMI_SIZE", "2")
	res := clitest.Run(t, run, mpiArgs(filepath.Join(t.TempDir(), "run"))...)
	if res.Code != 1 || !strings.Contains(res.Stderr, "detect-train: error: the launcher started 2 processes (PMI_SIZE=2) but MPI") {
		t.Errorf("exit %d\n%s", res.Code, res.Stderr)
	}
}
