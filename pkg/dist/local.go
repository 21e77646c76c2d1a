package dist

import (
	"fmt"
	"sync"
)

// Local returns n ranks joined inside this process, for tests and for trying
// data parallelism without MPI: rank r is Local(...)[r], to be used by its
// own goroutine. Their collectives behave as MPI's do (every rank must call
// the same ones in the same order; a rank that calls another one than the
// others gets an error naming both), and the watchdog's abort makes every
// rank's pending and later collectives fail.
func Local(n int, opt Options) []*Comm {
	if n < 1 {
		panic(fmt.Sprintf("dist: Local(%d)", n))
	}
	h := &hub{n: n, bufs: make([][]byte, n), ops: make([]string, n)}
	h.cond = sync.NewCond(&h.mu)
	out := make([]*Comm, n)
	for r := range n {
		out[r] = newComm(&localTransport{h: h, r: r}, opt)
	}
	return out
}

// hub is where Local's ranks meet: every collective is one round in which
// each rank deposits its send buffer, each copies what it needs out of the
// others' once all are there, and none leaves before all have copied.
type hub struct {
	mu      sync.Mutex
	cond    *sync.Cond
	n       int
	round   uint64 // rounds completed
	arrived int
	copied  int
	bufs    [][]byte
	ops     []string
	dead    error
}

// exchange runs one round for rank r: send is its deposit, take copies what
// r needs from every rank's deposit (indexed by rank).
func (h *hub) exchange(r int, op string, send []byte, take func(all [][]byte)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dead != nil {
		return h.dead
	}
	round := h.round
	h.bufs[r], h.ops[r] = send, op
	h.arrived++
	if h.arrived == h.n {
		h.cond.Broadcast()
	}
	for h.arrived < h.n && h.round == round && h.dead == nil {
		h.cond.Wait()
	}
	if h.dead != nil {
		return h.dead
	}
	for q := range h.n {
		if h.ops[q] != op {
			err := fmt.Errorf("collective mismatch: rank %d called %s, rank %d %s", r, op, q, h.ops[q])
			h.dead = err
			h.cond.Broadcast()
			return err
		}
	}
	take(h.bufs)
	h.copied++
	if h.copied == h.n {
		h.arrived, h.copied = 0, 0
		h.round++
		h.cond.Broadcast()
		return nil
	}
	for h.round == round && h.dead == nil {
		h.cond.Wait()
	}
	if h.round == round {
		return h.dead
	}
	return nil
}

func (h *hub) kill(err error) {
	h.mu.Lock()
	if h.dead == nil {
		h.dead = err
	}
	h.cond.Broadcast()
	h.mu.Unlock()
}

// localTransport is one rank of Local.
type localTransport struct {
	h *hub
	r int
}

func (t *localTransport) rank() int { return t.r }
func (t *localTransport) size() int { return t.h.n }
func (t *localTransport) barrier(what string) error {
	return t.h.exchange(t.r, "barrier ("+what+")", nil, func([][]byte) {})
}

func (t *localTransport) bcast(what string, buf []byte, root int) error {
	return t.h.exchange(t.r, fmt.Sprintf("bcast of %d bytes from %d (%s)", len(buf), root, what), buf, func(all [][]byte) {
		if t.r != root {
			copy(buf, all[root])
		}
	})
}

func (t *localTransport) allgather(what string, send, recv []byte) error {
	return t.h.exchange(t.r, fmt.Sprintf("allgather of %d bytes (%s)", len(send), what), send, func(all [][]byte) {
		for q, b := range all {
			copy(recv[q*len(send):], b)
		}
	})
}

func (t *localTransport) alltoall(what string, send, recv []byte) error {
	block := len(send) / t.h.n
	return t.h.exchange(t.r, fmt.Sprintf("alltoall of %d bytes (%s)", len(send), what), send, func(all [][]byte) {
		for q, b := range all {
			copy(recv[q*block:(q+1)*block], b[t.r*block:(t.r+1)*block])
		}
	})
}

func (t *localTransport) abort(code int) {
	t.h.kill(fmt.Errorf("the job was aborted by rank %d (code %d)", t.r, code))
}

func (t *localTransport) finalize() error { return nil }
func (t *localTransport) library() string { return "in-process" }
