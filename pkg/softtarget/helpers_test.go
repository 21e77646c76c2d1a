package softtarget

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"yolodistill/pkg/anchor"
)

var yoloAnchors = anchor.Defaults()
var yoloMasks = anchor.DefaultMasks()
var yoloStrides = anchor.DefaultStrides()

func testMeta(nClasses int, enc Encoding, feats ...string) Meta {
	cls := make([]string, nClasses)
	for i := range cls {
		cls[i] = fmt.Sprintf("class%d", i)
	}
	return Meta{
		TeacherConfigHash: "sha256:teacher-abc",
		Classes:           cls,
		Anchors:           yoloAnchors,
		Masks:             yoloMasks,
		Encoding:          enc,
		Features:          feats,
	}
}

// realisticObj draws teacher objectness logits: mostly very negative
// (background, N(-7, 2)), with a few objects whose cells are confident.
func realisticObj(rng *rand.Rand) float32 {
	if rng.Float64() < 0.003 {
		return float32(rng.Float64() * 5) // confident cells: logit in [0, 5)
	}
	return float32(-7 + 2*rng.NormFloat64())
}

// testView builds a view at the given input size with random logits:
// x, y, w, h, cls ~ N(0, 2), objectness from realisticObj.
// Outputs[s]: [A*(5+C), in/stride, in/stride].
func testView(rng *rand.Rand, m *Meta, id int64, view, inH, inW int) *View {
	v := &View{ImageID: id, File: fmt.Sprintf("img/%06d.jpg", id), ViewIndex: view, InputH: inH, InputW: inW}
	v.Aug = []byte(fmt.Sprintf(`{"flip":%v,"scale":%d}`, view%2 == 1, inH))
	k := 5 + len(m.Classes)
	for s := range m.Masks {
		h, w := inH/yoloStrides[s], inW/yoloStrides[s]
		a := len(m.Masks[s])
		t := Tensor{Shape: []int{a * k, h, w}, Data: make([]float32, a*k*h*w)}
		for ai := 0; ai < a; ai++ {
			for c := 0; c < k; c++ {
				ch := t.Data[(ai*k+c)*h*w : (ai*k+c+1)*h*w]
				for p := range ch {
					if c == 4 {
						ch[p] = realisticObj(rng)
					} else {
						ch[p] = float32(2 * rng.NormFloat64())
					}
				}
			}
		}
		v.Outputs = append(v.Outputs, t)
	}
	if len(m.Features) > 0 {
		v.Features = map[string]Tensor{}
		for i, f := range m.Features {
			sh := []int{4 + i, inH / 8, inW / 8}
			n, _ := numel(sh)
			d := make([]float32, n)
			for j := range d {
				d[j] = float32(rng.NormFloat64())
			}
			v.Features[f] = Tensor{Shape: sh, Data: d}
		}
	}
	return v
}

// writeStream writes views to an in-memory stream.
func writeStream(t testing.TB, m Meta, views []*View, opts ...Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewStreamWriter(&buf, m, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		if err := w.Write(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func quantHalf(x float32) float32 { return halfToFloat[floatToHalf(x)] }

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// expectedDecoded is what a reader must return for v under encoding e: dense
// values (half-quantized if e.Half; box/class zero where not stored) and the
// stored mask (nil for dense).
func expectedDecoded(m *Meta, v *View) ([][]float32, [][]bool) {
	e := m.Encoding
	q := func(x float32) float32 {
		if e.Half {
			return quantHalf(x)
		}
		return x
	}
	var outs [][]float32
	var stored [][]bool
	k := 5 + len(m.Classes)
	for s, t := range v.Outputs {
		d := make([]float32, len(t.Data))
		if e.Kind == Dense {
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
func checkView(t *testing.T, m *Meta, want, got *View) {
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
				x = quantHalf(x)
			}
			if gf.Data[i] != x {
				t.Fatalf("feature %q value %d: got %v want %v", name, i, gf.Data[i], x)
			}
		}
	}
}
