package train

import (
	"bytes"
	"io"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"yolodistill/pkg/atomicfile"
)

// PlotLosses writes a PNG of the total loss and each loss part against the
// iteration, atomically, to path.
func PlotLosses(recs []Record, title, path string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "iteration"
	p.Y.Label.Text = "loss"
	series := map[string]plotter.XYs{}
	for _, r := range recs {
		series["total"] = append(series["total"], plotter.XY{X: float64(r.Iter), Y: r.Loss})
		for k, v := range r.Parts {
			series[k] = append(series[k], plotter.XY{X: float64(r.Iter), Y: v})
		}
	}
	names := make([]string, 0, len(series))
	for k := range series {
		names = append(names, k)
	}
	sort.Strings(names)
	var args []any
	for _, n := range names {
		args = append(args, n, series[n])
	}
	if err := plotutil.AddLines(p, args...); err != nil {
		return err
	}
	wt, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return err
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(buf.Bytes())
		return err
	})
}
