package train

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"image/color"
	"io"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"yolodistill/pkg/atomicfile"
)

// Panel is one curve of a run's plot (loss.png): a loss part, the learning
// rate or an evaluation score against the iteration (counted from 1).
type Panel struct {
	Name   string // "loss" (the total), a part ("xy", "distill.l2"), "lr", or an eval key ("map", "ap")
	Title  string // the panel's title
	Color  color.RGBA
	Points plotter.XYs
	Eval   bool // an evaluation score: drawn with a marker per evaluation
}

// The fixed colours of the curves: a loss part has the same colour in every
// run's plot. Other parts (the distillation terms) take one of
// extraColors chosen by their name, so that they too keep it.
var (
	partColors = map[string]color.RGBA{
		"loss": {0, 0, 0, 255},       // total: black
		"xy":   {230, 25, 75, 255},   // red
		"wh":   {245, 130, 48, 255},  // orange
		"obj":  {0, 130, 200, 255},   // blue
		"cls":  {60, 180, 75, 255},   // green
		"lr":   {128, 128, 128, 255}, // grey
		"map":  {0, 128, 128, 255},   // teal
		"ap":   {0, 128, 128, 255},   // teal
	}
	extraColors = []color.RGBA{
		{145, 30, 180, 255}, // purple
		{240, 50, 230, 255}, // magenta
		{170, 110, 40, 255}, // brown
		{128, 0, 0, 255},    // maroon
		{0, 0, 128, 255},    // navy
		{128, 128, 0, 255},  // olive
	}
	// detectionParts are the YOLOv3 loss's parts, in panel order.
	detectionParts = []string{"xy", "wh", "obj", "cls"}
)

// PartColor is the fixed colour of a curve by name (see Panel.Name).
func PartColor(name string) color.RGBA {
	if c, ok := partColors[name]; ok {
		return c
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return extraColors[h.Sum32()%uint32(len(extraColors))]
}

// Panels are the curves of a run's records, in plot order: the total loss,
// the YOLOv3 parts xy, wh, obj and cls, the other parts (distillation terms)
// by name, the learning rate, then each evaluation score (records with Eval).
// Records that hold only an evaluation do not enter the loss curves.
func Panels(recs []Record) []Panel {
	series := map[string]plotter.XYs{}
	evals := map[string]plotter.XYs{}
	for _, r := range recs {
		x := float64(r.Iter)
		for k, v := range r.Eval {
			evals[k] = append(evals[k], plotter.XY{X: x, Y: v})
		}
		if r.Eval != nil && r.Loss == 0 && len(r.Parts) == 0 {
			continue
		}
		series["loss"] = append(series["loss"], plotter.XY{X: x, Y: r.Loss})
		series["lr"] = append(series["lr"], plotter.XY{X: x, Y: r.LR})
		for k, v := range r.Parts {
			series[k] = append(series[k], plotter.XY{X: x, Y: v})
		}
	}
	var others []string
	for k := range series {
		if k != "loss" && k != "lr" && !slices.Contains(detectionParts, k) {
			others = append(others, k)
		}
	}
	sort.Strings(others)
	var out []Panel
	add := func(name, title string, pts plotter.XYs, eval bool) {
		if len(pts) > 0 {
			out = append(out, Panel{Name: name, Title: title, Color: PartColor(name), Points: pts, Eval: eval})
		}
	}
	add("loss", "loss (total)", series["loss"], false)
	for _, k := range detectionParts {
		add(k, k+" loss", series[k], false)
	}
	for _, k := range others {
		add(k, k+" loss", series[k], false)
	}
	add("lr", "learning rate", series["lr"], false)
	keys := make([]string, 0, len(evals))
	for k := range evals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		title := k + " (evaluation)"
		switch k {
		case "map":
			title = "VOC mAP (evaluation)"
		case "ap":
			title = "COCO AP (evaluation)"
		}
		add(k, title, evals[k], true)
	}
	return out
}

// plotColumns is the number of panels per row of loss.png.
const plotColumns = 4

// PlotLosses writes a PNG of the run's curves (Panels: one small plot each,
// own y scale, fixed colour per curve, iterations on x; Ultralytics'
// results.png layout) under title, atomically, to path.
func PlotLosses(recs []Record, title, path string) error {
	panels := Panels(recs)
	if len(panels) == 0 {
		return fmt.Errorf("%s: no records to plot", path)
	}
	cols := min(plotColumns, len(panels))
	rows := (len(panels) + cols - 1) / cols
	const titleH = 0.4 * vg.Inch
	w, h := vg.Length(cols)*3*vg.Inch, vg.Length(rows)*2.4*vg.Inch+titleH
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(96))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	// Every panel spans the same iterations.
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, pn := range panels {
		for _, pt := range pn.Points {
			xmin, xmax = math.Min(xmin, pt.X), math.Max(xmax, pt.X)
		}
	}
	grid := make([][]*plot.Plot, rows)
	for j := range grid {
		grid[j] = make([]*plot.Plot, cols)
	}
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.Title
		p.X.Label.Text = "iteration"
		p.X.Min, p.X.Max = xmin, xmax
		p.Add(plotter.NewGrid())
		l, err := plotter.NewLine(pn.Points)
		if err != nil {
			return fmt.Errorf("plot %s: %w", pn.Name, err)
		}
		l.Color = pn.Color
		l.Width = vg.Points(1.5)
		p.Add(l)
		if pn.Eval {
			s, err := plotter.NewScatter(pn.Points)
			if err != nil {
				return fmt.Errorf("plot %s: %w", pn.Name, err)
			}
			s.Color = pn.Color
			p.Add(s)
			p.Y.Min = 0
			p.Y.Max = math.Max(1e-3, p.Y.Max)
		}
		if pn.Name == "lr" {
			p.Y.Min = 0
		}
		grid[i/cols][i%cols] = p
	}
	body := dc
	body.Max.Y -= titleH
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: 0.15 * vg.Inch, PadY: 0.15 * vg.Inch,
		PadLeft: 0.1 * vg.Inch, PadRight: 0.15 * vg.Inch, PadBottom: 0.1 * vg.Inch}
	canvases := plot.Align(grid, tiles, body)
	for j := range grid {
		for i, p := range grid[j] {
			if p != nil {
				p.Draw(canvases[j][i])
			}
		}
	}
	ts := plot.New().Title.TextStyle
	ts.Font.Size = vg.Points(14)
	ts.XAlign, ts.YAlign = draw.XCenter, draw.YCenter
	dc.FillText(ts, vg.Point{X: w / 2, Y: h - titleH/2}, title)

	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(buf.Bytes())
		return err
	})
}
