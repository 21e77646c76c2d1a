package nn

import "yolodistill/pkg/nn/simd"

// Reductions with four independent accumulators: Go neither vectorises nor
// reassociates float sums, and one accumulator makes every add wait for the
// previous one (a 4-cycle chain); four chains keep the adder busy. On amd64
// the four chains run as the four lanes of SSE registers (pkg/nn/simd):
// the same operations in the same order, so the same bits.

// useSIMD routes the loops that have one to the vector kernels of
// pkg/nn/simd (tests turn it off to compare with the Go loops).
var useSIMD = simd.Available

// sum32 returns the float32 sum of xs (short runs only: callers add the
// results of runs of at most a few hundred elements in float64).
func sum32(xs []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	if useSIMD { // the same four chains, four lanes at a time
		s := simd.Sum32x4(xs)
		s0, s1, s2, s3, i = s[0], s[1], s[2], s[3], len(xs)&^3
	}
	for ; i+4 <= len(xs); i += 4 {
		s0 += xs[i]
		s1 += xs[i+1]
		s2 += xs[i+2]
		s3 += xs[i+3]
	}
	for ; i < len(xs); i++ {
		s0 += xs[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// sqDev32 returns the float32 sum of (x-mu)^2 over xs (short runs).
func sqDev32(xs []float32, mu float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	if useSIMD {
		s := simd.SqDev32x4(xs, mu)
		s0, s1, s2, s3, i = s[0], s[1], s[2], s[3], len(xs)&^3
	}
	for ; i+4 <= len(xs); i += 4 {
		d0, d1, d2, d3 := xs[i]-mu, xs[i+1]-mu, xs[i+2]-mu, xs[i+3]-mu
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(xs); i++ {
		d := xs[i] - mu
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

// dot32 returns the float32 dot product of a and b[:len(a)] (short runs).
func dot32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
