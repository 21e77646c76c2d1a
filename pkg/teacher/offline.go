package teacher

import (
	"fmt"

	"yolodistill/pkg/distill"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/yolo"
)

// Offline is the teacher of offline distillation: the soft targets of the
// views its Replay source handed out with the current batch, stacked into
// batch tensors.
type Offline struct {
	refs  []distill.Ref
	views []*softtarget.View
	cur   map[distill.Ref]*distill.Tensor
	sh    *shapes // nil: shapes come from the views
	masks map[distill.Ref][]bool
}

// NewOffline returns the offline teacher of recipe rec. spec is the
// teacher's model when its configuration is known (adapters then get their
// shapes before the first batch), or nil.
func NewOffline(rec *distill.Recipe, spec *yolo.Spec) *Offline {
	o := &Offline{refs: rec.TeacherRefs()}
	if spec != nil {
		o.sh = &shapes{spec: spec}
	}
	return o
}

// setViews hands over the current batch's views (Replay.Next).
func (o *Offline) setViews(views []*softtarget.View) { o.views = views }

// Prepare stacks the current views' stored tensors into [N, ...] batch
// tensors (buffers reused from batch to batch).
func (o *Offline) Prepare() error {
	if len(o.views) == 0 {
		return fmt.Errorf("no soft targets for the batch")
	}
	if o.cur == nil {
		o.cur = map[distill.Ref]*distill.Tensor{}
	}
	for _, r := range o.refs {
		t := o.cur[r]
		if t == nil {
			t = &distill.Tensor{}
			o.cur[r] = t
		}
		if err := Stack(t, o.views, r); err != nil {
			return err
		}
	}
	return nil
}

// Tensor implements distill.Teacher.
func (o *Offline) Tensor(r distill.Ref) (*distill.Tensor, error) {
	t, ok := o.cur[r]
	if !ok {
		return nil, fmt.Errorf("no teacher tensor %s for this batch", r)
	}
	return t, nil
}

// Channels implements distill.Teacher: from the teacher's Spec when known,
// else from the current views (distill.ErrNoShapes before the first batch).
func (o *Offline) Channels(r distill.Ref, h, w int) (int, error) {
	if o.sh != nil {
		return o.sh.channels(r, h, w)
	}
	if len(o.views) == 0 {
		return 0, distill.ErrNoShapes
	}
	t, ok := viewTensor(o.views[0], r)
	if !ok || len(t.Shape) == 0 {
		return 0, fmt.Errorf("the soft targets hold no %s", r)
	}
	return t.Shape[0], nil
}

// Stored implements distill.Teacher: the current views' stored-cell masks of
// head output r laid out like the batched head output, view after view; a
// view without masks (from a dense input) counts as stored everywhere. nil
// when no view of the batch has masks.
func (o *Offline) Stored(r distill.Ref, anchors int) ([]bool, error) {
	sparse := false
	for _, v := range o.views {
		sparse = sparse || v.Stored != nil
	}
	if !sparse {
		return nil, nil
	}
	t := o.cur[r]
	if r.Head < 0 || t == nil || len(t.Shape) != 4 {
		return nil, fmt.Errorf("teacher %s is not a head output", r)
	}
	cells := anchors * t.Shape[2] * t.Shape[3] // per view
	if o.masks == nil {
		o.masks = map[distill.Ref][]bool{}
	}
	m := o.masks[r][:0]
	for _, v := range o.views {
		if v.Stored == nil {
			for range cells {
				m = append(m, true)
			}
			continue
		}
		if r.Head >= len(v.Stored) || len(v.Stored[r.Head]) != cells {
			return nil, fmt.Errorf("soft targets of %s: the stored-cell mask of %s does not match its %d anchor cells", viewName(v), r, cells)
		}
		m = append(m, v.Stored[r.Head]...)
	}
	o.masks[r] = m
	return m, nil
}
