package loss

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkForwardBackward: loss and gradient for batch 8 at 320x320, 20
// classes (outputs 10x10, 20x20, 40x40), 8 GTs per image.
func BenchmarkForwardBackward(b *testing.B) {
	for _, bc := range []struct {
		name    string
		path    Path
		workers int
	}{
		{"operator/workers=1", OperatorPath, 1},
		{"operator/workers=max", OperatorPath, 0},
		{"fine/workers=max", FineGrainedPath, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(5, 6))
			outs, shapes, gts := randomBatch(r, 8, 20, 320, 7)
			grads := make([][]float32, len(outs))
			for s := range outs {
				grads[s] = make([]float32, len(outs[s]))
			}
			cfg := DefaultConfig(20)
			cfg.Path, cfg.Workers = bc.path, bc.workers
			c, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Forward(outs, shapes, gts, 320, 320, grads); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
