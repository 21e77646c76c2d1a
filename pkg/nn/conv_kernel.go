package nn

// Convolution kernels on NCHW float32 slices. Weights are [Cout, Cin/groups, K, K];
// the output size is (H + 2*Pad - K)/Stride + 1 (floor), as in torch and Paddle.

// convGeom describes one convolution. All fields are set by newConvGeom.
type convGeom struct {
	N, C, H, W     int // input
	Cout, OH, OW   int // output
	K, Stride, Pad int
	Groups         int
	Cg, Coutg      int // channels per group (in, out)
	CKK            int // Cg*K*K, the im2col row count
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

// convForward computes y = conv(x, w) + bias.
// x: [N, C, H, W]; w: [Cout, Cg, K, K]; bias: [Cout] or nil; y: [N, Cout, OH, OW].
func convForward(g *convGeom, ws *workspace, x, w, bias, y []float32) {
	if g.depthwise() {
		dwForward(g, x, w, bias, y)
		return
	}
	HW, OHW := g.H*g.W, g.OH*g.OW
	// Work items: (image, band of output rows). Use bands only when there are
	// fewer images than workers, so that batch-1 inference still uses every core.
	bands := 1
	if nw := numWorkers(); g.N < nw {
		bands = (nw + g.N - 1) / g.N
		if bands > g.OH {
			bands = g.OH
		}
	}
	if !g.pointwise() {
		ws.reserve(g.CKK * ((g.OH + bands - 1) / bands * g.OW))
	}
	parallelFor(g.N*bands, func(wk, lo, hi int) {
		for it := lo; it < hi; it++ {
			n, b := it/bands, it%bands
			oh0, oh1 := b*g.OH/bands, (b+1)*g.OH/bands
			cols := (oh1 - oh0) * g.OW
			for gr := 0; gr < g.Groups; gr++ {
				xg := x[(n*g.C+gr*g.Cg)*HW : (n*g.C+(gr+1)*g.Cg)*HW]
				wg := w[gr*g.Coutg*g.CKK : (gr+1)*g.Coutg*g.CKK]
				yg := y[(n*g.Cout+gr*g.Coutg)*OHW+oh0*g.OW:]
				if g.pointwise() { // a band of columns of x is a strided sub-matrix
					sgemm(false, false, g.Coutg, cols, g.Cg, 1, wg, g.CKK, xg[oh0*g.OW:], HW, 0, yg, OHW)
					continue
				}
				col := ws.get(wk, g.CKK*cols)
				g.im2col(xg, col, oh0, oh1)
				sgemm(false, false, g.Coutg, cols, g.CKK, 1, wg, g.CKK, col, cols, 0, yg, OHW)
			}
			if bias != nil {
				for co := 0; co < g.Cout; co++ {
					bv := bias[co]
					row := y[(n*g.Cout+co)*OHW+oh0*g.OW : (n*g.Cout+co)*OHW+oh1*g.OW]
					for i := range row {
						row[i] += bv
					}
				}
			}
		}
	})
}

// convBackwardData computes dx from dy. w: [Cout, Cg, K, K]; dy: [N, Cout, OH, OW];
// dx: [N, C, H, W] (fully overwritten).
func convBackwardData(g *convGeom, ws *workspace, w, dy, dx []float32) {
	if g.depthwise() {
		dwBackwardData(g, w, dy, dx)
		return
	}
	HW, OHW := g.H*g.W, g.OH*g.OW
	if !g.pointwise() {
		ws.reserve(g.CKK * OHW)
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
// x: [N, C, H, W]; dy: [N, Cout, OH, OW]; dw: [Cout, Cg, K, K] (fully overwritten). Per-worker partial sums are reduced in worker
// order, so the result is deterministic for a fixed GOMAXPROCS.
func convBackwardWeight(g *convGeom, ws, acc *workspace, x, dy, dw []float32) {
	OHW := g.OH * g.OW
	if g.depthwise() {
		dwBackwardWeight(g, x, dy, dw)
		return
	}
	HW := g.H * g.W
	nw := numWorkers()
	if nw > g.N {
		nw = g.N
	}
	if !g.pointwise() {
		ws.reserve(g.CKK * OHW)
	}
	acc.reserve(len(dw))
	parallelFor(g.N, func(wk, lo, hi int) {
		out := acc.get(wk, len(dw))
		if wk == 0 {
			out = dw
		}
		for n := lo; n < hi; n++ {
			beta := float32(1)
			if n == lo {
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
	})
	for wk := 1; wk < nw; wk++ {
		part := acc.get(wk, len(dw))
		for i, v := range part {
			dw[i] += v
		}
	}
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
