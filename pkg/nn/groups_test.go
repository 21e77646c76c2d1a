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
		for _, info := range g.Names() {
			v, _ := g.Tensor(info.Name)
			tr.add(fmt.Sprintf("pass %d tensor %s", pass, info.Name), v)
		}
	}
	return tr
}

// TestInferGroups: an inference forward in image groups (one per worker)
// gives the same bits as one pass over the batch, for batches that split
// evenly and unevenly, with and without shared buffers (ReuseBuffers: the
// same tensors readable, the others nil), whatever the worker count; and the
// groups really ran.
func TestInferGroups(t *testing.T) {
	defer func(v bool) { useGroups = v }(useGroups)
	for _, keep := range [][]string{nil, {"out0", "alias", "c2"}} {
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
				}
			})
		}
	}
}
