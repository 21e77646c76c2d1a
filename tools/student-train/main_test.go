package main

// The tool's contract: flags, exit codes, stdout (nothing) and stderr, the
// run folder, stdin and pipes from teacher-dump. The order of the replayed
// views itself (in file order, files cycled, a stream read once to its end
// marker, resuming in it) is tested in pkg/teacher.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/detector/detectortest"
	"yolodistill/pkg/train"
)

// The tiny configurations live with teacher-dump's tests.
const (
	teacherYML      = "../teacher-dump/testdata/teacher.yml"
	studentYML      = "../teacher-dump/testdata/student.yml"
	studentPairsYML = "../teacher-dump/testdata/student_pairs.yml"
)

var (
	binDir     string // built teacher-dump and student-train
	buildError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "student-train-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	buildError = clitest.Build(dir, "../teacher-dump", ".")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needBins fails the test when the tools did not build.
func needBins(t *testing.T) {
	t.Helper()
	if buildError != nil {
		t.Fatal(buildError)
	}
}

// sh runs a bash pipeline over the built tools (clitest.Sh).
func sh(t *testing.T, line string) (int, string) {
	t.Helper()
	return clitest.Sh(t, binDir, line)
}

// teacherCkpt writes a freshly initialised teacher of teacher.yml.
func teacherCkpt(t *testing.T) string {
	t.Helper()
	ck, _ := detectortest.Checkpoint(t, t.TempDir(), "teacher.ckpt", teacherYML)
	return ck
}

// metrics reads a run folder's metrics.jsonl.
func metrics(t *testing.T, dir string) []train.Record {
	t.Helper()
	return clitest.JSONLines[train.Record](t, filepath.Join(dir, train.MetricsFile))
}

// compare checks two runs' records: same iterations, learning rates and
// parts, losses within rel (relative; 0 = bitwise equal). Timings are not
// compared.
func compare(t *testing.T, a, b []train.Record, rel float64) {
	t.Helper()
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d and %d records", len(a), len(b))
	}
	near := func(x, y float64) bool {
		if rel == 0 {
			return x == y
		}
		return math.Abs(x-y) <= rel*math.Max(math.Abs(x), math.Abs(y))
	}
	for i := range a {
		if a[i].Iter != b[i].Iter || a[i].LR != b[i].LR || !near(a[i].Loss, b[i].Loss) || len(a[i].Parts) != len(b[i].Parts) {
			t.Fatalf("record %d: %+v vs %+v", i, a[i], b[i])
		}
		for k, v := range a[i].Parts {
			if w, ok := b[i].Parts[k]; !ok || !near(v, w) {
				t.Fatalf("record %d part %s: %v vs %v", i, k, v, w)
			}
		}
	}
}

// distillParts lists the distillation losses of a run's first record.
func distillParts(rs []train.Record) []string {
	var ks []string
	for k := range rs[0].Parts {
		if strings.HasPrefix(k, "distill.") {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
