package dist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// DefaultTimeout is the watchdog's limit on one collective when
// Options.Timeout is zero.
const DefaultTimeout = 5 * time.Minute

// Options configure Init and Local.
type Options struct {
	// Timeout is the longest a rank waits in one collective before the
	// watchdog ends the job (0: DefaultTimeout; negative: no watchdog).
	Timeout time.Duration
	// Log receives the watchdog's message (one line, no prefix; nil:
	// standard error).
	Log func(format string, args ...any)
	// Getenv reads the launcher's environment (nil: os.Getenv).
	Getenv func(string) string
}

// transport is one rank's link to the others: the raw collectives, over
// bytes, of MPI or of the in-process hub. Calls never overlap (Comm
// serialises them).
type transport interface {
	rank() int
	size() int
	// Every collective gets what it is for (Comm's callers' words): the
	// in-process hub checks that all ranks agree on it.
	barrier(what string) error
	// bcast copies root's buf into every rank's buf (the same length everywhere).
	bcast(what string, buf []byte, root int) error
	// allgather: len(recv) == size*len(send); recv[r*len(send):] receives rank r's send.
	allgather(what string, send, recv []byte) error
	// alltoall: len(send) == len(recv) == size*block; block b of send goes to
	// rank b, block r of recv comes from rank r.
	alltoall(what string, send, recv []byte) error
	// abort ends every rank of the job with code; it may not return.
	abort(code int)
	finalize() error
	library() string
}

// Comm is one rank's membership of a data-parallel job: its rank, the job's
// size and the collectives. Every rank must call the same collectives in the
// same order with the same lengths (where a method says so). A Comm may be
// used from several goroutines, one call at a time (calls are serialised).
// The zero-size case is never seen: a single process is rank 0 of 1, whose
// collectives return at once.
type Comm struct {
	t          transport
	rank, size int
	launcher   string // the environment variable that set the size ("" when single)

	mu      sync.Mutex // serialises collectives
	timeout time.Duration
	logf    func(format string, args ...any)
	busy    atomic.Int64 // nanoseconds spent in collectives
	calls   atomic.Int64

	// watchdog: seq is odd while a collective is in progress
	seq     atomic.Uint64
	wmu     sync.Mutex
	curOp   string
	curWhat string
	curAt   time.Time
	timer   *time.Timer
	fired   atomic.Bool

	ended bool
}

var (
	initOnce sync.Once
	initComm *Comm
	initErr  error
)

// Init joins the job this process was launched into. A process that no
// launcher started as one of several (OMPI_COMM_WORLD_SIZE, PMI_SIZE and
// SLURM_NTASKS unset or 1) is rank 0 of 1 and never initialises MPI. One that
// was is joined through MPI (MPI_Init_thread) when the build has MPI support
// (build tag mpi); without it, or when MPI's world size differs from the
// launcher's, Init returns an error saying why and how to fix it. Init may be
// called more than once; the first call decides.
func Init(opt Options) (*Comm, error) {
	getenv := opt.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	n, from := LauncherSize(getenv)
	if n <= 1 {
		return Single(), nil
	}
	initOnce.Do(func() {
		if !mpiBuilt {
			initErr = fmt.Errorf("started by a launcher as one of %d processes (%s) but built without MPI support: "+
				"build the tools against the cluster's MPI (`make build` with libopenmpi-dev installed builds them with the tag mpi), "+
				"or run one process (in a Slurm allocation: srun -n 1, or unset SLURM_NTASKS)", n, from)
			return
		}
		t, err := openMPI()
		if err != nil {
			initErr = err
			return
		}
		if t.size() != n {
			lib := t.library()
			world := t.size()
			if world > 1 {
				t.abort(1)
			}
			t.finalize()
			initErr = fmt.Errorf("the launcher started %d processes (%s) but MPI (%s) sees a world of %d: "+
				"the tools must be built against the launcher's own MPI (under Slurm: srun --mpi=pmix)", n, from, lib, world)
			return
		}
		initComm = newComm(t, opt)
		initComm.launcher = from
	})
	return initComm, initErr
}

// LauncherSize returns the number of processes a launcher says it started
// and the variable that says it ("OMPI_COMM_WORLD_SIZE=4"): Open MPI's
// OMPI_COMM_WORLD_SIZE first, then PMI_SIZE (MPICH, Intel MPI, Slurm's PMI),
// then SLURM_NTASKS; 1 and "" when none is set. A value that is not a
// positive number counts as unset.
func LauncherSize(getenv func(string) string) (int, string) {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"} {
		v := getenv(k)
		if n, err := strconv.Atoi(v); err == nil && n >= 1 {
			return n, k + "=" + v
		}
	}
	return 1, ""
}

var single = &Comm{t: singleTransport{}, rank: 0, size: 1}

// Single returns the communicator of a process that runs alone: rank 0 of 1.
func Single() *Comm { return single }

func newComm(t transport, opt Options) *Comm {
	c := &Comm{t: t, rank: t.rank(), size: t.size(), timeout: opt.Timeout, logf: opt.Log}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.logf == nil {
		c.logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	if c.timeout > 0 && c.size > 1 {
		c.timer = time.AfterFunc(time.Hour, c.watch)
		c.timer.Stop()
	}
	return c
}

// Rank is this process's rank, 0..Size()-1.
func (c *Comm) Rank() int { return c.rank }

// Size is the number of ranks in the job.
func (c *Comm) Size() int { return c.size }

// Library names the MPI library ("Open MPI v4.1.4"), "in-process" for Local
// and "" for a single process.
func (c *Comm) Library() string { return c.t.library() }

// Launcher is the environment variable that said how many ranks there are
// ("OMPI_COMM_WORLD_SIZE=2"), "" when the job was not started by a launcher.
func (c *Comm) Launcher() string { return c.launcher }

// Busy returns the wall time this rank has spent inside collectives (waiting
// for the others included) and the number of collectives.
func (c *Comm) Busy() (time.Duration, int64) {
	return time.Duration(c.busy.Load()), c.calls.Load()
}

// errEnded is returned by collectives after End.
var errEnded = errors.New("dist: the job has ended")

// begin starts a collective: it takes the lock and arms the watchdog.
func (c *Comm) begin(op, what string) (time.Time, error) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return time.Time{}, errEnded
	}
	now := time.Now()
	if c.timer != nil {
		c.wmu.Lock()
		c.curOp, c.curWhat, c.curAt = op, what, now
		c.wmu.Unlock()
		c.seq.Add(1)
		c.timer.Reset(c.timeout)
	}
	return now, nil
}

// end finishes a collective begun at start and wraps err with what it was.
func (c *Comm) end(start time.Time, op, what string, err error) error {
	if c.timer != nil {
		c.seq.Add(1)
		c.timer.Stop()
	}
	c.busy.Add(int64(time.Since(start)))
	c.calls.Add(1)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("rank %d of %d: %s (%s): %w", c.rank, c.size, op, what, err)
	}
	return nil
}

// watch is the watchdog timer's function: it ends the job when the
// collective it was armed for is still running.
func (c *Comm) watch() {
	if c.seq.Load()%2 == 0 {
		return // it ended as the timer fired
	}
	c.wmu.Lock()
	op, what, at := c.curOp, c.curWhat, c.curAt
	c.wmu.Unlock()
	waited := time.Since(at)
	if waited < c.timeout {
		return // a later collective re-armed the timer
	}
	if !c.fired.CompareAndSwap(false, true) {
		return
	}
	c.logf("error: rank %d of %d waited %s in %s (%s) for the other ranks: one of them has stopped or hangs; ending the job (the watchdog's limit is %s)",
		c.rank, c.size, waited.Round(time.Millisecond), op, what, c.timeout)
	c.t.abort(1)
}

// Barrier returns when every rank has called it.
func (c *Comm) Barrier(what string) error {
	if c.size == 1 {
		return nil
	}
	st, err := c.begin("Barrier", what)
	if err != nil {
		return err
	}
	return c.end(st, "Barrier", what, c.t.barrier(what))
}

// Bcast copies root's buf into every rank's buf; every rank passes the same
// length.
func (c *Comm) Bcast(what string, buf []byte, root int) error {
	if c.size == 1 {
		return nil
	}
	st, err := c.begin("Bcast", what)
	if err != nil {
		return err
	}
	return c.end(st, "Bcast", what, c.t.bcast(what, buf, root))
}

// BcastBytes returns root's b on every rank (the others' b is ignored).
func (c *Comm) BcastBytes(what string, b []byte, root int) ([]byte, error) {
	if c.size == 1 {
		return b, nil
	}
	var n [8]byte
	if c.rank == root {
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
	}
	if err := c.Bcast(what, n[:], root); err != nil {
		return nil, err
	}
	size := binary.LittleEndian.Uint64(n[:])
	if c.rank != root {
		b = make([]byte, size)
	}
	for off := 0; off < len(b); off += maxMessage {
		if err := c.Bcast(what, b[off:min(off+maxMessage, len(b))], root); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// maxMessage bounds the bytes of one transport call (MPI counts are C ints).
const maxMessage = 1 << 28

// Allgather returns every rank's b, in rank order (b may differ in length
// between ranks; at most 256 MiB over all of them).
func (c *Comm) Allgather(what string, b []byte) ([][]byte, error) {
	if c.size == 1 {
		return [][]byte{b}, nil
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
	lens := make([]byte, 8*c.size)
	st, err := c.begin("Allgather", what)
	if err != nil {
		return nil, err
	}
	if err := c.end(st, "Allgather", what, c.t.allgather(what, n[:], lens)); err != nil {
		return nil, err
	}
	longest := 0
	for r := range c.size {
		longest = max(longest, int(binary.LittleEndian.Uint64(lens[8*r:])))
	}
	if longest*c.size > maxMessage {
		return nil, fmt.Errorf("rank %d of %d: Allgather (%s): %d bytes from one rank are too many", c.rank, c.size, what, longest)
	}
	send := make([]byte, longest)
	copy(send, b)
	recv := make([]byte, longest*c.size)
	if st, err = c.begin("Allgather", what); err != nil {
		return nil, err
	}
	if err := c.end(st, "Allgather", what, c.t.allgather(what, send, recv)); err != nil {
		return nil, err
	}
	out := make([][]byte, c.size)
	for r := range c.size {
		l := int(binary.LittleEndian.Uint64(lens[8*r:]))
		out[r] = recv[r*longest : r*longest+l : r*longest+l]
	}
	return out, nil
}

// SumFloat64 replaces buf, on every rank, by the sum over the ranks of their
// buf, element by element, added in rank order: ((rank 0's + rank 1's) +
// rank 2's) + ... Every rank gets the same bits. Every rank passes the same
// length. For small vectors (every rank receives all of them).
func (c *Comm) SumFloat64(what string, buf []float64) error {
	if c.size == 1 || len(buf) == 0 {
		return nil
	}
	if len(buf)*8*c.size > maxMessage {
		return fmt.Errorf("rank %d of %d: SumFloat64 (%s): %d values are too many", c.rank, c.size, what, len(buf))
	}
	recv := make([]float64, len(buf)*c.size)
	st, err := c.begin("Allgather", what)
	if err != nil {
		return err
	}
	if err := c.end(st, "Allgather", what, c.t.allgather(what, f64Bytes(buf), f64Bytes(recv))); err != nil {
		return err
	}
	n := len(buf)
	for i := range buf {
		s := recv[i]
		for r := 1; r < c.size; r++ {
			s += recv[r*n+i]
		}
		buf[i] = s
	}
	return nil
}

// piece32 is the most float32 values SumFloat32 reduces per round (a
// variable for tests).
var piece32 = 1 << 24

// SumFloat32 replaces buf, on every rank, by the sum over the ranks of their
// buf, element by element, added in rank order in float32: ((rank 0's +
// rank 1's) + rank 2's) + ... Every rank gets the same bits. Every rank
// passes the same length. For large vectors (gradients): each rank adds one
// segment (Alltoall) and the sums are gathered (Allgather), so every rank
// sends and receives about twice the vector.
func (c *Comm) SumFloat32(what string, buf []float32) error {
	if c.size == 1 {
		return nil
	}
	S := c.size
	var send, recv, part, all []float32
	for off := 0; off < len(buf); off += piece32 {
		m := min(piece32, len(buf)-off)
		block := (m + S - 1) / S
		if cap(send) < S*block {
			send, recv, all = make([]float32, S*block), make([]float32, S*block), make([]float32, S*block)
			part = make([]float32, block)
		}
		send, recv, all, part = send[:S*block], recv[:S*block], all[:S*block], part[:block]
		copy(send, buf[off:off+m])
		clear(send[m:])
		st, err := c.begin("Alltoall", what)
		if err != nil {
			return err
		}
		if err := c.end(st, "Alltoall", what, c.t.alltoall(what, f32Bytes(send), f32Bytes(recv))); err != nil {
			return err
		}
		copy(part, recv[:block])
		for r := 1; r < S; r++ {
			src := recv[r*block : (r+1)*block]
			for i, v := range src {
				part[i] += v
			}
		}
		if st, err = c.begin("Allgather", what); err != nil {
			return err
		}
		if err := c.end(st, "Allgather", what, c.t.allgather(what, f32Bytes(part), f32Bytes(all))); err != nil {
			return err
		}
		copy(buf[off:off+m], all[:m])
	}
	return nil
}

func f32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

func f64Bytes(x []float64) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 8*len(x))
}

// agreed marks an error that every rank returns at the same point.
type agreed struct{ err error }

func (a agreed) Error() string { return a.err.Error() }
func (a agreed) Unwrap() error { return a.err }

// Agreed marks err as one that every rank of the job returns together, after
// a collective that told all of them (a non-finite loss, an interruption,
// one rank's failure that the others learnt of): End then ends the job
// cleanly, and ranks other than 0 need not report it (rank 0 does).
func Agreed(err error) error {
	if err == nil || IsAgreed(err) {
		return err
	}
	return agreed{err}
}

// IsAgreed reports whether err (or an error it wraps) was marked by Agreed.
func IsAgreed(err error) bool {
	var a agreed
	return errors.As(err, &a)
}

// Reports says whether this rank reports err: rank 0 reports every error,
// the other ranks only those that are not Agreed (rank 0 reports those).
func (c *Comm) Reports(err error) bool { return c.rank == 0 || !IsAgreed(err) }

// End ends this rank's part in the job, for a process about to exit with
// code after err (nil on success), and returns code. When the run succeeded
// or err is Agreed, every rank is at the same point and MPI is finalised
// (MPI_Finalize); otherwise this rank failed alone and the others may be
// waiting for it in a collective, so the whole job is ended (MPI_Abort with
// code, which does not return under MPI). A single process just returns code.
func (c *Comm) End(code int, err error) int {
	if c.size == 1 {
		return code
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return code
	}
	c.ended = true
	c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if code == 0 || IsAgreed(err) {
		if ferr := c.t.finalize(); ferr != nil && code == 0 {
			c.logf("error: rank %d of %d: MPI_Finalize: %v", c.rank, c.size, ferr)
			return 1
		}
		return code
	}
	if code == 0 {
		code = 1
	}
	c.t.abort(code)
	return code
}

// singleTransport is the transport of a process that runs alone.
type singleTransport struct{}

func (singleTransport) rank() int                       { return 0 }
func (singleTransport) size() int                       { return 1 }
func (singleTransport) barrier(string) error            { return nil }
func (singleTransport) bcast(string, []byte, int) error { return nil }
func (singleTransport) allgather(_ string, send, recv []byte) error {
	copy(recv, send)
	return nil
}
func (singleTransport) alltoall(_ string, send, recv []byte) error {
	copy(recv, send)
	return nil
}
func (singleTransport) abort(int)       {}
func (singleTransport) finalize() error { return nil }
func (singleTransport) library() string { return "" }
