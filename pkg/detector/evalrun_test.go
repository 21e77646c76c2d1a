package detector_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/detector/detectortest"
	"yolodistill/pkg/metrics"
)

const (
	synthPreset = "../../pipelines/configs/synth_student.yml"
	bccdPreset  = "../../pipelines/configs/bccd_student.yml"
	bccd        = "../../../shared/datasets/bccd"
)

// tinyModel are overrides that shrink a preset to a tiny, fast model at 64 px
// whose untrained objectness is biased up so that it produces detections.
var tinyModel = []string{"model.backbone_width=0.25", "model.head_width=0.125", "eval.size=64",
	"eval.batch_size=4", "model.obj_bias_init=1.5", "eval.nms.keep_top_k=10"}

// tinySynth is tinyModel on a 100-image synthetic set of 64 px images (val:
// 10 images).
var tinySynth = append(slices.Clone(tinyModel), "data.synth.num_images=100", "data.synth.image_size=64")

func loadConfig(t *testing.T, path string, overrides ...string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path, overrides)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runEval is RunEval with its log lines collected.
func runEval(ctx context.Context, cfg *config.Config, r detector.EvalRun) (*metrics.GroundTruth, []metrics.Detection, string, error) {
	var log strings.Builder
	r.Logf = func(format string, args ...any) { fmt.Fprintf(&log, format+"\n", args...) }
	gt, dets, err := detector.RunEval(ctx, cfg, r)
	return gt, dets, log.String(), err
}

// TestRunEvalSynth: the results file holds the detections returned, and
// scoring them gives Evaluate's numbers.
func TestRunEvalSynth(t *testing.T) {
	tmp := t.TempDir()
	ck, cfg := detectortest.Checkpoint(t, tmp, "model.ckpt", synthPreset, tinySynth...)
	rp := filepath.Join(tmp, "bbox.json")
	gt, dets, log, err := runEval(context.Background(), cfg, detector.EvalRun{Weights: ck, Results: rp})
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if len(gt.Images) != 10 || len(dets) == 0 || cfg.Eval.Metric != "voc" {
		t.Fatalf("%d images, %d detections, metric %q", len(gt.Images), len(dets), cfg.Eval.Metric)
	}
	back, err := metrics.ReadCOCOResults(rp, gt)
	if err != nil {
		t.Fatalf("results file: %v", err)
	}
	if !slices.Equal(back, dets) {
		t.Fatalf("the results file holds %d detections that do not round-trip the %d returned", len(back), len(dets))
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
	if !strings.Contains(log, "wrote "+rp+"\n") || !strings.Contains(log, "10 images at 64 px") {
		t.Errorf("the log does not report the split or the results file:\n%s", log)
	}
}

// TestRunEvalBCCD: BCCD's test split (72 VOC images, 640x480) through
// EvalRun.Dataset: every detection is on a split image, inside its 640x480
// pixels.
func TestRunEvalBCCD(t *testing.T) {
	if _, err := os.Stat(bccd); err != nil {
		t.Skipf("%s not found", bccd)
	}
	tmp := t.TempDir()
	ck, cfg := detectortest.Checkpoint(t, tmp, "model.ckpt", bccdPreset, tinyModel...)
	gt, dets, log, err := runEval(context.Background(), cfg, detector.EvalRun{Weights: ck, Dataset: bccd, Results: filepath.Join(tmp, "r.json")})
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
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
	if !strings.Contains(log, "72 images at 64 px") {
		t.Errorf("log:\n%s", log)
	}
}

func TestRunEvalErrors(t *testing.T) {
	tmp := t.TempDir()
	ck, cfg := detectortest.Checkpoint(t, tmp, "model.ckpt", synthPreset, tinySynth...)
	other, _ := detectortest.Checkpoint(t, tmp, "other.ckpt", synthPreset, append(slices.Clone(tinySynth), "model.head_width=0.25")...)
	vocCfg := loadConfig(t, synthPreset, append(slices.Clone(tinySynth), "data.format=voc", "data.root=elsewhere")...)
	tests := []struct {
		name string
		cfg  *config.Config
		r    detector.EvalRun
		want []string
	}{
		{"missing weights", cfg, detector.EvalRun{Weights: filepath.Join(tmp, "no.ckpt")}, []string{"no.ckpt"}},
		{"checkpoint of another model", cfg, detector.EvalRun{Weights: other}, []string{"does not fit", "head.0"}},
		{"missing dataset", vocCfg, detector.EvalRun{Weights: ck, Dataset: filepath.Join(tmp, "nodata")}, []string{"nodata"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := runEval(context.Background(), tc.cfg, tc.r)
			if err == nil {
				t.Fatal("no error")
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
	rp := filepath.Join(tmp, "cancelled.json")
	if _, _, _, err := runEval(ctx, cfg, detector.EvalRun{Weights: ck, Results: rp}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := os.Stat(rp); err == nil {
		t.Errorf("a results file was written although cancelled")
	}
}
