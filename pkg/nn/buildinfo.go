package nn

import (
	"runtime"
	"strconv"
)

// BuildInfo says which kernels this build runs, for --version and reports:
// "sgemm openblas, kernels SkylakeX, GOMAXPROCS 2" (results are the same bits
// for every GOMAXPROCS, but not across kernel sets).
func BuildInfo() string {
	return "sgemm " + BLASName + ", kernels " + BLASCore() + ", GOMAXPROCS " + strconv.Itoa(runtime.GOMAXPROCS(0))
}
