package detector

import (
	"fmt"
	"slices"
	"strings"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
)

// Load makes cfg's detector (New) and loads every weight and
// BatchNorm statistic from the checkpoint file at path (LoadCheckpoint: the
// checkpoint must fit the model exactly). It returns the checkpoint too
// (its tensors are copied into the detector; callers may drop it) and a
// warning, "" when none: the checkpoint's model_hash differs from the
// configuration's although every tensor fits (e.g. other anchors or
// scale_x_y, which change the decoding but not the weights' shapes). Errors
// name the file: unreadable or corrupt checkpoints, and a
// *checkpoint.MismatchError listing the tensors that do not fit (a
// checkpoint of another model).
func Load(cfg *config.Config, path string) (*Detector, *checkpoint.Checkpoint, string, error) {
	d, err := New(cfg)
	if err != nil {
		if cfg.Path != "" {
			return nil, nil, "", fmt.Errorf("%s: %w", cfg.Path, err)
		}
		return nil, nil, "", err
	}
	ck, err := checkpoint.Load(path)
	if err != nil {
		return nil, nil, "", err
	}
	dropTrainingOnly(ck)
	if err := d.LoadCheckpoint(ck); err != nil {
		return nil, nil, "", err
	}
	warn := ""
	if h, ok := ck.Meta["model_hash"]; ok && h != cfg.ModelHash() {
		warn = fmt.Sprintf("%s: the checkpoint was made with another model configuration (model hash %s, the configuration's %s); its weights fit, but anchors or decoding settings may differ", path, h, cfg.ModelHash())
	}
	return d, ck, warn, nil
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
