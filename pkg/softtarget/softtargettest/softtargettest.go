package softtargettest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"yolodistill/pkg/anchor"
	"yolodistill/pkg/softtarget"
)

// The YOLOv3 anchors (pixels), masks (deepest scale first) and strides of
// every Meta and View made here.
var (
	Anchors = anchor.Defaults()
	Masks   = anchor.DefaultMasks()
	Strides = anchor.DefaultStrides()
)

// TeacherHash is the teacher config hash of every Meta made here.
const TeacherHash = "sha256:teacher-abc"

// Meta is the soft-target metadata of a fake teacher with the given number
// of classes ("class0", "class1", ...), the YOLOv3 Anchors and Masks, the
// encoding and the named feature maps.
func Meta(classes int, enc softtarget.Encoding, features ...string) softtarget.Meta {
	cls := make([]string, classes)
	for i := range cls {
		cls[i] = fmt.Sprintf("class%d", i)
	}
	return softtarget.Meta{
		TeacherConfigHash: TeacherHash,
		Classes:           cls,
		Anchors:           Anchors,
		Masks:             Masks,
		Encoding:          enc,
		Features:          features,
	}
}

// Objectness draws one teacher objectness logit.
type Objectness func(rng *rand.Rand) float32

// FewObjects is an untrained-looking teacher's objectness: background
// N(-7, 2), and 0.3% of cells confident (logit uniform in [0, 5)). Sparse
// encodings at threshold 0.5 keep well under 1% of the cells.
func FewObjects(rng *rand.Rand) float32 {
	if rng.Float64() < 0.003 {
		return float32(rng.Float64() * 5) // confident cells: logit in [0, 5)
	}
	return float32(-7 + 2*rng.NormFloat64())
}

// Trained is the objectness of a trained YOLO head (the demo teacher's, as
// pkg/distill's TestSparseErrorReal prints it): 1% confident cells
// (p in [0.5, 0.998)), 5% uncertain cells around the sparse thresholds
// (p in [0.0025, 0.5)), the rest background N(-8, 1.5).
func Trained(rng *rand.Rand) float32 {
	switch u := rng.Float64(); {
	case u < 0.01:
		return float32(rng.Float64() * 6) // confident: p in [0.5, 0.998)
	case u < 0.06:
		return float32(-6 + 6*rng.Float64()) // uncertain: p in [0.0025, 0.5)
	default:
		return float32(-8 + 1.5*rng.NormFloat64()) // background
	}
}

// Gen draws views of random teacher outputs from Rand. Views drawn in the
// same order from the same seed are the same.
type Gen struct {
	Rand       *rand.Rand
	Objectness Objectness // nil: FewObjects
}

// View draws the view'th view of image id at input size inH x inW (pixels)
// for the teacher of m (its classes, masks and features; strides Strides):
//
//	Outputs[s]: [A_s*(5+C), inH/stride_s, inW/stride_s], x, y, w, h and
//	            class logits ~ N(0, 2), objectness from g.Objectness
//	Features[m.Features[i]]: [4+i, inH/8, inW/8] ~ N(0, 1)
//
// The values are drawn scale by scale, anchor by anchor, channel by
// channel, then the feature maps in m's order. File and Aug are made from
// id, view and inH (no random draws).
func (g *Gen) View(m *softtarget.Meta, id int64, view, inH, inW int) *softtarget.View {
	obj := g.Objectness
	if obj == nil {
		obj = FewObjects
	}
	rng := g.Rand
	v := &softtarget.View{ImageID: id, File: fmt.Sprintf("img/%06d.jpg", id), ViewIndex: view, InputH: inH, InputW: inW}
	v.Aug = []byte(fmt.Sprintf(`{"flip":%v,"scale":%d}`, view%2 == 1, inH))
	k := 5 + len(m.Classes)
	for s := range m.Masks {
		h, w := inH/Strides[s], inW/Strides[s]
		a := len(m.Masks[s])
		t := softtarget.Tensor{Shape: []int{a * k, h, w}, Data: make([]float32, a*k*h*w)}
		for ai := 0; ai < a; ai++ {
			for c := 0; c < k; c++ {
				ch := t.Data[(ai*k+c)*h*w : (ai*k+c+1)*h*w]
				for p := range ch {
					if c == 4 {
						ch[p] = obj(rng)
					} else {
						ch[p] = float32(2 * rng.NormFloat64())
					}
				}
			}
		}
		v.Outputs = append(v.Outputs, t)
	}
	if len(m.Features) > 0 {
		v.Features = map[string]softtarget.Tensor{}
		for i, f := range m.Features {
			sh := []int{4 + i, inH / 8, inW / 8}
			d := make([]float32, sh[0]*sh[1]*sh[2])
			for j := range d {
				d[j] = float32(rng.NormFloat64())
			}
			v.Features[f] = softtarget.Tensor{Shape: sh, Data: d}
		}
	}
	return v
}

// write writes views to w and closes it.
func write(t testing.TB, w *softtarget.Writer, views []*softtarget.View) {
	t.Helper()
	for _, v := range views {
		if err := w.Write(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// WriteStream writes views as an in-memory soft-target stream and returns
// its bytes.
func WriteStream(t testing.TB, m softtarget.Meta, views []*softtarget.View, opts ...softtarget.Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := softtarget.NewStreamWriter(&buf, m, opts...)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, views)
	return buf.Bytes()
}

// WriteFile writes views as a soft-target file at path.
func WriteFile(t testing.TB, path string, m softtarget.Meta, views []*softtarget.View, opts ...softtarget.Option) {
	t.Helper()
	w, err := softtarget.CreateFile(path, m, opts...)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, views)
}

// ReadAll reads r's remaining views, each into a new View, to the verified
// end; any other error fails the test.
func ReadAll(t testing.TB, r *softtarget.Reader) []*softtarget.View {
	t.Helper()
	var out []*softtarget.View
	for {
		v := new(softtarget.View)
		err := r.Next(v)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
}

// RoundTrip writes views as a stream with metadata m and reads them back:
// what a student gets from a teacher-dump with m's encoding.
func RoundTrip(t testing.TB, m softtarget.Meta, views []*softtarget.View) []*softtarget.View {
	t.Helper()
	r, err := softtarget.NewReader(bytes.NewReader(WriteStream(t, m, views)), m.Encoding.String())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := ReadAll(t, r)
	if len(got) != len(views) {
		t.Fatalf("round trip: %d views read, %d written", len(got), len(views))
	}
	return got
}
