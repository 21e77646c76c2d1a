package nn

import (
	"fmt"
	"testing"
)

// TestSharedGradBuffers: a training graph whose activation gradients share
// buffers by lifetime (the default) computes the same bits as one that keeps
// every gradient in its own buffer (KeepGrads()): losses, every tensor,
// parameter gradients and parameters over several SGD steps of two graphs
// (two input sizes, multi-scale style) on one ParamSet run in turn, and the
// gradients kept by name (a fan-out tensor among them, whose gradient is a
// gorgonia sum) match too. A gradient buffer reused while still to be read
// would change them.
func TestSharedGradBuffers(t *testing.T) {
	kept := []string{"c2", "res", "pool", "up", "cat"}
	run := func(recordGrads bool, opts ...func(*Builder)) (*trainTrace, int) {
		ps := NewParamSet(7)
		gs := []*Graph{workersGraph(t, ps, 3, 20, opts...), workersGraph(t, ps, 3, 28, opts...)}
		sgd := NewSGD(ps, 0.9, 5e-4)
		tr := &trainTrace{}
		for step := 0; step < 4; step++ {
			g := gs[step%2]
			losses, err := g.Step()
			if err != nil {
				t.Fatal(err)
			}
			tr.addStep(step, g, losses)
			if recordGrads {
				for _, name := range kept {
					gr := g.TensorGrad(name)
					if gr == nil {
						t.Fatalf("step %d: no gradient for kept tensor %s", step, name)
					}
					tr.add(fmt.Sprintf("step %d tensor grad %s", step, name), gr)
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
		return tr, ps.ArenaBytes()
	}
	keepAll := func(b *Builder) { b.KeepGrads() }
	keepSome := func(b *Builder) { b.KeepGrads(kept...) }
	ref, refBytes := run(true, keepAll)
	some, _ := run(true, keepSome)
	if d := ref.firstDiff(some); d != "" {
		t.Errorf("sharing with kept gradients differs from no sharing: %s", d)
	}
	ref, _ = run(false, keepAll)
	shared, sharedBytes := run(false)
	if d := ref.firstDiff(shared); d != "" {
		t.Errorf("sharing differs from no sharing: %s", d)
	}
	if sharedBytes >= refBytes {
		t.Errorf("arena with shared gradient buffers %d bytes, without %d: nothing shared", sharedBytes, refBytes)
	}
	t.Logf("arena %d bytes without sharing, %d with", refBytes, sharedBytes)

	// Gradients not kept are not readable; a bad name fails Build.
	ps := NewParamSet(7)
	g := workersGraph(t, ps, 1, 20)
	if _, err := g.Step(); err != nil {
		t.Fatal(err)
	}
	if g.TensorGrad("c2") != nil {
		t.Errorf("TensorGrad of a gradient not kept: want nil")
	}
	b := NewBuilder(NewParamSet(7), []int{1, 3, 8, 8})
	projLoss(b, "l", b.Conv("c", b.Input(), ConvSpec{Out: 2, K: 1}, false), 1)
	b.KeepGrads("nope")
	if _, err := b.Build(); err == nil {
		t.Errorf("KeepGrads with an unknown name: Build gave no error")
	}
}
