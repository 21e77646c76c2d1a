package detectortest

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"yolodistill/pkg/checkpoint"
)

// DataParallelTol are the tolerances of CompareCheckpoints between one
// process and 2 or 3 data-parallel ranks after 2 iterations of a tiny
// from-scratch detector (at 64 and 96 px, base_lr 1e-4), per checkpoint
// section: |ranks - one| / |one| over the section's values. The ranks add the same float32 terms in another
// order (shares of the weight-gradient chunks, per-rank BatchNorm sums), and
// this from-scratch network amplifies rounding fast: where rounding moves an
// activation across zero a gradient's slope changes (single velocities then
// differ by 10-50%), and a few iterations later the runs are different runs.
// One process against itself with base_lr changed by one part in 10^7 (a
// rounding-sized perturbation of the first update) is the yardstick.
// Measured, OpenBLAS SkylakeX kernels / gonum's sgemm:
//
//	               2 or 3 ranks         one process, base_lr*(1+1e-7)
//	weights        1.6e-4 / 5.8e-5      2.7e-4 / 9.4e-5
//	BatchNorm      3.8e-7 / 3.6e-7      5.4e-7 / 5.8e-7
//	velocities     1.1e-2 / 4.0e-3      1.8e-2 / 6.5e-3
//
// Without synchronised BatchNorm 2 ranks differ by 6e-2 / 1e-1 / 2.2, with
// each rank stepping on its own gradients by 2e-2 / 2e-2 / 1.0.
var DataParallelTol = map[string]float64{checkpoint.SectionParams: 2e-3, checkpoint.SectionBNStats: 1e-5, checkpoint.SectionOptimizer: 0.1}

// CompareCheckpoints compares got with ref section by section: the
// relative difference is |got - ref| / |ref| over all of a section's values
// (Euclidean norms), within the section's tolerance. The largest difference
// of one value is logged: single values can differ more, where rounding
// moved an activation across zero and changed a gradient's slope.
func CompareCheckpoints(t testing.TB, what string, got, ref *checkpoint.Checkpoint, tol map[string]float64) {
	t.Helper()
	if got.State.Iteration != ref.State.Iteration || !bytes.Equal(got.State.DataOrder, ref.State.DataOrder) {
		t.Errorf("%s: state %d %s, want %d %s", what, got.State.Iteration, got.State.DataOrder, ref.State.Iteration, ref.State.DataOrder)
	}
	if len(got.Sections) != len(ref.Sections) {
		t.Fatalf("%s: %d sections, want %d", what, len(got.Sections), len(ref.Sections))
	}
	for si, sec := range ref.Sections {
		var diff2, ref2, worst float64
		where := ""
		for _, want := range sec.Tensors {
			g := got.Sections[si].Tensor(want.Name)
			if g == nil || len(g.Data) != len(want.Data) {
				t.Fatalf("%s: no %s/%s of %d values", what, sec.Name, want.Name, len(want.Data))
			}
			for i, v := range want.Data {
				d := float64(g.Data[i]) - float64(v)
				diff2 += d * d
				ref2 += float64(v) * float64(v)
				if math.Abs(d) > worst {
					worst, where = math.Abs(d), fmt.Sprintf("%s[%d] = %g, want %g", want.Name, i, g.Data[i], v)
				}
			}
		}
		rel := math.Sqrt(diff2 / ref2)
		if rel > tol[sec.Name] {
			t.Errorf("%s: %s differ by %.2g (tolerance %.2g); the most at %s", what, sec.Name, rel, tol[sec.Name], where)
		} else {
			t.Logf("%s: %s differ by %.2g (tolerance %.2g); the most at %s", what, sec.Name, rel, tol[sec.Name], where)
		}
	}
}
