package detector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
)

// Load makes cfg's detector (New) and loads every weight and BatchNorm
// statistic from the checkpoint at src, a file or an http(s) URL (downloaded
// once into cacheDir; checkpoint.Open), with LoadCheckpoint: the checkpoint
// must fit the model exactly, but training-only tensors (TrainingOnlyPrefix:
// a student-train run's adapters) are ignored. It is how every tool loads a
// model to run: detect-eval, detect-infer, teacher-dump and the online
// teacher of student-train. The warning is "" or says that the checkpoint's
// model_hash differs from the configuration's although every tensor fits
// (e.g. other anchors or scale_x_y, which change the decoding but not the
// weights' shapes). Errors name the file: unreadable or corrupt checkpoints,
// and a *checkpoint.MismatchError listing the tensors that do not fit (a
// checkpoint of another model).
func Load(ctx context.Context, cfg *config.Config, src, cacheDir string) (d *Detector, warn string, err error) {
	d, err = New(cfg)
	if err != nil {
		if cfg.Path != "" {
			return nil, "", fmt.Errorf("%s: %w", cfg.Path, err)
		}
		return nil, "", err
	}
	ck, err := checkpoint.Open(ctx, src, cacheDir)
	if err != nil {
		return nil, "", err
	}
	dropTrainingOnly(ck)
	if err := d.LoadCheckpoint(ck); err != nil {
		return nil, "", err
	}
	if h, ok := ck.Meta["model_hash"]; ok && h != cfg.ModelHash() {
		warn = fmt.Sprintf("%s: the checkpoint was made with another model configuration (model hash %.12s, the configuration's %.12s); its weights fit, but anchors or decoding settings may differ", src, h, cfg.ModelHash())
	}
	return d, warn, nil
}

// TrainingOnlyPrefix names the tensors a checkpoint may hold that belong to
// training, not to the detector: student-train's learned distillation
// adapters ("distill.pair.<i>.adapter.<j>.weight"). Inference ignores them.
const TrainingOnlyPrefix = "distill."

// dropTrainingOnly removes the TrainingOnlyPrefix tensors from every section of c.
func dropTrainingOnly(c *checkpoint.Checkpoint) {
	for i := range c.Sections {
		c.Sections[i].Tensors = slices.DeleteFunc(c.Sections[i].Tensors, func(t checkpoint.Tensor) bool {
			return strings.HasPrefix(t.Name, TrainingOnlyPrefix)
		})
	}
}
