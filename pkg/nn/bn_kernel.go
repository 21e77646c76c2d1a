package nn

import (
	"math"
	"yolodistill/pkg/nn/simd"
)

// Act is an activation fused into BatchNorm or a residual add.
type Act int

const (
	ActNone  Act = iota // identity
	ActReLU             // max(x, 0)
	ActLeaky            // LeakyReLU with slope 0.1: max(x, 0.1x)
)

// String names the activation as in layer listings.
func (a Act) String() string {
	switch a {
	case ActReLU:
		return "relu"
	case ActLeaky:
		return "leaky0.1"
	}
	return "none"
}

// leakySlope is the negative-side slope of ActLeaky (PaddleDetection's 0.1).
const leakySlope = 0.1

// applyAct computes y = act(x*scale + shift) over a row. Branch-free.
func applyAct(act Act, x, y []float32, scale, shift float32) {
	y = y[:len(x)]
	if n := len(x) &^ 3; useSIMD && n > 0 && (act == ActReLU || act == ActLeaky) {
		// the same operations, four lanes at a time
		simd.AffineAct4(x[:n], y[:n], scale, shift, leakySlope, act == ActReLU)
		x, y = x[n:], y[n:]
	}
	switch act {
	case ActReLU:
		for i, v := range x {
			y[i] = max(v*scale+shift, 0)
		}
	case ActLeaky:
		for i, v := range x {
			z := v*scale + shift
			y[i] = max(z, leakySlope*z)
		}
	default:
		if scale == 1 && shift == 0 {
			copy(y, x)
			return
		}
		for i, v := range x {
			y[i] = v*scale + shift
		}
	}
}

// actGrad writes d = dy * act'(z) where the activation's output y = act(z)
// tells the side of z: ReLU passes where y != 0 (y is never negative), leaky
// takes its slope from y's sign bit. Branch-free.
func actGrad(act Act, y, dy, d []float32) {
	d = d[:len(dy)]
	switch act {
	case ActReLU:
		for i, v := range dy {
			b := math.Float32bits(y[i])
			d[i] = v * float32((b|-b)>>31)
		}
	case ActLeaky:
		slopes := [2]float32{1, leakySlope}
		for i, v := range dy {
			d[i] = v * slopes[math.Float32bits(y[i])>>31]
		}
	default:
		copy(d, dy)
	}
}

// sum64 sums xs with float32 partial sums over short runs, accumulated in float64.
func sum64(xs []float32) float64 {
	var total float64
	for len(xs) > 0 {
		n := min(len(xs), 256)
		total += float64(sum32(xs[:n]))
		xs = xs[n:]
	}
	return total
}

// BNConfig holds BatchNorm hyper-parameters.
//
// Running statistics are updated in training mode as
// running = Momentum*running + (1-Momentum)*batch, which is Paddle's convention
// (momentum 0.9) and equals torch's with torch momentum = 1-Momentum (0.1).
// The batch variance fed to the running variance is the biased one (divided by
// N*H*W) as Paddle does, or the unbiased one (divided by N*H*W-1) as torch
// does when UnbiasedRunningVar is set. Normalisation always uses the biased
// variance (both frameworks do).
type BNConfig struct {
	Momentum           float32 // default 0.9
	Eps                float32 // default 1e-5
	UnbiasedRunningVar bool    // torch convention; false = Paddle convention
}

// DefaultBN is PaddleDetection's setting: momentum 0.9, eps 1e-5, biased running variance.
var DefaultBN = BNConfig{Momentum: 0.9, Eps: 1e-5}

// bnGeom is a BatchNorm over x: [N, C, HW], or in oneDNN's blocked layout
// of blk channels per block when blk > 0 (bn_blocked.go; C a multiple of blk).
type bnGeom struct {
	N, C, HW int
	cfg      BNConfig
	act      Act
	blk      int // oneDNN block of channels (16: nChw16c, 8: nChw8c); 0: plain
}

// bnSqDev is channel c's sum of squared deviations from mu over the batch,
// in 256-element float32 runs added in float64.
func bnSqDev(g *bnGeom, x []float32, c int, mu float32) float64 {
	var ss float64
	for n := 0; n < g.N; n++ {
		row := x[(n*g.C+c)*g.HW : (n*g.C+c+1)*g.HW]
		for len(row) > 0 {
			k := min(len(row), 256)
			ss += float64(sqDev32(row[:k], mu))
			row = row[k:]
		}
	}
	return ss
}

// bnNormalise finishes channel c of a training forward pass from its mean
// mu and squared deviations ss over M values: saves 1/sqrt(var+eps), writes
// y = act(gamma*(x-mu)*invstd + beta) and updates the running statistics.
func bnNormalise(g *bnGeom, c int, x, y, gamma, beta []float32, mu float32, ss, M float64, invstd, runMean, runVar []float32) {
	scale, shift := bnFinish(g, c, gamma, beta, mu, ss, M, invstd, runMean, runVar)
	for n := 0; n < g.N; n++ {
		off := (n*g.C + c) * g.HW
		applyAct(g.act, x[off:off+g.HW], y[off:off+g.HW], scale, shift)
	}
}

// bnFinish is bnNormalise but for writing y: it returns channel c's scale
// and shift.
func bnFinish(g *bnGeom, c int, gamma, beta []float32, mu float32, ss, M float64, invstd, runMean, runVar []float32) (scale, shift float32) {
	variance := ss / M
	is := float32(1 / math.Sqrt(variance+float64(g.cfg.Eps)))
	invstd[c] = is
	scale = gamma[c] * is
	shift = beta[c] - mu*scale
	rv := variance
	if g.cfg.UnbiasedRunningVar && M > 1 {
		rv = ss / (M - 1)
	}
	m := g.cfg.Momentum
	runMean[c] = m*runMean[c] + (1-m)*mu
	runVar[c] = m*runVar[c] + (1-m)*float32(rv)
	return scale, shift
}

// bnForwardTrain normalises with batch statistics, applies act, saves the
// batch mean and 1/sqrt(var+eps) per channel, and updates the running stats.
// x, y: [N, C, HW]; gamma, beta, mean, invstd, runMean, runVar: [C].
func bnForwardTrain(g *bnGeom, x, gamma, beta, y, mean, invstd, runMean, runVar []float32) {
	M := g.N * g.HW
	if g.blk > 0 {
		parallelFor(g.C/g.blk, func(_, lo, hi int) {
			var s, ss [16]float64
			for b := lo; b < hi; b++ {
				c0 := b * g.blk
				clear(s[:g.blk])
				clear(ss[:g.blk])
				blkSums(g, x, b, s[:g.blk])
				for j := range g.blk {
					mean[c0+j] = float32(s[j] / float64(M))
				}
				blkSqDevs(g, x, b, mean[c0:c0+g.blk], ss[:g.blk])
				bnBlkNormalise(g, b, x, y, gamma, beta, mean, ss[:g.blk], float64(M), invstd, runMean, runVar)
			}
		})
		return
	}
	parallelFor(g.C, func(_, lo, hi int) {
		for c := lo; c < hi; c++ {
			var s float64
			for n := 0; n < g.N; n++ {
				s += sum64(x[(n*g.C+c)*g.HW : (n*g.C+c+1)*g.HW])
			}
			mu := float32(s / float64(M))
			ss := bnSqDev(g, x, c, mu)
			mean[c] = mu
			bnNormalise(g, c, x, y, gamma, beta, mu, ss, float64(M), invstd, runMean, runVar)
		}
	})
}

// bnForwardInfer normalises with the running statistics and applies act.
// x, y: [N, C, HW]; gamma, beta, runMean, runVar: [C].
func bnForwardInfer(nw int, g *bnGeom, x, gamma, beta, runMean, runVar, y []float32) {
	if g.blk > 0 {
		parallelForW(nw, g.C/g.blk, func(_, lo, hi int) {
			var scale, shift [16]float32
			for b := lo; b < hi; b++ {
				for j := range g.blk {
					scale[j], shift[j] = bnInferAffine(g, b*g.blk+j, gamma, beta, runMean, runVar)
				}
				blkApply(g, x, y, b, scale[:g.blk], shift[:g.blk])
			}
		})
		return
	}
	parallelForW(nw, g.N*g.C, func(_, lo, hi int) {
		for p := lo; p < hi; p++ {
			scale, shift := bnInferAffine(g, p%g.C, gamma, beta, runMean, runVar)
			applyAct(g.act, x[p*g.HW:(p+1)*g.HW], y[p*g.HW:(p+1)*g.HW], scale, shift)
		}
	})
}

// bnInferAffine returns channel c's inference scale and shift from the
// running statistics: y = act(x*scale + shift).
func bnInferAffine(g *bnGeom, c int, gamma, beta, runMean, runVar []float32) (scale, shift float32) {
	is := float32(1 / math.Sqrt(float64(runVar[c])+float64(g.cfg.Eps)))
	scale = gamma[c] * is
	return scale, beta[c] - runMean[c]*scale
}

// bnBackward computes dx, dgamma and dbeta of training-mode BN+act from the
// input x, the output y, the upstream gradient dy and the saved batch mean and
// invstd. x, y, dy, dx: [N, C, HW]; gamma, mean, invstd, dgamma, dbeta: [C].
// dx, dgamma and dbeta are fully overwritten. The activation's derivative is
// recomputed from y in both passes rather than stored.
func bnBackward(g *bnGeom, x, y, gamma, mean, invstd, dy, dx, dgamma, dbeta []float32) {
	M := float64(g.N * g.HW)
	if g.blk > 0 {
		parallelFor(g.C/g.blk, func(_, lo, hi int) {
			var sdz, sdzx [16]float64
			for b := lo; b < hi; b++ {
				c := b * g.blk
				clear(sdz[:])
				clear(sdzx[:])
				blkGradSums(g, y, dy, x, b, mean[c:c+g.blk], sdz[:g.blk], sdzx[:g.blk])
				for j := range g.blk {
					dgamma[c+j], dbeta[c+j] = float32(sdzx[j])*invstd[c+j], float32(sdz[j])
				}
				bnBlkDx(g, y, dy, x, dx, b, gamma, mean, invstd, dgamma[c:c+g.blk], dbeta[c:c+g.blk], M)
			}
		})
		return
	}
	parallelFor(g.C, func(_, lo, hi int) {
		for c := lo; c < hi; c++ {
			mu, is := mean[c], invstd[c]
			var sdz, sdzx float64
			for n := 0; n < g.N; n++ {
				off := (n*g.C + c) * g.HW
				for i0 := 0; i0 < g.HW; i0 += 512 {
					i1 := min(i0+512, g.HW)
					a, b := bnRowSums(g.act, y[off+i0:off+i1], dy[off+i0:off+i1], x[off+i0:off+i1], mu)
					sdz += float64(a)
					sdzx += float64(b)
				}
			}
			db := float32(sdz)
			dg := float32(sdzx) * is
			dgamma[c], dbeta[c] = dg, db
			// dx = gamma*is * (dz - db/M - xhat*dg/M), xhat = (x-mu)*is
			k := gamma[c] * is
			c0 := float32(float64(db) / M)
			c1 := float32(float64(dg) / M * float64(is))
			for n := 0; n < g.N; n++ {
				off := (n*g.C + c) * g.HW
				bnRowDx(g.act, y[off:off+g.HW], dy[off:off+g.HW], x[off:off+g.HW], dx[off:off+g.HW], mu, k, c0, c1)
			}
		}
	})
}

// bnRowSums returns sum(dz) and sum(dz*(x-mu)) over a row, dz = act'(.)*dy
// with the slope taken branch-free from y's bits (ReLU: y != 0; leaky: sign).
func bnRowSums(act Act, y, dy, x []float32, mu float32) (sdz, sdzx float32) {
	dy, x = dy[:len(y)], x[:len(y)]
	var a0, a1, b0, b1 float32 // two chains per sum
	i := 0
	if n := len(y) &^ 1; useSIMD && n > 0 && (act == ActReLU || act == ActLeaky) {
		// the same two chains per sum, two lanes at a time
		s := simd.BnSums2(y[:n], dy[:n], x[:n], mu, leakySlope, act == ActReLU)
		a0, a1, b0, b1, i = s[0], s[1], s[2], s[3], n
	}
	switch act {
	case ActReLU:
		for ; i+2 <= len(y); i += 2 {
			u0, u1 := math.Float32bits(y[i]), math.Float32bits(y[i+1])
			d0 := dy[i] * float32((u0|-u0)>>31)
			d1 := dy[i+1] * float32((u1|-u1)>>31)
			a0 += d0
			a1 += d1
			b0 += d0 * (x[i] - mu)
			b1 += d1 * (x[i+1] - mu)
		}
		for ; i < len(y); i++ {
			u := math.Float32bits(y[i])
			d := dy[i] * float32((u|-u)>>31)
			a0 += d
			b0 += d * (x[i] - mu)
		}
	case ActLeaky:
		slopes := [2]float32{1, leakySlope}
		for ; i+2 <= len(y); i += 2 {
			d0 := dy[i] * slopes[math.Float32bits(y[i])>>31]
			d1 := dy[i+1] * slopes[math.Float32bits(y[i+1])>>31]
			a0 += d0
			a1 += d1
			b0 += d0 * (x[i] - mu)
			b1 += d1 * (x[i+1] - mu)
		}
		for ; i < len(y); i++ {
			d := dy[i] * slopes[math.Float32bits(y[i])>>31]
			a0 += d
			b0 += d * (x[i] - mu)
		}
	default:
		for ; i+2 <= len(y); i += 2 {
			a0 += dy[i]
			a1 += dy[i+1]
			b0 += dy[i] * (x[i] - mu)
			b1 += dy[i+1] * (x[i+1] - mu)
		}
		for ; i < len(y); i++ {
			a0 += dy[i]
			b0 += dy[i] * (x[i] - mu)
		}
	}
	return a0 + a1, b0 + b1
}

// bnRowDx writes dx = k*(act'(.)*dy - c0 - (x-mu)*c1) over a row.
func bnRowDx(act Act, y, dy, x, dx []float32, mu, k, c0, c1 float32) {
	dy, x, dx = dy[:len(y)], x[:len(y)], dx[:len(y)]
	if n := len(y) &^ 3; useSIMD && n > 0 && (act == ActReLU || act == ActLeaky) {
		// the same operations, four lanes at a time
		simd.BnDx4(y[:n], dy[:n], x[:n], dx[:n], mu, k, c0, c1, leakySlope, act == ActReLU)
		y, dy, x, dx = y[n:], dy[n:], x[n:], dx[n:]
	}
	switch act {
	case ActReLU:
		for i, v := range y {
			b := math.Float32bits(v)
			dx[i] = k * (dy[i]*float32((b|-b)>>31) - c0 - (x[i]-mu)*c1)
		}
	case ActLeaky:
		slopes := [2]float32{1, leakySlope}
		for i, v := range y {
			dx[i] = k * (dy[i]*slopes[math.Float32bits(v)>>31] - c0 - (x[i]-mu)*c1)
		}
	default:
		for i, d := range dy {
			dx[i] = k * (d - c0 - (x[i]-mu)*c1)
		}
	}
}
