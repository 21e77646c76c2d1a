package dataset

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"yolodistill/pkg/box"
)

func TestShapeIoU(t *testing.T) {
	cases := []struct {
		name string
		a, b WH
		want float64
	}{
		{"same", WH{3, 4}, WH{3, 4}, 1},
		{"nested", WH{2, 2}, WH{1, 1}, 0.25},
		{"crossed", WH{2, 1}, WH{1, 2}, 1.0 / 3},
		{"symmetric", WH{1, 2}, WH{2, 1}, 1.0 / 3},
		{"wide vs tall", WH{10, 1}, WH{1, 10}, 1.0 / 19},
		{"both empty", WH{0, 0}, WH{0, 0}, 0},
		{"one empty", WH{0, 0}, WH{2, 3}, 0},
	}
	for _, c := range cases {
		if got := ShapeIoU(c.a, c.b); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: ShapeIoU(%v, %v) = %v, want %v", c.name, c.a, c.b, got, c.want)
		}
	}
}

// repeat lists each size n[i] times, interleaved so that the input is not
// already grouped.
func repeat(sizes []WH, n []int) []WH {
	var out []WH
	for round := 0; ; round++ {
		added := false
		for i, s := range sizes {
			if round < n[i] {
				out = append(out, s)
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// TestFitAnchorsExactSizes: boxes of exactly k sizes give those sizes as
// anchors (sorted by area) and a mean IoU of 1, with either init.
func TestFitAnchorsExactSizes(t *testing.T) {
	three := []WH{{50, 20}, {5, 6}, {16, 30}}
	nine := []WH{{373, 326}, {10, 13}, {16, 30}, {33, 23}, {30, 61}, {62, 45}, {59, 119}, {116, 90}, {156, 198}}
	cases := []struct {
		name  string
		sizes []WH
		n     []int
		init  AnchorInit
	}{
		{"3 sizes once each", three, []int{1, 1, 1}, AnchorInitQuantile},
		{"3 sizes equal counts", three, []int{4, 4, 4}, AnchorInitQuantile},
		{"3 sizes skewed counts", three, []int{1, 20, 2}, AnchorInitQuantile},
		{"3 sizes kmeans++", three, []int{7, 1, 3}, AnchorInitKMeansPP},
		{"9 sizes quantile", nine, []int{3, 1, 4, 1, 5, 9, 2, 6, 5}, AnchorInitQuantile},
		{"9 sizes kmeans++", nine, []int{3, 1, 4, 1, 5, 9, 2, 6, 5}, AnchorInitKMeansPP},
	}
	const tol = 1e-12
	for _, c := range cases {
		sizes := repeat(c.sizes, c.n)
		fit, err := FitAnchors(sizes, AnchorOptions{K: len(c.sizes), Init: c.init, Seed: 7})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := append([]WH(nil), c.sizes...)
		sortByArea(want)
		if !reflect.DeepEqual(fit.Anchors, want) {
			t.Errorf("%s: anchors %v, want %v", c.name, fit.Anchors, want)
		}
		if math.Abs(fit.MeanIoU-1) > tol || !fit.Converged {
			t.Errorf("%s: mean IoU %v converged %v, want 1 and true", c.name, fit.MeanIoU, fit.Converged)
		}
	}
}

// TestFitAnchorsTwoClusters: two well separated groups converge to their
// per-dimension medians; the mean IoU is worked out by hand.
func TestFitAnchorsTwoClusters(t *testing.T) {
	sizes := []WH{{10, 10}, {40, 20}, {9, 9}, {50, 25}, {10, 10}, {60, 30}, {11, 11}, {10, 10}}
	want := []WH{{10, 10}, {50, 25}}
	wantIoU := (0.81 + 1 + 1 + 1 + 100.0/121 + 800.0/1250 + 1 + 1250.0/1800) / 8
	for _, init := range []AnchorInit{AnchorInitQuantile, AnchorInitKMeansPP} {
		fit, err := FitAnchors(sizes, AnchorOptions{K: 2, Init: init, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fit.Anchors, want) {
			t.Errorf("%v: anchors %v, want %v", init, fit.Anchors, want)
		}
		if math.Abs(fit.MeanIoU-wantIoU) > 1e-12 {
			t.Errorf("%v: mean IoU %v, want %v", init, fit.MeanIoU, wantIoU)
		}
		if got := MeanBestIoU(sizes, want); math.Abs(got-wantIoU) > 1e-12 {
			t.Errorf("MeanBestIoU = %v, want %v", got, wantIoU)
		}
	}
}

// TestFitAnchorsDeterministic: the same seed gives the same anchors.
func TestFitAnchorsDeterministic(t *testing.T) {
	var sizes []WH
	for i := 0; i < 500; i++ {
		// A spread of shapes from a fixed formula (no RNG needed).
		w := 5 + float64((i*37)%101)
		h := 5 + float64((i*53)%97)
		sizes = append(sizes, WH{w, h})
	}
	for _, init := range []AnchorInit{AnchorInitQuantile, AnchorInitKMeansPP} {
		a, err := FitAnchors(sizes, AnchorOptions{K: 9, Init: init, Seed: 11})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := FitAnchors(sizes, AnchorOptions{K: 9, Init: init, Seed: 11})
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%v: two fits with seed 11 differ: %v vs %v", init, a.Anchors, b.Anchors)
		}
		if len(a.Anchors) != 9 {
			t.Fatalf("%v: %d anchors, want 9", init, len(a.Anchors))
		}
		for i := 1; i < len(a.Anchors); i++ {
			if a.Anchors[i].Area() < a.Anchors[i-1].Area() {
				t.Errorf("%v: anchors not sorted by area: %v", init, a.Anchors)
			}
		}
		if a.MeanIoU < 0.5 || a.MeanIoU > 1 {
			t.Errorf("%v: mean IoU %v outside [0.5, 1]", init, a.MeanIoU)
		}
	}
}

func TestFitAnchorsErrors(t *testing.T) {
	cases := []struct {
		name  string
		sizes []WH
		opt   AnchorOptions
		want  string
	}{
		{"no boxes", nil, AnchorOptions{}, "no boxes"},
		{"too few distinct", []WH{{1, 1}, {1, 1}, {2, 2}}, AnchorOptions{K: 3}, "2 distinct sizes"},
		{"default k too many", []WH{{1, 1}, {2, 2}}, AnchorOptions{}, "cannot give 9"},
		{"zero width", []WH{{1, 1}, {0, 2}}, AnchorOptions{K: 1}, "box size 1 is 0x2"},
		{"NaN", []WH{{math.NaN(), 1}}, AnchorOptions{K: 1}, "box size 0"},
		{"Inf", []WH{{1, math.Inf(1)}}, AnchorOptions{K: 1}, "box size 0"},
		{"bad init", []WH{{1, 1}}, AnchorOptions{K: 1, Init: 9}, "anchor init"},
	}
	for _, c := range cases {
		_, err := FitAnchors(c.sizes, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := ParseAnchorInit("random"); err == nil {
		t.Error("ParseAnchorInit(random): no error")
	}
	for _, s := range []string{"quantile", "kmeans++"} {
		i, err := ParseAnchorInit(s)
		if err != nil || i.String() != s {
			t.Errorf("ParseAnchorInit(%q) = %v, %v", s, i, err)
		}
	}
}

func TestRoundAnchors(t *testing.T) {
	in := []WH{{10.44, 10.04}, {10.2, 10.1}, {59.96, 119.05}}
	cases := []struct {
		name     string
		decimals int
		want     []WH
	}{
		// 10.44x10.04 has the larger area but rounds to 10x10 < 10x10.
		{"integers", 0, []WH{{10, 10}, {10, 10}, {60, 119}}},
		{"one decimal", 1, []WH{{10.2, 10.1}, {10.4, 10}, {60, 119.1}}},
	}
	for _, c := range cases {
		got := RoundAnchors(in, c.decimals)
		for i := range got {
			if math.Abs(got[i].W-c.want[i].W) > 1e-9 || math.Abs(got[i].H-c.want[i].H) > 1e-9 {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
	if in[0] != (WH{10.44, 10.04}) {
		t.Errorf("RoundAnchors modified its input: %v", in)
	}
}

func TestBoxSizes(t *testing.T) {
	ds := &Dataset{Classes: []string{"a"}, Samples: []Sample{
		{Width: 640, Height: 480, Objects: []Object{
			{Box: box.Box{X0: 0, Y0: 0, X1: 64, Y1: 48}},
			{Box: box.Box{X0: 10, Y0: 10, X1: 30, Y1: 20}, Crowd: true},
			{Box: box.Box{X0: 5, Y0: 5, X1: 5, Y1: 9}},
		}},
		{Width: 100, Height: 200, Objects: []Object{{Box: box.Box{X0: 50, Y0: 0, X1: 100, Y1: 200}, Difficult: true}}},
	}}
	got := BoxSizes(ds, 320)
	want := []WH{{32, 32}, {160, 320}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("BoxSizes = %v, want %v", got, want)
	}
}

// bccdReference is testdata/config/bccd_anchors.json, written by
// testdata/config/gen_bccd_anchors.py.
type bccdReference struct {
	InputSize   int          `json:"input_size"`
	NumBoxes    int          `json:"num_boxes"`
	Anchors     [][2]float64 `json:"anchors"`
	MeanIoU     float64      `json:"mean_iou"`
	COCOMeanIoU float64      `json:"coco_anchors_mean_iou_at_608_scaled"`
}

// pythonBoxSizes reads BCCD's trainval boxes the way gen_bccd_anchors.py
// does: w = xmax - xmin (VOC values as written, not our half-open
// conversion, which adds a pixel), clipped to the image, boxes with no
// width or height dropped, scaled to size x size.
func pythonBoxSizes(t *testing.T, root string, size int) []WH {
	t.Helper()
	list, err := os.ReadFile(filepath.Join(root, VOCSets, "trainval.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []WH
	for _, id := range strings.Fields(string(list)) {
		file := filepath.Join(root, VOCAnnotations, id+".xml")
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		ann, ps := ParseVOCXML(data, file)
		if ps.Count(Error) > 0 {
			t.Fatalf("%s: %v", file, ps)
		}
		w, h := float64(ann.Width), float64(ann.Height)
		for _, o := range ann.Objects {
			x0, y0 := math.Max(0, o.Box.X0+1), math.Max(0, o.Box.Y0+1) // VOC xmin, ymin
			x1, y1 := math.Min(w, o.Box.X1), math.Min(h, o.Box.Y1)
			if x1 <= x0 || y1 <= y0 {
				continue
			}
			out = append(out, WH{(x1 - x0) * float64(size) / w, (y1 - y0) * float64(size) / h})
		}
	}
	return out
}

func scaleAnchors(a []WH, f float64) []WH {
	out := make([]WH, len(a))
	for i, s := range a {
		out[i] = WH{s.W * f, s.H * f}
	}
	return out
}

// TestFitAnchorsBCCD compares with the Python reference fit on BCCD.
func TestFitAnchorsBCCD(t *testing.T) {
	root := bccdRoot(t) // skips when absent
	data, err := os.ReadFile("../../testdata/config/bccd_anchors.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref bccdReference
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	size := ref.InputSize

	// The same boxes as the Python script: the same anchors.
	py := pythonBoxSizes(t, root, size)
	if len(py) != ref.NumBoxes {
		t.Fatalf("%d boxes read as the Python script does, reference has %d", len(py), ref.NumBoxes)
	}
	fit, err := FitAnchors(py, AnchorOptions{K: len(ref.Anchors)})
	if err != nil {
		t.Fatal(err)
	}
	const pxTol, iouTol = 1.0, 0.01
	for i, a := range fit.Anchors {
		r := ref.Anchors[i]
		if math.Abs(a.W-r[0]) > pxTol || math.Abs(a.H-r[1]) > pxTol {
			t.Errorf("anchor %d: %.2fx%.2f, reference %gx%g (tolerance %g px)", i, a.W, a.H, r[0], r[1], pxTol)
		}
	}
	// The reference's mean IoU is that of its anchors rounded to 0.1 px.
	if got := MeanBestIoU(py, RoundAnchors(fit.Anchors, 1)); math.Abs(got-ref.MeanIoU) > iouTol {
		t.Errorf("mean IoU %.4f, reference %.4f", got, ref.MeanIoU)
	}
	coco := MeanBestIoU(py, scaleAnchors(DefaultAnchors(), float64(size)/DefaultAnchorSize))
	if math.Abs(coco-ref.COCOMeanIoU) > iouTol {
		t.Errorf("default anchors scaled to %d px: mean IoU %.4f, reference %.4f", size, coco, ref.COCOMeanIoU)
	}
	t.Logf("Python's boxes: %d iterations, anchors %v, mean IoU %.4f (reference %.4f), default anchors %.4f",
		fit.Iterations, RoundAnchors(fit.Anchors, 1), fit.MeanIoU, ref.MeanIoU, coco)

	// Our reader (half-open boxes, one pixel wider and taller than the
	// script's, one-pixel boxes kept): k-means may settle in another local
	// optimum of the same quality, so only the mean IoU is compared.
	ds, ps := ReadVOC(root, VOCOptions{Split: "trainval", Images: ImageNone})
	if ps.Count(Error) > 0 {
		t.Fatalf("BCCD: %d errors", ps.Count(Error))
	}
	sizes := BoxSizes(ds, size)
	if d := len(sizes) - ref.NumBoxes; d < 0 || d > 5 {
		t.Errorf("%d boxes, reference %d", len(sizes), ref.NumBoxes)
	}
	ours, err := FitAnchors(sizes, AnchorOptions{K: len(ref.Anchors)})
	if err != nil {
		t.Fatal(err)
	}
	rounded := RoundAnchors(ours.Anchors, 0)
	if got := MeanBestIoU(sizes, rounded); math.Abs(got-ref.MeanIoU) > iouTol {
		t.Errorf("our boxes: mean IoU %.4f with whole-pixel anchors %v, reference %.4f", got, rounded, ref.MeanIoU)
	}
	// The issue reports 0.64 for the default anchors as they are; the
	// script 0.66 for them scaled from 608 px.
	asIs := MeanBestIoU(sizes, DefaultAnchors())
	scaled := MeanBestIoU(sizes, scaleAnchors(DefaultAnchors(), float64(size)/DefaultAnchorSize))
	if asIs < 0.63 || asIs > 0.65 || math.Abs(scaled-ref.COCOMeanIoU) > iouTol {
		t.Errorf("our boxes: default anchors mean IoU %.4f as they are (want 0.63-0.65), %.4f scaled (reference %.4f)", asIs, scaled, ref.COCOMeanIoU)
	}
	t.Logf("our boxes: %d, anchors %v, mean IoU %.4f; default anchors %.4f as they are, %.4f scaled", len(sizes), rounded, MeanBestIoU(sizes, rounded), asIs, scaled)
}
