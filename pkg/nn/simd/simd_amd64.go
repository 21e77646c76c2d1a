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
