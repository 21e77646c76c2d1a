package nn

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

type torchParam struct {
	Shape []int     `json:"shape"`
	Data  []float32 `json:"data"`
}

type torchBlock struct {
	InputShape  []int                 `json:"input_shape"`
	Input       []float32             `json:"input"`
	R           []float32             `json:"r"`
	OutputShape []int                 `json:"output_shape"`
	Output      []float64             `json:"output"`
	Params      map[string]torchParam `json:"params"`
	StateBefore map[string][]float32  `json:"state_before"`
	GradInput   []float64             `json:"grad_input"`
	Grads       map[string][]float64  `json:"grads"`
	StateAfter  map[string][]float64  `json:"state_after"`
}

// TestTorchReference compares a train step of two blocks with PyTorch 1.13
// (testdata/nn/gen_reference.py): output, gradients w.r.t. the input and every
// parameter, running statistics after the step.
func TestTorchReference(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/nn/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatalf("testdata/nn/reference.json: %v", err)
	}
	// |got - want| <= relTol * max(|want|, floor), floor = 1e-2 * max |want| of
	// the tensor, so that values near zero are compared at the tensor's scale.
	const relTol = 1e-4
	torchBN := BNConfig{Momentum: 0.9, Eps: 1e-5, UnbiasedRunningVar: true}
	cases := []struct {
		name  string
		build func(b *Builder, x *Tensor) *Tensor
	}{
		{"convbn", func(b *Builder, x *Tensor) *Tensor {
			return b.ConvBNAct("blk", x, ConvSpec{Out: 4, K: 3, Stride: 2, Pad: 1}, ActLeaky)
		}},
		{"depthwise", func(b *Builder, x *Tensor) *Tensor {
			y := b.ConvBNAct("dw", x, ConvSpec{Out: 4, K: 3, Pad: 1, Groups: 4}, ActReLU)
			return b.ConvBNAct("pw", y, ConvSpec{Out: 6, K: 1}, ActReLU)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var blk torchBlock
			if err := json.Unmarshal(ref[tc.name], &blk); err != nil {
				t.Fatalf("reference.json %s: %v", tc.name, err)
			}
			ps := NewParamSet(1)
			b := NewBuilder(ps, blk.InputShape)
			b.SetBN(torchBN)
			C := blk.InputShape[1]
			// identity 1x1 conv so that the input gradient is observable
			pre := b.Conv("pre", b.Input(), ConvSpec{Out: C, K: 1}, false)
			out := tc.build(b, pre)
			r := blk.R
			b.Loss("proj", []*Tensor{out}, func(ins, grads [][]float32) float64 {
				var s float64
				for i, v := range ins[0] {
					s += float64(r[i]) * float64(v)
					grads[0][i] = r[i]
				}
				return s
			})
			b.KeepGrads("pre")
			g, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			w := ps.Get("pre.weight")
			clear(w.Data)
			for c := 0; c < C; c++ {
				w.Data[c*C+c] = 1
			}
			for name, p := range blk.Params {
				q := ps.Get(name)
				if q == nil || len(q.Data) != len(p.Data) {
					t.Fatalf("parameter %s missing or of another size", name)
				}
				copy(q.Data, p.Data)
			}
			for name, v := range blk.StateBefore {
				copy(ps.Get(name).Data, v)
			}
			if err := g.SetInput(blk.Input); err != nil {
				t.Fatal(err)
			}
			if _, err := g.Step(); err != nil {
				t.Fatal(err)
			}
			check := func(what string, got []float32, want []float64) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
				}
				var maxAbs, worst float64
				for _, v := range want {
					maxAbs = math.Max(maxAbs, math.Abs(v))
				}
				for i, v := range want {
					d := math.Abs(float64(got[i])-v) / math.Max(math.Abs(v), 1e-2*maxAbs)
					worst = math.Max(worst, d)
					if d > relTol {
						t.Errorf("%s[%d] = %.7g, torch %.7g (rel %.2g)", what, i, got[i], v, d)
						return
					}
				}
				t.Logf("%-16s worst rel err %.2g", what, worst)
			}
			got, _ := g.Tensor(out.Name())
			check("output", got, blk.Output)
			check("grad input", g.TensorGrad("pre"), blk.GradInput)
			for name, want := range blk.Grads {
				check("grad "+name, ps.Get(name).Grad, want)
			}
			for name, want := range blk.StateAfter {
				check(name, ps.Get(name).Data, want)
			}
		})
	}
}
