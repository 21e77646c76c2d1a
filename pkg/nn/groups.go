package nn

import (
	"fmt"
	"os"
	"sync"
)

// Inference in image groups.
//
// An inference forward (Forward(false)) of a graph without losses computes
// every image on its own: BatchNorm uses its running statistics, and every
// other layer is per image. With several workers and images, Forward splits
// the batch into one group of consecutive images per worker (as parallelFor
// splits work items) and runs each group through the whole network on its
// own goroutine, its convolutions on that goroutine alone, instead of
// spreading every layer over the workers and waiting for all of them at
// every layer. The groups' graphs are built once, from the layer calls the
// Builder recorded, over the same parameters and with buffers of their own
// (ParamSet.groupArena); Tensor gathers their results into whole-batch
// tensors. Each image is computed as the whole batch computes it (our
// convolutions split an image's work by the whole batch's size: splitN;
// oneDNN computes an image the same way whatever else is in its call, as
// TestDNNLBatchInvariance checks), so results are the same bits with or
// without groups, for every worker count (TestInferGroups).

// useGroups lets inference run in image groups (tests turn it off to
// compare; YOLODISTILL_NO_GROUPS=1 turns it off, for timings).
var useGroups = os.Getenv("YOLODISTILL_NO_GROUPS") == ""

// tensorMap maps a graph's tensors to those of a group's graph.
type tensorMap map[*Tensor]*Tensor

// all maps each of ts.
func (m tensorMap) all(ts []*Tensor) []*Tensor {
	out := make([]*Tensor, len(ts))
	for i, t := range ts {
		out[i] = m[t]
	}
	return out
}

// replayStep is one recorded layer call: f makes it again on another
// builder; out is the tensor it returned here (nil for SetBN).
type replayStep struct {
	out *Tensor
	f   func(r *Builder, m tensorMap) *Tensor
}

// record appends a layer call to the builder's log (public layer methods
// call it as they return; the layers they build from are not recorded
// separately).
func (b *Builder) record(out *Tensor, f func(r *Builder, m tensorMap) *Tensor) {
	if b.err == nil {
		b.log = append(b.log, replayStep{out, f})
	}
}

// groupSet is a graph's image groups: graph k computes images [lo[k], lo[k+1]).
type groupSet struct {
	graphs []*Graph
	lo     []int
}

// inferGroups returns how many image groups an inference forward of g runs
// in: min(workers, images), or 1 when the graph has losses or is itself a
// group.
func (g *Graph) inferGroups() int {
	if g.vm != nil || len(g.losses) > 0 || g.inGroup() {
		return 1
	}
	return groupsFor(g.b.input.shape[0])
}

// inGroup reports whether g is an image group's graph.
func (g *Graph) inGroup() bool { return g.b.splitN > 0 }

// groupsFor returns the number of image groups an inference forward of n
// images runs in (1: one pass).
func groupsFor(n int) int {
	if !useGroups {
		return 1
	}
	return max(1, min(numWorkers(), n))
}

// groupGraphs returns the graph's n image groups, building them on first use
// (again when n changed).
func (g *Graph) groupGraphs(n int) (*groupSet, error) {
	if g.groups != nil && len(g.groups.graphs) == n {
		return g.groups, nil
	}
	b := g.b
	N := b.input.shape[0]
	gs := &groupSet{}
	for k := range n {
		lo, hi := k*N/n, (k+1)*N/n
		shape := append([]int{hi - lo}, b.input.shape[1:]...)
		r := newBuilder(b.ps, b.ps.groupArena(k), shape)
		r.splitN = N
		r.bn = b.bn0
		if b.reuse {
			r.ReuseBuffers(b.keep...)
		}
		m := tensorMap{b.input: r.input}
		for _, s := range b.log {
			if t := s.f(r, m); s.out != nil {
				m[s.out] = t
			}
		}
		gg, err := r.Build()
		if err != nil {
			return nil, fmt.Errorf("nn: building image group %d of %d: %w", k, n, err)
		}
		if len(gg.fwdT) != len(g.fwdT) {
			return nil, fmt.Errorf("nn: image group %d has %d layers, the graph %d", k, len(gg.fwdT), len(g.fwdT))
		}
		gg.planLinks()
		gs.graphs = append(gs.graphs, gg)
		gs.lo = append(gs.lo, lo)
	}
	gs.lo = append(gs.lo, N)
	g.groups = gs
	g.gathered = map[*Tensor][]float32{}
	return gs, nil
}

// forwardGroups runs an inference forward as n image groups.
func (g *Graph) forwardGroups(n int) error {
	gs, err := g.groupGraphs(n)
	if err != nil {
		return err
	}
	per := len(g.b.inBuf) / g.b.input.shape[0]
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k, gg := range gs.graphs {
		copy(gg.b.inBuf, g.b.inBuf[gs.lo[k]*per:gs.lo[k+1]*per])
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					errs[k] = fmt.Errorf("nn: image group %d: %v", k, r)
				}
			}()
			errs[k] = gg.Forward(false)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// gather returns tensor t of the last grouped forward: the groups' values
// of it one after the other, in a buffer of the graph's own (nil when a
// group has no readable value for it).
func (g *Graph) gather(t *Tensor, name string) []float32 {
	buf, ok := g.gathered[t]
	if !ok {
		buf = make([]float32, prod(t.shape))
		g.gathered[t] = buf
	}
	per := len(buf) / t.shape[0]
	for k, gg := range g.groups.graphs {
		v, _ := gg.Tensor(name)
		if len(v) != (g.groups.lo[k+1]-g.groups.lo[k])*per {
			return nil
		}
		copy(buf[g.groups.lo[k]*per:], v)
	}
	return buf
}

// The op.native bits of a fused ConvBNAct: the arguments of its oneDNN
// forward primitive (source 0, destination 2) given in the primitive's own
// layout, as nn_conv_exec's packed mask takes them.
const (
	nativeIn  = 1 << 0 // its input is in oneDNN's own layout
	nativeOut = 1 << 2 // it writes its output in oneDNN's own layout
)

// planLinks lets the inference convolutions of an image group pass an
// activation on in oneDNN's own layout (no reorder out of it and back in)
// where a fused ConvBNAct's output is read only by fused ConvBNActs whose
// primitives take that layout (dnnlLinkable), and nobody can read it back:
// the group keeps only named tensors (ReuseBuffers), neither it nor the
// readers' pre-BatchNorm outputs among them, and those are read by their
// ConvBNAct alone. The values are the same; only the reorders go.
func (g *Graph) planLinks() {
	if !useDNNL || g.kept == nil || !g.inGroup() {
		return
	}
	readers := map[*Tensor][]*Tensor{}
	for _, t := range g.fwdT {
		for _, in := range t.inputs {
			readers[in] = append(readers[in], t)
		}
	}
	for _, t := range g.fwdT {
		if t.fusedFrom == nil || t.op.infer == nil || g.kept[t] || len(readers[t]) == 0 {
			continue
		}
		var cons []*Tensor
		for _, c := range readers[t] {
			rc := readers[c]
			if !c.op.fused || g.kept[c] || len(rc) != 1 || rc[0].fusedFrom != t || rc[0].op.infer == nil {
				cons = nil
				break
			}
			cons = append(cons, rc[0])
		}
		if cons == nil || !dnnlLinkable(t, cons) {
			continue
		}
		t.op.native |= nativeOut
		for _, y := range cons {
			y.op.native |= nativeIn
		}
	}
}
