//go:build !mpi || !cgo

package dist

import "errors"

// mpiBuilt says that this build has MPI support (build tag mpi): it has not.
const mpiBuilt = false

func openMPI() (transport, error) {
	return nil, errors.New("built without MPI support (build tag mpi)")
}

// Library names the MPI library the build is linked to: "" without MPI.
func Library() string { return "" }
