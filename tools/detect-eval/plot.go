package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/metrics"
)

// prSeries is one line of a precision/recall plot.
type prSeries struct {
	label    string
	rec, pre []float64
}

// prCurve is one class's plot.
type prCurve struct {
	file, title string
	series      []prSeries
	points      bool // mark every point (raw curves with few points)
}

// fileSafe keeps letters, digits, '-' and '_' of a class name.
func fileSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// cocoCurves: per class with ground truth, interpolated precision at the 101
// recall points (area all, maxDets 100) for IoU .50, .75 and the mean over
// .50:.95.
func cocoCurves(res *metrics.COCOResult) []prCurve {
	p := &res.Params
	var out []prCurve
	for k, n := range res.CategoryNames {
		if res.ClassAP(k) < 0 {
			continue
		}
		c := prCurve{file: fmt.Sprintf("pr_%03d_%s.png", res.CategoryIDs[k], fileSafe(n)),
			title: fmt.Sprintf("%s (id %d): AP@[.50:.95] = %.3f", n, res.CategoryIDs[k], res.ClassAP(k))}
		mean := make([]float64, len(p.RecallThresholds))
		for t, thr := range p.IoUThresholds {
			pr := res.PRCurve(k, t)
			for r, v := range pr {
				mean[r] += v / float64(len(p.IoUThresholds))
			}
			if thr == 0.5 || thr == 0.75 {
				c.series = append(c.series, prSeries{fmt.Sprintf("IoU=%.2f", thr), p.RecallThresholds, pr})
			}
		}
		c.series = append(c.series, prSeries{"mean IoU=.50:.95", p.RecallThresholds, mean})
		out = append(out, c)
	}
	return out
}

// vocCurves: per valid class, the raw precision/recall points in score order.
func vocCurves(res *metrics.VOCResult, names []string) []prCurve {
	var out []prCurve
	for c, n := range names {
		if !res.Valid[c] {
			continue
		}
		out = append(out, prCurve{file: fmt.Sprintf("pr_%03d_%s.png", c+1, fileSafe(n)),
			title:  fmt.Sprintf("%s: AP@.50 = %.4f", n, res.AP[c]),
			series: []prSeries{{"IoU=0.50", res.Recall[c], res.Precision[c]}}, points: true})
	}
	return out
}

// writeCurves writes each curve as a PNG in dir (created if needed).
func writeCurves(ctx context.Context, dir string, curves []prCurve) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, c := range curves {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := plot.New()
		p.Title.Text = c.title
		p.X.Label.Text = "recall"
		p.Y.Label.Text = "precision"
		p.X.Min, p.X.Max = 0, 1
		p.Y.Min, p.Y.Max = 0, 1.2 // headroom above precision 1 for the legend
		p.Add(plotter.NewGrid())
		var lines []any
		for _, s := range c.series {
			pts := make(plotter.XYs, len(s.rec))
			for i := range pts {
				pts[i].X, pts[i].Y = s.rec[i], finiteOr(s.pre[i], 0)
			}
			lines = append(lines, s.label, pts)
		}
		add := plotutil.AddLines
		if c.points {
			add = plotutil.AddLinePoints
		}
		if err := add(p, lines...); err != nil {
			return fmt.Errorf("plot %s: %w", c.file, err)
		}
		p.Legend.Top = true
		p.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 0.25}, {Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1"}})
		wt, err := p.WriterTo(6*vg.Inch, 4.5*vg.Inch, "png")
		if err != nil {
			return err
		}
		path := filepath.Join(dir, c.file)
		if err := atomicfile.Write(path, func(w io.Writer) error { _, err := wt.WriteTo(w); return err }); err != nil {
			return err
		}
	}
	return nil
}
