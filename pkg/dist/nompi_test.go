//go:build !mpi || !cgo

package dist_test

import (
	"strings"
	"testing"

	"yolodistill/pkg/dist"
)

// TestRefuseWithoutMPI: started by a launcher as one of several processes, a
// build without MPI refuses, naming the variable and the fix.
func TestRefuseWithoutMPI(t *testing.T) {
	env := map[string]string{"SLURM_NTASKS": "4"}
	_, err := dist.Init(dist.Options{Getenv: func(k string) string { return env[k] }})
	if err == nil || !strings.Contains(err.Error(), "SLURM_NTASKS=4") || !strings.Contains(err.Error(), "without MPI support") {
		t.Fatalf("Init under a launcher without MPI: %v", err)
	}
	if dist.BuildInfo() != "no mpi" {
		t.Errorf("BuildInfo %q", dist.BuildInfo())
	}
}
