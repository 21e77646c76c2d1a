package yolo

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"yolodistill/pkg/config"
)

// referenceFile is written by testdata/yolo/gen_reference.py from PyTorch.
const referenceFile = "../../testdata/yolo/reference.json"

type refConv struct {
	Shape  []int `json:"shape"`
	K      int   `json:"k"`
	Stride int   `json:"stride"`
	Pad    int   `json:"pad"`
	Groups int   `json:"groups"`
	BN     bool  `json:"bn"`
	Params int64 `json:"params"`
	FLOPs  int64 `json:"flops"`
}

type refConfig struct {
	Backbone      string           `json:"backbone"`
	BackboneWidth float64          `json:"backbone_width"`
	HeadWidth     float64          `json:"head_width"`
	NumClasses    int              `json:"num_classes"`
	Layout        string           `json:"layout"`
	H             int              `json:"h"`
	W             int              `json:"w"`
	Params        int64            `json:"params"`
	BNStats       int64            `json:"bn_stats"`
	FLOPs         int64            `json:"flops"`
	Named         map[string][]int `json:"named"`
	Convs         []refConv        `json:"convs"`
}

func loadReference(t *testing.T) []refConfig {
	t.Helper()
	b, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Configs []refConfig `json:"configs"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("%s: %v", referenceFile, err)
	}
	if len(ref.Configs) == 0 {
		t.Fatalf("%s: no configs", referenceFile)
	}
	return ref.Configs
}

func shapeOf(s []int) Shape {
	if len(s) != 3 {
		return Shape{-1, -1, -1}
	}
	return Shape{s[0], s[1], s[2]}
}

// TestReferenceNetworks compares every configuration of reference.json with
// the Spec built by New: totals (parameters, BN running stats, FLOPs), every
// named output's shape, and every convolution in forward order (output shape,
// kernel, stride, padding, groups, BN or bias, parameters, FLOPs). Exact.
func TestReferenceNetworks(t *testing.T) {
	for _, rc := range loadReference(t) {
		name := fmt.Sprintf("%s_x%g_head_x%g_c%d_%s_%dx%d", rc.Backbone, rc.BackboneWidth, rc.HeadWidth, rc.NumClasses, rc.Layout, rc.H, rc.W)
		t.Run(name, func(t *testing.T) {
			spec, err := New(Config{Backbone: rc.Backbone, BackboneWidth: rc.BackboneWidth, HeadWidth: rc.HeadWidth,
				NumClasses: rc.NumClasses, Layout: rc.Layout})
			if err != nil {
				t.Fatal(err)
			}
			inf, err := spec.Infer(rc.H, rc.W)
			if err != nil {
				t.Fatal(err)
			}
			if inf.Params != rc.Params || inf.BNStats != rc.BNStats || inf.FLOPs != rc.FLOPs {
				t.Errorf("totals: params %d bn %d flops %d, torch %d %d %d", inf.Params, inf.BNStats, inf.FLOPs, rc.Params, rc.BNStats, rc.FLOPs)
			}
			if len(rc.Named) < 15 {
				t.Fatalf("reference has only %d named outputs", len(rc.Named))
			}
			for n, s := range rc.Named {
				li, ok := inf.Lookup(n)
				if !ok {
					t.Errorf("%s: no such layer or alias", n)
					continue
				}
				if li.Shape != shapeOf(s) {
					t.Errorf("%s: shape %s, torch %v", n, li.Shape, s)
				}
			}
			var convs []LayerInfo
			for _, li := range inf.Layers {
				if li.Kind == ConvBNAct || li.Kind == Conv {
					convs = append(convs, li)
				}
			}
			if len(convs) != len(rc.Convs) {
				t.Fatalf("%d convs, torch %d", len(convs), len(rc.Convs))
			}
			for i, c := range convs {
				r := rc.Convs[i]
				got := refConv{Shape: []int{c.Shape.C, c.Shape.H, c.Shape.W}, K: c.Conv.K, Stride: c.Conv.Stride, Pad: c.Conv.Pad,
					Groups: c.Conv.Groups, BN: c.Kind == ConvBNAct, Params: c.Params, FLOPs: c.FLOPs}
				if fmt.Sprint(got) != fmt.Sprint(r) {
					t.Errorf("conv %d %s: %+v, torch %+v", i, c.Name, got, r)
				}
				if c.Kind == Conv && !c.Bias {
					t.Errorf("conv %d %s: plain conv without bias", i, c.Name)
				}
			}
		})
	}
}

// TestDesignFigures checks the DESIGN.md headline numbers: GFLOPs at 608 and
// the channel plan of the full-width backbones.
func TestDesignFigures(t *testing.T) {
	tests := []struct {
		name     string
		backbone string
		gflops   float64
		c3, c5   int
	}{
		{"mobilenet", BackboneMobileNetV1, 43.4, 256, 1024},
		{"resnet34", BackboneResNet34, 88.4, 128, 512},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{Backbone: tt.backbone, NumClasses: 20})
			if err != nil {
				t.Fatal(err)
			}
			inf, err := s.Infer(608, 608)
			if err != nil {
				t.Fatal(err)
			}
			if g := float64(inf.FLOPs) / 1e9; g < tt.gflops-0.05 || g > tt.gflops+0.05 {
				t.Errorf("%.3f GFLOPs, want %.1f +- 0.05", g, tt.gflops)
			}
			c3, _ := inf.Lookup("backbone.c3")
			c5, _ := inf.Lookup("backbone.c5")
			if c3.Shape != (Shape{tt.c3, 76, 76}) || c5.Shape != (Shape{tt.c5, 19, 19}) {
				t.Errorf("c3 %s c5 %s", c3.Shape, c5.Shape)
			}
		})
	}
}

func TestNewNamesAndStructure(t *testing.T) {
	s, err := New(Config{Backbone: BackboneResNet34, NumClasses: 20})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"backbone.conv1", "backbone.pool1", "backbone.res2a.branch2a", "backbone.res2a.add",
		"backbone.res3a.branch1", "backbone.res4f.add", "backbone.res5c.add",
		"head.0.conv0", "head.0.route", "head.0.tip", "head.0.out", "head.0.transition", "head.0.upsample",
		"head.1.concat", "head.2.route", "head.2.out"}
	for _, n := range want {
		if _, ok := s.Layer(n); !ok {
			t.Errorf("no layer %s", n)
		}
	}
	for _, n := range []string{"backbone.res2a.branch1", "head.2.transition", "head.0.concat"} {
		if _, ok := s.Layer(n); ok {
			t.Errorf("unexpected layer %s", n)
		}
	}
	if got := s.Resolve("backbone.c4"); got != "backbone.res4f.add" {
		t.Errorf("backbone.c4 -> %s", got)
	}
	if strings.Join(s.Outputs, ",") != "head.0.out,head.1.out,head.2.out" {
		t.Errorf("outputs %v", s.Outputs)
	}
	c, _ := s.Layer("head.1.concat")
	if strings.Join(c.Inputs, ",") != "head.0.upsample,backbone.res4f.add" {
		t.Errorf("head.1.concat inputs %v", c.Inputs)
	}
	p, err := New(Config{Backbone: BackboneResNet34, NumClasses: 20, Layout: LayoutPaddle})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Layer("backbone.res2a.branch1"); !ok {
		t.Error("paddle layout: no res2a.branch1")
	}
	m, err := New(Config{Backbone: BackboneMobileNetV1, NumClasses: 20})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := New(Config{Backbone: BackboneMobileNetV1, NumClasses: 20, Layout: LayoutPaddle})
	if err != nil {
		t.Fatal(err)
	}
	taps := []struct {
		spec         *Spec
		alias, layer string
	}{
		{m, "backbone.c3", "backbone.conv4_1.sep"}, {m, "backbone.c4", "backbone.conv5_5.sep"}, {m, "backbone.c5", "backbone.conv6.sep"},
		{mp, "backbone.c3", "backbone.conv3_2.sep"}, {mp, "backbone.c4", "backbone.conv4_2.sep"}, {mp, "backbone.c5", "backbone.conv6.sep"},
	}
	for _, tp := range taps {
		if got := tp.spec.Resolve(tp.alias); got != tp.layer {
			t.Errorf("%s: %s -> %s, want %s", tp.spec.Name, tp.alias, got, tp.layer)
		}
	}
	dw, _ := m.Layer("backbone.conv5_6.dw")
	if dw.Conv != (ConvParams{Out: 512, K: 3, Stride: 2, Pad: 1, Groups: 512}) || dw.Act != ActReLU {
		t.Errorf("conv5_6.dw %+v %s", dw.Conv, dw.Act)
	}
}

func TestNewAnchorsPerScale(t *testing.T) {
	s, err := New(Config{Backbone: BackboneMobileNetV1, BackboneWidth: 0.25, HeadWidth: 0.25, NumClasses: 3,
		AnchorMasks: [][]int{{5, 6, 7, 8}, {2, 3, 4}, {0, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	inf, err := s.Infer(320, 320)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []Shape{{32, 10, 10}, {24, 20, 20}, {16, 40, 40}} {
		li, _ := inf.Lookup(s.Outputs[i])
		if li.Shape != want {
			t.Errorf("%s: %s, want %s", s.Outputs[i], li.Shape, want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"backbone", Config{Backbone: "vgg16", NumClasses: 20}, "unknown backbone"},
		{"classes", Config{Backbone: BackboneResNet18}, "num_classes"},
		{"negative width", Config{Backbone: BackboneResNet18, NumClasses: 1, BackboneWidth: -1}, "backbone width"},
		{"tiny width", Config{Backbone: BackboneResNet18, NumClasses: 1, BackboneWidth: 0.001}, "channels"},
		{"tiny head", Config{Backbone: BackboneResNet18, NumClasses: 1, HeadWidth: 0.001}, "head.0.route"},
		{"masks", Config{Backbone: BackboneResNet18, NumClasses: 1, AnchorMasks: [][]int{{0}, {1}}}, "3 outputs"},
		{"empty mask", Config{Backbone: BackboneResNet18, NumClasses: 1, AnchorMasks: [][]int{{0}, {}, {1}}}, "empty"},
		{"layout", Config{Backbone: BackboneResNet18, NumClasses: 1, Layout: "caffe"}, "layout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestAllStandardSizes infers every family member at every standard size
// (and a non-square one): the head's concats must line up.
func TestAllStandardSizes(t *testing.T) {
	for _, bb := range []string{BackboneMobileNetV1, BackboneResNet18, BackboneResNet34} {
		s, err := New(Config{Backbone: bb, BackboneWidth: 0.5, HeadWidth: 0.5, NumClasses: 20})
		if err != nil {
			t.Fatal(err)
		}
		sizes := append(StandardSizes(), 64)
		for _, n := range sizes {
			inf, err := s.Infer(n, n)
			if err != nil {
				t.Fatalf("%s at %d: %v", bb, n, err)
			}
			if o, _ := inf.Lookup("head.2.out"); o.Shape != (Shape{75, n / 8, n / 8}) {
				t.Errorf("%s at %d: head.2.out %s", bb, n, o.Shape)
			}
		}
		if _, err := s.Infer(320, 480); err != nil {
			t.Errorf("%s at 320x480: %v", bb, err)
		}
		// 336 is not a multiple of 32: the stride-16 upsample no longer lines up.
		if _, err := s.Infer(336, 336); err == nil {
			t.Errorf("%s at 336: no error", bb)
		}
	}
}

func TestFeaturePoints(t *testing.T) {
	s, err := New(Config{Backbone: BackboneMobileNetV1, NumClasses: 20})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.FeaturePoints(), " ")
	want := "backbone.c3 backbone.c4 backbone.c5 head.0.route head.0.tip head.0.out head.1.route head.1.tip head.1.out head.2.route head.2.tip head.2.out"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestFromModelConfig(t *testing.T) {
	m := config.Defaults().Model
	s, err := FromModelConfig(m)
	if err != nil {
		t.Fatal(err)
	}
	inf, err := s.Infer(608, 608)
	if err != nil {
		t.Fatal(err)
	}
	// torch_reference.py's MobileNetV1-YOLOv3, 20 classes (reference.json).
	if inf.Params != 24248097 {
		t.Errorf("defaults: %d params", inf.Params)
	}
	m.Backbone, m.BackboneWidth, m.HeadWidth, m.NumClasses = BackboneResNet18, 0.5, 0.25, 3
	m.AnchorMasks = [][]int{{6, 7, 8}, {3, 4, 5}, {0, 1}}
	s, err = FromModelConfig(m)
	if err != nil {
		t.Fatal(err)
	}
	if c5, _ := s.Layer("backbone.c5"); c5.Name != "backbone.res5b.add" || s.AnchorsPerScale[2] != 2 || s.NumClasses != 3 {
		t.Errorf("resnet18: c5 %s anchors %v classes %d", c5.Name, s.AnchorsPerScale, s.NumClasses)
	}
	if l, _ := s.Layer("head.0.route"); l.Conv.Out != 128 {
		t.Errorf("head width 0.25: route has %d channels", l.Conv.Out)
	}
	// model.layout reaches the builder: PaddleDetection's MobileNetV1 taps.
	pm := config.Defaults().Model
	pm.Layout = LayoutPaddle
	if s, err = FromModelConfig(pm); err != nil {
		t.Fatal(err)
	}
	if got := s.Resolve("backbone.c3"); got != "backbone.conv3_2.sep" {
		t.Errorf("layout paddle: backbone.c3 is %s, want backbone.conv3_2.sep", got)
	}
	bad := config.Defaults().Model
	bad.Architecture = "SSD"
	if _, err := FromModelConfig(bad); err == nil || !strings.Contains(err.Error(), "SSD") {
		t.Errorf("architecture: %v", err)
	}
	bad = config.Defaults().Model
	bad.AnchorMasks = [][]int{{6, 7, 8}, {3, 4, 5}, {0, 1, 9}}
	if _, err := FromModelConfig(bad); err == nil || !strings.Contains(err.Error(), "anchor") {
		t.Errorf("masks: %v", err)
	}
}
