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

// Write writes each curve as a 6 x 4.5 inch PNG (Plot: recall on x and
// precision on y, both in [0, 1]) to dir/File, atomically; dir is created if
// needed. It stops with ctx's error when ctx is cancelled between two plots.
func Write(ctx context.Context, dir string, curves []metrics.PRCurve) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, c := range curves {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := Plot(c)
		if err != nil {
			return err
		}
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

// Plot is the plot of one curve: recall on x, precision on y, both axes
// exactly [0, 1] (a precision of 1 lies on the top edge), one line per
// series (a non-finite precision drawn as 0), the legend in the lower left
// corner, where precision/recall curves seldom go.
func Plot(c metrics.PRCurve) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = c.Title
	p.X.Label.Text = "recall"
	p.Y.Label.Text = "precision"
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
		return nil, fmt.Errorf("plot %s: %w", c.File, err)
	}
	// After the lines: adding data widens the axes to its range.
	p.X.Min, p.X.Max = 0, 1
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top, p.Legend.Left = false, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), vg.Points(6)
	ticks := plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 0.25}, {Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1"}})
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks, ticks
	return p, nil
}
