package nn

// Depthwise convolution (groups == C == Cout) as direct loops over one
// (image, channel) plane at a time. Weights are [C, 1, K, K].

// dwForward: x: [N, C, H, W]; w: [C, 1, K, K]; bias: [C] or nil; y: [N, C, OH, OW].
func dwForward(nw int, g *convGeom, x, w, bias, y []float32) {
	HW, OHW, KK := g.H*g.W, g.OH*g.OW, g.K*g.K
	parallelForW(nw, g.N*g.C, func(_, lo, hi int) {
		for p := lo; p < hi; p++ {
			c := p % g.C
			xp := x[p*HW : (p+1)*HW]
			yp := y[p*OHW : (p+1)*OHW]
			wc := w[c*KK : (c+1)*KK]
			var bv float32
			if bias != nil {
				bv = bias[c]
			}
			if g.K == 3 && g.Pad == 1 && (g.Stride == 1 || g.Stride == 2) {
				dw3x3Plane(g, xp, wc, bv, yp)
				continue
			}
			for i := range yp {
				yp[i] = bv
			}
			for oh := 0; oh < g.OH; oh++ {
				yr := yp[oh*g.OW : (oh+1)*g.OW]
				for ki := 0; ki < g.K; ki++ {
					ih := oh*g.Stride - g.Pad + ki
					if ih < 0 || ih >= g.H {
						continue
					}
					xr := xp[ih*g.W : (ih+1)*g.W]
					for kj := 0; kj < g.K; kj++ {
						wv := wc[ki*g.K+kj]
						lo, hi := validRange(kj, g.Stride, g.Pad, g.W, g.OW)
						iw := lo*g.Stride - g.Pad + kj
						for ow := lo; ow < hi; ow++ {
							yr[ow] += wv * xr[iw]
							iw += g.Stride
						}
					}
				}
			}
		}
	})
}

// dw3x3Plane is the 3x3, pad-1, stride-1 or -2 fast path of dwForward for one
// plane: interior outputs take nine multiply-adds in registers; border outputs
// check bounds.
func dw3x3Plane(g *convGeom, xp, wc []float32, bv float32, yp []float32) {
	H, W, OH, OW, S := g.H, g.W, g.OH, g.OW, g.Stride
	w0, w1, w2, w3, w4, w5, w6, w7, w8 := wc[0], wc[1], wc[2], wc[3], wc[4], wc[5], wc[6], wc[7], wc[8]
	at := func(ih, iw int) float32 {
		if ih < 0 || ih >= H || iw < 0 || iw >= W {
			return 0
		}
		return xp[ih*W+iw]
	}
	border := func(oh, ow int) float32 {
		ih, iw := oh*S-1, ow*S-1
		return bv + w0*at(ih, iw) + w1*at(ih, iw+1) + w2*at(ih, iw+2) +
			w3*at(ih+1, iw) + w4*at(ih+1, iw+1) + w5*at(ih+1, iw+2) +
			w6*at(ih+2, iw) + w7*at(ih+2, iw+1) + w8*at(ih+2, iw+2)
	}
	// Interior columns: ow*S-1 >= 0 and ow*S+1 <= W-1.
	owLo := 1
	owHi := (W-2)/S + 1 // exclusive: largest ow with ow*S+1 <= W-1, plus one
	if owHi > OW {
		owHi = OW
	}
	if owLo > owHi {
		owLo = owHi
	}
	for oh := 0; oh < OH; oh++ {
		yr := yp[oh*OW : (oh+1)*OW]
		ih := oh*S - 1
		if ih < 0 || ih+2 >= H {
			for ow := range yr {
				yr[ow] = border(oh, ow)
			}
			continue
		}
		for ow := 0; ow < owLo; ow++ {
			yr[ow] = border(oh, ow)
		}
		r0 := xp[ih*W : (ih+1)*W]
		r1 := xp[(ih+1)*W : (ih+2)*W]
		r2 := xp[(ih+2)*W : (ih+3)*W]
		for ow := owLo; ow < owHi; ow++ {
			iw := ow*S - 1
			a0, a1, a2 := r0[iw], r0[iw+1], r0[iw+2]
			b0, b1, b2 := r1[iw], r1[iw+1], r1[iw+2]
			c0, c1, c2 := r2[iw], r2[iw+1], r2[iw+2]
			// a tree of adds: shorter dependency chains than left-to-right
			yr[ow] = ((bv + w0*a0) + (w1*a1 + w2*a2)) + ((w3*b0 + w4*b1) + (w5*b2 + w6*c0)) + (w7*c1 + w8*c2)
		}
		for ow := owHi; ow < OW; ow++ {
			yr[ow] = border(oh, ow)
		}
	}
}

// dwBackwardData: w: [C, 1, K, K]; dy: [N, C, OH, OW]; dx: [N, C, H, W] (overwritten).
func dwBackwardData(g *convGeom, w, dy, dx []float32) {
	HW, OHW, KK := g.H*g.W, g.OH*g.OW, g.K*g.K
	parallelFor(g.N*g.C, func(_, lo, hi int) {
		for p := lo; p < hi; p++ {
			c := p % g.C
			dxp := dx[p*HW : (p+1)*HW]
			dyp := dy[p*OHW : (p+1)*OHW]
			wc := w[c*KK : (c+1)*KK]
			if g.K == 3 && g.Pad == 1 && g.Stride == 1 {
				// stride 1, "same" padding: dx is the correlation of dy with
				// the flipped kernel, the forward fast path.
				flipped := [9]float32{wc[8], wc[7], wc[6], wc[5], wc[4], wc[3], wc[2], wc[1], wc[0]}
				dw3x3Plane(g, dyp, flipped[:], 0, dxp)
				continue
			}
			clear(dxp)
			for oh := 0; oh < g.OH; oh++ {
				dyr := dyp[oh*g.OW : (oh+1)*g.OW]
				for ki := 0; ki < g.K; ki++ {
					ih := oh*g.Stride - g.Pad + ki
					if ih < 0 || ih >= g.H {
						continue
					}
					dxr := dxp[ih*g.W : (ih+1)*g.W]
					for kj := 0; kj < g.K; kj++ {
						wv := wc[ki*g.K+kj]
						lo, hi := validRange(kj, g.Stride, g.Pad, g.W, g.OW)
						iw := lo*g.Stride - g.Pad + kj
						if g.Stride == 1 {
							d := dxr[iw : iw+hi-lo]
							for o, v := range dyr[lo:hi] {
								d[o] += wv * v
							}
							continue
						}
						for ow := lo; ow < hi; ow++ {
							dxr[iw] += wv * dyr[ow]
							iw += g.Stride
						}
					}
				}
			}
		}
	})
}

// dwBackwardWeight: x: [N, C, H, W]; dy: [N, C, OH, OW]; dw: [C, 1, K, K] (overwritten).
func dwBackwardWeight(g *convGeom, x, dy, dw []float32) {
	HW, OHW, KK := g.H*g.W, g.OH*g.OW, g.K*g.K
	parallelFor(g.C, func(_, lo, hi int) {
		var acc [64]float64
		for c := lo; c < hi; c++ {
			sums := acc[:0]
			if KK <= len(acc) {
				sums = acc[:KK]
				clear(sums)
			} else {
				sums = make([]float64, KK)
			}
			for n := 0; n < g.N; n++ {
				p := n*g.C + c
				xp := x[p*HW : (p+1)*HW]
				dyp := dy[p*OHW : (p+1)*OHW]
				for ki := 0; ki < g.K; ki++ {
					for kj := 0; kj < g.K; kj++ {
						lo, hi := validRange(kj, g.Stride, g.Pad, g.W, g.OW)
						if lo >= hi {
							continue
						}
						var s float32
						for oh := 0; oh < g.OH; oh++ {
							ih := oh*g.Stride - g.Pad + ki
							if ih < 0 || ih >= g.H {
								continue
							}
							xr := xp[ih*g.W : (ih+1)*g.W]
							dyr := dyp[oh*g.OW : (oh+1)*g.OW]
							iw := lo*g.Stride - g.Pad + kj
							if g.Stride == 1 {
								s += dot32(dyr[lo:hi], xr[iw:])
								continue
							}
							var s0, s1 float32
							ow := lo
							for ; ow+2 <= hi; ow += 2 {
								s0 += dyr[ow] * xr[iw]
								s1 += dyr[ow+1] * xr[iw+g.Stride]
								iw += 2 * g.Stride
							}
							if ow < hi {
								s0 += dyr[ow] * xr[iw]
							}
							s += s0 + s1
						}
						sums[ki*g.K+kj] += float64(s)
					}
				}
			}
			for i, v := range sums {
				dw[c*KK+i] = float32(v)
			}
		}
	})
}
