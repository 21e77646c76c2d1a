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

// ReluAffine4 writes y = max(x*scale+shift, 0) (Go's max: NaN stays, -0 gives +0).
//
//go:noescape
func ReluAffine4(x, y []float32, scale, shift float32)

// LeakyAffine4 writes y = max(z, slope*z), z = x*scale+shift.
//
//go:noescape
func LeakyAffine4(x, y []float32, scale, shift, slope float32)

// BnDxReLU4 writes dx = k*(dy*m - c0 - (x-mu)*c1), m = 1 where y's bits are not 0, else 0.
//
//go:noescape
func BnDxReLU4(y, dy, x, dx []float32, mu, k, c0, c1 float32)

// BnDxLeaky4 is BnDxReLU4 with m = slope where y's sign bit is set, else 1.
//
//go:noescape
func BnDxLeaky4(y, dy, x, dx []float32, mu, k, c0, c1, slope float32)

// BnSumsReLU2 returns, over pairs, s[j] = the sum of d and s[2+j] = the sum of
// d*(x-mu) for the pairs' element j, d = dy*m as in BnDxReLU4.
//
//go:noescape
func BnSumsReLU2(y, dy, x []float32, mu float32) (s [4]float32)

// BnSumsLeaky2 is BnSumsReLU2 with BnDxLeaky4's m.
//
//go:noescape
func BnSumsLeaky2(y, dy, x []float32, mu, slope float32) (s [4]float32)
