package distill

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestRunaway: the warning comes once, at the iteration that completes
// Iters in a row above Ratio times the detection loss, with both numbers and
// the weight; a dip below the ratio or a non-finite value restarts the count;
// Ratio 0 never warns.
func TestRunaway(t *testing.T) {
	type step struct{ det, dis float64 }
	above, below := step{185, 881972}, step{185, 1000}
	for _, tc := range []struct {
		name   string
		ratio  float64
		iters  int
		steps  []step
		warnAt int // iteration (from 1) of the warning; 0: none
	}{
		{"three in a row", 100, 3, []step{above, above, above, above, above}, 3},
		{"a dip restarts the count", 100, 3, []step{above, above, below, above, above, above, above}, 6},
		{"NaN restarts the count", 100, 2, []step{above, {185, math.NaN()}, above, above}, 4},
		{"never above", 100, 1, []step{below, below, below}, 0},
		{"equal is not above", 10, 1, []step{{100, 1000}}, 0},
		{"ratio 0 never warns", 0, 1, []step{above, above}, 0},
		{"one iteration", 100, 1, []step{above}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Runaway{Ratio: tc.ratio, Iters: tc.iters, Weight: 1000, Terms: "distill.fine_grained"}
			got := 0
			for i, s := range tc.steps {
				msg := r.Observe(i+1, s.det, s.dis)
				if msg == "" {
					continue
				}
				if got != 0 {
					t.Fatalf("a second warning at iteration %d: %s", i+1, msg)
				}
				got = i + 1
				for _, want := range []string{"distill.fine_grained", "881972", "185", "at iteration " + strconv.Itoa(i+1),
					"distill.weight 1000 drives it", "-o distill.weight=2.1 would make it 10 times", "distill.warn_ratio"} {
					if !strings.Contains(msg, want) {
						t.Errorf("warning %q lacks %q", msg, want)
					}
				}
			}
			if got != tc.warnAt {
				t.Errorf("warned at iteration %d, want %d", got, tc.warnAt)
			}
		})
	}
}

// TestNewRunaway names every term of a recipe and keeps Iters at least 1.
func TestNewRunaway(t *testing.T) {
	rec := &Recipe{Terms: []Term{{Name: "distill.pair.0"}, {Name: "distill.pair.1"}}}
	r := NewRunaway(rec, 100, 0, 2)
	if r.Terms != "distill.pair.0+distill.pair.1" || r.Iters != 1 || r.Weight != 2 || r.Ratio != 100 {
		t.Errorf("NewRunaway = %+v", r)
	}
	if msg := r.Observe(1, 1, 1000); !strings.Contains(msg, "(distill.pair.0+distill.pair.1) has stayed above 100 times the detection loss for 1 iterations: 1000 against 1") {
		t.Errorf("warning %q", msg)
	}
}
