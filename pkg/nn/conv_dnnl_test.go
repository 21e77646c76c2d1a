//go:build dnnl && cgo

package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// TestConvKernelsWithoutDNNL keeps our own convolution kernels tested in a
// oneDNN build (TestConvKernels then tests oneDNN's).
func TestConvKernelsWithoutDNNL(t *testing.T) {
	useDNNL = false
	defer func() { useDNNL = true }()
	TestConvKernels(t)
}

// TestDNNLMatchesOwnKernels compares oneDNN's convolutions with our kernels
// and both with the float64 definition, at the layer shapes of the two
// detectors (channels multiple of 16 and not, the RGB stem, depthwise,
// uneven weight-gradient chunks). Errors are relative to the largest
// reference value: both within 1e-5 of the definition (float32 sums over up
// to Cin*K*K or N*OH*OW terms in different orders), so within 2e-5 of each other.
func TestDNNLMatchesOwnKernels(t *testing.T) {
	const tol = 1e-5
	cases := []struct {
		name                                    string
		n, c, h, w, cout, k, stride, pad, group int
		bias                                    bool
	}{
		{"resnet stem 7x7 s2", 2, 3, 32, 30, 64, 7, 2, 3, 1, false},
		{"3x3 s1 64->64", 3, 64, 12, 12, 64, 3, 1, 1, 1, false},
		{"3x3 s2 64->128", 2, 64, 13, 11, 128, 3, 2, 1, 1, false},
		{"3x3 s1 48->40 (not multiples of 16)", 2, 48, 9, 9, 40, 3, 1, 1, 1, false},
		{"1x1 256->75 bias (head output)", 5, 256, 5, 5, 75, 1, 1, 0, 1, true},
		{"1x1 s2 shortcut", 2, 64, 10, 10, 128, 1, 2, 0, 1, false},
		{"depthwise 3x3 s1 64", 8, 64, 10, 10, 64, 3, 1, 1, 64, false},
		{"depthwise 3x3 s2 32 odd", 2, 32, 11, 9, 32, 3, 2, 1, 32, false},
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newConvGeom(tc.n, tc.c, tc.h, tc.w, tc.cout, tc.k, tc.stride, tc.pad, tc.group)
			x := randSlice(rng, g.N*g.C*g.H*g.W)
			w := randSlice(rng, g.Cout*g.CKK)
			var bias []float32
			if tc.bias {
				bias = randSlice(rng, g.Cout)
			}
			dy := randSlice(rng, g.N*g.Cout*g.OH*g.OW)
			ref := naiveConv(&g, x, w, bias)
			rdx, rdw := naiveConvGrads(&g, x, w, dy)
			run := func(dnnl bool) (y, dx, dw []float32) {
				useDNNL = dnnl
				defer func() { useDNNL = true }()
				var ws, acc workspace
				y = make([]float32, len(dy))
				dx = make([]float32, len(x))
				dw = make([]float32, len(w))
				convForward(&g, &ws, x, w, bias, y)
				convBackwardData(&g, &ws, nil, w, dy, dx, 0)
				convBackwardWeight(&g, &ws, &acc, nil, x, dy, dw, 0)
				return
			}
			y0, dx0, dw0 := run(false)
			y1, dx1, dw1 := run(true)
			for _, c := range []struct {
				what      string
				own, dnnl []float32
				ref       []float64
			}{{"forward", y0, y1, ref}, {"dx", dx0, dx1, rdx}, {"dw", dw0, dw1, rdw}} {
				if e := maxRelErr(c.own, c.ref); e > tol {
					t.Errorf("%s, our kernels: max rel err %.3g > %g", c.what, e, tol)
				}
				if e := maxRelErr(c.dnnl, c.ref); e > tol {
					t.Errorf("%s, oneDNN: max rel err %.3g > %g", c.what, e, tol)
				}
				ref32 := make([]float64, len(c.own))
				for i, v := range c.own {
					ref32[i] = float64(v)
				}
				if e := maxRelErr(c.dnnl, ref32); e > 2*tol {
					t.Errorf("%s: oneDNN vs our kernels: max rel err %.3g > %g", c.what, e, 2*tol)
				}
			}
		})
	}
}

// TestDNNLBatchInvariance: the forward (training; inference with bias and
// activation) and input-gradient convolutions through oneDNN give the same
// bits for 1, 2, 3 and 8 workers, i.e. whatever the number of images per
// primitive call (dnnlImageRuns) and the number of OpenMP threads of the
// training kinds' one call (dnnlTeam, and without it), at every kind of
// layer of the two detectors: the property that keeps results independent
// of GOMAXPROCS.
// It runs on whatever CPU (and oneDNN instruction set) runs the tests.
func TestDNNLBatchInvariance(t *testing.T) {
	cases := []struct {
		name                                 string
		c, h, w, cout, k, stride, pad, group int
	}{
		{"resnet stem 7x7 s2", 3, 32, 30, 64, 7, 2, 3, 1},
		{"3x3 s1 64->64", 64, 12, 12, 64, 3, 1, 1, 1},
		{"3x3 s2 64->128", 64, 13, 11, 128, 3, 2, 1, 1},
		{"3x3 s1 512->512 deep, small", 512, 5, 5, 512, 3, 1, 1, 1},
		{"3x3 s1 48->40 (not multiples of 16)", 48, 9, 9, 40, 3, 1, 1, 1},
		{"1x1 256->75 (head output)", 256, 5, 5, 75, 1, 1, 0, 1},
		{"1x1 32->64 wide", 32, 40, 40, 64, 1, 1, 0, 1},
		{"1x1 s2 shortcut", 64, 10, 10, 128, 1, 2, 0, 1},
		{"depthwise 3x3 s1 64", 64, 10, 10, 64, 3, 1, 1, 64},
		{"depthwise 3x3 s2 32 odd", 32, 11, 9, 32, 3, 2, 1, 32},
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	rng := rand.New(rand.NewPCG(8, 8))
	const n = 8
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newConvGeom(n, tc.c, tc.h, tc.w, tc.cout, tc.k, tc.stride, tc.pad, tc.group)
			x := randSlice(rng, g.N*g.C*g.H*g.W)
			w := randSlice(rng, g.Cout*g.CKK)
			bias := randSlice(rng, g.Cout)
			dy := randSlice(rng, g.N*g.Cout*g.OH*g.OW)
			var want [3][]float32
			defer func() { dnnlTeam = true }()
			for _, run := range []struct {
				workers int
				team    bool
			}{{1, true}, {2, true}, {3, true}, {8, true}, {2, false}, {3, false}, {8, false}} {
				workers := run.workers
				runtime.GOMAXPROCS(workers)
				dnnlTeam = run.team
				var ws workspace
				got := [3][]float32{make([]float32, len(dy)), make([]float32, len(dy)), make([]float32, len(x))}
				if !dnnlForward(&g, &ws, x, w, nil, got[0], 0) || !dnnlForwardAct(&g, &ws, x, w, bias, got[1], ActLeaky, 0) ||
					!dnnlBackwardData(&g, &ws, nil, w, dy, got[2], 0) {
					t.Skip("oneDNN has no primitive for this shape here")
				}
				if workers == 1 {
					want = got
					continue
				}
				for i, what := range []string{"forward", "forward inference (bias, leaky)", "input gradient"} {
					for j := range got[i] {
						if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
							t.Fatalf("%s: %d workers (one call on OpenMP threads: %v) differ from 1 at %d: %v vs %v", what, workers, run.team, j, got[i][j], want[i][j])
						}
					}
				}
			}
		})
	}
}

// TestDNNLWeightGradOwnLayoutSum: the weight gradient with the chunk
// partials added in oneDNN's layout and reordered once gives the same bits
// as with each partial reordered to the plain layout and added there (the
// same additions of the same floats), for 3, 4 and 8 images (3 and 4
// chunks, uneven ones), padded layouts (75 outputs) and depthwise weights,
// at 1 to 3 workers.
func TestDNNLWeightGradOwnLayoutSum(t *testing.T) {
	cases := []struct {
		name                                    string
		n, c, h, w, cout, k, stride, pad, group int
	}{
		{"resnet stem 7x7 s2", 4, 3, 20, 18, 64, 7, 2, 3, 1},
		{"3x3 s1 64->64", 8, 64, 9, 9, 64, 3, 1, 1, 1},
		{"3x3 s2 32->64 uneven chunks", 5, 32, 11, 9, 64, 3, 2, 1, 1},
		{"1x1 128->75 (head output, padded)", 3, 128, 5, 5, 75, 1, 1, 0, 1},
		{"1x1 48->40 (not multiples of 16)", 8, 48, 6, 6, 40, 1, 1, 0, 1},
		{"depthwise 3x3 s1 64", 8, 64, 8, 8, 64, 3, 1, 1, 64},
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	rng := rand.New(rand.NewPCG(9, 9))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newConvGeom(tc.n, tc.c, tc.h, tc.w, tc.cout, tc.k, tc.stride, tc.pad, tc.group)
			x := randSlice(rng, g.N*g.C*g.H*g.W)
			dy := randSlice(rng, g.N*g.Cout*g.OH*g.OW)
			run := func(own bool) []float32 {
				dnnlWgradOwnSum = own
				defer func() { dnnlWgradOwnSum = true }()
				var ws, acc workspace
				dw := make([]float32, g.Cout*g.CKK)
				if !dnnlBackwardWeight(&g, &ws, &acc, nil, x, dy, dw, 0) {
					t.Skip("oneDNN has no primitive for this shape here")
				}
				return dw
			}
			runtime.GOMAXPROCS(2)
			want := run(false)
			for _, workers := range []int{1, 2, 3} {
				runtime.GOMAXPROCS(workers)
				got := run(true)
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("%d workers: dw[%d] = %v, summed plain %v", workers, j, got[j], want[j])
					}
				}
			}
		})
	}
}

// TestDNNLGradientReordersShared: training steps of workersNet (3x3,
// strided, depthwise, 1x1 and strided 1x1 convolutions, head convolutions
// with a bias) give the same bits with the weight gradient's partials added
// in oneDNN's layout and dy's reorder shared by a convolution's two gradient
// ops as with neither, at batches 3 and 8 (uneven and even chunks) and 1
// to 3 workers; and dy was read back from the shared buffer.
func TestDNNLGradientReordersShared(t *testing.T) {
	for _, n := range []int{3, 8} {
		t.Run(fmt.Sprintf("batch%d", n), func(t *testing.T) {
			dnnlDyShared, dnnlWgradOwnSum = false, false
			var ref *trainTrace
			withProcs(2, func() { ref = workersRun(t, n) })
			dnnlDyShared, dnnlWgradOwnSum = true, true
			for _, procs := range []int{1, 2, 3} {
				before := dnnlDyReused.Load()
				var tr *trainTrace
				withProcs(procs, func() { tr = workersRun(t, n) })
				if d := ref.firstDiff(tr); d != "" {
					t.Errorf("GOMAXPROCS=%d, shared reorders differ from unshared: %s", procs, d)
				}
				if dnnlDyReused.Load() == before {
					t.Errorf("GOMAXPROCS=%d: no gradient op read dy back from the shared buffer", procs)
				}
			}
		})
	}
}

// TestDNNLSharedDyNotStale: a convolution whose input gradient is not needed
// (on the image) and whose output's gradient changes from Step to Step (a
// squared loss, new inputs) is the only filler of the shared dy buffer: its
// weight gradient must reorder dy again in every Step, never read the
// previous Step's back.
func TestDNNLSharedDyNotStale(t *testing.T) {
	run := func(shared bool) [][]float32 {
		dnnlDyShared = shared
		defer func() { dnnlDyShared = true }()
		ps := NewParamSet(3)
		b := NewBuilder(ps, []int{4, 16, 8, 8})
		y := b.Conv("only", b.Input(), ConvSpec{Out: 32, K: 3, Pad: 1}, false)
		b.Loss("sq", []*Tensor{y}, func(ins, grads [][]float32) float64 {
			var s float64
			for i, v := range ins[0] {
				s += float64(v) * float64(v) / 2
				grads[0][i] = v
			}
			return s
		})
		g, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(4, 4))
		var grads [][]float32
		for range 3 {
			copy(g.Input(), randSlice(rng, len(g.Input())))
			if _, err := g.Step(); err != nil {
				t.Fatal(err)
			}
			grads = append(grads, slices.Clone(ps.Params()[0].Grad))
		}
		return grads
	}
	want, got := run(false), run(true)
	for s := range want {
		for i := range want[s] {
			if math.Float32bits(got[s][i]) != math.Float32bits(want[s][i]) {
				t.Fatalf("step %d: weight gradient [%d] %v with the shared buffer, %v without", s, i, got[s][i], want[s][i])
			}
		}
	}
}
