package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/draw"
)

const presetConfig = "../../pipelines/configs/synth_student.yml"

// tinyOverrides shrink the synthetic student to a few thousand parameters,
// 64 px input, with objectness biased up so an untrained model detects things.
var tinyOverrides = []string{"model.backbone_width=0.25", "model.head_width=0.125", "eval.size=64",
	"model.obj_bias_init=1.5", "eval.nms.keep_top_k=8"}

func runTool(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// fixture writes a checkpoint of the tiny untrained model and returns the
// flags that select config + weights.
func fixture(t *testing.T, dir string, extra ...string) []string {
	t.Helper()
	o := append(slices.Clone(tinyOverrides), extra...)
	cfg, err := config.Load(presetConfig, o)
	if err != nil {
		t.Fatal(err)
	}
	d, err := detector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(dir, "tiny.ckpt")
	if err := checkpoint.Save(ck, d.ToCheckpoint()); err != nil {
		t.Fatal(err)
	}
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

func decodeFile(t *testing.T, p string) image.Image {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var img image.Image
	if strings.HasSuffix(strings.ToLower(p), ".png") {
		img, err = png.Decode(f)
	} else {
		img, err = jpeg.Decode(f)
	}
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return img
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
	code, stdout, stderr := runTool(t, append(base, "--infer-dir", in, "--output-dir", out, "--draw-threshold", "0.3")...)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout must stay empty, got %q", stdout)
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.HasPrefix(line, "detect-infer: ") {
			t.Errorf("stderr line without the tool prefix: %q", line)
		}
	}
	if n := strings.Count(stderr, "detections at score >= 0.30"); n != 3 {
		t.Errorf("%d progress lines, want 3:\n%s", n, stderr)
	}
	for n, s := range sizes {
		img := decodeFile(t, filepath.Join(out, n))
		if img.Bounds().Dx() != s[0] || img.Bounds().Dy() != s[1] {
			t.Errorf("%s: output %v, want %dx%d", n, img.Bounds(), s[0], s[1])
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
	// The best box of a.png (lossless output) is drawn: its left edge, mid
	// height, has the class colour unless a later tag covers it.
	img := decodeFile(t, filepath.Join(out, "a.png"))
	for _, r := range recs {
		if r.ImageID != 0 {
			continue
		}
		c := draw.ClassColor(int(r.CategoryID - 1))
		found := false
		x0, y0 := int(math.Floor(r.BBox[0])), int(math.Floor(r.BBox[1]))
		x1, y1 := int(math.Ceil(r.BBox[0]+r.BBox[2]))-1, int(math.Ceil(r.BBox[1]+r.BBox[3]))-1
		for _, p := range []image.Point{{x0, (y0 + y1) / 2}, {x1, (y0 + y1) / 2}, {(x0 + x1) / 2, y1}, {(x0 + x1) / 2, y0}} {
			cr, cg, cb, _ := img.At(p.X, p.Y).RGBA()
			if uint8(cr>>8) == c.R && uint8(cg>>8) == c.G && uint8(cb>>8) == c.B {
				found = true
			}
		}
		if !found {
			t.Errorf("no edge of the best a.png box %v has its class colour %v", r.BBox, c)
		}
		break
	}
}

func TestInferImgJSONStdout(t *testing.T) {
	tmp := t.TempDir()
	base := fixture(t, tmp)
	src := filepath.Join(tmp, "one.jpg")
	writeImage(t, src, 1, 80, 64)
	out := filepath.Join(tmp, "drawn")
	code, stdout, stderr := runTool(t, append(base, "--infer-img", src, "--output-dir", out, "--json", "-", "--draw-threshold", "0", "--size", "96")...)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var recs []rec
	if err := json.Unmarshal([]byte(stdout), &recs); err != nil {
		t.Fatalf("stdout is not the JSON array: %v\n%s", err, stdout)
	}
	if len(recs) == 0 || len(recs) > 8 {
		t.Errorf("%d detections at threshold 0, want 1..keep_top_k=8", len(recs))
	}
	if _, err := os.Stat(filepath.Join(out, "one.jpg")); err != nil {
		t.Errorf("drawn image: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "detections.json")); err == nil {
		t.Errorf("detections.json written although --json -")
	}
}

func TestBadInputs(t *testing.T) {
	tmp := t.TempDir()
	base := fixture(t, tmp)
	good := filepath.Join(tmp, "in", "good.png")
	os.MkdirAll(filepath.Dir(good), 0o755)
	writeImage(t, good, 0, 64, 64)
	bad := filepath.Join(tmp, "in", "broken.jpg")
	os.WriteFile(bad, []byte("\xff\xd8\xff\xe0 definitely not a jpeg"), 0o644)
	// a checkpoint of another model (wider head) for the same config
	otherDir := filepath.Join(tmp, "other")
	os.MkdirAll(otherDir, 0o755)
	other := fixture(t, otherDir, "model.head_width=0.25")
	otherCkpt := other[3]

	withWeights := func(w string, rest ...string) []string {
		a := slices.Clone(base)
		a[3] = w
		return append(a, rest...)
	}
	out := filepath.Join(tmp, "out")
	tests := []struct {
		name     string
		args     []string
		code     int
		stderrIn []string
	}{
		{"missing weights", withWeights(filepath.Join(tmp, "nope.ckpt"), "--infer-img", good, "--output-dir", out), 1, []string{"nope.ckpt"}},
		{"weights not a checkpoint", withWeights(good, "--infer-img", good, "--output-dir", out), 1, []string{"good.png", "checkpoint"}},
		{"checkpoint of another model", withWeights(otherCkpt, "--infer-img", good, "--output-dir", out), 1, []string{"does not fit", "head."}},
		{"missing image", append(slices.Clone(base), "--infer-img", filepath.Join(tmp, "gone.png"), "--output-dir", out), 1, []string{"gone.png"}},
		{"not an image extension", append(slices.Clone(base), "--infer-img", base[3], "--output-dir", out), 1, []string{"tiny.ckpt", "extension"}},
		{"empty folder", append(slices.Clone(base), "--infer-dir", t.TempDir(), "--output-dir", out), 1, []string{"no .jpg"}},
		{"output over inputs", append(slices.Clone(base), "--infer-dir", filepath.Dir(good), "--output-dir", filepath.Dir(good)), 1, []string{"overwrite"}},
		{"missing config", []string{"-c", filepath.Join(tmp, "none.yml"), "--weights", base[3], "--infer-img", good}, 1, []string{"none.yml"}},
		{"both inputs", append(slices.Clone(base), "--infer-img", good, "--infer-dir", tmp), 2, []string{"--infer-img", "--infer-dir"}},
		{"no input", slices.Clone(base), 2, []string{"--infer-img"}},
		{"bad size", append(slices.Clone(base), "--infer-img", good, "--size", "50"), 2, []string{"--size"}},
		{"bad threshold", append(slices.Clone(base), "--infer-img", good, "--draw-threshold", "1.5"), 2, []string{"--draw-threshold"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runTool(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want empty", stdout)
			}
			for _, s := range tc.stderrIn {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr does not mention %q:\n%s", s, stderr)
				}
			}
		})
	}

	// An unreadable image among good ones: reported, skipped, the rest
	// written; exit 0 within data.skip_limit (one image of two may be
	// skipped by default), exit 1 past it.
	strict := filepath.Join(tmp, "strict")
	code, _, stderr := runTool(t, append(slices.Clone(base), "--infer-dir", filepath.Dir(good), "--output-dir", strict, "-o", "data.skip_limit=0")...)
	if code != 1 || !strings.Contains(stderr, "broken.jpg") || !strings.Contains(stderr, "1 of 2 images could not be read, more than the 0") {
		t.Errorf("broken image with data.skip_limit=0: exit %d, want 1 naming the file and the count; stderr:\n%s", code, stderr)
	}
	out2 := filepath.Join(tmp, "out2")
	code, _, stderr = runTool(t, append(slices.Clone(base), "--infer-dir", filepath.Dir(good), "--output-dir", out2)...)
	if code != 0 {
		t.Fatalf("broken image among good ones: exit %d, want 0; stderr:\n%s", code, stderr)
	}
	if strings.Count(stderr, "broken.jpg") != 1 || !strings.Contains(stderr, "1 of 2 images could not be read and were skipped") {
		t.Errorf("stderr does not name the broken file once and the count:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(out2, "good.png")); err != nil {
		t.Errorf("the good image was not written: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out2, "broken.jpg")); err == nil {
		t.Errorf("an output was written for the broken image")
	}
	data, err := os.ReadFile(filepath.Join(out2, "detections.json"))
	var recs []rec
	if err != nil || json.Unmarshal(data, &recs) != nil {
		t.Errorf("detections.json missing or invalid after a skipped image: %v", err)
	}
}

func TestCancelled(t *testing.T) {
	tmp := t.TempDir()
	base := fixture(t, tmp)
	good := filepath.Join(tmp, "g.png")
	writeImage(t, good, 0, 64, 64)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var errb bytes.Buffer
	code := run(ctx, append(base, "--infer-img", good, "--output-dir", filepath.Join(tmp, "o")), strings.NewReader(""), io.Discard, &errb)
	if code != 130 {
		t.Errorf("cancelled: exit %d, want 130; stderr:\n%s", code, errb.String())
	}
}
