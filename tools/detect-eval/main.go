// Command detect-eval scores object detections: COCO box AP with
// pycocotools' exact semantics, or Pascal VOC mAP at IoU 0.5 as
// PaddleDetection computes it.
//
//	detect-eval --gt GT --dets RESULTS.json [--metric coco|voc] [--map-type 11point|integral]
//	            [--json FILE] [--pr-dir DIR]
//	detect-eval [-c CONFIG] --weights CKPT [--dataset PATH] [--size N] [--results FILE]
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
	"fmt"
	"io"
	"os"
	"strings"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/metrics"
	"yolodistill/pkg/metrics/prplot"
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
	os.Exit(cli.Main(run))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	_, code, done := cli.ParseVersion(name, cli.Describe("Score detections: COCO AP (pycocotools semantics) or VOC mAP (PaddleDetection).",
		"detect-eval --weights out/demo/distilled/model_final.ckpt",
		"detect-eval --gt path/to/instances_val2017.json --dets bbox.json"), nn.BuildInfo(), &g, args, stderr)
	if done {
		return code
	}
	log := cli.Logger{Name: name, W: stderr}
	// Outputs are checked before any work.
	if g.JSON != "" && g.JSON != "-" {
		if err := atomicfile.Check(g.JSON); err != nil {
			return log.Fail(fmt.Errorf("--json: %w", err))
		}
	}
	if g.PRDir != "" {
		if err := atomicfile.CheckDir(g.PRDir); err != nil {
			return log.Fail(fmt.Errorf("--pr-dir: %w", err))
		}
	}
	var err error
	switch {
	case (g.Config != "" || g.Weights != "") && (g.GT != "" || g.Dets != ""):
		log.Printf("error: -c/--weights (run a model) and --gt/--dets (score a results file) are two modes; give one")
		return cli.ExitUsage
	case g.Config != "" || g.Weights != "":
		err = runModel(ctx, &g, stdout, log)
	case g.GT == "" || g.Dets == "":
		log.Printf("error: --gt and --dets are required to score a results file (or --weights CKPT [-c CONFIG] to run a model)")
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
	opt := metrics.ScoreOptions{Metric: g.Metric, EvaluateDifficult: g.Difficult}
	if opt.Metric == "" {
		opt.Metric = "coco"
		if isVOC {
			opt.Metric = "voc"
		}
	}
	if opt.Metric == "voc" {
		mapType := g.MapType
		if mapType == "" {
			mapType = "11point"
		}
		mode, err := metrics.ParseVOCMode(mapType)
		if err != nil {
			return err
		}
		opt.VOCMode = mode
	}
	rep, err := metrics.Score(gt, dets, opt)
	if err != nil {
		return fmt.Errorf("%s: %w", g.Dets, err)
	}
	if g.JSON != "-" {
		if err := rep.WriteTable(stdout); err != nil {
			return err
		}
	}
	if g.JSON != "" {
		data, err := rep.JSON()
		if err != nil {
			return err
		}
		if g.JSON == "-" {
			_, err = stdout.Write(data)
		} else {
			err = atomicfile.WriteBytes(g.JSON, data)
		}
		if err != nil {
			return err
		}
	}
	if g.PRDir != "" {
		curves := rep.Curves()
		if err := prplot.Write(ctx, g.PRDir, curves); err != nil {
			return err
		}
		log.Printf("wrote %d precision/recall curves to %s", len(curves), g.PRDir)
	}
	return nil
}

// readGT reads --gt: COCO JSON (a file or a folder holding
// annotations.json), or a VOC folder with --split and --classes. isVOC says
// which.
func readGT(g *grammar, log cli.Logger) (gt *metrics.GroundTruth, isVOC bool, err error) {
	if _, err := os.Stat(g.GT); err != nil {
		return nil, false, err
	}
	format, err := dataset.DetectFormat(g.GT)
	if err != nil {
		return nil, false, fmt.Errorf("--gt: %w", err)
	}
	opt := dataset.VOCOptions{Split: g.Split}
	if g.Classes != "" {
		for _, c := range strings.Split(g.Classes, ",") {
			opt.Classes = append(opt.Classes, strings.TrimSpace(c))
		}
	}
	gt, warnings, err := metrics.ReadGroundTruth(g.GT, format, opt)
	if warnings > 0 {
		log.Printf("VOC ground truth %s: %d warnings (boxes repaired or dropped; `dataset check` lists them)", g.GT, warnings)
	}
	return gt, format == "voc", err
}
