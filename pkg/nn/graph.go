package nn

import (
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"
)

// TensorInfo describes a named tensor of a graph.
type TensorInfo struct {
	Name   string
	Shape  []int
	Kind   string // "input", "conv", "bn+leaky0.1", "maxpool", ...
	FLOPs  int64  // forward floating-point operations for the whole batch (2 per multiply-add; convolutions only)
	Params int    // trainable scalars owned by the layer (0 for aliases)
	Alias  bool   // registered through Builder.Name
}

// Graph is a built static-shape graph. Its layer buffers live in its
// ParamSet's arena, shared with the other graphs on that set: slices returned
// by Tensor and TensorGrad are overwritten by the next Forward or Step of any
// of them. A Graph is not safe for concurrent use; graphs sharing a ParamSet
// must not run concurrently either.
type Graph struct {
	b        *Builder
	st       *graphState
	fwd      []*kop
	fwdIns   [][]G.Value
	fwdT     []*Tensor
	gen      int // arena generation the ops are bound to
	bound    bool
	infos    []TensorInfo
	byName   map[string]*Tensor
	losses   []*lossRec
	lossVals []float64
	vm       G.VM
	wrt      []*Param
	wrtGrads []*G.Node
	unreach  []*Param         // trainable parameters of this graph the loss does not reach
	fusedRun bool             // the last run was Forward(false): fused layers were skipped
	kept     map[*Tensor]bool // ReuseBuffers: the readable tensors (nil: all)
	gradKept map[*Tensor]bool // shared gradient buffers: the tensors whose TensorGrad is readable (nil: all)
	guard    *tapeGuard       // shared gradient buffers: checks that the tape runs the ops in the planned order
	// Inference in image groups (groups.go): the groups' graphs, whether
	// the last forward ran in them, and the whole-batch tensors gathered
	// from them.
	groups     *groupSet
	groupedRun bool
	gathered   map[*Tensor][]float32
}

// tapeGuard checks, as Step runs, that the tape machine calls the graph's ops
// in the order shareGradSlots planned the buffers' lifetimes for: a
// different order could let an op overwrite a gradient that is still to be
// read, so Step fails instead.
type tapeGuard struct {
	order []*kop
	next  int
}

// check records that o runs now.
func (tg *tapeGuard) check(o *kop) error {
	if tg.next >= len(tg.order) || tg.order[tg.next] != o {
		return fmt.Errorf("nn: %s: the tape runs the ops in another order than planned for the shared gradient buffers", o.label)
	}
	tg.next++
	return nil
}

// shareGradSlots reassigns the arena slots of the backward ops of a training
// graph so that gradient buffers whose lifetimes do not overlap share a slot
// (Builder.KeepGrads turns it off or keeps some gradients readable). It
// follows the tape machine's own order, the reverse of gorgonia's stable
// topological sort (the order gorgonia.Compile uses); Step checks that the
// tape keeps to it (tapeGuard).
//
// A value lives from the op that writes it to the last node that reads it.
// A gorgonia op of its own (a fan-out gradient sum) may return one of its
// inputs' buffers (it adds in place), so its value counts as any of its
// inputs' buffers. Forward outputs keep their own slots (Graph.Tensor reads
// them after Step), and so do the values read after the tape has run: the
// parameter gradients Step copies out (those not written into Param.Grad
// directly) and the kept tensors' gradients. An op's output never shares a
// slot with its inputs: a slot is free for op i once the last reader of its
// value ran before i.
func (g *Graph) shareGradSlots() error {
	b := g.b
	kept := map[*Tensor]bool{}
	for _, name := range b.keepGrads {
		t, ok := b.byName[name]
		if !ok {
			return fmt.Errorf("nn: KeepGrads: no tensor named %q", name)
		}
		kept[t] = true
	}
	order, err := G.Sort(b.g)
	if err != nil {
		return fmt.Errorf("nn: sorting the graph: %w", err)
	}
	slices.Reverse(order)
	fwd := map[*kop]bool{}
	for _, o := range b.fwd {
		fwd[o] = true
	}
	// bufs[n]: the shareable ops whose output buffer n's value may be.
	bufs := map[*G.Node][]*kop{}
	def, last := map[*kop]int{}, map[*kop]int{}
	var shared, ran []*kop
	end := len(order)
	for i, n := range order {
		o, isKop := n.Op().(*kop)
		if isKop {
			ran = append(ran, o)
		}
		var union []*kop
		for it := b.g.From(n.ID()); it.Next(); {
			c := it.Node().(*G.Node)
			for _, k := range bufs[c] {
				last[k] = max(last[k], i)
				if !isKop && !slices.Contains(union, k) {
					union = append(union, k)
				}
			}
		}
		switch {
		case isKop && o.slot >= 0 && !fwd[o]:
			bufs[n] = []*kop{o}
			def[o], last[o] = i, i
			shared = append(shared, o)
		case !isKop && n.Op() != nil:
			bufs[n] = union
		}
	}
	// Values read once the tape has run live to the end.
	live := func(n *G.Node) {
		if n == nil {
			return
		}
		for _, k := range bufs[n] {
			last[k] = end
		}
	}
	for _, n := range g.wrtGrads {
		live(n)
	}
	for t := range kept {
		if t.node != nil {
			live(t.node.Deriv())
		}
	}
	// Values live to the end keep their own slots (sharing one with them
	// would hold it to the end).
	shared = slices.DeleteFunc(shared, func(o *kop) bool { return last[o] == end })
	// Place the others in definition order, best fit among the free slots:
	// the smallest that holds the output, else the largest (which grows).
	// Slot numbers start after every slot the builder gave out, so the ops
	// that keep theirs are untouched.
	var free []int // slots whose value is dead
	size := map[int]int{}
	next := b.nslots
	var placed []*kop // shared ops placed, not yet freed
	for _, o := range shared {
		// free the values whose last reader ran before o
		placed = slices.DeleteFunc(placed, func(k *kop) bool {
			if last[k] < def[o] {
				free = append(free, k.slot)
				return true
			}
			return false
		})
		o.slot = takeSlot(&free, size, &next, prod(o.shape))
		placed = append(placed, o)
	}
	g.gradKept = kept
	g.guard = &tapeGuard{order: ran}
	for _, o := range b.ops {
		o.guard = g.guard
	}
	return nil
}

// takeSlot gives a value of need elements a slot: the free slot that fits
// best (the smallest that holds need, else the largest, which grows), taken
// out of *free, or a new slot *next. size records each slot's element count.
func takeSlot(free *[]int, size map[int]int, next *int, need int) int {
	best := -1
	for k, s := range *free {
		switch {
		case best < 0:
			best = k
		case size[s] >= need && (size[(*free)[best]] < need || size[s] < size[(*free)[best]]):
			best = k
		case size[(*free)[best]] < need && size[s] > size[(*free)[best]]:
			best = k
		}
	}
	var slot int
	if best >= 0 {
		slot = (*free)[best]
		*free = slices.Delete(*free, best, best+1)
	} else {
		slot = *next
		*next++
	}
	size[slot] = max(size[slot], need)
	return slot
}

// shareSlots reassigns the forward ops' arena slots so that a layer's output
// takes the slot of a tensor no later layer reads (Builder.ReuseBuffers).
// A tensor lives from its op to its last reader (for a fused ConvBNAct, the
// BatchNorm op reads the convolution's input too); kept tensors live to the
// end. An op's output never shares a slot with its own inputs: slots are
// freed after the op's output is placed.
func (g *Graph) shareSlots() error {
	b := g.b
	g.kept = map[*Tensor]bool{b.input: true}
	for _, name := range b.keep {
		t, ok := b.byName[name]
		if !ok {
			return fmt.Errorf("nn: ReuseBuffers: no tensor named %q", name)
		}
		g.kept[t] = true
	}
	idx := map[*Tensor]int{}
	for i, t := range g.fwdT {
		idx[t] = i
	}
	last := make([]int, len(g.fwdT))
	for i, t := range g.fwdT {
		last[i] = i
		if g.kept[t] {
			last[i] = len(g.fwdT)
		}
		if g.kept[t] && t.op.fused { // computed on demand from its inputs
			for _, in := range t.inputs {
				if j, ok := idx[in]; ok {
					last[j] = len(g.fwdT)
				}
			}
		}
		reads := t.inputs
		if t.fusedFrom != nil {
			reads = append(slices.Clone(reads), t.fusedFrom)
		}
		for _, in := range reads {
			if j, ok := idx[in]; ok && last[j] < i {
				last[j] = i
			}
		}
	}
	var free []int // slots whose tensor is dead
	size := map[int]int{}
	slot := make([]int, len(g.fwdT))
	next := 0
	for i, t := range g.fwdT {
		slot[i] = takeSlot(&free, size, &next, prod(t.shape))
		t.op.slot = slot[i]
		for j := 0; j <= i; j++ {
			if last[j] == i {
				free = append(free, slot[j])
			}
		}
	}
	return nil
}

// Build finishes the graph: it differentiates the sum of the attached losses
// with respect to every trainable parameter they depend on (gorgonia symbolic
// differentiation over our ops) and compiles a tape machine for Step. A graph
// without losses supports Forward only.
func (b *Builder) Build() (g *Graph, err error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.built {
		return nil, fmt.Errorf("nn: Build called twice")
	}
	b.built = true
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, fmt.Errorf("nn: building graph: %v", r)
		}
	}()
	g = &Graph{b: b, st: b.st, fwd: b.fwd, byName: b.byName, losses: b.losses}
	// b.tensors[0] is the input; b.tensors[i+1] is the output of b.fwd[i].
	g.fwdT = b.tensors[1:]
	g.fwdIns = make([][]G.Value, len(g.fwdT))
	for _, t := range b.tensors {
		g.infos = append(g.infos, TensorInfo{Name: t.name, Shape: slices.Clone(t.shape), Kind: t.kind, FLOPs: t.flops, Params: countTrainable(t.params)})
	}
	for i, a := range b.aliases {
		t := b.aliasOf[i]
		g.infos = append(g.infos, TensorInfo{Name: a, Shape: slices.Clone(t.shape), Kind: t.kind, Alias: true})
	}
	g.lossVals = make([]float64, len(b.losses))
	if len(b.losses) == 0 {
		if b.reuse {
			if err := g.shareSlots(); err != nil {
				return nil, err
			}
		}
		// Bound on first use: an inference graph that runs in image groups
		// never holds whole-batch buffers of its own.
		return g, nil
	}
	// The parameters the losses reach, in ParamSet order.
	reach := map[*Param]bool{}
	seen := map[*Tensor]bool{}
	var walk func(t *Tensor)
	walk = func(t *Tensor) {
		if seen[t] {
			return
		}
		seen[t] = true
		for _, p := range t.params {
			reach[p] = true
		}
		for _, in := range t.inputs {
			walk(in)
		}
	}
	for _, l := range b.losses {
		for _, t := range l.inputs {
			walk(t)
		}
	}
	var wrtNodes G.Nodes
	for _, p := range b.ps.params {
		if _, inGraph := b.pnodes[p]; !inGraph || !p.Trainable {
			continue
		}
		if reach[p] {
			g.wrt = append(g.wrt, p)
			wrtNodes = append(wrtNodes, b.pnodes[p])
		} else {
			g.unreach = append(g.unreach, p)
		}
	}
	if len(wrtNodes) == 0 {
		return nil, fmt.Errorf("nn: no trainable parameter reaches the attached losses")
	}
	b.planBlocked()
	cost := b.losses[0].node
	for _, l := range b.losses[1:] {
		if cost, err = G.Add(cost, l.node); err != nil {
			return nil, fmt.Errorf("nn: summing losses: %w", err)
		}
	}
	if g.wrtGrads, err = G.Grad(cost, wrtNodes...); err != nil {
		return nil, fmt.Errorf("nn: differentiating: %w", err)
	}
	// An op that alone computes a parameter's gradient writes it straight
	// into Param.Grad (Step then has nothing to copy); a parameter used
	// twice gets the sum of two ops' gradients, which gorgonia may add in
	// place into the first: those keep their slots.
	for i, p := range g.wrt {
		if o, ok := g.wrtGrads[i].Op().(*kop); ok && o.slot >= 0 && prod(o.shape) == len(p.Grad) {
			o.ext, o.slot = p.Grad, -1
		}
	}
	if !b.keepAllGrads {
		if err := g.shareGradSlots(); err != nil {
			return nil, err
		}
	}
	g.vm = G.NewTapeMachine(b.g)
	g.prepare()
	return g, nil
}

// prepare binds every op of the graph to its arena slot, once, and again
// whenever another graph on the same ParamSet grew a slot.
func (g *Graph) prepare() {
	ar := g.st.ar
	if g.bound && g.gen == ar.gen {
		return
	}
	// Grow each slot once, to the largest op it serves (ops sharing a slot
	// would otherwise grow it step by step, leaving garbage behind).
	var need []int
	for _, o := range g.b.ops {
		if o.slot >= 0 {
			for len(need) <= o.slot {
				need = append(need, 0)
			}
			need[o.slot] = max(need[o.slot], prod(o.shape))
		}
	}
	for k, n := range need {
		if n > 0 {
			ar.slot(k, n)
		}
	}
	for _, o := range g.b.ops {
		o.bind(ar)
	}
	for i, t := range g.fwdT {
		vals := g.fwdIns[i][:0]
		for _, in := range t.inputs {
			vals = append(vals, in.value())
		}
		// parameters follow the tensor inputs, in the order the op was built with
		for _, p := range t.params {
			vals = append(vals, g.b.pvals[p])
		}
		g.fwdIns[i] = vals
	}
	g.gen, g.bound = ar.gen, true
}

// InputShape returns the input shape [N, C, H, W].
func (g *Graph) InputShape() []int { return slices.Clone(g.b.input.shape) }

// Input returns the graph's input buffer ([N, C, H, W], NCHW): write the next
// batch into it before Forward or Step.
func (g *Graph) Input() []float32 { return g.b.inBuf }

// SetInput copies x ([N, C, H, W], NCHW) into the input buffer.
func (g *Graph) SetInput(x []float32) error {
	if len(x) != len(g.b.inBuf) {
		return fmt.Errorf("nn: input has %d values, graph expects %d (%v)", len(x), len(g.b.inBuf), g.b.input.shape)
	}
	copy(g.b.inBuf, x)
	return nil
}

// Forward runs the layers (not the losses). With train set, BatchNorm uses
// batch statistics and updates the running ones, as a torch module in train
// mode does; otherwise it uses the running statistics. No backward state is
// kept beyond the layers' own buffers. Without train, a graph without
// losses runs its batch as one group of images per worker, each through the
// whole network on its own goroutine (groups.go): the same results as one
// pass, in less time on several cores.
func (g *Graph) Forward(train bool) error {
	if n := g.inferGroups(); !train && n > 1 {
		err := g.forwardGroups(n)
		g.groupedRun = err == nil
		return err
	}
	g.groupedRun = false
	g.prepare()
	g.st.train = train
	g.fusedRun = !train
	for i, o := range g.fwd {
		run := func() error { return o.run(g.fwdIns[i], o.buf()) }
		if !train && o.fused {
			continue
		}
		if !train && o.infer != nil {
			run = func() error { return o.infer(o.buf()) }
		}
		if err := run(); err != nil {
			return fmt.Errorf("nn: %s: %w", o.label, err)
		}
	}
	return nil
}

// Step runs a training step: forward in training mode, the attached losses,
// and the backward pass; it overwrites Param.Grad of every trainable
// parameter of the graph (zero for those the losses do not reach) and
// returns the losses in attachment order (the slice is reused by the next
// Step). It does not update parameters: call the solver. Param.Grad is
// written as the backward pass runs: after a failed Step it holds no
// gradient of a whole step.
func (g *Graph) Step() ([]float64, error) {
	if g.vm == nil {
		return nil, fmt.Errorf("nn: graph has no losses attached; Step needs one")
	}
	g.prepare()
	g.st.train = true
	g.fusedRun, g.groupedRun = false, false
	g.st.ar.bwdGen++
	if g.guard != nil {
		g.guard.next = 0
	}
	err := g.vm.RunAll()
	g.vm.Reset()
	if err == nil && g.guard != nil && g.guard.next != len(g.guard.order) {
		err = fmt.Errorf("nn: the tape ran %d of the %d ops planned for the shared gradient buffers", g.guard.next, len(g.guard.order))
	}
	if err != nil {
		return nil, fmt.Errorf("nn: step: %w", err)
	}
	for i, p := range g.wrt {
		if v := f32s(g.wrtGrads[i].Value()); &v[0] != &p.Grad[0] {
			copy(p.Grad, v)
		}
	}
	for _, p := range g.unreach {
		clear(p.Grad)
	}
	for i, l := range g.losses {
		g.lossVals[i] = l.value
	}
	return g.lossVals, nil
}

// SetBatchShare says that the graph's batch of n images (the input's N) is
// a share of a global batch of total images split over the processes of a
// data-parallel run; n == total (the default) is the whole batch. Every
// attached loss is taken to be a mean over the images of its batch (the
// YOLOv3 loss and the distillation losses are), and Step scales each loss's
// value and gradient by n/total, so that the processes' losses and parameter
// gradients add up to those of the global batch. It returns an error when n
// is not the graph's batch size or total is smaller.
func (g *Graph) SetBatchShare(n, total int) error {
	if n != g.b.input.shape[0] || total < n {
		return fmt.Errorf("nn: a share of %d images of %d for a graph of batch %d", n, total, g.b.input.shape[0])
	}
	g.st.shareN, g.st.shareTotal = n, total
	return nil
}

// LossNames returns the attached losses' names in attachment order.
func (g *Graph) LossNames() []string {
	out := make([]string, len(g.losses))
	for i, l := range g.losses {
		out[i] = l.name
	}
	return out
}

// Tensor returns the values ([N, C, H, W] row-major for 4-D layers) and shape
// of the named tensor after Forward or Step, or nil, nil for an unknown name.
// The slice is an arena buffer (after an inference forward in image groups,
// a buffer of the graph's own that the groups' values are copied into at
// each call; for a tensor a training graph keeps in oneDNN's blocked layout,
// a plain copy made at each call): read it before the next Forward or Step
// of any graph on the same ParamSet.
func (g *Graph) Tensor(name string) ([]float32, []int) {
	t, ok := g.byName[name]
	if !ok || g.kept != nil && !g.kept[t] {
		return nil, nil
	}
	if g.groupedRun && t.op != nil {
		v := g.gather(t, name)
		if v == nil {
			return nil, nil
		}
		return v, slices.Clone(t.shape)
	}
	if !g.groupedRun {
		g.prepare()
	}
	if t.value() == nil {
		return nil, nil
	}
	if g.fusedRun && t.op != nil && t.op.fused {
		// An inference forward skipped this layer (a convolution whose
		// BatchNorm was folded into it): compute it now from its inputs,
		// which are still those of that forward.
		if i := slices.Index(g.fwdT, t); i >= 0 {
			if err := t.op.run(g.fwdIns[i], t.op.buf()); err != nil {
				return nil, nil
			}
		}
	}
	if t.blk > 0 {
		return fromBlocked(f32s(t.value()), t.shape, t.blk), slices.Clone(t.shape)
	}
	return f32s(t.value()), slices.Clone(t.shape)
}

// TensorGrad returns dLoss/dTensor of the named tensor after Step, or nil
// when the tensor gets no gradient (the input, or a tensor the losses do not
// depend on) or when its gradient shared its buffer with others and was not
// kept (Builder.KeepGrads). Like Tensor's, the values are plain NCHW (a
// copy for a tensor kept in a blocked layout).
func (g *Graph) TensorGrad(name string) []float32 {
	t, ok := g.byName[name]
	if !ok || t.node == nil || t.node.Deriv() == nil || g.vm == nil {
		return nil
	}
	if g.gradKept != nil && !g.gradKept[t] {
		return nil
	}
	v := t.node.Deriv().Value()
	if v == nil {
		return nil
	}
	if t.blk > 0 {
		return fromBlocked(f32s(v), t.shape, t.blk)
	}
	return f32s(v)
}

// Names lists the graph's named tensors in creation order, aliases last.
func (g *Graph) Names() []TensorInfo { return g.infos }

// Params returns the parameter set the graph was built on.
func (g *Graph) Params() *ParamSet { return g.b.ps }

func countTrainable(ps []*Param) int {
	n := 0
	for _, p := range ps {
		if p.Trainable {
			n += len(p.Data)
		}
	}
	return n
}
