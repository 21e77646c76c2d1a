package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

const (
	studentYML = "testdata/student.yml"
	teacherYML = "testdata/teacher.yml"
)

func runTool(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestGoldenTable compares the whole table of a student with a teacher at 320
// with testdata/student_teacher_320.golden (go test -update rewrites it).
func TestGoldenTable(t *testing.T) {
	code, stdout, stderr := runTool(t, "-c", studentYML, "--size", "320", "-t", teacherYML)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	golden := filepath.Join("testdata", "student_teacher_320.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if stdout != string(want) {
		t.Errorf("stdout differs from %s:\n%s", golden, stdout)
	}
	// Independent of the golden file: figures from testdata/yolo/reference.json
	// (PyTorch) for MobileNetV1 x0.25 + head x0.25, 20 classes, at 320.
	for _, s := range []string{
		"backbone.c3 = backbone.conv4_1.sep  64x40x40",
		"head.2.out  75x40x40  stride 8  3 anchors x (5 + 20 classes)",
		"# total: 1556721 params (+9696 BN running stats), 0.793 GFLOPs",
		"head.0.route  head.0.route  128x10x10",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("stdout lacks %q", s)
		}
	}
}

func TestJSON(t *testing.T) {
	code, stdout, stderr := runTool(t, "-c", studentYML, "--size", "320", "-t", teacherYML, "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var got struct {
		Model  string `json:"model"`
		Input  []int  `json:"input"`
		Layers []struct {
			Name   string `json:"name"`
			Shape  []int  `json:"shape"`
			Params int64  `json:"params"`
			FLOPs  int64  `json:"flops"`
		} `json:"layers"`
		Totals struct {
			Params, FLOPs int64
		} `json:"totals"`
		Teacher struct {
			Model  string                 `json:"model"`
			Totals struct{ Params int64 } `json:"totals"`
		} `json:"teacher"`
		Pairs []struct {
			Student, Teacher string
			Shape            []int
			SameName         bool `json:"same_name"`
		} `json:"pairs"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v", err)
	}
	var sum, flops int64
	for _, l := range got.Layers {
		sum += l.Params
		flops += l.FLOPs
	}
	if got.Totals.Params != 1556721 || sum != got.Totals.Params || flops != got.Totals.FLOPs || len(got.Layers) != 54 {
		t.Errorf("totals %+v, layer sums %d %d, %d layers", got.Totals, sum, flops, len(got.Layers))
	}
	if got.Teacher.Model != "resnet18_x0.5-yolov3_x0.25-c20" || got.Teacher.Totals.Params == 0 {
		t.Errorf("teacher %+v", got.Teacher)
	}
	if len(got.Pairs) != 18 || got.Pairs[0].Student != "backbone.c3" || !got.Pairs[0].SameName || got.Pairs[1].SameName {
		t.Errorf("pairs %+v", got.Pairs)
	}
	if len(got.Input) != 3 || got.Input[1] != 320 {
		t.Errorf("input %v", got.Input)
	}
}

// TestAllLayers: --all pairs every layer output, so pairs appear that the
// feature points alone do not give (the head's inner convs).
func TestAllLayers(t *testing.T) {
	code, stdout, _ := runTool(t, "-c", studentYML, "--size", "320", "-t", teacherYML, "--all")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	found := false
	for _, line := range strings.Split(stdout, "\n") {
		if strings.Join(strings.Fields(line), " ") == "head.1.conv1 head.1.conv1 128x20x20" {
			found = true
		}
	}
	if !found {
		t.Errorf("no inner-layer pair in:\n%s", stdout)
	}
}

// TestDefaultSize: without --size the configuration's eval.size (608 by
// default) is used.
func TestDefaultSize(t *testing.T) {
	code, stdout, _ := runTool(t, "-c", studentYML)
	if code != 0 || !strings.Contains(stdout, "input 3x608x608") || !strings.Contains(stdout, "head.0.out  75x19x19") {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
	code, stdout, _ = runTool(t, "-c", studentYML, "-o", "eval.size=416")
	if code != 0 || !strings.Contains(stdout, "input 3x416x416") {
		t.Errorf("override eval.size: exit %d:\n%.200s", code, stdout)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no config", []string{"--size", "320"}, 2, "--config"},
		{"unknown flag", []string{"-c", studentYML, "--bogus"}, 2, "bogus"},
		{"size", []string{"-c", studentYML, "--size", "330"}, 2, "multiples of 32"},
		{"missing file", []string{"-c", "testdata/nope.yml"}, 1, "testdata/nope.yml"},
		{"bad key", []string{"-c", "testdata/bad_key.yml"}, 1, "testdata/bad_key.yml:3:3: model.bakbone_width"},
		{"too thin", []string{"-c", "testdata/too_thin.yml"}, 1, "testdata/too_thin.yml: model: width 0.001"},
		{"bad teacher", []string{"-c", studentYML, "-t", "testdata/bad_key.yml"}, 1, "testdata/bad_key.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runTool(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if stdout != "" {
				t.Errorf("stdout not empty: %q", stdout)
			}
			if !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "model-inspect: error: ") {
				t.Errorf("stderr %q, want it to contain %q", stderr, tt.want)
			}
		})
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"-c", studentYML}, strings.NewReader(""), &out, &errb); code != 130 || out.Len() != 0 {
		t.Errorf("exit %d, stdout %q", code, out.String())
	}
}

// TestBinary builds the real binary and checks one success and one failure:
// exit codes, data only on stdout, messages only on stderr.
func TestBinary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	bin := filepath.Join(t.TempDir(), "model-inspect")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tests := []struct {
		args       []string
		code       int
		wantStdout string
		wantStderr string
	}{
		{[]string{"-c", studentYML, "--size", "320"}, 0, "backbone.c5 = backbone.conv6.sep  256x10x10", ""},
		{[]string{"-c", "testdata/bad_key.yml"}, 1, "", "model-inspect: error: testdata/bad_key.yml:3:3"},
		{[]string{"--size", "320"}, 2, "", "missing flags: --config"},
	}
	for _, tt := range tests {
		cmd := exec.Command(bin, tt.args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code {
			t.Errorf("%v: exit %d, want %d", tt.args, code, tt.code)
		}
		if (tt.wantStdout == "") != (out.Len() == 0) || !strings.Contains(out.String(), tt.wantStdout) {
			t.Errorf("%v: stdout %.300q", tt.args, out.String())
		}
		if (tt.wantStderr == "") != (errb.Len() == 0) || !strings.Contains(errb.String(), tt.wantStderr) {
			t.Errorf("%v: stderr %q", tt.args, errb.String())
		}
	}
}
