package detector_test

import (
	"errors"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"yolodistill/pkg/box"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/draw"
)

// TestInferFile: the picture is saved under the input's base name at the
// input's size; the detections are the ones scoring at least the threshold,
// best first, inside the image; the best box is drawn in its class colour
// (an edge at mid height or width has it, unless a tag covers it).
func TestInferFile(t *testing.T) {
	// the tiny untrained synthetic student (8 classes) at 64 px
	d, err := detector.New(loadConfig(t, synthPreset, append(slices.Clone(tinyModel), "eval.nms.keep_top_k=8")...))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "in", "a.png")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	_, synth := dataset.SynthImage(dataset.SynthOptions{Images: 10, Size: 96, Seed: 3}, 5)
	if err := draw.Save(src, synth.RGBA().SubImage(image.Rect(0, 0, 96, 80))); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	all, err := d.InferFile(src, 64, 0, out)
	if err != nil {
		t.Fatal(err)
	}
	dets, err := d.InferFile(src, 64, 0.3, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) == 0 || len(all) > 8 {
		t.Fatalf("%d detections at 0.3, %d at 0 (keep_top_k 8): the checks below would prove nothing", len(dets), len(all))
	}
	want := slices.DeleteFunc(slices.Clone(all), func(s box.Scored) bool { return s.Score < 0.3 })
	if !slices.Equal(dets, want) {
		t.Errorf("threshold 0.3 kept %v, want %v", dets, want)
	}
	for k, s := range dets {
		if s.X0 < 0 || s.Y0 < 0 || s.X1 > 96 || s.Y1 > 80 || s.W() <= 0 || s.H() <= 0 || math.IsNaN(s.Score) || (k > 0 && dets[k-1].Score < s.Score) {
			t.Errorf("detection %d: %+v", k, s)
		}
	}
	img, err := dataset.DecodeImage(filepath.Join(out, "a.png"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if img.W != 96 || img.H != 80 {
		t.Fatalf("output %dx%d, want 96x80", img.W, img.H)
	}
	best := dets[0]
	c := draw.ClassColor(best.Label)
	x0, y0 := int(math.Floor(best.X0)), int(math.Floor(best.Y0))
	x1, y1 := int(math.Ceil(best.X1))-1, int(math.Ceil(best.Y1))-1
	found := false
	for _, p := range []image.Point{{x0, (y0 + y1) / 2}, {x1, (y0 + y1) / 2}, {(x0 + x1) / 2, y1}, {(x0 + x1) / 2, y0}} {
		px := img.Pix[3*(p.Y*img.W+p.X):]
		found = found || (px[0] == c.R && px[1] == c.G && px[2] == c.B)
	}
	if !found {
		t.Errorf("no edge of the best box %v has its class colour %v", best.Box, c)
	}

	// an unreadable image: *dataset.ImageError, nothing written
	bad := filepath.Join(tmp, "in", "broken.jpg")
	if err := os.WriteFile(bad, []byte("\xff\xd8\xff\xe0 definitely not a jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ie *dataset.ImageError
	if _, err := d.InferFile(bad, 64, 0, out); !errors.As(err, &ie) || ie.File != bad {
		t.Errorf("broken image: %v, want a *dataset.ImageError naming it", err)
	}
	if _, err := os.Stat(filepath.Join(out, "broken.jpg")); err == nil {
		t.Error("an output was written for the broken image")
	}
}

func TestInferRecords(t *testing.T) {
	dets := []box.Scored{
		{Box: box.Box{X0: 1, Y0: 2, X1: 11, Y1: 7}, Score: 0.9, Label: 1},
		{Box: box.Box{X0: 0.5, Y0: 0, X1: 3, Y1: 4.5}, Score: 0.4, Label: 3},
	}
	got := detector.InferRecords(2, "in/x.jpg", dets, []string{"cat", "dog"})
	want := []detector.InferRecord{
		{ImageID: 2, File: "in/x.jpg", CategoryID: 2, Category: "dog", BBox: [4]float64{1, 2, 10, 5}, Score: 0.9},
		{ImageID: 2, File: "in/x.jpg", CategoryID: 4, Category: "class3", BBox: [4]float64{0.5, 0, 2.5, 4.5}, Score: 0.4},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	data, err := detector.MarshalInferRecords(got[:1])
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `[
  {
    "image_id": 2,
    "file": "in/x.jpg",
    "category_id": 2,
    "category": "dog",
    "bbox": [
      1,
      2,
      10,
      5
    ],
    "score": 0.9
  }
]
`
	if string(data) != wantJSON {
		t.Errorf("JSON:\n%s\nwant:\n%s", data, wantJSON)
	}
	if data, err := detector.MarshalInferRecords(nil); err != nil || string(data) != "[]\n" {
		t.Errorf("no records: %q, %v", data, err)
	}
}
