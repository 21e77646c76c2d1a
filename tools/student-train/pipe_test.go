package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
)

// TestPipeFileOnline: teacher-dump | student-train through a shell pipe;
// the same stream saved to a file gives the same training step for step; the
// online teacher gives the same losses (the stored pipeline is exact).
func TestPipeFileOnline(t *testing.T) {
	needBins(t)
	teacherCk := teacherCkpt(t)
	for _, student := range []string{studentYML, studentPairsYML} {
		t.Run(filepath.Base(student), func(t *testing.T) {
			dir := t.TempDir()
			pipeRun, fileRun, onlineRun := filepath.Join(dir, "pipe"), filepath.Join(dir, "file"), filepath.Join(dir, "online")
			file := filepath.Join(dir, "st.arrow")
			dump := fmt.Sprintf("teacher-dump -c %s --weights %s --student-config %s", teacherYML, teacherCk, student)
			if code, stderr := sh(t, dump+" --out - | student-train -c "+student+" --soft-targets - --out "+pipeRun); code != 0 {
				t.Fatalf("pipe: exit %d\n%s", code, stderr)
			}
			if code, stderr := sh(t, dump+" --out - > "+file+" && student-train -c "+student+" --soft-targets "+file+" --out "+fileRun); code != 0 {
				t.Fatalf("file: exit %d\n%s", code, stderr)
			}
			if code, stderr := sh(t, "student-train -c "+student+" --teacher-weights "+teacherCk+" --out "+onlineRun); code != 0 {
				t.Fatalf("online: exit %d\n%s", code, stderr)
			}
			p, f, o := metrics(t, pipeRun), metrics(t, fileRun), metrics(t, onlineRun)
			if len(p) != 6 || len(distillParts(p)) == 0 {
				t.Fatalf("pipe run: %d records, distillation parts %v", len(p), distillParts(p))
			}
			compare(t, p, f, 0)
			compare(t, f, o, 1e-6)
			for _, d := range []string{pipeRun, fileRun, onlineRun} {
				if !exists(filepath.Join(d, "model_final.ckpt")) {
					t.Errorf("%s: no model_final.ckpt", d)
				}
			}
			// The distillation loss changes the training: the student's own
			// loss differs from a run without it after the first update.
			if p[1].Parts["obj"] == 0 || p[0].Parts[distillParts(p)[0]] == 0 {
				t.Errorf("zero losses: %+v", p[:2])
			}
		})
	}
}

// TestTruncatedStream: a stream cut anywhere fails the run with exit 1 and
// no model_final, even when it holds every batch training needs.
func TestTruncatedStream(t *testing.T) {
	needBins(t)
	dir := t.TempDir()
	full := filepath.Join(dir, "full.stream")
	if code, stderr := sh(t, fmt.Sprintf("teacher-dump -c %s --weights %s --student-config %s --views 2 --out - > %s", teacherYML, teacherCkpt(t), studentYML, full)); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, stderr)
	}
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keep int
	}{
		{"cut in the middle", len(data) * 3 / 10},
		{"end marker cut", len(data) - 100},
		{"last byte missing", len(data) - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			res := clitest.RunInput(t, run, string(data[:tt.keep]), "-c", studentYML, "--soft-targets", "-", "--out", out)
			if res.Code != 1 || res.Stdout != "" {
				t.Errorf("exit %d, stdout %q", res.Code, res.Stdout)
			}
			if exists(filepath.Join(out, "model_final.ckpt")) {
				t.Error("model_final.ckpt written from a truncated stream")
			}
			if !strings.Contains(res.Stderr, "student-train: error:") || !strings.Contains(strings.ToLower(res.Stderr), "truncated") {
				t.Errorf("stderr: %s", res.Stderr)
			}
		})
	}
	// The whole stream works, and resuming from a stream continues exactly.
	out := filepath.Join(dir, "run")
	if res := clitest.RunInput(t, run, string(data), "-c", studentYML, "--soft-targets", "-", "--out", out); res.Code != 0 {
		t.Fatalf("whole stream: exit %d\n%s", res.Code, res.Stderr)
	}
	resumed := filepath.Join(dir, "resumed")
	os.MkdirAll(resumed, 0o755)
	if res := clitest.RunInput(t, run, string(data), "-c", studentYML, "--soft-targets", "-", "--out", resumed, "-r", filepath.Join(out, "model_3.ckpt")); res.Code != 0 {
		t.Fatalf("resume: exit %d\n%s", res.Code, res.Stderr)
	}
	a, b := metrics(t, out), metrics(t, resumed)
	compare(t, a[3:], b, 0)
	// Without -c: the stored configuration names its teacher relative to
	// the folder of the configuration the run started from (the
	// checkpoint's meta config_dir), not to the checkpoint's folder.
	bare := filepath.Join(dir, "resumed-bare")
	os.MkdirAll(bare, 0o755)
	if res := clitest.RunInput(t, run, string(data), "--soft-targets", "-", "--out", bare, "-r", filepath.Join(out, "model_3.ckpt")); res.Code != 0 {
		t.Fatalf("resume without -c: exit %d\n%s", res.Code, res.Stderr)
	}
	compare(t, a[3:], metrics(t, bare), 0)
}
