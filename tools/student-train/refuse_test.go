package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/detector/detectortest"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/softtarget/softtargettest"
)

// refused checks a run that must stop before training: exit 1, nothing on
// stdout, stderr holding every string of want, no metrics or model_final in
// the run folder out.
func refused(t *testing.T, res clitest.Result, out string, want ...string) {
	t.Helper()
	if res.Code != 1 || res.Stdout != "" {
		t.Errorf("exit %d, stdout %q", res.Code, res.Stdout)
	}
	for _, s := range want {
		if !strings.Contains(res.Stderr, s) {
			t.Errorf("stderr %q lacks %q", res.Stderr, s)
		}
	}
	if exists(filepath.Join(out, "metrics.jsonl")) || exists(filepath.Join(out, "model_final.ckpt")) {
		t.Error("trained on refused soft targets")
	}
}

// TestRefusesOtherTeacher: soft targets from another teacher, for another
// class list, or without the feature maps the pairs need are clear errors.
func TestRefusesOtherTeacher(t *testing.T) {
	needBins(t)
	dir := t.TempDir()
	teacherCk := teacherCkpt(t)
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	other := filepath.Join(dir, "other_teacher.yml")
	os.WriteFile(other, []byte("_base_: "+abs(teacherYML)+"\nmodel: {head_width: 0.25}\n"), 0o644)
	otherCk, _ := detectortest.Checkpoint(t, dir, "other.ckpt", other)
	otherDump, goodDump := filepath.Join(dir, "other.arrow"), filepath.Join(dir, "good.arrow")
	for _, c := range [][3]string{{other, otherCk, otherDump}, {teacherYML, teacherCk, goodDump}} {
		if code, stderr := sh(t, fmt.Sprintf("teacher-dump -c %s --weights %s --out %s", c[0], c[1], c[2])); code != 0 {
			t.Fatalf("dump: exit %d\n%s", code, stderr)
		}
	}
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"another teacher", []string{"-c", studentYML, "--soft-targets", otherDump}, "model.head_width is 0.25 in the dump, 0.125 here. If the dump's teacher is the student's teacher with other settings (teacher-dump -o), give student-train the same: --teacher-override model.head_width=0.25"},
		{"another class list", []string{"-c", studentYML, "-o", "data.classes=[circle, ring, star]", "--soft-targets", goodDump}, `class 2 is "square", expected "star" (another class list)`},
		{"feature maps missing", []string{"-c", studentPairsYML, "--soft-targets", goodDump}, `feature map "backbone.c4" is not stored`},
		{"online teacher of another class list", []string{"-c", studentYML, "-o", "data.classes=[circle, ring, star]", "--teacher-weights", teacherCk}, `the teacher ../teacher-dump/testdata/teacher.yml does not fit the student ../teacher-dump/testdata/student.yml: data.classes is ["circle", "ring", "star"] for the student, ["circle", "ring", "square"] for the teacher`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			refused(t, clitest.Run(t, run, append(tt.args, "--out", out)...), out, tt.stderr)
		})
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no teacher", []string{"-c", studentYML}, "no teacher"},
		{"both modes", []string{"-c", studentYML, "--soft-targets", "x.arrow", "--teacher-weights", "t.ckpt"}, "not both"},
		{"stdin twice", []string{"-c", studentYML, "--soft-targets", "-,-"}, "given 2 times"},
		{"no config", []string{"--soft-targets", "-"}, "-c CONFIG is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := clitest.Run(t, run, tt.args...)
			if res.Code != 2 || res.Stdout != "" || !strings.Contains(res.Stderr, tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q (want %q)", res.Code, res.Stdout, res.Stderr, tt.stderr)
			}
		})
	}
}

// TestRefusesOtherAugmentation: the student rebuilds each view with its own
// data.augment, so soft targets dumped with another normalisation or expand
// fill are refused (exit 1, naming the file, the setting and both values)
// before training. Settings the records carry (flip_prob) or that give the
// same pixels (a fill truncating to the same integers) are accepted, and a
// file without recorded settings (older teacher-dump) trains with a warning.
func TestRefusesOtherAugmentation(t *testing.T) {
	needBins(t)
	dir := t.TempDir()
	teacherCk := teacherCkpt(t)
	halfMean := filepath.Join(dir, "half_mean.arrow")
	if code, stderr := sh(t, fmt.Sprintf("teacher-dump -c %s --weights %s --student-config %s --student-override 'data.augment.mean=[0.5, 0.5, 0.5]' --out %s",
		teacherYML, teacherCk, studentYML, halfMean)); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, stderr)
	}
	zeroFill := filepath.Join(dir, "zero_fill.arrow")
	if code, stderr := sh(t, fmt.Sprintf("teacher-dump -c %s --weights %s --student-config %s --student-override 'data.augment.expand.fill=[0, 0, 0]' --out %s",
		teacherYML, teacherCk, studentYML, zeroFill)); code != 0 {
		t.Fatalf("dump: exit %d\n%s", code, stderr)
	}
	tests := []struct {
		name   string
		args   []string
		stderr []string
	}{
		{"other mean", []string{"-c", studentYML, "--soft-targets", halfMean},
			[]string{"student-train: error: " + halfMean + ": soft targets were dumped with other augmentation settings",
				"data.augment.mean was [0.5,0.5,0.5] for the dump, this configuration has [0.485,0.456,0.406]"}},
		{"other expand fill", []string{"-c", studentYML, "--soft-targets", zeroFill},
			[]string{zeroFill + ": ", "data.augment.expand.fill was [0,0,0] for the dump, this configuration has [123,116,103]"}},
		{"second file differs", []string{"-c", studentYML, "-o", "data.augment.mean=[0.5, 0.5, 0.5]", "--soft-targets", halfMean + "," + zeroFill},
			[]string{zeroFill + ": ", "data.augment.mean was [0.485,0.456,0.406] for the dump, this configuration has [0.5,0.5,0.5]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			res := clitest.Run(t, run, append(tt.args, "--out", out)...)
			t.Logf("stderr: %s", res.Stderr)
			refused(t, res, out, tt.stderr...)
		})
	}

	t.Run("same pixels", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "run")
		res := clitest.Run(t, run, "-c", studentYML, "-o", "data.augment.mean=[0.5, 0.5, 0.5]", "-o", "data.augment.flip_prob=0.1",
			"-o", "data.augment.expand.fill=[123.2, 116.9, 103.1]", "--soft-targets", halfMean, "--out", out)
		if res.Code != 0 {
			t.Fatalf("exit %d\n%s", res.Code, res.Stderr)
		}
		if strings.Contains(res.Stderr, "warning") || !exists(filepath.Join(out, "model_final.ckpt")) {
			t.Errorf("stderr %s", res.Stderr)
		}
	})

	t.Run("file predates the check", func(t *testing.T) {
		old := filepath.Join(t.TempDir(), "old.arrow")
		copyWithoutReplay(t, halfMean, old)
		out := filepath.Join(t.TempDir(), "run")
		res := clitest.Run(t, run, "-c", studentYML, "--soft-targets", old, "--out", out)
		if res.Code != 0 {
			t.Fatalf("exit %d\n%s", res.Code, res.Stderr)
		}
		want := "student-train: warning: " + old + " predates the augmentation-settings check"
		t.Logf("stderr: %s", res.Stderr)
		if !strings.Contains(res.Stderr, want) || !exists(filepath.Join(out, "model_final.ckpt")) {
			t.Errorf("stderr %q lacks %q", res.Stderr, want)
		}
	})
}

// copyWithoutReplay copies a soft-target file into one whose metadata has
// no replay settings (nor data settings, nor pixel hashes), as teacher-dump
// wrote before it recorded them.
func copyWithoutReplay(t *testing.T, src, dst string) {
	t.Helper()
	r, err := softtarget.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := r.Meta()
	if m.Replay == nil {
		t.Fatalf("%s has no replay settings to drop", src)
	}
	m.Replay, m.Data = nil, nil
	views := softtargettest.ReadAll(t, r)
	for _, v := range views {
		v.PixelHash = nil
	}
	softtargettest.WriteFile(t, dst, m, views)
	c, err := softtarget.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Meta().Replay != nil || c.Len() != r.Len() {
		t.Fatalf("copy: replay %v, %d rows of %d", c.Meta().Replay, c.Len(), r.Len())
	}
}
