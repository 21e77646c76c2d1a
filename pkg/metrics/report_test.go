package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// td holds the small hand-checkable COCO files (repository testdata).
const td = "../../testdata/metrics"

// scoreFiles scores td's results file dets against td's ground truth gt.
func scoreFiles(t *testing.T, gt, dets string, opt ScoreOptions) *Report {
	t.Helper()
	g, err := ReadCOCOGroundTruth(filepath.Join(td, gt))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ReadCOCOResults(filepath.Join(td, dets), g)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Score(g, d, opt)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// reportJSON is either form of Report.JSON.
type reportJSON struct {
	Metric   string             `json:"metric"`
	Stats    []float64          `json:"stats"`
	MAP      float64            `json:"map"`
	MapType  string             `json:"map_type"`
	PerClass map[string]float64 `json:"per_class"`
}

func decodeReport(t *testing.T, rep *Report) reportJSON {
	t.Helper()
	data, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data, []byte("}\n")) || !bytes.HasPrefix(data, []byte("{\n  \"metric\": ")) {
		t.Errorf("JSON is not indented with a final newline:\n%s", data)
	}
	var got reportJSON
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return got
}

func table(t *testing.T, rep *Report) string {
	t.Helper()
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestScoreVOCHandComputed: hand-computed VOC mAP on gt_small: "cat" is
// found exactly (AP 1); the "dog" detection covers half the object (IoU
// 0.5, not > 0.5): a false positive, AP 0. mAP 0.5 in both modes.
func TestScoreVOCHandComputed(t *testing.T) {
	for _, mode := range []VOCMode{VOC11Point, VOCIntegral} {
		rep := scoreFiles(t, "gt_small.json", "dets_good.json", ScoreOptions{Metric: "voc", VOCMode: mode})
		got := decodeReport(t, rep)
		if got.Metric != "voc" || got.MapType != mode.String() || math.Abs(got.MAP-0.5) > 1e-12 || got.PerClass["cat"] != 1 || got.PerClass["dog"] != 0 {
			t.Errorf("%s: got %+v", mode, got)
		}
		want := fmt.Sprintf("mAP(0.50, %s) = 0.5000\n\n", mode) +
			"class        gt      dets  AP\n" +
			"cat           1         1  1.0000\n" +
			"dog           1         1  0.0000\n"
		if tab := table(t, rep); tab != want {
			t.Errorf("%s table:\n%s\nwant:\n%s", mode, tab, want)
		}
	}
}

// TestScoreEmptyDetections: an empty results array is valid; every AP and
// AR is 0 where ground truth exists and -1 where an area range has none.
// For VOC, classes without detections are left out of the mean.
func TestScoreEmptyDetections(t *testing.T) {
	got := decodeReport(t, scoreFiles(t, "gt_small.json", "dets_empty.json", ScoreOptions{Metric: "coco"}))
	// gt_small has one medium (1600) and one small (400) object, no large one.
	want := []float64{0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, -1}
	if !reflect.DeepEqual(got.Stats, want) {
		t.Errorf("stats = %v, want %v", got.Stats, want)
	}
	if got.PerClass["cat"] != 0 || got.PerClass["dog"] != 0 {
		t.Errorf("per_class = %v", got.PerClass)
	}
	rep := scoreFiles(t, "gt_small.json", "dets_empty.json", ScoreOptions{Metric: "voc"})
	if tab := table(t, rep); !strings.Contains(tab, "cat           1         0  -1 (no detections; not in the mean, as in PaddleDetection)\n") {
		t.Errorf("VOC table:\n%s", tab)
	}
	if c := rep.Curves(); len(c) != 0 {
		t.Errorf("%d VOC curves for classes out of the mean", len(c))
	}
}

// TestScoreCOCOTable: the summary, then a header and AP@[.50:.95] and
// AP@.50 per category with its id; -1 for a category without ground truth.
func TestScoreCOCOTable(t *testing.T) {
	g, err := ParseCOCOGroundTruth("gt", []byte(`{"images": [{"id": 1, "width": 100, "height": 100}],
 "categories": [{"id": 1, "name": "cat"}, {"id": 7, "name": "a-long-name"}],
 "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Score(g, []Detection{{ImageID: 1, CategoryID: 1, BBox: [4]float64{10, 10, 40, 40}, Score: 0.9}}, ScoreOptions{Metric: "coco"})
	if err != nil {
		t.Fatal(err)
	}
	tab := table(t, rep)
	want := "\nclass        category  AP@[.50:.95]  AP@.50\n" +
		"cat                 1         1.000   1.000\n" +
		"a-long-name         7            -1      -1  (no ground truth)\n"
	if lines := strings.SplitAfter(tab, "\n"); len(lines) != 17 || strings.Join(lines[12:], "") != want {
		t.Errorf("table:\n%s\nwant after the summary:\n%s", tab, want)
	}
	// COCOeval's precision is tp/(tp+fp+eps): a perfect match is 1 - 2e-16.
	const tol = 1e-12
	got := decodeReport(t, rep)
	if math.Abs(got.PerClass["cat"]-1) > tol || got.PerClass["a-long-name"] != -1 || math.Abs(got.Stats[0]-1) > tol {
		t.Errorf("JSON %+v", got)
	}
	curves := rep.Curves()
	if len(curves) != 1 || curves[0].File != "pr_001_cat.png" || len(curves[0].Series) != 3 {
		t.Fatalf("curves %+v", curves)
	}
	for i, s := range curves[0].Series {
		if len(s.Recall) != 101 || len(s.Precision) != 101 || math.Abs(s.Precision[0]-1) > tol {
			t.Errorf("series %d (%s): %d recall, %d precision points, first %v", i, s.Label, len(s.Recall), len(s.Precision), s.Precision[0])
		}
	}
	if labels := []string{curves[0].Series[0].Label, curves[0].Series[1].Label, curves[0].Series[2].Label}; !reflect.DeepEqual(labels, []string{"IoU=0.50", "IoU=0.75", "mean IoU=.50:.95"}) {
		t.Errorf("series labels %q", labels)
	}
}

func TestScoreErrors(t *testing.T) {
	g, err := ReadCOCOGroundTruth(filepath.Join(td, "gt_small.json"))
	if err != nil {
		t.Fatal(err)
	}
	bad := []Detection{{ImageID: 1, CategoryID: 2, BBox: [4]float64{0, 0, 1, 1}, Score: 1}}
	for _, opt := range []ScoreOptions{{Metric: "voc"}, {Metric: "coco"}} {
		if _, err := Score(g, bad, opt); err == nil || !strings.Contains(err.Error(), "category id 2") {
			t.Errorf("%s: unknown category: %v", opt.Metric, err)
		}
	}
	if _, err := Score(g, nil, ScoreOptions{Metric: "map"}); err == nil || !strings.Contains(err.Error(), `"map"`) {
		t.Errorf("unknown metric: %v", err)
	}
}

func TestClassKeys(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		ids   []int64
		want  []string
	}{
		{"unique", []string{"cat", "dog"}, []int64{1, 3}, []string{"cat", "dog"}},
		{"repeated", []string{"cat", "dog", "cat"}, []int64{1, 2, 5}, []string{"cat#1", "dog", "cat#5"}},
		{"empty", []string{"", "dog"}, []int64{4, 9}, []string{"#4", "dog"}},
		{"none", nil, nil, []string{}},
	}
	for _, tc := range tests {
		if got := ClassKeys(tc.names, tc.ids); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestFileSafe(t *testing.T) {
	for in, want := range map[string]string{"cat": "cat", "Blood cell/2": "Blood_cell_2", "a-b_c9": "a-b_c9", "été": "_t_", "": ""} {
		if got := fileSafe(in); got != want {
			t.Errorf("fileSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestClassAP50MeansToStats: COCOeval's AP50 (Stats[1]) is the mean over
// categories with ground truth of the per-category AP@.50 the table prints.
func TestClassAP50MeansToStats(t *testing.T) {
	gt, err := ReadCOCOGroundTruth("../../testdata/metrics/gt_small.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"dets_good.json"} {
		dets, err := ReadCOCOResults("../../testdata/metrics/"+f, gt)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Score(gt, dets, ScoreOptions{Metric: "coco"})
		if err != nil {
			t.Fatal(err)
		}
		sum, n := 0.0, 0
		for k := range rep.COCO.CategoryNames {
			if v := rep.COCO.ClassAP50(k); v > -1 {
				sum += v
				n++
			}
		}
		if n == 0 || math.Abs(sum/float64(n)-rep.COCO.Stats[1]) > 1e-12 {
			t.Errorf("%s: mean per-category AP50 %g over %d, Stats[1] %g", f, sum/float64(n), n, rep.COCO.Stats[1])
		}
	}
}
