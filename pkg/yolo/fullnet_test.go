package yolo

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/anchor"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/yolo/loss"
)

// Whole-network gradient check against PyTorch.
//
// A tiny detector ([2, 3, 64, 64] input) is built with New + Build on a
// ParamSet of seed 7, an MSE loss (sum over the three outputs of
// mean((out - target)^2), fixed pseudo-random targets) is attached through
// Builder.Loss and one Graph.Step runs in training mode (BatchNorm with batch
// statistics). testdata/nn/gen_fullnet.py loads the same initial weights into
// the equivalent torch model (float64) and records the loss, the outputs, the
// gradient of every parameter and of every layer output; the test compares.
//
// TestFullNetTrainSteps does the same for 30 SGD steps of the real YOLOv3 loss.
//
// Regenerating the fixture (needs torch); the export also holds the Go step's
// values and gradients in full, which --local checks op by op:
//
//	FULLNET_EXPORT=/tmp/fullnet go test -tags openblas -run TestFullNet ./pkg/yolo/
//	/usr/bin/python3 testdata/nn/gen_fullnet.py /tmp/fullnet > testdata/nn/fullnet.json
//	/usr/bin/python3 testdata/nn/gen_fullnet.py --local /tmp/fullnet

// fullnetCase is one network of the fixture.
type fullnetCase struct {
	name string
	cfg  Config
}

var fullnetCases = []fullnetCase{
	{"mobilenet_v1_x0.25", Config{Backbone: BackboneMobileNetV1, BackboneWidth: 0.25, HeadWidth: 0.25, NumClasses: 3}},
	{"resnet18_x0.25", Config{Backbone: BackboneResNet18, BackboneWidth: 0.25, HeadWidth: 0.25, NumClasses: 3}},
}

const (
	fullnetN, fullnetH, fullnetW = 2, 64, 64
	fullnetSeed                  = 7
	fullnetFirst                 = 16 // leading gradient values stored per tensor
)

// fullnetRand is a deterministic uniform [-1, 1) sequence (64-bit LCG, top 24 bits).
type fullnetRand uint64

func (r *fullnetRand) next() float32 {
	*r = fullnetRand(uint64(*r)*6364136223846793005 + 1442695040888963407)
	return float32(uint64(*r)>>40)/float32(1<<23) - 1
}

// fullnetStats summarises a gradient (or any) tensor.
type fullnetStats struct {
	N      int       `json:"n"`
	Norm   float64   `json:"norm"`
	Sum    float64   `json:"sum"`
	SumAbs float64   `json:"sumabs"`
	First  []float64 `json:"first"`
}

func fullnetSummary(x []float32) fullnetStats {
	s := fullnetStats{N: len(x)}
	var ss float64
	for i, v := range x {
		f := float64(v)
		ss += f * f
		s.Sum += f
		s.SumAbs += math.Abs(f)
		if i < fullnetFirst {
			s.First = append(s.First, f)
		}
	}
	s.Norm = math.Sqrt(ss)
	return s
}

// fullnetFixture is one network's entry of testdata/nn/fullnet.json.
type fullnetFixture struct {
	Name        string                  `json:"name"`
	Loss        float64                 `json:"loss"`
	Outputs     [][]float64             `json:"outputs"`      // full values, [N, C, H, W] row-major
	ParamGrads  map[string]fullnetStats `json:"param_grads"`  // by Go parameter name
	TensorGrads map[string]fullnetStats `json:"tensor_grads"` // by Go tensor name
	Order       []string                `json:"order"`        // tensor names in forward order
}

type fullnetRun struct {
	spec    *Spec
	ps      *nn.ParamSet
	g       *nn.Graph
	built   *Built
	input   []float32
	targets [][]float32
	loss    float64
}

// fullnetStep builds the case's graph, sets input and targets and runs one Step.
func fullnetStep(t *testing.T, c fullnetCase) *fullnetRun {
	t.Helper()
	spec, err := New(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ps := nn.NewParamSet(fullnetSeed)
	b := nn.NewBuilder(ps, []int{fullnetN, 3, fullnetH, fullnetW})
	built, err := Build(spec, b)
	if err != nil {
		t.Fatal(err)
	}
	r := &fullnetRun{spec: spec, ps: ps, built: built}
	rng := fullnetRand(12345)
	r.input = make([]float32, fullnetN*3*fullnetH*fullnetW)
	for i := range r.input {
		r.input[i] = rng.next()
	}
	for _, o := range built.Outputs {
		tg := make([]float32, fullnetProd(o.Shape()))
		for i := range tg {
			tg[i] = 0.5 * rng.next()
		}
		r.targets = append(r.targets, tg)
	}
	// loss = sum_k mean((out_k - target_k)^2)
	b.Loss("mse", built.Outputs, func(ins, grads [][]float32) float64 {
		var total float64
		for k, x := range ins {
			tg := r.targets[k]
			var s float64
			inv := 1 / float64(len(x))
			for i, v := range x {
				d := float64(v) - float64(tg[i])
				s += d * d
				grads[k][i] = float32(2 * d * inv)
			}
			total += s * inv
		}
		return total
	})
	if r.g, err = b.Build(); err != nil {
		t.Fatal(err)
	}
	if err := r.g.SetInput(r.input); err != nil {
		t.Fatal(err)
	}
	// Export the initial weights before Step (Step updates BN running stats).
	if dir := os.Getenv("FULLNET_EXPORT"); dir != "" {
		fullnetExport(t, filepath.Join(dir, c.name), r)
	}
	losses, err := r.g.Step()
	if err != nil {
		t.Fatal(err)
	}
	r.loss = losses[0]
	if dir := os.Getenv("FULLNET_EXPORT"); dir != "" {
		fullnetExportGrads(t, filepath.Join(dir, c.name), r)
	}
	return r
}

// fullnetExportGrads writes prefix.grads.json: the Go loss, every named
// tensor's value and gradient and every trainable parameter's gradient after Step, in
// full, for comparing whole tensors with PyTorch while debugging.
func fullnetExportGrads(t *testing.T, prefix string, r *fullnetRun) {
	t.Helper()
	out := struct {
		Loss    float64              `json:"loss"`
		Tensors map[string][]float32 `json:"tensors"`
		Params  map[string][]float32 `json:"params"`
		Values  map[string][]float32 `json:"values"`
	}{r.loss, map[string][]float32{}, map[string][]float32{}, map[string][]float32{}}
	for _, ti := range r.g.Names() {
		if v, _ := r.g.Tensor(ti.Name); v != nil {
			out.Values[ti.Name] = v
		}
		if g := r.g.TensorGrad(ti.Name); g != nil {
			out.Tensors[ti.Name] = g
		}
	}
	for _, p := range r.ps.Params() {
		if p.Trainable {
			out.Params[p.Name] = p.Grad
		}
	}
	js, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prefix+".grads.json", js, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fullnetProd(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// fullnetExport writes prefix.json (config, parameters, layers, blob layout)
// and prefix.bin (float32 little-endian: parameters in ParamSet order, then
// the input, then the targets).
func fullnetExport(t *testing.T, prefix string, r *fullnetRun) {
	t.Helper()
	type pinfo struct {
		Name      string `json:"name"`
		Shape     []int  `json:"shape"`
		Trainable bool   `json:"trainable"`
	}
	type linfo struct {
		Name   string     `json:"name"`
		Kind   string     `json:"kind"`
		Inputs []string   `json:"inputs"`
		Act    string     `json:"act"`
		Bias   bool       `json:"bias"`
		Conv   ConvParams `json:"conv"`
		Pool   PoolParams `json:"pool"`
	}
	hdr := struct {
		Input   []int   `json:"input"`
		Outputs [][]int `json:"outputs"`
		Params  []pinfo `json:"params"`
		Layers  []linfo `json:"layers"`
	}{Input: []int{fullnetN, 3, fullnetH, fullnetW}}
	var blob []float32
	for _, p := range r.ps.Params() {
		hdr.Params = append(hdr.Params, pinfo{p.Name, p.Shape, p.Trainable})
		blob = append(blob, p.Data...)
	}
	blob = append(blob, r.input...)
	for i, o := range r.built.Outputs {
		hdr.Outputs = append(hdr.Outputs, o.Shape())
		blob = append(blob, r.targets[i]...)
	}
	for _, l := range r.spec.Layers {
		hdr.Layers = append(hdr.Layers, linfo{l.Name, l.Kind.String(), l.Inputs, l.Act.String(), l.Bias, l.Conv, l.Pool})
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prefix+".json", js, 0o644); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 4*len(blob))
	for i, v := range blob {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(prefix+".bin", raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fullnetClose reports whether got matches want within rel relative to scale.
func fullnetClose(got, want, scale, rel float64) bool {
	return math.Abs(got-want) <= rel*scale
}

// fullnetCompare checks one gradient summary against the reference: norm and
// sum of |.| within rel (relative), sum within rel x sum of |.|, each leading
// value within 10 rel x max(|value|, rms). floor is a lower bound on the norm
// used as scale (0 for none): see TestFullNetGradients on BN scales.
func fullnetCompare(got, want fullnetStats, rel, floor float64) string {
	if got.N != want.N {
		return fmt.Sprintf("size %d, want %d", got.N, want.N)
	}
	norm := math.Max(want.Norm, floor)
	sumAbs := math.Max(want.SumAbs, floor*math.Sqrt(float64(want.N)))
	rms := norm / math.Sqrt(float64(max(want.N, 1)))
	switch {
	case !fullnetClose(got.Norm, want.Norm, norm, rel):
		return fmt.Sprintf("norm %.6g, want %.6g (ratio %.4g)", got.Norm, want.Norm, got.Norm/want.Norm)
	case !fullnetClose(got.SumAbs, want.SumAbs, sumAbs, rel):
		return fmt.Sprintf("sum|.| %.6g, want %.6g", got.SumAbs, want.SumAbs)
	case !fullnetClose(got.Sum, want.Sum, sumAbs, rel):
		return fmt.Sprintf("sum %.6g, want %.6g (sum|.| %.4g)", got.Sum, want.Sum, want.SumAbs)
	}
	for i := range want.First {
		if i >= len(got.First) || !fullnetClose(got.First[i], want.First[i], math.Max(math.Abs(want.First[i]), rms), 10*rel) {
			return fmt.Sprintf("value %d: %.6g, want %.6g (rms %.3g)", i, got.First[i], want.First[i], rms)
		}
	}
	return ""
}

// fullnetBNScaleFloor: a BatchNorm scale gradient is compared on the scale of
// at least this fraction of the same layer's shift gradient. Where a BN+ReLU
// feeds a depthwise conv and then another BN, the loss is invariant to scaling
// that channel, so with zero shifts (at init) dL/dscale is exactly 0 in exact
// arithmetic: the reference values (~1e-5 of the shift gradient) and ours are
// float rounding of a sum that cancels, ~5% apart.
const fullnetBNScaleFloor = 1e-3

// TestFullNetGradients: one training Step of whole detectors (MobileNetV1 and
// ResNet18 YOLOv3 at width 0.25) gives PyTorch's loss, outputs, parameter
// gradients and layer-output gradients (testdata/nn/fullnet.json, float64).
//
// Tolerances are float32 rounding through ~35 BatchNorm layers at batch 2:
// PyTorch itself in float32 is ~1e-4 (activations) to ~3e-3 (gradient norms)
// away from its float64 result on these nets, the error doubling every few
// layers. MobileNetV1's tolerance is wider: one head pre-activation
// (head.1.tip, ~2e-4 from zero) falls on the other side of the LeakyReLU kink
// in float32, which changes that channel's gradient by ~50% and everything
// upstream by ~1%. Whole-tensor, op-by-op checks from our own forward values
// (gen_fullnet.py --local) agree to ~1e-6 everywhere.
func TestFullNetGradients(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "nn", "fullnet.json"))
	if err != nil && os.Getenv("FULLNET_EXPORT") == "" {
		t.Fatal(err)
	}
	var fx struct {
		Nets []fullnetFixture `json:"nets"`
	}
	if err == nil {
		if err := json.Unmarshal(raw, &fx); err != nil {
			t.Fatalf("testdata/nn/fullnet.json: %v", err)
		}
	}
	tests := []struct {
		name string
		rel  float64 // relative tolerance on norms and sums
	}{
		{"mobilenet_v1_x0.25", 3e-2},
		{"resnet18_x0.25", 1e-3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c fullnetCase
			for _, fc := range fullnetCases {
				if fc.name == tt.name {
					c = fc
				}
			}
			r := fullnetStep(t, c)
			var want *fullnetFixture
			for i := range fx.Nets {
				if fx.Nets[i].Name == tt.name {
					want = &fx.Nets[i]
				}
			}
			if want == nil {
				t.Skipf("%s: not in testdata/nn/fullnet.json (exported only)", tt.name)
			}
			if !fullnetClose(r.loss, want.Loss, want.Loss, tt.rel) {
				t.Errorf("loss %.8g, want %.8g", r.loss, want.Loss)
			}
			for k, o := range r.built.Outputs {
				got, _ := r.g.Tensor(o.Name())
				w := want.Outputs[k]
				if len(got) != len(w) {
					t.Fatalf("output %d: %d values, want %d", k, len(got), len(w))
				}
				var ss, maxd float64
				for i := range w {
					ss += w[i] * w[i]
					maxd = math.Max(maxd, math.Abs(float64(got[i])-w[i]))
				}
				if rms := math.Sqrt(ss / float64(len(w))); maxd > tt.rel*rms {
					t.Errorf("output %d (%s): max |diff| %.3g > %.0e x rms %.3g", k, o.Name(), maxd, tt.rel, rms)
				}
			}
			// Layer-output gradients, from the head backwards: the first
			// mismatch met going backwards is where the chain goes wrong.
			firstBad := ""
			for i := len(want.Order) - 1; i >= 0; i-- {
				name := want.Order[i]
				ws, ok := want.TensorGrads[name]
				if !ok {
					continue
				}
				g := r.g.TensorGrad(name)
				if g == nil {
					t.Errorf("tensor %s: no gradient in the Go graph", name)
					continue
				}
				if msg := fullnetCompare(fullnetSummary(g), ws, tt.rel, 0); msg != "" {
					t.Errorf("grad of tensor %s: %s", name, msg)
					if firstBad == "" {
						firstBad = name
					}
				}
			}
			if firstBad != "" {
				t.Errorf("first tensor gradient mismatch, from the outputs backwards: %s", firstBad)
			}
			n := 0
			for _, p := range r.ps.Params() {
				if !p.Trainable {
					continue
				}
				n++
				ws, ok := want.ParamGrads[p.Name]
				if !ok {
					t.Errorf("param %s: not in the fixture", p.Name)
					continue
				}
				floor := 0.0
				if base, ok := strings.CutSuffix(p.Name, ".bn.scale"); ok {
					floor = fullnetBNScaleFloor * want.ParamGrads[base+".bn.bias"].Norm
				}
				if msg := fullnetCompare(fullnetSummary(p.Grad), ws, tt.rel, floor); msg != "" {
					t.Errorf("grad of param %s: %s", p.Name, msg)
				}
			}
			if n != len(want.ParamGrads) {
				t.Errorf("%d trainable parameters, fixture has %d", n, len(want.ParamGrads))
			}
		})
	}
}

// fullnetGTs are the fixed ground truths of TestFullNetTrainSteps per image:
// normalised centre x, y, width, height, label (score 1).
var fullnetGTs = [][][5]float32{
	{{0.30, 0.40, 0.20, 0.25, 0}, {0.70, 0.60, 0.50, 0.45, 1}, {0.50, 0.50, 0.90, 0.80, 2}},
	{{0.20, 0.75, 0.15, 0.30, 2}, {0.60, 0.30, 0.40, 0.35, 0}},
}

const (
	fullnetTrainSteps  = 30
	fullnetTrainLR     = 2e-3
	fullnetObjBiasInit = -4.59512 // logit(0.01), as the presets
)

// fullnetTrainRun runs fullnetTrainSteps SGD steps (momentum 0.9, decay 5e-4
// on conv weights, constant lr) of the YOLOv3 operator-path loss on one fixed
// batch and returns the loss before each step and the final RMS of every
// trainable parameter.
func fullnetTrainRun(t *testing.T, c fullnetCase) ([]float64, map[string]float64) {
	t.Helper()
	spec, err := New(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ps := nn.NewParamSet(fullnetSeed)
	b := nn.NewBuilder(ps, []int{fullnetN, 3, fullnetH, fullnetW})
	built, err := Build(spec, b)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range spec.Outputs {
		p := ps.Get(spec.Resolve(o) + ".bias")
		for a := 0; a < spec.AnchorsPerScale[i]; a++ {
			p.Data[a*(5+spec.NumClasses)+4] = fullnetObjBiasInit
		}
	}
	crit, err := loss.New(loss.Config{Path: loss.OperatorPath, Anchors: anchor.Defaults(), Masks: anchor.DefaultMasks(),
		Strides: spec.Strides, NumClasses: spec.NumClasses, IgnoreThresh: 0.7, ScaleXY: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer crit.Close()
	gts := make([][]loss.GT, fullnetN)
	for i, im := range fullnetGTs {
		for _, g := range im {
			gts[i] = append(gts[i], loss.GT{CX: g[0], CY: g[1], W: g[2], H: g[3], Label: int(g[4]), Score: 1})
		}
	}
	var shapes [][4]int
	for _, o := range built.Outputs {
		s := o.Shape()
		shapes = append(shapes, [4]int{s[0], s[1], s[2], s[3]})
	}
	var lossErr error
	b.Loss("yolo", built.Outputs, func(ins, grads [][]float32) float64 {
		p, err := crit.Forward(ins, shapes, gts, fullnetH, fullnetW, grads)
		if err != nil {
			lossErr = err
			return math.NaN()
		}
		return p.Total
	})
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	rng := fullnetRand(12345)
	in := g.Input()
	for i := range in {
		in[i] = rng.next()
	}
	if dir := os.Getenv("FULLNET_EXPORT"); dir != "" {
		fullnetExport(t, filepath.Join(dir, c.name+".train"), &fullnetRun{spec: spec, ps: ps, built: built, input: in,
			targets: make([][]float32, len(built.Outputs))})
	}
	sgd := nn.NewSGD(ps, 0.9, 5e-4)
	var losses []float64
	for it := 0; it < fullnetTrainSteps; it++ {
		vals, err := g.Step()
		if err != nil || lossErr != nil {
			t.Fatalf("step %d: %v %v", it, err, lossErr)
		}
		losses = append(losses, vals[0])
		sgd.Step(fullnetTrainLR)
	}
	rms := map[string]float64{}
	for _, p := range ps.Params() {
		if p.Trainable {
			s := fullnetSummary(p.Data)
			rms[p.Name] = s.Norm / math.Sqrt(float64(s.N))
		}
	}
	return losses, rms
}

// TestFullNetTrainSteps: 30 SGD steps of the real YOLOv3 loss on one fixed
// batch track PyTorch's (testdata/nn/fullnet.json "train": same initial
// weights, same loss, torch.optim.SGD with decay on conv weights only,
// float64). This checks the composition of graph, loss and solver over time.
//
// The trajectory is chaotic at this size (batch 2, lr 2e-3): PyTorch in
// float32 leaves its own float64 run by ~5% at step 2 and ~30% at some later
// steps. So only what is stable is compared: the loss before any update
// (tight), after the first update, the mean loss of the last 10 steps, and the
// final RMS of every conv weight, which grows ~100x in the stem and first
// depthwise layers in both frameworks (0.27 -> ~24 in backbone.conv1).
func TestFullNetTrainSteps(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "nn", "fullnet.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Train []struct {
			Name   string             `json:"name"`
			Losses []float64          `json:"losses"`
			RMS    map[string]float64 `json:"rms"`
		} `json:"train"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatalf("testdata/nn/fullnet.json: %v", err)
	}
	tests := []struct {
		name      string
		first     float64 // relative, loss before any update
		second    float64 // relative, loss after one update
		tail      float64 // relative, mean loss of the last 10 steps
		weightTol float64 // relative, final RMS of each conv weight
	}{
		{"mobilenet_v1_x0.25", 1e-4, 3e-2, 0.25, 0.1},
		{"resnet18_x0.25", 1e-4, 3e-2, 0.25, 0.1},
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c fullnetCase
			for _, fc := range fullnetCases {
				if fc.name == tt.name {
					c = fc
				}
			}
			losses, rms := fullnetTrainRun(t, c)
			t.Logf("losses %.5g", losses)
			found := false
			for _, w := range fx.Train {
				if w.Name != tt.name {
					continue
				}
				found = true
				if len(w.Losses) != len(losses) {
					t.Fatalf("%d steps, fixture has %d", len(losses), len(w.Losses))
				}
				if !fullnetClose(losses[0], w.Losses[0], w.Losses[0], tt.first) {
					t.Errorf("loss before training %.6g, want %.6g", losses[0], w.Losses[0])
				}
				if !fullnetClose(losses[1], w.Losses[1], w.Losses[1], tt.second) {
					t.Errorf("loss after one step %.6g, want %.6g", losses[1], w.Losses[1])
				}
				got, want := mean(losses[len(losses)-10:]), mean(w.Losses[len(w.Losses)-10:])
				if !fullnetClose(got, want, want, tt.tail) {
					t.Errorf("mean loss of the last 10 steps %.5g, want %.5g", got, want)
				}
				for name, want := range w.RMS {
					if !strings.HasSuffix(name, ".weight") {
						continue
					}
					if !fullnetClose(rms[name], want, want, tt.weightTol) {
						t.Errorf("%s: final RMS %.5g, want %.5g", name, rms[name], want)
					}
				}
			}
			if !found {
				t.Fatalf("%s: no training reference in testdata/nn/fullnet.json", tt.name)
			}
		})
	}
}
