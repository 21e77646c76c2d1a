package main

import (
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestRunawayWarning: a distillation term above distill.warn_ratio times
// the detection loss for distill.warn_iters iterations gives one warning on
// stderr with both numbers and the weight; training goes on to the end.
// (The tiny fresh teacher's term is not a runaway at the default ratio, so
// the test lowers the ratio until it is.)
func TestRunawayWarning(t *testing.T) {
	needBins(t)
	out := filepath.Join(t.TempDir(), "run")
	code, stderr := sh(t, "student-train -c "+studentYML+" --teacher-weights "+teacherCkpt(t)+
		" -o distill.warn_ratio=1e-9 -o distill.warn_iters=2 --out "+out)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	recs := metrics(t, out)
	if n := strings.Count(stderr, "warning: the distillation loss"); n != 1 {
		t.Fatalf("%d runaway warnings, want 1:\n%s", n, stderr)
	}
	line := stderr[strings.Index(stderr, "student-train: warning: the distillation loss"):]
	line = line[:strings.IndexByte(line, '\n')]
	for _, want := range []string{"(distill.fine_grained) has stayed above 1e-09 times the detection loss for 2 iterations: ",
		" at iteration 2 ", "distill.weight 1000 drives it", "distill.warn_ratio"} {
		if !strings.Contains(line, want) {
			t.Errorf("warning %q lacks %q", line, want)
		}
	}
	if len(recs) < 2 || recs[1].Iter != 2 {
		t.Fatalf("records %+v", recs)
	}
	// Both numbers are iteration 2's, as metrics.jsonl has them.
	m := regexp.MustCompile(`: ([0-9.e+-]+) against ([0-9.e+-]+) at iteration 2 `).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("warning %q: no numbers", line)
	}
	dis, _ := strconv.ParseFloat(m[1], 64)
	det, _ := strconv.ParseFloat(m[2], 64)
	wantDis := recs[1].Parts["distill.fine_grained"]
	if math.Abs(dis-wantDis) > 1e-3*wantDis || math.Abs(det-(recs[1].Loss-wantDis)) > 1e-3*det {
		t.Errorf("warning says %g against %g; metrics.jsonl iteration 2: distillation %g, total %g", dis, det, wantDis, recs[1].Loss)
	}
	if !exists(filepath.Join(out, "model_final.ckpt")) {
		t.Error("the warning stopped the training")
	}
}
