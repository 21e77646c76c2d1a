package teacher

import (
	"context"
	"fmt"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/config"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/distill"
	"yolodistill/pkg/softtarget"
)

// Online is the teacher of online distillation: a teacher detector run on
// each training batch, in inference mode (BatchNorm running statistics), on
// the student's own normalised input, as PaddleSlim's merged program does.
// For the same views its tensors equal those teacher-dump stores.
type Online struct {
	Det  *detector.Detector
	refs []distill.Ref
	cur  map[distill.Ref]*distill.Tensor
	sh   shapes
}

// NewOnline loads the teacher of configuration tc (from tcPath, for
// messages) with the weights at weights (a path or an http(s) URL, cached in
// cacheDir; detector.Load) and checks it fits want (the student's Want:
// classes, anchors and masks, the feature maps the recipe reads, whose
// tensors it will give). Warnings go to logf when not nil.
func NewOnline(ctx context.Context, tc *config.Config, tcPath, weights, cacheDir string, rec *distill.Recipe, want softtarget.Meta, logf func(string, ...any)) (*Online, error) {
	got := softtarget.Meta{TeacherConfigHash: tc.ModelHash(), Classes: tc.Data.Classes, Anchors: tc.Model.Anchors, Masks: tc.Model.AnchorMasks}
	if err := got.CheckCompatible(softtarget.Meta{Classes: want.Classes, Anchors: want.Anchors, Masks: want.Masks}); err != nil {
		return nil, fmt.Errorf("teacher %s: %w", tcPath, err)
	}
	det, warn, err := detector.Load(ctx, tc, weights, cacheDir)
	if err != nil {
		return nil, fmt.Errorf("teacher weights: %w", err)
	}
	if warn != "" && logf != nil {
		logf("warning: %s", warn)
	}
	for _, f := range want.Features {
		if _, ok := det.Spec.Layer(f); !ok {
			return nil, fmt.Errorf("teacher %s has no tensor %q that distill.pairs names (model-inspect lists the names)", tcPath, f)
		}
	}
	return &Online{Det: det, refs: rec.TeacherRefs(), sh: shapes{spec: det.Spec}}, nil
}

// Prepare runs the teacher on the batch input (b.Images, [N, 3, S, S]) and
// points the tensors at its graph's buffers.
func (o *Online) Prepare(b *augment.Batch) error {
	n, h, w := len(b.Items), b.Size, b.Size
	net, err := o.Det.Net(n, h, w, false)
	if err != nil {
		return fmt.Errorf("teacher: %w", err)
	}
	if err := net.Graph.SetInput(b.Images); err != nil {
		return fmt.Errorf("teacher: %w", err)
	}
	if err := net.Graph.Forward(false); err != nil {
		return fmt.Errorf("teacher: %w", err)
	}
	if o.cur == nil {
		o.cur = map[distill.Ref]*distill.Tensor{}
	}
	outs := net.Outputs()
	for _, r := range o.refs {
		var data []float32
		var shape []int
		if r.Head >= 0 {
			data = outs[r.Head]
			s := net.Shapes[r.Head]
			shape = []int{s[0], s[1], s[2], s[3]}
		} else {
			data, shape = net.Graph.Tensor(r.Name)
			if data == nil {
				return fmt.Errorf("teacher: no tensor %q", r.Name)
			}
		}
		o.cur[r] = &distill.Tensor{Data: data, Shape: shape}
	}
	return nil
}

// Tensor implements distill.Teacher.
func (o *Online) Tensor(r distill.Ref) (*distill.Tensor, error) {
	t, ok := o.cur[r]
	if !ok {
		return nil, fmt.Errorf("no teacher tensor %s for this batch", r)
	}
	return t, nil
}

// Channels implements distill.Teacher, from the teacher's Spec.
func (o *Online) Channels(r distill.Ref, h, w int) (int, error) { return o.sh.channels(r, h, w) }

// Stored implements distill.Teacher: every cell is known.
func (o *Online) Stored(distill.Ref, int) ([]bool, error) { return nil, nil }
