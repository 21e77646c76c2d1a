package train

import (
	"context"
	"encoding/json"
	"fmt"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
)

// Source yields the training batches in a fixed order. Every batch of a run
// has the same number of images (the input size may change per batch).
// Batch.Items[i].Targets are in input pixels (half-open xyxy) with the mixup
// weight as Score.
type Source interface {
	// Next returns the next batch; ctx's error when ctx ends first.
	Next(ctx context.Context) (*augment.Batch, error)
	// State is the position of the batch Next returns next, as opaque bytes
	// (checkpoints store it in State.DataOrder); opening the source again at
	// this state continues exactly where this one stands.
	State() []byte
	// Close stops the source's goroutines.
	Close()
	// Images is the number of images in the split the batches come from:
	// the base of data.skip_limit (Batch.Skipped lists the images that could
	// not be loaded).
	Images() int
}

// OpenSource opens a run's Source at a state saved by Source.State (nil:
// the beginning), making shard's part of every batch (data-parallel
// training; the zero Shard is the whole batch): Batch.Items are the slots
// shard.Range(Batch.Total) of the global batch, and State is the global
// position, the same on every rank.
type OpenSource func(ctx context.Context, cfg *config.Config, state []byte, shard augment.Shard) (Source, error)

// loaderSource is the default Source: the configuration's training split
// through a shuffling, augmenting augment.Loader.
type loaderSource struct {
	l  *augment.Loader
	n  int
	sp *dataset.Split
}

// Problems are the problems the reader found in the split (warnings: boxes
// repaired or dropped); the loop reports them in one line.
func (s loaderSource) Problems() dataset.Problems { return s.sp.Problems }

// loaderState is the JSON form of a loader position in checkpoints.
type loaderState struct {
	Epoch int `json:"epoch"`
	Batch int `json:"batch"`
}

// OpenLoader is the default OpenSource: data.train_split of the
// configuration's dataset (dataset.OpenSplit) through a augment.Loader with the
// training augmentation (augment.FromConfig), a new shuffled order every epoch,
// the last partial batch dropped, and every random choice derived from
// train.seed and the position, so a state restores it exactly.
func OpenLoader(ctx context.Context, cfg *config.Config, state []byte, shard augment.Shard) (Source, error) {
	sp, err := dataset.OpenSplit(cfg, cfg.Data.TrainSplit, dataset.SplitOptions{})
	if err != nil {
		return nil, err
	}
	var pos augment.Position
	if len(state) > 0 {
		var st loaderState
		if err := json.Unmarshal(state, &st); err != nil {
			return nil, fmt.Errorf("data order position %q: %w", state, err)
		}
		pos = augment.Position{Epoch: st.Epoch, Batch: st.Batch}
	}
	l, err := augment.NewShardLoader(cfg, sp.Source, cfg.Train.BatchSize, uint64(cfg.Train.Seed), shard)
	if err != nil {
		return nil, fmt.Errorf("data: split %q of %s: %w", cfg.Data.TrainSplit, sp.Where, err)
	}
	if err := l.Start(ctx, pos); err != nil {
		return nil, fmt.Errorf("data: split %q of %s: %w", cfg.Data.TrainSplit, sp.Where, err)
	}
	return loaderSource{l, sp.Source.Len(), sp}, nil
}

func (s loaderSource) Next(ctx context.Context) (*augment.Batch, error) { return s.l.Next(ctx) }

func (s loaderSource) State() []byte {
	p := s.l.Position()
	b, _ := json.Marshal(loaderState{Epoch: p.Epoch, Batch: p.Batch})
	return b
}

func (s loaderSource) Close() { s.l.Close() }

func (s loaderSource) Images() int { return s.n }
