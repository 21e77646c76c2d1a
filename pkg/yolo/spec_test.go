package yolo

import (
	"strings"
	"testing"
)

// tiny is a hand-checkable network: conv, pool, a residual add, upsample,
// concat and a biased output conv, input 3x8x8.
func tiny() *Spec {
	return &Spec{
		Name: "tiny", InChannels: 3, NumClasses: 1, AnchorsPerScale: []int{1}, Strides: []int{2},
		Layers: []Layer{
			{Name: "a", Kind: ConvBNAct, Inputs: []string{InputName}, Conv: ConvParams{Out: 4, K: 3, Stride: 2, Pad: 1, Groups: 1}, Act: ActReLU},
			{Name: "dw", Kind: ConvBNAct, Inputs: []string{"a"}, Conv: ConvParams{Out: 4, K: 3, Stride: 1, Pad: 1, Groups: 4}, Act: ActLeaky},
			{Name: "sum", Kind: AddAct, Inputs: []string{"dw", "a"}, Act: ActReLU},
			{Name: "pool", Kind: MaxPool, Inputs: []string{"sum"}, Pool: PoolParams{K: 3, Stride: 2, Pad: 1}},
			{Name: "up", Kind: Upsample2x, Inputs: []string{"pool"}},
			{Name: "cat", Kind: Concat, Inputs: []string{"up", "a"}},
			{Name: "out", Kind: Conv, Inputs: []string{"cat"}, Conv: ConvParams{Out: 6, K: 1, Stride: 1, Groups: 1}, Bias: true},
		},
		Aliases: []Alias{{"feat", "sum"}},
		Outputs: []string{"out"},
	}
}

func TestInferTiny(t *testing.T) {
	inf, err := tiny().Infer(8, 8)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		shape         Shape
		params, stats int64
		flops         int64
	}{
		// a: 4*3*9 weights + 8 BN; 2*27*4*16 FLOPs.
		{"a", Shape{4, 4, 4}, 4*3*9 + 8, 8, 2 * 27 * 64},
		// dw: 4*1*9 weights + 8 BN; 2*9*64.
		{"dw", Shape{4, 4, 4}, 36 + 8, 8, 2 * 9 * 64},
		{"sum", Shape{4, 4, 4}, 0, 0, 0},
		{"feat", Shape{4, 4, 4}, 0, 0, 0},
		{"pool", Shape{4, 2, 2}, 0, 0, 0},
		{"up", Shape{4, 4, 4}, 0, 0, 0},
		{"cat", Shape{8, 4, 4}, 0, 0, 0},
		// out: 6*8 weights + 6 bias; 2*8*6*16.
		{"out", Shape{6, 4, 4}, 54, 0, 2 * 8 * 96},
	}
	var params, stats, flops int64
	for _, tt := range tests {
		li, ok := inf.Lookup(tt.name)
		if !ok {
			t.Fatalf("%s missing", tt.name)
		}
		if li.Shape != tt.shape || li.Params != tt.params || li.BNStats != tt.stats || li.FLOPs != tt.flops {
			t.Errorf("%s: %s %d %d %d, want %s %d %d %d", tt.name, li.Shape, li.Params, li.BNStats, li.FLOPs, tt.shape, tt.params, tt.stats, tt.flops)
		}
		if tt.name != "feat" {
			params, stats, flops = params+tt.params, stats+tt.stats, flops+tt.flops
		}
	}
	if inf.Params != params || inf.BNStats != stats || inf.FLOPs != flops {
		t.Errorf("totals %d %d %d, want %d %d %d", inf.Params, inf.BNStats, inf.FLOPs, params, stats, flops)
	}
	if got := inf.Layers[5].In; len(got) != 2 || got[0] != (Shape{4, 4, 4}) {
		t.Errorf("cat inputs %v", got)
	}
}

func TestSpecErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *Spec)
		h, w   int
		want   string
	}{
		{"dup name", func(s *Spec) { s.Layers[1].Name = "a" }, 8, 8, "repeated"},
		{"reserved", func(s *Spec) { s.Layers[0].Name = InputName }, 8, 8, "reserved"},
		{"forward ref", func(s *Spec) { s.Layers[0].Inputs = []string{"dw"} }, 8, 8, "not an earlier layer"},
		{"add arity", func(s *Spec) { s.Layers[2].Inputs = []string{"dw"} }, 8, 8, "1 inputs"},
		{"concat arity", func(s *Spec) { s.Layers[5].Inputs = []string{"up"} }, 8, 8, "1 inputs"},
		{"bad kind", func(s *Spec) { s.Layers[4].Kind = 99 }, 8, 8, "unknown kind"},
		{"bad conv", func(s *Spec) { s.Layers[0].Conv.Stride = 0 }, 8, 8, "bad conv"},
		{"groups", func(s *Spec) { s.Layers[1].Conv = ConvParams{Out: 6, K: 3, Stride: 1, Pad: 1, Groups: 3} }, 8, 8, "do not divide"},
		{"bad pool", func(s *Spec) { s.Layers[3].Pool.Pad = 2 }, 8, 8, "bad pool"},
		{"alias", func(s *Spec) { s.Aliases[0].Layer = "nope" }, 8, 8, "alias"},
		{"add shapes", func(s *Spec) { s.Layers[2].Inputs = []string{"dw", InputName} }, 8, 8, "differ"},
		{"concat shapes", func(s *Spec) { s.Layers[5].Inputs = []string{"pool", "a"} }, 8, 8, "H and W differ"},
		{"odd size", func(s *Spec) {}, 6, 6, "H and W differ"},
		{"zero size", func(s *Spec) {}, 0, 8, "positive"},
		{"output channels", func(s *Spec) { s.NumClasses = 2 }, 8, 8, "want 7x4x4"},
		{"outputs count", func(s *Spec) { s.Strides = nil }, 8, 8, "strides"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tiny()
			tt.mutate(s)
			_, err := s.Infer(tt.h, tt.w)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCheckInputSize(t *testing.T) {
	tests := []struct {
		h, w int
		ok   bool
	}{{320, 320, true}, {608, 416, true}, {32, 32, true}, {330, 320, false}, {0, 320, false}, {-32, 32, false}}
	for _, tt := range tests {
		if err := CheckInputSize(tt.h, tt.w); (err == nil) != tt.ok {
			t.Errorf("%dx%d: %v", tt.h, tt.w, err)
		}
	}
	s := StandardSizes()
	if len(s) != 10 || s[0] != 320 || s[9] != 608 {
		t.Errorf("standard sizes %v", s)
	}
}

func TestPrefixed(t *testing.T) {
	s := tiny()
	p := s.Prefixed("teacher.")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Layers[0].Inputs[0] != InputName || p.Layers[1].Inputs[0] != "teacher.a" || p.Outputs[0] != "teacher.out" ||
		p.Resolve("teacher.feat") != "teacher.sum" {
		t.Errorf("prefixed: %+v", p)
	}
	if s.Layers[1].Inputs[0] != "a" || s.Outputs[0] != "out" {
		t.Error("Prefixed changed the original")
	}
}
