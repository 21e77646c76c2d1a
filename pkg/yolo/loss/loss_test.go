package loss

import (
	"math"
	"math/rand/v2"
	"testing"

	"yolodistill/pkg/anchor"
)

func TestMatcherHand(t *testing.T) {
	m := Matcher{Anchors: anchor.Defaults(), Masks: anchor.DefaultMasks(), Strides: anchor.DefaultStrides()}
	cases := []struct {
		name           string
		in             int
		g              GT
		scale, anchor  int
		gi, gj         int
		tx, ty, tw, th float64
	}{
		// 116x90 px box at 416: exactly anchor 6, output 0 (13x13), anchor slot 0.
		{"anchor6", 416, GT{CX: 0.5, CY: 0.25, W: 116.0 / 416, H: 90.0 / 416, Score: 1}, 0, 0, 6, 3, 0.5, 0.25, 0, 0},
		// 33x23 px at 320: anchor 2, output 2 (40x40), slot 2; 20% larger width.
		{"anchor2", 320, GT{CX: 0.1, CY: 0.91, W: 1.2 * 33 / 320, H: 23.0 / 320, Score: 1}, 2, 2, 4, 36, 0, 0.4, math.Log(1.2), 0},
		// centre exactly 1.0 is clamped into the last cell.
		{"edge", 320, GT{CX: 1, CY: 1, W: 62.0 / 320, H: 45.0 / 320, Score: 1}, 1, 1, 19, 19, 1, 1, 0, 0},
	}
	for _, tc := range cases {
		as, err := m.Assign(nil, []GT{tc.g}, tc.in, tc.in, 1)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(as) != 1 {
			t.Fatalf("%s: %d assignments, want 1", tc.name, len(as))
		}
		a := as[0]
		if a.Scale != tc.scale || a.Anchor != tc.anchor || a.GI != tc.gi || a.GJ != tc.gj {
			t.Errorf("%s: scale %d anchor %d cell (%d,%d), want %d %d (%d,%d)", tc.name, a.Scale, a.Anchor, a.GI, a.GJ, tc.scale, tc.anchor, tc.gi, tc.gj)
		}
		for _, v := range []struct {
			n         string
			got, want float64
		}{{"tx", float64(a.TX), tc.tx}, {"ty", float64(a.TY), tc.ty}, {"tw", float64(a.TW), tc.tw}, {"th", float64(a.TH), tc.th},
			{"tscale", float64(a.TScale), 2 - float64(tc.g.W)*float64(tc.g.H)}} {
			if math.Abs(v.got-v.want) > 1e-5 {
				t.Errorf("%s: %s = %v, want %v", tc.name, v.n, v.got, v.want)
			}
		}
	}
	// validity rules of the two paths
	zeroScore := GT{CX: .5, CY: .5, W: .3, H: .3, Score: 0}
	if as, _ := m.Assign(nil, []GT{zeroScore}, 320, 320, 1); len(as) != 1 {
		t.Errorf("operator path: score-0 GT gave %d assignments, want 1 (it is valid)", len(as))
	}
	fm := m
	fm.Path = FineGrainedPath
	if as, _ := fm.Assign(nil, []GT{zeroScore}, 320, 320, 1); len(as) != 0 {
		t.Errorf("fine-grained path: score-0 GT gave %d assignments, want 0", len(as))
	}
	if _, err := m.Assign(nil, []GT{{CX: .5, CY: .5, W: .3, H: .3, Label: 3, Score: 1}}, 320, 320, 3); err == nil {
		t.Errorf("label 3 of 3 classes: no error")
	}
}

// TestBestAnchorUnchanged: BestAnchor picks what its former inline loop
// picked, for any input (sizes that are zero, negative, tiny, huge or not
// finite included, where the unguarded IoU behaves oddly): the loss's
// assignments must not move.
func TestBestAnchorUnchanged(t *testing.T) {
	inline := func(m *Matcher, w, h float32, inputH, inputW int) int {
		best, bestIoU := -1, 0.0
		gw, gh := float64(w), float64(h)
		for i, a := range m.Anchors {
			aw, ah := a[0]/float64(inputW), a[1]/float64(inputH)
			inter := math.Min(gw, aw) * math.Min(gh, ah)
			iou := inter / (gw*gh + aw*ah - inter)
			if iou > bestIoU {
				best, bestIoU = i, iou
			}
		}
		return best
	}
	special := []float32{0, -1, 1e-30, 1e30, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	rng := rand.New(rand.NewPCG(5, 6))
	pick := func() float32 {
		if rng.IntN(6) == 0 {
			return special[rng.IntN(len(special))]
		}
		return float32(rng.Float64()*1.5 - 0.25)
	}
	odd := []anchor.Anchor{{10, 13}, {-5, 20}, {0, 7}, {30, 61}, {1e-9, 3}}
	for _, anchors := range [][]anchor.Anchor{anchor.Defaults(), odd} {
		m := &Matcher{Anchors: anchors}
		for n := 0; n < 50000; n++ {
			w, h := pick(), pick()
			inH := 32 * (1 + rng.IntN(19))
			inW := inH + 32*rng.IntN(2)
			if got, want := m.BestAnchor(w, h, inH, inW), inline(m, w, h, inH, inW); got != want {
				t.Fatalf("BestAnchor(%g, %g, %d, %d) with %v = %d, inline loop %d", w, h, inH, inW, anchors, got, want)
			}
		}
	}
}

// TestHandLoss: all logits 0, one class, no ignore. Every SCE term is ln 2
// whatever its target, so the loss is countable by hand.
func TestHandLoss(t *testing.T) {
	const in = 64
	g := GT{CX: 0.3, CY: 0.6, W: 30.0 / 64 * 1.1, H: 61.0 / 64, Score: 0.8} // anchor 3 (30x61): output 1
	ln2 := math.Log(2)
	tscale := 2 - float64(g.W)*float64(g.H)
	tw := math.Log(1.1)
	for _, path := range []Path{OperatorPath, FineGrainedPath} {
		cfg := DefaultConfig(1)
		cfg.Path = path
		cfg.LabelSmooth = false
		cfg.IgnoreThresh = 1 // never ignore
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		outs, shapes, grads := zeroOutputs(2, 1, in)
		p, err := c.Forward(outs, shapes, [][]GT{{g}, {g}}, in, in, grads)
		if err != nil {
			t.Fatal(err)
		}
		cells := 3 * (2*2 + 4*4 + 8*8)
		want := map[string]float64{
			"xy":  2 * ln2 * tscale * float64(g.Score),
			"wh":  tw * tscale * float64(g.Score),
			"obj": float64(cells-1)*ln2 + ln2*float64(g.Score),
			"cls": ln2 * float64(g.Score),
		}
		got := map[string]float64{"xy": p.XY, "wh": p.WH, "obj": p.Obj, "cls": p.Cls}
		for k, w := range want {
			if math.Abs(got[k]-w) > 1e-6*math.Abs(w) {
				t.Errorf("%v: %s = %.9g, want %.9g", path, k, got[k], w)
			}
		}
		if p.Positives != 2 {
			t.Errorf("%v: %d positives, want 2", path, p.Positives)
		}
		// gradient of obj at the positive (output 1, anchor 0, cell (1,2)) of
		// image 0: (sigmoid(0)-1)*score/N.
		hw := 16
		idx := 0*hw + 4*hw + 2*4 + 1
		if gw := float64(grads[1][idx]); math.Abs(gw-(-0.5*0.8/2)) > 1e-7 {
			t.Errorf("%v: d/d obj at the positive = %v, want %v", path, gw, -0.5*0.8/2)
		}
	}
}

func zeroOutputs(n, C, in int) (outs [][]float32, shapes [][4]int, grads [][]float32) {
	for _, s := range anchor.DefaultStrides() {
		sh := [4]int{n, 3 * (5 + C), in / s, in / s}
		outs = append(outs, make([]float32, sh[0]*sh[1]*sh[2]*sh[3]))
		grads = append(grads, make([]float32, sh[0]*sh[1]*sh[2]*sh[3]))
		shapes = append(shapes, sh)
	}
	return
}

func randomBatch(r *rand.Rand, n, C, in int, nbox int) (outs [][]float32, shapes [][4]int, gts [][]GT) {
	for _, s := range anchor.DefaultStrides() {
		sh := [4]int{n, 3 * (5 + C), in / s, in / s}
		o := make([]float32, sh[0]*sh[1]*sh[2]*sh[3])
		for k := range o {
			o[k] = float32(r.NormFloat64())
		}
		outs = append(outs, o)
		shapes = append(shapes, sh)
	}
	for i := 0; i < n; i++ {
		var l []GT
		for b := 0; b < nbox; b++ {
			score := float32(1)
			if b == 1 {
				score = 0.4
			}
			l = append(l, GT{
				CX: float32(0.05 + 0.9*r.Float64()), CY: float32(0.05 + 0.9*r.Float64()),
				W: float32(0.05 + 0.8*r.Float64()), H: float32(0.05 + 0.8*r.Float64()),
				Label: r.IntN(C), Score: score,
			})
		}
		// a second box on the first one's anchor and cell
		d := l[0]
		d.Label = (d.Label + 1) % C
		d.W *= 1.01
		l = append(l, d)
		gts = append(gts, l)
	}
	return
}

// TestFiniteDifference checks the analytic gradient of both paths against
// central differences of the loss on random inputs.
func TestFiniteDifference(t *testing.T) {
	cases := []struct {
		name   string
		path   Path
		smooth bool
		sxy    float32
		thr    float32
		C      int
	}{
		{"operator", OperatorPath, false, 1, 0.7, 3},
		{"operator_smooth_sxy", OperatorPath, true, 1.05, 0.3, 4},
		{"fine", FineGrainedPath, false, 1, 0.7, 3},
		{"fine_low_ignore", FineGrainedPath, false, 1, 0.3, 2},
	}
	const in = 64
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(tc.C)))
			cfg := DefaultConfig(tc.C)
			cfg.Path, cfg.LabelSmooth, cfg.ScaleXY, cfg.IgnoreThresh = tc.path, tc.smooth, tc.sxy, tc.thr
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			outs, shapes, gts := randomBatch(r, 2, tc.C, in, 4)
			grads := make([][]float32, len(outs))
			for s := range outs {
				grads[s] = make([]float32, len(outs[s]))
			}
			p0, err := c.Forward(outs, shapes, gts, in, in, grads)
			if err != nil {
				t.Fatal(err)
			}
			if p0.Positives == 0 {
				t.Fatal("no positives")
			}
			// every entry with a nonzero gradient other than objectness, plus a sample
			checked, bad := 0, 0
			for s := range outs {
				for k := range outs[s] {
					if grads[s][k] == 0 && r.IntN(20) != 0 {
						continue
					}
					const eps = 1e-3
					x0 := outs[s][k]
					outs[s][k] = x0 + eps
					up := float64(x0 + eps)
					pp, _ := c.Forward(outs, shapes, gts, in, in, nil)
					outs[s][k] = x0 - eps
					dn := float64(x0 - eps)
					pm, _ := c.Forward(outs, shapes, gts, in, in, nil)
					outs[s][k] = x0
					fd := (pp.Total - pm.Total) / (up - dn)
					an := float64(grads[s][k])
					checked++
					if math.Abs(fd-an) > 2e-3*math.Abs(fd)+2e-5 {
						bad++
						if bad <= 5 {
							t.Errorf("scale %d entry %d: analytic %.7g, finite difference %.7g", s, k, an, fd)
						}
					}
				}
			}
			if checked < 100 {
				t.Errorf("only %d entries checked", checked)
			}
			if bad > 0 {
				t.Errorf("%d of %d entries differ", bad, checked)
			}
		})
	}
}

// TestPaddleGrad: with two GTs on one anchor and cell the forward counts both,
// the exact gradient sums both, Paddle's kernel keeps only the last one's.
func TestPaddleGrad(t *testing.T) {
	const in = 64
	g1 := GT{CX: 0.3, CY: 0.6, W: 30.0 / 64, H: 61.0 / 64, Label: 0, Score: 1}
	g2 := g1
	g2.CX += 0.01 // same cell (1,2) of output 1 (4x4), other tx
	g2.Label = 1
	x1 := 0.3*4 - 1
	x2 := (0.3+0.01)*4 - 1
	for _, tc := range []struct {
		name       string
		paddleGrad bool
		want       float64 // d/dx of the x logit (0) at the cell, batch 1
	}{
		{"exact", false, (0.5 - x1 + 0.5 - x2) * (2 - float64(g1.W)*float64(g1.H))},
		{"paddle", true, (0.5 - x2) * (2 - float64(g2.W)*float64(g2.H))},
	} {
		cfg := DefaultConfig(2)
		cfg.LabelSmooth = false
		cfg.PaddleGrad = tc.paddleGrad
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		outs, shapes, grads := zeroOutputs(1, 2, in)
		p, err := c.Forward(outs, shapes, [][]GT{{g1, g2}}, in, in, grads)
		if err != nil {
			t.Fatal(err)
		}
		if p.Positives != 2 {
			t.Fatalf("%s: %d positives, want 2", tc.name, p.Positives)
		}
		got := float64(grads[1][2*4+1])
		if math.Abs(got-tc.want) > 1e-5 {
			t.Errorf("%s: dx = %.7g, want %.7g", tc.name, got, tc.want)
		}
		// class 0 gradient: exact sums (0.5-1) + (0.5-0); Paddle keeps the last (label 1): 0.5.
		ci := 5*16 + 2*4 + 1
		wantC := 0.0
		if tc.paddleGrad {
			wantC = 0.5
		}
		if got := float64(grads[1][ci]); math.Abs(got-wantC) > 1e-6 {
			t.Errorf("%s: d cls0 = %v, want %v", tc.name, got, wantC)
		}
	}
}

func TestShapeErrors(t *testing.T) {
	c, err := New(DefaultConfig(3))
	if err != nil {
		t.Fatal(err)
	}
	outs, shapes, _ := zeroOutputs(1, 3, 64)
	gts := [][]GT{{{CX: .5, CY: .5, W: .2, H: .2, Score: 1}}}
	bad := []struct {
		name string
		f    func() error
	}{
		{"wrong input size", func() error { _, err := c.Forward(outs, shapes, gts, 96, 96, nil); return err }},
		{"batch mismatch", func() error { _, err := c.Forward(outs, shapes, append(gts, nil), 64, 64, nil); return err }},
		{"short buffer", func() error {
			o := append([][]float32{outs[0][:10]}, outs[1:]...)
			_, err := c.Forward(o, shapes, gts, 64, 64, nil)
			return err
		}},
		{"wrong channels", func() error {
			sh := append([][4]int(nil), shapes...)
			sh[0][1] = 3 * 9
			_, err := c.Forward(outs, sh, gts, 64, 64, nil)
			return err
		}},
		{"bad label", func() error {
			_, err := c.Forward(outs, shapes, [][]GT{{{CX: .5, CY: .5, W: .2, H: .2, Label: 7, Score: 1}}}, 64, 64, nil)
			return err
		}},
	}
	for _, b := range bad {
		if b.f() == nil {
			t.Errorf("%s: no error", b.name)
		}
	}
}

// TestAllocs: after the first call Forward allocates nothing, sequential or
// parallel, and parallel results equal sequential ones.
func TestAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	outs, shapes, gts := randomBatch(r, 4, 5, 64, 6)
	grads := make([][]float32, len(outs))
	for s := range outs {
		grads[s] = make([]float32, len(outs[s]))
	}
	var ref Parts
	for _, workers := range []int{1, 3} {
		cfg := DefaultConfig(5)
		cfg.Workers = workers
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p, err := c.Forward(outs, shapes, gts, 64, 64, grads)
		if err != nil {
			t.Fatal(err)
		}
		if workers == 1 {
			ref = p
		} else if p != ref {
			t.Errorf("workers %d: %+v, sequential %+v", workers, p, ref)
		}
		a := testing.AllocsPerRun(5, func() {
			if _, err := c.Forward(outs, shapes, gts, 64, 64, grads); err != nil {
				t.Fatal(err)
			}
		})
		// With several workers the runtime's goroutine hand-off may allocate
		// now and then on a loaded machine; the strict check is the serial path.
		if workers == 1 && a > 0 {
			t.Errorf("workers %d: %.1f allocations per call, want 0", workers, a)
		}
	}
}

// TestNoGT: an image without boxes has only negative objectness terms.
func TestNoGT(t *testing.T) {
	for _, path := range []Path{OperatorPath, FineGrainedPath} {
		cfg := DefaultConfig(2)
		cfg.Path = path
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		outs, shapes, grads := zeroOutputs(1, 2, 64)
		p, err := c.Forward(outs, shapes, [][]GT{nil}, 64, 64, grads)
		if err != nil {
			t.Fatal(err)
		}
		cells := 3 * (2*2 + 4*4 + 8*8)
		if want := float64(cells) * math.Log(2); math.Abs(p.Obj-want) > 1e-9*want || p.XY != 0 || p.WH != 0 || p.Cls != 0 || p.Positives != 0 {
			t.Errorf("%v: %+v, want obj %v and nothing else", path, p, want)
		}
		if g := grads[2][4*64+10]; g != 0.5 {
			t.Errorf("%v: d obj = %v, want sigmoid(0) = 0.5", path, g)
		}
	}
}

// FineGrainedPath ignores ScaleXY (PaddleDetection release/0.3's
// _get_fine_grained_loss does not pass scale_x_y); the operator path uses it
// in its ignore test.
func TestScaleXYOnlyOnOperatorPath(t *testing.T) {
	outs, shapes, gts := randomBatch(rand.New(rand.NewPCG(11, 3)), 2, 3, 64, 4)
	run := func(path Path, sxy float32) Parts {
		cfg := DefaultConfig(3)
		cfg.Path, cfg.ScaleXY, cfg.IgnoreThresh, cfg.Workers = path, sxy, 0.3, 1
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p, err := c.Forward(outs, shapes, gts, 64, 64, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if a, b := run(FineGrainedPath, 1), run(FineGrainedPath, 1.3); a != b {
		t.Errorf("fine-grained path: scale_x_y changed the loss: %+v vs %+v", a, b)
	}
	if a, b := run(OperatorPath, 1), run(OperatorPath, 1.3); a.Obj == b.Obj {
		t.Errorf("operator path: scale_x_y 1.3 left the objectness loss at %v (the test proves nothing)", a.Obj)
	}
	if c := DefaultConfig(20); c.SmoothCap != 1.0/40 {
		t.Errorf("DefaultConfig SmoothCap %v, want 1/40 (Paddle's yolov3_loss since Fluid 1.5)", c.SmoothCap)
	}
}
