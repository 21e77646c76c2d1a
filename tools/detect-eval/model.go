package main

// The model-running mode:
//
//	detect-eval [-c CONFIG] --weights CKPT [-o KEY=VALUE] [--dataset PATH] [--size N]
//	            [--results FILE] [--json FILE] [--pr-dir DIR] [--metric coco|voc]
//	            [--map-type 11point|integral] [--evaluate-difficult]
//
// Without -c the configuration stored in the checkpoint is used (the one its
// training run used; detector.LoadConfig), -o applied to it; weights that
// carry none (a URL, another framework's file) need -c (exit 2).
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
// default bbox.json beside --json FILE, else beside the checkpoint (skipped
// with a warning when that folder cannot be written, or the checkpoint is a
// URL). Every output path is checked before the model runs. --size (or
// eval.size) must fit this machine's memory at eval.batch_size (checked
// first). A checkpoint URL is downloaded with --connect-timeout and
// --idle-timeout.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/metrics"
	"yolodistill/pkg/yolo"
)

// modelFlags are the flags of the model-running mode (embedded in grammar).
type modelFlags struct {
	Config   string   `short:"c" placeholder:"FILE" help:"Model mode: configuration (YAML) (default: the one stored in the --weights checkpoint); run the model over its eval split and score it."`
	Override []string `short:"o" sep:"none" placeholder:"KEY=VALUE" help:"Model mode: override a configuration key (repeatable)."`
	Weights  string   `placeholder:"CKPT" help:"Model mode: the model's weights, path or http(s) URL (our checkpoint, a PaddleDetection tar or folder, .pdparams, PyTorch .pth/.pt or .safetensors)."`
	Dataset  string   `placeholder:"PATH" help:"Model mode: dataset folder, replacing data.root."`
	Size     int      `placeholder:"N" help:"Model mode: square input size, a multiple of 32 (default: eval.size)."`
	Results  string   `placeholder:"FILE" help:"Model mode: write the detections (COCO results JSON) here (default: bbox.json beside --json FILE, else beside the checkpoint)."`
	cli.NetFlags
}

// resultsPath is where the model mode writes its COCO results file, checked
// before any work: --results FILE must be writable (an error otherwise);
// the default, bbox.json beside --json FILE or else beside a local
// checkpoint, is skipped with a warning when it cannot be written there (a
// read-only folder, a checkpoint given as a URL): the scores do not depend
// on it. "" means no results file.
func resultsPath(f *modelFlags, jsonOut string, log cli.Logger) (string, error) {
	if f.Results != "" {
		if err := atomicfile.Check(f.Results); err != nil {
			return "", fmt.Errorf("--results: %w", err)
		}
		return f.Results, nil
	}
	var p string
	switch {
	case jsonOut != "" && jsonOut != "-":
		p = filepath.Join(filepath.Dir(jsonOut), "bbox.json")
	case checkpoint.IsURL(f.Weights):
		log.Printf("warning: the detections are not saved (the checkpoint is a URL, so there is no folder beside it): give --results FILE to save them")
		return "", nil
	default:
		p = filepath.Join(filepath.Dir(f.Weights), "bbox.json")
	}
	if err := atomicfile.Check(p); err != nil {
		log.Printf("warning: the detections are not saved: %v (give --results FILE to save them elsewhere)", err)
		return "", nil
	}
	return p, nil
}

// modelDetections runs the model mode up to the detections: flag checks,
// configuration, then detector.RunEval (checkpoint, eval split, inference,
// results file). It returns the split's ground truth in COCO form, the
// detections and the configuration (its metric and VOC map type).
func modelDetections(ctx context.Context, f *modelFlags, jsonOut string, log cli.Logger) (*metrics.GroundTruth, []metrics.Detection, *config.Config, string, error) {
	if f.Weights == "" {
		return nil, nil, nil, "", cli.UsageError{Err: errors.New("-c needs --weights CKPT")}
	}
	if err := f.NetFlags.Check(); err != nil {
		return nil, nil, nil, "", err
	}
	ctx = checkpoint.WithFetch(ctx, checkpoint.FetchOptions{ConnectTimeout: f.ConnectTimeout, IdleTimeout: f.IdleTimeout, Logf: log.Printf})
	if f.Size != 0 {
		if err := yolo.CheckInputSize(f.Size, f.Size); err != nil {
			return nil, nil, nil, "", cli.UsageError{Err: fmt.Errorf("--size: %w", err)}
		}
	}
	cfg, err := detector.LoadConfig(f.Config, f.Weights, f.Override)
	if err != nil {
		return nil, nil, nil, "", err
	}
	// The input size must fit this machine's memory: checked before anything
	// is loaded (the flag is a usage error; eval.size blames its source).
	if f.Size != 0 {
		if err := detector.CheckSize(cfg, cfg.Eval.BatchSize, f.Size, false); err != nil {
			return nil, nil, nil, "", cli.Usagef("--size %d: %w", f.Size, err)
		}
	} else if err := detector.CheckSizes(nil, cfg, "eval.size", []int{cfg.Eval.Size}, cfg.Eval.BatchSize, false); err != nil {
		return nil, nil, nil, "", err
	}
	results, err := resultsPath(f, jsonOut, log)
	if err != nil {
		return nil, nil, nil, "", err
	}
	gt, dets, err := detector.RunEval(ctx, cfg, detector.EvalRun{Weights: f.Weights, Dataset: f.Dataset, Size: f.Size,
		Results: results, Logf: log.Printf})
	if err != nil {
		return nil, nil, nil, "", err
	}
	return gt, dets, cfg, results, nil
}

// runModel is the model mode: detections (modelDetections), then the same
// report as the --gt/--dets mode, with eval.metric and eval.map_type unless
// --metric/--map-type were given.
func runModel(ctx context.Context, g *grammar, stdout io.Writer, log cli.Logger) error {
	gt, dets, cfg, results, err := modelDetections(ctx, &g.modelFlags, g.JSON, log)
	if err != nil {
		return err
	}
	if g.Metric == "" {
		g.Metric = cfg.Eval.Metric
	}
	if g.MapType == "" {
		g.MapType = cfg.Eval.MapType
	}
	g.Dets = results // names the detections in error messages
	if g.Dets == "" {
		g.Dets = "the detections of " + g.Weights
	}
	return report(ctx, g, gt, dets, cfg.Eval.Metric == "voc", stdout, log)
}
