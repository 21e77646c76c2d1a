package nn

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestStepAllocations: steady-state Steps of a graph with fan-out, residual
// adds, concat and two losses allocate no activation-sized memory: the bytes
// allocated per step hardly grow with the input size (gorgonia's tape
// overhead does not depend on it).
func TestStepAllocations(t *testing.T) {
	measure := func(hw int) (perStep float64, act int) {
		ps := NewParamSet(1)
		b := NewBuilder(ps, []int{2, 3, hw, hw})
		x := b.Input()
		s1 := b.ConvBNAct("s1", x, ConvSpec{Out: 16, K: 3, Stride: 2, Pad: 1}, ActReLU)
		s2 := b.ConvBNAct("s2", s1, ConvSpec{Out: 16, K: 3, Stride: 2, Pad: 1, Groups: 16}, ActReLU)
		route := b.ConvBNAct("route", s2, ConvSpec{Out: 16, K: 1}, ActLeaky)
		out0 := b.Conv("out0", route, ConvSpec{Out: 8, K: 1}, true)
		up := b.Upsample2x("up", route)
		cat := b.Concat("cat", up, s1)
		res := b.ConvBNAct("res", cat, ConvSpec{Out: 32, K: 3, Pad: 1}, ActNone)
		sum := b.AddAct("sum", res, cat, ActReLU)
		out1 := b.Conv("out1", b.MaxPool("pool", sum, 2, 2, 0), ConvSpec{Out: 8, K: 1}, true)
		projLoss(b, "l0", out0, 1)
		projLoss(b, "l1", out1, 2)
		g, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 1))
		copy(g.Input(), randSlice(rng, len(g.Input())))
		sgd := NewSGD(ps, 0.9, 5e-4)
		for i := 0; i < 2; i++ {
			g.Step()
			sgd.Step(0.01)
		}
		for _, info := range g.Names() {
			act += 4 * prod(info.Shape)
		}
		const steps = 5
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for i := 0; i < steps; i++ {
			if _, err := g.Step(); err != nil {
				t.Fatal(err)
			}
			sgd.Step(0.01)
		}
		runtime.ReadMemStats(&m1)
		return float64(m1.TotalAlloc-m0.TotalAlloc) / steps, act
	}
	small, actSmall := measure(32)
	big, actBig := measure(64)
	t.Logf("bytes per step: %.0f at 32 px (activations %d), %.0f at 64 px (activations %d)", small, actSmall, big, actBig)
	// One activation-sized buffer per step would be a large fraction of the
	// growth; gonum's pure-Go sgemm (no openblas tag) allocates a few percent
	// of it in per-block work slices.
	if grow := big - small; grow > 0.1*float64(actBig-actSmall) {
		t.Errorf("per-step allocation grows with the activations: +%.0f bytes for +%d activation bytes", grow, actBig-actSmall)
	}
}
