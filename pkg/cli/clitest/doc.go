// Package clitest helps test the yolodistill tools, in the style of
// net/http/httptest: run a tool's run function in process (Run), build the
// tools as binaries with the BLAS (and MPI) this test binary uses and run
// shell pipelines over them (Build, Sh), and compare output with golden files
// that `go test -update` rewrites (Golden).
//
// It imports the standard library, pkg/nn and pkg/dist (for the build tags);
// only tests import it.
//
// Imports (make vet checks it): of this module only pkg/cli, pkg/dist,
// pkg/nn; never gorgonia directly (pkg/nn is the only user).
package clitest
