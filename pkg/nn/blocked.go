package nn

import "os"

// Training in oneDNN's blocked layouts. oneDNN's training convolutions work
// in nChw16c (AVX-512) or nChw8c (AVX2): with plain NCHW activations every convolution reorders its
// input and output in (and the gradients back), about a sixth of oneDNN's
// time in the MobileNetV1-YOLOv3 step. A training graph therefore keeps the
// tensors of a ConvBNAct (the convolution's output and the BatchNorm's) in
// that layout when every convolution on either side takes it for all its
// training primitives: the convolutions then read and write them as they
// are, and the BatchNorm runs its blocked kernels (bn_blocked.go,
// the same bits as over plain rows). Tensors read by anything else (losses,
// concatenation, upsampling, pooling, residual adds) stay plain, and
// Graph.Tensor and TensorGrad return plain copies, so nothing outside the
// package sees the layout. Forward(false) of such a graph (inference with
// the BatchNorm folded) converts a fused ConvBNAct's input and output around
// the plain kernel: the same bits as a plain graph's, more time (a rare use:
// the tools infer with graphs of their own). YOLODISTILL_NO_BLOCKED=1 keeps every tensor plain.

// planBlocked marks the ConvBNAct pairs of a training graph to keep in a
// blocked layout (Tensor.blk, the convolutions' blk, the BatchNorm's
// geometry). Called by Build before differentiating.
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
	for _, y := range b.tensors {
		if y.bn == nil || len(y.inputs) != 1 || len(readers[y]) == 0 || lossIn[y] {
			continue
		}
		c := y.inputs[0]
		if c.kind != "conv" || len(c.params) != 1 || len(readers[c]) != 1 || lossIn[c] || len(c.shape) != 4 {
			continue
		}
		bs := dnnlTakesBlocked(&c.geom, false, true)
		ok := bs > 0 && c.shape[1]%bs == 0 && (c.op.blk == 0 || c.op.blk>>blkShift == bs)
		for _, r := range readers[y] {
			ok = ok && r.kind == "conv" && dnnlTakesBlocked(&r.geom, true, y.needGrad) == bs &&
				(r.op.blk == 0 || r.op.blk>>blkShift == bs)
		}
		if !ok {
			continue
		}
		c.blk, y.blk, y.bn.blk = bs, bs, bs
		c.op.blk |= blkOut | bs<<blkShift
		for _, r := range readers[y] {
			r.op.blk |= blkIn | bs<<blkShift
		}
	}
}

// blockedTraining lets planBlocked keep tensors in blocked layouts (tests
// turn it off to compare).
var blockedTraining = os.Getenv("YOLODISTILL_NO_BLOCKED") == ""

// fromBlocked returns a plain copy of v, a [N, C, H, W] tensor in the
// blocked layout of bs channels per block.
func fromBlocked(v []float32, shape []int, bs int) []float32 {
	n, c, hw := shape[0], shape[1], prod(shape[2:])
	out := make([]float32, len(v))
	for i := range n {
		for b := range c / bs {
			src := v[(i*(c/bs)+b)*hw*bs:]
			for j := range bs {
				dst := out[(i*c+b*bs+j)*hw:]
				for p := range hw {
					dst[p] = src[p*bs+j]
				}
			}
		}
	}
	return out
}

// toBlocked writes plain v ([N, C, H, W]) into out in the blocked layout of
// bs channels per block.
func toBlocked(v, out []float32, shape []int, bs int) {
	n, c, hw := shape[0], shape[1], prod(shape[2:])
	for i := range n {
		for b := range c / bs {
			dst := out[(i*(c/bs)+b)*hw*bs:]
			for j := range bs {
				src := v[(i*c+b*bs+j)*hw:]
				for p := range hw {
					dst[p*bs+j] = src[p]
				}
			}
		}
	}
}
