package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"yolodistill/pkg/cli/clitest"
)

const (
	studentYML = "testdata/student.yml"
	teacherYML = "testdata/teacher.yml"
)

// TestGoldenTable compares the whole table of a student with a teacher at 320
// with testdata/student_teacher_320.golden (go test -update rewrites it).
func TestGoldenTable(t *testing.T) {
	r := clitest.Run(t, run, "-c", studentYML, "--size", "320", "-t", teacherYML)
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	clitest.Golden(t, filepath.Join("testdata", "student_teacher_320.golden"), r.Stdout)
	// Independent of the golden file: figures from testdata/yolo/reference.json
	// (PyTorch) for MobileNetV1 x0.25 + head x0.25, 20 classes, at 320.
	for _, s := range []string{
		"backbone.c3 = backbone.conv4_1.sep  64x40x40",
		"head.2.out  75x40x40  stride 8  3 anchors x (5 + 20 classes)",
		"# total: 1556721 params (+9696 BN running stats), 0.793 GFLOPs",
		"head.0.route  head.0.route  128x10x10",
	} {
		if !strings.Contains(r.Stdout, s) {
			t.Errorf("stdout lacks %q", s)
		}
	}
}

func TestJSON(t *testing.T) {
	r := clitest.Run(t, run, "-c", studentYML, "--size", "320", "-t", teacherYML, "--json")
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
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
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
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
	r := clitest.Run(t, run, "-c", studentYML, "--size", "320", "-t", teacherYML, "--all")
	if r.Code != 0 {
		t.Fatalf("exit %d", r.Code)
	}
	found := false
	for _, line := range strings.Split(r.Stdout, "\n") {
		if strings.Join(strings.Fields(line), " ") == "head.1.conv1 head.1.conv1 128x20x20" {
			found = true
		}
	}
	if !found {
		t.Errorf("no inner-layer pair in:\n%s", r.Stdout)
	}
}

// TestDefaultSize: without --size the configuration's eval.size (608 by
// default) is used.
func TestDefaultSize(t *testing.T) {
	r := clitest.Run(t, run, "-c", studentYML)
	if r.Code != 0 || !strings.Contains(r.Stdout, "input 3x608x608") || !strings.Contains(r.Stdout, "head.0.out  75x19x19") {
		t.Errorf("exit %d:\n%s", r.Code, r.Stdout)
	}
	r = clitest.Run(t, run, "-c", studentYML, "-o", "eval.size=416")
	if r.Code != 0 || !strings.Contains(r.Stdout, "input 3x416x416") {
		t.Errorf("override eval.size: exit %d:\n%.200s", r.Code, r.Stdout)
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
			r := clitest.Run(t, run, tt.args...)
			if r.Code != tt.code {
				t.Errorf("exit %d, want %d", r.Code, tt.code)
			}
			if r.Stdout != "" {
				t.Errorf("stdout not empty: %q", r.Stdout)
			}
			if !strings.Contains(r.Stderr, tt.want) || !strings.Contains(r.Stderr, "model-inspect: error: ") {
				t.Errorf("stderr %q, want it to contain %q", r.Stderr, tt.want)
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
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	bin := t.TempDir()
	if err := clitest.Build(bin, "."); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args       string
		code       int
		wantStdout string
		wantStderr string
	}{
		{"-c " + studentYML + " --size 320", 0, "backbone.c5 = backbone.conv6.sep  256x10x10", ""},
		{"-c testdata/bad_key.yml", 1, "", "model-inspect: error: testdata/bad_key.yml:3:3"},
		{"--size 320", 2, "", "missing flags: --config"},
	}
	outFile := filepath.Join(t.TempDir(), "stdout")
	for _, tt := range tests {
		code, stderr := clitest.Sh(t, bin, fmt.Sprintf("model-inspect %s >'%s'", tt.args, outFile))
		out, err := os.ReadFile(outFile)
		if err != nil {
			t.Fatal(err)
		}
		if code != tt.code {
			t.Errorf("%v: exit %d, want %d", tt.args, code, tt.code)
		}
		if (tt.wantStdout == "") != (len(out) == 0) || !strings.Contains(string(out), tt.wantStdout) {
			t.Errorf("%v: stdout %.300q", tt.args, out)
		}
		if (tt.wantStderr == "") != (stderr == "") || !strings.Contains(stderr, tt.wantStderr) {
			t.Errorf("%v: stderr %q", tt.args, stderr)
		}
	}
}
