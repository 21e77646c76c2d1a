package metrics

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/dataset"
)

// bccd is ../shared/datasets/bccd seen from this folder.
const bccd = "../../../shared/datasets/bccd"

// TestScoreVOCFolder, hand-computed on testdata/metrics/voc_small (no
// images: ground truth is read without opening them):
//
//	im0: a [1,2,10,12] (inclusive; half-open [0,1,10,12]), b [15,5,32,24] difficult
//	im1: a [5,5,20,20] (half-open [4,4,20,20])
//
// Image ids are split positions, category ids class index + 1 (a=1, b=2).
// Detections (voc_small_dets.json):
//
//	im0 a exact (.9) TP; im0 on the difficult b (.8) ignored;
//	im1 a far away (.95) FP; im1 a exact (.7) TP.
//
// Class a: 2 objects; records FP, TP, TP: precision 0, 1/2, 2/3, recall 0, 1/2, 1:
// integral 1/2*1/2 + 2/3*1/2 = 7/12; 11point 2/3. Class b: no non-difficult
// object, left out. With EvaluateDifficult, b has AP 1: mAP (7/12+1)/2.
func TestScoreVOCFolder(t *testing.T) {
	gt, warnings, err := ReadGroundTruth(filepath.Join(td, "voc_small"), "voc", dataset.VOCOptions{Split: "test"})
	if err != nil || warnings != 0 {
		t.Fatalf("%d warnings, %v", warnings, err)
	}
	dets, err := ReadCOCOResults(filepath.Join(td, "voc_small_dets.json"), gt)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opt  ScoreOptions
		want float64
		b    float64
	}{
		{"integral", ScoreOptions{Metric: "voc", VOCMode: VOCIntegral}, 7.0 / 12, -1},
		{"11point", ScoreOptions{Metric: "voc", VOCMode: VOC11Point}, 2.0 / 3, -1},
		{"difficult evaluated", ScoreOptions{Metric: "voc", VOCMode: VOCIntegral, EvaluateDifficult: true}, (7.0/12 + 1) / 2, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Score(gt, dets, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			got := decodeReport(t, rep)
			if got.Metric != "voc" || math.Abs(got.MAP-tc.want) > 1e-12 || got.PerClass["b"] != tc.b {
				t.Errorf("got %+v, want map %v, b %v\n%s", got, tc.want, tc.b, table(t, rep))
			}
		})
	}
}

// TestScoreBCCDPerfect: detections equal to BCCD's test ground truth score
// 1 in both metrics (difficult objects excluded / ignored).
func TestScoreBCCDPerfect(t *testing.T) {
	if _, err := os.Stat(filepath.Join(bccd, "Annotations")); err != nil {
		t.Skipf("BCCD not found at %s", bccd)
	}
	gt, _, err := ReadGroundTruth(bccd, "voc", dataset.VOCOptions{Split: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var dets []Detection
	seen := map[int64]int{}
	for _, a := range gt.Annotations {
		dets = append(dets, Detection{ImageID: a.ImageID, CategoryID: a.CategoryID, BBox: a.BBox, Score: 1 - float64(seen[a.ImageID])/1000})
		seen[a.ImageID]++
	}
	if len(dets) == 0 {
		t.Fatal("no objects in BCCD test split")
	}
	for _, metric := range []string{"voc", "coco"} {
		rep, err := Score(gt, dets, ScoreOptions{Metric: metric})
		if err != nil {
			t.Fatalf("%s: %v", metric, err)
		}
		if metric == "voc" && math.Abs(rep.VOC.MAP-1) > 1e-12 {
			t.Errorf("voc mAP = %v, want 1", rep.VOC.MAP)
		}
		if metric == "coco" && math.Abs(rep.COCO.Stats[0]-1) > 1e-12 {
			t.Errorf("coco AP = %v, want 1", rep.COCO.Stats[0])
		}
	}
}

// TestReadGroundTruthCOCO: a COCO file, or a folder holding annotations.json
// (as `dataset convert --to coco` writes), reads the same.
func TestReadGroundTruthCOCO(t *testing.T) {
	file := filepath.Join(td, "gt_small.json")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, dataset.COCOAnnotationFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	a, _, err := ReadGroundTruth(file, "coco", dataset.VOCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := ReadGroundTruth(dir, "coco", dataset.VOCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Annotations) != 2 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("file %+v, folder %+v", a, b)
	}
	for _, tc := range []struct{ path, format, want string }{
		{filepath.Join(dir, "absent.json"), "coco", "absent.json"},
		{dir, "yolo", `format "yolo"`},
		{t.TempDir(), "voc", "VOC ground truth"},
	} {
		if _, _, err := ReadGroundTruth(tc.path, tc.format, dataset.VOCOptions{Split: "test"}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s as %s: %v, want an error naming %q", tc.path, tc.format, err, tc.want)
		}
	}
}
