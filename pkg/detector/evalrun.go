package detector

import (
	"bytes"
	"context"
	"time"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/metrics"
)

// EvalRun says where RunEval finds the model and data and where it writes
// and reports.
type EvalRun struct {
	Weights string // checkpoint: a path or an http(s) URL (Load)
	Dataset string // dataset folder replacing data.root ("" keeps it)
	Size    int    // square input size, a multiple of 32 (0: eval.size)
	// Results is where the detections are written, atomically, as a COCO
	// results file (metrics.WriteCOCOResults); "" writes none.
	Results string
	// Logf, when set, gets one line per message (no trailing newline):
	// warnings, the split and its size, progress every tenth of the split,
	// skipped images, the throughput and the results file written.
	Logf func(format string, args ...any)
}

func (r EvalRun) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

// RunEval loads cfg's detector from r.Weights (Load), runs it over cfg's
// eval split (data.eval_split, opened with dataset.OpenSplit; DetectSplit
// at r.Size) and writes the detections to r.Results. It returns the
// split's ground truth in COCO form (metrics.GroundTruthFromDataset) with
// the images that could not be loaded left out, and the detections against
// it: scoring them gives the numbers detect-eval prints (and Evaluate's,
// with the configuration's metric). Cancelling ctx stops it with ctx's
// error.
func RunEval(ctx context.Context, cfg *config.Config, r EvalRun) (*metrics.GroundTruth, []metrics.Detection, error) {
	det, warn, err := Load(ctx, cfg, r.Weights, "")
	if err != nil {
		return nil, nil, err
	}
	if warn != "" {
		r.logf("warning: %s", warn)
	}
	sp, err := dataset.OpenSplit(cfg, cfg.Data.EvalSplit, dataset.SplitOptions{Root: r.Dataset})
	if err != nil {
		return nil, nil, err
	}
	if sum := sp.Problems.Summary(); sum != "" {
		r.logf("warning: %s: %s", sp.Where, sum)
	}
	size := r.Size
	if size == 0 {
		size = cfg.Eval.Size
	}
	r.logf("evaluating %s on split %q of %s: %d images at %d px", r.Weights, sp.Name, sp.Where, len(sp.DS.Samples), size)
	start := time.Now()
	lastTenth := 0
	dets, skipped, err := DetectSplit(ctx, det, sp, EvalOptions{Size: size, Progress: func(done, total int) {
		if tenth := done * 10 / total; tenth > lastTenth && done < total {
			lastTenth = tenth
			r.logf("%d/%d images", done, total)
		}
	}, OnSkip: func(s dataset.Skip) {
		r.logf("warning: skipping an image that cannot be loaded: %v", s.Err)
	}})
	if err != nil {
		return nil, nil, err
	}
	el := time.Since(start).Seconds()
	ran := len(sp.DS.Samples) - len(skipped)
	r.logf("%d images, %d detections in %.1f s (%.1f images/s)", ran, len(dets), el, float64(ran)/max(el, 1e-9))
	if len(skipped) > 0 {
		r.logf("warning: %d of %d images could not be loaded and are left out of the scores (and of the ground truth)", len(skipped), len(sp.DS.Samples))
	}
	if r.Results != "" {
		var data bytes.Buffer
		if err := metrics.WriteCOCOResults(&data, dets); err != nil {
			return nil, nil, err
		}
		if err := atomicfile.WriteBytes(r.Results, data.Bytes()); err != nil {
			return nil, nil, err
		}
		r.logf("wrote %s", r.Results)
	}
	return metrics.GroundTruthFromDataset(sp.DS.Without(skipped)), dets, nil
}
