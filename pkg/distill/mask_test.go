package distill

import (
	"math"
	"math/rand/v2"
	"testing"
)

// maskCells returns per-scale masks [N*A*H*W] for head shapes [N, A*(5+C), H, W].
func maskCells(heads [][]int, classes int, fill func() bool) [][]bool {
	out := make([][]bool, len(heads))
	for k, sh := range heads {
		m := make([]bool, sh[0]*sh[1]/(5+classes)*sh[2]*sh[3])
		for i := range m {
			m[i] = fill()
		}
		out[k] = m
	}
	return out
}

func newGrads(s []Tensor) [][]float32 {
	g := make([][]float32, len(s))
	for k := range s {
		g[k] = make([]float32, len(s[k].Data))
	}
	return g
}

// cellOf returns the mask index and the channel within the anchor (0..4+C)
// of element i of a [N, A*(5+C), H, W] tensor.
func cellOf(sh []int, classes, i int) (cell, ch int) {
	hw := sh[2] * sh[3]
	per := 5 + classes
	A := sh[1] / per
	n, c, p := i/(sh[1]*hw), (i/hw)%sh[1], i%hw
	return (n*A+c/per)*hw + p, c % per
}

func TestFineGrainedMask(t *testing.T) {
	const C = 2
	heads := [][]int{{2, 14, 3, 2}, {2, 14, 2, 2}} // A=2
	r := rand.New(rand.NewPCG(7, 8))
	s := randSide(r, 3, heads)
	tt := randSide(r, 3, heads)
	f, err := NewFineGrained(C, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	g0 := newGrads(s)
	l0, err := f.Forward(s, tt, g0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, obj0 := f.Parts()

	t.Run("all_true_bit_for_bit", func(t *testing.T) {
		f.SetMask(maskCells(heads, C, func() bool { return true }))
		defer f.SetMask(nil)
		g := newGrads(s)
		l, err := f.Forward(s, tt, g)
		if err != nil {
			t.Fatal(err)
		}
		if l != l0 {
			t.Errorf("loss %v, unmasked %v", l, l0)
		}
		for k := range g {
			for i := range g[k] {
				if g[k][i] != g0[k][i] {
					t.Fatalf("grad[%d][%d] %v, unmasked %v", k, i, g[k][i], g0[k][i])
				}
			}
		}
	})

	t.Run("all_false_only_obj", func(t *testing.T) {
		f.SetMask(maskCells(heads, C, func() bool { return false }))
		defer f.SetMask(nil)
		g := newGrads(s)
		l, err := f.Forward(s, tt, g)
		if err != nil {
			t.Fatal(err)
		}
		reg, cls, obj := f.Parts()
		if reg != 0 || cls != 0 || obj != obj0 || l != obj0 || obj0 <= 0 {
			t.Errorf("loss %v parts %v %v %v, want only L_obj %v", l, reg, cls, obj, obj0)
		}
		for k := range g {
			for i := range g[k] {
				_, ch := cellOf(heads[k], C, i)
				want := float32(0)
				if ch == 4 {
					want = g0[k][i]
				}
				if g[k][i] != want {
					t.Fatalf("grad[%d][%d] (channel %d) %v, want %v", k, i, ch, g[k][i], want)
				}
			}
		}
	})

	t.Run("random_mask", func(t *testing.T) {
		masks := maskCells(heads, C, func() bool { return r.IntN(2) == 0 })
		f.SetMask(masks)
		defer f.SetMask(nil)
		g := newGrads(s)
		l, err := f.Forward(s, tt, g)
		if err != nil {
			t.Fatal(err)
		}
		if !(l < l0) {
			t.Errorf("masked loss %v not below unmasked %v", l, l0)
		}
		// Teacher box/class logits at unstored cells are not read.
		t2 := make([]Tensor, len(tt))
		for k := range tt {
			t2[k] = Tensor{Shape: tt[k].Shape, Data: append([]float32(nil), tt[k].Data...)}
			for i := range t2[k].Data {
				if cell, ch := cellOf(heads[k], C, i); ch != 4 && !masks[k][cell] {
					t2[k].Data[i] = 0
				}
			}
		}
		if l2, err := f.Forward(s, t2, nil); err != nil || l2 != l {
			t.Errorf("with unstored teacher entries zeroed: %v (%v), want %v", l2, err, l)
		}
		// Finite differences, as TestGradFiniteDifference.
		const h, tol = 1e-3, 1e-4
		kink := headKink(C)
		checked := 0
		for k := range s {
			var scale float64
			for _, v := range g[k] {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
			for i := range s[k].Data {
				cell, ch := cellOf(heads[k], C, i)
				if ch != 4 && !masks[k][cell] && g[k][i] != 0 {
					t.Fatalf("grad[%d][%d] at an unstored cell's channel %d: %v", k, i, ch, g[k][i])
				}
				if kink(s, tt, k, i, h) {
					continue
				}
				x := s[k].Data[i]
				s[k].Data[i] = x + h
				lp, err1 := f.Forward(s, tt, nil)
				s[k].Data[i] = x - h
				lm, err2 := f.Forward(s, tt, nil)
				s[k].Data[i] = x
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				fd := (lp - lm) / (float64(x+h) - float64(x-h))
				gi := float64(g[k][i])
				if math.Abs(fd-gi) > tol*math.Max(math.Abs(gi), 1e-2*scale) {
					t.Errorf("d/ds[%d][%d]: analytic %.8g, finite difference %.8g", k, i, gi, fd)
				}
				checked++
			}
		}
		if checked < 100 {
			t.Fatalf("checked only %d elements", checked)
		}
	})

	t.Run("bad_mask", func(t *testing.T) {
		for name, m := range map[string][][]bool{
			"scales": maskCells(heads[:1], C, func() bool { return true }),
			"cells":  {make([]bool, 3), make([]bool, 16)},
		} {
			f.SetMask(m)
			if _, err := f.Forward(s, tt, nil); err == nil {
				t.Errorf("%s: no error", name)
			}
		}
		f.SetMask(nil)
	})
}

func TestFineGrainedMaskAllocs(t *testing.T) {
	heads := [][]int{{2, 14, 3, 2}}
	r := rand.New(rand.NewPCG(3, 4))
	s, tt := randSide(r, 3, heads), randSide(r, 3, heads)
	f, _ := NewFineGrained(2, 1, 1)
	f.SetMask(maskCells(heads, 2, func() bool { return r.IntN(2) == 0 }))
	g := newGrads(s)
	f.Forward(s, tt, g)
	if n := testing.AllocsPerRun(10, func() { f.Forward(s, tt, g) }); n != 0 {
		t.Errorf("%v allocations per Forward", n)
	}
}
