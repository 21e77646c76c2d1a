package nn

import (
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Tensor is a symbolic activation of a graph under construction: the input
// image or the output of a layer. Its name is the stable dotted name under
// which Graph.Tensor finds its values after Forward or Step.
type Tensor struct {
	name      string
	shape     []int
	node      *G.Node
	val       G.Value // the input's value (nil for layer outputs: see value)
	op        *kop    // the layer's op (nil for the input)
	kind      string
	flops     int64
	params    []*Param
	inputs    []*Tensor
	needGrad  bool     // some trainable parameter lies upstream
	argmax    []int32  // max pool only: the window arg-maxes of training forwards (read by tests)
	geom      convGeom // convolutions only
	fusedFrom *Tensor  // ConvBNAct's output: the convolution's input, read by the fused inference
	fusedAct  Act      // ConvBNAct's output: its activation
	bn        *bnGeom  // BatchNorm outputs: the op's geometry (planBlocked sets its blk)
	blk       int      // > 0: a training graph keeps it in oneDNN's blocked layout of blk channels per block (planBlocked)
}

// value returns the tensor's current value: the input buffer or the op's output.
func (t *Tensor) value() G.Value {
	if t.op != nil {
		return t.op.out
	}
	return t.val
}

// Name returns the tensor's dotted name.
func (t *Tensor) Name() string { return t.name }

// Shape returns the tensor's shape (a copy), e.g. [N, C, H, W].
func (t *Tensor) Shape() []int { return slices.Clone(t.shape) }

// ConvSpec describes a convolution: Out output channels, a K x K kernel,
// Stride (0 means 1), Pad pixels of zero padding on every side, Groups (0
// means 1; Groups == input channels == Out is depthwise). InitStd > 0 draws
// the weights from normal(0, InitStd) instead of He/MSRA normal
// (std sqrt(2/fan_in), fan_in = Cin/Groups*K*K).
type ConvSpec struct {
	Out, K, Stride, Pad, Groups int
	InitStd                     float32
}

// LossFunc computes a loss from the values of the tensors it is attached to
// and writes dLoss/dInput into grads (same lengths as ins, zeroed before each
// call). ins[i] and grads[i] are owned by the graph and valid only during the
// call. It returns the loss value.
type LossFunc func(ins, grads [][]float32) float64

type lossRec struct {
	name   string
	node   *G.Node
	inputs []*Tensor
	value  float64
}

// graphState is shared by every op of one graph.
type graphState struct {
	train bool
	ar    *arena // the ParamSet's buffers and scratch
	// The graph's batch is shareN images of a global batch of shareTotal
	// (Graph.SetBatchShare); equal when the batch is the whole batch.
	shareN, shareTotal int
}

// workers returns the number of workers the graph's kernels spread over (1
// in an inference image group: see groups.go).
func (st *graphState) workers() int { return st.ar.colWS.workers() }

// Builder assembles one static-shape graph. Layer methods never fail on the
// spot: the first error (bad shape, duplicate name, parameter clash) is kept,
// later calls are no-ops returning a placeholder, and Build returns the error.
// A Builder builds one Graph: layers cannot be added after Build.
type Builder struct {
	ps      *ParamSet
	g       *G.ExprGraph
	st      *graphState
	bn      BNConfig
	input   *Tensor
	inBuf   []float32
	tensors []*Tensor
	byName  map[string]*Tensor
	fwd     []*kop
	ops     []*kop // every op, forward and backward, in creation order
	nslots  int    // arena slots used so far
	losses  []*lossRec
	pnodes  map[*Param]*G.Node
	pvals   map[*Param]G.Value
	aliases []string
	aliasOf []*Tensor
	built   bool
	err     error
	reuse   bool     // ReuseBuffers was called
	keep    []string // ReuseBuffers' names
	// KeepGrads: the tensors whose gradients stay readable after Step
	// (keepAllGrads: every one; gradient buffers are then not shared).
	keepGrads    []string
	keepAllGrads bool
	// The layer calls, for building the graph again over a group of the
	// batch's images (inference image groups, groups.go); splitN is set in
	// such a group's builder: the whole batch's size.
	log    []replayStep
	splitN int
	bn0    BNConfig // the BatchNorm configuration the builder started with
}

// ReuseBuffers makes a graph without losses (inference) share layer buffers
// between layers whose lifetimes do not overlap, so that a forward needs a
// few layers' activations at a time rather than the whole network's. After
// Forward, Graph.Tensor returns only the input and the tensors named in keep
// (layer names or aliases); any other name gives nil. Build fails when a
// kept name does not exist; a graph with losses ignores the call.
func (b *Builder) ReuseBuffers(keep ...string) {
	b.reuse = true
	b.keep = append(b.keep, keep...)
}

// KeepGrads keeps the gradients of the named tensors (layer names or
// aliases) readable through Graph.TensorGrad after Step; without names, the
// gradient of every tensor. A training graph otherwise lets its activation
// gradients share buffers by lifetime (a gradient lives from the backward op
// that computes it to the last one that reads it), so that the backward pass
// holds a few layers' gradients at a time rather than the whole network's;
// TensorGrad then returns nil for the tensors not kept. Results are the same
// bits either way. Build fails when a kept name does not exist.
func (b *Builder) KeepGrads(names ...string) {
	if len(names) == 0 {
		b.keepAllGrads = true
	}
	b.keepGrads = append(b.keepGrads, names...)
}

// NewBuilder starts a graph over ps for inputs of shape inputShape
// ([N, C, H, W], NCHW float32). Every layer creates its parameters in ps on
// first use by name and reuses them when another graph uses the same names.
func NewBuilder(ps *ParamSet, inputShape []int) *Builder {
	return newBuilder(ps, &ps.ar, inputShape)
}

// newBuilder is NewBuilder with the graph's buffers in ar.
func newBuilder(ps *ParamSet, ar *arena, inputShape []int) *Builder {
	b := &Builder{ps: ps, g: G.NewGraph(), st: &graphState{ar: ar}, bn: DefaultBN, bn0: DefaultBN,
		byName: map[string]*Tensor{}, pnodes: map[*Param]*G.Node{}, pvals: map[*Param]G.Value{}}
	if len(inputShape) != 4 || prod(inputShape) <= 0 {
		b.err = fmt.Errorf("nn: input shape %v is not a positive [N, C, H, W]", inputShape)
		b.input = &Tensor{name: "input", shape: []int{1, 1, 1, 1}}
		return b
	}
	b.inBuf = make([]float32, prod(inputShape))
	v := tensor.New(tensor.WithShape(inputShape...), tensor.WithBacking(b.inBuf))
	n := G.NewTensor(b.g, tensor.Float32, 4, G.WithShape(inputShape...), G.WithName("input"), G.WithValue(v))
	b.input = &Tensor{name: "input", shape: slices.Clone(inputShape), node: n, val: v, kind: "input"}
	b.tensors = append(b.tensors, b.input)
	b.byName["input"] = b.input
	return b
}

// SetBN sets the BatchNorm configuration for the layers added after it
// (default DefaultBN).
func (b *Builder) SetBN(cfg BNConfig) {
	b.bn = cfg
	b.record(nil, func(r *Builder, _ tensorMap) *Tensor { r.SetBN(cfg); return nil })
}

// Input returns the graph's input tensor, named "input".
func (b *Builder) Input() *Tensor { return b.input }

// Err returns the first error met while building.
func (b *Builder) Err() error { return b.err }

func (b *Builder) fail(err error) *Tensor {
	if b.err == nil {
		b.err = err
	}
	return &Tensor{name: "invalid", shape: []int{1, 1, 1, 1}}
}

func (b *Builder) bad(ts ...*Tensor) bool {
	if b.err != nil {
		return true
	}
	if b.built {
		b.fail(fmt.Errorf("nn: layer added after Build"))
		return true
	}
	for _, t := range ts {
		if t == nil || t.node == nil {
			b.fail(fmt.Errorf("nn: nil or invalid tensor argument"))
			return true
		}
		if t.node.Graph() != b.g {
			b.fail(fmt.Errorf("nn: tensor %s belongs to another graph", t.name))
			return true
		}
	}
	return false
}

// paramNode returns this graph's input node for p, backed by p.Data.
func (b *Builder) paramNode(p *Param) *G.Node {
	if n, ok := b.pnodes[p]; ok {
		return n
	}
	v := tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(p.Data))
	n := G.NewTensor(b.g, tensor.Float32, len(p.Shape), G.WithShape(p.Shape...), G.WithName(p.Name), G.WithValue(v))
	b.pnodes[p] = n
	b.pvals[p] = v
	return n
}

// add registers a forward op's output tensor under name.
func (b *Builder) add(name, kind string, o *kop, inputs []*Tensor, params []*Param, flops int64) *Tensor {
	if _, dup := b.byName[name]; dup {
		return b.fail(fmt.Errorf("nn: tensor name %q used twice", name))
	}
	children := make([]*G.Node, 0, len(inputs)+len(params))
	for _, t := range inputs {
		children = append(children, t.node)
	}
	for _, p := range params {
		children = append(children, b.paramNode(p))
	}
	n, err := applyKop(o, name, children...)
	if err != nil {
		return b.fail(err)
	}
	t := &Tensor{name: name, shape: slices.Clone([]int(o.shape)), node: n, op: o, kind: kind,
		flops: flops, params: params, inputs: inputs}
	for _, in := range inputs {
		t.needGrad = t.needGrad || in.needGrad
	}
	for _, p := range params {
		t.needGrad = t.needGrad || p.Trainable
	}
	b.tensors = append(b.tensors, t)
	b.byName[name] = t
	b.fwd = append(b.fwd, o)
	return t
}

// childNodes returns the graph nodes of inputs followed by those of params.
func (b *Builder) childNodes(inputs []*Tensor, params []*Param) []*G.Node {
	out := make([]*G.Node, 0, len(inputs)+len(params))
	for _, t := range inputs {
		out = append(out, t.node)
	}
	for _, p := range params {
		out = append(out, b.paramNode(p))
	}
	return out
}

// gradOp makes a backward op with output shape, over children, computing run.
func (b *Builder) gradOp(label string, shape []int, children []*G.Node, run func(ins []G.Value, out []float32)) (*G.Node, error) {
	o := b.newKop(label, children, shape)
	o.run = func(ins []G.Value, out []float32) error { run(ins, out); return nil }
	return applyKop(o, label, children...)
}

// gradOpErr is gradOp for a computation that can fail (a collective).
func (b *Builder) gradOpErr(label string, shape []int, children []*G.Node, run func(ins []G.Value, out []float32) error) (*G.Node, error) {
	o := b.newKop(label, children, shape)
	o.run = run
	return applyKop(o, label, children...)
}

// Conv adds a convolution (with a bias when bias is set) named name; its
// parameters are name+".weight" [Out, Cin/Groups, K, K] and name+".bias" [Out]
// (initialised to 0, not decayed).
// x: [N, Cin, H, W] -> [N, Out, (H+2Pad-K)/Stride+1, (W+2Pad-K)/Stride+1].
func (b *Builder) Conv(name string, x *Tensor, spec ConvSpec, bias bool) (y *Tensor) {
	defer func() { b.record(y, func(r *Builder, m tensorMap) *Tensor { return r.Conv(name, m[x], spec, bias) }) }()
	return b.conv(name, name, x, spec, bias)
}

// conv adds a convolution whose output is named name and whose parameters are
// named pname+".weight" and pname+".bias".
func (b *Builder) conv(name, pname string, x *Tensor, spec ConvSpec, withBias bool) *Tensor {
	if b.bad(x) {
		return b.fail(nil)
	}
	if spec.Stride == 0 {
		spec.Stride = 1
	}
	if spec.Groups == 0 {
		spec.Groups = 1
	}
	if len(x.shape) != 4 {
		return b.fail(fmt.Errorf("nn: conv %s: input %s has shape %v, want [N, C, H, W]", name, x.name, x.shape))
	}
	N, C, H, W := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	if spec.Out <= 0 || spec.K <= 0 || spec.Stride < 0 || spec.Pad < 0 || spec.Groups < 0 ||
		C%spec.Groups != 0 || spec.Out%spec.Groups != 0 {
		return b.fail(fmt.Errorf("nn: conv %s: spec %+v does not fit %d input channels", name, spec, C))
	}
	geom := newConvGeom(N, C, H, W, spec.Out, spec.K, spec.Stride, spec.Pad, spec.Groups)
	geom.splitN = b.splitN
	if geom.OH <= 0 || geom.OW <= 0 {
		return b.fail(fmt.Errorf("nn: conv %s: %dx%d input too small for kernel %d stride %d pad %d", name, H, W, spec.K, spec.Stride, spec.Pad))
	}
	std := spec.InitStd
	if std <= 0 {
		std = kaimingStd(geom.CKK)
	}
	wp, err := b.ps.ensure(pname+".weight", []int{spec.Out, geom.Cg, spec.K, spec.K}, true, true, initKind{normalStd: std})
	if err != nil {
		return b.fail(err)
	}
	params := []*Param{wp}
	if withBias {
		bp, err := b.ps.ensure(pname+".bias", []int{spec.Out}, true, false, initKind{})
		if err != nil {
			return b.fail(err)
		}
		params = append(params, bp)
	}
	outShape := []int{N, spec.Out, geom.OH, geom.OW}
	o := b.newKop("conv "+name, b.childNodes([]*Tensor{x}, params), outShape)
	st := b.st
	o.run = func(ins []G.Value, y []float32) error {
		var bias []float32
		if withBias {
			bias = f32s(ins[2])
		}
		convForwardBlk(&geom, &st.ar.colWS, f32s(ins[0]), f32s(ins[1]), bias, y, o.blk)
		return nil
	}
	needX := x.needGrad
	sh := &dyShare{ar: st.ar}
	o.wrt = []bool{needX, true}
	if withBias {
		o.wrt = append(o.wrt, true)
	}
	o.diff = func(ins G.Nodes, out, grad *G.Node) (G.Nodes, error) {
		res := make(G.Nodes, len(ins))
		var err error
		if needX {
			res[0], err = b.gradOp("conv dx "+name, x.shape, []*G.Node{ins[1], grad}, func(v []G.Value, dx []float32) {
				convBackwardData(&geom, &st.ar.colWS, sh, f32s(v[0]), f32s(v[1]), dx, o.blk)
			})
			if err != nil {
				return nil, err
			}
		}
		res[1], err = b.gradOp("conv dw "+name, wp.Shape, []*G.Node{ins[0], grad}, func(v []G.Value, dw []float32) {
			convBackwardWeight(&geom, &st.ar.colWS, &st.ar.accWS, sh, f32s(v[0]), f32s(v[1]), dw, o.blk)
		})
		if err != nil {
			return nil, err
		}
		if withBias {
			res[2], err = b.gradOp("conv db "+name, []int{spec.Out}, []*G.Node{grad}, func(v []G.Value, db []float32) {
				convBiasGrad(N, spec.Out, geom.OH*geom.OW, f32s(v[0]), db)
			})
			if err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	flops := int64(2) * int64(N) * int64(spec.Out) * int64(geom.OH*geom.OW) * int64(geom.CKK)
	t := b.add(name, "conv", o, []*Tensor{x}, params, flops)
	t.geom = geom
	return t
}

// BNAct adds BatchNorm over channels fused with act, named name, with
// parameters name+".bn.scale" (1), ".bn.bias" (0) (trainable, not decayed) and
// running statistics ".bn.mean" (0), ".bn.var" (1) (non-trainable state).
// Training mode (Step, Forward(true)) normalises with batch statistics and
// updates the running ones; inference mode (Forward(false)) uses the running
// ones. x: [N, C, ...] -> same shape.
func (b *Builder) BNAct(name string, x *Tensor, act Act) (y *Tensor) {
	defer func() { b.record(y, func(r *Builder, m tensorMap) *Tensor { return r.BNAct(name, m[x], act) }) }()
	return b.bnAct(name, name, x, act)
}

func (b *Builder) bnAct(name, pname string, x *Tensor, act Act) *Tensor {
	if b.bad(x) {
		return b.fail(nil)
	}
	if len(x.shape) < 2 {
		return b.fail(fmt.Errorf("nn: bn %s: input %s has shape %v, want [N, C, ...]", name, x.name, x.shape))
	}
	N, C := x.shape[0], x.shape[1]
	HW := prod(x.shape[2:])
	var ps [4]*Param
	specs := []struct {
		suffix    string
		trainable bool
		v         float32
	}{{".bn.scale", true, 1}, {".bn.bias", true, 0}, {".bn.mean", false, 0}, {".bn.var", false, 1}}
	for i, s := range specs {
		p, err := b.ps.ensure(pname+s.suffix, []int{C}, s.trainable, false, initKind{constant: s.v})
		if err != nil {
			return b.fail(err)
		}
		ps[i] = p
	}
	scaleP, biasP, meanP, varP := ps[0], ps[1], ps[2], ps[3]
	geom := bnGeom{N: N, C: C, HW: HW, cfg: b.bn, act: act}
	saveMean, saveInv := make([]float32, C), make([]float32, C)
	params := []*Param{scaleP, biasP}
	o := b.newKop("bn "+name, b.childNodes([]*Tensor{x}, params), x.shape)
	st, pset := b.st, b.ps
	// synced is the BatchSync the last training forward used (the backward
	// pass must use the same one); sc holds its sums.
	var synced BatchSync
	sc := newBNSyncScratch(name)
	o.run = func(ins []G.Value, y []float32) error {
		if !st.train {
			bnForwardInfer(st.workers(), &geom, f32s(ins[0]), f32s(ins[1]), f32s(ins[2]), meanP.Data, varP.Data, y)
			return nil
		}
		if synced = pset.sync; synced != nil {
			return bnForwardTrainSync(&geom, synced, sc, f32s(ins[0]), f32s(ins[1]), f32s(ins[2]), y, saveMean, saveInv, meanP.Data, varP.Data)
		}
		bnForwardTrain(&geom, f32s(ins[0]), f32s(ins[1]), f32s(ins[2]), y, saveMean, saveInv, meanP.Data, varP.Data)
		return nil
	}
	needX := x.needGrad
	o.wrt = []bool{needX, true, true}
	o.diff = func(ins G.Nodes, out, grad *G.Node) (G.Nodes, error) {
		dg, dbt := make([]float32, C), make([]float32, C)
		bwd, err := b.gradOpErr("bn backward "+name, x.shape, []*G.Node{ins[0], out, ins[1], grad}, func(v []G.Value, dx []float32) error {
			if synced != nil {
				return bnBackwardSync(&geom, synced, sc, f32s(v[0]), f32s(v[1]), f32s(v[2]), saveMean, saveInv, f32s(v[3]), dx, dg, dbt)
			}
			bnBackward(&geom, f32s(v[0]), f32s(v[1]), f32s(v[2]), saveMean, saveInv, f32s(v[3]), dx, dg, dbt)
			return nil
		})
		if err != nil {
			return nil, err
		}
		res := make(G.Nodes, 3)
		if needX {
			res[0] = bwd
		}
		if res[1], err = b.gradOp("bn dscale "+name, []int{C}, []*G.Node{bwd}, func(_ []G.Value, d []float32) { copy(d, dg) }); err != nil {
			return nil, err
		}
		if res[2], err = b.gradOp("bn dbias "+name, []int{C}, []*G.Node{bwd}, func(_ []G.Value, d []float32) { copy(d, dbt) }); err != nil {
			return nil, err
		}
		return res, nil
	}
	t := b.add(name, "bn+"+act.String(), o, []*Tensor{x}, params, 0)
	t.bn = &geom
	return t
}

// ConvBNAct adds a convolution without bias, BatchNorm and act, the standard
// block of both backbones and the YOLOv3 head. Parameters: name+".weight" and
// the BatchNorm ones of BNAct under the same name. The pre-BN convolution
// output is named name+".conv"; the block's output is named name.
func (b *Builder) ConvBNAct(name string, x *Tensor, spec ConvSpec, act Act) (out *Tensor) {
	defer func() {
		b.record(out, func(r *Builder, m tensorMap) *Tensor { return r.ConvBNAct(name, m[x], spec, act) })
	}()
	c := b.conv(name+".conv", name, x, spec, false)
	if b.err != nil {
		return b.fail(nil)
	}
	y := b.bnAct(name, name, c, act)
	if b.err != nil {
		return y
	}
	y.fusedFrom = x // the fused inference reads x: it must outlive y's op
	// Inference folds the BatchNorm into the convolution (weights scaled per
	// output channel, a bias) with the activation in the same pass; the
	// convolution's own output is then computed only when asked for.
	geom := c.geom
	wp, bnp := c.params[0], y.params
	mean, vr := b.ps.byName[name+".bn.mean"], b.ps.byName[name+".bn.var"]
	cfg, ws := b.bn, &b.st.ar.colWS
	c.op.fused = true
	y.fusedAct = act
	o := y.op
	y.op.infer = func(out []float32) error {
		xv, yv := f32s(x.value()), out
		if x.blk > 0 { // a training graph's (planBlocked)
			xv = fromBlocked(xv, x.shape, x.blk)
		}
		if y.blk > 0 {
			yv = make([]float32, len(out))
		}
		convBNActInfer(&geom, ws, cfg, act, xv, wp.Data, bnp[0].Data, bnp[1].Data, mean.Data, vr.Data, yv, o.native)
		if y.blk > 0 {
			toBlocked(yv, out, y.shape, y.blk)
		}
		return nil
	}
	return y
}

// Act adds a standalone activation. x: any shape -> same shape.
func (b *Builder) Act(name string, x *Tensor, act Act) (y *Tensor) {
	defer func() { b.record(y, func(r *Builder, m tensorMap) *Tensor { return r.Act(name, m[x], act) }) }()
	if b.bad(x) {
		return b.fail(nil)
	}
	o := b.newKop("act "+name, []*G.Node{x.node}, x.shape)
	st := b.st
	o.run = func(ins []G.Value, y []float32) error {
		xs := f32s(ins[0])
		parallelForW(st.workers(), (len(y)+4095)/4096, func(_, lo, hi int) {
			i0, i1 := lo*4096, min(hi*4096, len(y))
			applyAct(act, xs[i0:i1], y[i0:i1], 1, 0)
		})
		return nil
	}
	o.wrt = []bool{x.needGrad}
	o.diff = func(ins G.Nodes, out, grad *G.Node) (G.Nodes, error) {
		d, err := b.gradOp("act d "+name, x.shape, []*G.Node{out, grad}, func(v []G.Value, d []float32) {
			actBackward(act, f32s(v[0]), f32s(v[1]), d)
		})
		return G.Nodes{d}, err
	}
	return b.add(name, "act "+act.String(), o, []*Tensor{x}, nil, 0)
}

// MaxPool adds a k x k max pool with torch semantics (floor output size,
// padding counts as -inf). x: [N, C, H, W] -> [N, C, (H+2pad-k)/stride+1, ...].
func (b *Builder) MaxPool(name string, x *Tensor, k, stride, pad int) (y *Tensor) {
	defer func() {
		b.record(y, func(r *Builder, m tensorMap) *Tensor { return r.MaxPool(name, m[x], k, stride, pad) })
	}()
	if b.bad(x) {
		return b.fail(nil)
	}
	if len(x.shape) != 4 || k <= 0 || stride <= 0 || pad < 0 || 2*pad > k {
		return b.fail(fmt.Errorf("nn: maxpool %s: bad k=%d stride=%d pad=%d for %v", name, k, stride, pad, x.shape))
	}
	geom := newPoolGeom(x.shape[0], x.shape[1], x.shape[2], x.shape[3], k, stride, pad)
	if geom.OH <= 0 || geom.OW <= 0 {
		return b.fail(fmt.Errorf("nn: maxpool %s: input %v too small", name, x.shape))
	}
	outShape := []int{geom.N, geom.C, geom.OH, geom.OW}
	// The window arg-maxes, for the backward pass only: found in training
	// forwards when a gradient flows, held from the first one on.
	var arg []int32
	var t *Tensor
	o := b.newKop("maxpool "+name, []*G.Node{x.node}, outShape)
	st := b.st
	o.run = func(ins []G.Value, y []float32) error {
		if !st.train || !x.needGrad {
			maxPoolForward(st.workers(), &geom, f32s(ins[0]), y, nil)
			return nil
		}
		if arg == nil {
			arg = make([]int32, prod(outShape))
			t.argmax = arg
		}
		maxPoolForward(st.workers(), &geom, f32s(ins[0]), y, arg)
		return nil
	}
	o.wrt = []bool{x.needGrad}
	o.diff = func(ins G.Nodes, out, grad *G.Node) (G.Nodes, error) {
		d, err := b.gradOp("maxpool d "+name, x.shape, []*G.Node{grad}, func(v []G.Value, d []float32) {
			maxPoolBackward(&geom, arg, f32s(v[0]), d)
		})
		return G.Nodes{d}, err
	}
	t = b.add(name, "maxpool", o, []*Tensor{x}, nil, 0)
	return t
}

// Upsample2x adds nearest-neighbour upsampling by 2. x: [N, C, H, W] -> [N, C, 2H, 2W].
func (b *Builder) Upsample2x(name string, x *Tensor) (y *Tensor) {
	defer func() { b.record(y, func(r *Builder, m tensorMap) *Tensor { return r.Upsample2x(name, m[x]) }) }()
	if b.bad(x) {
		return b.fail(nil)
	}
	if len(x.shape) != 4 {
		return b.fail(fmt.Errorf("nn: upsample %s: input shape %v, want [N, C, H, W]", name, x.shape))
	}
	N, C, H, W := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	o := b.newKop("upsample "+name, []*G.Node{x.node}, []int{N, C, 2 * H, 2 * W})
	st := b.st
	o.run = func(ins []G.Value, y []float32) error {
		upsample2xForward(st.workers(), N*C, H, W, f32s(ins[0]), y)
		return nil
	}
	o.wrt = []bool{x.needGrad}
	o.diff = func(ins G.Nodes, out, grad *G.Node) (G.Nodes, error) {
		d, err := b.gradOp("upsample d "+name, x.shape, []*G.Node{grad}, func(v []G.Value, d []float32) {
			upsample2xBackward(N*C, H, W, f32s(v[0]), d)
		})
		return G.Nodes{d}, err
	}
	return b.add(name, "upsample2x", o, []*Tensor{x}, nil, 0)
}

// Concat adds a channel concatenation in argument order.
// xs[i]: [N, C_i, H, W] -> [N, sum C_i, H, W].
func (b *Builder) Concat(name string, xs ...*Tensor) (y *Tensor) {
	xs = slices.Clone(xs) // kept (inputs, the recorded call): not the caller's slice
	defer func() { b.record(y, func(r *Builder, m tensorMap) *Tensor { return r.Concat(name, m.all(xs)...) }) }()
	if b.bad(xs...) {
		return b.fail(nil)
	}
	if len(xs) == 0 {
		return b.fail(fmt.Errorf("nn: concat %s: no inputs", name))
	}
	s0 := xs[0].shape
	chans := make([]int, len(xs))
	total := 0
	nodes := make([]*G.Node, len(xs))
	for i, x := range xs {
		if len(x.shape) != len(s0) || len(s0) < 2 || x.shape[0] != s0[0] || !slices.Equal(x.shape[2:], s0[2:]) {
			return b.fail(fmt.Errorf("nn: concat %s: %s has shape %v, %s has %v", name, xs[0].name, s0, x.name, x.shape))
		}
		chans[i] = x.shape[1]
		total += x.shape[1]
		nodes[i] = x.node
	}
	N, HW := s0[0], prod(s0[2:])
	outShape := slices.Clone(s0)
	outShape[1] = total
	o := b.newKop("concat "+name, nodes, outShape)
	datas := make([][]float32, len(xs))
	st := b.st
	o.run = func(ins []G.Value, y []float32) error {
		for i := range ins {
			datas[i] = f32s(ins[i])
		}
		concatForward(st.workers(), N, HW, chans, datas, y)
		return nil
	}
	o.wrt = make([]bool, len(xs))
	for i, x := range xs {
		o.wrt[i] = x.needGrad
	}
	o.diff = func(ins G.Nodes, out, grad *G.Node) (G.Nodes, error) {
		res := make(G.Nodes, len(ins))
		off := 0
		for i, x := range xs {
			if x.needGrad {
				off, c := off, chans[i]
				d, err := b.gradOp(fmt.Sprintf("concat d%d %s", i, name), x.shape, []*G.Node{grad}, func(v []G.Value, d []float32) {
					concatBackward(N, HW, total, off, c, f32s(v[0]), d)
				})
				if err != nil {
					return nil, err
				}
				res[i] = d
			}
			off += chans[i]
		}
		return res, nil
	}
	return b.add(name, "concat", o, xs, nil, 0)
}

// AddAct adds the residual sum act(a + c) of two tensors of the same shape.
func (b *Builder) AddAct(name string, a, c *Tensor, act Act) (y *Tensor) {
	defer func() { b.record(y, func(r *Builder, m tensorMap) *Tensor { return r.AddAct(name, m[a], m[c], act) }) }()
	if b.bad(a, c) {
		return b.fail(nil)
	}
	if !slices.Equal(a.shape, c.shape) {
		return b.fail(fmt.Errorf("nn: add %s: %s has shape %v, %s has %v", name, a.name, a.shape, c.name, c.shape))
	}
	o := b.newKop("add "+name, []*G.Node{a.node, c.node}, a.shape)
	st := b.st
	o.run = func(ins []G.Value, y []float32) error {
		addActForward(st.workers(), act, f32s(ins[0]), f32s(ins[1]), y)
		return nil
	}
	o.wrt = []bool{a.needGrad, c.needGrad}
	o.diff = func(ins G.Nodes, out, grad *G.Node) (G.Nodes, error) {
		// One op per input: each returned buffer must belong to one consumer only,
		// as gorgonia may sum other gradients into it in place.
		res := make(G.Nodes, 2)
		for i, need := range o.wrt {
			if !need {
				continue
			}
			d, err := b.gradOp(fmt.Sprintf("add d%d %s", i, name), a.shape, []*G.Node{out, grad}, func(v []G.Value, d []float32) {
				actBackward(act, f32s(v[0]), f32s(v[1]), d)
			})
			if err != nil {
				return nil, err
			}
			res[i] = d
		}
		return res, nil
	}
	return b.add(name, "add+"+act.String(), o, []*Tensor{a, c}, nil, 0)
}

// Name registers alias as another name of t (e.g. "backbone.stage3" for the
// last block of a stage) and returns t.
func (b *Builder) Name(alias string, t *Tensor) (y *Tensor) {
	defer func() { b.record(y, func(r *Builder, m tensorMap) *Tensor { return r.Name(alias, m[t]) }) }()
	if b.bad(t) {
		return b.fail(nil)
	}
	if _, dup := b.byName[alias]; dup {
		return b.fail(fmt.Errorf("nn: tensor name %q used twice", alias))
	}
	b.byName[alias] = t
	b.aliases = append(b.aliases, alias)
	b.aliasOf = append(b.aliasOf, t)
	return t
}

// Loss attaches an external loss named name to the tensors ins: in training
// steps f receives their values and returns the loss and, through grads,
// dLoss/dins. The graph's total loss is the sum of all attached losses.
func (b *Builder) Loss(name string, ins []*Tensor, f LossFunc) {
	if b.bad(ins...) {
		return
	}
	if len(ins) == 0 || f == nil {
		b.fail(fmt.Errorf("nn: loss %s: no inputs or no function", name))
		return
	}
	for _, l := range b.losses {
		if l.name == name {
			b.fail(fmt.Errorf("nn: loss name %q used twice", name))
			return
		}
	}
	nodes := make([]*G.Node, len(ins))
	grads := make([][]float32, len(ins))
	datas := make([][]float32, len(ins))
	for i, t := range ins {
		nodes[i] = t.node
		grads[i] = make([]float32, prod(t.shape))
	}
	rec := &lossRec{name: name, inputs: ins}
	o := b.newKop("loss "+name, nodes, nil)
	out := o.out.(*G.F32)
	st := b.st
	o.run = func(vs []G.Value, _ []float32) error {
		for i := range vs {
			datas[i] = f32s(vs[i])
			clear(grads[i])
		}
		rec.value = f(datas, grads)
		if st.shareN != st.shareTotal {
			rec.value *= float64(st.shareN) / float64(st.shareTotal)
			s := float32(float64(st.shareN) / float64(st.shareTotal))
			for _, g := range grads {
				for j := range g {
					g[j] *= s
				}
			}
		}
		*out = G.F32(rec.value)
		return nil
	}
	o.wrt = make([]bool, len(ins))
	for i, t := range ins {
		o.wrt[i] = t.needGrad
	}
	o.diff = func(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		res := make(G.Nodes, len(in))
		for i, t := range ins {
			if !t.needGrad {
				continue
			}
			gi := grads[i]
			d, err := b.gradOp(fmt.Sprintf("loss d%d %s", i, name), t.shape, []*G.Node{in[i], grad}, func(v []G.Value, d []float32) {
				s := scalarOf(v[1])
				for j, g := range gi {
					d[j] = s * g
				}
			})
			if err != nil {
				return nil, err
			}
			res[i] = d
		}
		return res, nil
	}
	n, err := applyKop(o, name, nodes...)
	if err != nil {
		b.fail(err)
		return
	}
	rec.node = n
	b.losses = append(b.losses, rec)
}
