package distill

import (
	"bytes"
	"reflect"
	"testing"

	"yolodistill/pkg/yolo"
)

// pairSpec is a small network of 1x1 convolutions (the first with stride 2)
// with the given output channels, in order, after the layer names.
func pairSpec(t *testing.T, names []string, out []int, c3 string) (*yolo.Spec, *yolo.Inference) {
	t.Helper()
	s := &yolo.Spec{Name: "s", InChannels: 3, NumClasses: 1, AnchorsPerScale: []int{1}, Strides: []int{2},
		Aliases: []yolo.Alias{{Name: "backbone.c3", Layer: c3}}, Outputs: []string{"head.0.out"}}
	in := yolo.InputName
	for i, n := range names {
		stride := 1
		if i == 0 {
			stride = 2
		}
		s.Layers = append(s.Layers, yolo.Layer{Name: n, Kind: yolo.Conv, Inputs: []string{in},
			Conv: yolo.ConvParams{Out: out[i], K: 1, Stride: stride, Groups: 1}})
		in = n
	}
	inf, err := s.Infer(8, 8)
	if err != nil {
		t.Fatal(err)
	}
	return s, inf
}

func TestMatchShapes(t *testing.T) {
	s, si := pairSpec(t, []string{"backbone.a", "head.0.route", "head.0.tip", "head.0.out"}, []int{4, 8, 8, 6}, "backbone.a")
	tc, ti := pairSpec(t, []string{"backbone.b", "backbone.x", "head.0.route", "head.0.tip", "head.0.out"}, []int{4, 8, 8, 16, 6}, "backbone.b")
	p := func(s, t string, c int) ShapePair { return ShapePair{s, t, []int{c, 4, 4}, s == t} }
	tests := []struct {
		name string
		all  bool
		want []ShapePair
	}{
		{"feature points", false, []ShapePair{
			p("backbone.c3", "backbone.c3", 4), p("head.0.route", "head.0.route", 8),
			p("head.0.tip", "head.0.route", 8), p("head.0.out", "head.0.out", 6)}},
		// The same-named teacher layer comes first, the others in teacher order.
		{"all layers", true, []ShapePair{
			p("backbone.a", "backbone.b", 4), p("head.0.route", "head.0.route", 8), p("head.0.route", "backbone.x", 8),
			p("head.0.tip", "backbone.x", 8), p("head.0.tip", "head.0.route", 8), p("head.0.out", "head.0.out", 6)}},
	}
	for _, tt := range tests {
		if got := MatchShapes(s, si, tc, ti, tt.all); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n%+v\nwant\n%+v", tt.name, got, tt.want)
		}
	}
	if got := PairPoints(tc, true); !reflect.DeepEqual(got, []string{"backbone.b", "backbone.x", "head.0.route", "head.0.tip", "head.0.out"}) {
		t.Errorf("PairPoints all: %v", got)
	}
}

func TestWriteShapePairs(t *testing.T) {
	var b bytes.Buffer
	pairs := []ShapePair{{"backbone.c3", "backbone.c3", []int{64, 40, 40}, true}, {"head.0.tip", "head.0.route", []int{8, 4, 4}, false}}
	if err := WriteShapePairs(&b, pairs); err != nil {
		t.Fatal(err)
	}
	want := `# pairs with equal shapes: 2
STUDENT      TEACHER       SHAPE
backbone.c3  backbone.c3   64x40x40
head.0.tip   head.0.route  8x4x4
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteShapePairs(&b, nil); err != nil || b.String() != "# pairs with equal shapes: 0\nSTUDENT  TEACHER  SHAPE\n" {
		t.Errorf("no pairs: %q %v", b.String(), err)
	}
}
