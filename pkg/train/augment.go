package train

import (
	"math"
	"slices"

	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
)

// AugmentFromConfig converts data.augment to pkg/dataset's training
// augmentation: PaddleDetection's defaults (dataset.DefaultAugmentConfig)
// for what the configuration does not say (colour ranges, crop thresholds),
// the configuration's switches, probabilities, sizes and normalisation
// otherwise. The expand fill is truncated to integers, as PaddleDetection's
// RandomExpand casts it to uint8. teacher-dump and student-train must use
// this same conversion so that records replay to the same views.
func AugmentFromConfig(cfg *config.Config) dataset.AugmentConfig {
	a := cfg.Data.Augment
	c := dataset.DefaultAugmentConfig()
	c.Mixup = a.Mixup.Enabled
	c.MixupAlpha, c.MixupBeta = a.Mixup.Alpha, a.Mixup.Beta
	c.Color = a.ColorDistort
	c.Expand = a.Expand.Enabled
	c.ExpandRatio, c.ExpandProb = a.Expand.Ratio, a.Expand.Prob
	for i, f := range a.Expand.Fill {
		c.ExpandFill[i] = float32(math.Floor(f))
	}
	c.Crop = a.Crop
	c.Flip, c.FlipProb = a.Flip, a.FlipProb
	c.Sizes = slices.Clone(a.MultiScale)
	c.RandomInterp = a.RandomInterp
	c.Mean, c.Std = a.Mean, a.Std
	c.MaxBoxes = a.MaxBoxes
	return c
}
