package main

import (
	"encoding/json"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector/detectortest"
	"yolodistill/pkg/draw"
)

const presetConfig = "../../pipelines/configs/synth_student.yml"

// tinyOverrides shrink the synthetic student to a few thousand parameters,
// 64 px input, with objectness biased up so an untrained model detects things.
var tinyOverrides = []string{"model.backbone_width=0.25", "model.head_width=0.125", "eval.size=64",
	"model.obj_bias_init=1.5", "eval.nms.keep_top_k=8"}

// fixture writes a checkpoint of the tiny untrained model and returns the
// flags that select config + weights.
func fixture(t *testing.T, dir string, extra ...string) []string {
	t.Helper()
	o := append(slices.Clone(tinyOverrides), extra...)
	ck, _ := detectortest.Checkpoint(t, dir, "tiny.ckpt", presetConfig, o...)
	args := []string{"-c", presetConfig, "--weights", ck}
	for _, s := range o {
		args = append(args, "-o", s)
	}
	return args
}

// writeImage writes synthetic image i, cropped/resized to w x h by taking
// the top-left corner of a bigger render, as PNG or JPEG by extension.
func writeImage(t *testing.T, path string, i, w, h int) {
	t.Helper()
	side := max(w, h, 64)
	_, img := dataset.SynthImage(dataset.SynthOptions{Images: 10, Size: side, Seed: 3}, i)
	sub := img.RGBA().SubImage(image.Rect(0, 0, w, h))
	if err := draw.Save(path, sub); err != nil {
		t.Fatal(err)
	}
}

type rec struct {
	ImageID    int64      `json:"image_id"`
	File       string     `json:"file"`
	CategoryID int64      `json:"category_id"`
	Category   string     `json:"category"`
	BBox       [4]float64 `json:"bbox"`
	Score      float64    `json:"score"`
}

func TestInferDir(t *testing.T) {
	tmp := t.TempDir()
	base := fixture(t, tmp)
	in := filepath.Join(tmp, "in")
	out := filepath.Join(tmp, "out")
	os.MkdirAll(in, 0o755)
	sizes := map[string][2]int{"a.png": {64, 64}, "b.jpg": {120, 50}, "c.PNG": {33, 90}}
	for n, s := range sizes {
		writeImage(t, filepath.Join(in, n), len(n), s[0], s[1])
	}
	os.WriteFile(filepath.Join(in, "notes.txt"), []byte("not an image"), 0o644)
	r := clitest.Run(t, run, append(base, "--infer-dir", in, "--output-dir", out, "--draw-threshold", "0.3")...)
	if r.Code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	if r.Stdout != "" {
		t.Errorf("stdout must stay empty, got %q", r.Stdout)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		if !strings.HasPrefix(line, "detect-infer: ") {
			t.Errorf("stderr line without the tool prefix: %q", line)
		}
	}
	if n := strings.Count(r.Stderr, "detections at score >= 0.30"); n != 3 {
		t.Errorf("%d progress lines, want 3:\n%s", n, r.Stderr)
	}
	for n, s := range sizes {
		img, err := dataset.DecodeImage(filepath.Join(out, n), 0)
		if err != nil {
			t.Fatal(err)
		}
		if img.W != s[0] || img.H != s[1] {
			t.Errorf("%s: output %dx%d, want %dx%d", n, img.W, img.H, s[0], s[1])
		}
	}
	if _, err := os.Stat(filepath.Join(out, "notes.txt")); err == nil {
		t.Error("notes.txt was treated as an image")
	}
	data, err := os.ReadFile(filepath.Join(out, "detections.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recs []rec
	if err := json.Unmarshal(data, &recs); err != nil {
		t.Fatalf("detections.json: %v", err)
	}
	if len(recs) == 0 {
		t.Fatal("no detections: the checks below would prove nothing")
	}
	classes := []string{"circle", "ring", "hexagon", "square", "diamond", "triangle", "cross", "star"}
	files := []string{filepath.Join(in, "a.png"), filepath.Join(in, "b.jpg"), filepath.Join(in, "c.PNG")}
	for k, r := range recs {
		if r.ImageID < 0 || int(r.ImageID) >= len(files) || r.File != files[r.ImageID] {
			t.Fatalf("record %d: image %d file %q", k, r.ImageID, r.File)
		}
		s := sizes[filepath.Base(r.File)]
		b := r.BBox
		if b[0] < 0 || b[1] < 0 || b[2] <= 0 || b[3] <= 0 || b[0]+b[2] > float64(s[0])+1e-9 || b[1]+b[3] > float64(s[1])+1e-9 {
			t.Errorf("record %d: bbox %v outside the %dx%d image", k, b, s[0], s[1])
		}
		if r.Score < 0.3 || r.Score > 1 || math.IsNaN(r.Score) {
			t.Errorf("record %d: score %v below the draw threshold", k, r.Score)
		}
		if r.CategoryID < 1 || int(r.CategoryID) > len(classes) || r.Category != classes[r.CategoryID-1] {
			t.Errorf("record %d: category %d %q", k, r.CategoryID, r.Category)
		}
		if k > 0 {
			p := recs[k-1]
			if p.ImageID > r.ImageID || (p.ImageID == r.ImageID && p.Score < r.Score) {
				t.Errorf("records %d, %d out of order", k-1, k)
			}
		}
	}
}
