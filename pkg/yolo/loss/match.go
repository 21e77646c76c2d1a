package loss

import (
	"fmt"
	"math"

	"yolodistill/pkg/anchor"
)

// GT is one ground-truth box of an image, normalised to the network input
// (see the package doc): CX, CY is the centre and W, H the size, as fractions
// of the input width (CX, W) and height (CY, H). Label is the class index in
// [0, C). Score is the mixup weight of the box, 1 without mixup.
type GT struct {
	CX, CY, W, H float32
	Label        int
	Score        float32
}

// Path selects which of PaddleDetection's two YOLOv3 loss implementations
// the criterion reproduces (see the package doc).
type Path int

const (
	// OperatorPath is fluid.layers.yolov3_loss (use_fine_grained_loss: false).
	OperatorPath Path = iota
	// FineGrainedPath is YOLOv3Loss._get_fine_grained_loss with
	// Gt2YoloTarget targets (use_fine_grained_loss: true).
	FineGrainedPath
)

func (p Path) String() string {
	switch p {
	case OperatorPath:
		return "operator"
	case FineGrainedPath:
		return "fine-grained"
	}
	return fmt.Sprintf("Path(%d)", int(p))
}

// Assignment is one positive: a GT matched to an anchor and a cell of one
// output.
type Assignment struct {
	GT       int // index of the GT in the image's list
	Scale    int // output index (into Masks)
	Anchor   int // position of the anchor in Masks[Scale]: the anchor group of the output's channels
	AnchorID int // index of the anchor in Anchors
	GI, GJ   int // cell column (x) and row (y) in the output's grid
	// Targets: TX, TY in [0, 1) within the cell; TW, TH log size ratios to the
	// anchor; TScale = 2 - W*H (not multiplied by Score).
	TX, TY, TW, TH, TScale float32
	Score                  float32
	Label                  int
}

// Matcher assigns GTs to anchors and cells. Anchors are in input pixels,
// Masks[s] lists the anchors of output s, Strides[s] is its downsample ratio.
type Matcher struct {
	Anchors []anchor.Anchor
	Masks   [][]int
	Strides []int
	Path    Path // selects the validity rule (see Valid)
}

// Valid reports whether the matcher's path gives g a target: OperatorPath
// needs W, H >= 1e-6 (the operator's GtValid); FineGrainedPath needs W, H, Score
// > 0 (Gt2YoloTarget).
func (m *Matcher) Valid(g GT) bool {
	if m.Path == FineGrainedPath {
		return g.W > 0 && g.H > 0 && g.Score > 0
	}
	return !(g.W < 1e-6) && !(g.H < 1e-6)
}

// BestAnchor returns the index into Anchors of the anchor whose shape IoU
// with a box of normalised size w x h is highest (first anchor on ties), or -1
// when no anchor overlaps (w or h not positive). The IoU is inter / union of
// anchor.Overlap with the anchor normalised by the input size, unguarded
// (unlike anchor.ShapeIoU), as Paddle computes it.
func (m *Matcher) BestAnchor(w, h float32, inputH, inputW int) int {
	best, bestIoU := -1, 0.0
	g := anchor.Anchor{float64(w), float64(h)}
	for i, a := range m.Anchors {
		inter, union := anchor.Overlap(g, anchor.Anchor{a.W() / float64(inputW), a.H() / float64(inputH)})
		iou := inter / union
		if iou > bestIoU {
			best, bestIoU = i, iou
		}
	}
	return best
}

// Assign appends to dst[:0] the positives of one image, in GT order, for an
// input of inputH x inputW pixels whose output s has a grid of
// inputH/Strides[s] x inputW/Strides[s] cells. Invalid GTs (see Valid) and
// GTs whose best anchor is in no mask get no assignment. It returns an error
// naming the GT when a label is outside [0, numClasses).
func (m *Matcher) Assign(dst []Assignment, gts []GT, inputH, inputW, numClasses int) ([]Assignment, error) {
	dst = dst[:0]
	for t, g := range gts {
		if !m.Valid(g) {
			continue
		}
		if g.Label < 0 || g.Label >= numClasses {
			return dst, fmt.Errorf("loss: gt %d has label %d, want 0..%d", t, g.Label, numClasses-1)
		}
		best := m.BestAnchor(g.W, g.H, inputH, inputW)
		if best < 0 {
			continue
		}
		for s, mask := range m.Masks {
			for a, id := range mask {
				if id != best {
					continue
				}
				gh, gw := inputH/m.Strides[s], inputW/m.Strides[s]
				fx, fy := float64(g.CX)*float64(gw), float64(g.CY)*float64(gh)
				gi, gj := clampCell(fx, gw), clampCell(fy, gh)
				an := m.Anchors[id]
				dst = append(dst, Assignment{
					GT: t, Scale: s, Anchor: a, AnchorID: id, GI: gi, GJ: gj,
					TX:     float32(fx - float64(gi)),
					TY:     float32(fy - float64(gj)),
					TW:     float32(math.Log(float64(g.W) * float64(inputW) / an.W())),
					TH:     float32(math.Log(float64(g.H) * float64(inputH) / an.H())),
					TScale: float32(2 - float64(g.W)*float64(g.H)),
					Score:  g.Score,
					Label:  g.Label,
				})
			}
		}
	}
	return dst, nil
}

// clampCell is int(f) (truncation, as C's static_cast and Python's int) kept
// inside [0, n-1].
func clampCell(f float64, n int) int {
	i := int(f)
	if i < 0 {
		return 0
	}
	if i > n-1 {
		return n - 1
	}
	return i
}
