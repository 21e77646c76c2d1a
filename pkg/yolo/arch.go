package yolo

import (
	"fmt"
	"math"
	"strings"

	"yolodistill/pkg/anchor"
)

// Backbone names accepted by Config.Backbone.
const (
	BackboneMobileNetV1 = "mobilenet_v1"
	BackboneResNet18    = "resnet18"
	BackboneResNet34    = "resnet34"
)

// Layout variants accepted by Config.Layout.
const (
	// LayoutTorch (the default, also "") builds the networks exactly as
	// ../shared/bench/torch_reference.py does; parameter counts and FLOPs
	// match it.
	LayoutTorch = "torch"
	// LayoutPaddle follows PaddleDetection's static-graph code (release/0.3)
	// where torch_reference.py departs from it: MobileNetV1 hands the head the
	// output of the stride-2 blocks conv3_2 and conv4_2 (torch_reference.py
	// taps one and five blocks later, after conv4_1 and conv5_5: same shapes,
	// parameters and FLOPs, different features), and ResNet18/34 give the
	// first block (res2a) a 1x1 conv + BN projection shortcut although its
	// input and output are both 64 channels at stride 1 (Paddle's is_first
	// rule for depth < 50; +64*64 weights +128 BN parameters at full width).
	LayoutPaddle = "paddle"
)

// Config chooses a member of the YOLOv3 family. The zero value of a width
// means 1.
type Config struct {
	// Backbone is BackboneMobileNetV1, BackboneResNet18 or BackboneResNet34.
	Backbone string
	// BackboneWidth multiplies every backbone channel count n to int(n*width)
	// (truncation, as torch_reference.py and PaddleDetection's MobileNet
	// conv_group_scale do). 0 means 1.
	BackboneWidth float64
	// HeadWidth multiplies the head's channel counts: at output i the
	// DetectionBlock width is ch = int((512>>i)*HeadWidth), its 3x3 convs and
	// the tip have 2*ch channels, and the transition conv to the next scale has
	// int((256>>i)*HeadWidth). 0 means 1.
	HeadWidth float64
	// NumClasses is the number of object classes (>= 1).
	NumClasses int
	// AnchorMasks gives the anchors each output predicts (see
	// anchor.DefaultMasks); only their lengths shape the network. nil means
	// anchor.DefaultMasks.
	AnchorMasks [][]int
	// Layout is LayoutTorch ("" too) or LayoutPaddle.
	Layout string
}

// New builds the Spec of a YOLOv3 detector: backbone then head.
//
// Names (i = 0, 1, 2 is the head scale, deepest first, strides 32, 16, 8):
//   - MobileNetV1: "backbone.conv1" (3x3/2 stem), then for each
//     depthwise-separable block B in conv2_1 conv2_2 conv3_1 conv3_2 conv4_1
//     conv4_2 conv5_1..conv5_6 conv6 (PaddleDetection's names) the layers
//     "backbone.B.dw" (3x3 depthwise) and "backbone.B.sep" (1x1), ReLU.
//   - ResNet18/34: "backbone.conv1" (7x7/2), "backbone.pool1" (3x3/2 max
//     pool), then BasicBlocks "backbone.resSL" (stage S = 2..5, block letter
//     L = a, b, ...) with layers ".branch2a" (3x3, stride on the first block
//     of stages 3..5, ReLU), ".branch2b" (3x3, no activation), ".branch1"
//     (1x1 projection shortcut with BN, where channels or stride change) and
//     ".add" (sum + ReLU, the block output).
//   - Backbone feature maps are the aliases "backbone.c3", "backbone.c4",
//     "backbone.c5" (strides 8, 16, 32).
//   - Head, per scale i: "head.i.concat" (i > 0: the upsampled transition of
//     scale i-1, then the backbone map, along C), "head.i.conv0".."head.i.conv3"
//     and "head.i.route" (the DetectionBlock: 1x1 ch, 3x3 2ch, 1x1 ch, 3x3 2ch,
//     1x1 ch), "head.i.tip" (3x3 2ch), "head.i.out" (1x1 conv with bias,
//     len(mask_i)*(5+NumClasses) channels: the detection output), and for
//     i < 2 "head.i.transition" (1x1 to 256>>i channels) and
//     "head.i.upsample" (nearest x2). Head convs use LeakyReLU(0.1).
func New(cfg Config) (*Spec, error) {
	bw, err := width("backbone width", cfg.BackboneWidth)
	if err != nil {
		return nil, err
	}
	hw, err := width("head width", cfg.HeadWidth)
	if err != nil {
		return nil, err
	}
	if cfg.NumClasses < 1 {
		return nil, fmt.Errorf("model: num_classes %d must be at least 1", cfg.NumClasses)
	}
	masks := cfg.AnchorMasks
	if masks == nil {
		masks = anchor.DefaultMasks()
	}
	if len(masks) != 3 {
		return nil, fmt.Errorf("model: %d anchor masks, the YOLOv3 head has 3 outputs", len(masks))
	}
	for i, m := range masks {
		if len(m) == 0 {
			return nil, fmt.Errorf("model: anchor mask %d is empty", i)
		}
	}
	paddle := false
	switch cfg.Layout {
	case "", LayoutTorch:
	case LayoutPaddle:
		paddle = true
	default:
		return nil, fmt.Errorf("model: layout %q: want %q or %q", cfg.Layout, LayoutTorch, LayoutPaddle)
	}
	b := &specBuilder{s: &Spec{InChannels: 3, NumClasses: cfg.NumClasses, AnchorsPerScale: anchor.PerScale(masks), Strides: anchor.DefaultStrides()}}
	var taps [3]string
	switch cfg.Backbone {
	case BackboneMobileNetV1:
		taps, err = b.mobileNetV1(bw, paddle)
	case BackboneResNet18:
		taps, err = b.resNet([]int{2, 2, 2, 2}, bw, paddle)
	case BackboneResNet34:
		taps, err = b.resNet([]int{3, 4, 6, 3}, bw, paddle)
	default:
		return nil, fmt.Errorf("model: unknown backbone %q (want %s, %s or %s)", cfg.Backbone, BackboneMobileNetV1, BackboneResNet18, BackboneResNet34)
	}
	if err != nil {
		return nil, err
	}
	for i, t := range taps {
		b.s.Aliases = append(b.s.Aliases, Alias{fmt.Sprintf("backbone.c%d", 3+i), t})
	}
	if err := b.yoloV3Head(taps, hw, cfg.NumClasses, b.s.AnchorsPerScale); err != nil {
		return nil, err
	}
	b.s.Name = fmt.Sprintf("%s_x%g-yolov3_x%g-c%d", cfg.Backbone, bw, hw, cfg.NumClasses)
	if paddle {
		b.s.Name += "-paddle"
	}
	if err := b.s.Validate(); err != nil {
		return nil, err
	}
	return b.s, nil
}

func width(what string, w float64) (float64, error) {
	if w == 0 {
		return 1, nil
	}
	if !(w > 0) || math.IsInf(w, 0) || w > 16 {
		return 0, fmt.Errorf("model: %s %g must be in (0, 16]", what, w)
	}
	return w, nil
}

// specBuilder appends layers and tracks the channel count of the last one.
type specBuilder struct {
	s *Spec
}

// scaled returns int(n*w), as Python's int(n * scale), or an error when that
// leaves no channel.
func scaled(n int, w float64, where string) (int, error) {
	c := int(float64(n) * w)
	if c < 1 {
		return 0, fmt.Errorf("model: width %g leaves %s with %d channels (from %d)", w, where, c, n)
	}
	return c, nil
}

func (b *specBuilder) add(l Layer) string {
	b.s.Layers = append(b.s.Layers, l)
	return l.Name
}

func (b *specBuilder) convBN(name, in string, out, k, stride, groups int, act Act) string {
	return b.add(Layer{Name: name, Kind: ConvBNAct, Inputs: []string{in},
		Conv: ConvParams{Out: out, K: k, Stride: stride, Pad: k / 2, Groups: groups}, Act: act})
}

// mobileNetV1 appends MobileNetV1 and returns the stride-8, 16, 32 taps.
func (b *specBuilder) mobileNetV1(w float64, paddle bool) ([3]string, error) {
	var taps [3]string
	stem, err := scaled(32, w, "backbone.conv1")
	if err != nil {
		return taps, err
	}
	x := b.convBN("backbone.conv1", InputName, stem, 3, 2, 1, ActReLU)
	cin := stem
	blocks := []struct {
		name           string
		n1, n2, stride int
	}{
		{"conv2_1", 32, 64, 1}, {"conv2_2", 64, 128, 2},
		{"conv3_1", 128, 128, 1}, {"conv3_2", 128, 256, 2},
		{"conv4_1", 256, 256, 1}, {"conv4_2", 256, 512, 2},
		{"conv5_1", 512, 512, 1}, {"conv5_2", 512, 512, 1}, {"conv5_3", 512, 512, 1},
		{"conv5_4", 512, 512, 1}, {"conv5_5", 512, 512, 1}, {"conv5_6", 512, 1024, 2},
		{"conv6", 1024, 1024, 1},
	}
	tapAt := map[string]int{"conv4_1": 0, "conv5_5": 1, "conv6": 2}
	if paddle {
		tapAt = map[string]int{"conv3_2": 0, "conv4_2": 1, "conv6": 2}
	}
	for _, bl := range blocks {
		name := "backbone." + bl.name
		// The depthwise conv keeps its cin channels (PaddleDetection:
		// int(num_filters1*scale) filters in int(num_groups*scale) groups,
		// both equal to cin).
		x = b.convBN(name+".dw", x, cin, 3, bl.stride, cin, ActReLU)
		out, err := scaled(bl.n2, w, name+".sep")
		if err != nil {
			return taps, err
		}
		x = b.convBN(name+".sep", x, out, 1, 1, 1, ActReLU)
		cin = out
		if i, ok := tapAt[bl.name]; ok {
			taps[i] = x
		}
	}
	return taps, nil
}

// resNet appends a BasicBlock ResNet (stage depths, e.g. [3 4 6 3] for
// ResNet34) and returns the stride-8, 16, 32 taps (the ends of stages 3, 4, 5).
func (b *specBuilder) resNet(depths []int, w float64, paddle bool) ([3]string, error) {
	var taps [3]string
	stem, err := scaled(64, w, "backbone.conv1")
	if err != nil {
		return taps, err
	}
	x := b.convBN("backbone.conv1", InputName, stem, 7, 2, 1, ActReLU)
	x = b.add(Layer{Name: "backbone.pool1", Kind: MaxPool, Inputs: []string{x}, Pool: PoolParams{K: 3, Stride: 2, Pad: 1}})
	cin := stem
	for si, n := range depths {
		stage := si + 2
		cout, err := scaled(64<<si, w, fmt.Sprintf("backbone stage res%d", stage))
		if err != nil {
			return taps, err
		}
		for j := 0; j < n; j++ {
			name := fmt.Sprintf("backbone.res%d%c", stage, 'a'+j)
			stride := 1
			if j == 0 && stage > 2 {
				stride = 2
			}
			in := x
			y := b.convBN(name+".branch2a", in, cout, 3, stride, 1, ActReLU)
			y = b.convBN(name+".branch2b", y, cout, 3, 1, 1, ActNone)
			short := in
			if cin != cout || stride != 1 || (paddle && stage == 2 && j == 0) {
				short = b.convBN(name+".branch1", in, cout, 1, stride, 1, ActNone)
			}
			x = b.add(Layer{Name: name + ".add", Kind: AddAct, Inputs: []string{y, short}, Act: ActReLU})
			cin = cout
		}
		if stage >= 3 {
			taps[stage-3] = x
		}
	}
	return taps, nil
}

// yoloV3Head appends the three-scale head on taps (strides 8, 16, 32).
func (b *specBuilder) yoloV3Head(taps [3]string, w float64, classes int, anchors []int) error {
	up := ""
	for i := 0; i < 3; i++ {
		p := fmt.Sprintf("head.%d.", i)
		x := taps[2-i]
		if up != "" {
			x = b.add(Layer{Name: p + "concat", Kind: Concat, Inputs: []string{up, x}})
		}
		ch, err := scaled(512>>i, w, p+"route")
		if err != nil {
			return err
		}
		x = b.convBN(p+"conv0", x, ch, 1, 1, 1, ActLeaky)
		x = b.convBN(p+"conv1", x, 2*ch, 3, 1, 1, ActLeaky)
		x = b.convBN(p+"conv2", x, ch, 1, 1, 1, ActLeaky)
		x = b.convBN(p+"conv3", x, 2*ch, 3, 1, 1, ActLeaky)
		route := b.convBN(p+"route", x, ch, 1, 1, 1, ActLeaky)
		tip := b.convBN(p+"tip", route, 2*ch, 3, 1, 1, ActLeaky)
		out := b.add(Layer{Name: p + "out", Kind: Conv, Inputs: []string{tip}, Bias: true,
			Conv: ConvParams{Out: anchors[i] * (5 + classes), K: 1, Stride: 1, Pad: 0, Groups: 1}})
		b.s.Outputs = append(b.s.Outputs, out)
		if i < 2 {
			tc, err := scaled(256>>i, w, p+"transition")
			if err != nil {
				return err
			}
			t := b.convBN(p+"transition", route, tc, 1, 1, 1, ActLeaky)
			up = b.add(Layer{Name: p + "upsample", Kind: Upsample2x, Inputs: []string{t}})
		}
	}
	return nil
}

// FeaturePoints returns the names that are natural distillation points, in
// network order: the aliases (backbone.c3, backbone.c4, backbone.c5 for New's
// Specs), then each head layer named "head.I.route", "head.I.tip" or
// "head.I.out".
func (s *Spec) FeaturePoints() []string {
	var names []string
	for _, a := range s.Aliases {
		names = append(names, a.Name)
	}
	for _, l := range s.Layers {
		if !strings.HasPrefix(l.Name, "head.") {
			continue
		}
		for _, suf := range []string{".route", ".tip", ".out"} {
			if strings.HasSuffix(l.Name, suf) && strings.Count(l.Name, ".") == 2 {
				names = append(names, l.Name)
			}
		}
	}
	return names
}
