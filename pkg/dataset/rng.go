package dataset

import "math"

// RNG is a small deterministic pseudo-random generator (SplitMix64) used by the
// augmentations, the loader and the synthetic set. Its whole state is one
// uint64, so a position can be saved and restored exactly; its output depends
// on nothing but that state (not on the Go release, unlike math/rand).
//
// The zero value is a valid generator (state 0). An RNG is not safe for
// concurrent use; give each goroutine its own (see NewRNG and Derive).
type RNG struct {
	State uint64
}

// NewRNG returns a generator whose stream is fixed by the given words: the same
// words always give the same stream, and any change of any word gives an
// unrelated stream. Use it to derive independent streams, e.g.
// NewRNG(seed, epoch, index).
func NewRNG(words ...uint64) *RNG {
	h := uint64(0x6a09e667f3bcc908)
	for _, w := range words {
		h = mix64(h ^ mix64(w+0x9e3779b97f4a7c15))
	}
	return &RNG{State: h}
}

// mix64 is SplitMix64's finaliser: a bijective 64-bit hash.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Uint64 returns the next 64 random bits.
func (r *RNG) Uint64() uint64 {
	r.State += 0x9e3779b97f4a7c15
	return mix64(r.State)
}

// Float64 returns a uniform value in [0, 1) with 53 random bits.
func (r *RNG) Float64() float64 {
	return float64(r.Uint64()>>11) * (1.0 / (1 << 53))
}

// Uniform returns a uniform value in [lo, hi) (lo when hi <= lo).
func (r *RNG) Uniform(lo, hi float64) float64 {
	if !(hi > lo) {
		r.Uint64() // keep the stream position independent of the arguments
		return lo
	}
	return lo + float64(hi-lo)*r.Float64()
}

// Intn returns a uniform integer in [0, n); 0 when n <= 0 (still consuming one
// draw, so the stream position does not depend on n).
func (r *RNG) Intn(n int) int {
	v := r.Uint64()
	if n <= 0 {
		return 0
	}
	// Lemire's multiply-shift; the tiny bias (< n/2^64) is irrelevant here and
	// avoiding rejection keeps one draw per call.
	hi, _ := mul64(v, uint64(n))
	return int(hi)
}

// mul64 returns the 128-bit product of a and b as (hi, lo).
func mul64(a, b uint64) (hi, lo uint64) {
	const mask32 = 1<<32 - 1
	a0, a1 := a&mask32, a>>32
	b0, b1 := b&mask32, b>>32
	w0 := a0 * b0
	t := a1*b0 + w0>>32
	w1 := t&mask32 + a0*b1
	hi = a1*b1 + t>>32 + w1>>32
	lo = a * b
	return
}

// Perm returns a uniform random permutation of 0..n-1 (Fisher-Yates).
func (r *RNG) Perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.Intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// Normal returns a standard normal value (Box-Muller, one value per two draws).
func (r *RNG) Normal() float64 {
	u1 := 1 - r.Float64() // (0, 1]
	u2 := r.Float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// Gamma returns a Gamma(shape, 1) value (Marsaglia and Tsang); shape > 0.
func (r *RNG) Gamma(shape float64) float64 {
	if shape < 1 {
		u := r.Float64()
		return r.Gamma(shape+1) * math.Pow(1-u, 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.Normal()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := 1 - r.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

// Beta returns a Beta(a, b) value in [0, 1]; a, b > 0.
func (r *RNG) Beta(a, b float64) float64 {
	x := r.Gamma(a)
	y := r.Gamma(b)
	if x+y == 0 {
		return 0.5
	}
	return x / (x + y)
}
