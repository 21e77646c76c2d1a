package dataset

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/anchor"
	"yolodistill/pkg/box"
	"yolodistill/pkg/config"
)

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
	want := []anchor.Anchor{{32, 32}, {160, 320}}
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
func pythonBoxSizes(t *testing.T, root string, size int) []anchor.Anchor {
	t.Helper()
	list, err := os.ReadFile(filepath.Join(root, VOCSets, "trainval.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []anchor.Anchor
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
			out = append(out, anchor.Anchor{(x1 - x0) * float64(size) / w, (y1 - y0) * float64(size) / h})
		}
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
	fit, err := anchor.Fit(py, anchor.FitOptions{K: len(ref.Anchors)})
	if err != nil {
		t.Fatal(err)
	}
	const pxTol, iouTol = 1.0, 0.01
	for i, a := range fit.Anchors {
		r := ref.Anchors[i]
		if math.Abs(a.W()-r[0]) > pxTol || math.Abs(a.H()-r[1]) > pxTol {
			t.Errorf("anchor %d: %.2fx%.2f, reference %gx%g (tolerance %g px)", i, a.W(), a.H(), r[0], r[1], pxTol)
		}
	}
	// The reference's mean IoU is that of its anchors rounded to 0.1 px.
	if got := anchor.MeanBestIoU(py, anchor.Round(fit.Anchors, 1)); math.Abs(got-ref.MeanIoU) > iouTol {
		t.Errorf("mean IoU %.4f, reference %.4f", got, ref.MeanIoU)
	}
	coco := anchor.MeanBestIoU(py, anchor.Scale(anchor.Defaults(), float64(size)/anchor.DefaultSize))
	if math.Abs(coco-ref.COCOMeanIoU) > iouTol {
		t.Errorf("default anchors scaled to %d px: mean IoU %.4f, reference %.4f", size, coco, ref.COCOMeanIoU)
	}
	t.Logf("Python's boxes: %d iterations, anchors %v, mean IoU %.4f (reference %.4f), default anchors %.4f",
		fit.Iterations, anchor.Round(fit.Anchors, 1), fit.MeanIoU, ref.MeanIoU, coco)

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
	ours, err := anchor.Fit(sizes, anchor.FitOptions{K: len(ref.Anchors)})
	if err != nil {
		t.Fatal(err)
	}
	rounded := anchor.Round(ours.Anchors, 0)
	if got := anchor.MeanBestIoU(sizes, rounded); math.Abs(got-ref.MeanIoU) > iouTol {
		t.Errorf("our boxes: mean IoU %.4f with whole-pixel anchors %v, reference %.4f", got, rounded, ref.MeanIoU)
	}
	// The issue reports 0.64 for the default anchors as they are; the
	// script 0.66 for them scaled from 608 px.
	asIs := anchor.MeanBestIoU(sizes, anchor.Defaults())
	scaled := anchor.MeanBestIoU(sizes, anchor.Scale(anchor.Defaults(), float64(size)/anchor.DefaultSize))
	if asIs < 0.63 || asIs > 0.65 || math.Abs(scaled-ref.COCOMeanIoU) > iouTol {
		t.Errorf("our boxes: default anchors mean IoU %.4f as they are (want 0.63-0.65), %.4f scaled (reference %.4f)", asIs, scaled, ref.COCOMeanIoU)
	}
	t.Logf("our boxes: %d, anchors %v, mean IoU %.4f; default anchors %.4f as they are, %.4f scaled", len(sizes), rounded, anchor.MeanBestIoU(sizes, rounded), asIs, scaled)
}

// TestBCCDPresetAnchors checks the BCCD presets' anchors, fitted with
// `dataset anchors --sizes` over their multi-scale training sizes, against
// the Python reference fit of the same pooled boxes
// (testdata/config/bccd_anchors_ms.json): same sizes, and mean best IoU
// within 0.01 of the reference's on our boxes; and our k-means on the
// script's boxes reaches the reference's mean IoU.
func TestBCCDPresetAnchors(t *testing.T) {
	root := bccdRoot(t) // skips when absent
	data, err := os.ReadFile("../../testdata/config/bccd_anchors_ms.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		bccdReference
		InputSizes []int `json:"input_sizes"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	const iouTol = 0.01
	var py []anchor.Anchor
	for _, s := range ref.InputSizes {
		py = append(py, pythonBoxSizes(t, root, s)...)
	}
	if len(py) != ref.NumBoxes {
		t.Fatalf("%d boxes read as the Python script does, reference has %d", len(py), ref.NumBoxes)
	}
	fit, err := anchor.Fit(py, anchor.FitOptions{K: len(ref.Anchors)})
	if err != nil {
		t.Fatal(err)
	}
	if got := anchor.MeanBestIoU(py, anchor.Round(fit.Anchors, 1)); math.Abs(got-ref.MeanIoU) > iouTol {
		t.Errorf("the script's boxes: our fit's mean IoU %.4f, reference %.4f", got, ref.MeanIoU)
	}
	ds, ps := ReadVOC(root, VOCOptions{Split: "trainval", Images: ImageNone})
	if ps.Count(Error) > 0 {
		t.Fatalf("BCCD: %d errors", ps.Count(Error))
	}
	var ours []anchor.Anchor
	for _, s := range ref.InputSizes {
		ours = append(ours, BoxSizes(ds, s)...)
	}
	for _, f := range []string{"bccd_teacher.yml", "bccd_student.yml"} {
		c, err := config.Load(filepath.Join("../../pipelines/configs", f), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c.Data.Augment.MultiScale, ref.InputSizes) {
			t.Errorf("%s: multi_scale %v, the reference fit's sizes %v", f, c.Data.Augment.MultiScale, ref.InputSizes)
		}
		if got := anchor.MeanBestIoU(ours, c.Model.Anchors); math.Abs(got-ref.MeanIoU) > iouTol {
			t.Errorf("%s: anchors %v: mean IoU %.4f on our boxes, reference fit %.4f", f, c.Model.Anchors, got, ref.MeanIoU)
		}
	}
	t.Logf("reference anchors %v (mean IoU %.4f); our fit of the script's boxes %v", ref.Anchors, ref.MeanIoU, anchor.Round(fit.Anchors, 1))
}
