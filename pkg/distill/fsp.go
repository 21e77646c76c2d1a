package distill

import (
	"fmt"
	"slices"
)

// FSP is PaddleSlim's fsp_loss (paddleslim/dist/single_distiller.py) over one
// or more pairs of feature maps: student = [a_0, b_0, a_1, b_1, ...] and
// teacher likewise, a_k: [N, C1, H, W], b_k: [N, C2, H, W] (the same N, H, W
// within a side; the student's H, W may differ from the teacher's).
//
// fluid.layers.fsp_matrix (Paddle's fsp_op.h) of a, b is, per image n,
//
//	G[n] = A_n B_n^T / (H*W),   A_n: [C1, H*W], B_n: [C2, H*W],  G: [N, C1, C2]
//
// and the loss is paddle.mean(square_error_cost(G_s, G_t)) per pair, summed
// over pairs and weighted:
//
//	L = Weight * sum_k mean((G_s,k - G_t,k)^2)   (mean over N*C1*C2)
//
// so G_s and G_t must have the same shape (equal N, C1, C2). Gradient, with
// E = 2*Weight*(G_s - G_t)/(N*C1*C2): dA_n = E_n B_n / (H*W),
// dB_n = E_n^T A_n / (H*W). Plain Go loops, float64 accumulation.
type FSP struct {
	pairState
	off  []int // per span: offset of its scratch in buf
	buf  []float64
	dims [][5]int // per pair: N, C1, C2, HWs, HWt
}

// NewFSP returns the FSP loss.
func NewFSP(weight float64, workers int) *FSP {
	f := &FSP{pairState: pairState{kind: "fsp", weight: weight, r: runner{workers: workers}}}
	f.fn = f.chunk
	return f
}

// Forward implements Loss. See FSP for the shapes.
func (f *FSP) Forward(student, teacher []Tensor, grads [][]float32) (float64, error) {
	if len(student) == 0 || len(student)%2 != 0 || len(student) != len(teacher) {
		return 0, fmt.Errorf("distill: fsp: %d student and %d teacher tensors, need the same even number (pairs of feature maps)", len(student), len(teacher))
	}
	if err := checkTensors(f.kind, student, teacher, grads); err != nil {
		return 0, err
	}
	f.dims = f.dims[:0]
	for k := 0; k < len(student); k += 2 {
		if err := fspPair(student, "student", k); err != nil {
			return 0, err
		}
		if err := fspPair(teacher, "teacher", k); err != nil {
			return 0, err
		}
		sa, sb, ta, tb := student[k].Shape, student[k+1].Shape, teacher[k].Shape, teacher[k+1].Shape
		if sa[0] != ta[0] || sa[1] != ta[1] || sb[1] != tb[1] {
			return 0, fmt.Errorf("distill: fsp: %s %v and %s %v give a %dx%dx%d FSP matrix, %s %v and %s %v a %dx%dx%d one; they must be equal",
				student[k].label("student", k), sa, student[k+1].label("student", k+1), sb, sa[0], sa[1], sb[1],
				teacher[k].label("teacher", k), ta, teacher[k+1].label("teacher", k+1), tb, ta[0], ta[1], tb[1])
		}
		f.dims = append(f.dims, [5]int{sa[0], sa[1], sb[1], sa[2] * sa[3], ta[2] * ta[3]})
	}
	f.student, f.teacher, f.grads = student, teacher, grads
	defer f.release()
	f.spans = f.spans[:0]
	f.off = f.off[:0]
	need, total := 0, 0
	for k, d := range f.dims {
		for n := 0; n < d[0]; n++ {
			f.spans = append(f.spans, span{k, n, n + 1})
			f.off = append(f.off, need)
			need += 2*d[1]*d[2] + d[3]
		}
		total += d[0] * d[1] * d[2] * (d[3] + d[4])
	}
	if cap(f.buf) < need {
		f.buf = make([]float64, need)
	}
	f.buf = f.buf[:need]
	f.grow()
	f.r.run(len(f.spans), total, f.fn)
	return f.sum(), nil
}

// fspPair checks that side[k], side[k+1] are [N, C1, H, W] and [N, C2, H, W].
func fspPair(side []Tensor, role string, k int) error {
	a, b := side[k], side[k+1]
	if len(a.Shape) != 4 || len(b.Shape) != 4 {
		return fmt.Errorf("distill: fsp: %s %v and %s %v must both be [N, C, H, W]", a.label(role, k), a.Shape, b.label(role, k+1), b.Shape)
	}
	if a.Shape[0] != b.Shape[0] || !slices.Equal(a.Shape[2:], b.Shape[2:]) {
		return fmt.Errorf("distill: fsp: %s %v and %s %v differ in batch or spatial size", a.label(role, k), a.Shape, b.label(role, k+1), b.Shape)
	}
	return nil
}

// gram writes G = A B^T / hw for image n: a [c1, hw], b [c2, hw].
func gram(dst []float64, a, b []float32, c1, c2, hw int) {
	inv := 1 / float64(hw)
	for i := 0; i < c1; i++ {
		ai := a[i*hw : (i+1)*hw]
		for j := 0; j < c2; j++ {
			bj := b[j*hw : (j+1)*hw]
			var s float64
			for x, av := range ai {
				s += float64(av) * float64(bj[x])
			}
			dst[i*c2+j] = s * inv
		}
	}
}

func (f *FSP) chunk(ci int) {
	sp := f.spans[ci]
	d := f.dims[sp.t]
	n, c1, c2, hws, hwt := sp.lo, d[1], d[2], d[3], d[4]
	gs := f.buf[f.off[ci] : f.off[ci]+c1*c2]
	gt := f.buf[f.off[ci]+c1*c2 : f.off[ci]+2*c1*c2]
	k := 2 * sp.t
	sa := f.student[k].Data[n*c1*hws : (n+1)*c1*hws]
	sb := f.student[k+1].Data[n*c2*hws : (n+1)*c2*hws]
	gram(gs, sa, sb, c1, c2, hws)
	gram(gt, f.teacher[k].Data[n*c1*hwt:(n+1)*c1*hwt], f.teacher[k+1].Data[n*c2*hwt:(n+1)*c2*hwt], c1, c2, hwt)
	scale := f.weight / float64(d[0]*c1*c2)
	var acc float64
	for i := range gs {
		e := gs[i] - gt[i]
		acc += e * e
		gs[i] = 2 * scale * e / float64(hws) // dL/dG / (H*W), reused below
	}
	f.part[ci] = acc * scale
	if f.grads == nil {
		return
	}
	ga := f.grads[k][n*c1*hws : (n+1)*c1*hws]
	gb := f.grads[k+1][n*c2*hws : (n+1)*c2*hws]
	row := f.buf[f.off[ci]+2*c1*c2 : f.off[ci]+2*c1*c2+hws]
	// dA[i] = sum_j E[i,j] B[j], dB[j] = sum_i E[i,j] A[i], each row summed in float64.
	for i := 0; i < c1; i++ {
		clear(row)
		for j := 0; j < c2; j++ {
			if e := gs[i*c2+j]; e != 0 {
				for x, bv := range sb[j*hws : (j+1)*hws] {
					row[x] += e * float64(bv)
				}
			}
		}
		for x, v := range row {
			ga[i*hws+x] += float32(v)
		}
	}
	for j := 0; j < c2; j++ {
		clear(row)
		for i := 0; i < c1; i++ {
			if e := gs[i*c2+j]; e != 0 {
				for x, av := range sa[i*hws : (i+1)*hws] {
					row[x] += e * float64(av)
				}
			}
		}
		for x, v := range row {
			gb[j*hws+x] += float32(v)
		}
	}
}
