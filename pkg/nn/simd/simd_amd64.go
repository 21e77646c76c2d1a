//go:build amd64

package simd

// The SSE kernels of simd_amd64.s (SSE2 is part of every amd64 CPU).
const Available = true

// Sum32x4 returns lane j = the sum of xs[4i+j] over the whole blocks, in order.
//
//go:noescape
func Sum32x4(xs []float32) (s [4]float32)

// SqDev32x4 returns lane j = the sum of (xs[4i+j]-mu)^2 over the whole blocks.
//
//go:noescape
func SqDev32x4(xs []float32, mu float32) (s [4]float32)

// AffineAct4 writes y = act(x*scale+shift): with relu max(z, 0) (Go's max:
// NaN stays, -0 gives +0), otherwise max(z, slope*z).
//
//go:noescape
func AffineAct4(x, y []float32, scale, shift, slope float32, relu bool)

// BnDx4 writes dx = k*(dy*m - c0 - (x-mu)*c1); m, with relu, is 1 where
// y's bits are not 0, else 0; otherwise (leaky) slope where y's sign bit is
// set, else 1.
//
//go:noescape
func BnDx4(y, dy, x, dx []float32, mu, k, c0, c1, slope float32, relu bool)

// BnSums2 returns, over pairs, s[j] = the sum of d and s[2+j] = the sum of
// d*(x-mu) for the pairs' element j, d = dy*m with BnDx4's m.
//
//go:noescape
func BnSums2(y, dy, x []float32, mu, slope float32, relu bool) (s [4]float32)

// The blocked kernels: x holds a BatchNorm block in oneDNN's nChw16c or
// nChw8c layout from a group of four channel lanes on (element e of lane j
// at x[e*stride/4+j], stride in bytes: 64 or 32); lane j does what the row
// kernels above do for one channel. act: 0 none, 1 ReLU, 2 leaky.

// BlkSum4 returns, over the first n&^3 elements, s[4k+j] = the sum of lane
// j's elements 4i+k.
//
//go:noescape
func BlkSum4(x []float32, n, stride int) (s [16]float32)

// BlkSqDev4 is BlkSum4 of (x-mu[j])^2.
//
//go:noescape
func BlkSqDev4(x []float32, n, stride int, mu [4]float32) (s [16]float32)

// BlkAffineAct4 writes the n elements of y = act(x*scale[j]+shift[j]) as
// AffineAct4 (act 0: no activation).
//
//go:noescape
func BlkAffineAct4(x, y []float32, n, stride int, scale, shift [4]float32, slope float32, act int)

// BlkBnDx4 writes the n elements of dx as BnDx4 with per-lane mu, k, c0, c1
// (act 0: m = 1).
//
//go:noescape
func BlkBnDx4(y, dy, x, dx []float32, n, stride int, mu, k, c0, c1 [4]float32, slope float32, act int)

// BlkBnSums2 returns BnSums2's sums over the first n&^1 elements per lane:
// s[j] and s[4+j] sum d over the even and odd elements, s[8+j] and s[12+j]
// d*(x-mu[j]) (act 0: m = 1).
//
//go:noescape
func BlkBnSums2(y, dy, x []float32, n, stride int, mu [4]float32, slope float32, act int) (s [16]float32)
