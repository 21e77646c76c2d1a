//go:build !amd64

package simd

// No vector kernels on this architecture: the Go loops do all the work.
const Available = false

// The kernels are never called here (Available is false).

func Sum32x4([]float32) (s [4]float32)                                { return }
func SqDev32x4([]float32, float32) (s [4]float32)                     { return }
func ReluAffine4(x, y []float32, scale, shift float32)                {}
func LeakyAffine4(x, y []float32, scale, shift, slope float32)        {}
func BnDxReLU4(y, dy, x, dx []float32, mu, k, c0, c1 float32)         {}
func BnDxLeaky4(y, dy, x, dx []float32, mu, k, c0, c1, slope float32) {}

func BnSumsReLU2(y, dy, x []float32, mu float32) (s [4]float32)         { return }
func BnSumsLeaky2(y, dy, x []float32, mu, slope float32) (s [4]float32) { return }
