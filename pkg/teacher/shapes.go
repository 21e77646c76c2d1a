package teacher

import (
	"fmt"
	"slices"

	"yolodistill/pkg/distill"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/yolo"
)

// shapes answers Channels from the teacher's Spec, per input size.
type shapes struct {
	spec  *yolo.Spec
	infer map[[2]int]*yolo.Inference
}

// channels is the channel count of teacher tensor r at input h x w.
func (s *shapes) channels(r distill.Ref, h, w int) (int, error) {
	key := [2]int{h, w}
	inf, ok := s.infer[key]
	if !ok {
		var err error
		if inf, err = s.spec.Infer(h, w); err != nil {
			return 0, err
		}
		if s.infer == nil {
			s.infer = map[[2]int]*yolo.Inference{}
		}
		s.infer[key] = inf
	}
	name := r.Name
	if r.Head >= 0 {
		if r.Head >= len(s.spec.Outputs) {
			return 0, fmt.Errorf("the teacher has %d head outputs, not %d", len(s.spec.Outputs), r.Head+1)
		}
		name = s.spec.Outputs[r.Head]
	}
	li, ok := inf.Lookup(name)
	if !ok {
		return 0, fmt.Errorf("the teacher has no tensor %q", name)
	}
	return li.Shape.C, nil
}

// viewTensor is view v's stored tensor r.
func viewTensor(v *softtarget.View, r distill.Ref) (softtarget.Tensor, bool) {
	if r.Head >= 0 {
		if r.Head >= len(v.Outputs) {
			return softtarget.Tensor{}, false
		}
		return v.Outputs[r.Head], true
	}
	t, ok := v.Features[r.Name]
	return t, ok
}

// Stack writes the views' stored tensors r into dst as one batch tensor
// [N, ...] (N = len(views); dst's buffers are reused). Every view must hold r
// with the first view's shape.
func Stack(dst *distill.Tensor, views []*softtarget.View, r distill.Ref) error {
	n := len(views)
	if n == 0 {
		return fmt.Errorf("no soft targets for the batch")
	}
	first, ok := viewTensor(views[0], r)
	if !ok {
		return fmt.Errorf("soft targets of %s hold no %s", viewName(views[0]), r)
	}
	per := len(first.Data)
	dst.Shape = append(append(dst.Shape[:0], n), first.Shape...)
	if cap(dst.Data) < n*per {
		dst.Data = make([]float32, n*per)
	}
	dst.Data = dst.Data[:n*per]
	for i, v := range views {
		x, ok := viewTensor(v, r)
		if !ok || !slices.Equal(x.Shape, first.Shape) {
			return fmt.Errorf("soft targets of %s: %s has shape %v, the batch's first view %v", viewName(v), r, x.Shape, first.Shape)
		}
		copy(dst.Data[i*per:(i+1)*per], x.Data)
	}
	return nil
}

// Unstack returns image i's part of a batch tensor of n images (a view of
// data, not a copy).
func Unstack(data []float32, n, i int) []float32 {
	per := len(data) / n
	return data[i*per : (i+1)*per]
}

func viewName(v *softtarget.View) string {
	return fmt.Sprintf("image %d (%s) view %d", v.ImageID, v.File, v.ViewIndex)
}
