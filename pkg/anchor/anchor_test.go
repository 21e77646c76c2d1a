package anchor

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestDefaults(t *testing.T) {
	a, m, s := Defaults(), DefaultMasks(), DefaultStrides()
	if err := Check(a, m, s); err != nil {
		t.Fatal(err)
	}
	if len(a) != 9 || a[0] != (Anchor{10, 13}) || a[8] != (Anchor{373, 326}) || a[0].W() != 10 || a[0].H() != 13 {
		t.Errorf("anchors %v", a)
	}
	if !reflect.DeepEqual(m, [][]int{{6, 7, 8}, {3, 4, 5}, {0, 1, 2}}) || !reflect.DeepEqual(s, []int{32, 16, 8}) {
		t.Errorf("masks %v strides %v", m, s)
	}
	for i := 1; i < len(a); i++ {
		if a[i].Area() < a[i-1].Area() {
			t.Errorf("anchors not sorted by area: %v", a)
		}
	}
	a[0][0], m[0][0], s[0] = 99, 99, 99
	if Defaults()[0][0] != 10 || DefaultMasks()[0][0] != 6 || DefaultStrides()[0] != 32 {
		t.Error("the defaults share storage")
	}
}

func TestPerScale(t *testing.T) {
	if n := PerScale([][]int{{1, 2}, {3}, {4, 5, 6}}); !reflect.DeepEqual(n, []int{2, 1, 3}) {
		t.Errorf("PerScale %v", n)
	}
}

func TestShapeIoU(t *testing.T) {
	cases := []struct {
		name string
		a, b Anchor
		want float64
	}{
		{"same", Anchor{3, 4}, Anchor{3, 4}, 1},
		{"nested", Anchor{2, 2}, Anchor{1, 1}, 0.25},
		{"crossed", Anchor{2, 1}, Anchor{1, 2}, 1.0 / 3},
		{"symmetric", Anchor{1, 2}, Anchor{2, 1}, 1.0 / 3},
		{"wide vs tall", Anchor{10, 1}, Anchor{1, 10}, 1.0 / 19},
		{"both empty", Anchor{0, 0}, Anchor{0, 0}, 0},
		{"one empty", Anchor{0, 0}, Anchor{2, 3}, 0},
	}
	for _, c := range cases {
		if got := ShapeIoU(c.a, c.b); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: ShapeIoU(%v, %v) = %v, want %v", c.name, c.a, c.b, got, c.want)
		}
	}
}

// TestOverlapOrder: Overlap computes exactly what the loss's best-anchor
// choice always computed inline (same operations, same order, so the same
// bits), for any input, negative and non-finite sizes included.
func TestOverlapOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []float64{0, -0.0, 1e-300, -1, math.Inf(1), math.Inf(-1), math.NaN(), 1e300}
	pick := func() float64 {
		if rng.IntN(8) == 0 {
			return special[rng.IntN(len(special))]
		}
		return (rng.Float64()*2 - 0.5) * math.Pow(10, float64(rng.IntN(7)-4))
	}
	same := func(x, y float64) bool {
		return math.Float64bits(x) == math.Float64bits(y) || (math.IsNaN(x) && math.IsNaN(y))
	}
	for n := 0; n < 100000; n++ {
		gw, gh, aw, ah := pick(), pick(), pick(), pick()
		wantInter := math.Min(gw, aw) * math.Min(gh, ah)
		wantUnion := gw*gh + aw*ah - wantInter
		inter, union := Overlap(Anchor{gw, gh}, Anchor{aw, ah})
		if !same(inter, wantInter) || !same(union, wantUnion) {
			t.Fatalf("Overlap(%v, %v) = %v, %v; inline %v, %v", Anchor{gw, gh}, Anchor{aw, ah}, inter, union, wantInter, wantUnion)
		}
	}
}

func TestScale(t *testing.T) {
	in := []Anchor{{10, 13}, {373, 326}}
	got := Scale(in, 0.5)
	if !reflect.DeepEqual(got, []Anchor{{5, 6.5}, {186.5, 163}}) || in[0] != (Anchor{10, 13}) {
		t.Errorf("Scale: %v (input %v)", got, in)
	}
}
