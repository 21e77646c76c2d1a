package main

// The model-running mode:
//
//	detect-eval -c CONFIG --weights CKPT [-o KEY=VALUE] [--dataset PATH] [--size N]
//	            [--results FILE] [--json FILE] [--pr-dir DIR] [--metric coco|voc]
//	            [--map-type 11point|integral] [--evaluate-difficult]
//
// runs the detector over the configuration's eval split (data.eval_split of
// data.format: a VOC folder, a COCO set, or the synthetic set; --dataset
// replaces data.root), each image stretched to N x N pixels (--size, default
// eval.size; cubic interpolation, data.augment mean/std) and decoded with
// eval.nms, and scores the detections with eval.metric (and eval.map_type) unless
// --metric/--map-type say otherwise. stdout, --json and --pr-dir are as in the
// --gt/--dets mode: the numbers are the ones `detect-eval --gt DATASET --dets
// RESULTS` gives on the results file this mode writes. The results file (a
// COCO results array; image_id = the dataset's image id, for VOC the position
// in the split list; category_id = label + 1) goes to --results FILE, by
// default bbox.json beside --json FILE, else beside the checkpoint.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/metrics"
	"yolodistill/pkg/yolo"
)

// modelFlags are the flags of the model-running mode (embedded in grammar).
type modelFlags struct {
	Config   string   `short:"c" placeholder:"FILE" help:"Model mode: configuration (YAML); run the model over its eval split and score it."`
	Override []string `short:"o" sep:"none" placeholder:"KEY=VALUE" help:"Model mode: override a configuration key (repeatable)."`
	Weights  string   `placeholder:"CKPT" help:"Model mode: checkpoint with the model's weights."`
	Dataset  string   `placeholder:"PATH" help:"Model mode: dataset folder, replacing data.root."`
	Size     int      `placeholder:"N" help:"Model mode: square input size, a multiple of 32 (default: eval.size)."`
	Results  string   `placeholder:"FILE" help:"Model mode: write the detections (COCO results JSON) here (default: bbox.json beside --json FILE, else beside the checkpoint)."`
}

// resultsPath is where the model mode writes its COCO results file.
func resultsPath(f *modelFlags, jsonOut string) string {
	switch {
	case f.Results != "":
		return f.Results
	case jsonOut != "" && jsonOut != "-":
		return filepath.Join(filepath.Dir(jsonOut), "bbox.json")
	}
	return filepath.Join(filepath.Dir(f.Weights), "bbox.json")
}

// modelDetections runs the model mode up to the detections: configuration,
// checkpoint, eval split, inference, results file. It returns the split's
// ground truth in COCO form, the detections, the metric and VOC map type
// the configuration asks for.
func modelDetections(ctx context.Context, f *modelFlags, jsonOut string, log cli.Logger) (*metrics.GroundTruth, []metrics.Detection, *config.Config, error) {
	if f.Weights == "" {
		return nil, nil, nil, cli.UsageError{Err: errors.New("-c needs --weights CKPT")}
	}
	if f.Size != 0 {
		if err := yolo.CheckInputSize(f.Size, f.Size); err != nil {
			return nil, nil, nil, cli.UsageError{Err: fmt.Errorf("--size: %w", err)}
		}
	}
	cfg, err := config.Load(f.Config, f.Override)
	if err != nil {
		return nil, nil, nil, err
	}
	det, warn, err := detector.Load(ctx, cfg, f.Weights, "")
	if err != nil {
		return nil, nil, nil, err
	}
	if warn != "" {
		log.Printf("warning: %s", warn)
	}
	sp, err := dataset.OpenSplit(cfg, cfg.Data.EvalSplit, dataset.SplitOptions{Root: f.Dataset})
	if err != nil {
		return nil, nil, nil, err
	}
	if n := sp.Problems.Count(dataset.Warning); n > 0 {
		log.Printf("%s: %d warnings (boxes repaired or dropped; `dataset check` lists them)", sp.Where, n)
	}
	size := f.Size
	if size == 0 {
		size = cfg.Eval.Size
	}
	log.Printf("evaluating %s on split %q of %s: %d images at %d px", f.Weights, sp.Name, sp.Where, len(sp.DS.Samples), size)
	start := time.Now()
	lastTenth := 0
	dets, skipped, err := detector.DetectSplit(ctx, det, sp, detector.EvalOptions{Size: size, Progress: func(done, total int) {
		if tenth := done * 10 / total; tenth > lastTenth && done < total {
			lastTenth = tenth
			log.Printf("%d/%d images", done, total)
		}
	}, OnSkip: func(s dataset.Skip) {
		log.Printf("warning: skipping an image that cannot be loaded: %v", s.Err)
	}})
	if err != nil {
		return nil, nil, nil, err
	}
	el := time.Since(start).Seconds()
	ran := len(sp.DS.Samples) - len(skipped)
	log.Printf("%d images, %d detections in %.1f s (%.1f images/s)", ran, len(dets), el, float64(ran)/max(el, 1e-9))
	if len(skipped) > 0 {
		log.Printf("warning: %d of %d images could not be loaded and are left out of the scores (and of the ground truth)", len(skipped), len(sp.DS.Samples))
	}
	var data bytes.Buffer
	if err := metrics.WriteCOCOResults(&data, dets); err != nil {
		return nil, nil, nil, err
	}
	rp := resultsPath(f, jsonOut)
	if err := atomicfile.WriteBytes(rp, data.Bytes()); err != nil {
		return nil, nil, nil, err
	}
	log.Printf("wrote %s", rp)
	return metrics.GroundTruthFromDataset(sp.DS.Without(skipped)), dets, cfg, nil
}

// runModel is the model mode: detections (modelDetections), then the same
// report as the --gt/--dets mode, with eval.metric and eval.map_type unless
// --metric/--map-type were given.
func runModel(ctx context.Context, g *grammar, stdout io.Writer, log cli.Logger) error {
	gt, dets, cfg, err := modelDetections(ctx, &g.modelFlags, g.JSON, log)
	if err != nil {
		return err
	}
	if g.Metric == "" {
		g.Metric = cfg.Eval.Metric
	}
	if g.MapType == "" {
		g.MapType = cfg.Eval.MapType
	}
	g.Dets = resultsPath(&g.modelFlags, g.JSON) // names the detections in error messages
	return report(ctx, g, gt, dets, cfg.Eval.Metric == "voc", stdout, log)
}
