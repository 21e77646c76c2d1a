package nn

import (
	"math"
	"math/rand/v2"
	"testing"
	"yolodistill/pkg/nn/simd"
)

// TestSIMDMatchesGo: the vector kernels (pkg/nn/simd) give the same bits as
// the Go loops, for every length (whole blocks of four and the rest), with
// signed zeros, infinities and NaNs among ordinary values (a NaN output must
// be NaN on both sides).
func TestSIMDMatchesGo(t *testing.T) {
	if !simd.Available {
		t.Skip("no vector kernels on this architecture")
	}
	defer func() { useSIMD = simd.Available }()
	rng := rand.New(rand.NewPCG(5, 6))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-40}
	vec := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			if rng.IntN(8) == 0 {
				v[i] = special[rng.IntN(len(special))]
			} else {
				v[i] = float32(rng.NormFloat64() * 3)
			}
		}
		return v
	}
	same := func(a, b float32) bool {
		return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b
	}
	both := func(f func() []float32) (simd, plain []float32) {
		useSIMD = true
		simd = f()
		useSIMD = false
		plain = f()
		return
	}
	for n := 0; n <= 41; n++ {
		for rep := 0; rep < 20; rep++ {
			x, y, dy := vec(n), vec(n), vec(n)
			mu, scale, shift := float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())
			k, c0, c1 := float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())
			if rep == 0 {
				// every z is a zero of either sign (or NaN): x*0 + (-0)
				scale, shift = 0, float32(math.Copysign(0, -1))
			}
			cases := map[string]func() []float32{
				"sum32":   func() []float32 { return []float32{sum32(x)} },
				"sqDev32": func() []float32 { return []float32{sqDev32(x, mu)} },
			}
			for _, act := range []Act{ActNone, ActReLU, ActLeaky} {
				cases["applyAct "+act.String()] = func() []float32 {
					out := make([]float32, n)
					applyAct(act, x, out, scale, shift)
					return out
				}
				cases["bnRowSums "+act.String()] = func() []float32 {
					a, b := bnRowSums(act, y, dy, x, mu)
					return []float32{a, b}
				}
				cases["bnRowDx "+act.String()] = func() []float32 {
					out := make([]float32, n)
					bnRowDx(act, y, dy, x, out, mu, k, c0, c1)
					return out
				}
			}
			for name, f := range cases {
				a, b := both(f)
				for i := range a {
					if !same(a[i], b[i]) {
						t.Fatalf("%s, n=%d: element %d: vector %v (%#x), Go %v (%#x)", name, n, i, a[i], math.Float32bits(a[i]), b[i], math.Float32bits(b[i]))
					}
				}
			}
		}
	}
}
