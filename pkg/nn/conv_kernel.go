package nn

import "math"

// Convolution kernels on NCHW float32 slices. Weights are [Cout, Cin/groups, K, K];
// the output size is (H + 2*Pad - K)/Stride + 1 (floor), as in torch and Paddle.

// convGeom describes one convolution. newConvGeom sets every field but splitN.
type convGeom struct {
	N, C, H, W     int // input
	Cout, OH, OW   int // output
	K, Stride, Pad int
	Groups         int
	Cg, Coutg      int // channels per group (in, out)
	CKK            int // Cg*K*K, the im2col row count
	// splitN, when set, is the batch size forwardSplit plans for instead of
	// N: an inference image group's convolution splits its images as the
	// whole batch's does, so that each image is computed the same way.
	splitN int
}

func newConvGeom(n, c, h, w, cout, k, stride, pad, groups int) convGeom {
	g := convGeom{N: n, C: c, H: h, W: w, Cout: cout, K: k, Stride: stride, Pad: pad, Groups: groups}
	g.OH = (h+2*pad-k)/stride + 1
	g.OW = (w+2*pad-k)/stride + 1
	g.Cg = c / groups
	g.Coutg = cout / groups
	g.CKK = g.Cg * k * k
	return g
}

// pointwise reports a 1x1, stride-1, unpadded convolution: a plain matrix product.
func (g *convGeom) pointwise() bool { return g.K == 1 && g.Stride == 1 && g.Pad == 0 }

// depthwise reports one input and one output channel per group.
func (g *convGeom) depthwise() bool { return g.Groups == g.C && g.Cout == g.C && g.Groups > 1 }

// validRange returns the output columns [lo, hi) whose input column
// o*stride - pad + kj falls inside [0, size).
func validRange(kj, stride, pad, size, outSize int) (lo, hi int) {
	// o*stride >= pad - kj
	num := pad - kj
	if num <= 0 {
		lo = 0
	} else {
		lo = (num + stride - 1) / stride
	}
	// o*stride <= size - 1 + pad - kj
	top := size - 1 + pad - kj
	if top < 0 {
		return 0, 0
	}
	hi = top/stride + 1
	if hi > outSize {
		hi = outSize
	}
	if lo > hi {
		lo = hi
	}
	return lo, hi
}

// im2col writes the patches of one image's channel group into col for output
// rows [oh0, oh1): col is [Cg*K*K, (oh1-oh0)*OW], row (c*K+ki)*K+kj.
// x: [Cg, H, W] (the group's channels of one image).
func (g *convGeom) im2col(x, col []float32, oh0, oh1 int) {
	K, S, P, H, W, OW := g.K, g.Stride, g.Pad, g.H, g.W, g.OW
	cols := (oh1 - oh0) * OW
	for c := 0; c < g.Cg; c++ {
		xc := x[c*H*W : (c+1)*H*W]
		for ki := 0; ki < K; ki++ {
			for kj := 0; kj < K; kj++ {
				row := col[((c*K+ki)*K+kj)*cols : ((c*K+ki)*K+kj+1)*cols]
				lo, hi := validRange(kj, S, P, W, OW)
				for oh := oh0; oh < oh1; oh++ {
					dst := row[(oh-oh0)*OW : (oh-oh0+1)*OW]
					ih := oh*S - P + ki
					if ih < 0 || ih >= H || lo >= hi {
						clear(dst)
						continue
					}
					clear(dst[:lo])
					clear(dst[hi:])
					src := xc[ih*W:]
					iw := lo*S - P + kj
					if S == 1 {
						copy(dst[lo:hi], src[iw:iw+hi-lo])
					} else {
						d := dst[lo:hi]
						for o := range d {
							d[o] = src[iw]
							iw += S
						}
					}
				}
			}
		}
	}
}

// col2im accumulates col ([Cg*K*K, OH*OW], all output rows) into dx
// ([Cg, H, W]); dx must be zeroed by the caller.
func (g *convGeom) col2im(col, dx []float32) {
	K, S, P, H, W, OW, OH := g.K, g.Stride, g.Pad, g.H, g.W, g.OW, g.OH
	cols := OH * OW
	for c := 0; c < g.Cg; c++ {
		dc := dx[c*H*W : (c+1)*H*W]
		for ki := 0; ki < K; ki++ {
			for kj := 0; kj < K; kj++ {
				row := col[((c*K+ki)*K+kj)*cols : ((c*K+ki)*K+kj+1)*cols]
				lo, hi := validRange(kj, S, P, W, OW)
				if lo >= hi {
					continue
				}
				for oh := 0; oh < OH; oh++ {
					ih := oh*S - P + ki
					if ih < 0 || ih >= H {
						continue
					}
					src := row[oh*OW+lo : oh*OW+hi]
					dst := dc[ih*W:]
					iw := lo*S - P + kj
					if S == 1 {
						d := dst[iw : iw+len(src)]
						for o, v := range src {
							d[o] += v
						}
					} else {
						for _, v := range src {
							dst[iw] += v
							iw += S
						}
					}
				}
			}
		}
	}
}

// Work decomposition. Every kernel splits its work into items that depend on
// the tensor shapes only; workers merely pick items (parallelFor), so each
// sgemm call, and each sum, is the same whatever GOMAXPROCS is.
const (
	// convItems is the number of work items convForward aims for when the
	// batch has fewer images: each image is then split into parts, so that
	// a batch-1 forward still keeps up to convItems workers busy.
	convItems = 4
	// minBandCols is the fewest output pixels a band of output rows gets:
	// every band is an sgemm that packs the whole weight matrix, which
	// narrower products do not amortise.
	minBandCols = 48
	// minBlockRows is the fewest output channels a block of them gets.
	minBlockRows = 64
	// wgradChunks is the most batch chunks convBackwardWeight sums
	// separately (each chunk but the first in a partial buffer of the weight
	// gradient's size), reduced in chunk order.
	wgradChunks = 4
)

// forwardSplit returns how convForward splits each image: into bands of
// output rows (an sgemm over some columns) or into blocks of output channels
// (an sgemm over some rows of the weights, with the image's columns built
// once per block). A function of the shape only (and splitN). Bands repack the weights
// (Coutg x CKK) for each band, blocks rebuild and repack the columns (CKK x
// OH*OW) for each block: blocks when the image has fewer pixels than half
// its output channels (deep layers at low resolution), bands otherwise.
func (g *convGeom) forwardSplit() (bands, blocks int) {
	n := g.N
	if g.splitN > 0 {
		n = g.splitN
	}
	if n >= convItems {
		return 1, 1
	}
	parts := (convItems + n - 1) / n
	OHW := g.OH * g.OW
	if g.Coutg > 2*OHW {
		return 1, max(1, min(parts, g.Coutg/minBlockRows))
	}
	return max(1, min(parts, g.OH, OHW/minBandCols)), 1
}

// blockRows returns the output channels [m0, m1) of block b of blocks (of
// Coutg): boundaries on multiples of 16 rows, the sgemm kernels' unrolling.
func (g *convGeom) blockRows(b, blocks int) (m0, m1 int) {
	edge := func(b int) int {
		if b == blocks {
			return g.Coutg
		}
		return (b * g.Coutg / blocks) &^ 15
	}
	return edge(b), edge(b + 1)
}

// convForward computes y = conv(x, w) + bias.
// x: [N, C, H, W]; w: [Cout, Cg, K, K]; bias: [Cout] or nil; y: [N, Cout, OH, OW].
// Work items: (image, band of output rows, block of output channels).
func convForward(g *convGeom, ws *workspace, x, w, bias, y []float32) {
	convForwardBlk(g, ws, x, w, bias, y, 0)
}

// The blk of a training convolution whose input (blkIn) or output (blkOut)
// a training graph keeps in oneDNN's blocked layout (planBlocked): those
// bits, and the layout's channels per block (16: nChw16c, 8: nChw8c)
// shifted by blkShift.
const (
	blkIn    = 1 << 0
	blkOut   = 1 << 2
	blkBits  = 0xff
	blkShift = 8
)

// mustDNNL panics for a convolution planned in a blocked layout that oneDNN
// no longer runs (useDNNL turned off after Build).
func mustDNNL(ok bool, blk int) bool {
	if !ok && blk != 0 {
		panic("nn: a convolution planned in oneDNN's layout, without oneDNN")
	}
	return ok
}

// convForwardBlk is convForward with blk's arguments in a blocked layout.
func convForwardBlk(g *convGeom, ws *workspace, x, w, bias, y []float32, blk int) {
	if mustDNNL(dnnlForward(g, ws, x, w, bias, y, blk), blk) {
		return
	}
	if g.depthwise() {
		dwForward(ws.workers(), g, x, w, bias, y)
		return
	}
	HW, OHW := g.H*g.W, g.OH*g.OW
	bands, blocks := g.forwardSplit()
	per := bands * blocks
	nw := ws.workers()
	if !g.pointwise() {
		ws.reserve(min(nw, g.N*per), g.CKK*((g.OH+bands-1)/bands*g.OW))
	}
	parallelForW(nw, g.N*per, func(wk, lo, hi int) {
		for it := lo; it < hi; it++ {
			n, b, mb := it/per, it%per/blocks, it%blocks
			oh0, oh1 := b*g.OH/bands, (b+1)*g.OH/bands
			m0, m1 := g.blockRows(mb, blocks)
			cols := (oh1 - oh0) * g.OW
			for gr := 0; gr < g.Groups; gr++ {
				xg := x[(n*g.C+gr*g.Cg)*HW : (n*g.C+(gr+1)*g.Cg)*HW]
				wg := w[(gr*g.Coutg+m0)*g.CKK : (gr*g.Coutg+m1)*g.CKK]
				yg := y[(n*g.Cout+gr*g.Coutg+m0)*OHW+oh0*g.OW:]
				if g.pointwise() { // a band of columns of x is a strided sub-matrix
					sgemm(false, false, m1-m0, cols, g.Cg, 1, wg, g.CKK, xg[oh0*g.OW:], HW, 0, yg, OHW)
					continue
				}
				col := ws.get(wk, g.CKK*cols)
				g.im2col(xg, col, oh0, oh1)
				sgemm(false, false, m1-m0, cols, g.CKK, 1, wg, g.CKK, col, cols, 0, yg, OHW)
			}
			if bias != nil {
				for gr := 0; gr < g.Groups; gr++ {
					for co := gr*g.Coutg + m0; co < gr*g.Coutg+m1; co++ {
						bv := bias[co]
						row := y[(n*g.Cout+co)*OHW+oh0*g.OW : (n*g.Cout+co)*OHW+oh1*g.OW]
						for i := range row {
							row[i] += bv
						}
					}
				}
			}
		}
	})
}

// dyShare lets the input- and weight-gradient ops of one convolution (a
// backward pass runs them one after the other) reorder dy into oneDNN's
// layout once: the first fills the arena's buffer ar.dyBlk, the second
// reads it back when nothing else filled it since, in the same Step.
type dyShare struct {
	ar  *arena
	gen uint64 // ar.bwdGen when this convolution last filled ar.dyBlk
	// dy's floats per image in that buffer (0: not shared) for perWorkers
	// workers, as dnnlDyPerImage found them
	per, perWorkers int
}

// get returns ar.dyBlk with n floats and whether it already holds this
// convolution's dy of this Step; when not, the caller fills it and calls
// filled.
func (sh *dyShare) get(n int) ([]float32, bool) {
	if sh.ar.dyOwner == sh && sh.gen == sh.ar.bwdGen {
		return sh.ar.dyBlk[:n], true
	}
	sh.ar.dyOwner = nil
	if len(sh.ar.dyBlk) < n {
		sh.ar.dyBlk = make([]float32, n)
	}
	return sh.ar.dyBlk[:n], false
}

func (sh *dyShare) filled() { sh.ar.dyOwner, sh.gen = sh, sh.ar.bwdGen }

// convBackwardData computes dx from dy. w: [Cout, Cg, K, K]; dy: [N, Cout, OH, OW];
// dx: [N, C, H, W] (fully overwritten). One work item per image. sh (may be
// nil) shares dy's reorder with the weight gradient.
func convBackwardData(g *convGeom, ws *workspace, sh *dyShare, w, dy, dx []float32, blk int) {
	if mustDNNL(dnnlBackwardData(g, ws, sh, w, dy, dx, blk), blk) {
		return
	}
	if g.depthwise() {
		dwBackwardData(g, w, dy, dx)
		return
	}
	HW, OHW := g.H*g.W, g.OH*g.OW
	if !g.pointwise() {
		ws.reserve(min(numWorkers(), g.N), g.CKK*OHW)
	}
	parallelFor(g.N, func(wk, lo, hi int) {
		for n := lo; n < hi; n++ {
			for gr := 0; gr < g.Groups; gr++ {
				dxg := dx[(n*g.C+gr*g.Cg)*HW : (n*g.C+(gr+1)*g.Cg)*HW]
				wg := w[gr*g.Coutg*g.CKK : (gr+1)*g.Coutg*g.CKK]
				dyg := dy[(n*g.Cout+gr*g.Coutg)*OHW : (n*g.Cout+(gr+1)*g.Coutg)*OHW]
				if g.pointwise() {
					sgemm(true, false, g.Cg, OHW, g.Coutg, 1, wg, g.CKK, dyg, OHW, 0, dxg, HW)
					continue
				}
				col := ws.get(wk, g.CKK*OHW)
				sgemm(true, false, g.CKK, OHW, g.Coutg, 1, wg, g.CKK, dyg, OHW, 0, col, OHW)
				clear(dxg)
				g.col2im(col, dxg)
			}
		}
	})
}

// convBackwardWeight computes dw from x and dy.
// x: [N, C, H, W]; dy: [N, Cout, OH, OW]; dw: [Cout, Cg, K, K] (fully overwritten).
// The batch is split into min(N, wgradChunks) chunks of consecutive images
// (the work items); each chunk accumulates its images in order (sgemm with
// beta 1) into its own buffer, chunk 0 straight into dw, and the chunks are
// then added in chunk order. Both depend on the shape only, not on GOMAXPROCS.
func convBackwardWeight(g *convGeom, ws, acc *workspace, sh *dyShare, x, dy, dw []float32, blk int) {
	if mustDNNL(dnnlBackwardWeight(g, ws, acc, sh, x, dy, dw, blk), blk) {
		return
	}
	OHW := g.OH * g.OW
	if g.depthwise() {
		dwBackwardWeight(g, x, dy, dw)
		return
	}
	HW := g.H * g.W
	chunks := min(g.N, wgradChunks)
	if !g.pointwise() {
		ws.reserve(min(numWorkers(), chunks), g.CKK*OHW)
	}
	acc.reserve(chunks-1, len(dw))
	parallelFor(chunks, func(wk, lo, hi int) {
		for c := lo; c < hi; c++ {
			out := dw
			if c > 0 {
				out = acc.get(c-1, len(dw))
			}
			n0, n1 := c*g.N/chunks, (c+1)*g.N/chunks
			for n := n0; n < n1; n++ {
				beta := float32(1)
				if n == n0 {
					beta = 0
				}
				for gr := 0; gr < g.Groups; gr++ {
					xg := x[(n*g.C+gr*g.Cg)*HW : (n*g.C+(gr+1)*g.Cg)*HW]
					dwg := out[gr*g.Coutg*g.CKK : (gr+1)*g.Coutg*g.CKK]
					dyg := dy[(n*g.Cout+gr*g.Coutg)*OHW : (n*g.Cout+(gr+1)*g.Coutg)*OHW]
					if g.pointwise() {
						sgemm(false, true, g.Coutg, g.Cg, OHW, 1, dyg, OHW, xg, HW, beta, dwg, g.CKK)
						continue
					}
					col := ws.get(wk, g.CKK*OHW)
					g.im2col(xg, col, 0, g.OH)
					sgemm(false, true, g.Coutg, g.CKK, OHW, 1, dyg, OHW, col, OHW, beta, dwg, g.CKK)
				}
			}
		}
	})
	addPartials(dw, acc, chunks)
}

// addPartials adds the partial weight gradients of chunks 1..chunks-1 (acc
// buffers 0..chunks-2) into dw (chunk 0's): dw = ((dw + part1) + part2) + ...
// element by element, in blocks that stay in cache while the partials are added.
func addPartials(dw []float32, acc *workspace, chunks int) {
	addParts(dw, acc, 0, chunks-1)
}

// addParts adds acc buffers first..first+n-1 (each len(dw) floats) into dw
// in that order, element by element.
func addParts(dw []float32, acc *workspace, first, n int) {
	if n <= 0 {
		return
	}
	const block = 4096
	parallelFor((len(dw)+block-1)/block, func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			d := dw[b*block : min((b+1)*block, len(dw))]
			for c := first; c < first+n; c++ {
				part := acc.get(c, len(dw))[b*block:]
				part = part[:len(d)]
				for i, v := range part {
					d[i] += v
				}
			}
		}
	})
}

// convBiasGrad: dy: [N, Cout, OHW]; db: [Cout] (overwritten) = sum of dy over N and OHW.
func convBiasGrad(n, cout, ohw int, dy, db []float32) {
	for co := 0; co < cout; co++ {
		var s float64
		for b := 0; b < n; b++ {
			s += sum64(dy[(b*cout+co)*ohw : (b*cout+co+1)*ohw])
		}
		db[co] = float32(s)
	}
}

// convBNActInfer computes an inference-mode convolution + BatchNorm + act in
// one pass over the output: the BatchNorm is folded into the convolution,
// y = act(conv(x, w*s) + (beta - mean*s)) with s = gamma/sqrt(var+eps) per
// output channel, and oneDNN applies act as it writes y (our kernels apply
// it in place afterwards). x: [N, C, H, W]; w: [Cout, Cg, K, K]; gamma,
// beta, mean, variance: [Cout]; y: [N, Cout, OH, OW]. Rounds differently
// from the unfolded convolution followed by BatchNorm (within float32
// rounding of the product's terms).
//
// native says which of x and y are in oneDNN's own layout (nativeIn,
// nativeOut: links between the convolutions of an inference image group,
// planned by planLinks, which found oneDNN's primitives for them); it is
// honoured while oneDNN is on (useDNNL, which the plan required), and
// ignored otherwise, for every layer alike.
func convBNActInfer(g *convGeom, ws *workspace, cfg BNConfig, act Act, x, w, gamma, beta, mean, variance, y []float32, native int) {
	wf, bf := ws.foldBufs(len(w), g.Cout)
	per := len(w) / g.Cout
	parallelForW(ws.workers(), g.Cout, func(_, lo, hi int) { // each output channel on its own
		for co := lo; co < hi; co++ {
			is := float32(1 / math.Sqrt(float64(variance[co])+float64(cfg.Eps)))
			s := gamma[co] * is
			bf[co] = beta[co] - mean[co]*s
			src, dst := w[co*per:(co+1)*per], wf[co*per:(co+1)*per]
			for i, v := range src {
				dst[i] = v * s
			}
		}
	})
	if dnnlForwardAct(g, ws, x, wf, bf, y, act, native) {
		return
	}
	if native != 0 && useDNNL {
		panic("nn: oneDNN declined a convolution planned to pass its layout on")
	}
	convForward(g, ws, x, wf, bf, y)
	if act == ActNone {
		return
	}
	const block = 4096
	parallelForW(ws.workers(), (len(y)+block-1)/block, func(_, lo, hi int) {
		i0, i1 := lo*block, min(hi*block, len(y))
		applyAct(act, y[i0:i1], y[i0:i1], 1, 0)
	})
}
