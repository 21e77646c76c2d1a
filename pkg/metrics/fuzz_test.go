package metrics

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzCOCOResults: any bytes give detections or an error, never a panic, and
// whatever parses can be evaluated.
func FuzzCOCOResults(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/metrics/dets_*.json")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1e308, 1e308], "score": -0}]`))
	f.Add([]byte(`[{"image_id": 1, "category_id": 3, "bbox": [0, 0, 0, 0], "score": 1}, {"image_id": 2}]`))
	gtData, err := os.ReadFile("../../testdata/metrics/gt_small.json")
	if err != nil {
		f.Fatal(err)
	}
	gt, err := ParseCOCOGroundTruth("gt_small.json", gtData)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dets, err := ParseCOCOResults("fuzz.json", data, gt)
		if err != nil {
			return
		}
		if _, err := EvaluateCOCO(gt, dets, DefaultCOCOParams()); err != nil {
			t.Fatalf("parsed detections fail to evaluate: %v", err)
		}
		imgs, vd, names, err := VOCFromCOCO(gt, dets)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := EvaluateVOC(imgs, vd, VOCParams{NumClasses: len(names)}); err != nil {
			t.Fatal(err)
		}
	})
}
