// Package dist owns the collectives of data-parallel training: a Comm joins
// the processes (ranks) of one job, launched by mpirun, srun or another MPI
// launcher, and gives them the few collectives training needs, all
// deterministic: every rank gets the same bits, whatever algorithm the MPI
// library picks and however many threads each rank runs.
//
//   - SumFloat32 and SumFloat64 add a vector over the ranks in rank order
//     (rank 0's + rank 1's + ...), never in the order of MPI_Allreduce's
//     algorithm: SumFloat32 (gradients) reduces a segment of the vector on
//     each rank (Alltoall), adds the ranks' copies of it in rank order and
//     gathers the segments back (Allgather); SumFloat64 (BatchNorm
//     statistics, losses: small) gathers every rank's vector and adds them
//     in rank order on every rank.
//   - Bcast, BcastBytes (rank 0's weights), Allgather (every rank's status),
//     Barrier.
//
// A watchdog bounds every collective: a rank that waits in one longer than
// Options.Timeout says so in one line (which collective, what it was for,
// how long) and ends the whole job (MPI_Abort), so that a rank that died or
// hangs never leaves the others spinning.
//
// Open MPI (or any MPI 3 library) is reached through a small cgo binding of
// this package under the build tag mpi (`#cgo pkg-config: mpi`); without the
// tag (or without cgo) there is no MPI and Init returns rank 0 of 1. In both
// builds Init looks at the launcher's environment (OMPI_COMM_WORLD_SIZE,
// PMI_SIZE, SLURM_NTASKS): a process that a launcher started as one of
// several refuses to start without MPI support, or when MPI's world size
// disagrees with the launcher's (a binary built against another MPI than the
// launcher's), instead of N copies training alone into one folder. A process
// started alone never initialises MPI: a single process needs no launcher.
// Local joins ranks inside one process (goroutines), for tests and for trying
// data parallelism without MPI.
//
// Imports (make vet checks it): nothing of this module; never gorgonia,
// directly or through another package.
package dist
