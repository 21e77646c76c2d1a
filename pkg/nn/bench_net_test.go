package nn

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The two reference detectors of ../shared/bench/torch_reference.py, built on
// this package for benchmarking the layers at full size (pkg/yolo builds the
// real ones). 20 classes.

func benchMobileNet(b *Builder, x *Tensor) []*Tensor {
	y := b.ConvBNAct("stem", x, ConvSpec{Out: 32, K: 3, Stride: 2, Pad: 1}, ActReLU)
	cin := 32
	dw := func(name string, cout, s int) {
		y = b.ConvBNAct(name+".dw", y, ConvSpec{Out: cin, K: 3, Stride: s, Pad: 1, Groups: cin}, ActReLU)
		y = b.ConvBNAct(name+".pw", y, ConvSpec{Out: cout, K: 1}, ActReLU)
		cin = cout
	}
	dw("b1", 64, 1)
	dw("b2", 128, 2)
	dw("b3", 128, 1)
	dw("b4", 256, 2)
	dw("b5", 256, 1)
	f8 := y
	dw("b6", 512, 2)
	for i := 0; i < 5; i++ {
		dw(fmt.Sprintf("b%d", 7+i), 512, 1)
	}
	f16 := y
	dw("b12", 1024, 2)
	dw("b13", 1024, 1)
	return []*Tensor{f8, f16, y}
}

func benchResNet34(b *Builder, x *Tensor) []*Tensor {
	y := b.ConvBNAct("stem", x, ConvSpec{Out: 64, K: 7, Stride: 2, Pad: 3}, ActReLU)
	y = b.MaxPool("pool", y, 3, 2, 1)
	cin := 64
	var feats []*Tensor
	for si, st := range []struct{ c, n, s int }{{64, 3, 1}, {128, 4, 2}, {256, 6, 2}, {512, 3, 2}} {
		for i := 0; i < st.n; i++ {
			s := 1
			if i == 0 {
				s = st.s
			}
			name := fmt.Sprintf("l%d.%d", si+1, i)
			c1 := b.ConvBNAct(name+".c1", y, ConvSpec{Out: st.c, K: 3, Stride: s, Pad: 1}, ActReLU)
			c2 := b.ConvBNAct(name+".c2", c1, ConvSpec{Out: st.c, K: 3, Pad: 1}, ActNone)
			short := y
			if s != 1 || cin != st.c {
				short = b.ConvBNAct(name+".short", y, ConvSpec{Out: st.c, K: 1, Stride: s}, ActNone)
			}
			y = b.AddAct(name, c2, short, ActReLU)
			cin = st.c
		}
		if si > 0 {
			feats = append(feats, y)
		}
	}
	return feats
}

func benchHead(b *Builder, feats []*Tensor, classes int) []*Tensor {
	var outs []*Tensor
	var route *Tensor
	for i := 0; i < 3; i++ {
		f := feats[2-i]
		if route != nil {
			f = b.Concat(fmt.Sprintf("head.%d.cat", i), route, f)
		}
		ch := 512 >> i
		p := fmt.Sprintf("head.%d", i)
		y := b.ConvBNAct(p+".c0", f, ConvSpec{Out: ch, K: 1}, ActLeaky)
		y = b.ConvBNAct(p+".c1", y, ConvSpec{Out: 2 * ch, K: 3, Pad: 1}, ActLeaky)
		y = b.ConvBNAct(p+".c2", y, ConvSpec{Out: ch, K: 1}, ActLeaky)
		y = b.ConvBNAct(p+".c3", y, ConvSpec{Out: 2 * ch, K: 3, Pad: 1}, ActLeaky)
		r := b.ConvBNAct(p+".route", y, ConvSpec{Out: ch, K: 1}, ActLeaky)
		tip := b.ConvBNAct(p+".tip", r, ConvSpec{Out: 2 * ch, K: 3, Pad: 1}, ActLeaky)
		outs = append(outs, b.Conv(p+".out", tip, ConvSpec{Out: 3 * (5 + classes), K: 1}, true))
		if i < 2 {
			route = b.Upsample2x(p+".up", b.ConvBNAct(p+".lat", r, ConvSpec{Out: 256 >> i, K: 1}, ActLeaky))
		}
	}
	return outs
}

func peakRSSMB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// detectors caches the benchmark graphs: the testing package calls a
// benchmark function more than once (b.N = 1, then more), and building a
// second full-size graph would double the peak memory reported.
var detectors = map[string]struct {
	g     *Graph
	flops int64
}{}

var benchSGD = map[*Graph]*SGD{}

func detector(b *testing.B, backbone string, train bool) (*Graph, int64) {
	return detectorBatch(b, backbone, train, 8)
}

func detectorBatch(b *testing.B, backbone string, train bool, batch int) (*Graph, int64) {
	key := fmt.Sprint(backbone, train, batch)
	if d, ok := detectors[key]; ok {
		return d.g, d.flops
	}
	g, flops := buildDetector(b, backbone, train, batch)
	detectors[key] = struct {
		g     *Graph
		flops int64
	}{g, flops}
	return g, flops
}

func buildDetector(b *testing.B, backbone string, train bool, batch int) (*Graph, int64) {
	return benchGraphMulti(b, []int{batch, 3, 320, 320}, func(bd *Builder, x *Tensor) []*Tensor {
		var feats []*Tensor
		if backbone == "mobilenet" {
			feats = benchMobileNet(bd, x)
		} else {
			feats = benchResNet34(bd, x)
		}
		return benchHead(bd, feats, 20)
	}, train)
}

func benchGraphMulti(b *testing.B, shape []int, layers func(bd *Builder, x *Tensor) []*Tensor, train bool) (*Graph, int64) {
	ps := NewParamSet(1)
	bd := NewBuilder(ps, shape)
	outs := layers(bd, bd.Input())
	if train {
		// mean squared error against zero targets, as torch_reference.py's MSE
		bd.Loss("mse", outs, func(ins, grads [][]float32) float64 {
			var s float64
			for k, in := range ins {
				for i, v := range in {
					s += float64(v) * float64(v) / float64(len(in))
					grads[k][i] = 2 * v / float32(len(in))
				}
			}
			return s
		})
	}
	g, err := bd.Build()
	if err != nil {
		b.Fatal(err)
	}
	var flops int64
	for _, t := range g.Names() {
		flops += t.FLOPs
	}
	return g, flops
}

// BenchmarkMobileNetYOLOv3Train320: forward + backward + SGD of full-width
// MobileNetV1-YOLOv3 (20 classes) at 320 px, batch 8. Compare with
// /usr/bin/python3 ../shared/bench/torch_reference.py --model mobilenet_v1 --mode train
func BenchmarkMobileNetYOLOv3Train320(b *testing.B) {
	g, flops := detector(b, "mobilenet", true)
	sgd := benchSGD[g]
	if sgd == nil {
		sgd = NewSGD(g.Params(), 0.9, 5e-4)
		benchSGD[g] = sgd
	}
	for i := 0; i < 1; i++ {
		if _, err := g.Step(); err != nil {
			b.Fatal(err)
		}
		sgd.Step(1e-4)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := g.Step(); err != nil {
			b.Fatal(err)
		}
		sgd.Step(1e-4)
	}
	s := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(8/s, "img/s")
	b.ReportMetric(3*float64(flops)/s/1e9, "GFLOP/s")
	b.ReportMetric(peakRSSMB(), "peakMB")
}

// BenchmarkResNet34YOLOv3Infer320: inference of ResNet34-YOLOv3 at 320 px, batch 8.
func BenchmarkResNet34YOLOv3Infer320(b *testing.B) {
	g, flops := detector(b, "resnet34", false)
	if err := g.Forward(false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := g.Forward(false); err != nil {
			b.Fatal(err)
		}
	}
	s := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(8/s, "img/s")
	b.ReportMetric(float64(flops)/s/1e9, "GFLOP/s")
	b.ReportMetric(peakRSSMB(), "peakMB")
}

// BenchmarkResNet34YOLOv3Infer320Batch1: the same at batch 1 (one image, as
// the detect tool runs), where convolutions split rows of the image into bands.
func BenchmarkResNet34YOLOv3Infer320Batch1(b *testing.B) {
	g, flops := detectorBatch(b, "resnet34", false, 1)
	if err := g.Forward(false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := g.Forward(false); err != nil {
			b.Fatal(err)
		}
	}
	s := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(1/s, "img/s")
	b.ReportMetric(float64(flops)/s/1e9, "GFLOP/s")
}

// TestReferenceParamCounts: the benchmark copies of the two reference
// detectors have exactly the trainable parameter counts (and BatchNorm
// running-statistic sizes) of ../shared/bench/torch_reference.py with 20
// classes, which checks this package's parameter conventions.
func TestReferenceParamCounts(t *testing.T) {
	cases := []struct {
		name              string
		backbone          func(b *Builder, x *Tensor) []*Tensor
		trainable, states int
	}{
		{"mobilenet_v1", benchMobileNet, 24248097, 38784},
		{"resnet34", benchResNet34, 41981729, 33920},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := NewParamSet(1)
			b := NewBuilder(ps, []int{1, 3, 64, 64})
			benchHead(b, tc.backbone(b, b.Input()), 20)
			if _, err := b.Build(); err != nil {
				t.Fatal(err)
			}
			states := 0
			for _, p := range ps.Params() {
				if !p.Trainable {
					states += len(p.Data)
				}
			}
			if ps.NumTrainable() != tc.trainable || states != tc.states {
				t.Fatalf("trainable %d, state %d; torch has %d, %d", ps.NumTrainable(), states, tc.trainable, tc.states)
			}
		})
	}
}
