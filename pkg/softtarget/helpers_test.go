package softtarget_test

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"yolodistill/pkg/softtarget"
)

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// expectedDecoded is what a reader must return for v under encoding e: dense
// values (half-quantized if e.Half; box/class zero where not stored) and the
// stored mask (nil for dense).
func expectedDecoded(m *softtarget.Meta, v *softtarget.View) ([][]float32, [][]bool) {
	e := m.Encoding
	q := func(x float32) float32 {
		if e.Half {
			return softtarget.QuantHalf(x)
		}
		return x
	}
	var outs [][]float32
	var stored [][]bool
	k := 5 + len(m.Classes)
	for s, t := range v.Outputs {
		d := make([]float32, len(t.Data))
		if e.Kind == softtarget.Dense {
			for i, x := range t.Data {
				d[i] = q(x)
			}
			outs = append(outs, d)
			continue
		}
		a, hw := len(m.Masks[s]), t.Shape[1]*t.Shape[2]
		st := make([]bool, a*hw)
		for ai := 0; ai < a; ai++ {
			for p := 0; p < hw; p++ {
				obj := t.Data[(ai*k+4)*hw+p]
				keep := e.Threshold == 0 || sigmoid(float64(obj)) >= e.Threshold
				st[ai*hw+p] = keep
				for c := 0; c < k; c++ {
					if c == 4 || keep {
						d[(ai*k+c)*hw+p] = q(t.Data[(ai*k+c)*hw+p])
					}
				}
			}
		}
		outs = append(outs, d)
		stored = append(stored, st)
	}
	return outs, stored
}

// checkView compares a decoded view with the written one: metadata fields
// exactly, values exactly against expectedDecoded (bit-exact after the same
// quantization), features against their quantized values.
func checkView(t *testing.T, m *softtarget.Meta, want, got *softtarget.View) {
	t.Helper()
	if got.ImageID != want.ImageID || got.File != want.File || got.ViewIndex != want.ViewIndex ||
		!bytes.Equal(got.Aug, want.Aug) || got.InputH != want.InputH || got.InputW != want.InputW {
		t.Fatalf("header: got %d %q %d %q %dx%d, want %d %q %d %q %dx%d", got.ImageID, got.File, got.ViewIndex, got.Aug, got.InputH, got.InputW,
			want.ImageID, want.File, want.ViewIndex, want.Aug, want.InputH, want.InputW)
	}
	outs, stored := expectedDecoded(m, want)
	if len(got.Outputs) != len(outs) {
		t.Fatalf("%d outputs, want %d", len(got.Outputs), len(outs))
	}
	for s := range outs {
		if fmt.Sprint(got.Outputs[s].Shape) != fmt.Sprint(want.Outputs[s].Shape) {
			t.Fatalf("scale %d shape %v, want %v", s, got.Outputs[s].Shape, want.Outputs[s].Shape)
		}
		for i, x := range outs[s] {
			if math.Float32bits(got.Outputs[s].Data[i]) != math.Float32bits(x) {
				t.Fatalf("scale %d value %d: got %v, want %v (written %v)", s, i, got.Outputs[s].Data[i], x, want.Outputs[s].Data[i])
			}
		}
	}
	if stored == nil {
		if got.Stored != nil {
			t.Fatalf("dense view has a Stored mask")
		}
	} else {
		for s := range stored {
			if fmt.Sprint(got.Stored[s]) != fmt.Sprint(stored[s]) {
				t.Fatalf("scale %d stored mask differs", s)
			}
		}
	}
	if len(got.Features) != len(want.Features) {
		t.Fatalf("%d features, want %d", len(got.Features), len(want.Features))
	}
	for name, wf := range want.Features {
		gf, ok := got.Features[name]
		if !ok || fmt.Sprint(gf.Shape) != fmt.Sprint(wf.Shape) || len(gf.Data) != len(wf.Data) {
			t.Fatalf("feature %q: got shape %v", name, gf.Shape)
		}
		for i, x := range wf.Data {
			if m.Encoding.Half {
				x = softtarget.QuantHalf(x)
			}
			if gf.Data[i] != x {
				t.Fatalf("feature %q value %d: got %v want %v", name, i, gf.Data[i], x)
			}
		}
	}
}
