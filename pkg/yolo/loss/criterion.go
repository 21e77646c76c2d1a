package loss

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"yolodistill/pkg/anchor"
)

// Config selects and parameterises the YOLOv3 loss (see the package doc).
type Config struct {
	Path       Path
	Anchors    []anchor.Anchor // all anchors, input pixels (w, h)
	Masks      [][]int         // Masks[s]: indices into Anchors of output s's anchors, in channel order
	Strides    []int           // Strides[s]: downsample ratio of output s
	NumClasses int

	// IgnoreThresh: a non-positive prediction whose best IoU with a GT
	// exceeds it gets no objectness loss. PaddleDetection: 0.7.
	IgnoreThresh float32
	// LabelSmooth (OperatorPath only): class targets 1-delta / delta with
	// delta = 1/C, capped at SmoothCap when SmoothCap > 0. The operator as
	// written in 2019 (yolov3_loss_op.h, Paddle PR 16073/17138) uses 1/C
	// (SmoothCap 0); later Paddle (the 2.x phi yolo_loss kernel) uses
	// min(1/C, 1/40) (SmoothCap 1.0/40). Which one PaddleDetection
	// release/0.3's runs used depends on the Paddle release installed.
	LabelSmooth bool
	SmoothCap   float32
	// ScaleXY (OperatorPath only) is scale_x_y of the decoded box used by
	// the ignore test (1: plain YOLOv3). FineGrainedPath ignores it, as
	// PaddleDetection release/0.3's _get_fine_grained_loss does.
	ScaleXY float32
	// PaddleGrad (OperatorPath only) reproduces Paddle's grad kernel, which
	// overwrites instead of accumulating the location and class gradients of
	// GTs sharing an anchor and cell. Off: the exact gradient of the forward.
	PaddleGrad bool
	// Workers bounds the goroutines used over batch items (<= 0: GOMAXPROCS).
	Workers int
}

// DefaultConfig is YOLOv3Loss's defaults in PaddleDetection release/0.3 on
// the Paddle it requires (Fluid >= 1.6): operator path, ignore_thresh 0.7,
// label_smooth true with delta min(1/C, 1/40) (SmoothCap, Fluid >= 1.5's
// yolov3_loss), scale_x_y 1, default anchors, masks and strides.
func DefaultConfig(numClasses int) Config {
	return Config{
		Path:         OperatorPath,
		Anchors:      anchor.Defaults(),
		Masks:        anchor.DefaultMasks(),
		Strides:      anchor.DefaultStrides(),
		NumClasses:   numClasses,
		IgnoreThresh: 0.7,
		LabelSmooth:  true,
		SmoothCap:    PaddleSmoothCap,
		ScaleXY:      1,
	}
}

// PaddleSmoothCap is the largest label-smoothing delta of Paddle's
// yolov3_loss since Fluid 1.5 (delta = min(1/C, 1/40)); PaddleDetection
// release/0.3 requires Paddle >= 1.6, so its runs used it.
const PaddleSmoothCap = 1.0 / 40

// Parts is the loss of a batch split by term. Each is summed per image over
// outputs, anchors and cells, then averaged over the batch (PaddleDetection's
// reduce_mean over the batch, summed over outputs). Total = XY+WH+Obj+Cls.
type Parts struct {
	XY, WH, Obj, Cls, Total float64
	Positives               int // assignments in the batch (GT, output) pairs
	Ignored                 int // negatives excluded by the ignore threshold
}

// Criterion computes the loss and its gradient. It keeps scratch buffers
// between calls: after the first call with given shapes, Forward allocates
// nothing. With more than one worker, the first parallel Forward starts
// goroutines that live until Close. A Criterion is not safe for concurrent use.
type Criterion struct {
	cfg     Config
	matcher Matcher
	smoothP float32 // class target for the label
	smoothN float32 // class target for other classes

	// per call
	outs   [][]float32
	shapes [][4]int
	gts    [][]GT
	grads  [][]float32
	inH    int
	inW    int
	invN   float64

	img  []imageScratch
	next chan int
	wg   sync.WaitGroup
}

// imageScratch is one batch item's private state.
type imageScratch struct {
	assign []Assignment
	link   []int32   // link[k]: previous assignment on the same anchor and cell, -1 none
	owner  [][]int32 // owner[s]: [A*H*W] last assignment per anchor and cell, -1 none
	mask   [][]float32
	part   [4]float64
	npos   int
	nign   int
	err    error
}

// New checks cfg (anchors, masks and strides with anchor.Check) and returns
// a Criterion.
func New(cfg Config) (*Criterion, error) {
	if cfg.NumClasses < 1 {
		return nil, fmt.Errorf("loss: %d classes, need at least 1", cfg.NumClasses)
	}
	if err := anchor.Check(cfg.Anchors, cfg.Masks, cfg.Strides); err != nil {
		return nil, fmt.Errorf("loss: %w", err)
	}
	if cfg.Path != OperatorPath && cfg.Path != FineGrainedPath {
		return nil, fmt.Errorf("loss: unknown path %v", cfg.Path)
	}
	if cfg.ScaleXY == 0 || cfg.Path == FineGrainedPath {
		cfg.ScaleXY = 1
	}
	c := &Criterion{cfg: cfg, smoothP: 1}
	c.matcher = Matcher{Anchors: cfg.Anchors, Masks: cfg.Masks, Strides: cfg.Strides, Path: cfg.Path}
	if cfg.LabelSmooth && cfg.Path == OperatorPath {
		d := 1 / float32(cfg.NumClasses)
		if cfg.SmoothCap > 0 && cfg.SmoothCap < d {
			d = cfg.SmoothCap
		}
		c.smoothP, c.smoothN = 1-d, d
	}
	return c, nil
}

// Config returns the configuration the criterion was built with.
func (c *Criterion) Config() Config { return c.cfg }

// Forward computes the loss of a batch and, when grads is not nil, its
// gradient with respect to the head outputs.
//
//	outs[s]:   [N, A_s*(5+C), H_s, W_s], A_s = len(Masks[s]), layout per anchor x, y, w, h, obj, cls...
//	shapes[s]: the shape of outs[s]; H_s*Strides[s] must equal inputH, W_s*Strides[s] inputW
//	gts[i]:    the GTs of image i (N = len(gts)), normalised to the input
//	grads[s]:  nil, or dst of outs[s]'s shape: overwritten (not accumulated) with dLoss/dOutput
//
// The loss is Parts.Total; outs and gts are not modified. It returns an error
// (and leaves grads in an unspecified state) when shapes do not fit the
// configuration or a label is out of range.
func (c *Criterion) Forward(outs [][]float32, shapes [][4]int, gts [][]GT, inputH, inputW int, grads [][]float32) (Parts, error) {
	if err := c.check(outs, shapes, gts, inputH, inputW, grads); err != nil {
		return Parts{}, err
	}
	n := len(gts)
	c.outs, c.shapes, c.gts, c.grads = outs, shapes, gts, grads
	c.inH, c.inW, c.invN = inputH, inputW, 1/float64(n)
	c.grow(n)

	workers := c.cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if workers <= 1 || n == 1 {
		for i := 0; i < n; i++ {
			c.image(i)
		}
	} else {
		if c.next == nil {
			// Persistent workers: a go statement per call would allocate.
			c.next = make(chan int, 64)
			for w := 0; w < workers; w++ {
				go c.worker(c.next)
			}
		}
		c.wg.Add(n)
		for i := 0; i < n; i++ {
			c.next <- i
		}
		c.wg.Wait()
	}

	var p Parts
	for i := 0; i < n; i++ {
		im := &c.img[i]
		if im.err != nil {
			return Parts{}, fmt.Errorf("image %d: %w", i, im.err)
		}
		p.XY += im.part[0]
		p.WH += im.part[1]
		p.Obj += im.part[2]
		p.Cls += im.part[3]
		p.Positives += im.npos
		p.Ignored += im.nign
	}
	p.XY *= c.invN
	p.WH *= c.invN
	p.Obj *= c.invN
	p.Cls *= c.invN
	p.Total = p.XY + p.WH + p.Obj + p.Cls
	c.outs, c.gts, c.grads = nil, nil, nil
	return p, nil
}

func (c *Criterion) worker(next <-chan int) {
	for i := range next {
		c.image(i)
		c.wg.Done()
	}
}

// Close stops the worker goroutines a parallel Forward started. The Criterion
// stays usable: a later Forward starts them again.
func (c *Criterion) Close() {
	if c.next != nil {
		close(c.next)
		c.next = nil
	}
}

func (c *Criterion) check(outs [][]float32, shapes [][4]int, gts [][]GT, inputH, inputW int, grads [][]float32) error {
	ns := len(c.cfg.Masks)
	if len(outs) != ns || len(shapes) != ns {
		return fmt.Errorf("loss: %d outputs and %d shapes, the config has %d outputs", len(outs), len(shapes), ns)
	}
	if grads != nil && len(grads) != ns {
		return fmt.Errorf("loss: %d gradient buffers for %d outputs", len(grads), ns)
	}
	if len(gts) == 0 {
		return fmt.Errorf("loss: empty batch")
	}
	C := c.cfg.NumClasses
	for s, sh := range shapes {
		a := len(c.cfg.Masks[s])
		if sh[0] != len(gts) {
			return fmt.Errorf("loss: output %d has batch %d, there are %d GT lists", s, sh[0], len(gts))
		}
		if sh[1] != a*(5+C) {
			return fmt.Errorf("loss: output %d has %d channels, want %d anchors x (5+%d classes) = %d", s, sh[1], a, C, a*(5+C))
		}
		if sh[2]*c.cfg.Strides[s] != inputH || sh[3]*c.cfg.Strides[s] != inputW {
			return fmt.Errorf("loss: output %d grid %dx%d times stride %d is not the input %dx%d", s, sh[2], sh[3], c.cfg.Strides[s], inputH, inputW)
		}
		want := sh[0] * sh[1] * sh[2] * sh[3]
		if len(outs[s]) != want {
			return fmt.Errorf("loss: output %d has %d values, shape %v needs %d", s, len(outs[s]), sh, want)
		}
		if grads != nil && len(grads[s]) != want {
			return fmt.Errorf("loss: gradient %d has %d values, shape %v needs %d", s, len(grads[s]), sh, want)
		}
	}
	return nil
}

// grow sizes the per-image scratch for the current shapes.
func (c *Criterion) grow(n int) {
	for len(c.img) < n {
		c.img = append(c.img, imageScratch{})
	}
	ns := len(c.cfg.Masks)
	for i := 0; i < n; i++ {
		im := &c.img[i]
		if len(im.owner) != ns {
			im.owner = make([][]int32, ns)
			im.mask = make([][]float32, ns)
		}
		for s, sh := range c.shapes {
			cells := len(c.cfg.Masks[s]) * sh[2] * sh[3]
			if cap(im.owner[s]) < cells {
				im.owner[s] = make([]int32, cells)
				im.mask[s] = make([]float32, cells)
			}
			im.owner[s] = im.owner[s][:cells]
			im.mask[s] = im.mask[s][:cells]
		}
	}
}

// image computes batch item i: its loss parts and its slice of the gradients.
func (c *Criterion) image(i int) {
	im := &c.img[i]
	im.part = [4]float64{}
	im.npos, im.nign, im.err = 0, 0, nil
	var err error
	im.assign, err = c.matcher.Assign(im.assign, c.gts[i], c.inH, c.inW, c.cfg.NumClasses)
	if err != nil {
		im.err = err
		return
	}
	if cap(im.link) < len(im.assign) {
		im.link = make([]int32, len(im.assign), 2*len(im.assign))
	}
	im.link = im.link[:len(im.assign)]
	im.npos = len(im.assign)
	for s := range c.cfg.Masks {
		c.scale(i, s, im)
	}
}

// scale computes output s of batch item i.
func (c *Criterion) scale(i, s int, im *imageScratch) {
	sh := c.shapes[s]
	A, H, W := len(c.cfg.Masks[s]), sh[2], sh[3]
	C := c.cfg.NumClasses
	hw := H * W
	per := A * (5 + C) * hw
	x := c.outs[s][i*per : (i+1)*per] // [A, 5+C, H, W]
	var g []float32
	if c.grads != nil {
		g = c.grads[s][i*per : (i+1)*per]
		clear(g)
	}
	owner := im.owner[s] // [A, H, W]
	mask := im.mask[s]   // [A, H, W]
	for k := range owner {
		owner[k] = -1
	}
	clear(mask)

	// Positives: chain the assignments of each anchor and cell.
	for k := range im.assign {
		as := &im.assign[k]
		if as.Scale != s {
			continue
		}
		cell := as.Anchor*hw + as.GJ*W + as.GI
		im.link[k] = owner[cell]
		owner[cell] = int32(k)
	}

	// Ignore mask: -1 where the decoded prediction overlaps a GT enough.
	gts := c.gts[i]
	fine := c.cfg.Path == FineGrainedPath
	sxy := float64(c.cfg.ScaleXY)
	bias := -0.5 * (sxy - 1)
	thr := float64(c.cfg.IgnoreThresh)
	for a := 0; a < A; a++ {
		an := c.cfg.Anchors[c.cfg.Masks[s][a]]
		aw, ah := an.W()/float64(c.inW), an.H()/float64(c.inH)
		base := a * (5 + C) * hw
		for k := 0; k < H; k++ {
			for l := 0; l < W; l++ {
				p := k*W + l
				px := (float64(l) + sigmoid(float64(x[base+p]))*sxy + bias) / float64(W)
				py := (float64(k) + sigmoid(float64(x[base+hw+p]))*sxy + bias) / float64(H)
				pw := math.Exp(float64(x[base+2*hw+p])) * aw
				ph := math.Exp(float64(x[base+3*hw+p])) * ah
				best := 0.0
				for _, gt := range gts {
					var iou float64
					if fine {
						iou = iouXYXY(px, py, pw, ph, gt)
					} else {
						if gt.W < 1e-6 || gt.H < 1e-6 {
							continue
						}
						iou = iouCenter(px, py, pw, ph, gt)
					}
					if iou > best {
						best = iou
					}
				}
				if best > thr {
					mask[a*hw+p] = -1
				}
			}
		}
	}

	if fine {
		c.fineGrained(x, g, s, A, H, W, im)
	} else {
		c.operator(x, g, s, A, H, W, im)
	}
}

// operator is yolov3_loss_op.h after the ignore mask: positives GT by GT, then
// objectness over every prediction.
func (c *Criterion) operator(x, g []float32, s, A, H, W int, im *imageScratch) {
	C := c.cfg.NumClasses
	hw := H * W
	mask := im.mask[s]
	invN := float32(c.invN)
	set := func(idx int, v float32) {
		if c.cfg.PaddleGrad {
			g[idx] = v
		} else {
			g[idx] += v
		}
	}
	for k := range im.assign {
		as := &im.assign[k]
		if as.Scale != s {
			continue
		}
		p := as.GJ*W + as.GI
		bi := as.Anchor*(5+C)*hw + p
		sc := float64(as.TScale) * float64(as.Score)
		lx, gx := sce(x[bi], as.TX)
		ly, gy := sce(x[bi+hw], as.TY)
		lw, gw := l1(x[bi+2*hw], as.TW)
		lh, gh := l1(x[bi+3*hw], as.TH)
		im.part[0] += (lx + ly) * sc
		im.part[1] += (lw + lh) * sc
		if g != nil {
			f := float32(sc) * invN
			set(bi, gx*f)
			set(bi+hw, gy*f)
			set(bi+2*hw, gw*f)
			set(bi+3*hw, gh*f)
		}
		mask[as.Anchor*hw+p] = as.Score
		ci := bi + 5*hw
		score := float64(as.Score)
		for cl := 0; cl < C; cl++ {
			t := c.smoothN
			if cl == as.Label {
				t = c.smoothP
			}
			lc, gc := sce(x[ci+cl*hw], t)
			im.part[3] += lc * score
			if g != nil {
				set(ci+cl*hw, gc*float32(score)*invN)
			}
		}
	}
	for a := 0; a < A; a++ {
		oi := a*(5+C)*hw + 4*hw
		for p := 0; p < hw; p++ {
			m := mask[a*hw+p]
			switch {
			case m > 1e-5:
				l, gr := sce(x[oi+p], 1)
				im.part[2] += l * float64(m)
				if g != nil {
					g[oi+p] = gr * m * invN
				}
			case m > -0.5:
				l, gr := sce(x[oi+p], 0)
				im.part[2] += l
				if g != nil {
					g[oi+p] = gr * invN
				}
			default:
				im.nign++
			}
		}
	}
}

// fineGrained is _get_fine_grained_loss on Gt2YoloTarget's dense targets:
// the last GT on an anchor and cell owns it, class targets are the union.
func (c *Criterion) fineGrained(x, g []float32, s, A, H, W int, im *imageScratch) {
	C := c.cfg.NumClasses
	hw := H * W
	mask := im.mask[s]
	owner := im.owner[s]
	invN := float32(c.invN)
	for a := 0; a < A; a++ {
		base := a * (5 + C) * hw
		for p := 0; p < hw; p++ {
			o := owner[a*hw+p]
			oi := base + 4*hw + p
			if o < 0 {
				// tobj = 0: only the negative objectness term, unless ignored.
				if mask[a*hw+p] < 0 {
					im.nign++
					continue
				}
				l, gr := sce(x[oi], 0)
				im.part[2] += l
				if g != nil {
					g[oi] = gr * invN
				}
				continue
			}
			as := &im.assign[o]
			tobj := as.Score
			sc := float64(as.TScale) * float64(tobj)
			bi := base + p
			lx, gx := sce(x[bi], as.TX)
			ly, gy := sce(x[bi+hw], as.TY)
			lw, gw := l1sign(x[bi+2*hw], as.TW)
			lh, gh := l1sign(x[bi+3*hw], as.TH)
			im.part[0] += (lx + ly) * sc
			im.part[1] += (lw + lh) * sc
			lo, gobj := sce(x[oi], 1)
			im.part[2] += lo * float64(tobj)
			if g != nil {
				f := float32(sc) * invN
				g[bi] = gx * f
				g[bi+hw] = gy * f
				g[bi+2*hw] = gw * f
				g[bi+3*hw] = gh * f
				g[oi] = gobj * tobj * invN
			}
			ci := bi + 5*hw
			for cl := 0; cl < C; cl++ {
				var t float32
				for k := o; k >= 0; k = im.link[k] {
					if im.assign[k].Label == cl {
						t = 1
						break
					}
				}
				lc, gc := sce(x[ci+cl*hw], t)
				im.part[3] += lc * float64(tobj)
				if g != nil {
					g[ci+cl*hw] = gc * tobj * invN
				}
			}
		}
	}
}

func sigmoid(v float64) float64 { return 1 / (1 + math.Exp(-v)) }

// sce is the sigmoid cross entropy of logit x against probability t,
// max(x,0) - x*t + log(1+exp(-|x|)), and its derivative sigmoid(x) - t.
func sce(x, t float32) (float64, float32) {
	v := float64(x)
	l := math.Max(v, 0) - v*float64(t) + math.Log1p(math.Exp(-math.Abs(v)))
	return l, float32(sigmoid(v) - float64(t))
}

// l1 is |x - t| with Paddle's L1LossGrad derivative: x > t ? 1 : -1.
func l1(x, t float32) (float64, float32) {
	d := float64(x) - float64(t)
	if x > t {
		return d, 1
	}
	return -d, -1
}

// l1sign is |x - t| with autograd's derivative sign(x - t), 0 at equality.
func l1sign(x, t float32) (float64, float32) {
	d := float64(x) - float64(t)
	switch {
	case d > 0:
		return d, 1
	case d < 0:
		return -d, -1
	}
	return 0, 0
}

// iouCenter is the operator's CalcBoxIoU: centre-form boxes, an overlap with
// a negative side is empty.
func iouCenter(px, py, pw, ph float64, g GT) float64 {
	gx, gy, gw, gh := float64(g.CX), float64(g.CY), float64(g.W), float64(g.H)
	ow := math.Min(px+pw/2, gx+gw/2) - math.Max(px-pw/2, gx-gw/2)
	oh := math.Min(py+ph/2, gy+gh/2) - math.Max(py-ph/2, gy-gh/2)
	inter := 0.0
	if ow >= 0 && oh >= 0 {
		inter = ow * oh
	}
	return inter / (pw*ph + gw*gh - inter)
}

// iouXYXY is iou_similarity on yolo_box's xyxy prediction and the GT turned
// into xyxy (normalised boxes, no +1).
func iouXYXY(px, py, pw, ph float64, g GT) float64 {
	x0, y0, x1, y1 := px-pw/2, py-ph/2, px+pw/2, py+ph/2
	gx, gy, gw, gh := float64(g.CX), float64(g.CY), float64(g.W), float64(g.H)
	u0, v0, u1, v1 := gx-gw/2, gy-gh/2, gx+gw/2, gy+gh/2
	iw := math.Max(math.Min(x1, u1)-math.Max(x0, u0), 0)
	ih := math.Max(math.Min(y1, v1)-math.Max(y0, v0), 0)
	inter := iw * ih
	union := (x1-x0)*(y1-y0) + (u1-u0)*(v1-v0) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}
