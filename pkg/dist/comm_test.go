package dist_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"yolodistill/pkg/dist"
)

// onRanks runs fn on every rank of a Local job, each in its own goroutine,
// and returns their errors by rank.
func onRanks(comms []*dist.Comm, fn func(c *dist.Comm) error) []error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = fn(c)
		}()
	}
	wg.Wait()
	return errs
}

// vec32 is rank r's test vector: values of mixed sign and magnitude, so that
// the order of the additions shows in the bits.
func vec32(r, n int) []float32 {
	rng := rand.New(rand.NewPCG(uint64(r), 7))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(9)-4)))
	}
	return v
}

func vec64(r, n int) []float64 {
	rng := rand.New(rand.NewPCG(uint64(r), 9))
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(17)-8))
	}
	return v
}

// TestSumInRankOrder: SumFloat32 and SumFloat64 give every rank the sum
// added in rank order, ((v0 + v1) + v2) + ..., bit for bit, for 1 to 4 ranks,
// lengths that do not divide by the rank count, and vectors split into
// several rounds.
func TestSumInRankOrder(t *testing.T) {
	defer dist.SetPiece32(7)()
	for _, size := range []int{1, 2, 3, 4} {
		for _, n := range []int{0, 1, 5, 7, 8, 23} {
			t.Run(fmt.Sprintf("ranks%d_len%d", size, n), func(t *testing.T) {
				want32 := vec32(0, n)
				want64 := vec64(0, n)
				for r := 1; r < size; r++ {
					for i, v := range vec32(r, n) {
						want32[i] += v
					}
					for i, v := range vec64(r, n) {
						want64[i] += v
					}
				}
				comms := dist.Local(size, dist.Options{})
				got32 := make([][]float32, size)
				got64 := make([][]float64, size)
				errs := onRanks(comms, func(c *dist.Comm) error {
					a, b := vec32(c.Rank(), n), vec64(c.Rank(), n)
					if err := c.SumFloat32("test", a); err != nil {
						return err
					}
					if err := c.SumFloat64("test", b); err != nil {
						return err
					}
					got32[c.Rank()], got64[c.Rank()] = a, b
					return nil
				})
				for r, err := range errs {
					if err != nil {
						t.Fatalf("rank %d: %v", r, err)
					}
				}
				for r := range size {
					for i := range n {
						if math.Float32bits(got32[r][i]) != math.Float32bits(want32[i]) {
							t.Fatalf("rank %d: float32 element %d = %v, rank-order sum %v", r, i, got32[r][i], want32[i])
						}
						if math.Float64bits(got64[r][i]) != math.Float64bits(want64[i]) {
							t.Fatalf("rank %d: float64 element %d = %v, rank-order sum %v", r, i, got64[r][i], want64[i])
						}
					}
				}
			})
		}
	}
}

// TestAllgatherAndBcast: Allgather returns every rank's bytes (of different
// lengths, some empty) in rank order; BcastBytes gives everyone the root's.
func TestAllgatherAndBcast(t *testing.T) {
	comms := dist.Local(3, dist.Options{})
	errs := onRanks(comms, func(c *dist.Comm) error {
		mine := bytes.Repeat([]byte{byte('a' + c.Rank())}, 2*c.Rank())
		all, err := c.Allgather("test", mine)
		if err != nil {
			return err
		}
		for r, b := range all {
			if want := bytes.Repeat([]byte{byte('a' + r)}, 2*r); !bytes.Equal(b, want) {
				return fmt.Errorf("rank %d's bytes came as %q, want %q", r, b, want)
			}
		}
		var msg []byte
		if c.Rank() == 1 {
			msg = []byte("from rank one")
		}
		got, err := c.BcastBytes("test", msg, 1)
		if err != nil {
			return err
		}
		if string(got) != "from rank one" {
			return fmt.Errorf("BcastBytes gave %q", got)
		}
		return c.Barrier("test")
	})
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

// TestWatchdog: a rank that never joins a collective makes the others'
// watchdog end the job after the limit, with a message naming the rank, the
// collective, what it was for and the limit; the waiting rank's call fails.
func TestWatchdog(t *testing.T) {
	var mu sync.Mutex
	var log []string
	opt := dist.Options{Timeout: 200 * time.Millisecond, Log: func(format string, args ...any) {
		mu.Lock()
		log = append(log, fmt.Sprintf(format, args...))
		mu.Unlock()
	}}
	comms := dist.Local(2, opt)
	start := time.Now()
	err := comms[0].SumFloat64("BatchNorm statistics", []float64{1})
	took := time.Since(start)
	if err == nil {
		t.Fatal("the collective returned without the other rank")
	}
	if took < 200*time.Millisecond || took > 5*time.Second {
		t.Errorf("the watchdog ended the job after %v, limit 200ms", took)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(log) != 1 || !strings.Contains(log[0], "rank 0 of 2 waited") || !strings.Contains(log[0], "Allgather (BatchNorm statistics)") ||
		!strings.Contains(log[0], "limit is 200ms") {
		t.Errorf("watchdog message: %q", log)
	}
	// The other rank finds the job ended too.
	if err := comms[1].Barrier("after"); err == nil {
		t.Error("rank 1's collective succeeded after the job was aborted")
	}
}

// TestMismatch: ranks calling different collectives get an error, not a hang.
func TestMismatch(t *testing.T) {
	comms := dist.Local(2, dist.Options{Timeout: -1})
	errs := onRanks(comms, func(c *dist.Comm) error {
		if c.Rank() == 0 {
			return c.Barrier("a")
		}
		return c.SumFloat64("b", []float64{1, 2})
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "collective mismatch") {
			t.Errorf("rank %d: %v, want a collective mismatch", r, err)
		}
	}
}

// TestLauncherSize: the launcher variables in their order of precedence.
func TestLauncherSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		n    int
		from string
	}{
		{"none", nil, 1, ""},
		{"open mpi", map[string]string{"OMPI_COMM_WORLD_SIZE": "4"}, 4, "OMPI_COMM_WORLD_SIZE=4"},
		{"pmi", map[string]string{"PMI_SIZE": "3"}, 3, "PMI_SIZE=3"},
		{"slurm", map[string]string{"SLURM_NTASKS": "8"}, 8, "SLURM_NTASKS=8"},
		{"mpirun inside an allocation", map[string]string{"OMPI_COMM_WORLD_SIZE": "2", "SLURM_NTASKS": "8"}, 2, "OMPI_COMM_WORLD_SIZE=2"},
		{"not a number", map[string]string{"PMI_SIZE": "x", "SLURM_NTASKS": "2"}, 2, "SLURM_NTASKS=2"},
		{"one", map[string]string{"OMPI_COMM_WORLD_SIZE": "1"}, 1, "OMPI_COMM_WORLD_SIZE=1"},
	} {
		n, from := dist.LauncherSize(func(k string) string { return tc.env[k] })
		if n != tc.n || from != tc.from {
			t.Errorf("%s: %d %q, want %d %q", tc.name, n, from, tc.n, tc.from)
		}
	}
}

// TestInitAlone: a process no launcher started is rank 0 of 1, whatever the build.
func TestInitAlone(t *testing.T) {
	c, err := dist.Init(dist.Options{Getenv: func(string) string { return "" }})
	if err != nil || c.Rank() != 0 || c.Size() != 1 {
		t.Fatalf("Init alone: %v, %v", c, err)
	}
	v := []float32{1.5}
	if err := c.SumFloat32("x", v); err != nil || v[0] != 1.5 {
		t.Errorf("a single rank's sum changed its vector: %v %v", v, err)
	}
	if code := c.End(7, errors.New("x")); code != 7 {
		t.Errorf("End returned %d", code)
	}
}

// TestAgreed: the marker survives wrapping.
func TestAgreed(t *testing.T) {
	err := fmt.Errorf("stopped: %w", dist.Agreed(errors.New("loss is NaN")))
	if !dist.IsAgreed(err) || dist.IsAgreed(errors.New("x")) || dist.Agreed(nil) != nil {
		t.Error("Agreed/IsAgreed")
	}
}
