package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
)

// Paths seen from tools/detect-eval: the repository root is ../../ and the
// shared folder sits beside it.
const (
	fixtures = "../../../shared/fixtures/coco-eval"
	bccd     = "../../../shared/datasets/bccd"
	td       = "../../testdata/metrics"
)

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestFixtureStats: detect-eval --gt --dets reproduces pycocotools' twelve
// numbers for both fixture cases (stored with 6 decimals: tolerance 1e-6).
func TestFixtureStats(t *testing.T) {
	if _, err := os.Stat(fixtures); err != nil {
		t.Skipf("fixture folder %s not found (it is ../shared/fixtures/coco-eval beside the repository)", fixtures)
	}
	var exp map[string]struct {
		GT    string    `json:"gt"`
		DT    string    `json:"dt"`
		Stats []float64 `json:"stats"`
	}
	readJSON(t, filepath.Join(fixtures, "expected_stats.json"), &exp)
	for _, name := range []string{"tiny", "val2014_100"} {
		c, ok := exp[name]
		if !ok {
			t.Fatalf("expected_stats.json has no case %q", name)
		}
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "scores.json")
			r := clitest.Run(t, run, "--gt", filepath.Join(fixtures, c.GT), "--dets", filepath.Join(fixtures, c.DT), "--metric", "coco", "--json", out)
			if r.Code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", r.Code, r.Stderr)
			}
			if r.Stderr != "" {
				t.Errorf("unexpected stderr: %s", r.Stderr)
			}
			var got struct {
				Metric   string             `json:"metric"`
				Stats    []float64          `json:"stats"`
				PerClass map[string]float64 `json:"per_class"`
			}
			readJSON(t, out, &got)
			if got.Metric != "coco" || len(got.Stats) != 12 || len(got.PerClass) == 0 {
				t.Fatalf("bad JSON: %+v", got)
			}
			const tol = 1e-6
			for i, want := range c.Stats {
				if math.Abs(got.Stats[i]-want) > tol {
					t.Errorf("stats[%d] = %.7f, want %.6f", i, got.Stats[i], want)
				}
			}
			lines := strings.Split(r.Stdout, "\n")
			if len(lines) < 12 {
				t.Fatalf("stdout has %d lines", len(lines))
			}
			for i, want := range c.Stats {
				if w := fmt.Sprintf("= %.3f", want); !strings.HasSuffix(lines[i], w) {
					t.Errorf("line %d %q does not end with %q", i, lines[i], w)
				}
			}
			if name == "tiny" { // pycocotools' format, as it printed it
				clitest.Golden(t, filepath.Join(td, "tiny_summary.golden"), strings.Join(lines[:12], "\n")+"\n")
			}
		})
	}
}

// TestBadInput: every bad input is a clear message on stderr and exit 1 (2
// for usage), nothing on stdout.
func TestBadInput(t *testing.T) {
	gt := filepath.Join(td, "gt_small.json")
	d := func(f string) string { return filepath.Join(td, f) }
	cases := []struct {
		name string
		args []string
		code int
		want []string // substrings of stderr
	}{
		{"malformed results", []string{"--gt", gt, "--dets", d("dets_malformed.json")}, 1,
			[]string{"dets_malformed.json: malformed JSON at line 2, column 17", "after object key:value pair"}},
		{"NaN score", []string{"--gt", gt, "--dets", d("dets_nan.json")}, 1,
			[]string{"dets_nan.json: malformed JSON at line 2, column 67: NaN is not a JSON number"}},
		{"overflowing score", []string{"--gt", gt, "--dets", d("dets_inf.json")}, 1,
			[]string{"dets_inf.json: detection 0 (line 1, column 2): field score: number 1e999"}},
		{"unknown image", []string{"--gt", gt, "--dets", d("dets_unknown_image.json")}, 1,
			[]string{"dets_unknown_image.json: detection 1 (line 2, column 2): image id 7 is not in the ground truth"}},
		{"unknown category", []string{"--gt", gt, "--dets", d("dets_unknown_category.json")}, 1,
			[]string{"dets_unknown_category.json: detection 1 (line 2, column 2): category id 2 is not in the ground truth"}},
		{"unknown category voc", []string{"--gt", gt, "--dets", d("dets_unknown_category.json"), "--metric", "voc"}, 1,
			[]string{"category id 2 is not in the ground truth"}},
		{"truncated", []string{"--gt", gt, "--dets", d("dets_truncated.json")}, 1,
			[]string{"dets_truncated.json: malformed JSON: unexpected end of file"}},
		{"not an array", []string{"--gt", gt, "--dets", d("dets_not_array.json")}, 1,
			[]string{"dets_not_array.json: expected a JSON array of detections, found an object at line 1, column 1"}},
		{"missing score", []string{"--gt", gt, "--dets", d("dets_missing_score.json")}, 1,
			[]string{`detection 0 (line 1, column 2): no "score"`}},
		{"bbox of 3", []string{"--gt", gt, "--dets", d("dets_bad_bbox.json")}, 1,
			[]string{`"bbox" must be 4 numbers [x, y, w, h], got 3`}},
		{"negative width", []string{"--gt", gt, "--dets", d("dets_negative_width.json")}, 1,
			[]string{"negative width or height"}},
		{"missing results file", []string{"--gt", gt, "--dets", d("nope.json")}, 1,
			[]string{"nope.json", "no such file"}},
		{"gt without area", []string{"--gt", d("gt_no_area.json"), "--dets", d("dets_empty.json")}, 1,
			[]string{`gt_no_area.json: annotations[0] (id 1) has no "area"`}},
		{"gt annotation on unknown image", []string{"--gt", d("gt_unknown_image.json"), "--dets", d("dets_empty.json")}, 1,
			[]string{"gt_unknown_image.json: annotations[0] (id 1): image id 5 is not among the images"}},
		{"no dets flag", []string{"--gt", gt}, 2, []string{"--gt and --dets are required"}},
		{"bad metric", []string{"--gt", gt, "--dets", d("dets_empty.json"), "--metric", "map"}, 2, []string{"--metric"}},
		{"bad map type", []string{"--gt", gt, "--dets", d("dets_empty.json"), "--map-type", "area"}, 2, []string{"--map-type"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := clitest.Run(t, run, tc.args...)
			if r.Code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.Code, tc.code, r.Stderr)
			}
			if r.Stdout != "" {
				t.Errorf("stdout not empty:\n%s", r.Stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
				}
			}
			if tc.code == 1 && !strings.HasPrefix(r.Stderr, "detect-eval: error: ") {
				t.Errorf("stderr not prefixed with the tool name: %q", r.Stderr)
			}
		})
	}
}
