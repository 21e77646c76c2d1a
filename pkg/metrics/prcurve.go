package metrics

import (
	"fmt"
	"strings"
)

// PRSeries is one line of a precision/recall plot: Precision[i] at
// Recall[i] (equal lengths; a non-finite precision is drawn as 0).
type PRSeries struct {
	Label             string
	Recall, Precision []float64
}

// PRCurve is one class's precision/recall plot; pkg/metrics/prplot draws
// it to File (a base name) in a folder.
type PRCurve struct {
	File, Title string
	Series      []PRSeries
	Points      bool // mark every point (raw curves with few points)
}

// fileSafe keeps letters, digits, '-' and '_' of a class name and turns
// every other rune into '_'.
func fileSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Curves returns the report's precision/recall plots, one per class, in
// class order, named "pr_<id>_<name>.png" (id zero-padded to three digits;
// name with every rune but letters, digits, '-' and '_' turned into '_').
//
// COCO: per category with ground truth (id = category id), the
// interpolated precision at the 101 recall thresholds (area all, the largest
// maxDets) for IoU .50, .75 and the mean over the IoU thresholds.
//
// VOC: per class in the mean (id = class index + 1), the raw
// precision/recall points in descending score order, each point marked.
func (r *Report) Curves() []PRCurve {
	if r.COCO != nil {
		return cocoCurves(r.COCO)
	}
	return vocCurves(r.VOC, r.VOCNames)
}

func cocoCurves(res *COCOResult) []PRCurve {
	p := &res.Params
	var out []PRCurve
	for k, n := range res.CategoryNames {
		if res.ClassAP(k) < 0 {
			continue
		}
		c := PRCurve{File: fmt.Sprintf("pr_%03d_%s.png", res.CategoryIDs[k], fileSafe(n)),
			Title: fmt.Sprintf("%s (id %d): AP@[.50:.95] = %.3f", n, res.CategoryIDs[k], res.ClassAP(k))}
		mean := make([]float64, len(p.RecallThresholds))
		for t, thr := range p.IoUThresholds {
			pr := res.PRCurve(k, t)
			for r, v := range pr {
				mean[r] += v / float64(len(p.IoUThresholds))
			}
			if thr == 0.5 || thr == 0.75 {
				c.Series = append(c.Series, PRSeries{fmt.Sprintf("IoU=%.2f", thr), p.RecallThresholds, pr})
			}
		}
		c.Series = append(c.Series, PRSeries{"mean IoU=.50:.95", p.RecallThresholds, mean})
		out = append(out, c)
	}
	return out
}

func vocCurves(res *VOCResult, names []string) []PRCurve {
	var out []PRCurve
	for c, n := range names {
		if !res.Valid[c] {
			continue
		}
		out = append(out, PRCurve{File: fmt.Sprintf("pr_%03d_%s.png", c+1, fileSafe(n)),
			Title:  fmt.Sprintf("%s: AP@.50 = %.4f", n, res.AP[c]),
			Series: []PRSeries{{"IoU=0.50", res.Recall[c], res.Precision[c]}}, Points: true})
	}
	return out
}
