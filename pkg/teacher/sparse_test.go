package teacher

import (
	"math"
	"math/rand/v2"
	"testing"

	"yolodistill/pkg/config"
	"yolodistill/pkg/distill"
	"yolodistill/pkg/softtarget"
)

// TestPrepareMasks: the batch's stored-cell masks reach the fine-grained
// loss laid out like the batched head outputs: the batch loss is the mean of
// the per-view losses, each computed with that view's own Stored masks, and
// differs from the loss without masks. A view without masks counts as
// stored everywhere.
func TestPrepareMasks(t *testing.T) {
	const C, A = 1, 2
	shapes := [][]int{{A * (5 + C), 2, 3}, {A * (5 + C), 1, 2}}
	r := rand.New(rand.NewPCG(5, 6))
	rec, err := distill.NewRecipe(config.DistillConfig{Loss: "fine_grained", Weight: 7}, len(shapes), C, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	fg := rec.Terms[0].Loss.(*distill.FineGrained)
	off := NewOffline(rec, nil)
	st := distill.NewStudent(rec, off, [][]int{{0, 1}, {2, 3}})
	tests := []struct {
		name  string
		dense []bool // per view: no Stored masks
	}{
		{"sparse", []bool{false, false, false}},
		{"mixed", []bool{false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var views []*softtarget.View
			for _, dense := range tt.dense {
				v := &softtarget.View{}
				for _, sh := range shapes {
					x := softtarget.Tensor{Shape: sh, Data: make([]float32, sh[0]*sh[1]*sh[2])}
					for i := range x.Data {
						x.Data[i] = float32(r.NormFloat64() * 2)
					}
					v.Outputs = append(v.Outputs, x)
					if !dense {
						m := make([]bool, A*sh[1]*sh[2])
						for i := range m {
							m[i] = r.IntN(2) == 0
						}
						v.Stored = append(v.Stored, m)
					}
				}
				views = append(views, v)
			}
			off.setViews(views)
			if err := off.Prepare(); err != nil {
				t.Fatal(err)
			}
			if err := st.Prepare(); err != nil {
				t.Fatal(err)
			}
			var teacher []distill.Tensor
			for _, r := range rec.Terms[0].Teacher {
				x, err := off.Tensor(r)
				if err != nil {
					t.Fatal(err)
				}
				teacher = append(teacher, *x)
			}
			student := make([]distill.Tensor, len(teacher))
			for k, x := range teacher {
				student[k] = distill.Tensor{Shape: x.Shape, Data: make([]float32, len(x.Data))}
				for i := range student[k].Data {
					student[k].Data[i] = float32(r.NormFloat64() * 2)
				}
			}
			got, err := fg.Forward(student, teacher, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Per view, with its own masks.
			one, _ := distill.NewFineGrained(C, 7, 1)
			var want float64
			for n, v := range views {
				var s1, t1 []distill.Tensor
				for k, x := range teacher {
					per := len(x.Data) / len(views)
					sh := []int{1, x.Shape[1], x.Shape[2], x.Shape[3]}
					s1 = append(s1, distill.Tensor{Shape: sh, Data: student[k].Data[n*per : (n+1)*per]})
					t1 = append(t1, distill.Tensor{Shape: sh, Data: x.Data[n*per : (n+1)*per]})
				}
				one.SetMask(v.Stored)
				l, err := one.Forward(s1, t1, nil)
				if err != nil {
					t.Fatal(err)
				}
				want += l / float64(len(views))
			}
			if math.Abs(got-want) > 1e-12*math.Abs(want) {
				t.Errorf("batch loss %.17g, mean of per-view losses %.17g", got, want)
			}
			one.SetMask(nil)
			if all, _ := one.Forward(student, teacher, nil); !(math.Abs(all-got) > 1e-6*all) {
				t.Errorf("masked loss %v equals the unmasked %v", got, all)
			}
		})
	}
}
