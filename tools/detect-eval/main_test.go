package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/dataset"
)

// Paths seen from tools/detect-eval: the repository root is ../../ and the
// shared folder sits beside it.
const (
	fixtures = "../../../shared/fixtures/coco-eval"
	bccd     = "../../../shared/datasets/bccd"
	td       = "../../testdata/metrics"
)

func runTool(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

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
			code, stdout, stderr := runTool(t, "--gt", filepath.Join(fixtures, c.GT), "--dets", filepath.Join(fixtures, c.DT), "--metric", "coco", "--json", out)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			if stderr != "" {
				t.Errorf("unexpected stderr: %s", stderr)
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
			lines := strings.Split(stdout, "\n")
			if len(lines) < 12 {
				t.Fatalf("stdout has %d lines", len(lines))
			}
			for i, want := range c.Stats {
				if w := fmt.Sprintf("= %.3f", want); !strings.HasSuffix(lines[i], w) {
					t.Errorf("line %d %q does not end with %q", i, lines[i], w)
				}
			}
			if name == "tiny" {
				golden, err := os.ReadFile(filepath.Join(td, "tiny_summary.golden"))
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.Join(lines[:12], "\n") + "\n"; got != string(golden) {
					t.Errorf("summary lines differ from pycocotools' format:\n%s\nwant:\n%s", got, golden)
				}
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
			code, stdout, stderr := runTool(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout not empty:\n%s", stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if tc.code == 1 && !strings.HasPrefix(stderr, "detect-eval: error: ") {
				t.Errorf("stderr not prefixed with the tool name: %q", stderr)
			}
		})
	}
}

// TestEmptyDetections: an empty results array is valid; every AP and AR is 0
// where ground truth exists and -1 where an area range has none.
func TestEmptyDetections(t *testing.T) {
	out := filepath.Join(t.TempDir(), "s.json")
	code, _, stderr := runTool(t, "--gt", filepath.Join(td, "gt_small.json"), "--dets", filepath.Join(td, "dets_empty.json"), "--json", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Stats    []float64          `json:"stats"`
		PerClass map[string]float64 `json:"per_class"`
	}
	readJSON(t, out, &got)
	// gt_small has one medium (1600) and one small (400) object, no large one.
	want := []float64{0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, -1}
	for i := range want {
		if got.Stats[i] != want[i] {
			t.Errorf("stats[%d] = %v, want %v", i, got.Stats[i], want[i])
		}
	}
	if got.PerClass["cat"] != 0 || got.PerClass["dog"] != 0 {
		t.Errorf("per_class = %v", got.PerClass)
	}
}

// TestVOCFromCOCOJSON: hand-computed VOC mAP on gt_small: "cat" is found
// exactly (AP 1); the "dog" detection covers half the object (IoU 0.5, not
// > 0.5): a false positive, AP 0. mAP 0.5 in both modes.
func TestVOCFromCOCOJSON(t *testing.T) {
	for _, mode := range []string{"11point", "integral"} {
		out := filepath.Join(t.TempDir(), "voc.json")
		code, stdout, stderr := runTool(t, "--gt", filepath.Join(td, "gt_small.json"), "--dets", filepath.Join(td, "dets_good.json"),
			"--metric", "voc", "--map-type", mode, "--json", out)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var got struct {
			Metric   string             `json:"metric"`
			MAP      float64            `json:"map"`
			MapType  string             `json:"map_type"`
			PerClass map[string]float64 `json:"per_class"`
		}
		readJSON(t, out, &got)
		if got.Metric != "voc" || got.MapType != mode || math.Abs(got.MAP-0.5) > 1e-12 || got.PerClass["cat"] != 1 || got.PerClass["dog"] != 0 {
			t.Errorf("%s: got %+v", mode, got)
		}
		if !strings.HasPrefix(stdout, fmt.Sprintf("mAP(0.50, %s) = 0.5000\n", mode)) {
			t.Errorf("stdout:\n%s", stdout)
		}
	}
}

// smallVOCFolder writes Annotations and a test split (no images: the tool
// reads VOC ground truth without opening images).
//
//	im0: a [1,2,10,12] (inclusive; half-open [0,1,10,12]), b [15,5,32,24] difficult
//	im1: a [5,5,20,20] (half-open [4,4,20,20])
func smallVOCFolder(t *testing.T) string {
	root := t.TempDir()
	obj := func(n string, d int, x0, y0, x1, y1 int) string {
		return fmt.Sprintf("<object><name>%s</name><difficult>%d</difficult><bndbox><xmin>%d</xmin><ymin>%d</ymin><xmax>%d</xmax><ymax>%d</ymax></bndbox></object>", n, d, x0, y0, x1, y1)
	}
	files := map[string]string{
		"im0": obj("a", 0, 1, 2, 10, 12) + obj("b", 1, 15, 5, 32, 24),
		"im1": obj("a", 0, 5, 5, 20, 20),
	}
	for id, objs := range files {
		x := fmt.Sprintf("<annotation><filename>%s.jpg</filename><size><width>64</width><height>48</height><depth>3</depth></size>%s</annotation>", id, objs)
		p := filepath.Join(root, "Annotations", id+".xml")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(x), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sets := filepath.Join(root, "ImageSets", "Main")
	if err := os.MkdirAll(sets, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sets, "test.txt"), []byte("im0\nim1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestVOCFolder, hand-computed. Image ids are split positions, category ids
// class index + 1 (a=1, b=2). Detections:
//
//	im0 a exact (.9) TP; im0 on the difficult b (.8) ignored;
//	im1 a far away (.95) FP; im1 a exact (.7) TP.
//
// Class a: 2 objects; records FP, TP, TP: precision 0, 1/2, 2/3, recall 0, 1/2, 1:
// integral 1/2*1/2 + 2/3*1/2 = 7/12; 11point 2/3. Class b: no non-difficult
// object, left out. With --evaluate-difficult, b has AP 1: mAP (7/12+1)/2.
func TestVOCFolder(t *testing.T) {
	root := smallVOCFolder(t)
	dets := filepath.Join(t.TempDir(), "dets.json")
	os.WriteFile(dets, []byte(`[
 {"image_id": 0, "category_id": 1, "bbox": [0, 1, 10, 11], "score": 0.9},
 {"image_id": 0, "category_id": 2, "bbox": [14, 4, 18, 20], "score": 0.8},
 {"image_id": 1, "category_id": 1, "bbox": [50, 40, 5, 5], "score": 0.95},
 {"image_id": 1, "category_id": 1, "bbox": [4, 4, 16, 16], "score": 0.7}]`), 0o644)
	cases := []struct {
		name  string
		extra []string
		want  float64
		b     float64
	}{
		{"integral", []string{"--map-type", "integral"}, 7.0 / 12, -1},
		{"11point", []string{"--map-type", "11point"}, 2.0 / 3, -1},
		{"difficult evaluated", []string{"--map-type", "integral", "--evaluate-difficult"}, (7.0/12 + 1) / 2, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "voc.json")
			args := append([]string{"--gt", root, "--dets", dets, "--json", out}, tc.extra...)
			code, stdout, stderr := runTool(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var got struct {
				Metric   string             `json:"metric"`
				MAP      float64            `json:"map"`
				PerClass map[string]float64 `json:"per_class"`
			}
			readJSON(t, out, &got)
			if got.Metric != "voc" || math.Abs(got.MAP-tc.want) > 1e-12 || got.PerClass["b"] != tc.b {
				t.Errorf("got %+v, want map %v, b %v\n%s", got, tc.want, tc.b, stdout)
			}
		})
	}
}

// TestBCCDPerfect: detections equal to BCCD's test ground truth score 1 in
// both metrics (difficult objects excluded / ignored).
func TestBCCDPerfect(t *testing.T) {
	if _, err := os.Stat(filepath.Join(bccd, "Annotations")); err != nil {
		t.Skipf("BCCD not found at %s", bccd)
	}
	ds, _ := dataset.ReadVOC(bccd, dataset.VOCOptions{Split: "test", Images: dataset.ImageNone})
	type det struct {
		ImageID    int64      `json:"image_id"`
		CategoryID int        `json:"category_id"`
		BBox       [4]float64 `json:"bbox"`
		Score      float64    `json:"score"`
	}
	var dets []det
	for _, s := range ds.Samples {
		for j, o := range s.Objects {
			dets = append(dets, det{s.ID, o.Label + 1, [4]float64{o.Box.X0, o.Box.Y0, o.Box.X1 - o.Box.X0, o.Box.Y1 - o.Box.Y0}, 1 - float64(j)/1000})
		}
	}
	if len(dets) == 0 {
		t.Fatal("no objects in BCCD test split")
	}
	data, _ := json.Marshal(dets)
	path := filepath.Join(t.TempDir(), "dets.json")
	os.WriteFile(path, data, 0o644)
	for _, metric := range []string{"voc", "coco"} {
		out := filepath.Join(t.TempDir(), metric+".json")
		code, _, stderr := runTool(t, "--gt", bccd, "--dets", path, "--metric", metric, "--json", out)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", metric, code, stderr)
		}
		var got struct {
			MAP   float64   `json:"map"`
			Stats []float64 `json:"stats"`
		}
		readJSON(t, out, &got)
		if metric == "voc" && math.Abs(got.MAP-1) > 1e-12 {
			t.Errorf("voc mAP = %v, want 1", got.MAP)
		}
		if metric == "coco" && math.Abs(got.Stats[0]-1) > 1e-12 {
			t.Errorf("coco AP = %v, want 1", got.Stats[0])
		}
	}
}

// TestPRCurves writes one PNG per class with ground truth.
func TestPRCurves(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pr")
	code, _, stderr := runTool(t, "--gt", filepath.Join(td, "gt_small.json"), "--dets", filepath.Join(td, "dets_good.json"), "--pr-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
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
	if !strings.Contains(stderr, "wrote 2 precision/recall curves") {
		t.Errorf("stderr: %s", stderr)
	}
}

// TestJSONStdout: --json - puts only the JSON on stdout.
func TestJSONStdout(t *testing.T) {
	code, stdout, stderr := runTool(t, "--gt", filepath.Join(td, "gt_small.json"), "--dets", filepath.Join(td, "dets_good.json"), "--json", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
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
	code, stdout, stderr := runTool(t, "--gt", dir, "--dets", filepath.Join(td, "dets_good.json"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(stdout, " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]") {
		t.Errorf("stdout is not a COCO summary:\n%s", stdout)
	}
}
