package nn

import (
	"runtime"
	"sync"
)

// numWorkers is the number of goroutines a kernel splits its work over.
func numWorkers() int { return runtime.GOMAXPROCS(0) }

// parallelFor calls fn(w, lo, hi) for contiguous chunks [lo, hi) of [0, n),
// one chunk per worker w in [0, min(numWorkers, n)). The split is static, so a
// kernel that accumulates per worker and then reduces in worker order gives the
// same bits on every run (for a fixed GOMAXPROCS).
func parallelFor(n int, fn func(w, lo, hi int)) {
	nw := numWorkers()
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

// workspace holds per-worker scratch buffers shared by every kernel of a graph
// (kernels run one at a time). Buffers grow on first use only.
type workspace struct {
	bufs [][]float32
}

// get returns worker w's scratch of exactly size floats (contents undefined).
// It must be called for every w before the parallel section that uses it, or
// only by worker w inside it.
func (ws *workspace) get(w, size int) []float32 {
	for len(ws.bufs) <= w {
		ws.bufs = append(ws.bufs, nil)
	}
	if cap(ws.bufs[w]) < size {
		ws.bufs[w] = make([]float32, size)
	}
	return ws.bufs[w][:size]
}

// reserve makes sure every worker's scratch holds size floats, so that get
// never allocates (nor touches ws.bufs itself) inside a parallel section.
func (ws *workspace) reserve(size int) {
	nw := numWorkers()
	for w := 0; w < nw; w++ {
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
