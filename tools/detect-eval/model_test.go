package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/cli"
	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/detector/detectortest"
)

const (
	synthPreset = "../../pipelines/configs/synth_student.yml"
	bccdPreset  = "../../pipelines/configs/bccd_student.yml"
)

// tinyModel are overrides that shrink a preset to a tiny, fast model at 64 px
// whose untrained objectness is biased up so that it produces detections.
var tinyModel = []string{"model.backbone_width=0.25", "model.head_width=0.125", "eval.size=64",
	"eval.batch_size=4", "model.obj_bias_init=1.5", "eval.nms.keep_top_k=10"}

// tinySynth adds a 100-image synthetic set of 64 px images (val: 10 images).
var tinySynth = []string{"data.synth.num_images=100", "data.synth.image_size=64"}

// TestModelFlags: the flag checks of the model mode, and where the results
// file goes (--results, else beside --json FILE, else beside the
// checkpoint). Running the model is pkg/detector's TestRunEval*.
func TestModelFlags(t *testing.T) {
	tmp := t.TempDir()
	ck := filepath.Join(tmp, "model.ckpt")
	tests := []struct {
		name  string
		f     modelFlags
		usage bool
		want  []string
	}{
		{"no weights", modelFlags{Config: synthPreset, Override: tinyModel}, true, []string{"--weights"}},
		{"bad size", modelFlags{Config: synthPreset, Override: tinyModel, Weights: ck, Size: 100}, true, []string{"--size"}},
		{"missing config", modelFlags{Config: filepath.Join(tmp, "c.yml"), Weights: ck}, false, []string{"c.yml"}},
		{"missing weights", modelFlags{Config: synthPreset, Override: tinyModel, Weights: ck}, false, []string{"model.ckpt"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, _, err := modelDetections(context.Background(), &tc.f, "", cli.Logger{Name: name, W: &bytes.Buffer{}})
			if err == nil {
				t.Fatal("no error")
			}
			var ue cli.UsageError
			if errors.As(err, &ue) != tc.usage {
				t.Errorf("usage error %v, want %v: %v", !tc.usage, tc.usage, err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not mention %q: %v", s, err)
				}
			}
		})
	}
	x, y := filepath.Join(tmp, "x"), filepath.Join(tmp, "y")
	os.Mkdir(x, 0o755)
	os.Mkdir(y, 0o755)
	var logb bytes.Buffer
	log := cli.Logger{Name: name, W: &logb}
	for _, c := range []struct {
		name    string
		f       modelFlags
		json    string
		want    string
		err     string // substring of the error
		warning string // substring of the warning
	}{
		{"--results", modelFlags{Weights: ck, Results: filepath.Join(x, "r.json")}, filepath.Join(y, "s.json"), filepath.Join(x, "r.json"), "", ""},
		{"beside --json", modelFlags{Weights: ck}, filepath.Join(y, "s.json"), filepath.Join(y, "bbox.json"), "", ""},
		{"beside the checkpoint", modelFlags{Weights: ck}, "-", filepath.Join(tmp, "bbox.json"), "", ""},
		{"--results in a missing folder", modelFlags{Weights: ck, Results: filepath.Join(tmp, "no", "r.json")}, "", "", "does not exist", ""},
		{"--results is a folder", modelFlags{Weights: ck, Results: x}, "", "", "is a folder", ""},
		{"checkpoint URL", modelFlags{Weights: "http://127.0.0.1:1/m.ckpt"}, "", "", "", "checkpoint is a URL"},
		{"checkpoint folder missing", modelFlags{Weights: filepath.Join(tmp, "gone", "m.ckpt")}, "", "", "", "are not saved"},
	} {
		logb.Reset()
		got, err := resultsPath(&c.f, c.json, log)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case got != c.want:
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		case c.warning != "" && !strings.Contains(logb.String(), c.warning):
			t.Errorf("%s: warning %q, want one saying %q", c.name, logb.String(), c.warning)
		}
	}
}

// The model mode through run(): table on stdout, --json scores equal to
// detector.Evaluate's, bbox.json beside --json; and `--gt BCCD --dets bbox.json`
// gives the same scores as the model mode on BCCD.
func TestRunModelMode(t *testing.T) {
	tmp := t.TempDir()
	o := append(slices.Clone(tinyModel), tinySynth...)
	ck, cfg := detectortest.Checkpoint(t, tmp, "model.ckpt", synthPreset, o...)
	args := []string{"-c", synthPreset, "--weights", ck}
	for _, s := range o {
		args = append(args, "-o", s)
	}
	scores := filepath.Join(tmp, "out", "scores.json")
	os.MkdirAll(filepath.Dir(scores), 0o755)
	prDir := filepath.Join(tmp, "pr")
	r := clitest.Run(t, run, append(slices.Clone(args), "--json", scores, "--pr-dir", prDir)...)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "detect-eval: wrote "+filepath.Join(tmp, "out", "bbox.json")+"\n") {
		t.Errorf("stderr does not report the results file:\n%s", r.Stderr)
	}
	if pngs, _ := filepath.Glob(filepath.Join(prDir, "pr_*.png")); len(pngs) == 0 {
		t.Errorf("--pr-dir: no curves written")
	}
	if !strings.HasPrefix(r.Stdout, "mAP(0.50, 11point) = ") || !strings.Contains(r.Stdout, "circle") {
		t.Errorf("stdout is not the VOC table:\n%s", r.Stdout)
	}
	var got struct {
		Metric  string  `json:"metric"`
		MAP     float64 `json:"map"`
		MapType string  `json:"map_type"`
	}
	readJSON(t, scores, &got)
	d, _, err := detector.Load(context.Background(), cfg, ck, "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := dataset.OpenSplit(cfg, "val", dataset.SplitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := detector.Evaluate(context.Background(), d, sp, detector.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Metric != "voc" || got.MapType != "11point" || math.Abs(got.MAP-ref.Score) > 1e-12 {
		t.Errorf("scores %+v, detector.Evaluate %v", got, ref.Score)
	}
	if _, err := os.Stat(filepath.Join(tmp, "out", "bbox.json")); err != nil {
		t.Errorf("results file beside --json: %v", err)
	}
	// --metric and --map-type override the configuration
	r = clitest.Run(t, run, append(slices.Clone(args), "--metric", "coco", "--json", "-", "--results", filepath.Join(tmp, "r.json"))...)
	var coco struct {
		Metric string    `json:"metric"`
		Stats  []float64 `json:"stats"`
	}
	if r.Code != 0 {
		t.Fatalf("--metric coco: exit %d\n%s", r.Code, r.Stderr)
	}
	if err := json.Unmarshal([]byte(r.Stdout), &coco); err != nil || coco.Metric != "coco" || len(coco.Stats) != 12 {
		t.Errorf("--metric coco --json -: %v\n%s", err, r.Stdout)
	}
	r = clitest.Run(t, run, append(slices.Clone(args), "--map-type", "integral", "--results", filepath.Join(tmp, "r.json"))...)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "mAP(0.50, integral)") {
		t.Errorf("--map-type integral: exit %d\n%s", r.Code, r.Stdout)
	}

	usage := []struct {
		name string
		args []string
		want string
	}{
		{"both modes", append(slices.Clone(args), "--gt", tmp, "--dets", ck), "two modes"},
		{"no weights", []string{"-c", synthPreset}, "--weights"},
		{"bad size", append(slices.Clone(args), "--size", "33"), "--size"},
	}
	for _, tc := range usage {
		r := clitest.Run(t, run, tc.args...)
		if r.Code != 2 || r.Stdout != "" || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tc.name, r.Code, r.Stdout, r.Stderr)
		}
	}
	r = clitest.Run(t, run, "-c", synthPreset, "--weights", filepath.Join(tmp, "absent.ckpt"))
	if r.Code != 1 || !strings.Contains(r.Stderr, "absent.ckpt") {
		t.Errorf("missing checkpoint: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

func TestRunModelModeMatchesGTDets(t *testing.T) {
	if _, err := os.Stat(bccd); err != nil {
		t.Skipf("%s not found", bccd)
	}
	tmp := t.TempDir()
	ck, _ := detectortest.Checkpoint(t, tmp, "model.ckpt", bccdPreset, tinyModel...)
	args := []string{"-c", bccdPreset, "--weights", ck, "--dataset", bccd}
	for _, s := range tinyModel {
		args = append(args, "-o", s)
	}
	for _, metric := range []string{"voc", "coco"} {
		a := filepath.Join(tmp, metric+"_model.json")
		if r := clitest.Run(t, run, append(slices.Clone(args), "--metric", metric, "--json", a)...); r.Code != 0 {
			t.Fatalf("%s model mode: exit %d\n%s", metric, r.Code, r.Stderr)
		}
		b := filepath.Join(tmp, metric+"_file.json")
		r := clitest.Run(t, run, "--gt", bccd, "--split", "test", "--classes", "RBC,WBC,Platelets",
			"--dets", filepath.Join(tmp, "bbox.json"), "--metric", metric, "--json", b)
		if r.Code != 0 {
			t.Fatalf("%s --gt/--dets: exit %d\n%s", metric, r.Code, r.Stderr)
		}
		x, err := os.ReadFile(a)
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s: model mode and --gt/--dets disagree:\n%s\n%s", metric, x, y)
		}
	}
}
