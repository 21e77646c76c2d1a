package distill

import (
	"fmt"
	"math"
)

// chunkElems is the work unit handed to a worker, in elements.
const chunkElems = 1 << 14

// span is a chunk: tensor pair t, and a range [lo, hi) of flat indices
// (Elementwise) or of outer indices (axis losses).
type span struct{ t, lo, hi int }

// pairState is what every pair-wise loss keeps between calls.
type pairState struct {
	kind    string
	weight  float64
	r       runner
	student []Tensor
	teacher []Tensor
	grads   [][]float32
	spans   []span
	part    []float64
	fn      func(int) // the loss's chunk method, bound once
}

// sum reduces the chunk partial sums in chunk order.
func (p *pairState) sum() float64 {
	var s float64
	for _, v := range p.part[:len(p.spans)] {
		s += v
	}
	return s
}

func (p *pairState) grow() {
	if cap(p.part) < len(p.spans) {
		p.part = make([]float64, len(p.spans))
	}
	p.part = p.part[:len(p.spans)]
	clear(p.part)
}

func (p *pairState) release() { p.student, p.teacher, p.grads = nil, nil, nil }

// Close stops worker goroutines started by a parallel Forward (see Options.Workers).
func (p *pairState) Close() error { return p.r.Close() }

// Name returns the loss kind.
func (p *pairState) Name() string { return p.kind }

// Weight returns the weight the loss multiplies by.
func (p *pairState) Weight() float64 { return p.weight }

// Elementwise is the l2 or l1 loss over any number of tensor pairs of equal
// shapes (student[k] against teacher[k]):
//
//	l2: L = Weight * sum_k mean((s_k - t_k)^2)
//	l1: L = Weight * sum_k mean(|s_k - t_k|)
//
// the means being over every element of pair k (batch included). l2 over the
// three head outputs [N, A*(5+C), H, W] with weight 100 is PaddleDetection's
// l2_distill (slim/distillation/distill.py: fluid.layers.sum of PaddleSlim's
// l2_loss, paddleslim/dist/single_distiller.py, = reduce_mean of
// square_error_cost, times weight); with one pair it is PaddleSlim's l2_loss.
// l1's gradient at s == t is 0 (sign, as Paddle's abs grad and torch's).
type Elementwise struct {
	pairState
	l1 bool
}

// NewL2 returns the l2 loss with the given weight (Options.Workers semantics
// for workers).
func NewL2(weight float64, workers int) *Elementwise {
	e := &Elementwise{pairState: pairState{kind: "l2", weight: weight, r: runner{workers: workers}}}
	e.fn = e.chunk
	return e
}

// NewL1 returns the l1 loss with the given weight.
func NewL1(weight float64, workers int) *Elementwise {
	e := &Elementwise{pairState: pairState{kind: "l1", weight: weight, r: runner{workers: workers}}, l1: true}
	e.fn = e.chunk
	return e
}

// Forward implements Loss. student[k], teacher[k]: any equal shapes.
func (e *Elementwise) Forward(student, teacher []Tensor, grads [][]float32) (float64, error) {
	if err := checkPairs(e.kind, student, teacher, grads); err != nil {
		return 0, err
	}
	e.student, e.teacher, e.grads = student, teacher, grads
	defer e.release()
	e.spans = e.spans[:0]
	total := 0
	for k, s := range student {
		n := len(s.Data)
		total += n
		for lo := 0; lo < n; lo += chunkElems {
			e.spans = append(e.spans, span{k, lo, min(n, lo+chunkElems)})
		}
	}
	e.grow()
	e.r.run(len(e.spans), total, e.fn)
	return e.sum(), nil
}

func (e *Elementwise) chunk(c int) {
	sp := e.spans[c]
	s := e.student[sp.t].Data[sp.lo:sp.hi]
	t := e.teacher[sp.t].Data[sp.lo:sp.hi]
	scale := e.weight / float64(len(e.student[sp.t].Data))
	var g []float32
	if e.grads != nil {
		g = e.grads[sp.t][sp.lo:sp.hi]
	}
	var acc float64
	if e.l1 {
		for i, sv := range s {
			d := float64(sv) - float64(t[i])
			acc += math.Abs(d)
			if g != nil {
				switch {
				case d > 0:
					g[i] += float32(scale)
				case d < 0:
					g[i] -= float32(scale)
				}
			}
		}
	} else {
		for i, sv := range s {
			d := float64(sv) - float64(t[i])
			acc += d * d
			if g != nil {
				g[i] += float32(2 * scale * d)
			}
		}
	}
	e.part[c] = acc * scale
}

// axisView addresses a tensor as [outer, n, inner] around one axis.
type axisView struct{ outer, n, inner int }

func viewAt(shape []int, axis int) axisView {
	v := axisView{outer: 1, n: shape[axis], inner: 1}
	for _, d := range shape[:axis] {
		v.outer *= d
	}
	for _, d := range shape[axis+1:] {
		v.inner *= d
	}
	return v
}

// axisSpans fills p.spans with ranges of outer indices of about chunkElems
// elements, for every pair, the reduction axis of pair k being axes[k].
// runAxis runs the loss's chunk method over the spans of views for one
// Forward call and returns the summed loss.
func (p *pairState) runAxis(student, teacher []Tensor, grads [][]float32, views []axisView) float64 {
	p.student, p.teacher, p.grads = student, teacher, grads
	defer p.release()
	total := p.axisSpans(views)
	p.r.run(len(p.spans), total, p.fn)
	return p.sum()
}

// channelViews appends to dst the channel-axis (axis 1) view of every tensor.
func channelViews(dst []axisView, ts []Tensor) []axisView {
	for _, t := range ts {
		dst = append(dst, viewAt(t.Shape, 1))
	}
	return dst
}

func (p *pairState) axisSpans(views []axisView) int {
	p.spans = p.spans[:0]
	total := 0
	for k, v := range views {
		per := v.n * v.inner
		total += v.outer * per
		step := max(1, chunkElems/per)
		for lo := 0; lo < v.outer; lo += step {
			p.spans = append(p.spans, span{k, lo, min(v.outer, lo+step)})
		}
	}
	p.grow()
	return total
}

// Cosine is the cosine pair loss over tensors [N, C, ...] of equal shapes,
// channels on axis 1 (a [N, C] tensor has one position per row):
//
//	L = Weight * sum_k mean_p (1 - cos_p),
//	cos_p = <s_p, t_p> / (max(|s_p|, Eps) * max(|t_p|, Eps)),
//
// s_p, t_p the C-vectors of channels at position p = (n, spatial index), the
// mean over the N*H*W positions of pair k. Not in PaddleSlim (its loss(...)
// takes any user function); written for this project. Where |s_p| <= Eps the
// gradient through the norm is 0 (that of max).
type Cosine struct {
	pairState
	eps   float64
	views []axisView
}

// NewCosine returns the cosine loss; eps <= 0 selects 1e-8.
func NewCosine(eps, weight float64, workers int) (*Cosine, error) {
	if eps == 0 {
		eps = 1e-8
	}
	if !(eps > 0) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("distill: cosine: eps %v, must be positive", eps)
	}
	c := &Cosine{pairState: pairState{kind: "cosine", weight: weight, r: runner{workers: workers}}, eps: eps}
	c.fn = c.chunk
	return c, nil
}

// Forward implements Loss. student[k], teacher[k]: [N, C, ...], equal shapes.
func (c *Cosine) Forward(student, teacher []Tensor, grads [][]float32) (float64, error) {
	if err := checkChannelPairs(c.kind, student, teacher, grads); err != nil {
		return 0, err
	}
	c.views = channelViews(c.views[:0], student)
	return c.runAxis(student, teacher, grads, c.views), nil
}

func (c *Cosine) chunk(ci int) {
	sp := c.spans[ci]
	v := c.views[sp.t]
	s, t := c.student[sp.t].Data, c.teacher[sp.t].Data
	var g []float32
	if c.grads != nil {
		g = c.grads[sp.t]
	}
	scale := c.weight / float64(v.outer*v.inner)
	var acc float64
	for o := sp.lo; o < sp.hi; o++ {
		base := o * v.n * v.inner
		for i := 0; i < v.inner; i++ {
			var dot, ss, tt float64
			for j, at := 0, base+i; j < v.n; j, at = j+1, at+v.inner {
				sv, tv := float64(s[at]), float64(t[at])
				dot += sv * tv
				ss += sv * sv
				tt += tv * tv
			}
			ns, nt := math.Sqrt(ss), math.Sqrt(tt)
			a, b := max(ns, c.eps), max(nt, c.eps)
			cos := dot / (a * b)
			acc += 1 - cos
			if g == nil {
				continue
			}
			// d(1-cos)/ds_j = -(t_j/(a b) - cos s_j / |s|^2 [|s| > eps])
			ft := -scale / (a * b)
			fs := 0.0
			if ns > c.eps {
				fs = scale * cos / ss
			}
			for j, at := 0, base+i; j < v.n; j, at = j+1, at+v.inner {
				g[at] += float32(ft*float64(t[at]) + fs*float64(s[at]))
			}
		}
	}
	c.part[ci] = acc * scale
}

// KL is the Kullback-Leibler pair loss over tensors [N, C, ...] of equal
// shapes, channels on axis 1, with temperature T (Hinton's distillation):
//
//	L = Weight * T^2 * sum_k mean_p KL(softmax(t_p/T) || softmax(s_p/T))
//	  = Weight * T^2 * sum_k mean_p sum_c q_c (log q_c - log softmax(s_p/T)_c),  q = softmax(t_p/T),
//
// the mean over the N*H*W positions p of pair k (for [N, C] logits: the mean
// over the batch, torch's reduction="batchmean"). The T^2 keeps the gradient's
// magnitude independent of T: dL/ds = Weight*T*(softmax(s/T) - q)/P. Not in
// PaddleSlim (whose soft_label is a cross-entropy, see SoftLabel); written for
// this project. Computed with log-sum-exp in float64.
type KL struct {
	pairState
	temp  float64
	views []axisView
}

// NewKL returns the KL loss; temperature 0 selects 1.
func NewKL(temperature, weight float64, workers int) (*KL, error) {
	if temperature == 0 {
		temperature = 1
	}
	if !(temperature > 0) || math.IsInf(temperature, 0) {
		return nil, fmt.Errorf("distill: kl: temperature %v, must be positive", temperature)
	}
	k := &KL{pairState: pairState{kind: "kl", weight: weight, r: runner{workers: workers}}, temp: temperature}
	k.fn = k.chunk
	return k, nil
}

// Forward implements Loss. student[k], teacher[k]: [N, C, ...], equal shapes.
func (k *KL) Forward(student, teacher []Tensor, grads [][]float32) (float64, error) {
	if err := checkChannelPairs(k.kind, student, teacher, grads); err != nil {
		return 0, err
	}
	k.views = channelViews(k.views[:0], student)
	return k.runAxis(student, teacher, grads, k.views), nil
}

func (k *KL) chunk(ci int) {
	sp := k.spans[ci]
	v := k.views[sp.t]
	s, t := k.student[sp.t].Data, k.teacher[sp.t].Data
	var g []float32
	if k.grads != nil {
		g = k.grads[sp.t]
	}
	inv := 1 / k.temp
	scale := k.weight * k.temp * k.temp / float64(v.outer*v.inner)
	var acc float64
	for o := sp.lo; o < sp.hi; o++ {
		base := o * v.n * v.inner
		for i := 0; i < v.inner; i++ {
			lseS := logSumExp(s, base+i, v.n, v.inner, inv)
			lseT := logSumExp(t, base+i, v.n, v.inner, inv)
			var kl float64
			for j, at := 0, base+i; j < v.n; j, at = j+1, at+v.inner {
				lt := float64(t[at])*inv - lseT
				ls := float64(s[at])*inv - lseS
				q := math.Exp(lt)
				kl += q * (lt - ls)
				if g != nil {
					g[at] += float32(scale * inv * (math.Exp(ls) - q))
				}
			}
			acc += kl
		}
	}
	k.part[ci] = acc * scale
}

// logSumExp is log sum_j exp(x[at+j*stride]*inv) for j < n.
func logSumExp(x []float32, at, n, stride int, inv float64) float64 {
	m := math.Inf(-1)
	for j, p := 0, at; j < n; j, p = j+1, p+stride {
		m = max(m, float64(x[p])*inv)
	}
	var s float64
	for j, p := 0, at; j < n; j, p = j+1, p+stride {
		s += math.Exp(float64(x[p])*inv - m)
	}
	return m + math.Log(s)
}

// checkChannelPairs is checkPairs plus rank >= 2 (a channel axis 1).
func checkChannelPairs(kind string, student, teacher []Tensor, grads [][]float32) error {
	if err := checkPairs(kind, student, teacher, grads); err != nil {
		return err
	}
	for i, s := range student {
		if len(s.Shape) < 2 {
			return fmt.Errorf("distill: %s: %s has shape %v, need [N, C, ...] (channels on axis 1)", kind, s.label("student", i), s.Shape)
		}
	}
	return nil
}
