package prplot

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"yolodistill/pkg/metrics"
)

// TestWrite writes one PNG per curve into a folder it creates.
func TestWrite(t *testing.T) {
	const td = "../../../testdata/metrics"
	gt, err := metrics.ReadCOCOGroundTruth(filepath.Join(td, "gt_small.json"))
	if err != nil {
		t.Fatal(err)
	}
	dets, err := metrics.ReadCOCOResults(filepath.Join(td, "dets_good.json"), gt)
	if err != nil {
		t.Fatal(err)
	}
	for _, metric := range []string{"coco", "voc"} {
		rep, err := metrics.Score(gt, dets, metrics.ScoreOptions{Metric: metric})
		if err != nil {
			t.Fatal(err)
		}
		curves := rep.Curves()
		dir := filepath.Join(t.TempDir(), "pr", metric)
		if err := Write(context.Background(), dir, curves); err != nil {
			t.Fatal(err)
		}
		if len(curves) != 2 {
			t.Fatalf("%s: %d curves", metric, len(curves))
		}
		for _, c := range curves {
			data, err := os.ReadFile(filepath.Join(dir, c.File))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) || len(data) < 1000 {
				t.Errorf("%s is not a PNG (%d bytes)", c.File, len(data))
			}
		}
	}
}

// TestWriteNonFinite: a NaN or infinite precision is drawn as 0, and a
// cancelled context stops before the first plot.
func TestWriteNonFinite(t *testing.T) {
	c := []metrics.PRCurve{{File: "x.png", Title: "x", Series: []metrics.PRSeries{{Label: "s", Recall: []float64{0, 0.5, 1}, Precision: []float64{1, math.NaN(), math.Inf(1)}}}}}
	dir := t.TempDir()
	if err := Write(context.Background(), dir, c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.png")); err != nil {
		t.Error(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c[0].File = "y.png"
	if err := Write(ctx, dir, c); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "y.png")); err == nil {
		t.Error("a plot was written after cancellation")
	}
}

// TestPlotAxes: both axes are exactly [0, 1], whatever the data (a
// precision above 1 or a recall beyond it cannot widen them), with the
// legend inside, at the bottom.
func TestPlotAxes(t *testing.T) {
	c := metrics.PRCurve{File: "x.png", Title: "x", Series: []metrics.PRSeries{
		{Label: "a", Recall: []float64{0, 0.5, 1}, Precision: []float64{1, 0.8, 0.2}},
		{Label: "b", Recall: []float64{0, 1.1}, Precision: []float64{1.3, 0.1}},
	}}
	p, err := Plot(c)
	if err != nil {
		t.Fatal(err)
	}
	if p.X.Min != 0 || p.X.Max != 1 || p.Y.Min != 0 || p.Y.Max != 1 {
		t.Errorf("axes x [%g, %g], y [%g, %g], want [0, 1] both", p.X.Min, p.X.Max, p.Y.Min, p.Y.Max)
	}
	if p.Legend.Top || !p.Legend.Left {
		t.Errorf("legend top %v left %v, want the lower left corner", p.Legend.Top, p.Legend.Left)
	}
}
