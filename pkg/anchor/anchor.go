package anchor

import (
	"math"
	"sort"
)

// Anchor is a box size in pixels of the network input: [0] the width, [1]
// the height. Being a two-number array, it reads and writes as [w, h] in
// YAML and JSON.
type Anchor [2]float64

// W is the width in pixels.
func (a Anchor) W() float64 { return a[0] }

// H is the height in pixels.
func (a Anchor) H() float64 { return a[1] }

// Area is W*H.
func (a Anchor) Area() float64 { return a[0] * a[1] }

// DefaultSize is the input size, in pixels, that Defaults were fitted for
// (YOLOv3 on COCO at 608x608).
const DefaultSize = 608

// Defaults returns a fresh copy of YOLOv3's nine COCO anchors, in pixels at
// a DefaultSize input, smallest first (PaddleDetection's yolov3 configs, VOC
// and COCO alike): 10,13 16,30 33,23 30,61 62,45 59,119 116,90 156,198
// 373,326.
func Defaults() []Anchor {
	return []Anchor{
		{10, 13}, {16, 30}, {33, 23},
		{30, 61}, {62, 45}, {59, 119},
		{116, 90}, {156, 198}, {373, 326},
	}
}

// DefaultMasks returns a fresh copy of YOLOv3's anchor masks, one per
// output, deepest first (the outputs of DefaultStrides): [[6 7 8] [3 4 5]
// [0 1 2]]. Output i has len(masks[i]) anchors, in mask order along its
// anchor axis.
func DefaultMasks() [][]int {
	return [][]int{{6, 7, 8}, {3, 4, 5}, {0, 1, 2}}
}

// DefaultStrides returns the downsample ratios of YOLOv3's three detection
// outputs, deepest first, the outputs DefaultMasks serve: [32 16 8].
func DefaultStrides() []int { return []int{32, 16, 8} }

// PerScale returns len(masks[i]) for each output i: the number of anchors
// each output predicts.
func PerScale(masks [][]int) []int {
	n := make([]int, len(masks))
	for i, m := range masks {
		n[i] = len(m)
	}
	return n
}

// Overlap returns the intersection and union areas of two boxes of sizes a
// and b placed at a common corner: inter = min(aW, bW) * min(aH, bH) and
// union = aW*aH + bW*bH - inter, evaluated in exactly that order (the loss's
// best-anchor choice depends on the rounding). There is no guard: for sizes
// that are not positive, union may be 0, negative or NaN.
func Overlap(a, b Anchor) (inter, union float64) {
	inter = math.Min(a[0], b[0]) * math.Min(a[1], b[1])
	union = a[0]*a[1] + b[0]*b[1] - inter
	return inter, union
}

// ShapeIoU is the IoU of two boxes of sizes a and b placed at a common
// corner: inter / union of Overlap. It is 0 when the union is not positive
// (both sizes zero). Sizes are taken as non-negative.
func ShapeIoU(a, b Anchor) float64 {
	inter, union := Overlap(a, b)
	if !(union > 0) {
		return 0
	}
	return inter / union
}

// MeanBestIoU is the mean over sizes of the best ShapeIoU each has with any
// anchor: how well the anchors cover the boxes (1 when every size is an
// anchor). 0 when sizes or anchors is empty.
func MeanBestIoU(sizes, anchors []Anchor) float64 {
	if len(sizes) == 0 || len(anchors) == 0 {
		return 0
	}
	sum := 0.0
	for _, s := range sizes {
		_, best := nearest(s, anchors)
		sum += best
	}
	return sum / float64(len(sizes))
}

// nearest is the index of the anchor with the highest ShapeIoU with s (the
// first on ties) and that IoU.
func nearest(s Anchor, anchors []Anchor) (int, float64) {
	bi, best := 0, -1.0
	for j, a := range anchors {
		if v := ShapeIoU(s, a); v > best {
			bi, best = j, v
		}
	}
	return bi, best
}

// Scale returns anchors with both sizes multiplied by f (anchors fitted for
// one input size carried to another: f = newSize / oldSize). anchors is not
// modified.
func Scale(anchors []Anchor, f float64) []Anchor {
	out := make([]Anchor, len(anchors))
	for i, a := range anchors {
		out[i] = Anchor{a[0] * f, a[1] * f}
	}
	return out
}

// Round returns anchors rounded to the given number of decimals (0: whole
// pixels, as YOLO configs write them; negative is taken as 0), sorted again
// by area since rounding can swap near-equal areas. anchors is not modified.
func Round(anchors []Anchor, decimals int) []Anchor {
	if decimals < 0 {
		decimals = 0
	}
	p := math.Pow(10, float64(decimals))
	out := make([]Anchor, len(anchors))
	for i, a := range anchors {
		out[i] = Anchor{math.Round(a[0]*p) / p, math.Round(a[1]*p) / p}
	}
	sortByArea(out)
	return out
}

// sortByArea sorts anchors by area, ascending; equal areas keep their order.
func sortByArea(a []Anchor) {
	sort.SliceStable(a, func(i, j int) bool { return a[i].Area() < a[j].Area() })
}
