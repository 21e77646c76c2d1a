package box

import (
	"math"
	"sort"
)

// Box is a half-open pixel rectangle [X0, X1) x [Y0, Y1).
type Box struct {
	X0, Y0, X1, Y1 float64
}

// FromXYWH returns the box with top-left (x, y), width w and height h (COCO's form).
func FromXYWH(x, y, w, h float64) Box { return Box{x, y, x + w, y + h} }

// FromCXCYWH returns the box centred on (cx, cy) with width w and height h.
func FromCXCYWH(cx, cy, w, h float64) Box {
	return Box{cx - w/2, cy - h/2, cx + w/2, cy + h/2}
}

// W is the width, 0 for an empty box.
func (b Box) W() float64 { return math.Max(0, b.X1-b.X0) }

// H is the height, 0 for an empty box.
func (b Box) H() float64 { return math.Max(0, b.Y1-b.Y0) }

// Area is W*H.
func (b Box) Area() float64 { return b.W() * b.H() }

// Empty reports whether the box has no area.
func (b Box) Empty() bool { return !(b.X1 > b.X0 && b.Y1 > b.Y0) }

// Center returns the centre point.
func (b Box) Center() (cx, cy float64) { return (b.X0 + b.X1) / 2, (b.Y0 + b.Y1) / 2 }

// Intersect returns the overlap of a and b (empty when they do not overlap).
func Intersect(a, b Box) Box {
	return Box{math.Max(a.X0, b.X0), math.Max(a.Y0, b.Y0), math.Min(a.X1, b.X1), math.Min(a.Y1, b.Y1)}
}

// Clip returns b limited to the image [0, w) x [0, h).
func (b Box) Clip(w, h float64) Box {
	return Box{clamp(b.X0, 0, w), clamp(b.Y0, 0, h), clamp(b.X1, 0, w), clamp(b.Y1, 0, h)}
}

func clamp(v, lo, hi float64) float64 { return math.Min(math.Max(v, lo), hi) }

// IoU is the intersection over union of a and b; 0 when both are empty.
func IoU(a, b Box) float64 {
	inter := Intersect(a, b).Area()
	union := a.Area() + b.Area() - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// Scored is a box with a confidence score and a class label.
type Scored struct {
	Box
	Score float64
	Label int
}

// NMS keeps, per label, the highest-scoring boxes whose IoU with every box
// already kept is at most iouThresh, considering only boxes with score >=
// scoreThresh and at most topK candidates per label (topK <= 0: no limit).
// It returns at most keep boxes (keep <= 0: no limit) sorted by descending
// score; ties keep input order. dets is not modified.
func NMS(dets []Scored, scoreThresh, iouThresh float64, topK, keep int) []Scored {
	return NMSWith(dets, IoU, scoreThresh, iouThresh, topK, keep)
}

// NMSWith is NMS with another overlap measure (e.g. PaddlePaddle's
// multiclass_nms with normalized=false, which counts pixels inclusively).
func NMSWith(dets []Scored, iou func(a, b Box) float64, scoreThresh, iouThresh float64, topK, keep int) []Scored {
	byLabel := map[int][]Scored{}
	var labels []int
	for _, d := range dets {
		if !(d.Score >= scoreThresh) {
			continue
		}
		if _, ok := byLabel[d.Label]; !ok {
			labels = append(labels, d.Label)
		}
		byLabel[d.Label] = append(byLabel[d.Label], d)
	}
	sort.Ints(labels)
	var out []Scored
	for _, l := range labels {
		cand := byLabel[l]
		sort.SliceStable(cand, func(i, j int) bool { return cand[i].Score > cand[j].Score })
		if topK > 0 && len(cand) > topK {
			cand = cand[:topK]
		}
		var kept []Scored
		for _, c := range cand {
			ok := true
			for _, k := range kept {
				if iou(c.Box, k.Box) > iouThresh {
					ok = false
					break
				}
			}
			if ok {
				kept = append(kept, c)
			}
		}
		out = append(out, kept...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	if keep > 0 && len(out) > keep {
		out = out[:keep]
	}
	return out
}
