package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/softtarget"
)

// The tiny configurations live with teacher-dump's tests.
const (
	teacherYML      = "../teacher-dump/testdata/teacher.yml"
	studentYML      = "../teacher-dump/testdata/student.yml"
	studentPairsYML = "../teacher-dump/testdata/student_pairs.yml"
)

var (
	binDir     string // built teacher-dump and student-train
	teacherCk  string // a freshly initialised teacher
	buildError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "student-train-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	buildError = build(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles both tools with the BLAS this test binary uses, so that the
// binaries compute the same float32 values as run() in this process.
func build(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + "/"}
	env := os.Environ()
	if nn.BLASName == "openblas" {
		args = append(args, "-tags", "openblas")
		if os.Getenv("CGO_LDFLAGS") == "" {
			env = append(env, "CGO_LDFLAGS=-lopenblas")
		}
	} else {
		args = append(args, "-tags", "purego")
	}
	cmd := exec.Command(goBin, append(args, "../teacher-dump", ".")...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	cfg, err := config.Load(teacherYML, nil)
	if err != nil {
		return err
	}
	d, err := detector.New(cfg)
	if err != nil {
		return err
	}
	teacherCk = filepath.Join(dir, "teacher.ckpt")
	return checkpoint.Save(teacherCk, d.ToCheckpoint())
}

func needBins(t *testing.T) {
	t.Helper()
	if buildError != nil {
		t.Fatal(buildError)
	}
}

// sh runs a bash command line with pipefail; it returns the exit code and stderr.
func sh(t *testing.T, line string) (int, string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", "set -o pipefail; "+line)
	cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
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

// record is a metrics.jsonl line without the timing.
type record struct {
	Iter  int                `json:"iter"`
	LR    float64            `json:"lr"`
	Loss  float64            `json:"loss"`
	Parts map[string]float64 `json:"parts"`
}

func metrics(t *testing.T, dir string) []record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// compare checks two runs' records: same iterations and parts, values within
// rel (relative; 0 = bitwise equal).
func compare(t *testing.T, a, b []record, rel float64) {
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

func distillParts(rs []record) []string {
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

// TestPipeFileOnline: teacher-dump | student-train through a shell pipe;
// the same stream saved to a file gives the same training step for step; the
// online teacher gives the same losses (the stored pipeline is exact).
func TestPipeFileOnline(t *testing.T) {
	needBins(t)
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
	if code, stderr := sh(t, fmt.Sprintf("teacher-dump -c %s --weights %s --student-config %s --views 2 --out - > %s", teacherYML, teacherCk, studentYML, full)); code != 0 {
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
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"-c", studentYML, "--soft-targets", "-", "--out", out},
				bytes.NewReader(data[:tt.keep]), &stdout, &stderr)
			if code != 1 || stdout.Len() != 0 {
				t.Errorf("exit %d, stdout %q", code, stdout.String())
			}
			if exists(filepath.Join(out, "model_final.ckpt")) {
				t.Error("model_final.ckpt written from a truncated stream")
			}
			if !strings.Contains(stderr.String(), "student-train: error:") || !strings.Contains(strings.ToLower(stderr.String()), "truncated") {
				t.Errorf("stderr: %s", stderr.String())
			}
		})
	}
	// The whole stream works, and resuming from a stream continues exactly.
	out := filepath.Join(dir, "run")
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-c", studentYML, "--soft-targets", "-", "--out", out}, bytes.NewReader(data), io0{}, &stderr); code != 0 {
		t.Fatalf("whole stream: exit %d\n%s", code, stderr.String())
	}
	resumed := filepath.Join(dir, "resumed")
	os.MkdirAll(resumed, 0o755)
	stderr.Reset()
	if code := run(context.Background(), []string{"-c", studentYML, "--soft-targets", "-", "--out", resumed, "-r", filepath.Join(out, "model_3.ckpt")},
		bytes.NewReader(data), io0{}, &stderr); code != 0 {
		t.Fatalf("resume: exit %d\n%s", code, stderr.String())
	}
	a, b := metrics(t, out), metrics(t, resumed)
	compare(t, a[3:], b, 0)
}

type io0 struct{}

func (io0) Write(p []byte) (int, error) { return len(p), nil }

// TestRefusesOtherTeacher: soft targets from another teacher, for another
// class list, or without the feature maps the pairs need are clear errors.
func TestRefusesOtherTeacher(t *testing.T) {
	needBins(t)
	dir := t.TempDir()
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	other := filepath.Join(dir, "other_teacher.yml")
	os.WriteFile(other, []byte("_base_: "+abs(teacherYML)+"\nmodel: {head_width: 0.25}\n"), 0o644)
	cfg, _ := config.Load(other, nil)
	d, _ := detector.New(cfg)
	otherCk := filepath.Join(dir, "other.ckpt")
	checkpoint.Save(otherCk, d.ToCheckpoint())
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
		{"another teacher", []string{"-c", studentYML, "--soft-targets", otherDump}, "teacher config hash is"},
		{"another class list", []string{"-c", studentYML, "-o", "data.classes=[circle, ring, star]", "--soft-targets", goodDump}, `class 2 is "square", expected "star" (another class list)`},
		{"feature maps missing", []string{"-c", studentPairsYML, "--soft-targets", goodDump}, `feature map "backbone.c4" is not stored`},
		{"online teacher of another class list", []string{"-c", studentYML, "-o", "data.classes=[circle, ring, star]", "--teacher-weights", teacherCk}, `class 2 is "square", expected "star"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append(tt.args, "--out", out), strings.NewReader(""), &stdout, &stderr)
			if code != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q (want %q)", code, stdout.String(), stderr.String(), tt.stderr)
			}
			if exists(filepath.Join(out, "model_final.ckpt")) {
				t.Error("model_final.ckpt written")
			}
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
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q (want %q)", code, stdout.String(), stderr.String(), tt.stderr)
			}
		})
	}
}

// TestSparseSoftTargets: a sparse soft-target file is refused for l2 (it
// reads every head logit) with exit 1 before training, and trains with
// fine_grained, whose box and class terms skip the unstored cells: a
// threshold of 0 stores every cell and matches the dense file bit for bit;
// a threshold of 0.5 drops terms, so the first distillation loss (same
// weights) is below the dense one. (That the masks reach the loss, laid out
// like the batch, is checked by TestPrepareMasks.)
func TestSparseSoftTargets(t *testing.T) {
	needBins(t)
	dir := t.TempDir()
	files := map[string]string{"dense": "", "sparse0": "--sparse 0", "sparse5": "--sparse 0.5"}
	for name, flag := range files {
		path := filepath.Join(dir, name+".arrow")
		if code, stderr := sh(t, fmt.Sprintf("teacher-dump -c %s --weights %s --student-config %s %s --out %s", teacherYML, teacherCk, studentYML, flag, path)); code != 0 {
			t.Fatalf("dump %s: exit %d\n%s", name, code, stderr)
		}
		files[name] = path
	}

	out := filepath.Join(dir, "l2")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-c", studentYML, "-o", "distill.loss=l2", "--soft-targets", files["sparse5"], "--out", out},
		strings.NewReader(""), &stdout, &stderr)
	if code != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "the l2 loss reads every logit: dump dense") {
		t.Errorf("sparse + l2: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	if exists(filepath.Join(out, "model_final.ckpt")) || exists(filepath.Join(out, "metrics.jsonl")) {
		t.Error("sparse + l2 trained")
	}

	runs := map[string][]record{}
	for _, name := range []string{"dense", "sparse0", "sparse5"} {
		out := filepath.Join(dir, "run_"+name)
		var stderr bytes.Buffer
		if code := run(context.Background(), []string{"-c", studentYML, "--soft-targets", files[name], "--out", out}, strings.NewReader(""), io0{}, &stderr); code != 0 {
			t.Fatalf("%s: exit %d\n%s", name, code, stderr.String())
		}
		runs[name] = metrics(t, out)
		if !exists(filepath.Join(out, "model_final.ckpt")) {
			t.Errorf("%s: no model_final.ckpt", name)
		}
	}
	compare(t, runs["dense"], runs["sparse0"], 0)
	d, s := runs["dense"], runs["sparse5"]
	ks := distillParts(s)
	if len(s) != len(d) || len(ks) == 0 {
		t.Fatalf("sparse run: %d records (dense %d), parts %v", len(s), len(d), ks)
	}
	for _, r := range s {
		if v := r.Parts[ks[0]]; !(v > 0) || math.IsInf(v, 0) || math.IsNaN(r.Loss) {
			t.Fatalf("sparse run: record %+v", r)
		}
	}
	if !(s[0].Parts[ks[0]] < d[0].Parts[ks[0]]) {
		t.Errorf("first %s: sparse 0.5 %v, dense %v; want below", ks[0], s[0].Parts[ks[0]], d[0].Parts[ks[0]])
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
	refused := []struct {
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
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append(tt.args, "--out", out), strings.NewReader(""), &stdout, &stderr)
			if code != 1 || stdout.Len() != 0 {
				t.Errorf("exit %d, stdout %q", code, stdout.String())
			}
			t.Logf("stderr: %s", stderr.String())
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr %q lacks %q", stderr.String(), s)
				}
			}
			if exists(filepath.Join(out, "metrics.jsonl")) || exists(filepath.Join(out, "model_final.ckpt")) {
				t.Error("trained on mismatched soft targets")
			}
		})
	}

	t.Run("same pixels", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "run")
		var stderr bytes.Buffer
		args := []string{"-c", studentYML, "-o", "data.augment.mean=[0.5, 0.5, 0.5]", "-o", "data.augment.flip_prob=0.1",
			"-o", "data.augment.expand.fill=[123.2, 116.9, 103.1]", "--soft-targets", halfMean, "--out", out}
		if code := run(context.Background(), args, strings.NewReader(""), io0{}, &stderr); code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
		if strings.Contains(stderr.String(), "warning") || !exists(filepath.Join(out, "model_final.ckpt")) {
			t.Errorf("stderr %s", stderr.String())
		}
	})

	t.Run("file predates the check", func(t *testing.T) {
		old := filepath.Join(t.TempDir(), "old.arrow")
		copyWithoutReplay(t, halfMean, old)
		out := filepath.Join(t.TempDir(), "run")
		var stderr bytes.Buffer
		if code := run(context.Background(), []string{"-c", studentYML, "--soft-targets", old, "--out", out}, strings.NewReader(""), io0{}, &stderr); code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
		want := "student-train: warning: " + old + " predates the augmentation-settings check"
		t.Logf("stderr: %s", stderr.String())
		if !strings.Contains(stderr.String(), want) || !exists(filepath.Join(out, "model_final.ckpt")) {
			t.Errorf("stderr %q lacks %q", stderr.String(), want)
		}
	})
}

// copyWithoutReplay copies a soft-target file row by row into one whose
// metadata has no replay settings, as teacher-dump wrote before it recorded them.
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
	m.Replay = nil
	w, err := softtarget.CreateFile(dst, m)
	if err != nil {
		t.Fatal(err)
	}
	var v softtarget.View
	for i := 0; i < r.Len(); i++ {
		if err := r.ReadRow(i, &v); err != nil {
			t.Fatal(err)
		}
		if err := w.Write(&v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := softtarget.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Meta().Replay != nil || c.Len() != r.Len() {
		t.Fatalf("copy: replay %v, %d rows of %d", c.Meta().Replay, c.Len(), r.Len())
	}
}
