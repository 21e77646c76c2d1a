//go:build mpi && cgo

package dist

/*
#cgo pkg-config: mpi
#include <stdlib.h>
#include <string.h>
#include <mpi.h>

static int dist_init(int *provided) {
	// Open MPI catches SIGSEGV, SIGBUS, SIGFPE and SIGABRT to print its own
	// stack trace unless told not to; those signals belong to the Go runtime
	// (a nil dereference must stay a Go panic). A user's setting wins.
	setenv("OMPI_MCA_opal_signal", "", 0);
	return MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, provided);
}
static int dist_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int dist_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int dist_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static int dist_bcast(void *buf, int n, int root) { return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD); }
static int dist_allgather(void *send, void *recv, int n) {
	return MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, MPI_COMM_WORLD);
}
static int dist_alltoall(void *send, void *recv, int block) {
	return MPI_Alltoall(send, block, MPI_BYTE, recv, block, MPI_BYTE, MPI_COMM_WORLD);
}
static void dist_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static int dist_finalize(void) { return MPI_Finalize(); }
static void dist_library(char *buf) {
	int n = 0;
	buf[0] = 0;
	if (MPI_Get_library_version(buf, &n) != MPI_SUCCESS) buf[0] = 0;
}
static int dist_max_version(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }
static void dist_errstr(int code, char *buf) {
	int n = 0;
	buf[0] = 0;
	MPI_Error_string(code, buf, &n);
}
static int dist_max_error(void) { return MPI_MAX_ERROR_STRING; }
static int dist_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// mpiBuilt says that this build has MPI support (build tag mpi).
const mpiBuilt = true

// mpiTransport is the transport over MPI_COMM_WORLD.
type mpiTransport struct {
	r, n int
	lib  string
}

// openMPI initialises MPI (MPI_Init_thread, MPI_THREAD_MULTIPLE asked:
// goroutines move between threads and the watchdog aborts from its own).
func openMPI() (transport, error) {
	var provided C.int
	if rc := C.dist_init(&provided); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("MPI_Init_thread: %s", mpiError(rc))
	}
	t := &mpiTransport{lib: Library()}
	if provided < C.dist_thread_serialized() {
		C.dist_finalize()
		return nil, fmt.Errorf("%s provides thread level %d, below MPI_THREAD_SERIALIZED: rebuild it with thread support", t.lib, int(provided))
	}
	var r, n C.int
	if rc := C.dist_rank(&r); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("MPI_Comm_rank: %s", mpiError(rc))
	}
	if rc := C.dist_size(&n); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("MPI_Comm_size: %s", mpiError(rc))
	}
	t.r, t.n = int(r), int(n)
	return t, nil
}

// Library names the MPI library the build is linked to ("Open MPI v4.1.4").
// It needs no MPI_Init.
func Library() string {
	buf := (*C.char)(C.malloc(C.size_t(C.dist_max_version() + 1)))
	defer C.free(unsafe.Pointer(buf))
	C.dist_library(buf)
	s := C.GoString(buf)
	if i := strings.IndexAny(s, ",\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func mpiError(rc C.int) string {
	buf := (*C.char)(C.malloc(C.size_t(C.dist_max_error() + 1)))
	defer C.free(unsafe.Pointer(buf))
	C.dist_errstr(rc, buf)
	return fmt.Sprintf("%s (code %d)", C.GoString(buf), int(rc))
}

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func check(name string, rc C.int) error {
	if rc != C.MPI_SUCCESS {
		return fmt.Errorf("%s: %s", name, mpiError(rc))
	}
	return nil
}

func (t *mpiTransport) rank() int            { return t.r }
func (t *mpiTransport) size() int            { return t.n }
func (t *mpiTransport) library() string      { return t.lib }
func (t *mpiTransport) barrier(string) error { return check("MPI_Barrier", C.dist_barrier()) }

func (t *mpiTransport) bcast(_ string, buf []byte, root int) error {
	return check("MPI_Bcast", C.dist_bcast(ptr(buf), C.int(len(buf)), C.int(root)))
}

func (t *mpiTransport) allgather(_ string, send, recv []byte) error {
	if len(recv) != t.n*len(send) {
		return fmt.Errorf("allgather: %d bytes to receive for %d sent by %d ranks", len(recv), len(send), t.n)
	}
	return check("MPI_Allgather", C.dist_allgather(ptr(send), ptr(recv), C.int(len(send))))
}

func (t *mpiTransport) alltoall(_ string, send, recv []byte) error {
	if len(send) != len(recv) || len(send)%t.n != 0 {
		return fmt.Errorf("alltoall: %d bytes sent, %d received, %d ranks", len(send), len(recv), t.n)
	}
	return check("MPI_Alltoall", C.dist_alltoall(ptr(send), ptr(recv), C.int(len(send)/t.n)))
}

func (t *mpiTransport) abort(code int) { C.dist_abort(C.int(code)) }

func (t *mpiTransport) finalize() error { return check("MPI_Finalize", C.dist_finalize()) }
