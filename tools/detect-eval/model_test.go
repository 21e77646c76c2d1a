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

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/metrics"
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

// writeCkpt saves the untrained detector of preset+overrides and returns its
// path and configuration.
func writeCkpt(t *testing.T, dir, preset string, overrides []string) (string, *config.Config) {
	t.Helper()
	cfg, err := config.Load(preset, overrides)
	if err != nil {
		t.Fatal(err)
	}
	d, err := detector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "model.ckpt")
	if err := checkpoint.Save(p, d.ToCheckpoint()); err != nil {
		t.Fatal(err)
	}
	return p, cfg
}

func TestModelDetectionsSynth(t *testing.T) {
	tmp := t.TempDir()
	o := append(slices.Clone(tinyModel), tinySynth...)
	ck, cfg := writeCkpt(t, tmp, synthPreset, o)
	var errb bytes.Buffer
	log := cli.Logger{Name: name, W: &errb}
	f := &modelFlags{Config: synthPreset, Override: o, Weights: ck}
	gt, dets, gotCfg, err := modelDetections(context.Background(), f, "", log)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if len(gt.Images) != 10 || len(dets) == 0 || gotCfg.Eval.Metric != "voc" {
		t.Fatalf("%d images, %d detections, metric %q", len(gt.Images), len(dets), gotCfg.Eval.Metric)
	}
	// default results path: beside the checkpoint
	rp := filepath.Join(tmp, "bbox.json")
	back, err := metrics.ReadCOCOResults(rp, gt)
	if err != nil {
		t.Fatalf("results file: %v", err)
	}
	if len(back) != len(dets) {
		t.Fatalf("results file holds %d detections, want %d", len(back), len(dets))
	}
	for i := range back {
		if back[i] != dets[i] {
			t.Fatalf("detection %d does not round-trip: %+v vs %+v", i, back[i], dets[i])
		}
	}
	// the same numbers as the library evaluation the trainer uses
	d, _, err := detector.Load(context.Background(), cfg, ck, "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := dataset.OpenSplit(cfg, cfg.Data.EvalSplit, dataset.SplitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := detector.Evaluate(context.Background(), d, sp, detector.EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := detector.Score(cfg, sp.DS, back)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(mine.Score-ref.Score) > 1e-12 || len(ref.Detections) != len(dets) {
		t.Errorf("file round trip scores %v, Evaluate %v (%d vs %d detections)", mine.Score, ref.Score, len(dets), len(ref.Detections))
	}
	if !strings.Contains(errb.String(), "wrote "+rp) {
		t.Errorf("stderr does not report the results file:\n%s", errb.String())
	}
	// --results and --json decide where the file goes
	if got := resultsPath(&modelFlags{Weights: ck, Results: "x/r.json"}, "y/s.json"); got != "x/r.json" {
		t.Errorf("resultsPath with --results: %s", got)
	}
	if got := resultsPath(&modelFlags{Weights: ck}, filepath.Join("y", "s.json")); got != filepath.Join("y", "bbox.json") {
		t.Errorf("resultsPath beside --json: %s", got)
	}
	if got := resultsPath(&modelFlags{Weights: ck}, "-"); got != rp {
		t.Errorf("resultsPath with --json -: %s", got)
	}
}

// BCCD's test split (72 VOC images, 640x480) through --dataset: every
// detection is on a split image, inside its 640x480 pixels.
func TestModelDetectionsBCCD(t *testing.T) {
	const bccd = "../../../shared/datasets/bccd"
	if _, err := os.Stat(bccd); err != nil {
		t.Skipf("%s not found", bccd)
	}
	tmp := t.TempDir()
	ck, _ := writeCkpt(t, tmp, bccdPreset, tinyModel)
	var errb bytes.Buffer
	f := &modelFlags{Config: bccdPreset, Override: tinyModel, Weights: ck, Dataset: bccd, Results: filepath.Join(tmp, "r.json")}
	gt, dets, _, err := modelDetections(context.Background(), f, "", cli.Logger{Name: name, W: &errb})
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if len(gt.Images) != 72 || len(dets) == 0 {
		t.Fatalf("%d images, %d detections", len(gt.Images), len(dets))
	}
	ids := map[int64]bool{}
	for _, im := range gt.Images {
		ids[im.ID] = true
	}
	for i, d := range dets {
		b := d.BBox
		if !ids[d.ImageID] || d.CategoryID < 1 || d.CategoryID > 3 || b[0] < 0 || b[1] < 0 || b[0]+b[2] > 640+1e-9 || b[1]+b[3] > 480+1e-9 {
			t.Fatalf("detection %d: %+v", i, d)
		}
	}
	if !strings.Contains(errb.String(), "72 images at 64 px") {
		t.Errorf("stderr:\n%s", errb.String())
	}
}

func TestModelDetectionsErrors(t *testing.T) {
	tmp := t.TempDir()
	o := append(slices.Clone(tinyModel), tinySynth...)
	ck, _ := writeCkpt(t, tmp, synthPreset, o)
	otherDir := filepath.Join(tmp, "other")
	os.MkdirAll(otherDir, 0o755)
	other, _ := writeCkpt(t, otherDir, synthPreset, append(slices.Clone(o), "model.head_width=0.25"))
	tests := []struct {
		name  string
		f     modelFlags
		usage bool
		want  []string
	}{
		{"no weights", modelFlags{Config: synthPreset, Override: o}, true, []string{"--weights"}},
		{"bad size", modelFlags{Config: synthPreset, Override: o, Weights: ck, Size: 100}, true, []string{"--size"}},
		{"missing weights", modelFlags{Config: synthPreset, Override: o, Weights: filepath.Join(tmp, "no.ckpt")}, false, []string{"no.ckpt"}},
		{"checkpoint of another model", modelFlags{Config: synthPreset, Override: o, Weights: other}, false, []string{"does not fit", "head.0"}},
		{"missing dataset", modelFlags{Config: synthPreset, Override: append(slices.Clone(o), "data.format=voc", "data.root=elsewhere"), Weights: ck, Dataset: filepath.Join(tmp, "nodata")}, false, []string{"nodata"}},
		{"missing config", modelFlags{Config: filepath.Join(tmp, "c.yml"), Weights: ck}, false, []string{"c.yml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := modelDetections(context.Background(), &tc.f, "", cli.Logger{Name: name, W: &bytes.Buffer{}})
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
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := modelFlags{Config: synthPreset, Override: o, Weights: ck}
	if _, _, _, err := modelDetections(ctx, &f, "", cli.Logger{Name: name, W: &bytes.Buffer{}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// The model mode through run(): table on stdout, --json scores equal to
// detector.Evaluate's, bbox.json beside --json; and `--gt BCCD --dets bbox.json`
// gives the same scores as the model mode on BCCD.
func TestRunModelMode(t *testing.T) {
	tmp := t.TempDir()
	o := append(slices.Clone(tinyModel), tinySynth...)
	ck, cfg := writeCkpt(t, tmp, synthPreset, o)
	args := []string{"-c", synthPreset, "--weights", ck}
	for _, s := range o {
		args = append(args, "-o", s)
	}
	scores := filepath.Join(tmp, "out", "scores.json")
	os.MkdirAll(filepath.Dir(scores), 0o755)
	prDir := filepath.Join(tmp, "pr")
	code, stdout, stderr := runTool(t, append(slices.Clone(args), "--json", scores, "--pr-dir", prDir)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if pngs, _ := filepath.Glob(filepath.Join(prDir, "pr_*.png")); len(pngs) == 0 {
		t.Errorf("--pr-dir: no curves written")
	}
	if !strings.HasPrefix(stdout, "mAP(0.50, 11point) = ") || !strings.Contains(stdout, "circle") {
		t.Errorf("stdout is not the VOC table:\n%s", stdout)
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
	code, stdout, stderr = runTool(t, append(slices.Clone(args), "--metric", "coco", "--json", "-", "--results", filepath.Join(tmp, "r.json"))...)
	var coco struct {
		Metric string    `json:"metric"`
		Stats  []float64 `json:"stats"`
	}
	if code != 0 {
		t.Fatalf("--metric coco: exit %d\n%s", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &coco); err != nil || coco.Metric != "coco" || len(coco.Stats) != 12 {
		t.Errorf("--metric coco --json -: %v\n%s", err, stdout)
	}
	code, stdout, _ = runTool(t, append(slices.Clone(args), "--map-type", "integral", "--results", filepath.Join(tmp, "r.json"))...)
	if code != 0 || !strings.HasPrefix(stdout, "mAP(0.50, integral)") {
		t.Errorf("--map-type integral: exit %d\n%s", code, stdout)
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
		code, stdout, stderr := runTool(t, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tc.name, code, stdout, stderr)
		}
	}
	code, _, stderr = runTool(t, "-c", synthPreset, "--weights", filepath.Join(tmp, "absent.ckpt"))
	if code != 1 || !strings.Contains(stderr, "absent.ckpt") {
		t.Errorf("missing checkpoint: exit %d, stderr %q", code, stderr)
	}
}

func TestRunModelModeMatchesGTDets(t *testing.T) {
	const bccd = "../../../shared/datasets/bccd"
	if _, err := os.Stat(bccd); err != nil {
		t.Skipf("%s not found", bccd)
	}
	tmp := t.TempDir()
	ck, _ := writeCkpt(t, tmp, bccdPreset, tinyModel)
	args := []string{"-c", bccdPreset, "--weights", ck, "--dataset", bccd}
	for _, s := range tinyModel {
		args = append(args, "-o", s)
	}
	for _, metric := range []string{"voc", "coco"} {
		a := filepath.Join(tmp, metric+"_model.json")
		code, _, stderr := runTool(t, append(slices.Clone(args), "--metric", metric, "--json", a)...)
		if code != 0 {
			t.Fatalf("%s model mode: exit %d\n%s", metric, code, stderr)
		}
		b := filepath.Join(tmp, metric+"_file.json")
		code, _, stderr = runTool(t, "--gt", bccd, "--split", "test", "--classes", "RBC,WBC,Platelets",
			"--dets", filepath.Join(tmp, "bbox.json"), "--metric", metric, "--json", b)
		if code != 0 {
			t.Fatalf("%s --gt/--dets: exit %d\n%s", metric, code, stderr)
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
