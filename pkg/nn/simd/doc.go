// Package simd holds pkg/nn's vector kernels in Go assembly (a package of
// their own: Go does not allow assembly beside cgo). Each processes the
// whole blocks of four floats of its input (len &^ 3 elements) with SSE,
// lane j doing exactly the float32 operations, in the same order, as the
// Go loop in pkg/nn it replaces does for its chain j (reductions) or for
// each element (element-wise kernels), so results are the same bits with
// and without them; the caller finishes the rest in Go. Available says
// whether this architecture has them (amd64: SSE2 is part of every CPU).
//
// Imports (make vet checks it): nothing of this module; never gorgonia,
// directly or through another package.
package simd
