package nn

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// opSerial makes every op's hash unique: gorgonia merges nodes whose op and
// children hash alike, and our ops carry state (buffers, saved statistics).
var opSerial atomic.Int64

// kop is the one gorgonia Op type behind every layer of this package, forward
// and backward. Its output buffer lives in a slot of the ParamSet's arena
// (bind) and is returned from every Do; run fills it completely from the
// inputs on every call. gorgonia may accumulate gradients into a returned
// buffer, so run never reads its own output back as state.
type kop struct {
	id    int64
	arity int
	label string
	typ   hm.Type
	shape tensor.Shape // output shape; empty for a scalar
	slot  int          // arena slot of the output; -1 for a scalar or an ext output
	ext   []float32    // when set, the output buffer (a parameter's gradient) instead of a slot
	out   G.Value      // *tensor.Dense over the slot, or *G.F32 for scalars
	run   func(ins []G.Value, out []float32) error
	wrt   []bool // DiffWRT; nil for backward ops (never differentiated)
	// Inference (Forward(false)) may fuse ops: infer, when set, replaces run;
	// fused marks an op whose result a later op computes itself (its output
	// is then filled only on demand, by Graph.Tensor).
	infer func(out []float32) error
	fused bool
	// native (a fused ConvBNAct in an inference image group; groups.go):
	// nativeIn when its input is in oneDNN's layout, nativeOut when it
	// writes its output so.
	native int
	// blk (a training convolution; planBlocked): blkIn when its input is
	// in oneDNN's blocked layout, blkOut when its output is, and the
	// layout's channels per block << blkShift.
	blk   int
	guard *tapeGuard // set when the graph shares gradient buffers: Do checks the tape's order
	diff  func(ins G.Nodes, out, grad *G.Node) (G.Nodes, error)
}

// newKop makes an op over the given children whose output has shape outShape
// (nil or empty: a float32 scalar) and registers it with the builder, which
// binds its output buffer to an arena slot.
func (b *Builder) newKop(label string, children []*G.Node, outShape []int) *kop {
	o := &kop{id: opSerial.Add(1), label: label, arity: len(children), slot: -1}
	types := make([]hm.Type, 0, len(children)+1)
	for _, c := range children {
		types = append(types, c.Type())
	}
	if len(outShape) == 0 {
		o.shape = tensor.ScalarShape()
		o.out = G.NewF32(0)
		types = append(types, tensor.Float32)
	} else {
		o.shape = tensor.Shape(append([]int(nil), outShape...))
		o.slot = b.nslots
		b.nslots++
		types = append(types, G.TensorType{Dims: len(outShape), Of: tensor.Float32})
	}
	o.typ = hm.NewFnType(types...)
	b.ops = append(b.ops, o)
	return o
}

// bind points the op's output at its arena slot (growing the slot if needed)
// or at its ext buffer.
func (o *kop) bind(a *arena) {
	n := prod(o.shape)
	var data []float32
	switch {
	case o.ext != nil:
		data = o.ext
	case o.slot < 0:
		return
	default:
		data = a.slot(o.slot, n)
	}
	if d, ok := o.out.(*tensor.Dense); ok && len(d.Float32s()) == n && &d.Float32s()[0] == &data[0] {
		return
	}
	o.out = tensor.New(tensor.WithShape(o.shape...), tensor.WithBacking(data))
}

// buf is the op's output data (nil for scalar ops).
func (o *kop) buf() []float32 {
	if d, ok := o.out.(*tensor.Dense); ok {
		return d.Float32s()
	}
	return nil
}

func (o *kop) Arity() int { return o.arity }
func (o *kop) Type() hm.Type {
	return o.typ
}
func (o *kop) InferShape(...G.DimSizer) (tensor.Shape, error) { return o.shape.Clone(), nil }
func (o *kop) Do(ins ...G.Value) (v G.Value, err error) {
	// gorgonia runs the tape on its own goroutine, where a panic (say, in a
	// caller's LossFunc) would end the process: report it as an error instead.
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("nn: %s: panic: %v", o.label, r)
		}
	}()
	if o.guard != nil {
		if err := o.guard.check(o); err != nil {
			return nil, err
		}
	}
	if err := o.run(ins, o.buf()); err != nil {
		return nil, fmt.Errorf("nn: %s: %w", o.label, err)
	}
	return o.out, nil
}
func (o *kop) ReturnsPtr() bool     { return false }
func (o *kop) CallsExtern() bool    { return false }
func (o *kop) OverwritesInput() int { return -1 }
func (o *kop) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "nn.%s#%d", o.label, o.id)
}
func (o *kop) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}
func (o *kop) String() string { return o.label }

// DiffWRT reports which inputs get a gradient.
func (o *kop) DiffWRT(n int) []bool {
	if o.wrt == nil {
		return make([]bool, n)
	}
	return o.wrt
}

// SymDiff builds the backward ops; non-differentiable inputs get nil.
func (o *kop) SymDiff(ins G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	if o.diff == nil {
		return nil, fmt.Errorf("nn: %s is not differentiable", o.label)
	}
	return o.diff(ins, out, grad)
}

// f32s returns the float32 data of a tensor value.
func f32s(v G.Value) []float32 {
	if d, ok := v.(*tensor.Dense); ok {
		return d.Float32s()
	}
	panic(fmt.Sprintf("nn: expected a float32 tensor, got %T", v))
}

// scalarOf returns the value of a float32 scalar (a *G.F32 or a one-element tensor).
func scalarOf(v G.Value) float32 {
	switch s := v.(type) {
	case *G.F32:
		return float32(*s)
	case *tensor.Dense:
		return s.Float32s()[0]
	}
	panic(fmt.Sprintf("nn: expected a float32 scalar, got %T", v))
}

func prod(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// applyKop adds the op to the graph as a node over children.
func applyKop(o *kop, name string, children ...*G.Node) (*G.Node, error) {
	n, err := G.ApplyOp(o, children...)
	if err != nil {
		return nil, fmt.Errorf("nn: %s: %w", name, err)
	}
	return n, nil
}
