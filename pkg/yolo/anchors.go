package yolo

import "fmt"

// Anchor is a prior box size in input pixels (at the network's input size,
// whatever that size is: PaddleDetection does not rescale anchors with the
// input size). W and H are full widths and heights, not half-sizes.
type Anchor struct {
	W, H float64
}

// DefaultAnchors returns a fresh copy of YOLOv3's nine COCO anchors, in
// pixels, smallest first (PaddleDetection's yolov3 configs, VOC and COCO alike):
// 10,13 16,30 33,23 30,61 62,45 59,119 116,90 156,198 373,326.
func DefaultAnchors() []Anchor {
	return []Anchor{
		{10, 13}, {16, 30}, {33, 23},
		{30, 61}, {62, 45}, {59, 119},
		{116, 90}, {156, 198}, {373, 326},
	}
}

// DefaultAnchorMasks returns a fresh copy of YOLOv3's anchor masks: for each
// detection output, deepest first (strides 32, 16, 8), the indices into the
// anchor list of the anchors that output predicts: [[6 7 8] [3 4 5] [0 1 2]].
// Output i has len(masks[i]) anchors, in mask order along its anchor axis.
func DefaultAnchorMasks() [][]int {
	return [][]int{{6, 7, 8}, {3, 4, 5}, {0, 1, 2}}
}

// DefaultStrides returns the strides of the three detection outputs, deepest
// first: [32 16 8].
func DefaultStrides() []int { return []int{32, 16, 8} }

// CheckAnchors reports whether anchors and masks fit a three-output YOLOv3
// head: positive anchor sizes, exactly three masks (one per output, deepest
// first), each non-empty, with indices into anchors and no index used twice.
// Anchors not named by any mask are allowed (they still compete in the
// best-anchor assignment of the loss).
func CheckAnchors(anchors []Anchor, masks [][]int) error {
	if len(anchors) == 0 {
		return fmt.Errorf("anchors: none given")
	}
	for i, a := range anchors {
		if !(a.W > 0) || !(a.H > 0) {
			return fmt.Errorf("anchors: anchor %d is %gx%g, sizes must be positive", i, a.W, a.H)
		}
	}
	if len(masks) != 3 {
		return fmt.Errorf("anchor masks: %d masks, the YOLOv3 head has 3 outputs", len(masks))
	}
	used := map[int]int{}
	for i, m := range masks {
		if len(m) == 0 {
			return fmt.Errorf("anchor masks: mask %d is empty", i)
		}
		for _, j := range m {
			if j < 0 || j >= len(anchors) {
				return fmt.Errorf("anchor masks: mask %d names anchor %d, there are %d anchors", i, j, len(anchors))
			}
			if k, ok := used[j]; ok {
				return fmt.Errorf("anchor masks: anchor %d is in mask %d and mask %d", j, k, i)
			}
			used[j] = i
		}
	}
	return nil
}

// AnchorsPerScale returns len(masks[i]) for each output i.
func AnchorsPerScale(masks [][]int) []int {
	n := make([]int, len(masks))
	for i, m := range masks {
		n[i] = len(m)
	}
	return n
}
