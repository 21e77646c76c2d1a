// Command detect-eval scores object detections: COCO box AP with
// pycocotools' exact semantics, or Pascal VOC mAP at IoU 0.5 as
// PaddleDetection computes it.
//
//	detect-eval --gt GT --dets RESULTS.json [--metric coco|voc] [--map-type 11point|integral]
//	            [--json FILE] [--pr-dir DIR]
//	detect-eval -c CONFIG --weights CKPT [--dataset PATH] [--size N] [--results FILE]
//	            [--json FILE] [--pr-dir DIR]
//
// The second form runs a model over its configuration's eval split first and
// writes its detections as a COCO results file; see model.go.
//
// GT is COCO instances JSON (a file, or a folder holding annotations.json), or a VOC folder (Annotations/, ImageSets/Main/,
// JPEGImages/) read with pkg/dataset (--split, --classes). For a VOC folder,
// image ids are the positions in the split list (dataset's Sample.ID) and
// category ids are class index + 1, as `dataset convert` writes them; VOC
// "difficult" objects are excluded (VOC) or ignored (COCO). RESULTS.json is a
// COCO results file: a JSON array of {"image_id", "category_id", "bbox":
// [x, y, w, h], "score"}. An empty array is valid: every AP and recall is 0
// where ground truth exists (pycocotools refuses empty results).
//
// stdout gets the table: for COCO the twelve lines COCOeval.summarize prints,
// then AP@[.50:.95] per class; for VOC the mAP and AP per class. --json FILE
// also writes {"metric": "coco", "stats": [12 numbers in COCOeval order],
// "per_class": {name: AP}} or {"metric": "voc", "map": x, "map_type": ...,
// "per_class": {name: AP}} atomically (-1: no ground truth, or for VOC a class
// PaddleDetection leaves out of the mean); "--json -" writes the JSON to stdout
// instead of the table. --pr-dir DIR writes one precision/recall PNG per class.
//
// The metric defaults to voc for a VOC folder and coco for a JSON file.
// Exit codes: 0 ok, 1 bad input or failure (message on stderr), 2 usage.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/metrics"
	"yolodistill/pkg/nn"
)

const name = "detect-eval"

type grammar struct {
	// Scoring a results file.
	GT      string `name:"gt" placeholder:"GT" help:"Ground truth: COCO instances JSON, or a VOC folder."`
	Dets    string `name:"dets" placeholder:"RESULTS.json" help:"Detections: a COCO results JSON array."`
	Metric  string `name:"metric" enum:",coco,voc" default:"" placeholder:"coco|voc" help:"coco or voc (default: voc for a VOC folder, coco for JSON)."`
	MapType string `name:"map-type" enum:",11point,integral" default:"" placeholder:"11point|integral" help:"VOC AP integration: 11point or integral (PaddleDetection's map_type; default 11point, with -c the configuration's eval.map_type)."`
	// Difficult counts VOC difficult objects as ordinary ones (PaddleDetection's evaluate_difficult).
	Difficult bool   `name:"evaluate-difficult" help:"VOC: count difficult objects like the others."`
	Split     string `name:"split" default:"test" help:"VOC folder: ImageSets/Main/<split>.txt (comma-separated for several)."`
	Classes   string `name:"classes" help:"VOC folder: comma-separated class list (default: the sorted object names)."`
	JSON      string `name:"json" placeholder:"FILE" help:"Also write the scores as JSON to FILE ('-': stdout, instead of the table)."`
	PRDir     string `name:"pr-dir" placeholder:"DIR" help:"Write a precision/recall curve PNG per class into DIR."`

	// The model-running mode (-c CONFIG --weights CKPT), model.go.
	modelFlags `embed:""`
}

func main() {
	nn.TuneGC()
	ctx, stop := cli.SignalContext()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	_, code, done := cli.Parse(name, "Score detections: COCO AP (pycocotools semantics) or VOC mAP (PaddleDetection).", &g, args, stderr)
	if done {
		return code
	}
	log := cli.Logger{Name: name, W: stderr}
	var err error
	switch {
	case g.Config != "" && (g.GT != "" || g.Dets != ""):
		log.Printf("error: -c (run a model) and --gt/--dets (score a results file) are two modes; give one")
		return cli.ExitUsage
	case g.Config != "":
		err = runModel(ctx, &g, stdout, log)
	case g.GT == "" || g.Dets == "":
		log.Printf("error: --gt and --dets are required to score a results file (or -c CONFIG --weights CKPT to run a model)")
		return cli.ExitUsage
	default:
		err = score(ctx, &g, stdout, log)
	}
	if err != nil {
		return log.Fail(err)
	}
	return cli.ExitOK
}

// score runs the --gt/--dets mode.
func score(ctx context.Context, g *grammar, stdout io.Writer, log cli.Logger) error {
	gt, isVOC, err := readGT(g, log)
	if err != nil {
		return err
	}
	dets, err := metrics.ReadCOCOResults(g.Dets, gt)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return report(ctx, g, gt, dets, isVOC, stdout, log)
}

// report scores dets against gt and writes the table (stdout), --json and
// --pr-dir outputs; both modes end here. isVOC picks the default metric.
func report(ctx context.Context, g *grammar, gt *metrics.GroundTruth, dets []metrics.Detection, isVOC bool, stdout io.Writer, log cli.Logger) error {
	metric := g.Metric
	if metric == "" {
		metric = "coco"
		if isVOC {
			metric = "voc"
		}
	}
	table := stdout
	if g.JSON == "-" {
		table = io.Discard
	}
	var out any
	var curves []prCurve
	switch metric {
	case "coco":
		res, err := metrics.EvaluateCOCO(gt, dets, metrics.DefaultCOCOParams())
		if err != nil {
			return fmt.Errorf("%s: %w", g.Dets, err)
		}
		if err := writeCOCOTable(table, res); err != nil {
			return err
		}
		out, curves = cocoJSON(res), cocoCurves(res)
	case "voc":
		mapType := g.MapType
		if mapType == "" {
			mapType = "11point"
		}
		mode, err := metrics.ParseVOCMode(mapType)
		if err != nil {
			return err
		}
		imgs, vd, names, err := metrics.VOCFromCOCO(gt, dets)
		if err != nil {
			return fmt.Errorf("%s: %w", g.Dets, err)
		}
		res, err := metrics.EvaluateVOC(imgs, vd, metrics.VOCParams{NumClasses: len(names), Mode: mode, EvaluateDifficult: g.Difficult})
		if err != nil {
			return fmt.Errorf("%s: %w", g.Dets, err)
		}
		if err := writeVOCTable(table, res, names, mode); err != nil {
			return err
		}
		out, curves = vocJSON(res, names, mode), vocCurves(res, names)
	}
	if g.JSON != "" {
		data, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		data = append(data, '\n')
		if g.JSON == "-" {
			if _, err := stdout.Write(data); err != nil {
				return err
			}
		} else if err := atomicfile.WriteBytes(g.JSON, data); err != nil {
			return err
		}
	}
	if g.PRDir != "" {
		if err := writeCurves(ctx, g.PRDir, curves); err != nil {
			return err
		}
		log.Printf("wrote %d precision/recall curves to %s", len(curves), g.PRDir)
	}
	return nil
}

// readGT reads COCO JSON, or a VOC folder through pkg/dataset.
func readGT(g *grammar, log cli.Logger) (*metrics.GroundTruth, bool, error) {
	st, err := os.Stat(g.GT)
	if err != nil {
		return nil, false, err
	}
	format, err := dataset.DetectFormat(g.GT)
	if err != nil {
		return nil, false, fmt.Errorf("--gt: %w", err)
	}
	if format == "coco" {
		path := g.GT
		if st.IsDir() {
			path = filepath.Join(g.GT, dataset.COCOAnnotationFile)
		}
		gt, err := metrics.ReadCOCOGroundTruth(path)
		return gt, false, err
	}
	opt := dataset.VOCOptions{Split: g.Split, Images: dataset.ImageNone}
	if g.Classes != "" {
		for _, c := range strings.Split(g.Classes, ",") {
			opt.Classes = append(opt.Classes, strings.TrimSpace(c))
		}
	}
	ds, ps := dataset.ReadVOC(g.GT, opt)
	if err := ps.Err(); err != nil {
		return nil, true, fmt.Errorf("VOC ground truth %s: %w", g.GT, err)
	}
	if n := ps.Count(dataset.Warning); n > 0 {
		log.Printf("VOC ground truth %s: %d warnings (boxes repaired or dropped; `dataset check` lists them)", g.GT, n)
	}
	return metrics.GroundTruthFromDataset(ds), true, nil
}

// classKeys returns unique JSON keys for the class names: the name, or
// "name#id" when it is empty or repeated.
func classKeys(names []string, ids []int64) []string {
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

func writeCOCOTable(w io.Writer, res *metrics.COCOResult) error {
	if err := res.WriteSummary(w); err != nil {
		return err
	}
	width := 5
	for _, n := range res.CategoryNames {
		width = max(width, len(n))
	}
	fmt.Fprintf(w, "\n%-*s  %8s  AP@[.50:.95]\n", width, "class", "category")
	for k, n := range res.CategoryNames {
		ap := res.ClassAP(k)
		v := fmt.Sprintf("%.3f", ap)
		if ap < 0 {
			v = "-1 (no ground truth)"
		}
		if _, err := fmt.Fprintf(w, "%-*s  %8d  %s\n", width, n, res.CategoryIDs[k], v); err != nil {
			return err
		}
	}
	return nil
}

type cocoOut struct {
	Metric   string             `json:"metric"`
	Stats    []float64          `json:"stats"`
	PerClass map[string]float64 `json:"per_class"`
}

func cocoJSON(res *metrics.COCOResult) cocoOut {
	o := cocoOut{Metric: "coco", Stats: res.Stats[:], PerClass: map[string]float64{}}
	for k, key := range classKeys(res.CategoryNames, res.CategoryIDs) {
		o.PerClass[key] = res.ClassAP(k)
	}
	return o
}

func writeVOCTable(w io.Writer, res *metrics.VOCResult, names []string, mode metrics.VOCMode) error {
	fmt.Fprintf(w, "mAP(0.50, %s) = %.4f\n\n", mode, res.MAP)
	width := 5
	for _, n := range names {
		width = max(width, len(n))
	}
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

type vocOut struct {
	Metric   string             `json:"metric"`
	MAP      float64            `json:"map"`
	MapType  string             `json:"map_type"`
	PerClass map[string]float64 `json:"per_class"`
}

func vocJSON(res *metrics.VOCResult, names []string, mode metrics.VOCMode) vocOut {
	ids := make([]int64, len(names))
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	o := vocOut{Metric: "voc", MAP: res.MAP, MapType: mode.String(), PerClass: map[string]float64{}}
	for c, key := range classKeys(names, ids) {
		o.PerClass[key] = res.AP[c]
	}
	return o
}

// finiteOr returns v, or d when v is not finite.
func finiteOr(v, d float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return d
	}
	return v
}
