package yolo

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestLayerOp(t *testing.T) {
	conv := func(k, stride, groups int) ConvParams {
		return ConvParams{Out: 8, K: k, Stride: stride, Groups: groups}
	}
	tests := []struct {
		l    Layer
		want string
	}{
		{Layer{Kind: ConvBNAct, Conv: conv(3, 2, 32), Act: ActReLU}, "conv3x3/2 g32 bn relu"},
		{Layer{Kind: ConvBNAct, Conv: conv(1, 1, 1), Act: ActLeaky}, "conv1x1 bn leaky"},
		{Layer{Kind: Conv, Conv: conv(1, 1, 1), Bias: true}, "conv1x1 bias"},
		{Layer{Kind: Conv, Conv: conv(7, 2, 1)}, "conv7x7/2"},
		{Layer{Kind: MaxPool, Pool: PoolParams{K: 3, Stride: 2, Pad: 1}}, "maxpool3x3/2"},
		{Layer{Kind: Upsample2x}, "upsample2x"},
		{Layer{Kind: Concat}, "concat"},
		{Layer{Kind: AddAct, Act: ActNone}, "add none"},
	}
	for _, tt := range tests {
		if got := tt.l.Op(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.l, got, tt.want)
		}
	}
}

// tinyAt8 is tiny() and its Inference at 8x8.
func tinyAt8(t *testing.T) (*Spec, *Inference) {
	t.Helper()
	spec := tiny()
	inf, err := spec.Infer(8, 8)
	if err != nil {
		t.Fatal(err)
	}
	return spec, inf
}

func TestDescribeTiny(t *testing.T) {
	spec, inf := tinyAt8(t)
	d := Describe(spec, inf, "tiny.yml", false)
	want := Description{Model: "tiny", Config: "tiny.yml", Input: []int{3, 8, 8}, NumClasses: 1,
		Aliases: []DescAlias{{"feat", "sum", []int{4, 4, 4}}},
		Outputs: []DescOutput{{"out", []int{6, 4, 4}, 2, 1}},
		Totals:  DescTotals{Params: 116 + 44 + 54, BNStats: 16, FLOPs: 2*27*64 + 2*9*64 + 2*8*96}}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("without layers:\n%+v\nwant\n%+v", d, want)
	}
	b, _ := json.Marshal(d)
	if strings.Contains(string(b), `"layers"`) {
		t.Errorf("layers in JSON without layers: %s", b)
	}
	d = Describe(spec, inf, "tiny.yml", true)
	if len(d.Layers) != len(spec.Layers) {
		t.Fatalf("%d layers, want %d", len(d.Layers), len(spec.Layers))
	}
	var params, stats, flops int64
	for _, l := range d.Layers {
		params, stats, flops = params+l.Params, stats+l.BNStats, flops+l.FLOPs
	}
	if (DescTotals{params, stats, flops}) != d.Totals {
		t.Errorf("layer sums %d %d %d, totals %+v", params, stats, flops, d.Totals)
	}
	if got, want := d.Layers[1], (DescLayer{Name: "dw", Kind: "conv_bn_act", Op: "conv3x3 g4 bn leaky", Inputs: []string{"a"},
		Shape: []int{4, 4, 4}, Params: 44, BNStats: 8, FLOPs: 2 * 9 * 64}); !reflect.DeepEqual(got, want) {
		t.Errorf("layer dw %+v, want %+v", got, want)
	}
}

func TestDescriptionTable(t *testing.T) {
	spec, inf := tinyAt8(t)
	d := Describe(spec, inf, "tiny.yml", true)
	var b bytes.Buffer
	if err := d.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `# tiny (tiny.yml), input 3x8x8
NAME  OP                   INPUTS  SHAPE  PARAMS  MFLOPS
a     conv3x3/2 bn relu    -       4x4x4  116     0.0
dw    conv3x3 g4 bn leaky  -       4x4x4  44      0.0
sum   add relu             dw,a    4x4x4  0       0.0
pool  maxpool3x3/2         -       4x2x2  0       0.0
up    upsample2x           -       4x4x4  0       0.0
cat   concat               up,a    8x4x4  0       0.0
out   conv1x1 bias         -       6x4x4  54      0.0

# aliases
feat = sum  4x4x4

# outputs
out  6x4x4  stride 2  1 anchors x (5 + 1 classes)

# total: 214 params (+16 BN running stats), 0.000 GFLOPs
`
	if b.String() != want {
		t.Errorf("table\n%s\nwant\n%s", b.String(), want)
	}
}
