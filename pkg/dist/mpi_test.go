//go:build mpi && cgo

package dist_test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"yolodistill/pkg/dist"
)

// The MPI tests start this test binary under mpirun (make test-mpi sets
// YOLODISTILL_MPI_TESTS=1); each rank runs TestMPIChild with the scenario in
// DIST_MPI_CHILD.

func needMPI(t *testing.T) string {
	t.Helper()
	if os.Getenv("YOLODISTILL_MPI_TESTS") != "1" {
		t.Skip("MPI tests run under make test-mpi (YOLODISTILL_MPI_TESTS=1)")
	}
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Fatal("mpirun not found: install openmpi-bin")
	}
	return mpirun
}

// mpirun runs the scenario on np ranks and returns mpirun's exit code, its
// combined output and how long it took.
func mpirun(t *testing.T, np int, scenario string, extra ...string) (int, string, time.Duration) {
	t.Helper()
	bin := needMPI(t)
	args := []string{"--allow-run-as-root", "--oversubscribe", "-np", strconv.Itoa(np)}
	args = append(args, extra...)
	args = append(args, os.Args[0], "-test.run=^TestMPIChild$", "-test.v")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DIST_MPI_CHILD="+scenario)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("mpirun: %v", err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), took
}

// TestMPICollectives: over Open MPI with 2 and 3 ranks, the ordered sums give
// every rank the rank-order sum bit for bit, and Allgather, BcastBytes and
// Barrier work; BuildInfo names the library.
func TestMPICollectives(t *testing.T) {
	for _, np := range []int{2, 3} {
		code, out, _ := mpirun(t, np, "collectives")
		if code != 0 || strings.Count(out, "CHILD OK") != np {
			t.Errorf("np %d: exit %d\n%s", np, code, out)
		}
	}
	if !strings.HasPrefix(dist.BuildInfo(), "mpi ") {
		t.Errorf("BuildInfo %q", dist.BuildInfo())
	}
}

// TestMPIWatchdog: a rank that stops calling collectives (it sleeps) makes
// the other's watchdog end the whole job after its limit, with its message.
func TestMPIWatchdog(t *testing.T) {
	code, out, took := mpirun(t, 2, "watchdog")
	if code == 0 || !strings.Contains(out, "rank 0 of 2 waited") || !strings.Contains(out, "Barrier (test)") {
		t.Errorf("exit %d after %v\n%s", code, took, out)
	}
	if took > 20*time.Second {
		t.Errorf("the job took %v to end (watchdog limit 2s, the sleeping rank 60s)", took)
	}
}

// TestMPIKilledRank: a rank killed with SIGKILL makes mpirun end the job
// within seconds, even with the survivor waiting in a collective.
func TestMPIKilledRank(t *testing.T) {
	code, out, took := mpirun(t, 2, "kill")
	if code == 0 || took > 20*time.Second {
		t.Errorf("exit %d after %v\n%s", code, took, out)
	}
}

func TestMPIChild(t *testing.T) {
	scenario := os.Getenv("DIST_MPI_CHILD")
	if scenario == "" {
		t.Skip("child of TestMPI*")
	}
	timeout := time.Minute
	if scenario == "watchdog" {
		timeout = 2 * time.Second
	}
	c, err := dist.Init(dist.Options{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if c.Size() < 2 || c.Library() == "" {
		t.Fatalf("rank %d of %d, library %q", c.Rank(), c.Size(), c.Library())
	}
	switch scenario {
	case "collectives":
		defer dist.SetPiece32(1000)()
		n := 2503 // three rounds, not divisible by 2 or 3
		want32, want64 := vec32(0, n), vec64(0, n)
		for r := 1; r < c.Size(); r++ {
			for i, v := range vec32(r, n) {
				want32[i] += v
			}
			for i, v := range vec64(r, n) {
				want64[i] += v
			}
		}
		a, b := vec32(c.Rank(), n), vec64(c.Rank(), n)
		if err := c.SumFloat32("test", a); err != nil {
			t.Fatal(err)
		}
		if err := c.SumFloat64("test", b); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if math.Float32bits(a[i]) != math.Float32bits(want32[i]) || math.Float64bits(b[i]) != math.Float64bits(want64[i]) {
				t.Fatalf("rank %d: element %d: %v %v, rank-order sums %v %v", c.Rank(), i, a[i], b[i], want32[i], want64[i])
			}
		}
		all, err := c.Allgather("test", []byte(strings.Repeat("x", c.Rank())))
		if err != nil {
			t.Fatal(err)
		}
		for r, s := range all {
			if string(s) != strings.Repeat("x", r) {
				t.Fatalf("Allgather: rank %d sent %q", r, s)
			}
		}
		big := make([]byte, 3<<20)
		if c.Rank() == 0 {
			for i := range big {
				big[i] = byte(i * 7)
			}
		}
		got, err := c.BcastBytes("test", big, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != byte(i*7) {
				t.Fatalf("BcastBytes byte %d", i)
			}
		}
		if err := c.Barrier("test"); err != nil {
			t.Fatal(err)
		}
		fmt.Println("CHILD OK")
		c.End(0, nil)
	case "watchdog":
		if c.Rank() == 1 {
			time.Sleep(60 * time.Second)
		}
		c.Barrier("test")
		t.Fatal("the barrier returned")
	case "kill":
		if c.Rank() == 1 {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		c.Barrier("test")
		t.Fatal("the barrier returned")
	}
}
