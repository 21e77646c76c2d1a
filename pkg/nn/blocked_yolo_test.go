package nn_test

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"yolodistill/pkg/nn"
	"yolodistill/pkg/yolo"
)

// TestBlockedYOLOv3MatchesPlain: two SGD steps of the whole MobileNetV1-,
// ResNet18- and ResNet34-YOLOv3 (width 0.25, 64 px, 3 images: uneven image
// runs and weight-gradient chunks) give the same losses, gradients,
// parameters and head outputs, bit for bit, with training tensors kept in
// oneDNN's blocked layouts as with every tensor plain.
func TestBlockedYOLOv3MatchesPlain(t *testing.T) {
	conv := nn.ConvName()
	if !strings.HasPrefix(conv, "onednn") {
		t.Skip("no oneDNN in this build: every tensor is plain")
	}
	// oneDNN's training kernels block channels from AVX2 on (ONEDNN_MAX_CPU_ISA=SSE41: not)
	wantBlocked := strings.Contains(conv, "avx2") || strings.Contains(conv, "avx512")
	defer nn.SetBlockedTraining(true)
	for _, bb := range []string{yolo.BackboneMobileNetV1, yolo.BackboneResNet18, yolo.BackboneResNet34} {
		t.Run(bb, func(t *testing.T) {
			nn.SetBlockedTraining(false)
			want, _ := yoloTrainHash(t, bb)
			nn.SetBlockedTraining(true)
			got, blocked := yoloTrainHash(t, bb)
			if got != want {
				t.Errorf("blocked layouts (%d tensors): hash %x, plain %x", blocked, got, want)
			}
			if wantBlocked && blocked < 20 {
				t.Errorf("%d tensors kept blocked (%s), want at least 20", blocked, conv)
			}
		})
	}
}

// yoloTrainHash trains backbone's detector two steps against fixed targets
// and hashes everything it produced; it also returns the number of tensors
// the graph kept blocked.
func yoloTrainHash(t *testing.T, backbone string) (uint64, int) {
	spec, err := yolo.New(yolo.Config{Backbone: backbone, BackboneWidth: 0.25, HeadWidth: 0.25, NumClasses: 3})
	if err != nil {
		t.Fatal(err)
	}
	ps := nn.NewParamSet(3)
	b := nn.NewBuilder(ps, []int{3, 3, 64, 64})
	built, err := yolo.Build(spec, b)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	targets := make([][]float32, len(built.Outputs))
	for i, o := range built.Outputs {
		n := 1
		for _, d := range o.Shape() {
			n *= d
		}
		targets[i] = make([]float32, n)
		for j := range targets[i] {
			targets[i][j] = float32(r.NormFloat64())
		}
	}
	b.Loss("mse", built.Outputs, func(ins, grads [][]float32) float64 {
		total := 0.0
		for i, x := range ins {
			for j, v := range x {
				d := float64(v - targets[i][j])
				total += d * d
				grads[i][j] = float32(2 * d)
			}
		}
		return total
	})
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	for i := range g.Input() {
		g.Input()[i] = float32(r.NormFloat64())
	}
	sgd := nn.NewSGD(ps, 0.9, 5e-4)
	h := fnv.New64a()
	for range 2 {
		losses, err := g.Step()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(h, losses)
		sgd.Step(1e-3)
	}
	for _, p := range ps.Params() {
		for _, v := range p.Data {
			fmt.Fprint(h, math.Float32bits(v), " ")
		}
		for _, v := range p.Grad {
			fmt.Fprint(h, math.Float32bits(v), " ")
		}
	}
	if err := g.Forward(false); err != nil {
		t.Fatal(err)
	}
	for _, o := range built.Outputs {
		v, _ := g.Tensor(o.Name())
		for _, x := range v {
			fmt.Fprint(h, math.Float32bits(x), " ")
		}
	}
	return h.Sum64(), nn.BlockedTensors(g)
}
