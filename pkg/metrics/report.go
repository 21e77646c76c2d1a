package metrics

import (
	"encoding/json"
	"fmt"
	"io"
)

// ScoreOptions say how Score scores a results file.
type ScoreOptions struct {
	// Metric is "coco" (COCOeval bbox with DefaultCOCOParams) or "voc" (VOC
	// AP at IoU 0.5, PaddleDetection's DetectionMAP).
	Metric string
	// VOCMode and EvaluateDifficult are VOCParams' fields for Metric "voc";
	// Metric "coco" ignores them.
	VOCMode           VOCMode
	EvaluateDifficult bool
}

// Report is a results file scored by one metric, ready to print: a table
// (WriteTable), JSON (JSON) and precision/recall curves (Curves). It is what
// detect-eval prints.
type Report struct {
	// Metric is "coco" or "voc"; COCO, or VOC with VOCNames and VOCMode,
	// holds that metric's result and the other is nil.
	Metric   string
	COCO     *COCOResult
	VOC      *VOCResult
	VOCNames []string // class names in ascending category id (VOCFromCOCO)
	VOCMode  VOCMode
}

// Score scores COCO-form detections against COCO-form ground truth with
// opt.Metric: for "coco" EvaluateCOCO; for "voc" EvaluateVOC on
// VOCFromCOCO's conversion (crowd and ignored objects are difficult). An
// unknown metric, and every error of those functions, is an error.
func Score(gt *GroundTruth, dets []Detection, opt ScoreOptions) (*Report, error) {
	switch opt.Metric {
	case "coco":
		res, err := EvaluateCOCO(gt, dets, DefaultCOCOParams())
		if err != nil {
			return nil, err
		}
		return &Report{Metric: "coco", COCO: res}, nil
	case "voc":
		imgs, vd, names, err := VOCFromCOCO(gt, dets)
		if err != nil {
			return nil, err
		}
		res, err := EvaluateVOC(imgs, vd, VOCParams{NumClasses: len(names), Mode: opt.VOCMode, EvaluateDifficult: opt.EvaluateDifficult})
		if err != nil {
			return nil, err
		}
		return &Report{Metric: "voc", VOC: res, VOCNames: names, VOCMode: opt.VOCMode}, nil
	}
	return nil, fmt.Errorf("metric %q: want coco or voc", opt.Metric)
}

// WriteTable writes the human-readable scores.
//
// COCO: the twelve lines COCOeval.summarize prints (WriteSummary), a blank
// line, a header line, then one line per category: name, category id,
// AP@[.50:.95] and AP@.50 (three decimals; -1 and "(no ground truth)" for a
// category without any).
//
// VOC: "mAP(0.50, <mode>) = 0.1234", a blank line, a header line, then one
// line per class:
// name, non-difficult ground-truth count, counted detections and AP (four
// decimals; -1 with the reason for a class left out of the mean).
//
// Columns are padded to the longest class name (at least 5 characters).
func (r *Report) WriteTable(w io.Writer) error {
	if r.COCO != nil {
		return writeCOCOTable(w, r.COCO)
	}
	return writeVOCTable(w, r.VOC, r.VOCNames, r.VOCMode)
}

// nameWidth is the width of the class column: the longest name, at least 5.
func nameWidth(names []string) int {
	width := 5
	for _, n := range names {
		width = max(width, len(n))
	}
	return width
}

func writeCOCOTable(w io.Writer, res *COCOResult) error {
	if err := res.WriteSummary(w); err != nil {
		return err
	}
	width := nameWidth(res.CategoryNames)
	fmt.Fprintf(w, "\n%-*s  %8s  %12s  %6s\n", width, "class", "category", "AP@[.50:.95]", "AP@.50")
	for k, n := range res.CategoryNames {
		ap := res.ClassAP(k)
		v := fmt.Sprintf("%12.3f  %6.3f", ap, res.ClassAP50(k))
		if ap < 0 {
			v = fmt.Sprintf("%12s  %6s  (no ground truth)", "-1", "-1")
		}
		if _, err := fmt.Fprintf(w, "%-*s  %8d  %s\n", width, n, res.CategoryIDs[k], v); err != nil {
			return err
		}
	}
	return nil
}

func writeVOCTable(w io.Writer, res *VOCResult, names []string, mode VOCMode) error {
	fmt.Fprintf(w, "mAP(0.50, %s) = %.4f\n\n", mode, res.MAP)
	width := nameWidth(names)
	fmt.Fprintf(w, "%-*s  %8s  %8s  %s\n", width, "class", "gt", "dets", "AP")
	for c, n := range names {
		v := fmt.Sprintf("%.4f", res.AP[c])
		switch {
		case res.NumGT[c] == 0:
			v = "-1 (no ground truth; not in the mean)"
		case !res.Valid[c]:
			v = "-1 (no detections; not in the mean, as in PaddleDetection)"
		}
		if _, err := fmt.Fprintf(w, "%-*s  %8d  %8d  %s\n", width, n, res.NumGT[c], res.NumDet[c], v); err != nil {
			return err
		}
	}
	return nil
}

// ClassKeys returns unique JSON keys for class names: the name, or
// "name#id" (ids[i] for names[i]) when the name is empty or repeated.
func ClassKeys(names []string, ids []int64) []string {
	count := map[string]int{}
	for _, n := range names {
		count[n]++
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = n
		if n == "" || count[n] > 1 {
			keys[i] = fmt.Sprintf("%s#%d", n, ids[i])
		}
	}
	return keys
}

type cocoJSON struct {
	Metric   string             `json:"metric"`
	Stats    []float64          `json:"stats"`
	PerClass map[string]float64 `json:"per_class"`
}

type vocJSON struct {
	Metric   string             `json:"metric"`
	MAP      float64            `json:"map"`
	MapType  string             `json:"map_type"`
	PerClass map[string]float64 `json:"per_class"`
}

// JSON returns the scores as indented JSON (two spaces) ending in a newline:
// COCO {"metric": "coco", "stats": [12 numbers in COCOeval order],
// "per_class": {name: AP@[.50:.95]}}; VOC {"metric": "voc", "map": x,
// "map_type": "11point"|"integral", "per_class": {name: AP}}. Per-class keys
// are ClassKeys of the names (VOC: with id = class index + 1); -1 marks a
// class without ground truth, or for VOC one PaddleDetection leaves out of
// the mean.
func (r *Report) JSON() ([]byte, error) {
	var out any
	if res := r.COCO; res != nil {
		o := cocoJSON{Metric: "coco", Stats: res.Stats[:], PerClass: map[string]float64{}}
		for k, key := range ClassKeys(res.CategoryNames, res.CategoryIDs) {
			o.PerClass[key] = res.ClassAP(k)
		}
		out = o
	} else {
		ids := make([]int64, len(r.VOCNames))
		for i := range ids {
			ids[i] = int64(i + 1)
		}
		o := vocJSON{Metric: "voc", MAP: r.VOC.MAP, MapType: r.VOCMode.String(), PerClass: map[string]float64{}}
		for c, key := range ClassKeys(r.VOCNames, ids) {
			o.PerClass[key] = r.VOC.AP[c]
		}
		out = o
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
