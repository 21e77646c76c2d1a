package detector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/config"
	"yolodistill/pkg/weights"
)

// Load makes cfg's detector (New) and loads every weight and BatchNorm
// statistic from src, a file, a PaddleDetection weights folder or an http(s)
// URL (downloaded once into cacheDir; weights.Open). src may be our
// checkpoint or any format pkg/weights reads (PaddleDetection tar or folder,
// .pdparams, PyTorch state_dict, safetensors), recognised by its content.
// A checkpoint is loaded with LoadCheckpoint: it must fit the model exactly,
// but training-only tensors (TrainingOnlyPrefix: a student-train run's
// adapters) are ignored. A foreign file must hold the whole model
// (weights.Mapping.Whole): a backbone alone is refused. It is how every tool
// loads a model to run: detect-eval, detect-infer, detect-export,
// teacher-dump and the online teacher of student-train. The warning is "" or
// says that the checkpoint's model_hash differs from the configuration's
// although every tensor fits (e.g. other anchors or scale_x_y, which change
// the decoding but not the weights' shapes). Errors name the file:
// unreadable, truncated or foreign files, and a *checkpoint.MismatchError or
// *weights.MismatchError listing the tensors that do not fit (weights of
// another model).
func Load(ctx context.Context, cfg *config.Config, src, cacheDir string) (d *Detector, warn string, err error) {
	d, err = New(cfg)
	if err != nil {
		if cfg.Path != "" {
			return nil, "", fmt.Errorf("%s: %w", cfg.Path, err)
		}
		return nil, "", err
	}
	f, err := weights.Open(ctx, src, cacheDir)
	if err != nil {
		return nil, "", err
	}
	if f.Checkpoint == nil {
		m, err := d.Map(f)
		if err != nil {
			return nil, "", err
		}
		if err := m.Whole(); err != nil {
			return nil, "", err
		}
		return d, "", d.LoadCheckpoint(m.Checkpoint())
	}
	ck := f.Checkpoint
	dropTrainingOnly(ck)
	if err := d.LoadCheckpoint(ck); err != nil {
		return nil, "", err
	}
	if h, ok := ck.Meta["model_hash"]; ok && h != cfg.ModelHash() {
		warn = fmt.Sprintf("%s: the checkpoint was made with another model configuration (model hash %.12s, the configuration's %.12s); its weights fit, but anchors or decoding settings may differ", src, h, cfg.ModelHash())
	}
	return d, warn, nil
}

// Map lays a weights file onto d's model (weights.Map with the names and
// shapes of d.Tensors); the result says what each tensor gets.
func (d *Detector) Map(f *weights.File) (*weights.Mapping, error) {
	ts := d.Tensors()
	want := make([]checkpoint.TensorSpec, len(ts))
	for i, t := range ts {
		want[i] = checkpoint.TensorSpec{Section: t.Section, Name: t.Name, Shape: t.Shape}
	}
	if f.Checkpoint != nil {
		dropTrainingOnly(f.Checkpoint)
	}
	return weights.Map(d.Spec, want, f)
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
