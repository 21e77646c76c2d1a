package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// naiveConv is the definition of a grouped convolution, in float64.
func naiveConv(g *convGeom, x, w, bias []float32) (y []float64) {
	y = make([]float64, g.N*g.Cout*g.OH*g.OW)
	for n := 0; n < g.N; n++ {
		for co := 0; co < g.Cout; co++ {
			gr := co / g.Coutg
			for oh := 0; oh < g.OH; oh++ {
				for ow := 0; ow < g.OW; ow++ {
					var s float64
					if bias != nil {
						s = float64(bias[co])
					}
					for c := 0; c < g.Cg; c++ {
						for ki := 0; ki < g.K; ki++ {
							for kj := 0; kj < g.K; kj++ {
								ih, iw := oh*g.Stride-g.Pad+ki, ow*g.Stride-g.Pad+kj
								if ih < 0 || ih >= g.H || iw < 0 || iw >= g.W {
									continue
								}
								s += float64(w[((co*g.Cg+c)*g.K+ki)*g.K+kj]) * float64(x[((n*g.C+gr*g.Cg+c)*g.H+ih)*g.W+iw])
							}
						}
					}
					y[((n*g.Cout+co)*g.OH+oh)*g.OW+ow] = s
				}
			}
		}
	}
	return y
}

// naiveConvGrads returns dx and dw of sum(dy * conv(x, w)), in float64.
func naiveConvGrads(g *convGeom, x, w, dy []float32) (dx, dw []float64) {
	dx = make([]float64, len(x))
	dw = make([]float64, len(w))
	for n := 0; n < g.N; n++ {
		for co := 0; co < g.Cout; co++ {
			gr := co / g.Coutg
			for oh := 0; oh < g.OH; oh++ {
				for ow := 0; ow < g.OW; ow++ {
					d := float64(dy[((n*g.Cout+co)*g.OH+oh)*g.OW+ow])
					for c := 0; c < g.Cg; c++ {
						for ki := 0; ki < g.K; ki++ {
							for kj := 0; kj < g.K; kj++ {
								ih, iw := oh*g.Stride-g.Pad+ki, ow*g.Stride-g.Pad+kj
								if ih < 0 || ih >= g.H || iw < 0 || iw >= g.W {
									continue
								}
								xi := ((n*g.C+gr*g.Cg+c)*g.H+ih)*g.W + iw
								wi := ((co*g.Cg+c)*g.K+ki)*g.K + kj
								dx[xi] += d * float64(w[wi])
								dw[wi] += d * float64(x[xi])
							}
						}
					}
				}
			}
		}
	}
	return dx, dw
}

func maxRelErr(got []float32, want []float64) float64 {
	var scale, worst float64
	for _, v := range want {
		scale = math.Max(scale, math.Abs(v))
	}
	for i, v := range want {
		worst = math.Max(worst, math.Abs(float64(got[i])-v)/math.Max(scale, 1e-30))
	}
	return worst
}

// TestConvKernels compares the conv kernels (im2col+sgemm, pointwise,
// depthwise direct and its 3x3 fast path, row bands for batch 1) with the
// float64 definition. Error is relative to the largest reference value.
func TestConvKernels(t *testing.T) {
	const tol = 1e-5
	cases := []struct {
		name                                    string
		n, c, h, w, cout, k, stride, pad, group int
		bias                                    bool
	}{
		{"3x3 s1 p1 batch1", 1, 3, 9, 7, 4, 3, 1, 1, 1, true},
		{"3x3 s1 p1 batch1 (4 row bands)", 1, 3, 16, 13, 4, 3, 1, 1, 1, true},
		{"3x3 s1 p1 batch2 (2 row bands)", 2, 3, 12, 10, 5, 3, 1, 1, 1, false},
		{"3x3 s1 p1 batch1 (2 channel blocks)", 1, 8, 5, 4, 150, 3, 1, 1, 1, true},
		{"1x1 pointwise batch1 (4 channel blocks)", 1, 6, 3, 3, 260, 1, 1, 0, 1, true},
		{"3x3 grouped2 batch1 (2 channel blocks)", 1, 4, 4, 4, 256, 3, 1, 1, 2, true},
		{"3x3 s1 p1 batch3", 3, 3, 9, 7, 4, 3, 1, 1, 1, false},
		{"3x3 s2 p1 batch5 (uneven weight-gradient chunks)", 5, 3, 7, 6, 4, 3, 2, 1, 1, false},
		{"7x7 s2 p3 batch1", 1, 3, 17, 15, 5, 7, 2, 3, 1, false},
		{"1x1 pointwise batch1", 1, 6, 5, 5, 4, 1, 1, 0, 1, true},
		{"1x1 s2", 2, 6, 7, 5, 4, 1, 2, 0, 1, false},
		{"3x3 s2 p0 grouped3", 2, 6, 9, 8, 9, 3, 2, 0, 3, true},
		{"depthwise 3x3 s1 p1", 2, 5, 8, 6, 5, 3, 1, 1, 5, true},
		{"depthwise 3x3 s2 p1 odd", 2, 5, 9, 7, 5, 3, 2, 1, 5, false},
		{"depthwise 3x3 s1 p1 tiny 1x1", 2, 3, 1, 1, 3, 3, 1, 1, 3, false},
		{"depthwise 3x3 s2 p1 2x2", 1, 3, 2, 2, 3, 3, 2, 1, 3, false},
		{"depthwise 5x5 s1 p2", 2, 4, 6, 6, 4, 5, 1, 2, 4, true},
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newConvGeom(tc.n, tc.c, tc.h, tc.w, tc.cout, tc.k, tc.stride, tc.pad, tc.group)
			x := randSlice(rng, g.N*g.C*g.H*g.W)
			w := randSlice(rng, g.Cout*g.CKK)
			var bias []float32
			if tc.bias {
				bias = randSlice(rng, g.Cout)
			}
			var ws, acc workspace
			y := make([]float32, g.N*g.Cout*g.OH*g.OW)
			convForward(&g, &ws, x, w, bias, y)
			if e := maxRelErr(y, naiveConv(&g, x, w, bias)); e > tol {
				t.Errorf("forward: max rel err %.3g > %g", e, tol)
			}
			dy := randSlice(rng, len(y))
			dx := randSlice(rng, len(x)) // garbage: must be overwritten
			dw := randSlice(rng, len(w))
			convBackwardData(&g, &ws, nil, w, dy, dx, 0)
			convBackwardWeight(&g, &ws, &acc, nil, x, dy, dw, 0)
			wdx, wdw := naiveConvGrads(&g, x, w, dy)
			if e := maxRelErr(dx, wdx); e > tol {
				t.Errorf("dx: max rel err %.3g > %g", e, tol)
			}
			if e := maxRelErr(dw, wdw); e > tol {
				t.Errorf("dw: max rel err %.3g > %g", e, tol)
			}
		})
	}
}

// TestMaxPoolPadding: padding is -inf (torch), so an all-negative input keeps
// negative maxima, and the output size is floor((H+2p-k)/s)+1.
func TestMaxPoolPadding(t *testing.T) {
	ps := NewParamSet(1)
	b := NewBuilder(ps, []int{1, 1, 4, 5})
	y := b.MaxPool("p", b.Input(), 3, 2, 1)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	for i := range g.Input() {
		g.Input()[i] = -1 - float32(i) // max is the top-left element of each window
	}
	if err := g.Forward(false); err != nil {
		t.Fatal(err)
	}
	v, shape := g.Tensor(y.Name())
	if !slices.Equal(shape, []int{1, 1, 2, 3}) {
		t.Fatalf("shape %v, want [1 1 2 3]", shape)
	}
	want := []float32{-1, -2, -4, -6, -7, -9} // windows start at (2i-1, 2j-1), clipped
	for i := range want {
		if v[i] != want[i] {
			t.Fatalf("pool %v, want %v", v, want)
		}
	}
}

// TestInferenceBN: Forward(false) uses the running statistics:
// y = leaky(gamma*(x-mean)/sqrt(var+eps) + beta).
func TestInferenceBN(t *testing.T) {
	ps := NewParamSet(1)
	b := NewBuilder(ps, []int{2, 3, 4, 4})
	y := b.BNAct("bn", b.Input(), ActLeaky)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	copy(g.Input(), randSlice(rng, 2*3*16))
	mean, vr := ps.Get("bn.bn.mean").Data, ps.Get("bn.bn.var").Data
	gamma, beta := ps.Get("bn.bn.scale").Data, ps.Get("bn.bn.bias").Data
	for c := 0; c < 3; c++ {
		mean[c], vr[c], gamma[c], beta[c] = float32(c)*0.3, 1+float32(c), 1-0.2*float32(c), 0.1*float32(c)
	}
	before := slices.Clone(mean)
	if err := g.Forward(false); err != nil {
		t.Fatal(err)
	}
	got, _ := g.Tensor(y.Name())
	for i, x := range g.Input() {
		c := (i / 16) % 3
		z := float64(gamma[c])*(float64(x)-float64(mean[c]))/math.Sqrt(float64(vr[c])+1e-5) + float64(beta[c])
		if z < 0 {
			z *= 0.1
		}
		if math.Abs(float64(got[i])-z) > 1e-5*(1+math.Abs(z)) {
			t.Fatalf("y[%d] = %g, want %g", i, got[i], z)
		}
	}
	if !slices.Equal(before, mean) {
		t.Fatal("inference mode changed the running mean")
	}
	// Paddle convention by default: running = 0.9*running + 0.1*batch (biased var).
	if err := g.Forward(true); err != nil {
		t.Fatal(err)
	}
	var s, ss float64
	n := 0
	for i, x := range g.Input() {
		if (i/16)%3 == 0 {
			s += float64(x)
			ss += float64(x) * float64(x)
			n++
		}
	}
	bm := s / float64(n)
	bv := ss/float64(n) - bm*bm
	if math.Abs(float64(mean[0])-(0.9*float64(before[0])+0.1*bm)) > 1e-6 ||
		math.Abs(float64(vr[0])-(0.9*1+0.1*bv)) > 1e-5 {
		t.Fatalf("running stats %g %g, want %g %g", mean[0], vr[0], 0.9*float64(before[0])+0.1*bm, 0.9+0.1*bv)
	}
}

// TestSGD checks Paddle's momentum update with L2 decay against the formula.
func TestSGD(t *testing.T) {
	ps := NewParamSet(1)
	w, _ := ps.ensure("w", []int{2}, true, true, initKind{constant: 1})
	bb, _ := ps.ensure("b", []int{2}, true, false, initKind{constant: 1})
	st, _ := ps.ensure("s", []int{1}, false, false, initKind{constant: 5})
	s := NewSGD(ps, 0.9, 0.1)
	lr := float32(0.5)
	grads := [][]float32{{1, -2}, {0.5, 0}}
	// reference in float64
	wv, bv := []float64{1, 1}, []float64{1, 1}
	wvel, bvel := []float64{0, 0}, []float64{0, 0}
	for _, g := range grads {
		copy(w.Grad, g)
		copy(bb.Grad, g)
		s.Step(lr)
		for j := range wv {
			wvel[j] = 0.9*wvel[j] + float64(g[j]) + 0.1*wv[j]
			wv[j] -= float64(lr) * wvel[j]
			bvel[j] = 0.9*bvel[j] + float64(g[j])
			bv[j] -= float64(lr) * bvel[j]
		}
	}
	for j := range wv {
		if math.Abs(float64(w.Data[j])-wv[j]) > 1e-6 || math.Abs(float64(bb.Data[j])-bv[j]) > 1e-6 {
			t.Fatalf("w %v b %v, want %v %v", w.Data, bb.Data, wv, bv)
		}
	}
	if st.Data[0] != 5 {
		t.Fatal("non-trainable parameter changed")
	}
	vel := s.State()
	if len(vel) != 2 || vel[0].Name != "w" || math.Abs(float64(vel[0].Data[0])-wvel[0]) > 1e-6 {
		t.Fatalf("velocity state %+v", vel)
	}
	if err := s.SetState("w", []float32{3, 4}); err != nil || vel[0].Data[1] != 4 {
		t.Fatalf("SetState: %v", err)
	}
	if err := s.SetState("nope", nil); err == nil {
		t.Fatal("SetState of an unknown name succeeded")
	}
}

// TestSharedParams: graphs for two input sizes share one ParamSet; an update
// through one is seen by the other, and a rebuilt graph gives identical bits.
func TestSharedParams(t *testing.T) {
	ps := NewParamSet(7)
	build := func(h int) (*Graph, *Tensor) {
		b := NewBuilder(ps, []int{2, 3, h, h})
		y := b.ConvBNAct("c1", b.Input(), ConvSpec{Out: 4, K: 3, Stride: 2, Pad: 1}, ActLeaky)
		y = b.Conv("out", y, ConvSpec{Out: 2, K: 1}, true)
		projLoss(b, "l", y, 1)
		g, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		return g, y
	}
	g8, _ := build(8)
	n := len(ps.Params())
	g16, y16 := build(16)
	if len(ps.Params()) != n {
		t.Fatalf("second graph created parameters: %d -> %d", n, len(ps.Params()))
	}
	rng := rand.New(rand.NewPCG(2, 2))
	copy(g8.Input(), randSlice(rng, len(g8.Input())))
	copy(g16.Input(), randSlice(rng, len(g16.Input())))
	if _, err := g8.Step(); err != nil {
		t.Fatal(err)
	}
	grad1 := slices.Clone(ps.Get("c1.weight").Grad)
	if _, err := g8.Step(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(grad1, ps.Get("c1.weight").Grad) {
		t.Fatal("two identical steps gave different gradients")
	}
	NewSGD(ps, 0.9, 5e-4).Step(0.1)
	if err := g16.Forward(true); err != nil {
		t.Fatal(err)
	}
	a, _ := g16.Tensor(y16.Name())
	a = slices.Clone(a)
	g16b, _ := build(16)
	copy(g16b.Input(), g16.Input())
	if err := g16b.Forward(true); err != nil {
		t.Fatal(err)
	}
	c, _ := g16b.Tensor("out")
	if !slices.Equal(a, c) {
		t.Fatal("graphs over the same parameters disagree")
	}
}

// TestBuilderErrors: bad shapes, duplicate names and parameter clashes are
// errors from Build, naming the layer.
func TestBuilderErrors(t *testing.T) {
	cases := []struct {
		name  string
		build func(b *Builder)
		want  string
	}{
		{"groups do not divide", func(b *Builder) { b.Conv("c", b.Input(), ConvSpec{Out: 4, K: 3, Groups: 2}, false) }, "conv c"},
		{"kernel too big", func(b *Builder) { b.Conv("c", b.Input(), ConvSpec{Out: 4, K: 9}, false) }, "too small"},
		{"duplicate name", func(b *Builder) {
			b.Conv("c", b.Input(), ConvSpec{Out: 4, K: 1}, false)
			b.Conv("c", b.Input(), ConvSpec{Out: 4, K: 1}, false)
		}, "used twice"},
		{"param shape clash", func(b *Builder) {
			b.Conv("c", b.Input(), ConvSpec{Out: 4, K: 1}, false)
			b.Conv("c", b.Input(), ConvSpec{Out: 5, K: 1}, false)
		}, "exists with shape"},
		{"concat mismatch", func(b *Builder) {
			a := b.Conv("a", b.Input(), ConvSpec{Out: 4, K: 3, Stride: 2}, false)
			b.Concat("cat", a, b.Input())
		}, "concat cat"},
		{"add mismatch", func(b *Builder) {
			a := b.Conv("a", b.Input(), ConvSpec{Out: 4, K: 1}, false)
			b.AddAct("s", a, b.Input(), ActReLU)
		}, "add s"},
		{"no trainable parameter for the loss", func(b *Builder) {
			p := b.MaxPool("p", b.Input(), 2, 2, 0)
			projLoss(b, "l", p, 1)
		}, "no trainable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder(NewParamSet(1), []int{1, 3, 4, 4})
			tc.build(b)
			_, err := b.Build()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := NewBuilder(NewParamSet(1), []int{1, 3, 0, 4}).Build(); err == nil {
		t.Fatal("zero-sized input accepted")
	}
}

// TestLossPanic: a panicking LossFunc makes Step fail with an error naming the loss.
func TestLossPanic(t *testing.T) {
	b := NewBuilder(NewParamSet(1), []int{1, 2, 3, 3})
	y := b.Conv("c", b.Input(), ConvSpec{Out: 2, K: 1}, true)
	b.Loss("boom", []*Tensor{y}, func(ins, grads [][]float32) float64 { panic("bad target") })
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Step(); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Step error %v, want one naming the loss", err)
	}
}

// TestArenaSharing: graphs on one ParamSet share their activation and
// gradient buffers (sized for the largest), rebinding when a later graph grew
// them, and every graph still computes exactly what it computes alone.
func TestArenaSharing(t *testing.T) {
	build := func(ps *ParamSet, h int) *Graph {
		b := NewBuilder(ps, []int{2, 3, h, h})
		y := b.ConvBNAct("c1", b.Input(), ConvSpec{Out: 4, K: 3, Stride: 2, Pad: 1}, ActLeaky)
		y = b.ConvBNAct("c2", y, ConvSpec{Out: 4, K: 3, Pad: 1, Groups: 4}, ActReLU)
		y = b.Conv("out", b.Upsample2x("up", y), ConvSpec{Out: 2, K: 1}, true)
		projLoss(b, "l", y, 1)
		g, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(h), 2))
		copy(g.Input(), randSlice(rng, len(g.Input())))
		return g
	}
	step := func(g *Graph, ps *ParamSet) ([]float32, []float32) {
		if _, err := g.Step(); err != nil {
			t.Fatal(err)
		}
		out, _ := g.Tensor("out")
		return slices.Clone(out), slices.Clone(ps.Get("c1.weight").Grad)
	}
	ps := NewParamSet(3)
	g8 := build(ps, 8)
	out8, grad8 := step(g8, ps)
	g16 := build(ps, 16) // grows every slot
	out16, grad16 := step(g16, ps)
	out8b, grad8b := step(g8, ps) // rebinds to the grown slots
	if !slices.Equal(out8, out8b) || !slices.Equal(grad8, grad8b) {
		t.Fatal("the 8 px graph computes differently after the 16 px graph grew the shared buffers")
	}
	alone := NewParamSet(3)
	g16alone := build(alone, 16)
	o, gr := step(g16alone, alone)
	if !slices.Equal(o, out16) || !slices.Equal(gr, grad16) {
		t.Fatal("the 16 px graph computes differently when sharing buffers")
	}
	if ps.ArenaBytes() != alone.ArenaBytes() {
		t.Fatalf("two graphs hold %d buffer bytes, the larger alone %d", ps.ArenaBytes(), alone.ArenaBytes())
	}
}

// TestBuildOnce: a Builder builds one graph; adding layers or building again
// afterwards is an error.
func TestBuildOnce(t *testing.T) {
	b := NewBuilder(NewParamSet(1), []int{1, 3, 4, 4})
	y := b.Conv("c", b.Input(), ConvSpec{Out: 2, K: 1}, false)
	if _, err := b.Build(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(); err == nil {
		t.Fatal("second Build succeeded")
	}
	b.Conv("d", y, ConvSpec{Out: 2, K: 1}, false)
	if b.Err() == nil || !strings.Contains(b.Err().Error(), "after Build") {
		t.Fatalf("layer after Build: error %v", b.Err())
	}
}

// TestBLASCore logs the sgemm kernels in use and checks that SetBLASCore
// switches them (openblas build) or refuses (pure Go), then restores them.
func TestBLASCore(t *testing.T) {
	prev := BLASCore()
	if prev == "" {
		t.Fatal("no BLAS core name")
	}
	t.Logf("%s sgemm, core %s", BLASName, prev)
	if err := SetBLASCore("NoSuchCore"); err == nil {
		t.Fatal("unknown core accepted")
	}
	if BLASName != "openblas" {
		if err := SetBLASCore("Haswell"); err == nil {
			t.Fatal("pure-Go build accepted a BLAS core")
		}
		return
	}
	if err := SetBLASCore("Haswell"); err != nil {
		t.Skipf("cannot switch here: %v", err)
	}
	if BLASCore() != "Haswell" {
		t.Fatalf("core %s after SetBLASCore(Haswell)", BLASCore())
	}
	if err := SetBLASCore(prev); err != nil {
		t.Fatalf("restoring %s: %v", prev, err)
	}
}

// TestFusedConvBNInference: Forward(false) folds each ConvBNAct's BatchNorm
// into its convolution with the activation in the same pass. The result
// matches the float64 definition (conv, then BN with running statistics,
// then act) within 1e-5 of the largest output, for each activation and for
// shapes that take every kernel path (3x3, 1x1, depthwise, stride 2); the
// skipped pre-BN output name+".conv" is still computed when asked for; and a
// training forward afterwards is unaffected.
func TestFusedConvBNInference(t *testing.T) {
	const tol = 1e-5
	cases := []struct {
		name string
		c    int
		spec ConvSpec
		act  Act
	}{
		{"3x3 leaky", 16, ConvSpec{Out: 32, K: 3, Pad: 1}, ActLeaky},
		{"1x1 relu", 20, ConvSpec{Out: 24, K: 1}, ActReLU},
		{"depthwise s2 relu", 16, ConvSpec{Out: 16, K: 3, Stride: 2, Pad: 1, Groups: 16}, ActReLU},
		{"3x3 s2 none", 8, ConvSpec{Out: 12, K: 3, Stride: 2, Pad: 1}, ActNone},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := NewParamSet(2)
			b := NewBuilder(ps, []int{3, tc.c, 9, 10})
			y := b.ConvBNAct("l", b.Input(), tc.spec, tc.act)
			g, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			copy(g.Input(), randSlice(rng, len(g.Input())))
			mean, vr := ps.Get("l.bn.mean").Data, ps.Get("l.bn.var").Data
			gamma, beta := ps.Get("l.bn.scale").Data, ps.Get("l.bn.bias").Data
			for c := range mean {
				mean[c], vr[c] = rng.Float32()-0.5, 0.5+rng.Float32()
				gamma[c], beta[c] = 0.5+rng.Float32(), rng.Float32()-0.5
			}
			if err := g.Forward(false); err != nil {
				t.Fatal(err)
			}
			w := ps.Get("l.weight").Data
			stride := max(tc.spec.Stride, 1)
			groups := max(tc.spec.Groups, 1)
			geom := newConvGeom(3, tc.c, 9, 10, tc.spec.Out, tc.spec.K, stride, tc.spec.Pad, groups)
			conv := naiveConv(&geom, g.Input(), w, nil)
			want := make([]float64, len(conv))
			ohw := geom.OH * geom.OW
			for i, z := range conv {
				c := i / ohw % tc.spec.Out
				v := float64(gamma[c])*(z-float64(mean[c]))/math.Sqrt(float64(vr[c])+1e-5) + float64(beta[c])
				switch tc.act {
				case ActReLU:
					v = math.Max(v, 0)
				case ActLeaky:
					v = math.Max(v, 0.1*v)
				}
				want[i] = v
			}
			got, _ := g.Tensor(y.Name())
			if e := maxRelErr(got, want); e > tol {
				t.Errorf("fused output: max rel err %.3g > %g", e, tol)
			}
			pre, _ := g.Tensor("l.conv")
			if e := maxRelErr(pre, conv); e > tol {
				t.Errorf("l.conv on demand: max rel err %.3g > %g", e, tol)
			}
			if err := g.Forward(true); err != nil {
				t.Fatal(err)
			}
			pre, _ = g.Tensor("l.conv")
			if e := maxRelErr(pre, conv); e > tol {
				t.Errorf("l.conv after a training forward: max rel err %.3g > %g", e, tol)
			}
		})
	}
}

// TestReuseBuffers: an inference graph whose layers share buffers computes
// the same bits as one with a buffer per layer (ResNet34 + YOLOv3 head at
// 64 px: residual adds, a max pool, concatenations, upsampling, fused
// ConvBNAct), in inference and training-mode forwards, needs less buffer
// memory, and reads back only the kept tensors (a kept fused pre-BN output
// is still computed on demand from its live input).
func TestReuseBuffers(t *testing.T) {
	build := func(reuse bool) (*Graph, *ParamSet, []*Tensor) {
		ps := NewParamSet(9)
		b := NewBuilder(ps, []int{2, 3, 64, 64})
		outs := benchHead(b, benchResNet34(b, b.Input()), 3)
		if reuse {
			b.ReuseBuffers(outs[0].Name(), outs[1].Name(), outs[2].Name(), "l2.1", "head.1.c1.conv")
		}
		g, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		copy(g.Input(), randSlice(rand.New(rand.NewPCG(1, 9)), len(g.Input())))
		return g, ps, outs
	}
	g0, ps0, outs := build(false)
	g1, ps1, _ := build(true)
	for _, train := range []bool{false, true, false} {
		if err := g0.Forward(train); err != nil {
			t.Fatal(err)
		}
		if err := g1.Forward(train); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{outs[0].Name(), outs[1].Name(), outs[2].Name(), "l2.1", "head.1.c1.conv"} {
			a, _ := g0.Tensor(name)
			b, _ := g1.Tensor(name)
			if !slices.Equal(a, b) {
				t.Fatalf("train=%v: %s differs with shared buffers", train, name)
			}
		}
		if v, _ := g1.Tensor("l3.0.c1"); v != nil {
			t.Fatal("a tensor not kept is readable")
		}
	}
	// (Buffers are bound on first use, those of inference image groups included.)
	if ps1.ArenaBytes() >= ps0.ArenaBytes()/2 {
		t.Errorf("shared buffers hold %d bytes, one per layer %d", ps1.ArenaBytes(), ps0.ArenaBytes())
	}
	b := NewBuilder(NewParamSet(1), []int{1, 3, 8, 8})
	b.ConvBNAct("c", b.Input(), ConvSpec{Out: 4, K: 3, Pad: 1}, ActReLU)
	b.ReuseBuffers("nope")
	if _, err := b.Build(); err == nil {
		t.Fatal("ReuseBuffers accepted a name that does not exist")
	}
}

// TestMaxPoolKernel compares maxPoolForward with a direct window scan over
// many geometries and inputs full of ties, signed zeros and some NaNs: the
// output is the window's maximum (NaN when the window holds one, +0 over
// -0), the arg-max the first window element (row by row) equal to it, and
// the inference form (no arg-maxes) writes the same bits.
func TestMaxPoolKernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	nan := float32(math.NaN())
	negZero := float32(math.Copysign(0, -1))
	for k := 1; k <= 5; k++ {
		for s := 1; s <= 3; s++ {
			for p := 0; 2*p <= k; p++ {
				for _, hw := range [][2]int{{1, 1}, {2, 3}, {5, 4}, {7, 9}, {8, 8}} {
					h, w := hw[0], hw[1]
					if h+2*p < k || w+2*p < k {
						continue
					}
					g := newPoolGeom(2, 3, h, w, k, s, p)
					x := make([]float32, g.N*g.C*h*w)
					for i := range x {
						switch r := rng.IntN(20); {
						case r == 0:
							x[i] = nan
						case r < 4:
							x[i] = negZero
						default:
							x[i] = float32(rng.IntN(7) - 3) // ties
						}
					}
					y := make([]float32, g.N*g.C*g.OH*g.OW)
					arg := make([]int32, len(y))
					maxPoolForward(numWorkers(), &g, x, y, arg)
					yi := make([]float32, len(y))
					maxPoolForward(numWorkers(), &g, x, yi, nil)
					for pl := 0; pl < g.N*g.C; pl++ {
						xp := x[pl*h*w : (pl+1)*h*w]
						for oh := 0; oh < g.OH; oh++ {
							for ow := 0; ow < g.OW; ow++ {
								var win []int
								for ki := 0; ki < k; ki++ {
									for kj := 0; kj < k; kj++ {
										ih, iw := oh*s-p+ki, ow*s-p+kj
										if ih >= 0 && ih < h && iw >= 0 && iw < w {
											win = append(win, ih*w+iw)
										}
									}
								}
								want, wantArg := xp[win[0]], win[0]
								for _, i := range win[1:] {
									switch v := xp[i]; {
									case want != want:
									case v != v || v > want || v == 0 && want == 0 && !math.Signbit(float64(v)) && math.Signbit(float64(want)):
										want, wantArg = v, i
									}
								}
								for _, i := range win { // the first equal (or NaN) element takes the gradient
									if v := xp[i]; v == want || v != v && want != want {
										wantArg = i
										break
									}
								}
								o := pl*g.OH*g.OW + oh*g.OW + ow
								if math.Float32bits(y[o]) != math.Float32bits(want) || math.Float32bits(yi[o]) != math.Float32bits(want) || int(arg[o]) != wantArg {
									t.Fatalf("k%d s%d p%d %dx%d plane %d out (%d,%d): got %v / %v (inference) arg %d, want %v arg %d",
										k, s, p, h, w, pl, oh, ow, y[o], yi[o], arg[o], want, wantArg)
								}
							}
						}
					}
				}
			}
		}
	}
}
