package nn

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
)

// Param is one named tensor of a model: a trainable weight or bias, or
// non-trainable state (BatchNorm running mean and variance).
//
// Data and Grad are row-major with the given Shape and never move: graphs,
// solvers and checkpoints hold these slices. Grad is written by Graph.Step
// (nil for non-trainable parameters). Decay says whether the solver applies
// L2 weight decay (conv weights yes; biases and BatchNorm scale/shift no, as
// PaddleDetection's YOLOv3 configs set norm_decay 0).
type Param struct {
	Name      string
	Shape     []int
	Data      []float32
	Grad      []float32
	Trainable bool
	Decay     bool
}

// Fill sets every element of p.Data to v (e.g. an objectness bias of logit(0.01)).
func (p *Param) Fill(v float32) {
	for i := range p.Data {
		p.Data[i] = v
	}
}

// ParamSet is an ordered set of named parameters shared by every graph built
// on it (one graph per input size in multi-scale training). Parameters are
// created on first use by name and initialised deterministically from the
// set's seed and the parameter's name, so the order in which graphs are built
// does not change the initial values.
type ParamSet struct {
	seed   uint64
	params []*Param
	byName map[string]*Param
	ar     arena     // activation buffers and scratch shared by the set's graphs
	groups []*arena  // the buffers of inference image group k (Graph.Forward), shared alike
	sync   BatchSync // synchronised BatchNorm (SetBatchSync); nil: local batch statistics
}

// arena holds the activation and gradient buffers of every graph built on one
// ParamSet. Slot k serves the k-th op of each graph (graphs of one model at
// different input sizes create their ops in the same order), sized for the
// largest; graphs never run concurrently, so they can share them. When a slot
// grows, gen changes and every graph rebinds its ops before its next run.
type arena struct {
	slots [][]float32
	gen   int
	colWS workspace // im2col columns, per worker
	accWS workspace // partial weight gradients, per batch chunk
	// A convolution's output gradient in oneDNN's layout, shared by its
	// input- and weight-gradient ops (dyShare); bwdGen counts Steps.
	dyBlk   []float32
	dyOwner *dyShare
	bwdGen  uint64
}

// slot returns slot k with exactly n floats, growing it if needed.
func (a *arena) slot(k, n int) []float32 {
	for len(a.slots) <= k {
		a.slots = append(a.slots, nil)
	}
	if cap(a.slots[k]) < n {
		a.slots[k] = make([]float32, n)
		a.gen++
	}
	return a.slots[k][:n]
}

// ArenaBytes returns the bytes of activation and gradient buffers held for
// the graphs built on the set (shared by all of them), those of inference
// image groups included.
func (ps *ParamSet) ArenaBytes() int { return ps.ar.bytes() + ps.groupBytes() }

func (a *arena) bytes() int {
	n := 0
	for _, s := range a.slots {
		n += 4 * cap(s)
	}
	return n
}

// ReusableBytes returns the bytes of buffers already held that a new graph
// of n images would reuse (the rest it allocates): those of the set's
// graphs for a training graph, or an inference graph that runs in one pass;
// those of the image groups for one that runs in groups (Graph.Forward).
// The two kinds do not share buffers.
func (ps *ParamSet) ReusableBytes(train bool, n int) int {
	if train || groupsFor(n) == 1 {
		return ps.ar.bytes()
	}
	return ps.groupBytes()
}

// groupBytes returns the bytes held by the image groups' arenas.
func (ps *ParamSet) groupBytes() int {
	n := 0
	for _, a := range ps.groups {
		n += a.bytes()
	}
	return n
}

// groupArena returns the arena of inference image group k: the buffers of
// every graph's group k (they never run concurrently, as the set's graphs
// do not), its kernels on one worker each.
func (ps *ParamSet) groupArena(k int) *arena {
	for len(ps.groups) <= k {
		a := &arena{}
		a.colWS.nw = 1
		ps.groups = append(ps.groups, a)
	}
	return ps.groups[k]
}

// NewParamSet returns an empty set whose initial values derive from seed.
func NewParamSet(seed uint64) *ParamSet {
	return &ParamSet{seed: seed, byName: map[string]*Param{}}
}

// Params returns the parameters in creation order (the slice is shared; do not modify it).
func (ps *ParamSet) Params() []*Param { return ps.params }

// Get returns the named parameter, or nil.
func (ps *ParamSet) Get(name string) *Param { return ps.byName[name] }

// NumTrainable returns the number of trainable scalars.
func (ps *ParamSet) NumTrainable() int {
	n := 0
	for _, p := range ps.params {
		if p.Trainable {
			n += len(p.Data)
		}
	}
	return n
}

// initKind says how a new parameter is filled.
type initKind struct {
	normalStd float32 // > 0: normal(0, std)
	constant  float32 // otherwise this constant
}

// ensure returns the named parameter, creating and initialising it if it is
// new. An existing parameter must have the same shape and kind.
func (ps *ParamSet) ensure(name string, shape []int, trainable, decay bool, init initKind) (*Param, error) {
	if p, ok := ps.byName[name]; ok {
		if !slices.Equal(p.Shape, shape) {
			return nil, fmt.Errorf("nn: parameter %s exists with shape %v, layer needs %v", name, p.Shape, shape)
		}
		if p.Trainable != trainable {
			return nil, fmt.Errorf("nn: parameter %s exists with trainable=%v, layer needs %v", name, p.Trainable, trainable)
		}
		return p, nil
	}
	p := &Param{Name: name, Shape: slices.Clone(shape), Data: make([]float32, prod(shape)), Trainable: trainable, Decay: decay}
	if trainable {
		p.Grad = make([]float32, len(p.Data))
	}
	if init.normalStd > 0 {
		h := fnv.New64a()
		h.Write([]byte(name))
		rng := rand.New(rand.NewPCG(ps.seed, h.Sum64()))
		for i := range p.Data {
			p.Data[i] = float32(rng.NormFloat64()) * init.normalStd
		}
	} else {
		p.Fill(init.constant)
	}
	ps.params = append(ps.params, p)
	ps.byName[name] = p
	return p, nil
}

// kaimingStd is the standard deviation of He (MSRA) normal initialisation,
// sqrt(2/fan_in), as Paddle's MSRA initializer uses for MobileNet and ResNet.
func kaimingStd(fanIn int) float32 { return float32(math.Sqrt(2 / float64(fanIn))) }
