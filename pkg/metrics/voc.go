package metrics

import (
	"fmt"
	"math"
	"slices"

	"yolodistill/pkg/box"
)

// VOCMode selects how VOC AP integrates the precision/recall curve.
type VOCMode int

const (
	// VOC11Point is PaddleDetection's "11point": the mean of the highest
	// precision at recall >= 0, 0.1, ..., 1 (VOC2007's metric).
	VOC11Point VOCMode = iota
	// VOCIntegral is PaddleDetection's "integral": the sum of precision times
	// recall step over the raw curve (no monotone envelope).
	VOCIntegral
)

// String returns PaddleDetection's name for the mode.
func (m VOCMode) String() string {
	if m == VOCIntegral {
		return "integral"
	}
	return "11point"
}

// ParseVOCMode parses "11point" or "integral".
func ParseVOCMode(s string) (VOCMode, error) {
	switch s {
	case "11point":
		return VOC11Point, nil
	case "integral":
		return VOCIntegral, nil
	}
	return 0, fmt.Errorf("VOC mAP mode %q: want 11point or integral", s)
}

// VOCObject is one ground-truth object.
type VOCObject struct {
	Box       box.Box // half-open pixel xyxy (see the package comment for +1)
	Label     int     // class index in [0, NumClasses)
	Difficult bool    // excluded from the ground-truth count; its matches are ignored
}

// VOCImage is the ground truth of one image.
type VOCImage struct {
	Objects []VOCObject
}

// VOCDetection is one detection.
type VOCDetection struct {
	Image int     // index into the []VOCImage slice
	Label int     // class index
	Box   box.Box // half-open pixel xyxy
	Score float64
}

// VOCParams configure EvaluateVOC. The zero IoUThreshold means 0.5.
type VOCParams struct {
	NumClasses        int
	IoUThreshold      float64 // a match needs IoU strictly greater than this
	Mode              VOCMode
	EvaluateDifficult bool // count difficult objects like the others
	// PlusOne computes areas as (x1-x0+1)*(y1-y0+1), PaddleDetection's formula
	// for un-normalised boxes, for boxes given in VOC's inclusive pixel
	// coordinates. Leave it false for half-open boxes (the equivalent form).
	PlusOne bool
}

// VOCResult is the outcome of EvaluateVOC.
type VOCResult struct {
	// MAP is the mean of AP over the valid classes; 0 when none is valid.
	MAP float64
	// AP per class; -1 for a class PaddleDetection leaves out of the mean:
	// no (non-difficult) ground truth, or no detection at all.
	AP     []float64
	Valid  []bool
	NumGT  []int // non-difficult ground truth (all, with EvaluateDifficult)
	NumDet []int // detections counted as true or false positives
	// Precision and Recall per class: the raw curve, one point per counted
	// detection in descending score order.
	Precision, Recall [][]float64
}

// EvaluateVOC computes VOC AP per class and their mean exactly as
// PaddleDetection's DetectionMAP (release/0.3, ppdet/utils/map_utils.py):
//
//   - Per image, detections are taken in descending score order (stable: equal
//     scores keep their input order, which for NMS output is PaddleDetection's
//     order too). Each goes to the ground truth of its class with the highest
//     IoU (the first one on ties), whether already matched or difficult.
//   - If that IoU > IoUThreshold: a difficult object (unless EvaluateDifficult)
//     makes the detection ignored; else the first detection is a true positive
//     and later ones are false positives (duplicates). Otherwise it is a false
//     positive.
//   - Per class, all images' records are sorted by descending score, stably
//     (ties keep image order, then order in the image), and precision and
//     recall are accumulated, then integrated by Mode.
//
// One difference: PaddleDetection skips a whole evaluation batch that has no
// detection at all, so that batch's ground truth is not counted; here every
// image's ground truth is counted (as with batch size 1 and at least one
// detection per image).
//
// It returns an error for labels out of range, detections on an image index
// out of range, and non-finite scores.
func EvaluateVOC(gt []VOCImage, dets []VOCDetection, p VOCParams) (*VOCResult, error) {
	C := p.NumClasses
	if C <= 0 {
		return nil, fmt.Errorf("VOC evaluation: NumClasses %d must be positive", C)
	}
	thr := p.IoUThreshold
	if thr == 0 {
		thr = 0.5
	}
	for i, im := range gt {
		for j, o := range im.Objects {
			if o.Label < 0 || o.Label >= C {
				return nil, fmt.Errorf("VOC ground truth: image %d object %d: label %d outside [0, %d)", i, j, o.Label, C)
			}
		}
	}
	// detections grouped by image (counting sort keeps input order)
	start := make([]int, len(gt)+1)
	for j, d := range dets {
		if d.Image < 0 || d.Image >= len(gt) {
			return nil, fmt.Errorf("VOC detection %d: image index %d outside [0, %d)", j, d.Image, len(gt))
		}
		if d.Label < 0 || d.Label >= C {
			return nil, fmt.Errorf("VOC detection %d: label %d outside [0, %d)", j, d.Label, C)
		}
		if math.IsNaN(d.Score) || math.IsInf(d.Score, 0) {
			return nil, fmt.Errorf("VOC detection %d: score %v is not finite", j, d.Score)
		}
		start[d.Image+1]++
	}
	for i := range gt {
		start[i+1] += start[i]
	}
	order := make([]int, len(dets))
	fill := slices.Clone(start[:len(gt)])
	for j, d := range dets {
		order[fill[d.Image]] = j
		fill[d.Image]++
	}

	type rec struct {
		score float64
		tp    bool
	}
	recs := make([][]rec, C)
	res := &VOCResult{AP: make([]float64, C), Valid: make([]bool, C), NumGT: make([]int, C), NumDet: make([]int, C),
		Precision: make([][]float64, C), Recall: make([][]float64, C)}
	var visited []bool
	for i, im := range gt {
		for _, o := range im.Objects {
			if p.EvaluateDifficult || !o.Difficult {
				res.NumGT[o.Label]++
			}
		}
		seg := order[start[i]:start[i+1]]
		slices.SortStableFunc(seg, func(x, y int) int { return cmpDesc(dets[x].Score, dets[y].Score) })
		visited = growB(visited, len(im.Objects))
		clear(visited)
		for _, j := range seg {
			d := &dets[j]
			best, bestIoU := -1, -1.0
			for g, o := range im.Objects {
				if o.Label != d.Label {
					continue
				}
				if ov := paddleJaccard(d.Box, o.Box, p.PlusOne); ov > bestIoU {
					best, bestIoU = g, ov
				}
			}
			switch {
			case bestIoU > thr:
				if p.EvaluateDifficult || !im.Objects[best].Difficult {
					recs[d.Label] = append(recs[d.Label], rec{d.Score, !visited[best]})
					visited[best] = true
				}
			default:
				recs[d.Label] = append(recs[d.Label], rec{d.Score, false})
			}
		}
	}
	sum, valid := 0.0, 0
	for c := 0; c < C; c++ {
		rs := recs[c]
		res.NumDet[c] = len(rs)
		res.AP[c] = -1
		if res.NumGT[c] == 0 || len(rs) == 0 {
			continue
		}
		slices.SortStableFunc(rs, func(x, y rec) int { return cmpDesc(x.score, y.score) })
		prec := make([]float64, len(rs))
		recl := make([]float64, len(rs))
		tp, fp := 0, 0
		for i, r := range rs {
			if r.tp {
				tp++
			} else {
				fp++
			}
			prec[i] = float64(tp) / float64(tp+fp)
			recl[i] = float64(tp) / float64(res.NumGT[c])
		}
		res.Precision[c], res.Recall[c] = prec, recl
		var ap float64
		if p.Mode == VOCIntegral {
			ap = integralAP(prec, recl)
		} else {
			ap = elevenPointAP(prec, recl)
		}
		res.AP[c], res.Valid[c] = ap, true
		sum += ap
		valid++
	}
	if valid > 0 {
		res.MAP = sum / float64(valid)
	}
	return res, nil
}

// paddleJaccard is map_utils.jaccard_overlap: 0 when the boxes do not
// overlap (touching counts as not overlapping), else intersection over union
// with areas (x1-x0+n)*(y1-y0+n), n = 1 when plusOne.
func paddleJaccard(pred, gt box.Box, plusOne bool) float64 {
	if pred.X0 >= gt.X1 || pred.X1 <= gt.X0 || pred.Y0 >= gt.Y1 || pred.Y1 <= gt.Y0 {
		return 0
	}
	n := 0.0
	if plusOne {
		n = 1
	}
	area := func(x0, y0, x1, y1 float64) float64 { return (x1 - x0 + n) * (y1 - y0 + n) }
	inter := area(max(pred.X0, gt.X0), max(pred.Y0, gt.Y0), min(pred.X1, gt.X1), min(pred.Y1, gt.Y1))
	pa := area(pred.X0, pred.Y0, pred.X1, pred.Y1)
	ga := area(gt.X0, gt.Y0, gt.X1, gt.Y1)
	return inter / (pa + ga - inter)
}

// elevenPointAP is DetectionMAP's "11point" loop, kept literally (including
// how it carries a maximum down to the next recall level).
func elevenPointAP(prec, rec []float64) float64 {
	var maxP [11]float64
	start := len(prec) - 1
	for j := 10; j >= 0; j-- {
		for i := start; i >= 0; i-- {
			if rec[i] < float64(j)/10 {
				start = i
				if j > 0 {
					maxP[j-1] = maxP[j]
				}
				break
			}
			if maxP[j] < prec[i] {
				maxP[j] = prec[i]
			}
		}
	}
	s := 0.0
	for _, v := range maxP {
		s += v
	}
	return s / 11
}

// integralAP is DetectionMAP's "integral": sum of precision times recall step,
// skipping steps of at most 1e-6.
func integralAP(prec, rec []float64) float64 {
	ap, prev := 0.0, 0.0
	for i := range prec {
		if gap := math.Abs(rec[i] - prev); gap > 1e-6 {
			ap += prec[i] * gap
			prev = rec[i]
		}
	}
	return ap
}

// VOCFromCOCO converts COCO-form ground truth and detections for EvaluateVOC:
// images in gt's order, classes in ascending category id (names returned),
// boxes [x, y, w, h] -> half-open [x, x+w) x [y, y+h), and an object is
// difficult when it is a crowd or has Ignore set (COCO files converted from
// VOC commonly store "difficult" as ignore; note the COCO reader leaves Ignore
// false). Detections on unknown images or categories are an error.
func VOCFromCOCO(gt *GroundTruth, dets []Detection) ([]VOCImage, []VOCDetection, []string, error) {
	cats := slices.Clone(gt.Categories)
	slices.SortFunc(cats, func(a, b Category) int { return cmpInt64(a.ID, b.ID) })
	names := make([]string, len(cats))
	catIdx := make(map[int64]int, len(cats))
	for k, c := range cats {
		names[k] = c.Name
		catIdx[c.ID] = k
	}
	imgIdx := make(map[int64]int, len(gt.Images))
	for i, im := range gt.Images {
		imgIdx[im.ID] = i
	}
	imgs := make([]VOCImage, len(gt.Images))
	for _, a := range gt.Annotations {
		i, ok := imgIdx[a.ImageID]
		if !ok {
			return nil, nil, nil, fmt.Errorf("annotation id %d: image id %d is not among the images", a.ID, a.ImageID)
		}
		k, ok := catIdx[a.CategoryID]
		if !ok {
			return nil, nil, nil, fmt.Errorf("annotation id %d: category id %d is not among the categories", a.ID, a.CategoryID)
		}
		imgs[i].Objects = append(imgs[i].Objects, VOCObject{
			Box: box.FromXYWH(a.BBox[0], a.BBox[1], a.BBox[2], a.BBox[3]), Label: k, Difficult: a.Crowd || a.Ignore})
	}
	vd := make([]VOCDetection, len(dets))
	for j, d := range dets {
		i, ok := imgIdx[d.ImageID]
		if !ok {
			return nil, nil, nil, fmt.Errorf("detection %d: image id %d is not in the ground truth", j, d.ImageID)
		}
		k, ok := catIdx[d.CategoryID]
		if !ok {
			return nil, nil, nil, fmt.Errorf("detection %d: category id %d is not in the ground truth", j, d.CategoryID)
		}
		vd[j] = VOCDetection{Image: i, Label: k, Box: box.FromXYWH(d.BBox[0], d.BBox[1], d.BBox[2], d.BBox[3]), Score: d.Score}
	}
	return imgs, vd, names, nil
}
