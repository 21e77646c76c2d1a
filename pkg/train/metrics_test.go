package train

import (
	"bytes"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMetricsResumeDropsLaterLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "metrics.jsonl")
	m, err := OpenMetrics(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	for it := 1; it <= 5; it++ {
		if err := m.Write(Record{Iter: it, Loss: float64(it)}); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	m, err = OpenMetrics(p, 3) // resumed from model_3.ckpt: iterations 1..3 kept
	if err != nil {
		t.Fatal(err)
	}
	m.Write(Record{Iter: 4, Loss: 40})
	m.Close()
	f, _ := os.Open(p)
	defer f.Close()
	recs, err := ReadMetrics(f)
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for _, r := range recs {
		got = append(got, r.Loss)
	}
	want := []float64{1, 2, 3, 40}
	if len(got) != len(want) {
		t.Fatalf("losses %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("losses %v, want %v", got, want)
		}
	}
}

func TestProgressPlainLines(t *testing.T) {
	var b bytes.Buffer
	p := Progress{W: &b, Name: "detect-train", Total: 40, Every: 20}
	p.Start(0)
	for done := 1; done <= 40; done++ {
		p.Update(done, 1.5, 10)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	// first iteration, 20, 40
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "detect-train: iter 1/40 ") ||
		!strings.HasPrefix(lines[1], "detect-train: iter 20/40 ") || !strings.HasPrefix(lines[2], "detect-train: iter 40/40 loss 1.5000") {
		t.Fatalf("unexpected progress output:\n%s", b.String())
	}
	if strings.Contains(b.String(), "\r") {
		t.Fatal("plain progress must not redraw lines")
	}
}

// TestPlotLossesWritesPNG: loss.png holds a panel per loss part, the
// learning rate and each evaluation score, in a fixed order with a fixed
// colour per part (the same in every plot), and is a PNG.
func TestPlotLossesWritesPNG(t *testing.T) {
	p := filepath.Join(t.TempDir(), "loss.png")
	recs := []Record{
		{Iter: 1, LR: 0.001, Loss: 3, Parts: map[string]float64{"xy": 1, "wh": 0.5, "obj": 1, "cls": 0.25, "distill.l2": 0.25}},
		{Iter: 2, LR: 0.002, Loss: 2, Parts: map[string]float64{"xy": 0.5, "wh": 0.5, "obj": 0.5, "cls": 0.25, "distill.l2": 0.25}},
		{Iter: 2, LR: 0.002, Eval: map[string]float64{"map": 0.4}},
	}
	panels := Panels(recs)
	var names []string
	for _, pn := range panels {
		names = append(names, pn.Name)
		if pn.Color != PartColor(pn.Name) {
			t.Errorf("%s: colour %v, want its fixed %v", pn.Name, pn.Color, PartColor(pn.Name))
		}
	}
	if got, want := strings.Join(names, " "), "loss xy wh obj cls distill.l2 lr map"; got != want {
		t.Fatalf("panels %q, want %q", got, want)
	}
	if n := len(panels[0].Points); n != 2 || panels[0].Points[1].X != 2 || panels[0].Points[1].Y != 2 {
		t.Errorf("total loss points %v: the evaluation-only record entered it", panels[0].Points)
	}
	if m := panels[len(panels)-1]; !m.Eval || len(m.Points) != 1 || m.Points[0].Y != 0.4 {
		t.Errorf("map panel %+v", m)
	}
	seen := map[color.RGBA]string{}
	for _, pn := range panels[:6] {
		if other, ok := seen[pn.Color]; ok {
			t.Errorf("%s and %s share a colour", pn.Name, other)
		}
		seen[pn.Color] = pn.Name
	}
	if PartColor("distill.fine_grained") != PartColor("distill.fine_grained") {
		t.Error("a distillation term's colour is not fixed")
	}
	if err := PlotLosses(recs, "loss", p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("not a PNG: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() < 1000 {
		t.Fatalf("loss.png: %v, %v", err, img.Bounds())
	}
}
