package metrics

import "testing"

// TestCurves: one curve per class with ground truth (COCO, named by
// category id) or in the mean (VOC, named by class index + 1); VOC curves
// are raw points, each marked.
func TestCurves(t *testing.T) {
	for _, tc := range []struct {
		opt   ScoreOptions
		files []string
	}{
		{ScoreOptions{Metric: "coco"}, []string{"pr_001_cat.png", "pr_003_dog.png"}},
		{ScoreOptions{Metric: "voc"}, []string{"pr_001_cat.png", "pr_002_dog.png"}},
	} {
		curves := scoreFiles(t, "gt_small.json", "dets_good.json", tc.opt).Curves()
		if len(curves) != len(tc.files) {
			t.Fatalf("%s: %d curves, want %d", tc.opt.Metric, len(curves), len(tc.files))
		}
		for i, f := range tc.files {
			if curves[i].File != f || curves[i].Points != (tc.opt.Metric == "voc") {
				t.Errorf("%s: curve %d is %s (points %v), want %s", tc.opt.Metric, i, curves[i].File, curves[i].Points, f)
			}
		}
	}
}
