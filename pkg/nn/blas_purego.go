//go:build !openblas || !cgo

package nn

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLASName names the sgemm implementation compiled in.
const BLASName = "gonum"

var goBLAS gonum.Implementation

// BLASCore names the kernel set: gonum's pure-Go one.
func BLASCore() string { return "go" }

// SetBLASCore selects OpenBLAS kernels; the pure-Go build has none to select.
func SetBLASCore(core string) error {
	return fmt.Errorf("nn: built without OpenBLAS (build tag openblas); cannot select BLAS core %q", core)
}

// sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, where
// op(A) is m x k and op(B) is k x n. Zero-sized products are a no-op.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleRows(m, n, beta, c, ldc)
		return
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	goBLAS.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
