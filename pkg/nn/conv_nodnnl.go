//go:build !dnnl || !cgo

package nn

// DNNLName names the convolution library compiled in ("" without one: the
// build tag dnnl adds oneDNN).
const DNNLName = ""

// Without oneDNN every convolution runs our own kernels.
func dnnlForward(*convGeom, *workspace, []float32, []float32, []float32, []float32, int) bool {
	return false
}
func dnnlForwardAct(*convGeom, *workspace, []float32, []float32, []float32, []float32, Act, int) bool {
	return false
}

func dnnlLinkable(*Tensor, []*Tensor) bool { return false }
func dnnlBackwardData(*convGeom, *workspace, *dyShare, []float32, []float32, []float32, int) bool {
	return false
}
func dnnlBackwardWeight(*convGeom, *workspace, *workspace, *dyShare, []float32, []float32, []float32, int) bool {
	return false
}

func dnnlTakesBlocked(*convGeom, bool, bool) int { return 0 }

var useDNNL = false

func dnnlISA() string { return "" }

const dnnlReady = false
