package nn

import (
	"math/rand/v2"
	"testing"
)

// benchGraph builds x -> layers -> sum loss and returns the graph and the
// forward FLOPs of one step's forward pass.
func benchGraph(b *testing.B, shape []int, layers func(bd *Builder, x *Tensor) *Tensor) (*Graph, int64) {
	ps := NewParamSet(1)
	bd := NewBuilder(ps, shape)
	out := layers(bd, bd.Input())
	bd.Loss("sum", []*Tensor{out}, func(ins, grads [][]float32) float64 {
		var s float64
		for i, v := range ins[0] {
			s += float64(v)
			grads[0][i] = 1e-3
		}
		return s
	})
	g, err := bd.Build()
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range g.Input() {
		g.Input()[i] = float32(rng.NormFloat64())
	}
	var flops int64
	for _, t := range g.Names() {
		flops += t.FLOPs
	}
	return g, flops
}

func runTrain(b *testing.B, g *Graph, flops int64) {
	if _, err := g.Step(); err != nil { // warm-up: first-use buffers
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := g.Step(); err != nil {
			b.Fatal(err)
		}
	}
	// a train step is about 3x the forward FLOPs (forward, dX, dW)
	b.ReportMetric(3*float64(flops)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func runInfer(b *testing.B, g *Graph, flops int64) {
	if err := g.Forward(false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := g.Forward(false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(flops)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// head-like layer at 320 px, stride 8: 128 -> 256 channels, 3x3, 40x40, batch 8.
func convBNLeaky(bd *Builder, x *Tensor) *Tensor {
	y := bd.ConvBNAct("a", x, ConvSpec{Out: 256, K: 3, Pad: 1}, ActLeaky)
	return bd.ConvBNAct("b", y, ConvSpec{Out: 128, K: 1}, ActLeaky)
}

// MobileNetV1 block at 320 px, stride 8: depthwise 3x3 on 256 channels at 40x40, then 1x1 to 256.
func dwBlock(bd *Builder, x *Tensor) *Tensor {
	y := bd.ConvBNAct("dw", x, ConvSpec{Out: 256, K: 3, Pad: 1, Groups: 256}, ActReLU)
	return bd.ConvBNAct("pw", y, ConvSpec{Out: 256, K: 1}, ActReLU)
}

func BenchmarkConvBNLeakyTrain(b *testing.B) {
	g, f := benchGraph(b, []int{8, 128, 40, 40}, convBNLeaky)
	runTrain(b, g, f)
}

func BenchmarkConvBNLeakyInfer(b *testing.B) {
	g, f := benchGraph(b, []int{8, 128, 40, 40}, convBNLeaky)
	runInfer(b, g, f)
}

// Batch 1 (row bands of one image spread over the workers) and batch 3
// (fewer images than weight-gradient chunks on some machines).
func BenchmarkConvBNLeakyInferBatch1(b *testing.B) {
	g, f := benchGraph(b, []int{1, 128, 40, 40}, convBNLeaky)
	runInfer(b, g, f)
}

func BenchmarkConvBNLeakyTrainBatch3(b *testing.B) {
	g, f := benchGraph(b, []int{3, 128, 40, 40}, convBNLeaky)
	runTrain(b, g, f)
}

func BenchmarkDepthwiseBlockTrain(b *testing.B) {
	g, f := benchGraph(b, []int{8, 256, 40, 40}, dwBlock)
	runTrain(b, g, f)
}

func BenchmarkDepthwiseBlockInfer(b *testing.B) {
	g, f := benchGraph(b, []int{8, 256, 40, 40}, dwBlock)
	runInfer(b, g, f)
}

// ResNet stem at 320 px: 7x7/2 conv to 64 + BN + ReLU + 3x3/2 max pool, batch 8.
func BenchmarkStemInfer(b *testing.B) {
	g, f := benchGraph(b, []int{8, 3, 320, 320}, func(bd *Builder, x *Tensor) *Tensor {
		y := bd.ConvBNAct("stem", x, ConvSpec{Out: 64, K: 7, Stride: 2, Pad: 3}, ActReLU)
		return bd.MaxPool("pool", y, 3, 2, 1)
	})
	runInfer(b, g, f)
}
