package distill

import (
	"runtime"
	"sync"
)

// minParallel is the number of elements below which a loss runs on the
// calling goroutine: handing chunks to workers costs more than it saves.
const minParallel = 1 << 15

// runner runs fn(chunk) for chunks 0..n-1, on persistent worker goroutines
// (a go statement per call would allocate) or inline. Callers write each
// chunk's partial results to their own slot and reduce them in chunk order,
// so results do not depend on the number of workers.
type runner struct {
	workers int
	jobs    chan int
	wg      sync.WaitGroup
	fn      func(chunk int)
}

func (r *runner) run(n, elems int, fn func(chunk int)) {
	w := r.workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	if w <= 1 || n <= 1 || elems < minParallel {
		for c := 0; c < n; c++ {
			fn(c)
		}
		return
	}
	if r.jobs == nil {
		r.jobs = make(chan int, 64)
		for i := 0; i < w; i++ {
			go r.work(r.jobs)
		}
	}
	r.fn = fn
	r.wg.Add(n)
	for c := 0; c < n; c++ {
		r.jobs <- c
	}
	r.wg.Wait()
	r.fn = nil
}

func (r *runner) work(jobs <-chan int) {
	for c := range jobs {
		r.fn(c)
		r.wg.Done()
	}
}

// Close stops the worker goroutines, if any were started. The owner stays
// usable: a later call starts them again.
func (r *runner) Close() error {
	if r.jobs != nil {
		close(r.jobs)
		r.jobs = nil
	}
	return nil
}

// chunking splits [0, total) into pieces of about size elements.
func chunking(total, size int) int {
	return max(1, (total+size-1)/size)
}
