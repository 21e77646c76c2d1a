//go:build !amd64

package simd

// No vector kernels on this architecture: the Go loops do all the work.
const Available = false

// The kernels are never called here (Available is false).

func Sum32x4([]float32) (s [4]float32)                                      { return }
func SqDev32x4([]float32, float32) (s [4]float32)                           { return }
func AffineAct4(x, y []float32, scale, shift, slope float32, relu bool)     {}
func BnDx4(y, dy, x, dx []float32, mu, k, c0, c1, slope float32, relu bool) {}

func BnSums2(y, dy, x []float32, mu, slope float32, relu bool) (s [4]float32) { return }

func BlkSum4([]float32, int, int) (s [16]float32)               { return }
func BlkSqDev4([]float32, int, int, [4]float32) (s [16]float32) { return }
func BlkAffineAct4(x, y []float32, n, st int, sc, sh [4]float32, sl float32, act int) {
}
func BlkBnDx4(y, dy, x, dx []float32, n, st int, mu, k, c0, c1 [4]float32, sl float32, act int) {
}
func BlkBnSums2(y, dy, x []float32, n, st int, mu [4]float32, sl float32, act int) (s [16]float32) {
	return
}
