package distill

import (
	"fmt"
	"math"
)

// FineGrained is PaddleDetection's objectness-scaled YOLOv3 distillation,
// split_distill in slim/distillation/distill.py (release/0.3, selected by
// use_fine_grained_loss; weight 1000 in the COCO recipe).
//
// Inputs: student[k], teacher[k] are the head outputs of scale k,
// [N, A*(5+C), H, W] with PaddleDetection's channel layout: for anchor a the
// channels a*(5+C)+0..4 are the logits x, y, w, h, obj and a*(5+C)+5+c the
// class logits (yolo_loss.py _split_output). Any number of scales (distill.py
// has three); A = channels/(5+C) per scale.
//
// Per scale, with M = N*A*H*W, sums over n, a and cell, s = student, t = teacher,
// sig the sigmoid and BCE(z, p) = max(z,0) - z*p + log(1+exp(-|z|)) Paddle's
// sigmoid_cross_entropy_with_logits of logit z against probability p:
//
//	L_reg = 1/M sum (BCE(x_s, sig(x_t)) + BCE(y_s, sig(y_t)) + |w_s - w_t| + |h_s - h_t|) * sig(obj_t)
//	L_cls = 1/(M*C) sum_c BCE(cls_s,c, sig(cls_t,c)) * sig(obj_t)
//	L_obj = 1/M sum BCE(obj_s, 1[obj_t > 0])
//	L     = Weight * sum_k (L_reg + L_cls + L_obj)
//
// Reading of the reference: obj_weighted_reg is reduce_mean over the
// [N, A, H, W] strided slices; obj_weighted_cls multiplies the [N, A, H, W, C]
// class loss by sig(obj_t) with elementwise_mul(axis=0) (broadcast over C) and
// takes reduce_mean over all N*A*H*W*C elements; obj_loss compares the
// teacher's objectness logit with 0 (i.e. sig(obj_t) > 0.5; obj_t == 0 gives
// target 0) and is not objectness-weighted. The teacher is a constant
// (merge() sets stop_gradient on every teacher variable). Gradients:
// d BCE(z, p)/dz = sig(z) - p; d|w_s - w_t|/dw_s = sign(w_s - w_t), 0 at
// equality (Paddle's AbsGradFunctor, dout * x.sign()).
//
// Sparse teachers: SetMask restricts the regression and class terms to the
// cells where the teacher's box and class logits are known (sparse soft
// targets store them only where sig(obj_t) >= threshold). At a masked-out
// cell the x, y, w, h and class terms contribute 0 loss and 0 gradient; the
// objectness term is kept. The means keep the dense denominators M and M*C
// (not the count of stored cells), so a mask that keeps every cell gives the
// unmasked loss bit for bit and a dropped cell only removes its own terms.
type FineGrained struct {
	pairState
	classes int
	anchors []int        // per scale
	part3   [][3]float64 // per span: reg, cls, obj (weighted, scaled)
	wts     []float64    // per span: sig(obj_t) of its cells, at off[span]
	off     []int
	last    [3]float64
	mask    [][]bool // per scale, [N*A*H*W]; nil: every cell stored
}

// SetMask sets the per-scale masks of stored teacher cells used by the next
// Forward calls: masks[k] is [N*A*H*W] of scale k, index (n*A+a)*H*W + h*W + w
// (the cell order of the [N, A*(5+C), H, W] head output), false where the
// teacher's box and class logits are unknown (see FineGrained). nil (or
// SetMask(nil)) means every cell is stored. The slices are kept, not copied:
// the caller must not change them during a Forward. Forward returns an error
// when the masks do not match the tensors' scales or cell counts.
func (f *FineGrained) SetMask(masks [][]bool) { f.mask = masks }

// NewFineGrained returns the fine-grained loss for C = classes.
func NewFineGrained(classes int, weight float64, workers int) (*FineGrained, error) {
	if classes < 1 {
		return nil, fmt.Errorf("distill: fine_grained: %d classes, need at least 1 (Options.NumClasses)", classes)
	}
	f := &FineGrained{pairState: pairState{kind: "fine_grained", weight: weight, r: runner{workers: workers}}, classes: classes}
	f.fn = f.chunk
	return f, nil
}

// Parts returns the weighted regression, class and objectness terms of the
// last Forward (their sum is its loss): Weight * sum_k L_reg, L_cls, L_obj.
func (f *FineGrained) Parts() (reg, cls, obj float64) { return f.last[0], f.last[1], f.last[2] }

// Forward implements Loss. See FineGrained for the shapes.
func (f *FineGrained) Forward(student, teacher []Tensor, grads [][]float32) (float64, error) {
	if err := checkPairs(f.kind, student, teacher, grads); err != nil {
		return 0, err
	}
	per := 5 + f.classes
	f.anchors = f.anchors[:0]
	for i, s := range student {
		if len(s.Shape) != 4 || s.Shape[1]%per != 0 {
			return 0, fmt.Errorf("distill: fine_grained: %s has shape %v, need [N, A*(5+%d), H, W]", s.label("student", i), s.Shape, f.classes)
		}
		f.anchors = append(f.anchors, s.Shape[1]/per)
	}
	if f.mask != nil {
		if len(f.mask) != len(student) {
			return 0, fmt.Errorf("distill: fine_grained: %d masks for %d scales", len(f.mask), len(student))
		}
		for i, s := range student {
			if cells := s.Shape[0] * f.anchors[i] * s.Shape[2] * s.Shape[3]; len(f.mask[i]) != cells {
				return 0, fmt.Errorf("distill: fine_grained: mask of %s has %d cells, need N*A*H*W = %d", s.label("student", i), len(f.mask[i]), cells)
			}
		}
	}
	f.student, f.teacher, f.grads = student, teacher, grads
	defer f.release()
	f.spans = f.spans[:0]
	total := 0 // elements, to decide on parallelism
	for k, s := range student {
		total += len(s.Data)
		for n := 0; n < s.Shape[0]; n++ {
			f.spans = append(f.spans, span{k, n, n + 1})
		}
	}
	f.grow()
	if cap(f.part3) < len(f.spans) {
		f.part3 = make([][3]float64, len(f.spans))
	}
	f.part3 = f.part3[:len(f.spans)]
	f.off = f.off[:0]
	need := 0
	for _, sp := range f.spans {
		f.off = append(f.off, need)
		need += student[sp.t].Shape[2] * student[sp.t].Shape[3]
	}
	if cap(f.wts) < need {
		f.wts = make([]float64, need)
	}
	f.wts = f.wts[:need]
	f.r.run(len(f.spans), total, f.fn)
	f.last = [3]float64{}
	for _, p := range f.part3 {
		f.last[0] += p[0]
		f.last[1] += p[1]
		f.last[2] += p[2]
	}
	return f.last[0] + f.last[1] + f.last[2], nil
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// bce is sigmoid_cross_entropy_with_logits of logit z against probability p,
// max(z,0) - z*p + log(1+exp(-|z|)), with its derivative sig(z) - p; one exp
// and one log1p serve both (log1p(e) is Paddle's log(1+e), more accurate).
func bce(z, p float64) (loss, grad float64) {
	e := math.Exp(-math.Abs(z))
	inv := 1 / (1 + e)
	sig := inv
	if z < 0 {
		sig = e * inv
	}
	return max(z, 0) - z*p + math.Log1p(e), sig - p
}

func sign(d float64) float64 {
	switch {
	case d > 0:
		return 1
	case d < 0:
		return -1
	}
	return 0
}

func (f *FineGrained) chunk(ci int) {
	sp := f.spans[ci]
	sh := f.student[sp.t].Shape
	A, C, hw := f.anchors[sp.t], f.classes, sh[2]*sh[3]
	per := 5 + C
	M := float64(sh[0] * A * hw)
	sReg := f.weight / M
	sCls := f.weight / (M * float64(C))
	n := sp.lo
	S := f.student[sp.t].Data
	T := f.teacher[sp.t].Data
	var G []float32
	if f.grads != nil {
		G = f.grads[sp.t]
	}
	wts := f.wts[f.off[ci] : f.off[ci]+hw]
	var mask []bool
	if f.mask != nil {
		mask = f.mask[sp.t]
	}
	var reg, cls, obj float64
	for a := 0; a < A; a++ {
		base := (n*A + a) * per * hw
		var m []bool // this anchor's cells; nil: all stored
		if mask != nil {
			m = mask[(n*A+a)*hw : (n*A+a+1)*hw]
		}
		xo, yo, wo, ho, oo := base, base+hw, base+2*hw, base+3*hw, base+4*hw
		// box and objectness, cell by cell
		for p := 0; p < hw; p++ {
			to := float64(T[oo+p])
			ot := 0.0
			if to > 0 {
				ot = 1
			}
			lo, gobj := bce(float64(S[oo+p]), ot)
			obj += lo
			if G != nil {
				G[oo+p] += float32(sReg * gobj)
			}
			if m != nil && !m[p] {
				wts[p] = 0 // no box or class terms at this cell
				continue
			}
			wt := sigmoid(to)
			wts[p] = wt
			lx, gx := bce(float64(S[xo+p]), sigmoid(float64(T[xo+p])))
			ly, gy := bce(float64(S[yo+p]), sigmoid(float64(T[yo+p])))
			dw := float64(S[wo+p]) - float64(T[wo+p])
			dh := float64(S[ho+p]) - float64(T[ho+p])
			reg += (lx + ly + math.Abs(dw) + math.Abs(dh)) * wt
			if G != nil {
				g := sReg * wt
				G[xo+p] += float32(g * gx)
				G[yo+p] += float32(g * gy)
				G[wo+p] += float32(g * sign(dw))
				G[ho+p] += float32(g * sign(dh))
			}
		}
		// classes, channel by channel (contiguous)
		for c := 0; c < C; c++ {
			co := base + (5+c)*hw
			sc, tc := S[co:co+hw], T[co:co+hw]
			for p, wt := range wts {
				if m != nil && !m[p] {
					continue
				}
				lc, gc := bce(float64(sc[p]), sigmoid(float64(tc[p])))
				cls += lc * wt
				if G != nil {
					G[co+p] += float32(sCls * wt * gc)
				}
			}
		}
	}
	f.part3[ci] = [3]float64{reg * sReg, cls * sCls, obj * sReg}
	f.part[ci] = reg*sReg + cls*sCls + obj*sReg
}
