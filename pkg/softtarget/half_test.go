package softtarget

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// TestHalfAgainstNumpy checks float32 -> binary16 against numpy's astype
// (testdata/softtarget/gen_half.py), bit for bit, and back.
func TestHalfAgainstNumpy(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/softtarget/half_numpy.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		F32 []uint32 `json:"float32_bits"`
		F16 []uint16 `json:"float16_bits"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.F32) < 2000 || len(ref.F32) != len(ref.F16) {
		t.Fatalf("fixture has %d/%d values", len(ref.F32), len(ref.F16))
	}
	for i, b := range ref.F32 {
		f := math.Float32frombits(b)
		if got := floatToHalf(f); got != ref.F16[i] {
			t.Errorf("floatToHalf(%g) = %#04x, numpy %#04x", f, got, ref.F16[i])
		}
	}
}

func TestHalfTable(t *testing.T) {
	cases := []struct {
		name string
		in   float32
		want float32
	}{
		{"one", 1, 1},
		{"max", 65504, 65504},
		{"overflow tie to Inf", 65520, float32(math.Inf(1))},
		{"tie to even down", 1 + 1.0/2048, 1},
		{"tie to even up", 1 + 3.0/2048, 1 + 2.0/1024},
		{"smallest subnormal", 1.0 / (1 << 24), 1.0 / (1 << 24)},
		{"half of smallest subnormal ties to zero", 1.0 / (1 << 25), 0},
		{"subnormal rounds up", 3.0 / (1 << 25), 2.0 / (1 << 24)},
		{"largest subnormal to smallest normal", 1.0/(1<<14) - 1.0/(1<<26), 1.0 / (1 << 14)},
		{"negative logit", -7.3125, -7.3125},
	}
	for _, tc := range cases {
		got := halfToFloat[floatToHalf(tc.in)]
		if got != tc.want {
			t.Errorf("%s: %g -> %g, want %g", tc.name, tc.in, got, tc.want)
		}
	}
	if h := floatToHalf(float32(math.NaN())); !math.IsNaN(float64(halfToFloat[h])) {
		t.Errorf("NaN -> %#04x", h)
	}
	if h := floatToHalf(float32(math.Copysign(0, -1))); h != 0x8000 {
		t.Errorf("-0 -> %#04x", h)
	}
}

// TestHalfExhaustive: every finite half value survives half -> float32 -> half,
// and random float32 values round with error <= half an ulp (relative 2^-11
// in the normal range, absolute 2^-25 in the subnormal range).
func TestHalfExhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue // NaN payloads
		}
		if got := floatToHalf(halfToFloat[h]); got != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, halfToFloat[h], got)
		}
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for i := 0; i < 100000; i++ {
		f := float32(math.Exp(rng.Float64()*28-20) * (rng.Float64()*2 - 1))
		q := halfToFloat[floatToHalf(f)]
		err := math.Abs(float64(q - f))
		tol := math.Max(math.Abs(float64(f))/2048, 1.0/(1<<25))
		if err > tol {
			t.Fatalf("%g -> %g: error %g > %g", f, q, err, tol)
		}
	}
}
