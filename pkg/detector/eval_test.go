package detector

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/dataset"
	"yolodistill/pkg/metrics"
)

// evalConfig is tinyConfig on a 100-image synthetic set of 64 px images, with
// objectness biased up so that an untrained model produces detections.
func evalConfig(t *testing.T, extra ...string) *Detector {
	t.Helper()
	o := append([]string{"data.synth.num_images=100", "data.synth.image_size=64", "eval.size=64",
		"eval.batch_size=3", "model.obj_bias_init=1.5", "eval.nms.keep_top_k=20"}, extra...)
	d, err := New(tinyConfig(t, o...))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// DetectSplit (batched by the loader, last batch padded) gives the same
// detections as DetectImages one image at a time.
func TestDetectSplitMatchesDetectImages(t *testing.T) {
	d := evalConfig(t)
	sp, err := dataset.OpenSplit(d.Config, "val", dataset.SplitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var progress []int
	dets, _, err := DetectSplit(context.Background(), d, sp, EvalOptions{Workers: 2, Progress: func(done, total int) {
		progress = append(progress, done)
		if total != 10 {
			t.Errorf("progress total %d", total)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 6, 9, 10}; !slices.Equal(progress, want) {
		t.Errorf("progress %v, want %v", progress, want)
	}
	if len(dets) == 0 {
		t.Fatal("no detections: the test would prove nothing")
	}
	byImage := map[int64][]metrics.Detection{}
	for _, x := range dets {
		byImage[x.ImageID] = append(byImage[x.ImageID], x)
	}
	for i, s := range sp.DS.Samples {
		img, _, err := sp.Source.Load(i)
		if err != nil {
			t.Fatal(err)
		}
		one, err := d.DetectImages([]*dataset.Image{img}, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := byImage[s.ID]
		if len(got) != len(one[0]) {
			t.Errorf("image %d: DetectSplit %d detections, DetectImages %d", s.ID, len(got), len(one[0]))
			continue
		}
		for k, w := range one[0] {
			g := got[k]
			if int(g.CategoryID) != w.Label+1 || math.Abs(g.Score-w.Score) > 1e-5 ||
				math.Abs(g.BBox[0]-w.Box.X0) > 1e-3 || math.Abs(g.BBox[1]-w.Box.Y0) > 1e-3 ||
				math.Abs(g.BBox[0]+g.BBox[2]-w.Box.X1) > 1e-3 || math.Abs(g.BBox[1]+g.BBox[3]-w.Box.Y1) > 1e-3 {
				t.Errorf("image %d det %d: %+v vs %+v", s.ID, k, g, w)
			}
			if g.BBox[0] < 0 || g.BBox[1] < 0 || g.BBox[0]+g.BBox[2] > 64+1e-9 || g.BBox[1]+g.BBox[3] > 64+1e-9 {
				t.Errorf("image %d det %d: box %v outside the 64x64 image", s.ID, k, g.BBox)
			}
		}
		if len(one[0]) > 20 {
			t.Errorf("image %d: %d detections > keep_top_k 20", s.ID, len(one[0]))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := DetectSplit(ctx, d, sp, EvalOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// DetectImages maps boxes back to the original pixels of non-square images.
func TestDetectImagesAnySize(t *testing.T) {
	d := evalConfig(t)
	for _, sz := range [][2]int{{200, 50}, {31, 97}} {
		img := dataset.NewImage(sz[0], sz[1])
		for i := range img.Pix {
			img.Pix[i] = uint8(i * 7)
		}
		res, err := d.DetectImages([]*dataset.Image{img}, 64)
		if err != nil {
			t.Fatal(err)
		}
		if len(res[0]) == 0 {
			t.Fatalf("%v: no detections", sz)
		}
		for _, x := range res[0] {
			b := x.Box
			if b.X0 < 0 || b.Y0 < 0 || b.X1 > float64(sz[0]) || b.Y1 > float64(sz[1]) {
				t.Errorf("%v: box %+v outside the image", sz, b)
			}
		}
	}
	if _, err := d.DetectImages([]*dataset.Image{dataset.NewImage(10, 10)}, 50); err == nil {
		t.Error("size 50: no error")
	}
}

// Score: ground truth given back as detections scores 1 with both metrics;
// no detections score 0.
func TestScoreOracle(t *testing.T) {
	d := evalConfig(t)
	sp, err := dataset.OpenSplit(d.Config, "val", dataset.SplitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var oracle []metrics.Detection
	for _, s := range sp.DS.Samples {
		for _, o := range s.Objects {
			oracle = append(oracle, metrics.Detection{ImageID: s.ID, CategoryID: int64(o.Label + 1), Score: 1,
				BBox: [4]float64{o.Box.X0, o.Box.Y0, o.Box.W(), o.Box.H()}})
		}
	}
	tests := []struct {
		name   string
		metric string
		dets   []metrics.Detection
		want   float64
	}{
		{"voc oracle", "voc", oracle, 1},
		{"coco oracle", "coco", oracle, 1},
		{"voc none", "voc", nil, 0},
		{"coco none", "coco", nil, 0},
	}
	for _, tc := range tests {
		d.Config.Eval.Metric = tc.metric
		r, err := Score(d.Config, sp.DS, tc.dets)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if math.Abs(r.Score-tc.want) > 1e-9 {
			t.Errorf("%s: score %v, want %v", tc.name, r.Score, tc.want)
		}
		if (r.VOC != nil) != (tc.metric == "voc") || (r.COCO != nil) != (tc.metric == "coco") {
			t.Errorf("%s: wrong result kind", tc.name)
		}
	}
	d.Config.Eval.Metric = "f1"
	if _, err := Score(d.Config, sp.DS, nil); err == nil {
		t.Error("unknown metric: no error")
	}
}

func TestEvaluateUntrained(t *testing.T) {
	d := evalConfig(t)
	sp, err := dataset.OpenSplit(d.Config, "val", dataset.SplitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Evaluate(context.Background(), d, sp, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !(r.Score >= 0 && r.Score <= 1) || r.Metric != "voc" || len(r.Detections) == 0 {
		t.Errorf("untrained: score %v metric %q, %d detections", r.Score, r.Metric, len(r.Detections))
	}
}

// damagedSource fails Load(bad) with an *dataset.ImageError, as a truncated
// file would.
type damagedSource struct {
	dataset.Source
	bad int
}

func (s damagedSource) Load(i int) (*dataset.Image, []dataset.Target, error) {
	if i == s.bad {
		return nil, nil, &dataset.ImageError{File: "val/broken.jpg", Kind: dataset.KindImageCorrupt, Err: errors.New("truncated jpeg")}
	}
	return s.Source.Load(i)
}

// An image that cannot be loaded is left out of the detections and of the
// ground truth, reported once through OnSkip; past data.skip_limit the
// evaluation fails naming it.
func TestEvaluateSkipsDamagedImage(t *testing.T) {
	d := evalConfig(t)
	sp, err := dataset.OpenSplit(d.Config, "val", dataset.SplitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	healthy := *sp
	sp.Source = damagedSource{sp.Source, 4}
	var reported []string
	r, err := Evaluate(context.Background(), d, sp, EvalOptions{OnSkip: func(s dataset.Skip) { reported = append(reported, s.File()) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Skipped) != 1 || r.Skipped[0].Index != 4 || !slices.Equal(reported, []string{"val/broken.jpg"}) {
		t.Fatalf("skipped %v, reported %v", r.Skipped, reported)
	}
	badID := sp.DS.Samples[4].ID
	for _, x := range r.Detections {
		if x.ImageID == badID {
			t.Fatalf("a detection for the skipped image %d", badID)
		}
	}
	if len(r.GT.Images) != 9 {
		t.Errorf("ground truth of %d images, want 9", len(r.GT.Images))
	}
	// The score is that of the 9 other images, detections as the healthy run's.
	ref, err := Evaluate(context.Background(), d, &healthy, EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var kept []metrics.Detection
	for _, x := range ref.Detections {
		if x.ImageID != badID {
			kept = append(kept, x)
		}
	}
	want, err := Score(d.Config, sp.DS.Without(r.Skipped), kept)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != len(r.Detections) || want.Score != r.Score {
		t.Errorf("score %v on %d detections, want %v on %d", r.Score, len(r.Detections), want.Score, len(kept))
	}

	strict := evalConfig(t, "data.skip_limit=0")
	if _, err := Evaluate(context.Background(), strict, sp, EvalOptions{}); err == nil ||
		!strings.Contains(err.Error(), "val/broken.jpg") || !strings.Contains(err.Error(), "data.skip_limit=0") {
		t.Errorf("data.skip_limit=0: %v", err)
	}
}
