package nn

import "os"

// Training in oneDNN's nChw16c layout. oneDNN's training convolutions work
// in nChw16c: with plain NCHW activations every convolution reorders its
// input and output in (and the gradients back), about a sixth of oneDNN's
// time in the MobileNetV1-YOLOv3 step. A training graph therefore keeps the
// tensors of a ConvBNAct (the convolution's output and the BatchNorm's) in
// nChw16c when every convolution on either side takes that layout for all
// its training primitives: the convolutions then read and write them as
// they are, and the BatchNorm runs its nChw16c kernels (bn_blocked.go,
// the same bits as over plain rows). Tensors read by anything else (losses,
// concatenation, upsampling, pooling, residual adds) stay plain, and
// Graph.Tensor and TensorGrad return plain copies, so nothing outside the
// package sees the layout. Forward(false) of such a graph (inference with
// the BatchNorm folded) converts a fused ConvBNAct's input and output around
// the plain kernel: the same bits as a plain graph's, more time (a rare use:
// the tools infer with graphs of their own). YOLODISTILL_NO_BLOCKED=1 keeps every tensor plain.

// planBlocked marks the ConvBNAct pairs of a training graph to keep in
// nChw16c (Tensor.blocked, the convolutions' blk bits, the BatchNorm's
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
		if c.kind != "conv" || len(c.params) != 1 || len(readers[c]) != 1 || lossIn[c] ||
			len(c.shape) != 4 || c.shape[1]%blk != 0 || !dnnlTakesBlocked(&c.geom, false, true) {
			continue
		}
		ok := true
		for _, r := range readers[y] {
			ok = ok && r.kind == "conv" && dnnlTakesBlocked(&r.geom, true, y.needGrad)
		}
		if !ok {
			continue
		}
		c.blocked, y.blocked, y.bn.blocked = true, true, true
		c.op.blk |= blkOut
		for _, r := range readers[y] {
			r.op.blk |= blkIn
		}
	}
}

// blockedTraining lets planBlocked keep tensors in nChw16c (tests turn it
// off to compare).
var blockedTraining = os.Getenv("YOLODISTILL_NO_BLOCKED") == ""

// fromNCHW16c returns a plain copy of v, a [N, C, H, W] tensor in nChw16c.
func fromNCHW16c(v []float32, shape []int) []float32 {
	n, c, hw := shape[0], shape[1], prod(shape[2:])
	out := make([]float32, len(v))
	for i := range n {
		for b := range c / blk {
			src := v[(i*(c/blk)+b)*hw*blk:]
			for j := range blk {
				dst := out[(i*c+b*blk+j)*hw:]
				for p := range hw {
					dst[p] = src[p*blk+j]
				}
			}
		}
	}
	return out
}

// toNCHW16c writes plain v ([N, C, H, W]) into out in nChw16c.
func toNCHW16c(v, out []float32, shape []int) {
	n, c, hw := shape[0], shape[1], prod(shape[2:])
	for i := range n {
		for b := range c / blk {
			dst := out[(i*(c/blk)+b)*hw*blk:]
			for j := range blk {
				src := v[(i*c+b*blk+j)*hw:]
				for p := range hw {
					dst[p*blk+j] = src[p]
				}
			}
		}
	}
}
