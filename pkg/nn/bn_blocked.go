package nn

import (
	"math"

	"yolodistill/pkg/nn/simd"
)

// BatchNorm over activations in oneDNN's blocked layouts nChw16c (AVX-512)
// and nChw8c (AVX2): with bs = bnGeom.blk channels per block, image n's
// channels bs*b..bs*b+bs-1 lie in one block of HW x bs floats, element hw of
// channel bs*b+j at ((n*C/bs + b)*HW + hw)*bs + j. A training graph keeps a
// ConvBNAct's tensors so when the convolutions on both sides take that
// layout (planBlocked). Every channel gets exactly the float32 and float64
// operations, in the same order, of the kernels over plain rows
// (bn_kernel.go, syncbn.go): the same runs of 256 (512 for the gradient
// sums), the same chains within a run, the same float64 totals; only the
// memory layout differs, so results are the same bits in either layout
// (TestBlockedBNMatchesPlain). The vector kernels (pkg/nn/simd) work on a
// group of four channels at a time, lane j on one channel.

// blkBase returns the offset of image n's block b.
func (g *bnGeom) blkBase(n, b int) int { return (n*(g.C/g.blk) + b) * g.HW * g.blk }

// blkSum32 returns, per lane of the four-channel group at x (element e of
// lane j at x[bs*e+j]), sum32 of its first L elements.
func blkSum32(x []float32, L, bs int) (r [4]float32) {
	var s [16]float32 // chain k of lane j at s[4k+j]
	i := 0
	if useSIMD {
		s, i = simd.BlkSum4(x, L, 4*bs), L&^3
	}
	for ; i+4 <= L; i += 4 {
		for k := range 4 {
			for j := range 4 {
				s[4*k+j] += x[bs*(i+k)+j]
			}
		}
	}
	for ; i < L; i++ {
		for j := range 4 {
			s[j] += x[bs*i+j]
		}
	}
	for j := range 4 {
		r[j] = (s[j] + s[4+j]) + (s[8+j] + s[12+j])
	}
	return
}

// blkSqDev32 is blkSum32 of (x-mu[j])^2 (sqDev32 per lane).
func blkSqDev32(x []float32, L, bs int, mu [4]float32) (r [4]float32) {
	var s [16]float32
	i := 0
	if useSIMD {
		s, i = simd.BlkSqDev4(x, L, 4*bs, mu), L&^3
	}
	for ; i+4 <= L; i += 4 {
		for k := range 4 {
			for j := range 4 {
				d := x[bs*(i+k)+j] - mu[j]
				s[4*k+j] += d * d
			}
		}
	}
	for ; i < L; i++ {
		for j := range 4 {
			d := x[bs*i+j] - mu[j]
			s[j] += d * d
		}
	}
	for j := range 4 {
		r[j] = (s[j] + s[4+j]) + (s[8+j] + s[12+j])
	}
	return
}

// actCode is act for the simd kernels: 0 none, 1 ReLU, 2 leaky.
func actCode(act Act) int {
	switch act {
	case ActReLU:
		return 1
	case ActLeaky:
		return 2
	}
	return 0
}

// actSlope returns act's derivative from its output's bits (actGrad's rule).
func actSlope(act Act, y float32) float32 {
	b := math.Float32bits(y)
	switch act {
	case ActReLU:
		return float32((b | -b) >> 31)
	case ActLeaky:
		return [2]float32{1, leakySlope}[b>>31]
	}
	return 1
}

// blkAffineAct writes L elements of the four-lane group: y = act(x*scale[j]
// + shift[j]), as applyAct does per row (a lane with scale 1 and shift 0
// and no activation is copied, as there).
func blkAffineAct(act Act, x, y []float32, L, bs int, scale, shift [4]float32) {
	copyLane := false
	for j := range 4 {
		copyLane = copyLane || act == ActNone && scale[j] == 1 && shift[j] == 0
	}
	if useSIMD && !copyLane {
		simd.BlkAffineAct4(x, y, L, 4*bs, scale, shift, leakySlope, actCode(act))
		return
	}
	for i := range L {
		for j := range 4 {
			v := x[bs*i+j]
			z := v*scale[j] + shift[j]
			switch {
			case act == ActReLU:
				z = max(z, 0)
			case act == ActLeaky:
				z = max(z, leakySlope*z)
			case scale[j] == 1 && shift[j] == 0:
				z = v
			}
			y[bs*i+j] = z
		}
	}
}

// blkRowSums is bnRowSums per lane over L elements.
func blkRowSums(act Act, y, dy, x []float32, L, bs int, mu [4]float32) (sdz, sdzx [4]float32) {
	var s [16]float32 // a0, a1, b0, b1 of lane j at s[j], s[4+j], s[8+j], s[12+j]
	i := 0
	if useSIMD {
		s, i = simd.BlkBnSums2(y, dy, x, L, 4*bs, mu, leakySlope, actCode(act)), L&^1
	}
	for ; i < L; i++ {
		c := i & 1 // an odd L's last element goes to chain 0, as in bnRowSums
		for j := range 4 {
			o := bs*i + j
			d := dy[o] * actSlope(act, y[o])
			s[4*c+j] += d
			s[8+4*c+j] += d * (x[o] - mu[j])
		}
	}
	for j := range 4 {
		sdz[j], sdzx[j] = s[j]+s[4+j], s[8+j]+s[12+j]
	}
	return
}

// blkRowDx is bnRowDx per lane over L elements.
func blkRowDx(act Act, y, dy, x, dx []float32, L, bs int, mu, k, c0, c1 [4]float32) {
	if useSIMD {
		simd.BlkBnDx4(y, dy, x, dx, L, 4*bs, mu, k, c0, c1, leakySlope, actCode(act))
		return
	}
	for i := range L {
		for j := range 4 {
			o := bs*i + j
			dx[o] = k[j] * (dy[o]*actSlope(act, y[o]) - c0[j] - (x[o]-mu[j])*c1[j])
		}
	}
}

// lanes4 returns v[4q : 4q+4] as an array.
func lanes4(v []float32, q int) [4]float32 { return [4]float32(v[4*q : 4*q+4]) }

// tiles calls f for image n's block b, per tile of up to run elements per
// channel (run is the plain kernels' run length where it matters) and per
// group q of four lanes, with the group's offset o and the tile's length L.
func (g *bnGeom) tiles(n, b, run int, f func(o, L, q int)) {
	bs, base := g.blk, g.blkBase(n, b)
	for h0 := 0; h0 < g.HW; h0 += run {
		L := min(run, g.HW-h0)
		for q := range bs / 4 {
			f(base+h0*bs+4*q, L, q)
		}
	}
}

// blkSums adds, for the channels of block b, sum64 of each image's row into
// s[0:bs] (a float64 per image, then the total, as bnForwardTrain).
func blkSums(g *bnGeom, x []float32, b int, s []float64) {
	var row [16]float64
	for n := range g.N {
		clear(row[:])
		g.tiles(n, b, 256, func(o, L, q int) {
			r := blkSum32(x[o:], L, g.blk)
			for j := range 4 {
				row[4*q+j] += float64(r[j])
			}
		})
		for j := range g.blk {
			s[j] += row[j]
		}
	}
}

// blkSqDevs adds bnSqDev's sums for block b's channels (means mu) into ss.
func blkSqDevs(g *bnGeom, x []float32, b int, mu []float32, ss []float64) {
	for n := range g.N {
		g.tiles(n, b, 256, func(o, L, q int) {
			r := blkSqDev32(x[o:], L, g.blk, lanes4(mu, q))
			for j := range 4 {
				ss[4*q+j] += float64(r[j])
			}
		})
	}
}

// blkApply writes y = act(x*scale+shift) over block b (scale, shift: its
// channels'), in tiles that stay in cache across the lane groups.
func blkApply(g *bnGeom, x, y []float32, b int, scale, shift []float32) {
	for n := range g.N {
		g.tiles(n, b, 256, func(o, L, q int) {
			blkAffineAct(g.act, x[o:], y[o:], L, g.blk, lanes4(scale, q), lanes4(shift, q))
		})
	}
}

// blkGradSums adds bnBackward's gradient sums for block b's channels into
// sdz and sdzx (float64 per run of 512, as there).
func blkGradSums(g *bnGeom, y, dy, x []float32, b int, mu []float32, sdz, sdzx []float64) {
	for n := range g.N {
		g.tiles(n, b, 512, func(o, L, q int) {
			a, c := blkRowSums(g.act, y[o:], dy[o:], x[o:], L, g.blk, lanes4(mu, q))
			for j := range 4 {
				sdz[4*q+j] += float64(a[j])
				sdzx[4*q+j] += float64(c[j])
			}
		})
	}
}

// blkDx writes bnRowDx's dx over block b (per-channel mu, k, c0, c1).
func blkDx(g *bnGeom, y, dy, x, dx []float32, b int, mu, k, c0, c1 []float32) {
	for n := range g.N {
		g.tiles(n, b, 256, func(o, L, q int) {
			blkRowDx(g.act, y[o:], dy[o:], x[o:], dx[o:], L, g.blk, lanes4(mu, q), lanes4(k, q), lanes4(c0, q), lanes4(c1, q))
		})
	}
}

// bnBlkNormalise is bnNormalise for block b's channels (ss: their squared
// deviations).
func bnBlkNormalise(g *bnGeom, b int, x, y, gamma, beta, mean []float32, ss []float64, M float64, invstd, runMean, runVar []float32) {
	var scale, shift [16]float32
	for j := range g.blk {
		c := b*g.blk + j
		scale[j], shift[j] = bnFinish(g, c, gamma, beta, mean[c], ss[j], M, invstd, runMean, runVar)
	}
	blkApply(g, x, y, b, scale[:g.blk], shift[:g.blk])
}

// bnBlkDx writes dx over block b from its channels' dbeta (db) and dgamma
// (dg) over M values, as bnBackward does per channel.
func bnBlkDx(g *bnGeom, y, dy, x, dx []float32, b int, gamma, mean, invstd, dg, db []float32, M float64) {
	var k, c0, c1 [16]float32
	bs := g.blk
	for j := range bs {
		c := b*bs + j
		is := invstd[c]
		k[j] = gamma[c] * is
		c0[j] = float32(float64(db[j]) / M)
		c1[j] = float32(float64(dg[j]) / M * float64(is))
	}
	blkDx(g, y, dy, x, dx, b, mean[b*bs:b*bs+bs], k[:bs], c0[:bs], c1[:bs])
}
