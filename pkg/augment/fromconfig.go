package augment

import (
	"math"
	"slices"

	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
)

// FromConfig converts data.augment to pkg/dataset's training
// augmentation: PaddleDetection's defaults (DefaultConfig)
// for what the configuration does not say (colour ranges, crop thresholds),
// the configuration's switches, probabilities, sizes and normalisation
// otherwise. The expand fill is truncated to integers, as PaddleDetection's
// RandomExpand casts it to uint8. teacher-dump and student-train must use
// this same conversion so that records replay to the same views.
func FromConfig(cfg *config.Config) Config {
	a := cfg.Data.Augment
	c := DefaultConfig()
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

// MixupEpochs is the number of leading epochs with mixup: data.augment.mixup.epochs
// when mixup is enabled, 0 otherwise.
func MixupEpochs(cfg *config.Config) int {
	if !cfg.Data.Augment.Mixup.Enabled {
		return 0
	}
	return cfg.Data.Augment.Mixup.Epochs
}

// NewTrainLoader is the one training loader of every tool (detect-train,
// student-train online, and teacher-dump, whose views student-train replays):
// src in batches of batch views with the configuration's training
// augmentation (FromConfig), a new shuffled order every epoch and every
// random choice derived from seed and the position, the last partial batch
// dropped, mixup in the first MixupEpochs epochs, data.workers goroutines.
// Two tools that build their loaders here from the same configuration, batch
// size and seed see the same views.
func NewTrainLoader(cfg *config.Config, src dataset.Source, batch int, seed uint64) (*Loader, error) {
	return NewShardLoader(cfg, src, batch, seed, Shard{})
}

// NewShardLoader is NewTrainLoader making only shard's part of every batch
// (data-parallel training): together, the shards of all processes make the
// batches NewTrainLoader makes.
func NewShardLoader(cfg *config.Config, src dataset.Source, batch int, seed uint64, shard Shard) (*Loader, error) {
	return NewLoader(LoaderConfig{
		Shard:       shard,
		Source:      src,
		Augment:     FromConfig(cfg),
		BatchSize:   batch,
		Seed:        seed,
		Shuffle:     true,
		DropLast:    true,
		Train:       true,
		MixupEpochs: MixupEpochs(cfg),
		Workers:     cfg.Data.Workers,
	})
}
