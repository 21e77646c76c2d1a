package distill

import (
	"fmt"
	"math"
)

// SoftLabel is PaddleSlim's soft_label_loss (paddleslim/dist/single_distiller.py):
//
//	p = softmax(s / Ts), q = softmax(t / Tt)   along Axis
//	L = Weight * sum_k mean_r ( -sum_j q_j log p_j )
//
// i.e. fluid.layers.cross_entropy(p, q, soft_label=True), one value per row r
// (every index of the other axes), then paddle.mean over the rows. PaddleSlim
// takes the softmax over the last axis (softmax's default axis=-1), whatever
// the tensor's layout: for [N, C] logits that is the class axis; for an NCHW
// feature map it is W. Options.Axis selects another axis (1: channels). There
// is no T^2 factor (unlike KL). The gradient is
// dL/ds_j = Weight/(R*Ts) * (p_j*sum_i q_i - q_j), R the rows of pair k.
//
// Deviation: Paddle computes log(softmax(...)) (clipped where it is -inf);
// this computes log-softmax by log-sum-exp in float64, which is equal where
// the probabilities do not underflow and finite where they do.
type SoftLabel struct {
	pairState
	ts, tt float64
	axis   int
	views  []axisView
}

// NewSoftLabel returns the soft-label loss. Temperatures 0 select 1; axis
// follows Options.Axis (0: the last axis).
func NewSoftLabel(studentT, teacherT float64, axis int, weight float64, workers int) (*SoftLabel, error) {
	if studentT == 0 {
		studentT = 1
	}
	if teacherT == 0 {
		teacherT = 1
	}
	for _, v := range []float64{studentT, teacherT} {
		if !(v > 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("distill: soft_label: temperature %v, must be positive", v)
		}
	}
	l := &SoftLabel{pairState: pairState{kind: "soft_label", weight: weight, r: runner{workers: workers}},
		ts: studentT, tt: teacherT, axis: axis}
	l.fn = l.chunk
	return l, nil
}

// Forward implements Loss. student[k], teacher[k]: equal shapes of rank >= 1.
func (l *SoftLabel) Forward(student, teacher []Tensor, grads [][]float32) (float64, error) {
	if err := checkPairs(l.kind, student, teacher, grads); err != nil {
		return 0, err
	}
	l.views = l.views[:0]
	for i, s := range student {
		r := len(s.Shape)
		a := l.axis
		switch {
		case a == 0:
			a = r - 1
		case a < 0:
			a += r
		}
		if r == 0 || a < 0 || a >= r {
			return 0, fmt.Errorf("distill: soft_label: axis %d does not exist in %s of shape %v", l.axis, s.label("student", i), s.Shape)
		}
		l.views = append(l.views, viewAt(s.Shape, a))
	}
	return l.runAxis(student, teacher, grads, l.views), nil
}

func (l *SoftLabel) chunk(ci int) {
	sp := l.spans[ci]
	v := l.views[sp.t]
	s, t := l.student[sp.t].Data, l.teacher[sp.t].Data
	var g []float32
	if l.grads != nil {
		g = l.grads[sp.t]
	}
	invS, invT := 1/l.ts, 1/l.tt
	scale := l.weight / float64(v.outer*v.inner)
	var acc float64
	for o := sp.lo; o < sp.hi; o++ {
		base := o * v.n * v.inner
		for i := 0; i < v.inner; i++ {
			lseS := logSumExp(s, base+i, v.n, v.inner, invS)
			lseT := logSumExp(t, base+i, v.n, v.inner, invT)
			var ce, qsum float64
			for j, at := 0, base+i; j < v.n; j, at = j+1, at+v.inner {
				q := math.Exp(float64(t[at])*invT - lseT)
				ce -= q * (float64(s[at])*invS - lseS)
				qsum += q
			}
			acc += ce
			if g == nil {
				continue
			}
			f := scale * invS
			for j, at := 0, base+i; j < v.n; j, at = j+1, at+v.inner {
				q := math.Exp(float64(t[at])*invT - lseT)
				p := math.Exp(float64(s[at])*invS - lseS)
				g[at] += float32(f * (p*qsum - q))
			}
		}
	}
	l.part[ci] = acc * scale
}
