package detector

import (
	"context"
	"fmt"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/box"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/metrics"
	"yolodistill/pkg/yolo"
	"yolodistill/pkg/yolo/decode"
)

// EvalInterp is the resize interpolation of evaluation and inference:
// PaddleDetection's YOLOv3 eval/test readers use ResizeImage with interp 2
// (cv2.INTER_CUBIC), stretching the image to size x size (aspect ratio not
// kept), then NormalizeImage (is_scale, ImageNet mean/std) and Permute.
const EvalInterp = augment.InterpCubic

// EvalAugment is the preprocessing of evaluation and inference views: no
// augmentation, only the configuration's normalisation (data.augment.mean and
// std on pixels scaled to [0, 1]).
func EvalAugment(cfg *config.Config) augment.Config {
	return augment.Config{Mean: cfg.Data.Augment.Mean, Std: cfg.Data.Augment.Std}
}

// EvalOptions tune DetectSplit and Evaluate. Zero fields take the
// configuration's values.
type EvalOptions struct {
	Size      int // square input size in pixels, a multiple of 32 (eval.size)
	BatchSize int // images per forward pass (eval.batch_size)
	Workers   int // image decoding goroutines (data.workers)
	// Progress, when set, is called after every batch with the number of
	// images done and the total.
	Progress func(done, total int)
	// OnSkip, when set, is called once for every image that could not be
	// loaded and was left out (dataset.Skippable), in sample order.
	OnSkip func(dataset.Skip)
}

func (o EvalOptions) withDefaults(cfg *config.Config) EvalOptions {
	if o.Size <= 0 {
		o.Size = cfg.Eval.Size
	}
	if o.BatchSize <= 0 {
		o.BatchSize = max(1, cfg.Eval.BatchSize)
	}
	if o.Workers <= 0 {
		o.Workers = cfg.Data.Workers
	}
	return o
}

// DetectImages runs the detector on images of any size: each is stretched
// to size x size (EvalInterp) and normalised as EvalAugment says, the batch
// is run through Predict, and the detections are decoded with the
// configuration's NMS (eval.nms) and mapped back to each image's own pixels
// (half-open boxes, clipped to the image; labels index data.classes),
// sorted by descending score. size <= 0 means eval.size.
func (d *Detector) DetectImages(imgs []*dataset.Image, size int) ([][]box.Scored, error) {
	if size <= 0 {
		size = d.Config.Eval.Size
	}
	if err := yolo.CheckInputSize(size, size); err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, nil
	}
	if err := CheckMemory(d.Spec, len(imgs), size, size, false, int64(d.Params.ReusableBytes(false, len(imgs)))); err != nil {
		return nil, err
	}
	input, err := d.EvalInput(imgs, size)
	if err != nil {
		return nil, err
	}
	pls := make([]decode.Placement, len(imgs))
	for i, img := range imgs {
		pls[i] = decode.Stretch(img.W, img.H, size, size)
	}
	return d.Detect(input, len(imgs), size, size, pls)
}

// EvalInput returns the network input ([N, 3, size, size], normalised) of
// imgs as evaluation sees them: each resized to size x size with the
// configuration's eval transform (EvalAugment, EvalInterp).
func (d *Detector) EvalInput(imgs []*dataset.Image, size int) ([]float32, error) {
	aug := EvalAugment(d.Config)
	plane := 3 * size * size
	input := make([]float32, len(imgs)*plane)
	for i, img := range imgs {
		rec := augment.EvalRecord(int64(i), size, EvalInterp)
		if _, err := aug.Apply(&rec, img, nil, nil, nil, input[i*plane:(i+1)*plane]); err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
	}
	return input, nil
}

// DetectSplit runs the detector over every image of sp (loaded by
// sp.Source on opt.Workers goroutines, in sample order) and returns its
// detections in COCO form: ImageID = Sample.ID, CategoryID = label + 1 (the
// numbering of metrics.GroundTruthFromDataset), BBox [x, y, w, h] in the
// original image's pixels. The last batch is padded to the full batch size
// so that one graph serves every batch. An image that cannot be loaded
// (missing, truncated, corrupt: dataset.Skippable) is left out, reported
// through opt.OnSkip and returned in skipped; more of them than
// data.skip_limit allows is an error listing them. Cancelling ctx stops it
// with ctx's error; any other load error stops it with an error naming the
// file.
func DetectSplit(ctx context.Context, d *Detector, sp *dataset.Split, opt EvalOptions) (dets []metrics.Detection, skipped []dataset.Skip, err error) {
	opt = opt.withDefaults(d.Config)
	if err := yolo.CheckInputSize(opt.Size, opt.Size); err != nil {
		return nil, nil, err
	}
	n := sp.Source.Len()
	if n == 0 {
		return nil, nil, fmt.Errorf("eval: split %q of %s has no images", sp.Name, sp.Where)
	}
	bs := min(opt.BatchSize, n)
	if err := CheckMemory(d.Spec, bs, opt.Size, opt.Size, false, int64(d.Params.ReusableBytes(false, bs))); err != nil {
		return nil, nil, err
	}
	ld, err := augment.NewLoader(augment.LoaderConfig{
		Source: sp.Source, Augment: EvalAugment(d.Config), BatchSize: bs,
		EvalSize: opt.Size, EvalInterp: EvalInterp, Workers: opt.Workers,
	})
	if err != nil {
		return nil, nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := ld.Start(lctx, augment.Position{}); err != nil {
		return nil, nil, err
	}
	defer ld.Close()
	tally := SkipTally(d.Config, n)
	plane := 3 * opt.Size * opt.Size
	padded := make([]float32, bs*plane)
	done := 0
	for b := 0; b < ld.BatchesPerEpoch(); b++ {
		batch, err := ld.Next(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, s := range tally.Add(batch.Skipped) {
			if opt.OnSkip != nil {
				opt.OnSkip(s)
			}
		}
		if err := tally.Err(); err != nil {
			return nil, nil, fmt.Errorf("split %q of %s: %w", sp.Name, sp.Where, err)
		}
		count := len(batch.Items)
		done += count + len(batch.Skipped)
		if count > 0 {
			input := batch.Images
			if count < bs {
				copy(padded, batch.Images)
				clear(padded[count*plane:])
				input = padded
			}
			pls := make([]decode.Placement, count)
			for k, it := range batch.Items {
				s := &sp.DS.Samples[it.Index]
				pls[k] = decode.Stretch(s.Width, s.Height, opt.Size, opt.Size)
			}
			outs, shapes, err := d.Predict(input, bs, opt.Size, opt.Size)
			if err != nil {
				return nil, nil, err
			}
			res, err := d.Decode(outs, shapes, opt.Size, opt.Size, pls)
			if err != nil {
				return nil, nil, err
			}
			for k, it := range batch.Items {
				id := sp.DS.Samples[it.Index].ID
				for _, sd := range res[k] {
					dets = append(dets, metrics.Detection{
						ImageID: id, CategoryID: int64(sd.Label + 1), Score: sd.Score,
						BBox: [4]float64{sd.Box.X0, sd.Box.Y0, sd.Box.X1 - sd.Box.X0, sd.Box.Y1 - sd.Box.Y0},
					})
				}
			}
		}
		if opt.Progress != nil {
			opt.Progress(done, n)
		}
	}
	return dets, tally.Skips(), nil
}

// SkipTally is a tally of the images skipped from a split of n images under
// the configuration's data.skip_limit.
func SkipTally(cfg *config.Config, n int) *augment.SkipTally {
	return &augment.SkipTally{Allowed: augment.AllowedSkips(cfg.Data.SkipLimit, n), Split: n,
		Fraction: cfg.Data.SkipLimit, Key: "data.skip_limit"}
}

// EvalResult is the outcome of Evaluate.
type EvalResult struct {
	// Metric is eval.metric: "voc" or "coco".
	Metric string
	// Score is the headline number: VOC mAP at IoU 0.5 (eval.map_type) or
	// COCO AP at IoU .50:.95 (Stats[0]).
	Score float64
	// VOC (with VOCNames, the class names in label order) or COCO holds the
	// full result of the metric that ran; the other is nil.
	VOC      *metrics.VOCResult
	VOCMode  metrics.VOCMode
	VOCNames []string
	COCO     *metrics.COCOResult
	// GT is the split's ground truth in COCO form and Detections the model's
	// detections against it (a COCO results file; see DetectSplit).
	GT         *metrics.GroundTruth
	Detections []metrics.Detection
	// Skipped are the images that could not be loaded: they are left out of
	// GT and of the score (see DetectSplit).
	Skipped []dataset.Skip
}

// Evaluate runs the detector over the split (DetectSplit) and scores the
// detections with the configuration's metric: eval.metric "voc" (VOC AP at
// IoU 0.5, eval.map_type 11point or integral, difficult objects excluded, as
// PaddleDetection) or "coco" (COCOeval bbox, difficult objects ignored). It is
// the same computation as `detect-eval --gt --dets` on the detections it
// returns, with the ground truth of the images that could not be loaded left
// out (EvalResult.Skipped).
func Evaluate(ctx context.Context, d *Detector, sp *dataset.Split, opt EvalOptions) (*EvalResult, error) {
	dets, skipped, err := DetectSplit(ctx, d, sp, opt)
	if err != nil {
		return nil, err
	}
	r, err := Score(d.Config, sp.DS.Without(skipped), dets)
	if err != nil {
		return nil, err
	}
	r.Skipped = skipped
	return r, nil
}

// Score scores COCO-form detections (see DetectSplit) against a dataset with
// the configuration's metric; see Evaluate.
func Score(cfg *config.Config, ds *dataset.Dataset, dets []metrics.Detection) (*EvalResult, error) {
	gt := metrics.GroundTruthFromDataset(ds)
	r := &EvalResult{Metric: cfg.Eval.Metric, GT: gt, Detections: dets}
	opt := metrics.ScoreOptions{Metric: cfg.Eval.Metric}
	if cfg.Eval.Metric == "voc" {
		mode, err := metrics.ParseVOCMode(cfg.Eval.MapType)
		if err != nil {
			return nil, fmt.Errorf("eval.map_type: %w", err)
		}
		opt.VOCMode = mode
	}
	rep, err := metrics.Score(gt, dets, opt)
	if err != nil {
		return nil, fmt.Errorf("eval.metric: %w", err)
	}
	r.VOC, r.VOCMode, r.VOCNames, r.COCO = rep.VOC, rep.VOCMode, rep.VOCNames, rep.COCO
	if rep.COCO != nil {
		r.Score = rep.COCO.Stats[0]
	} else {
		r.Score = rep.VOC.MAP
	}
	return r, nil
}
