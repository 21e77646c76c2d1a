package dist

// BuildInfo says whether this build can join an MPI job, for --version:
// "mpi Open MPI v4.1.4", or "no mpi".
func BuildInfo() string {
	if !mpiBuilt {
		return "no mpi"
	}
	return "mpi " + Library()
}
