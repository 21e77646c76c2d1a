// Package clitest helps test the yolodistill tools, in the style of
// net/http/httptest: run a tool's run function in process (Run), build the
// tools as binaries with the BLAS this test binary uses and run shell
// pipelines over them (Build, Sh), and compare output with golden files that
// `go test -update` rewrites (Golden).
//
// It imports only the standard library and pkg/nn (for the BLAS build tag);
// only tests import it.
//
// Imports (make vet checks it): of this module only pkg/cli, pkg/nn; never
// gorgonia directly (pkg/nn is the only user).
package clitest
