//go:build openblas && cgo

package nn

/*
#cgo LDFLAGS: -lopenblas -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

// Declared here rather than through <cblas.h> so that only the shared library is
// needed at build time. The enum arguments are plain ints in the C ABI.
void cblas_sgemm(int order, int transA, int transB, int m, int n, int k,
	float alpha, const float *a, int lda, const float *b, int ldb,
	float beta, float *c, int ldc);
void openblas_set_num_threads(int n);
char *openblas_get_corename(void);

// nn_set_core re-selects OpenBLAS's kernels as if OPENBLAS_CORETYPE had been
// set before the library was loaded, through the DYNAMIC_ARCH entry points
// (looked up at run time: other builds lack them). It returns 0 when the
// library cannot.
static int nn_set_core(const char *core) {
	void (*init)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
	void (*quit)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
	if (!init || !quit) return 0;
	setenv("OPENBLAS_CORETYPE", core, 1);
	quit();
	init();
	return 1;
}
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// BLASName names the sgemm implementation compiled in.
const BLASName = "openblas"

// BLASCore names the kernel set OpenBLAS uses (e.g. "SkylakeX", "Haswell").
func BLASCore() string { return C.GoString(C.openblas_get_corename()) }

func init() {
	// OpenBLAS's own worker threads spin while idle and steal cores from the
	// goroutines that parallelise our kernels over batch items: run it on the
	// calling thread only.
	C.openblas_set_num_threads(1)
	upgradeFallbackCore()
}

// upgradeFallbackCore replaces OpenBLAS's generic fallback kernels when it
// did not recognise the CPU. OpenBLAS 0.3.21 (Debian 12) does not know CPUs
// newer than it (Sapphire and Emerald Rapids, for one) and runs its Prescott
// kernels (SSE3) on them: 3.5x slower than its AVX-512 kernels on an Emerald
// Rapids Xeon (BenchmarkResNet34YOLOv3Infer320: 0.53 vs 1.82 images/s). When
// OPENBLAS_CORETYPE does not choose the kernels and OpenBLAS fell back, take
// the best set the CPU's instructions allow: SkylakeX (AVX-512), Haswell
// (AVX2 and FMA), SandyBridge (AVX). BLASCore says which runs.
func upgradeFallbackCore() {
	if _, set := os.LookupEnv("OPENBLAS_CORETYPE"); set || !strings.EqualFold(BLASCore(), "Prescott") {
		return
	}
	for _, core := range []string{"SkylakeX", "Haswell", "SandyBridge"} {
		if SetBLASCore(core) == nil {
			return
		}
	}
}

// SetBLASCore switches OpenBLAS to the named kernel set ("SkylakeX",
// "Cooperlake", "Haswell", ... as OPENBLAS_CORETYPE takes them), which
// OpenBLAS otherwise fixes when the library is loaded, from OPENBLAS_CORETYPE
// or by detection. Call it before any graph runs, never concurrently with
// one. It fails when the library is not a DYNAMIC_ARCH build, when OpenBLAS
// does not know the name (it then keeps detecting), or when the CPU lacks the
// kernels' instructions (AVX2; AVX-512 F/BW/DQ/VL/CD for SkylakeX and
// Cooperlake).
func SetBLASCore(core string) error {
	need := map[string]bool{
		// The kernels OpenBLAS falls back to on CPUs it does not know
		// (Prescott: SSE3, which every x86-64 CPU running Go has).
		"prescott":    true,
		"nehalem":     cpu.X86.HasSSE42,
		"sandybridge": cpu.X86.HasAVX,
		"haswell":     cpu.X86.HasAVX2 && cpu.X86.HasFMA,
		"zen":         cpu.X86.HasAVX2 && cpu.X86.HasFMA,
		"skylakex": cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ &&
			cpu.X86.HasAVX512VL && cpu.X86.HasAVX512CD,
		"cooperlake": cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ &&
			cpu.X86.HasAVX512VL && cpu.X86.HasAVX512CD && cpu.X86.HasAVX512BF16,
	}
	ok, known := need[strings.ToLower(core)]
	if !known {
		return fmt.Errorf("nn: BLAS core %q not supported here (Prescott, Nehalem, SandyBridge, Haswell, Zen, SkylakeX, Cooperlake)", core)
	}
	if !ok {
		return fmt.Errorf("nn: this CPU lacks the instructions of BLAS core %s", core)
	}
	c := C.CString(core)
	defer C.free(unsafe.Pointer(c))
	if C.nn_set_core(c) == 0 {
		return fmt.Errorf("nn: this OpenBLAS cannot switch kernels (not a DYNAMIC_ARCH build)")
	}
	if got := BLASCore(); !strings.EqualFold(got, core) {
		return fmt.Errorf("nn: OpenBLAS runs %s kernels after asking for %s", got, core)
	}
	return nil
}

const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
	cblasTrans    = 112
)

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
	ta, tb := C.int(cblasNoTrans), C.int(cblasNoTrans)
	if transA {
		ta = cblasTrans
	}
	if transB {
		tb = cblasTrans
	}
	C.cblas_sgemm(cblasRowMajor, ta, tb, C.int(m), C.int(n), C.int(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.int(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.int(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.int(ldc))
}
