package nn

import (
	"os"
	"strings"
)

// Training in oneDNN's blocked layouts. oneDNN's training convolutions
// work in nChw16c (AVX-512) or nChw8c (AVX2): with plain NCHW activations
// every convolution reorders its input and output in (and the gradients
// back), about a sixth of oneDNN's time in the MobileNetV1-YOLOv3 step. A
// training graph therefore keeps the tensors between convolutions in that
// layout where every convolution on their border takes it in all its
// training primitives: a ConvBNAct's convolution and BatchNorm outputs and
// the tensors residual adds and activations join to them. The convolutions
// read and write them as they are; BatchNorm runs its blocked kernels
// (bn_blocked.go, the same bits as over plain rows); adds and activations
// are element-wise. Tensors read by anything else (losses, concatenation,
// upsampling, pooling) stay plain, and Graph.Tensor and TensorGrad return
// plain copies, so nothing outside the package sees the layout.
// Forward(false) of such a graph (inference with the BatchNorm folded)
// converts a fused ConvBNAct's input and output around the plain kernel:
// the same bits as a plain graph's, more time (a rare use: the tools infer
// with graphs of their own). YOLODISTILL_NO_BLOCKED=1 keeps every tensor
// plain.

// planBlocked picks the tensors of a training graph to keep in a blocked
// layout (Tensor.blk, the convolutions' blk bits, the BatchNorms'
// geometry). Tensors that element-wise ops join (BatchNorm's input and
// output, a residual add's inputs and output, an activation's) must share a
// layout: each such set goes blocked when every tensor in it has whole
// blocks of channels, comes from a convolution without bias or from one of
// those ops, and is read only by those ops or by convolutions, where every
// convolution takes the same blocked layout in all its training primitives;
// nothing a loss reads. Called by Build before differentiating.
func (b *Builder) planBlocked() {
	if !useDNNL || !dnnlReady || !blockedTraining {
		return
	}
	readers := map[*Tensor][]*Tensor{}
	for _, t := range b.tensors {
		for _, in := range t.inputs {
			readers[in] = append(readers[in], t)
		}
	}
	lossIn := map[*Tensor]bool{}
	for _, l := range b.losses {
		for _, t := range l.inputs {
			lossIn[t] = true
		}
	}
	joins := func(t *Tensor) bool { // an element-wise op over its inputs' layout
		return t.bn != nil || strings.HasPrefix(t.kind, "add+") || strings.HasPrefix(t.kind, "act ")
	}
	// Sets of tensors that must share a layout (union-find, roots by index).
	idx := map[*Tensor]int{}
	for i, t := range b.tensors {
		idx[t] = i
	}
	parent := make([]int, len(b.tensors))
	for i := range parent {
		parent[i] = i
	}
	var find func(i int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, t := range b.tensors {
		if joins(t) {
			for _, in := range t.inputs {
				parent[find(idx[in])] = find(idx[t])
			}
		}
	}
	sets := map[int][]*Tensor{}
	for i, t := range b.tensors {
		sets[find(i)] = append(sets[find(i)], t)
	}
	for i := range b.tensors { // in graph order, so that results do not depend on map order
		set, ok := sets[i]
		if !ok || find(i) != i {
			continue
		}
		bs, fits := 0, true
		agree := func(n int) { // every convolution on the set's border takes blocks of bs channels
			if n == 0 || bs != 0 && n != bs {
				fits = false
			}
			bs = n
		}
		for _, t := range set {
			switch {
			case lossIn[t] || len(t.shape) != 4:
				fits = false
			case joins(t):
			case t.kind == "conv" && len(t.params) == 1:
				agree(dnnlTakesBlocked(&t.geom, false, true))
			default: // the input, or a layer that needs plain input or output
				fits = false
			}
			for _, r := range readers[t] {
				switch {
				case joins(r):
				case r.kind == "conv":
					agree(dnnlTakesBlocked(&r.geom, true, t.needGrad))
				default:
					fits = false
				}
			}
		}
		for _, t := range set {
			fits = fits && bs > 0 && t.shape[1]%bs == 0
		}
		if !fits {
			continue
		}
		for _, t := range set {
			t.blk = bs
			if t.bn != nil {
				t.bn.blk = bs
			}
			if !joins(t) {
				t.op.blk |= blkOut | bs<<blkShift
			}
			for _, r := range readers[t] {
				if !joins(r) {
					r.op.blk |= blkIn | bs<<blkShift
				}
			}
		}
	}
}

// blockedTraining lets planBlocked keep tensors in blocked layouts (tests
// turn it off to compare).
var blockedTraining = os.Getenv("YOLODISTILL_NO_BLOCKED") == ""

// fromBlocked returns a plain copy of v, a [N, C, H, W] tensor in the
// blocked layout of bs channels per block.
func fromBlocked(v []float32, shape []int, bs int) []float32 {
	out := make([]float32, len(v))
	reblock(out, v, shape, bs, false)
	return out
}

// toBlocked writes plain v ([N, C, H, W]) into out in the blocked layout of
// bs channels per block.
func toBlocked(v, out []float32, shape []int, bs int) { reblock(out, v, shape, bs, true) }

// reblock copies src into dst between the plain layout of shape and the
// blocked one of bs channels per block: into the blocked one when blocked.
func reblock(dst, src []float32, shape []int, bs int, blocked bool) {
	n, c, hw := shape[0], shape[1], prod(shape[2:])
	for i := range n {
		for b := range c / bs {
			blk := (i*(c/bs) + b) * hw * bs
			for j := range bs {
				row := (i*c + b*bs + j) * hw
				for p := range hw {
					if blocked {
						dst[blk+p*bs+j] = src[row+p]
					} else {
						dst[row+p] = src[blk+p*bs+j]
					}
				}
			}
		}
	}
}
