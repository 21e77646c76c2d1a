package nn

import (
	"math/rand/v2"
	"testing"
)

// Kernel-level benchmarks on MobileNetV1's stride-8 depthwise layer at 320 px
// (batch 8, 256 channels, 40x40) and BatchNorm+leaky on a head layer.

func dwBenchSetup(stride int) (convGeom, []float32, []float32, []float32, []float32) {
	g := newConvGeom(8, 256, 40, 40, 256, 3, stride, 1, 256)
	rng := rand.New(rand.NewPCG(1, 1))
	x := randSlice(rng, g.N*g.C*g.H*g.W)
	w := randSlice(rng, g.Cout*g.CKK)
	y := randSlice(rng, g.N*g.Cout*g.OH*g.OW)
	return g, x, w, y, randSlice(rng, len(y))
}

func dwFlops(g *convGeom) float64 { return 2 * float64(g.N*g.Cout*g.OH*g.OW*g.CKK) }

func BenchmarkKernelDepthwiseForward(b *testing.B) {
	g, x, w, y, _ := dwBenchSetup(1)
	for i := 0; i < b.N; i++ {
		dwForward(numWorkers(), &g, x, w, nil, y)
	}
	b.ReportMetric(dwFlops(&g)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkKernelDepthwiseBackwardData(b *testing.B) {
	g, x, w, _, dy := dwBenchSetup(1)
	for i := 0; i < b.N; i++ {
		dwBackwardData(&g, w, dy, x)
	}
	b.ReportMetric(dwFlops(&g)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkKernelDepthwiseBackwardWeight(b *testing.B) {
	g, x, w, _, dy := dwBenchSetup(1)
	for i := 0; i < b.N; i++ {
		dwBackwardWeight(&g, x, dy, w)
	}
	b.ReportMetric(dwFlops(&g)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkKernelBNLeakyTrain(b *testing.B) { benchBNTrain(b, 0) }

// BenchmarkKernelBNLeakyTrainBlocked: the same in nChw16c (bn_blocked.go).
func BenchmarkKernelBNLeakyTrainBlocked(b *testing.B) { benchBNTrain(b, 16) }

func benchBNTrain(b *testing.B, blk int) {
	geom := bnGeom{N: 8, C: 256, HW: 1600, cfg: DefaultBN, act: ActLeaky, blk: blk}
	rng := rand.New(rand.NewPCG(1, 1))
	x := randSlice(rng, 8*256*1600)
	y := make([]float32, len(x))
	c := make([]float32, 256)
	g1, b1, m, is, rm, rv := randSlice(rng, 256), randSlice(rng, 256), slicesOf(c), slicesOf(c), slicesOf(c), slicesOf(c)
	for i := 0; i < b.N; i++ {
		bnForwardTrain(&geom, x, g1, b1, y, m, is, rm, rv)
	}
	b.ReportMetric(float64(len(x)*4*2)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s(x+y)")
}

func BenchmarkKernelBNLeakyBackward(b *testing.B) { benchBNBackward(b, 0) }

// BenchmarkKernelBNLeakyBackwardBlocked: the same in nChw16c.
func BenchmarkKernelBNLeakyBackwardBlocked(b *testing.B) { benchBNBackward(b, 16) }

func benchBNBackward(b *testing.B, blk int) {
	geom := bnGeom{N: 8, C: 256, HW: 1600, cfg: DefaultBN, act: ActLeaky, blk: blk}
	rng := rand.New(rand.NewPCG(1, 1))
	x := randSlice(rng, 8*256*1600)
	y, dy, dx := randSlice(rng, len(x)), randSlice(rng, len(x)), make([]float32, len(x))
	c := make([]float32, 256)
	for i := 0; i < b.N; i++ {
		bnBackward(&geom, x, y, slicesOf(c), slicesOf(c), slicesOf(c), dy, dx, slicesOf(c), slicesOf(c))
	}
	b.ReportMetric(float64(len(x)*4*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s(x,y,dy,dx)")
}

func slicesOf(c []float32) []float32 { return append([]float32(nil), c...) }

// BenchmarkKernelMaxPool: ResNet34's stem pool at 320 px (batch 8, 64
// channels, 160x160, 3x3 stride 2 pad 1), after a ReLU (a quarter zeros):
// with the arg-maxes a training graph keeps, and without (inference).
func BenchmarkKernelMaxPool(b *testing.B) {
	g := newPoolGeom(8, 64, 160, 160, 3, 2, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	x := randSlice(rng, g.N*g.C*g.H*g.W)
	for i, v := range x {
		x[i] = max(v, 0)
	}
	y := make([]float32, g.N*g.C*g.OH*g.OW)
	for _, c := range []struct {
		name string
		arg  []int32
	}{{"train", make([]int32, len(y))}, {"infer", nil}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				maxPoolForward(numWorkers(), &g, x, y, c.arg)
			}
			b.ReportMetric(float64(len(x)+len(y))*4*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s(x+y)")
		})
	}
}
