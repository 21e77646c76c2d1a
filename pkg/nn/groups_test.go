package nn

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// groupsGraph builds workersNet's layers without losses, and a standalone
// BatchNorm, activation, an alias and a BatchNorm configuration change (the
// layer calls the groups replay), for batch n at 20x20; the BatchNorm running
// statistics are random so that inference BatchNorm does something.
func groupsGraph(t *testing.T, n int, keep []string) *Graph {
	t.Helper()
	ps := NewParamSet(7)
	b := NewBuilder(ps, []int{n, 3, 20, 20})
	out0, out1 := workersLayers(b)
	b.SetBN(BNConfig{Eps: 1e-3, Momentum: 0.9})
	bn := b.BNAct("bn", out0, ActLeaky)
	b.Name("alias", b.Act("act", bn, ActReLU))
	b.Name("out1.alias", out1)
	// A chain of convolutions whose activations the groups may pass on in
	// oneDNN's layout (k1 -> k2 -> k3 and k2 -> k2b: two readers), the
	// last pre-BN output k3.conv kept (computed on demand from k2).
	k1 := b.ConvBNAct("k1", out0, ConvSpec{Out: 32, K: 3, Pad: 1}, ActLeaky)
	k2 := b.ConvBNAct("k2", k1, ConvSpec{Out: 32, K: 3, Pad: 1}, ActReLU)
	b.ConvBNAct("k3", k2, ConvSpec{Out: 16, K: 1}, ActLeaky)
	b.ConvBNAct("k2b", k2, ConvSpec{Out: 32, K: 3, Stride: 2, Pad: 1}, ActNone)
	if keep != nil {
		b.ReuseBuffers(keep...)
	}
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, uint64(n)))
	for _, p := range ps.Params() {
		switch {
		case strings.HasSuffix(p.Name, ".mean"):
			copy(p.Data, randSlice(rng, len(p.Data)))
		case strings.HasSuffix(p.Name, ".var"):
			for i := range p.Data {
				p.Data[i] = 0.5 + rng.Float32()
			}
		}
	}
	return g
}

// groupsRun runs two inference forwards (two inputs) and records every
// tensor the graph lets one read, as nil for those it does not.
func groupsRun(t *testing.T, g *Graph, n int) *trainTrace {
	t.Helper()
	tr := &trainTrace{}
	rng := rand.New(rand.NewPCG(uint64(n), 5))
	for pass := range 2 {
		copy(g.Input(), randSlice(rng, len(g.Input())))
		if err := g.Forward(false); err != nil {
			t.Fatal(err)
		}
		tr.addTensors(fmt.Sprintf("pass %d tensor ", pass), g)
	}
	return tr
}

// TestInferGroups: an inference forward in image groups (one per worker)
// gives the same bits as one pass over the batch, for batches that split
// evenly and unevenly, with and without shared buffers (ReuseBuffers: the
// same tensors readable, the others nil), whatever the worker count; and the
// groups really ran. With oneDNN, consecutive convolutions of a group pass
// activations on in oneDNN's layout (planLinks) where nobody can read them:
// the same bits again, and a pre-BN output kept (k3.conv, computed on demand
// from k2) keeps its input plain.
func TestInferGroups(t *testing.T) {
	defer func(v bool) { useGroups = v }(useGroups)
	links := 0
	for _, keep := range [][]string{nil, {"out0", "alias", "c2", "k3", "k2b"}, {"out0", "k3.conv", "k2b"}} {
		for _, n := range []int{3, 5, 8} {
			t.Run(fmt.Sprintf("batch%d/reuse%v", n, keep != nil), func(t *testing.T) {
				useGroups = false
				var ref *trainTrace
				withProcs(2, func() { ref = groupsRun(t, groupsGraph(t, n, keep), n) })
				nilTensors := 0
				for _, v := range ref.vals {
					if v == nil {
						nilTensors++
					}
				}
				if (nilTensors > 0) != (keep != nil) {
					t.Fatalf("%d tensors unreadable (ReuseBuffers %v)", nilTensors, keep)
				}
				useGroups = true
				for _, procs := range []int{1, 2, 3, 4} {
					var tr *trainTrace
					var g *Graph
					withProcs(procs, func() {
						g = groupsGraph(t, n, keep)
						tr = groupsRun(t, g, n)
					})
					if want := min(procs, n); want > 1 && (g.groups == nil || len(g.groups.graphs) != want || !g.groupedRun) {
						t.Fatalf("GOMAXPROCS=%d: the forward did not run in %d image groups", procs, want)
					} else if want == 1 && g.groupedRun {
						t.Fatalf("GOMAXPROCS=%d: a forward in image groups", procs)
					}
					if d := ref.firstDiff(tr); d != "" {
						t.Errorf("GOMAXPROCS=%d in image groups differs from one pass: %s", procs, d)
					}
					if g.groups == nil {
						continue
					}
					for _, gg := range g.groups.graphs {
						for _, o := range gg.fwd {
							if o.native&nativeOut != 0 {
								links++
								if keep == nil {
									t.Fatalf("%s passes its layout on in a graph whose tensors are all readable", o.label)
								}
							}
						}
					}
				}
			})
		}
	}
	if useDNNL && links == 0 {
		t.Error("no inference convolution passed its oneDNN layout on")
	}
	t.Logf("%d links (oneDNN layouts passed on) over the runs", links)
}

// TestReusableBytes: a training graph reuses the set's buffers and an
// inference graph in image groups those of the groups, not each other's:
// ReusableBytes reports the kind the new graph would use.
func TestReusableBytes(t *testing.T) {
	withProcs(2, func() {
		ps := NewParamSet(7)
		tr := workersGraph(t, ps, 4, 20)
		if _, err := tr.Step(); err != nil {
			t.Fatal(err)
		}
		train := ps.ReusableBytes(true, 4)
		if train == 0 || ps.ReusableBytes(false, 4) != 0 || ps.ReusableBytes(false, 1) != train {
			t.Fatalf("after a training step: reusable %d for training, %d for grouped inference, %d for one image",
				train, ps.ReusableBytes(false, 4), ps.ReusableBytes(false, 1))
		}
		b := NewBuilder(ps, []int{4, 3, 20, 20})
		out0, _ := workersLayers(b)
		b.ReuseBuffers(out0.Name())
		g, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Forward(false); err != nil {
			t.Fatal(err)
		}
		infer := ps.ReusableBytes(false, 4)
		if infer == 0 || ps.ReusableBytes(true, 4) != train || ps.ArenaBytes() != train+infer {
			t.Fatalf("after a grouped inference: reusable %d for training (was %d), %d for inference, %d in all",
				ps.ReusableBytes(true, 4), train, infer, ps.ArenaBytes())
		}
	})
}
