package train

import (
	"bytes"
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

func TestPlotLossesWritesPNG(t *testing.T) {
	p := filepath.Join(t.TempDir(), "loss.png")
	recs := []Record{{Iter: 1, Loss: 3, Parts: map[string]float64{"obj": 2}}, {Iter: 2, Loss: 2, Parts: map[string]float64{"obj": 1}}}
	if err := PlotLosses(recs, "loss", p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("not a PNG: %v", err)
	}
}
