package nn

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// projLoss attaches L = sum_i r_i * t_i (r fixed random) to t; it returns r so
// that the test can recompute L in float64 from a forward pass.
func projLoss(b *Builder, name string, t *Tensor, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 99))
	r := make([]float32, prod(t.shape))
	for i := range r {
		r[i] = float32(rng.NormFloat64())
	}
	b.Loss(name, []*Tensor{t}, func(ins, grads [][]float32) float64 {
		var s float64
		for i, v := range ins[0] {
			s += float64(r[i]) * float64(v)
			grads[0][i] = r[i]
		}
		return s
	})
	return r
}

type gradCase struct {
	name  string
	shape []int // input [N, C, H, W]
	// build adds layers after the "pre" 1x1 conv and returns the tensors that
	// get a projection loss each.
	build func(b *Builder, x *Tensor) []*Tensor
}

func conv(spec ConvSpec, bias bool) func(b *Builder, x *Tensor) []*Tensor {
	return func(b *Builder, x *Tensor) []*Tensor { return []*Tensor{b.Conv("op", x, spec, bias)} }
}

func gradCases() []gradCase {
	s := []int{2, 4, 7, 6}
	return []gradCase{
		{"conv3x3 s1 p1 bias", s, conv(ConvSpec{Out: 5, K: 3, Pad: 1}, true)},
		{"conv3x3 s1 p1", s, conv(ConvSpec{Out: 5, K: 3, Pad: 1}, false)},
		{"conv1x1 pointwise bias", s, conv(ConvSpec{Out: 3, K: 1}, true)},
		{"conv1x1 pointwise", s, conv(ConvSpec{Out: 6, K: 1}, false)},
		{"conv1x1 s2 (shortcut)", s, conv(ConvSpec{Out: 3, K: 1, Stride: 2}, false)},
		{"conv3x3 s2 p1", s, conv(ConvSpec{Out: 5, K: 3, Stride: 2, Pad: 1}, true)},
		{"conv5x5 s2 p2 stem-like", s, conv(ConvSpec{Out: 3, K: 5, Stride: 2, Pad: 2}, false)},
		{"conv2x2 s1 p0 even kernel", s, conv(ConvSpec{Out: 3, K: 2}, true)},
		{"conv3x3 s3 p0", []int{2, 4, 8, 7}, conv(ConvSpec{Out: 2, K: 3, Stride: 3}, false)},
		{"conv3x3 grouped 2", s, conv(ConvSpec{Out: 6, K: 3, Pad: 1, Groups: 2}, true)},
		{"conv1x1 grouped 2", s, conv(ConvSpec{Out: 4, K: 1, Groups: 2}, false)},
		{"depthwise3x3 s1 p1 bias", s, conv(ConvSpec{Out: 4, K: 3, Pad: 1, Groups: 4}, true)},
		{"depthwise3x3 s2 p1", s, conv(ConvSpec{Out: 4, K: 3, Stride: 2, Pad: 1, Groups: 4}, false)},
		{"depthwise3x3 s2 p1 odd", []int{2, 4, 7, 5}, conv(ConvSpec{Out: 4, K: 3, Stride: 2, Pad: 1, Groups: 4}, false)},
		{"depthwise5x5 s2 p2 bias", s, conv(ConvSpec{Out: 4, K: 5, Stride: 2, Pad: 2, Groups: 4}, true)},
		{"depthwise3x3 s1 p0", s, conv(ConvSpec{Out: 4, K: 3, Groups: 4}, false)},
		{"convbn none", s, func(b *Builder, x *Tensor) []*Tensor {
			return []*Tensor{b.ConvBNAct("op", x, ConvSpec{Out: 5, K: 3, Pad: 1}, ActNone)}
		}},
		{"convbn relu", s, func(b *Builder, x *Tensor) []*Tensor {
			return []*Tensor{b.ConvBNAct("op", x, ConvSpec{Out: 5, K: 3, Pad: 1}, ActReLU)}
		}},
		{"convbn leaky", s, func(b *Builder, x *Tensor) []*Tensor {
			return []*Tensor{b.ConvBNAct("op", x, ConvSpec{Out: 5, K: 3, Stride: 2, Pad: 1}, ActLeaky)}
		}},
		{"depthwise bn relu", s, func(b *Builder, x *Tensor) []*Tensor {
			return []*Tensor{b.ConvBNAct("op", x, ConvSpec{Out: 4, K: 3, Pad: 1, Groups: 4}, ActReLU)}
		}},
		{"act leaky", s, func(b *Builder, x *Tensor) []*Tensor { return []*Tensor{b.Act("op", x, ActLeaky)} }},
		{"act relu", s, func(b *Builder, x *Tensor) []*Tensor { return []*Tensor{b.Act("op", x, ActReLU)} }},
		{"maxpool3x3 s2 p1", s, func(b *Builder, x *Tensor) []*Tensor { return []*Tensor{b.MaxPool("op", x, 3, 2, 1)} }},
		{"maxpool2x2 s2", s, func(b *Builder, x *Tensor) []*Tensor { return []*Tensor{b.MaxPool("op", x, 2, 2, 0)} }},
		{"upsample2x", s, func(b *Builder, x *Tensor) []*Tensor { return []*Tensor{b.Upsample2x("op", x)} }},
		{"concat", s, func(b *Builder, x *Tensor) []*Tensor {
			a := b.Conv("a", x, ConvSpec{Out: 2, K: 1}, true)
			c := b.Conv("c", x, ConvSpec{Out: 3, K: 3, Pad: 1}, false)
			return []*Tensor{b.Concat("op", a, x, c)}
		}},
		{"add relu", s, func(b *Builder, x *Tensor) []*Tensor {
			a := b.Conv("a", x, ConvSpec{Out: 4, K: 3, Pad: 1}, true)
			return []*Tensor{b.AddAct("op", a, x, ActReLU)}
		}},
		{"add none", s, func(b *Builder, x *Tensor) []*Tensor {
			a := b.Conv("a", x, ConvSpec{Out: 4, K: 1}, false)
			return []*Tensor{b.AddAct("op", x, a, ActNone)}
		}},
		{"losses on an intermediate tensor and on its consumer", s, func(b *Builder, x *Tensor) []*Tensor {
			f := b.ConvBNAct("feat", x, ConvSpec{Out: 4, K: 3, Pad: 1}, ActLeaky) // feature-distillation style
			return []*Tensor{f, b.Conv("head", f, ConvSpec{Out: 3, K: 1}, true)}
		}},
		{"small yolo-like graph, fan-out, two losses", []int{2, 3, 8, 8}, func(b *Builder, x *Tensor) []*Tensor {
			s1 := b.ConvBNAct("s1", x, ConvSpec{Out: 4, K: 3, Stride: 2, Pad: 1}, ActReLU)
			s2 := b.ConvBNAct("s2.dw", s1, ConvSpec{Out: 4, K: 3, Stride: 2, Pad: 1, Groups: 4}, ActReLU)
			s2 = b.ConvBNAct("s2.pw", s2, ConvSpec{Out: 6, K: 1}, ActReLU)
			route := b.ConvBNAct("route", s2, ConvSpec{Out: 3, K: 1}, ActLeaky) // feeds out0 and the upsample path
			out0 := b.Conv("out0", route, ConvSpec{Out: 5, K: 1}, true)
			up := b.Upsample2x("up", b.ConvBNAct("lat", route, ConvSpec{Out: 2, K: 1}, ActLeaky))
			cat := b.Concat("cat", up, s1) // s1 also feeds s2: fan-out
			res := b.ConvBNAct("res", cat, ConvSpec{Out: 6, K: 3, Pad: 1}, ActNone)
			sum := b.AddAct("sum", res, cat, ActReLU)
			p := b.MaxPool("pool", sum, 2, 1, 0)
			out1 := b.Conv("out1", p, ConvSpec{Out: 5, K: 1}, true)
			return []*Tensor{out0, out1}
		}},
	}
}

func TestGradCheck(t *testing.T) {
	const (
		eps    = 1e-2 // finite-difference step on float32 parameters (eps/4, eps/20 near kinks)
		relTol = 5e-3 // |fd - analytic| <= absTol + relTol*max(|fd|, |analytic|) + noiseK*noise/e
		absTol = 1e-3
		probes = 12 // elements checked per parameter
		// noise is the float32 rounding noise of the loss measured at each
		// probe (see noiseAt); a central difference with step e carries up to
		// noise/e of it. At eps it is ~1e-5/1e-2, inside absTol; near a kink
		// the step falls to eps/20 and the noise term, 20x larger, depends
		// on the BLAS kernels' rounding (up to 80% of the other terms on
		// SkylakeX, 10% on Haswell, on the same probe). noiseK covers the
		// few samples noiseAt takes. A wrong gradient still fails: the term
		// is what rounding alone can move a difference quotient by.
		noiseK = 4
	)
	for ci, tc := range gradCases() {
		t.Run(tc.name, func(t *testing.T) {
			ps := NewParamSet(uint64(ci) + 1)
			b := NewBuilder(ps, tc.shape)
			x := b.Conv("pre", b.Input(), ConvSpec{Out: tc.shape[1], K: 1}, true)
			outs := tc.build(b, x)
			var rs [][]float32
			for i, o := range outs {
				rs = append(rs, projLoss(b, fmt.Sprintf("loss%d", i), o, uint64(i)+7))
			}
			g, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(ci), 3))
			for i := range g.Input() {
				g.Input()[i] = float32(rng.NormFloat64())
			}
			// pre's bias makes the BN-free paths non-trivial around 0
			for _, p := range ps.Params() {
				if p.Trainable && p.Name != "pre.weight" {
					for i := range p.Data {
						p.Data[i] += 0.3 * float32(rng.NormFloat64())
					}
				}
			}
			losses, err := g.Step()
			if err != nil {
				t.Fatal(err)
			}
			// kinks: the sign pattern of every ReLU/leaky output and the arg-max
			// of every max-pool window; a probe whose +-eps evaluations change
			// them straddles a kink.
			var kinks []string
			for _, info := range g.Names() {
				if strings.Contains(info.Kind, "relu") || strings.Contains(info.Kind, "leaky") {
					kinks = append(kinks, info.Name)
				}
			}
			var pools [][]int32
			for _, t := range b.tensors {
				if t.argmax != nil {
					pools = append(pools, t.argmax)
				}
			}
			signs := func() uint64 {
				h := fnv.New64a()
				for _, a := range pools {
					for _, v := range a {
						h.Write([]byte{byte(v), byte(v >> 8), byte(v >> 16)})
					}
				}
				for _, n := range kinks {
					v, _ := g.Tensor(n)
					for _, f := range v {
						if f > 0 {
							h.Write([]byte{1})
						} else {
							h.Write([]byte{0})
						}
					}
				}
				return h.Sum64()
			}
			var sig uint64
			lossAt := func() float64 {
				if err := g.Forward(true); err != nil {
					t.Fatal(err)
				}
				sig = signs()
				var s float64
				for i, o := range outs {
					v, _ := g.Tensor(o.Name())
					for j, r := range rs[i] {
						s += float64(r) * float64(v[j])
					}
				}
				return s
			}
			var want float64
			for _, l := range losses {
				want += l
			}
			if got := lossAt(); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
				t.Fatalf("Forward loss %g != Step loss %g", got, want)
			}
			l0 := lossAt()
			base := sig
			checked, skipped := 0, 0
			var worst float64
			for _, p := range ps.Params() {
				if !p.Trainable {
					continue
				}
				an := append([]float32(nil), p.Grad...)
				for k := 0; k < probes && k < len(p.Data); k++ {
					j := rng.IntN(len(p.Data))
					if k < len(p.Data) && len(p.Data) <= probes {
						j = k
					}
					// fdAt returns the central, forward and backward differences
					// with step e and whether a ReLU/leaky output changed side.
					fdAt := func(e float32) (c, f, bk float64, kink bool) {
						old := p.Data[j]
						p.Data[j] = old + e
						lp := lossAt()
						sp := sig
						p.Data[j] = old - e
						lm := lossAt()
						p.Data[j] = old
						de := float64(e)
						return (lp - lm) / (2 * de), (lp - l0) / de, (l0 - lm) / de, sp != base || sig != base
					}
					// noiseAt returns the largest change of the loss, less the
					// analytic a*dp, when p.Data[j] moves by 1 to 3 ulps either
					// way: the rounding noise each loss evaluation of a
					// difference quotient carries at this probe.
					noiseAt := func(a float64) float64 {
						old := p.Data[j]
						var m float64
						for _, dir := range []float32{float32(math.Inf(1)), float32(math.Inf(-1))} {
							v := old
							for k := 0; k < 3; k++ {
								v = math.Nextafter32(v, dir)
								p.Data[j] = v
								m = math.Max(m, math.Abs(lossAt()-l0-a*float64(v-old)))
							}
						}
						p.Data[j] = old
						return m
					}
					// A step is trusted when no ReLU/leaky output changes side and
					// no max-pool window changes its arg-max; otherwise a smaller
					// step is tried, and the probe is skipped if even that
					// straddles a kink.
					fd, step, ok := 0.0, float32(0), false
					for _, e := range []float32{eps, eps / 4, eps / 20} {
						c, _, _, kink := fdAt(e)
						if !kink {
							fd, step, ok = c, e, true
							break
						}
					}
					// NN_DEBUG_PROBE=name+index (e.g. pre.weight3) logs one probe at several steps.
					if os.Getenv("NN_DEBUG_PROBE") == p.Name+fmt.Sprint(j) {
						for _, e := range []float32{2e-2, 1e-2, 5e-3, 2e-3, 1e-3, 5e-4, 2e-4} {
							c, f, bk, kink := fdAt(e)
							t.Logf("e=%g central %.6f fwd %.6f bwd %.6f kink %v (analytic %.6f)", e, c, f, bk, kink, an[j])
						}
					}
					if !ok {
						skipped++
						continue
					}
					a := float64(an[j])
					noise := noiseAt(a) / float64(step)
					tol := absTol + relTol*math.Max(math.Abs(fd), math.Abs(a)) + noiseK*noise
					worst = math.Max(worst, math.Abs(fd-a)/tol)
					if math.Abs(fd-a) > tol {
						t.Errorf("%s[%d]: analytic %.6g, finite difference %.6g (step %g, rounding noise %.2g)",
							p.Name, j, a, fd, step, noise)
					}
					checked++
				}
			}
			t.Logf("%d probes, %d skipped at kinks, worst |fd - analytic| %.0f%% of its tolerance", checked, skipped, 100*worst)
			if checked == 0 || skipped > checked/4 {
				t.Fatalf("%d probes checked, %d skipped at kinks", checked, skipped)
			}
		})
	}
}
