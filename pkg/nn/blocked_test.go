package nn

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// blockedNet is a training graph of ConvBNAct chains as MobileNetV1, ResNet
// and the YOLOv3 head build them (3x3, strided 3x3, depthwise and 1x1
// convolutions, ReLU, leaky and no activation, a residual add, a standalone
// activation, a tensor read by two convolutions, one by a convolution and a
// concatenation), with two losses.
func blockedNet(t *testing.T, n int) (*Graph, *ParamSet) {
	t.Helper()
	ps := NewParamSet(5)
	b := NewBuilder(ps, []int{n, 3, 16, 16})
	b.KeepGrads()
	x := b.ConvBNAct("stem", b.Input(), ConvSpec{Out: 16, K: 3, Stride: 2, Pad: 1}, ActReLU) // 8x8
	d1 := b.ConvBNAct("d1", x, ConvSpec{Out: 16, K: 3, Pad: 1, Groups: 16}, ActReLU)
	p1 := b.ConvBNAct("p1", d1, ConvSpec{Out: 32, K: 1}, ActReLU)
	d2 := b.ConvBNAct("d2", p1, ConvSpec{Out: 32, K: 3, Stride: 2, Pad: 1, Groups: 32}, ActReLU) // 4x4
	p2 := b.ConvBNAct("p2", d2, ConvSpec{Out: 48, K: 1}, ActLeaky)
	// a residual block (ResNet's BasicBlock) and a convolution + activation
	r1 := b.ConvBNAct("r1", p2, ConvSpec{Out: 48, K: 3, Pad: 1}, ActReLU)
	r2 := b.ConvBNAct("r2", r1, ConvSpec{Out: 48, K: 3, Pad: 1}, ActNone)
	res := b.AddAct("res", r2, p2, ActReLU)
	act := b.Act("act", b.Conv("cv", res, ConvSpec{Out: 48, K: 1}, false), ActLeaky)
	h1 := b.ConvBNAct("h1", act, ConvSpec{Out: 32, K: 3, Pad: 1}, ActNone)
	h2 := b.ConvBNAct("h2", act, ConvSpec{Out: 32, K: 1}, ActLeaky) // two convolution readers
	tip := b.ConvBNAct("tip", b.Concat("cat", h1, h2), ConvSpec{Out: 16, K: 1}, ActLeaky)
	out0 := b.Conv("out0", tip, ConvSpec{Out: 6, K: 1}, true)
	up := b.Upsample2x("up", tip) // tip: read by a convolution and an upsample: plain
	out1 := b.Conv("out1", b.Concat("cat2", up, p1), ConvSpec{Out: 6, K: 3, Pad: 1}, true)
	projLoss(b, "l0", out0, 1)
	projLoss(b, "l1", out1, 2)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	copy(g.Input(), randSlice(rand.New(rand.NewPCG(uint64(n), 6)), len(g.Input())))
	return g, ps
}

// TestBlockedTrainingMatchesPlain: training steps (every tensor, every
// tensor's gradient, every parameter's gradient and value after SGD) and
// an inference pass of a graph that keeps ConvBNAct tensors in oneDNN's
// blocked layout (nChw16c with AVX-512, nChw8c with AVX2) give the same bits
// as with every tensor plain, at batches 3 and 8 and 1 to 3 workers (also
// with another worker count than the graph was built with); and tensors
// were kept blocked.
func TestBlockedTrainingMatchesPlain(t *testing.T) {
	if !useDNNL || !dnnlReady {
		t.Skip("no oneDNN in this build")
	}
	defer func() { blockedTraining = true }()
	// run builds the graph, then trains and infers with stepProcs workers
	// (0: those it was built with).
	run := func(n, stepProcs int) (*trainTrace, int) {
		g, ps := blockedNet(t, n)
		if stepProcs > 0 {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(stepProcs))
		}
		blocked := 0
		for _, tn := range g.b.tensors {
			if tn.blk > 0 {
				blocked++
			}
		}
		return trainRun(t, g, ps, true), blocked
	}
	for _, n := range []int{3, 8} {
		t.Run(fmt.Sprintf("batch%d", n), func(t *testing.T) {
			blockedTraining = false
			var ref *trainTrace
			withProcs(2, func() { ref, _ = run(n, 0) })
			blockedTraining = true
			for _, procs := range []int{1, 2, 3} {
				var tr *trainTrace
				var blocked int
				withProcs(procs, func() { tr, blocked = run(n, 0) })
				// oneDNN's training kernels block by 16 (AVX-512) or 8 (AVX2)
				// channels; below AVX2 (ONEDNN_MAX_CPU_ISA=SSE41) they need not.
				if isa := dnnlISA(); blocked < 14 && (isa == "avx2" || strings.HasPrefix(isa, "avx512")) {
					t.Errorf("GOMAXPROCS=%d: %d tensors kept in a blocked layout (oneDNN %s), want at least 14", procs, blocked, isa)
				}
				if d := ref.firstDiff(tr); d != "" {
					t.Errorf("GOMAXPROCS=%d: blocked layouts differ from plain: %s", procs, d)
				}
				// planned for procs workers, run with another count (other
				// image runs: primitives for other batch sizes)
				withProcs(procs, func() { tr, _ = run(n, procs%3+1) })
				if d := ref.firstDiff(tr); d != "" {
					t.Errorf("built at GOMAXPROCS=%d, run at %d: blocked layouts differ from plain: %s", procs, procs%3+1, d)
				}
			}
		})
	}
}
