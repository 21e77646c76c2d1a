package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// workerCounts are the GOMAXPROCS values the worker-independence tests try;
// the first is the reference.
var workerCounts = []int{1, 2, 3, 8}

// withProcs runs fn with runtime.GOMAXPROCS(procs) and restores the previous value.
func withProcs(procs int, fn func()) {
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	fn()
}

// trainTrace is everything a few training steps of a graph produce, in a
// fixed order: for each step the losses, every named tensor, every parameter
// gradient and every parameter (after the solver), then an inference pass.
type trainTrace struct {
	names []string
	vals  [][]float32
}

func (tr *trainTrace) add(name string, v []float32) {
	tr.names = append(tr.names, name)
	tr.vals = append(tr.vals, slices.Clone(v))
}

// addStep records a step's losses (each as float32 and its rounding
// remainder, so that float64 differences show) and every named tensor of g.
func (tr *trainTrace) addStep(step int, g *Graph, losses []float64) {
	for i, l := range losses {
		tr.add(fmt.Sprintf("step %d loss %d", step, i), []float32{float32(l), float32(l - float64(float32(l)))})
	}
	tr.addTensors(fmt.Sprintf("step %d tensor ", step), g)
}

// addTensors records every named tensor of g (nil for those it does not let
// one read) under prefix+name.
func (tr *trainTrace) addTensors(prefix string, g *Graph) {
	for _, info := range g.Names() {
		v, _ := g.Tensor(info.Name)
		tr.add(prefix+info.Name, v)
	}
}

// firstDiff names the first value whose bits differ between a and b ("" if none).
func (tr *trainTrace) firstDiff(b *trainTrace) string {
	if !slices.Equal(tr.names, b.names) {
		return "different sequence of recorded values"
	}
	for k, va := range tr.vals {
		vb := b.vals[k]
		if len(va) != len(vb) {
			return fmt.Sprintf("%s: %d values, reference %d", tr.names[k], len(vb), len(va))
		}
		for i := range va {
			if math.Float32bits(va[i]) != math.Float32bits(vb[i]) {
				return fmt.Sprintf("%s[%d]: %g (bits %08x), reference %g (bits %08x)",
					tr.names[k], i, vb[i], math.Float32bits(vb[i]), va[i], math.Float32bits(va[i]))
			}
		}
	}
	return ""
}

// workersNet builds a small detector-like graph: 3x3, strided 3x3, depthwise,
// 1x1 and strided 1x1 convolutions with BatchNorm and leaky/ReLU, a residual
// add, max pooling, upsampling and concatenation, and two losses. At batch 1
// and 3 convForward splits images into row bands (20x20 and 10x10 layers)
// and channel blocks (the 128-channel 5x5 layers).
func workersNet(t *testing.T, n int) (*Graph, *ParamSet) {
	t.Helper()
	ps := NewParamSet(7)
	return workersGraph(t, ps, n, 20), ps
}

// workersGraph builds workersNet's graph on ps for batch n at hw x hw input
// (hw a multiple of 4), calling opts on the builder before Build.
func workersGraph(t *testing.T, ps *ParamSet, n, hw int, opts ...func(*Builder)) *Graph {
	t.Helper()
	b := NewBuilder(ps, []int{n, 3, hw, hw})
	out0, out1 := workersLayers(b)
	projLoss(b, "l0", out0, 1)
	projLoss(b, "l1", out1, 2)
	for _, o := range opts {
		o(b)
	}
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(n), 5))
	copy(g.Input(), randSlice(rng, len(g.Input())))
	return g
}

// workersLayers adds workersNet's layers to b and returns its two outputs.
func workersLayers(b *Builder) (out0, out1 *Tensor) {
	x := b.Input()
	c1 := b.ConvBNAct("c1", x, ConvSpec{Out: 16, K: 3, Pad: 1}, ActLeaky)                 // 20x20 (at hw 20)
	c2 := b.ConvBNAct("c2", c1, ConvSpec{Out: 32, K: 3, Stride: 2, Pad: 1}, ActLeaky)     // 10x10
	dw := b.ConvBNAct("dw", c2, ConvSpec{Out: 32, K: 3, Pad: 1, Groups: 32}, ActReLU)     // depthwise
	dw2 := b.ConvBNAct("dw2", dw, ConvSpec{Out: 32, K: 3, Stride: 2, Pad: 1, Groups: 32}, // 5x5
		ActReLU)
	// 128 channels at 5x5: batch 1 and 3 split the output channels into blocks
	pw := b.ConvBNAct("pw", dw2, ConvSpec{Out: 128, K: 1}, ActLeaky)
	short := b.ConvBNAct("short", dw, ConvSpec{Out: 128, K: 1, Stride: 2}, ActNone) // 1x1 stride 2: im2col path
	res := b.AddAct("res", pw, short, ActLeaky)
	up := b.Upsample2x("up", b.ConvBNAct("lat", res, ConvSpec{Out: 16, K: 1}, ActLeaky)) // 10x10
	cat := b.Concat("cat", up, c2)
	c3 := b.ConvBNAct("c3", cat, ConvSpec{Out: 24, K: 3, Pad: 1}, ActLeaky)
	out0 = b.Conv("out0", c3, ConvSpec{Out: 12, K: 1}, true)
	pool := b.MaxPool("pool", c1, 2, 2, 0)
	out1 = b.Conv("out1", b.Concat("cat1", pool, c3), ConvSpec{Out: 6, K: 3, Pad: 1}, true)
	return out0, out1
}

// workersRun builds the net for batch n and records three training steps with
// SGD and an inference pass.
func workersRun(t *testing.T, n int) *trainTrace {
	g, ps := workersNet(t, n)
	return trainRun(t, g, ps, false)
}

// trainRun records three training steps of g with SGD (with tensorGrads,
// every tensor's gradient too) and an inference pass.
func trainRun(t *testing.T, g *Graph, ps *ParamSet, tensorGrads bool) *trainTrace {
	t.Helper()
	sgd := NewSGD(ps, 0.9, 5e-4)
	tr := &trainTrace{}
	for step := 0; step < 3; step++ {
		losses, err := g.Step()
		if err != nil {
			t.Fatal(err)
		}
		tr.addStep(step, g, losses)
		for _, info := range g.Names() {
			if tensorGrads {
				tr.add(fmt.Sprintf("step %d tensor grad %s", step, info.Name), g.TensorGrad(info.Name))
			}
		}
		for _, p := range ps.Params() {
			if p.Trainable {
				tr.add(fmt.Sprintf("step %d grad %s", step, p.Name), p.Grad)
			}
		}
		sgd.Step(0.01)
		for _, p := range ps.Params() {
			tr.add(fmt.Sprintf("step %d param %s", step, p.Name), p.Data)
		}
	}
	if err := g.Forward(false); err != nil {
		t.Fatal(err)
	}
	tr.addTensors("infer tensor ", g)
	return tr
}

// TestWorkerCountIndependence: forward, backward, the solver and inference
// give the same bits whatever the number of workers (GOMAXPROCS), for batch
// sizes below, between and above the worker counts.
func TestWorkerCountIndependence(t *testing.T) {
	for _, n := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("batch%d", n), func(t *testing.T) {
			var ref *trainTrace
			for _, procs := range workerCounts {
				var tr *trainTrace
				withProcs(procs, func() { tr = workersRun(t, n) })
				if ref == nil {
					ref = tr
					continue
				}
				if d := ref.firstDiff(tr); d != "" {
					t.Errorf("GOMAXPROCS=%d differs from GOMAXPROCS=%d: %s", procs, workerCounts[0], d)
				}
			}
		})
	}
}

// TestSgemmWorkerIndependence: the sgemm in use (OpenBLAS single-threaded, or
// gonum's, which spreads 64x64 blocks of C over GOMAXPROCS goroutines) gives
// the same bits whatever GOMAXPROCS, on products large enough for gonum's
// parallel path, in all four transpose cases.
func TestSgemmWorkerIndependence(t *testing.T) {
	const m, n, k = 200, 150, 300
	rng := rand.New(rand.NewPCG(3, 4))
	a, b := randSlice(rng, m*k), randSlice(rng, k*n)
	c0 := randSlice(rng, m*n)
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			lda, ldb := k, n
			if ta {
				lda = m
			}
			if tb {
				ldb = k
			}
			var ref []float32
			for _, procs := range workerCounts {
				c := slices.Clone(c0)
				withProcs(procs, func() { sgemm(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 0.25, c, n) })
				if ref == nil {
					ref = c
					continue
				}
				for i := range c {
					if math.Float32bits(c[i]) != math.Float32bits(ref[i]) {
						t.Errorf("transA %v transB %v: GOMAXPROCS=%d differs at %d: %g vs %g", ta, tb, procs, i, c[i], ref[i])
						break
					}
				}
			}
		}
	}
}
