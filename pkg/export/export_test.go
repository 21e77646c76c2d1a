package export_test

import (
	"math"
	"testing"

	"yolodistill/pkg/export"
)

// TestFoldBN: a folded convolution's output equals conv then inference
// BatchNorm, channel by channel, for a 2-channel 1x1 convolution.
func TestFoldBN(t *testing.T) {
	w := []float32{0.5, -1, 2, 0.25} // [2, 2, 1, 1]
	scale, bias := []float32{1.5, 0.5}, []float32{0.1, -0.2}
	mean, vr := []float32{0.3, -0.4}, []float32{2, 0.5}
	fw, fb := export.FoldBN(w, scale, bias, mean, vr, export.BNEps)
	x := []float64{0.7, -1.3}
	for o := 0; o < 2; o++ {
		conv := float64(w[2*o])*x[0] + float64(w[2*o+1])*x[1]
		want := float64(scale[o])*(conv-float64(mean[o]))/math.Sqrt(float64(vr[o])+export.BNEps) + float64(bias[o])
		got := float64(fw[2*o])*x[0] + float64(fw[2*o+1])*x[1] + float64(fb[o])
		if math.Abs(got-want) > 1e-6 {
			t.Errorf("channel %d: folded %v, conv+BN %v", o, got, want)
		}
	}
}
