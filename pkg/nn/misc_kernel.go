package nn

// poolGeom describes a max pool with torch semantics: output size
// floor((H + 2*Pad - K)/Stride) + 1, padding acts as -inf, a NaN in the window
// gives NaN, and the first maximum in scan order takes the gradient.
type poolGeom struct {
	N, C, H, W     int
	K, Stride, Pad int
	OH, OW         int
}

func newPoolGeom(n, c, h, w, k, stride, pad int) poolGeom {
	return poolGeom{N: n, C: c, H: h, W: w, K: k, Stride: stride, Pad: pad,
		OH: (h+2*pad-k)/stride + 1, OW: (w+2*pad-k)/stride + 1}
}

// maxPoolForward: x: [N, C, H, W]; y: [N, C, OH, OW]; arg: [N, C, OH, OW]
// receives the index within the plane (ih*W+iw) of each maximum.
func maxPoolForward(nw int, g *poolGeom, x, y []float32, arg []int32) {
	HW, OHW := g.H*g.W, g.OH*g.OW
	parallelForW(nw, g.N*g.C, func(_, lo, hi int) {
		rows := make([]float32, g.H*g.OW) // the plane's row maxima per output column
		for p := lo; p < hi; p++ {
			xp := x[p*HW : (p+1)*HW]
			yp := y[p*OHW : (p+1)*OHW]
			for ih := 0; ih < g.H; ih++ {
				poolRow(g, xp[ih*g.W:(ih+1)*g.W], rows[ih*g.OW:(ih+1)*g.OW])
			}
			for oh := 0; oh < g.OH; oh++ {
				ih0 := oh*g.Stride - g.Pad
				k0, k1 := max(0, -ih0), min(g.K, g.H-ih0)
				yr := yp[oh*g.OW : (oh+1)*g.OW]
				copy(yr, rows[(ih0+k0)*g.OW:(ih0+k0+1)*g.OW])
				for ki := k0 + 1; ki < k1; ki++ {
					for ow, v := range rows[(ih0+ki)*g.OW : (ih0+ki+1)*g.OW] {
						yr[ow] = max(yr[ow], v)
					}
				}
			}
			if arg != nil {
				poolArg(g, xp, yp, arg[p*OHW:(p+1)*OHW])
			}
		}
	})
}

// poolRow writes into h, per output column, the max of one input row r over
// the column's window (the padding, -inf, never wins; every window holds at
// least one column since 2*pad <= k).
func poolRow(g *poolGeom, r, h []float32) {
	for ow := range h {
		iw0 := ow*g.Stride - g.Pad
		j0, j1 := max(0, -iw0), min(g.K, g.W-iw0)
		w := r[iw0+j0 : iw0+j1]
		b := w[0]
		for _, v := range w[1:] {
			b = max(b, v)
		}
		h[ow] = b
	}
}

// poolArg writes, per output, the index in the plane xp of the first window
// element (row by row) equal to the output yp (for a NaN output, the first
// NaN): where the backward pass sends the gradient.
func poolArg(g *poolGeom, xp, yp []float32, ap []int32) {
	for oh := 0; oh < g.OH; oh++ {
		ih0 := oh*g.Stride - g.Pad
		k0, k1 := max(0, -ih0), min(g.K, g.H-ih0)
		for ow := 0; ow < g.OW; ow++ {
			iw0 := ow*g.Stride - g.Pad
			j0, j1 := max(0, -iw0), min(g.K, g.W-iw0)
			m := yp[oh*g.OW+ow]
			nan := m != m
			bi := -1
		search:
			for ki := k0; ki < k1; ki++ {
				r0 := (ih0+ki)*g.W + iw0
				for j := j0; j < j1; j++ {
					if v := xp[r0+j]; v == m || nan && v != v {
						bi = r0 + j
						break search
					}
				}
			}
			ap[oh*g.OW+ow] = int32(bi)
		}
	}
}

// maxPoolBackward: dy: [N, C, OH, OW]; dx: [N, C, H, W] (overwritten).
func maxPoolBackward(g *poolGeom, arg []int32, dy, dx []float32) {
	HW, OHW := g.H*g.W, g.OH*g.OW
	parallelFor(g.N*g.C, func(_, lo, hi int) {
		for p := lo; p < hi; p++ {
			dxp := dx[p*HW : (p+1)*HW]
			clear(dxp)
			for o, v := range dy[p*OHW : (p+1)*OHW] {
				if a := arg[p*OHW+o]; a >= 0 {
					dxp[a] += v
				}
			}
		}
	})
}

// upsample2xForward (nearest): x: [P, H, W] planes; y: [P, 2H, 2W].
func upsample2xForward(nw, planes, h, w int, x, y []float32) {
	parallelForW(nw, planes, func(_, lo, hi int) {
		for p := lo; p < hi; p++ {
			xp := x[p*h*w : (p+1)*h*w]
			yp := y[p*4*h*w : (p+1)*4*h*w]
			for i := 0; i < h; i++ {
				r0 := yp[(2*i)*2*w : (2*i+1)*2*w]
				for j, v := range xp[i*w : (i+1)*w] {
					r0[2*j], r0[2*j+1] = v, v
				}
				copy(yp[(2*i+1)*2*w:(2*i+2)*2*w], r0)
			}
		}
	})
}

// upsample2xBackward: dy: [P, 2H, 2W]; dx: [P, H, W] (overwritten), the sum of each 2x2 block.
func upsample2xBackward(planes, h, w int, dy, dx []float32) {
	parallelFor(planes, func(_, lo, hi int) {
		for p := lo; p < hi; p++ {
			dxp := dx[p*h*w : (p+1)*h*w]
			dyp := dy[p*4*h*w : (p+1)*4*h*w]
			for i := 0; i < h; i++ {
				r0 := dyp[(2*i)*2*w : (2*i+1)*2*w]
				r1 := dyp[(2*i+1)*2*w : (2*i+2)*2*w]
				d := dxp[i*w : (i+1)*w]
				for j := range d {
					d[j] = (r0[2*j] + r0[2*j+1]) + (r1[2*j] + r1[2*j+1])
				}
			}
		}
	})
}

// concatForward copies xs[i]: [N, C_i, HW] into y: [N, sum C_i, HW] in order.
func concatForward(nw, n, hw int, chans []int, xs [][]float32, y []float32) {
	total := 0
	for _, c := range chans {
		total += c
	}
	parallelForW(nw, n, func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			off := 0
			for i, c := range chans {
				copy(y[(b*total+off)*hw:(b*total+off+c)*hw], xs[i][b*c*hw:(b+1)*c*hw])
				off += c
			}
		}
	})
}

// concatBackward copies the slice of dy: [N, total, HW] for channels
// [off, off+c) into dx: [N, c, HW].
func concatBackward(n, hw, total, off, c int, dy, dx []float32) {
	parallelFor(n, func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			copy(dx[b*c*hw:(b+1)*c*hw], dy[(b*total+off)*hw:(b*total+off+c)*hw])
		}
	})
}

// addActForward: y = act(a + b), all the same length.
func addActForward(nw int, act Act, a, b, y []float32) {
	parallelForW(nw, (len(y)+4095)/4096, func(_, lo, hi int) {
		i0, i1 := lo*4096, min(hi*4096, len(y))
		bs, ys := b[i0:i1], y[i0:i1]
		switch act {
		case ActReLU:
			for i, v := range a[i0:i1] {
				ys[i] = max(v+bs[i], 0)
			}
		case ActLeaky:
			for i, v := range a[i0:i1] {
				z := v + bs[i]
				ys[i] = max(z, leakySlope*z)
			}
		default:
			for i, v := range a[i0:i1] {
				ys[i] = v + bs[i]
			}
		}
	})
}

// actBackward: d = dy * act'(.) given the output y; all the same length.
func actBackward(act Act, y, dy, d []float32) {
	parallelFor((len(d)+4095)/4096, func(_, lo, hi int) {
		i0, i1 := lo*4096, min(hi*4096, len(d))
		actGrad(act, y[i0:i1], dy[i0:i1], d[i0:i1])
	})
}
