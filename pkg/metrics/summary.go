package metrics

import (
	"fmt"
	"io"
	"math"
)

// statSpec is one line of COCOeval.summarize for boxes.
type statSpec struct {
	ap     bool
	iouThr float64 // NaN: all thresholds
	area   string
	maxDet int // index into MaxDets
}

var cocoStatSpecs = [12]statSpec{
	{true, math.NaN(), "all", 2},
	{true, .5, "all", 2},
	{true, .75, "all", 2},
	{true, math.NaN(), "small", 2},
	{true, math.NaN(), "medium", 2},
	{true, math.NaN(), "large", 2},
	{false, math.NaN(), "all", 0},
	{false, math.NaN(), "all", 1},
	{false, math.NaN(), "all", 2},
	{false, math.NaN(), "small", 2},
	{false, math.NaN(), "medium", 2},
	{false, math.NaN(), "large", 2},
}

// maxDetsOf returns the maxDets value a stat line uses: MaxDets[i], or the
// largest when there are fewer than three.
func (p *COCOParams) maxDetsOf(i int) int {
	if i >= len(p.MaxDets) {
		i = len(p.MaxDets) - 1
	}
	return p.MaxDets[i]
}

// summarize is COCOeval.summarize's _summarize: the mean of the precision (or
// recall) entries > -1 selected by IoU threshold (exact float equality, as
// np.where does), area label and maxDets value; -1 if none.
func (res *COCOResult) summarize(s statSpec) float64 {
	p := &res.Params
	maxDets := p.maxDetsOf(s.maxDet)
	var ts, as, ms []int
	for t, thr := range p.IoUThresholds {
		if math.IsNaN(s.iouThr) || thr == s.iouThr {
			ts = append(ts, t)
		}
	}
	for a, l := range p.AreaLabels {
		if l == s.area {
			as = append(as, a)
		}
	}
	for m, v := range p.MaxDets {
		if v == maxDets {
			ms = append(ms, m)
		}
	}
	sum, n := 0.0, 0
	add := func(v float64) {
		if v > -1 {
			sum += v
			n++
		}
	}
	K, T, R := len(res.CategoryIDs), len(p.IoUThresholds), len(p.RecallThresholds)
	A, M := len(p.AreaRanges), len(p.MaxDets)
	// numpy pairs the area and maxDets index lists; both have one entry
	// with COCOeval's parameters.
	pairs := min(len(as), len(ms))
	for k := 0; k < K; k++ {
		for j := 0; j < pairs; j++ {
			base := (k*A+as[j])*M + ms[j]
			for _, t := range ts {
				if s.ap {
					for _, v := range res.Precision[(base*T+t)*R : (base*T+t+1)*R] {
						add(v)
					}
				} else {
					add(res.Recall[base*T+t])
				}
			}
		}
	}
	if n == 0 {
		return -1
	}
	return sum / float64(n)
}

func (res *COCOResult) summarizeStats() [12]float64 {
	var st [12]float64
	for i, s := range cocoStatSpecs {
		st[i] = res.summarize(s)
	}
	return st
}

// WriteSummary writes the twelve lines COCOeval.summarize prints, in its
// format (" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505").
func (res *COCOResult) WriteSummary(w io.Writer) error {
	p := &res.Params
	for i, s := range cocoStatSpecs {
		title, typ := "Average Precision", "(AP)"
		if !s.ap {
			title, typ = "Average Recall", "(AR)"
		}
		iou := fmt.Sprintf("%0.2f:%0.2f", p.IoUThresholds[0], p.IoUThresholds[len(p.IoUThresholds)-1])
		if !math.IsNaN(s.iouThr) {
			iou = fmt.Sprintf("%0.2f", s.iouThr)
		}
		if _, err := fmt.Fprintf(w, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
			title, typ, iou, s.area, p.maxDetsOf(s.maxDet), res.Stats[i]); err != nil {
			return err
		}
	}
	return nil
}
