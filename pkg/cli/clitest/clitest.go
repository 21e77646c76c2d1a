package clitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"yolodistill/pkg/cli"
	"yolodistill/pkg/dist"
	"yolodistill/pkg/nn"
)

// RunFunc is a tool's run function (cli.RunFunc).
type RunFunc = cli.RunFunc

// Result is what a tool run returned and wrote.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run calls run with args, empty stdin and captured stdout and stderr.
func Run(t testing.TB, run RunFunc, args ...string) Result {
	t.Helper()
	return RunInput(t, run, "", args...)
}

// RunInput is Run with stdin's contents.
func RunInput(t testing.TB, run RunFunc, stdin string, args ...string) Result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return Result{Code: code, Stdout: out.String(), Stderr: errb.String()}
}

// Build compiles the tool packages (paths as `go build` takes them, e.g.
// "../teacher-dump", ".") into dir with the BLAS this test binary uses
// (build tag openblas or purego), so that the binaries compute the same
// float32 values as the code under test in process, and with MPI when this
// test binary has it (build tag mpi).
func Build(dir string, pkgs ...string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + "/"}
	env := os.Environ()
	mpi := ""
	if dist.BuildInfo() != "no mpi" {
		mpi = " mpi"
	}
	if nn.BLASName == "openblas" {
		args = append(args, "-tags", "openblas"+mpi)
		if os.Getenv("CGO_LDFLAGS") == "" {
			env = append(env, "CGO_LDFLAGS=-lopenblas")
		}
	} else if mpi != "" {
		args = append(args, "-tags", "purego"+mpi)
	} else {
		args = append(args, "-tags", "purego")
		env = append(env, "CGO_ENABLED=0")
	}
	cmd := exec.Command(goBin, append(args, pkgs...)...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// Sh runs a bash command line with pipefail, with binDir first on PATH and
// extra environment variables (KEY=VALUE); it returns the exit code and
// stderr. A command that cannot be started fails the test.
func Sh(t testing.TB, binDir, line string, env ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", "set -o pipefail; "+line)
	cmd.Env = append(append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH")), env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), errb.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, errb.String()
}

var update = flag.Bool("update", false, "rewrite the golden files (testdata/*.golden) from the current output")

// Golden compares got with the file at path; with `go test -update` it
// first rewrites the file with got.
func Golden(t testing.TB, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

// JSONLines decodes the file at path, one JSON value per line (a tool's
// metrics.jsonl, say), into a slice of T; a missing file or a line that does
// not decode fails the test.
func JSONLines[T any](t testing.TB, path string) []T {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		out = append(out, v)
	}
	return out
}
