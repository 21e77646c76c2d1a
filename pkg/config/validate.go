package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"yolodistill/pkg/anchor"
)

// Allowed values of the enumerated keys.
var (
	Backbones    = []string{"mobilenet_v1", "resnet34", "resnet18"}
	Layouts      = []string{"torch", "paddle"}
	DataFormats  = []string{"voc", "coco", "synth"}
	Metrics      = []string{"voc", "coco"}
	MapTypes     = []string{"11point", "integral"}
	DistillLoss  = []string{"none", "l2", "fine_grained", "fsp", "soft_label", "pairs"}
	PairKinds    = []string{"l2", "l1", "cosine", "kl"}
	SynthSplits  = []string{"train", "val", "test"}
	SizeMultiple = 32
)

// Validate checks the merged configuration. It returns nil or the
// errors.Join of one *Error per problem, each naming c.Path and the key.
func (c *Config) Validate() error { return c.validate(nil) }

type validator struct {
	file  string
	byKey map[string]string // override key -> "-o key=value"
	errs  []error
}

func (v *validator) add(key, format string, args ...any) {
	v.addCause([]string{key}, key, format, args...)
}

// addCause is add for a problem that the keys in causes (key among them)
// may have introduced: an override that set any of them is blamed.
func (v *validator) addCause(causes []string, key, format string, args ...any) {
	file := v.file
	// Blame the override that set this key (or a section above it).
	for _, ck := range causes {
		for ok, arg := range v.byKey {
			if ck == ok || strings.HasPrefix(ck, ok+".") {
				file = arg
			}
		}
	}
	v.errs = append(v.errs, &Error{File: file, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Errorf returns an *Error about key, blamed as validation blames its
// errors: on the -o override that set key (or a section above it), which
// makes it a usage error (exit 2), else on the configuration file. Checks
// made after Load (an input size too large for this machine's memory) use
// it.
func (c *Config) Errorf(key, format string, args ...any) *Error {
	v := &validator{file: c.Path, byKey: c.overrides}
	if v.file == "" {
		v.file = "config"
	}
	v.add(key, format, args...)
	return v.errs[0].(*Error)
}

func (v *validator) oneOf(key, val string, allowed []string) {
	if !slices.Contains(allowed, val) {
		v.add(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
	}
}

func (v *validator) positive(key string, x float64) {
	if !(x > 0) || math.IsInf(x, 0) {
		v.add(key, "must be > 0, got %g", x)
	}
}

func (v *validator) nonNeg(key string, x float64) {
	if !(x >= 0) || math.IsInf(x, 0) {
		v.add(key, "must be >= 0, got %g", x)
	}
}

func (v *validator) unit(key string, x float64) {
	if !(x >= 0 && x <= 1) {
		v.add(key, "must be in [0, 1], got %g", x)
	}
}

func (v *validator) atLeast(key string, x, lo int) {
	if x < lo {
		v.add(key, "must be >= %d, got %d", lo, x)
	}
}

func (v *validator) size(key string, s int) {
	if s < SizeMultiple || s%SizeMultiple != 0 {
		v.add(key, "input size %d must be a positive multiple of %d", s, SizeMultiple)
	}
}

func (c *Config) validate(byKey map[string]string) error {
	v := &validator{file: c.Path, byKey: byKey}
	if v.file == "" {
		v.file = "config"
	}
	m := &c.Model
	if m.Architecture != "YOLOv3" {
		v.add("model.architecture", "%q is not supported; want YOLOv3", m.Architecture)
	}
	v.oneOf("model.backbone", m.Backbone, Backbones)
	if m.Layout == "torch" {
		m.Layout = "" // the default has one spelling, so ModelHash cannot tell them apart
	}
	if m.Layout != "" {
		v.oneOf("model.layout", m.Layout, Layouts)
	}
	v.positive("model.backbone_width", m.BackboneWidth)
	v.positive("model.head_width", m.HeadWidth)
	v.atLeast("model.num_classes", m.NumClasses, 1)
	for _, e := range anchor.Validate(m.Anchors, m.AnchorMasks, anchor.DefaultStrides()) {
		v.add("model."+e.Key(), "%s", e.Msg)
	}
	if m.ObjBiasInit != nil && (math.IsNaN(*m.ObjBiasInit) || math.IsInf(*m.ObjBiasInit, 0)) {
		v.add("model.obj_bias_init", "must be finite")
	}

	l := &c.Loss
	v.unit("loss.ignore_thresh", l.IgnoreThresh)
	v.positive("loss.scale_x_y", l.ScaleXY)

	d := &c.Data
	v.oneOf("data.format", d.Format, DataFormats)
	if (d.Format == "voc" || d.Format == "coco") && d.Root == "" {
		v.addCause([]string{"data.root", "data.format"}, "data.root", "empty; the %s dataset folder is required", d.Format)
	}
	if d.TrainSplit == "" {
		v.add("data.train_split", "empty")
	}
	if len(d.Classes) > 0 && len(d.Classes) != m.NumClasses {
		v.addCause([]string{"data.classes", "model.num_classes"}, "data.classes", "%d classes listed but model.num_classes is %d", len(d.Classes), m.NumClasses)
	}
	seenClass := map[string]int{}
	for i, name := range d.Classes {
		key := fmt.Sprintf("data.classes.%d", i)
		if strings.TrimSpace(name) == "" {
			v.add(key, "empty class name")
		} else if j, dup := seenClass[name]; dup {
			v.add(key, "class %q repeats data.classes.%d", name, j)
		}
		seenClass[name] = i
	}
	v.atLeast("data.max_image_side", d.MaxImageSide, 0)
	v.atLeast("data.max_objects", d.MaxObjects, 0)
	v.atLeast("data.max_annotation_mb", d.MaxAnnotationMB, 0)
	v.unit("data.skip_limit", d.SkipLimit)
	v.atLeast("data.workers", d.Workers, 1)
	a := &d.Augment
	if a.Mixup.Enabled {
		v.atLeast("data.augment.mixup.epochs", a.Mixup.Epochs, 0)
		v.positive("data.augment.mixup.alpha", a.Mixup.Alpha)
		v.positive("data.augment.mixup.beta", a.Mixup.Beta)
	}
	if a.Expand.Enabled {
		if !(a.Expand.Ratio >= 1) || math.IsInf(a.Expand.Ratio, 0) {
			v.add("data.augment.expand.ratio", "must be >= 1, got %g", a.Expand.Ratio)
		}
		v.unit("data.augment.expand.prob", a.Expand.Prob)
		for i, f := range a.Expand.Fill {
			if !(f >= 0 && f <= 255) {
				v.add(fmt.Sprintf("data.augment.expand.fill.%d", i), "must be in [0, 255], got %g", f)
			}
		}
	}
	if len(a.MultiScale) == 0 {
		v.add("data.augment.multi_scale", "empty; list at least one input size")
	}
	for i, s := range a.MultiScale {
		v.size(fmt.Sprintf("data.augment.multi_scale.%d", i), s)
	}
	for i := range 3 {
		v.positive(fmt.Sprintf("data.augment.std.%d", i), a.Std[i])
		if math.IsNaN(a.Mean[i]) || math.IsInf(a.Mean[i], 0) {
			v.add(fmt.Sprintf("data.augment.mean.%d", i), "must be finite")
		}
	}
	if a.Flip {
		v.unit("data.augment.flip_prob", a.FlipProb)
	}
	v.atLeast("data.augment.max_boxes", a.MaxBoxes, 0)
	if d.Format == "synth" {
		s := &d.Synth
		v.atLeast("data.synth.num_images", s.NumImages, 1)
		if s.ImageSize < 64 || s.ImageSize > 8192 {
			v.add("data.synth.image_size", "must be in 64..8192, got %d", s.ImageSize)
		}
		v.atLeast("data.synth.min_objects", s.MinObjects, 0)
		if s.MaxObjects < s.MinObjects {
			v.add("data.synth.max_objects", "%d is below data.synth.min_objects %d", s.MaxObjects, s.MinObjects)
		}
		v.atLeast("data.synth.min_object", s.MinObject, 0)
		v.atLeast("data.synth.max_object", s.MaxObject, 0)
		if s.MaxObject > 0 && s.MaxObject < s.MinObject {
			v.add("data.synth.max_object", "%d is below data.synth.min_object %d", s.MaxObject, s.MinObject)
		}
		v.atLeast("data.synth.seed", int(s.Seed), 0)
		for _, k := range []struct{ key, split string }{{"data.train_split", d.TrainSplit}, {"data.eval_split", d.EvalSplit}} {
			if k.split != "" && !slices.Contains(SynthSplits, k.split) {
				v.add(k.key, "%q is not a synthetic split (%s)", k.split, strings.Join(SynthSplits, ", "))
			}
		}
	}

	t := &c.Train
	v.atLeast("train.max_iters", t.MaxIters, 0) // 0: write the initialised model without a step
	v.atLeast("train.batch_size", t.BatchSize, 1)
	v.positive("train.base_lr", t.BaseLR)
	if !(t.Momentum >= 0 && t.Momentum < 1) {
		v.add("train.momentum", "must be in [0, 1), got %g", t.Momentum)
	}
	v.nonNeg("train.weight_decay", t.WeightDecay)
	v.atLeast("train.warmup_steps", t.WarmupSteps, 0)
	v.unit("train.warmup_start_factor", t.WarmupStartFactor)
	for i, ms := range t.Milestones {
		key := fmt.Sprintf("train.milestones.%d", i)
		if ms < 1 {
			v.add(key, "must be >= 1, got %d", ms)
		} else if i > 0 && ms <= t.Milestones[i-1] {
			v.add(key, "milestones must increase: %d after %d", ms, t.Milestones[i-1])
		}
	}
	v.positive("train.gamma", t.Gamma)
	v.atLeast("train.snapshot_iter", t.SnapshotIter, 1)
	v.atLeast("train.keep_last", t.KeepLast, 1)
	v.atLeast("train.log_iter", t.LogIter, 1)
	if t.Seed < 0 {
		v.add("train.seed", "must be >= 0, got %d", t.Seed)
	}

	e := &c.Eval
	v.oneOf("eval.metric", e.Metric, Metrics)
	v.oneOf("eval.map_type", e.MapType, MapTypes)
	v.size("eval.size", e.Size)
	v.atLeast("eval.batch_size", e.BatchSize, 1)
	v.unit("eval.nms.score_threshold", e.NMS.ScoreThreshold)
	v.unit("eval.nms.nms_threshold", e.NMS.NMSThreshold)
	if e.NMS.NMSTopK == 0 || e.NMS.NMSTopK < -1 {
		v.add("eval.nms.nms_top_k", "must be >= 1 (or -1 for all), got %d", e.NMS.NMSTopK)
	}
	if e.NMS.KeepTopK == 0 || e.NMS.KeepTopK < -1 {
		v.add("eval.nms.keep_top_k", "must be >= 1 (or -1 for all), got %d", e.NMS.KeepTopK)
	}
	if e.NMS.Normalized {
		v.add("eval.nms.normalized", "normalized boxes are not supported; boxes are in pixels")
	}
	v.unit("eval.draw_threshold", e.DrawThreshold)

	ds := &c.Distill
	if parts := ds.LossParts(); len(parts) == 1 {
		v.oneOf("distill.loss", ds.Loss, DistillLoss)
		if len(ds.Weights) > 0 {
			v.addCause([]string{"distill.weights", "distill.loss"}, "distill.weights", "only for a combined loss such as l2+fine_grained; distill.loss %s takes distill.weight", ds.Loss)
		}
	} else {
		for i, p := range parts {
			switch {
			case p == "none" || p == "":
				v.add("distill.loss", "%q: a combined loss joins kinds (%s) with +; %q is not one", ds.Loss, strings.Join(DistillLoss[1:], ", "), p)
			case slices.Contains(parts[:i], p):
				v.add("distill.loss", "%q: %s appears twice", ds.Loss, p)
			case !slices.Contains(DistillLoss, p):
				v.add("distill.loss", "%q: %q is not one of %s", ds.Loss, p, strings.Join(DistillLoss[1:], ", "))
			}
		}
		if n := len(ds.Weights); n != 0 && n != len(parts) {
			v.addCause([]string{"distill.weights", "distill.loss"}, "distill.weights", "%d weights for the %d parts of distill.loss %s (one per part, in order, or none for the kinds' defaults)", n, len(parts), ds.Loss)
		}
		for i, w := range ds.Weights {
			v.nonNeg(fmt.Sprintf("distill.weights.%d", i), w)
		}
	}
	for i, o := range ds.TeacherOverrides {
		if k, _, ok := strings.Cut(o, "="); !ok || strings.TrimSpace(k) == "" {
			v.add(fmt.Sprintf("distill.teacher_overrides.%d", i), "%q: want KEY=VALUE", o)
		}
	}
	v.nonNeg("distill.weight", ds.Weight)
	if slices.Contains(ds.LossParts(), "pairs") && len(ds.Pairs) == 0 {
		v.addCause([]string{"distill.pairs", "distill.loss"}, "distill.pairs", "distill.loss is pairs but no pairs are listed")
	}
	for i, p := range ds.Pairs {
		key := fmt.Sprintf("distill.pairs.%d", i)
		if p.Student == "" {
			v.add(key+".student", "empty feature name")
		}
		if p.Teacher == "" {
			v.add(key+".teacher", "empty feature name")
		}
		v.oneOf(key+".kind", p.Kind, PairKinds)
		v.nonNeg(key+".weight", p.Weight)
	}
	v.positive("distill.student_temperature", ds.StudentTemperature)
	v.positive("distill.teacher_temperature", ds.TeacherTemperature)
	v.nonNeg("distill.warn_ratio", ds.WarnRatio)
	v.atLeast("distill.warn_iters", ds.WarnIters, 1)
	return errors.Join(v.errs...)
}
