package distill

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randTensor(r *rand.Rand, amp float64, shape ...int) Tensor {
	t := Tensor{Shape: shape}
	t.Data = make([]float32, t.Size())
	for i := range t.Data {
		t.Data[i] = float32((r.Float64()*2 - 1) * amp)
	}
	return t
}

func randSide(r *rand.Rand, amp float64, shapes [][]int) []Tensor {
	var out []Tensor
	for _, sh := range shapes {
		out = append(out, randTensor(r, amp, sh...))
	}
	return out
}

type gradCase struct {
	name    string
	make    func() (Loss, error)
	student [][]int
	teacher [][]int
	amp     float64
	// kink reports whether student element (k, i) sits within h of a point
	// where the loss is not differentiable (skipped).
	kink func(s, t []Tensor, k, i int, h float64) bool
}

// headKink: the |w_s - w_t|, |h_s - h_t| terms of fine_grained for C classes.
func headKink(classes int) func(s, t []Tensor, k, i int, h float64) bool {
	return func(s, t []Tensor, k, i int, h float64) bool {
		hw := s[k].Shape[2] * s[k].Shape[3]
		ch := (i / hw) % s[k].Shape[1] % (5 + classes)
		return (ch == 2 || ch == 3) && math.Abs(float64(s[k].Data[i]-t[k].Data[i])) < 2*h
	}
}

func absKink(s, t []Tensor, k, i int, h float64) bool {
	return math.Abs(float64(s[k].Data[i]-t[k].Data[i])) < 2*h
}

// TestGradFiniteDifference compares every loss's analytic gradient with
// central differences of its float64 value, h = 1e-3 on every student
// element: |fd - g| <= 1e-4 * max(|g|, 1e-2*max|g|). Elements within 2h of
// a kink of |.| are skipped.
func TestGradFiniteDifference(t *testing.T) {
	const h, tol = 1e-3, 1e-4
	heads := [][]int{{2, 14, 3, 2}, {2, 14, 2, 2}} // A=2, C=2
	cases := []gradCase{
		{"l2", func() (Loss, error) { return New("l2", Options{}) }, heads, heads, 2, nil},
		{"fine_grained", func() (Loss, error) { return New("fine_grained", Options{NumClasses: 2}) }, heads, heads, 3, headKink(2)},
		{"fine_grained_c1", func() (Loss, error) { return New("fine_grained", Options{NumClasses: 1, Weight: 3}) },
			[][]int{{1, 18, 2, 3}}, [][]int{{1, 18, 2, 3}}, 3, headKink(1)},
		{"fsp", func() (Loss, error) { return New("fsp", Options{Weight: 10}) },
			[][]int{{2, 3, 3, 4}, {2, 2, 3, 4}}, [][]int{{2, 3, 2, 2}, {2, 2, 2, 2}}, 1.5, nil},
		{"soft_label", func() (Loss, error) {
			return New("soft_label", Options{StudentTemperature: 2, TeacherTemperature: 3})
		}, [][]int{{2, 3, 4}, {3, 5}}, [][]int{{2, 3, 4}, {3, 5}}, 3, nil},
		{"soft_label_axis1", func() (Loss, error) { return New("soft_label", Options{Axis: 1, Weight: 2}) },
			[][]int{{2, 4, 3, 2}}, [][]int{{2, 4, 3, 2}}, 3, nil},
		{"soft_label_axis-2", func() (Loss, error) { return New("soft_label", Options{Axis: -2}) },
			[][]int{{2, 4, 3}}, [][]int{{2, 4, 3}}, 3, nil},
		{"pair_l2", func() (Loss, error) { return NewPair("l2", Options{Weight: 2}) },
			[][]int{{2, 3, 2, 2}, {4}}, [][]int{{2, 3, 2, 2}, {4}}, 2, nil},
		{"pair_l1", func() (Loss, error) { return NewPair("l1", Options{}) },
			[][]int{{2, 3, 2, 2}}, [][]int{{2, 3, 2, 2}}, 2, absKink},
		{"pair_cosine", func() (Loss, error) { return NewPair("cosine", Options{Weight: 4}) },
			[][]int{{2, 5, 2, 3}, {3, 4}}, [][]int{{2, 5, 2, 3}, {3, 4}}, 2, nil},
		{"pair_kl", func() (Loss, error) { return NewPair("kl", Options{Temperature: 2}) },
			[][]int{{2, 5, 2, 3}, {3, 4}}, [][]int{{2, 5, 2, 3}, {3, 4}}, 3, nil},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, gc := range cases {
		t.Run(gc.name, func(t *testing.T) {
			l, err := gc.make()
			if err != nil {
				t.Fatal(err)
			}
			s := randSide(r, gc.amp, gc.student)
			tt := randSide(r, gc.amp, gc.teacher)
			grads := make([][]float32, len(s))
			for k := range s {
				grads[k] = make([]float32, len(s[k].Data))
			}
			if _, err := l.Forward(s, tt, grads); err != nil {
				t.Fatal(err)
			}
			checked, skipped := 0, 0
			for k := range s {
				var scale float64
				for _, g := range grads[k] {
					scale = math.Max(scale, math.Abs(float64(g)))
				}
				if scale == 0 {
					t.Fatalf("gradient %d is all zero", k)
				}
				for i := range s[k].Data {
					if gc.kink != nil && gc.kink(s, tt, k, i, h) {
						skipped++
						continue
					}
					x := s[k].Data[i]
					xp, xm := x+h, x-h
					s[k].Data[i] = xp
					lp, err1 := l.Forward(s, tt, nil)
					s[k].Data[i] = xm
					lm, err2 := l.Forward(s, tt, nil)
					s[k].Data[i] = x
					if err1 != nil || err2 != nil {
						t.Fatal(err1, err2)
					}
					fd := (lp - lm) / (float64(xp) - float64(xm))
					g := float64(grads[k][i])
					if math.Abs(fd-g) > tol*math.Max(math.Abs(g), 1e-2*scale) {
						t.Errorf("d/ds[%d][%d]: analytic %.8g, finite difference %.8g", k, i, g, fd)
					}
					checked++
				}
			}
			if checked == 0 || skipped > checked/10 {
				t.Fatalf("checked %d elements, skipped %d", checked, skipped)
			}
		})
	}
}
