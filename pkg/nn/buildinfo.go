package nn

import (
	"runtime"
	"strconv"
)

// BuildInfo says which kernels this build runs, for --version and reports:
// "sgemm openblas, kernels SkylakeX, conv onednn avx512_core, GOMAXPROCS 2" (results are
// the same bits for every GOMAXPROCS, but not across kernel sets).
func BuildInfo() string {
	return "sgemm " + BLASName + ", kernels " + BLASCore() + ", conv " + ConvName() + ", GOMAXPROCS " + strconv.Itoa(runtime.GOMAXPROCS(0))
}

// ConvName names the convolution kernels in use: "onednn ISA" (build tag dnnl,
// unless YOLODISTILL_NO_DNNL is set) or "own" (im2col + sgemm, direct depthwise).
func ConvName() string {
	if useDNNL && dnnlReady {
		return DNNLName + " " + dnnlISA()
	}
	return "own"
}
