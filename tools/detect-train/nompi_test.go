//go:build !mpi || !cgo

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
)

// TestRefuseWithoutMPI: started by a launcher as one of several processes
// (here OMPI_COMM_WORLD_SIZE=2), a build without MPI refuses to start (exit
// 1, naming the variable and the fix) instead of training alone into the
// shared run folder.
func TestRefuseWithoutMPI(t *testing.T) {
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	dir := filepath.Join(t.TempDir(), "run")
	res := clitest.Run(t, run, tinyArgs(dir)...)
	if res.Code != 1 || res.Stdout != "" ||
		!strings.Contains(res.Stderr, "detect-train: error: started by a launcher as one of 2 processes (OMPI_COMM_WORLD_SIZE=2) but built without MPI support") {
		t.Errorf("exit %d\nstdout %q\nstderr %s", res.Code, res.Stdout, res.Stderr)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("the refused run made its folder")
	}
}
