package yolo

import (
	"math"
	"os"
	"slices"
	"testing"

	"yolodistill/pkg/nn"
)

// buildAt builds spec on a fresh or given ParamSet for [n, 3, h, w] inputs.
func buildAt(t *testing.T, spec *Spec, ps *nn.ParamSet, n, h, w int) (*Built, *nn.Graph) {
	t.Helper()
	b := nn.NewBuilder(ps, []int{n, 3, h, w})
	built, err := Build(spec, b)
	if err != nil {
		t.Fatal(err)
	}
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return built, g
}

// TestBuildMatchesSpec: the nn graph built from a Spec has, for every layer
// name and alias, the shape Infer gives (with the batch in front); its
// trainable parameters number Inference.Params and its non-trainable ones
// (BN running stats) Inference.BNStats; its conv FLOPs are N x Inference.FLOPs.
// The full-width networks are built at 64x96 px (parameters do not depend on
// the size), so their parameter counts are torch_reference.py's.
func TestBuildMatchesSpec(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		params int64 // 0: only compare with Infer
	}{
		{"mobilenet_x0.25", Config{Backbone: BackboneMobileNetV1, BackboneWidth: 0.25, HeadWidth: 0.25, NumClasses: 20}, 1556721},
		{"resnet18_x0.25_paddle", Config{Backbone: BackboneResNet18, BackboneWidth: 0.25, HeadWidth: 0.25, NumClasses: 3, Layout: LayoutPaddle}, 0},
		{"mobilenet_full", Config{Backbone: BackboneMobileNetV1, NumClasses: 20}, 24248097},
		{"resnet34_full", Config{Backbone: BackboneResNet34, NumClasses: 20}, 41981729},
	}
	const n, h, w = 2, 64, 96
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ps := nn.NewParamSet(1)
			built, g := buildAt(t, spec, ps, n, h, w)
			inf := built.Info
			byName := map[string]nn.TensorInfo{}
			var flops int64
			for _, ti := range g.Names() {
				byName[ti.Name] = ti
				flops += ti.FLOPs
			}
			check := func(name string, want Shape) {
				ti, ok := byName[name]
				if !ok {
					t.Errorf("%s: not in the graph", name)
					return
				}
				if !slices.Equal(ti.Shape, []int{n, want.C, want.H, want.W}) {
					t.Errorf("%s: graph shape %v, spec %s", name, ti.Shape, want)
				}
			}
			for _, li := range inf.Layers {
				check(li.Name, li.Shape)
			}
			for _, a := range spec.Aliases {
				li, _ := inf.Lookup(a.Name)
				check(a.Name, li.Shape)
			}
			if flops != n*inf.FLOPs {
				t.Errorf("graph FLOPs %d, spec %d x %d", flops, n, inf.FLOPs)
			}
			var trainable, state int64
			for _, p := range ps.Params() {
				if p.Trainable {
					trainable += int64(len(p.Data))
				} else {
					state += int64(len(p.Data))
				}
			}
			if trainable != inf.Params || state != inf.BNStats {
				t.Errorf("graph params %d + %d state, spec %d + %d", trainable, state, inf.Params, inf.BNStats)
			}
			if tt.params != 0 && trainable != tt.params {
				t.Errorf("graph params %d, torch_reference %d", trainable, tt.params)
			}
			if len(built.Outputs) != 3 || built.Outputs[0].Name() != "head.0.out" {
				t.Errorf("outputs %v", built.Outputs)
			}
		})
	}
}

// TestBuildForwardMultiScale runs a small member forward at two input sizes
// on one ParamSet: the second graph creates no parameter, outputs have the
// Spec's shapes and finite values.
func TestBuildForwardMultiScale(t *testing.T) {
	spec, err := New(Config{Backbone: BackboneResNet18, BackboneWidth: 0.125, HeadWidth: 0.125, NumClasses: 2})
	if err != nil {
		t.Fatal(err)
	}
	ps := nn.NewParamSet(7)
	var nparams int
	for i, size := range []int{64, 96} {
		built, g := buildAt(t, spec, ps, 2, size, size)
		if i == 0 {
			nparams = len(ps.Params())
		} else if len(ps.Params()) != nparams {
			t.Errorf("size %d: %d params, first graph made %d", size, len(ps.Params()), nparams)
		}
		x := g.Input()
		for j := range x {
			x[j] = float32(math.Sin(float64(j)))
		}
		if err := g.Forward(false); err != nil {
			t.Fatal(err)
		}
		for k, o := range spec.Outputs {
			vals, shape := g.Tensor(o)
			want := []int{2, 3 * 7, size / spec.Strides[k], size / spec.Strides[k]}
			if !slices.Equal(shape, want) || len(vals) != 2*want[1]*want[2]*want[3] {
				t.Fatalf("%s: shape %v, want %v", o, shape, want)
			}
			for _, v := range vals {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%s: non-finite value", o)
				}
			}
			if built.Outputs[k].Name() != o {
				t.Errorf("output %d is %s", k, built.Outputs[k].Name())
			}
		}
	}
}

func TestBuildErrors(t *testing.T) {
	spec, err := New(Config{Backbone: BackboneMobileNetV1, BackboneWidth: 0.25, HeadWidth: 0.25, NumClasses: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		shape []int
	}{
		{"channels", []int{1, 1, 64, 64}},
		{"size", []int{1, 3, 48, 48}},
		{"rank", []int{3, 64, 64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Build(spec, nn.NewBuilder(nn.NewParamSet(1), tt.shape)); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestFullWidthForward608 runs the two reference detectors forward at 608 px,
// batch 1 (about 43 and 88 GFLOP). It takes tens of seconds on two cores and
// runs only with YOLODISTILL_HEAVY=1.
func TestFullWidthForward608(t *testing.T) {
	if os.Getenv("YOLODISTILL_HEAVY") != "1" {
		t.Skip("set YOLODISTILL_HEAVY=1 to run the full-width forward passes at 608 px")
	}
	for _, bb := range []string{BackboneMobileNetV1, BackboneResNet34} {
		spec, err := New(Config{Backbone: bb, NumClasses: 20})
		if err != nil {
			t.Fatal(err)
		}
		_, g := buildAt(t, spec, nn.NewParamSet(1), 1, 608, 608)
		if err := g.Forward(false); err != nil {
			t.Fatal(err)
		}
		for k, o := range spec.Outputs {
			vals, shape := g.Tensor(o)
			s := 608 / spec.Strides[k]
			if !slices.Equal(shape, []int{1, 75, s, s}) {
				t.Errorf("%s %s: shape %v", bb, o, shape)
			}
			for _, v := range vals {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%s %s: non-finite value", bb, o)
				}
			}
		}
	}
}
