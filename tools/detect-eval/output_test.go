package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
)

// cocoSummary is the first line of the COCO table.
const cocoSummary = " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]"

// TestEmptyDetections: an empty results array is valid (pycocotools refuses
// it); the scores themselves are pkg/metrics' TestScoreEmptyDetections.
func TestEmptyDetections(t *testing.T) {
	out := filepath.Join(t.TempDir(), "s.json")
	r := clitest.Run(t, run, "--gt", filepath.Join(td, "gt_small.json"), "--dets", filepath.Join(td, "dets_empty.json"), "--json", out)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, cocoSummary) {
		t.Fatalf("exit %d: %s\n%s", r.Code, r.Stderr, r.Stdout)
	}
	var got struct {
		Stats []float64 `json:"stats"`
	}
	readJSON(t, out, &got)
	if len(got.Stats) != 12 || got.Stats[0] != 0 || got.Stats[5] != -1 {
		t.Errorf("stats = %v", got.Stats)
	}
}

// TestVOCFlags: the metric defaults to voc for a VOC folder (and to 11point);
// --metric, --map-type and --evaluate-difficult reach the scores, hand
// computed in pkg/metrics' TestScoreVOCHandComputed and TestScoreVOCFolder.
func TestVOCFlags(t *testing.T) {
	voc, vocDets := filepath.Join(td, "voc_small"), filepath.Join(td, "voc_small_dets.json")
	cases := []struct {
		name     string
		args     []string
		mapType  string
		want, b  float64
		perClass string // a class of the JSON's per_class
	}{
		{"VOC folder", []string{"--gt", voc, "--dets", vocDets}, "11point", 2.0 / 3, -1, "b"},
		{"difficult evaluated", []string{"--gt", voc, "--dets", vocDets, "--map-type", "integral", "--evaluate-difficult"}, "integral", (7.0/12 + 1) / 2, 1, "b"},
		{"COCO JSON, 11point", []string{"--gt", filepath.Join(td, "gt_small.json"), "--dets", filepath.Join(td, "dets_good.json"), "--metric", "voc", "--map-type", "11point"}, "11point", 0.5, 0, "dog"},
		{"COCO JSON, integral", []string{"--gt", filepath.Join(td, "gt_small.json"), "--dets", filepath.Join(td, "dets_good.json"), "--metric", "voc", "--map-type", "integral"}, "integral", 0.5, 0, "dog"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "voc.json")
			r := clitest.Run(t, run, append(tc.args, "--json", out)...)
			if r.Code != 0 {
				t.Fatalf("exit %d: %s", r.Code, r.Stderr)
			}
			var got struct {
				Metric   string             `json:"metric"`
				MAP      float64            `json:"map"`
				MapType  string             `json:"map_type"`
				PerClass map[string]float64 `json:"per_class"`
			}
			readJSON(t, out, &got)
			if got.Metric != "voc" || got.MapType != tc.mapType || math.Abs(got.MAP-tc.want) > 1e-12 || got.PerClass[tc.perClass] != tc.b {
				t.Errorf("got %+v, want %s map %v, %s %v\n%s", got, tc.mapType, tc.want, tc.perClass, tc.b, r.Stdout)
			}
			if head := fmt.Sprintf("mAP(0.50, %s) = %.4f\n", tc.mapType, tc.want); !strings.HasPrefix(r.Stdout, head) {
				t.Errorf("stdout does not start with %q:\n%s", head, r.Stdout)
			}
		})
	}
}

// TestPRCurves writes one PNG per class with ground truth.
func TestPRCurves(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pr")
	r := clitest.Run(t, run, "--gt", filepath.Join(td, "gt_small.json"), "--dets", filepath.Join(td, "dets_good.json"), "--pr-dir", dir)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	for _, f := range []string{"pr_001_cat.png", "pr_003_dog.png"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) || len(data) < 1000 {
			t.Errorf("%s is not a PNG (%d bytes)", f, len(data))
		}
	}
	if !strings.Contains(r.Stderr, "wrote 2 precision/recall curves") {
		t.Errorf("stderr: %s", r.Stderr)
	}
}

// TestJSONStdout: --json - puts only the JSON on stdout.
func TestJSONStdout(t *testing.T) {
	r := clitest.Run(t, run, "--gt", filepath.Join(td, "gt_small.json"), "--dets", filepath.Join(td, "dets_good.json"), "--json", "-")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.Stdout)
	}
	if got["metric"] != "coco" {
		t.Errorf("got %v", got)
	}
}

// TestCOCOFolder: a folder holding annotations.json (as `dataset convert
// --to coco` writes) is read as COCO ground truth.
func TestCOCOFolder(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(td, "gt_small.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "annotations.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := clitest.Run(t, run, "--gt", dir, "--dets", filepath.Join(td, "dets_good.json"))
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	if !strings.HasPrefix(r.Stdout, cocoSummary) {
		t.Errorf("stdout is not a COCO summary:\n%s", r.Stdout)
	}
}
