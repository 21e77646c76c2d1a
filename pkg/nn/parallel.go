package nn

import (
	"runtime"
	"sync"
)

// numWorkers is the number of goroutines a kernel spreads its work items over.
func numWorkers() int { return runtime.GOMAXPROCS(0) }

// parallelFor calls fn(w, lo, hi) for contiguous chunks [lo, hi) of the work
// items [0, n), one chunk per worker w in [0, min(numWorkers, n)).
//
// Workers only pick items: what an item computes, and in which order, must
// depend on the item (and the tensor shapes) alone, never on w or on which
// other items share its chunk, so that results are the same bits for every
// worker count. Per-worker scratch (indexed by w) is fine when every item
// rewrites what it reads; sums across items go into per-item (or fixed
// per-group-of-items) partials, reduced in item order afterwards. (The
// oneDNN inference convolutions run a worker's whole chunk of images in one
// call, the training ones the whole batch on OpenMP threads: allowed because
// oneDNN computes each image the same way whatever images share the call and
// however many threads run it, which TestDNNLBatchInvariance checks.)
func parallelFor(n int, fn func(w, lo, hi int)) {
	parallelForW(numWorkers(), n, fn)
}

// parallelForW is parallelFor over at most nw workers.
func parallelForW(nw, n int, fn func(w, lo, hi int)) {
	if nw > n {
		nw = n
	}
	if nw <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	var wg sync.WaitGroup
	wg.Add(nw - 1)
	for w := 1; w < nw; w++ {
		go func(w int) {
			defer wg.Done()
			fn(w, w*n/nw, (w+1)*n/nw)
		}(w)
	}
	fn(0, 0, n/nw)
	wg.Wait()
}

// workspace holds indexed scratch buffers shared by every kernel of a graph
// (kernels run one at a time): per worker (im2col columns) or per work item
// (partial weight gradients). Buffers grow on first use only.
type workspace struct {
	nw   int // workers of the kernels that take the workspace; 0: numWorkers()
	bufs [][]float32
	pack []float32 // weights in a library's own layout (oneDNN), one layer at a time
	fold []float32 // BatchNorm-folded weights and bias (inference), one layer at a time
}

// workers returns the number of workers the kernels using ws spread their
// work over: numWorkers(), or 1 in the arenas of inference image groups
// (each group runs on one goroutine; see Graph.Forward).
func (ws *workspace) workers() int {
	if ws.nw > 0 {
		return ws.nw
	}
	return numWorkers()
}

// foldBufs returns buffers of nw and nb floats for folded weights and bias.
func (ws *workspace) foldBufs(nw, nb int) (w, b []float32) {
	if cap(ws.fold) < nw+nb {
		ws.fold = make([]float32, nw+nb)
	}
	return ws.fold[:nw], ws.fold[nw : nw+nb]
}

// packBuf returns the packed-weights buffer with exactly size floats.
func (ws *workspace) packBuf(size int) []float32 {
	if cap(ws.pack) < size {
		ws.pack = make([]float32, size)
	}
	return ws.pack[:size]
}

// get returns scratch buffer w with exactly size floats (contents undefined).
// It must be called for every w before the parallel section that uses it, or
// only by the one goroutine that owns w inside it.
func (ws *workspace) get(w, size int) []float32 {
	for len(ws.bufs) <= w {
		ws.bufs = append(ws.bufs, nil)
	}
	if cap(ws.bufs[w]) < size {
		ws.bufs[w] = make([]float32, size)
	}
	return ws.bufs[w][:size]
}

// reserve makes sure buffers 0..n-1 hold size floats, so that get never
// allocates (nor touches ws.bufs itself) inside a parallel section.
func (ws *workspace) reserve(n, size int) {
	for w := 0; w < n; w++ {
		ws.get(w, size)
	}
}

// scaleRows sets C = beta*C for an m x n row-major block with leading dim ldc.
func scaleRows(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}
