package prplot

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/metrics"
)

// finiteOr returns v, or d when v is not finite.
func finiteOr(v, d float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return d
	}
	return v
}

// Write writes each curve as a 6 x 4.5 inch PNG (recall on x in
// [0, 1], precision on y in [0, 1.2], legend on top) to dir/File,
// atomically; dir is created if needed. It stops with ctx's error when ctx
// is cancelled between two plots.
func Write(ctx context.Context, dir string, curves []metrics.PRCurve) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, c := range curves {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := plot.New()
		p.Title.Text = c.Title
		p.X.Label.Text = "recall"
		p.Y.Label.Text = "precision"
		p.X.Min, p.X.Max = 0, 1
		p.Y.Min, p.Y.Max = 0, 1.2 // headroom above precision 1 for the legend
		p.Add(plotter.NewGrid())
		var lines []any
		for _, s := range c.Series {
			pts := make(plotter.XYs, len(s.Recall))
			for i := range pts {
				pts[i].X, pts[i].Y = s.Recall[i], finiteOr(s.Precision[i], 0)
			}
			lines = append(lines, s.Label, pts)
		}
		add := plotutil.AddLines
		if c.Points {
			add = plotutil.AddLinePoints
		}
		if err := add(p, lines...); err != nil {
			return fmt.Errorf("plot %s: %w", c.File, err)
		}
		p.Legend.Top = true
		p.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 0.25}, {Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1"}})
		wt, err := p.WriterTo(6*vg.Inch, 4.5*vg.Inch, "png")
		if err != nil {
			return err
		}
		path := filepath.Join(dir, c.File)
		if err := atomicfile.Write(path, func(w io.Writer) error { _, err := wt.WriteTo(w); return err }); err != nil {
			return err
		}
	}
	return nil
}
