package distill

import (
	"errors"
	"fmt"
	"slices"

	"yolodistill/pkg/detector"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/yolo"
)

// Teacher gives a Student the teacher's tensors of the current training
// batch. pkg/teacher implements it: online (a teacher detector run on the
// batch) and offline (soft targets replayed with their views).
type Teacher interface {
	// Tensor returns teacher tensor r of the current batch, [N, ...]. Its
	// Data is valid until the next batch.
	Tensor(r Ref) (*Tensor, error)
	// Channels is the channel count (dimension 1 of [N, C, ...]) of teacher
	// tensor r at input h x w. It returns ErrNoShapes when they cannot be
	// known before the first batch (soft targets without the teacher's
	// configuration).
	Channels(r Ref, h, w int) (int, error)
	// Stored returns the stored-cell mask of head output r for the current
	// batch, [N*A*H*W] in the cell order of the batched head output
	// ((n*A+a)*H*W + h*W + w), where a is anchors; nil when every cell is
	// stored (dense soft targets, online).
	Stored(r Ref, anchors int) ([]bool, error)
}

// ErrNoShapes is Teacher.Channels' error before the first batch when the
// teacher's tensor shapes come from the batch only.
var ErrNoShapes = errors.New("the teacher's tensor shapes are known from the first batch only")

// Student applies a Recipe to the training graphs of a student detector: it
// attaches every term's loss (train.Hooks.Attach), with the learned adapters
// the pairs ask for, and reads the teacher's tensors of each batch from a
// Teacher.
type Student struct {
	Recipe  *Recipe
	Teacher Teacher
	// Anchors is the number of anchors per head output (model.anchor_masks),
	// for the stored-cell masks of sparse soft targets.
	Anchors []int

	binds []*Binding
	masks [][][]bool // per fine-grained term, per teacher ref
}

// NewStudent returns the Student of recipe rec with teacher t for a student
// with the given anchor masks.
func NewStudent(rec *Recipe, t Teacher, masks [][]int) *Student {
	s := &Student{Recipe: rec, Teacher: t}
	for _, m := range masks {
		s.Anchors = append(s.Anchors, len(m))
	}
	return s
}

// StudentTensor resolves a ref on a student's graph.
func StudentTensor(net *detector.Net, r Ref) (*nn.Tensor, error) {
	if r.Head >= 0 {
		if r.Head >= len(net.Built.Outputs) {
			return nil, fmt.Errorf("the student has %d head outputs, not %d", len(net.Built.Outputs), r.Head+1)
		}
		return net.Built.Outputs[r.Head], nil
	}
	t, ok := net.Built.Tensors[r.Name]
	if !ok {
		return nil, fmt.Errorf("the student has no tensor %q (model-inspect lists the names)", r.Name)
	}
	return t, nil
}

// Attach adds the recipe's losses to a training graph (train.Hooks.Attach).
// A student tensor whose pair asks for an adapter goes through a 1x1
// convolution with bias, named "<term>.adapter.<i>" (parameters
// "<term>.adapter.<i>.weight" and ".bias", shared by every graph), when its
// channel count differs from the teacher's.
func (s *Student) Attach(b *nn.Builder, net *detector.Net) error {
	for ti := range s.Recipe.Terms {
		term := &s.Recipe.Terms[ti]
		ins := make([]*nn.Tensor, len(term.Student))
		shapes := make([][]int, len(term.Student))
		names := make([]string, 0, 2*len(term.Student))
		for i, r := range term.Student {
			t, err := StudentTensor(net, r)
			if err != nil {
				return fmt.Errorf("%s: %w", term.Name, err)
			}
			if term.Adapter[i] {
				if t, err = s.adapt(b, net, term, i, t); err != nil {
					return err
				}
			}
			ins[i] = t
			shapes[i] = t.Shape()
			names = append(names, "student:"+r.String())
		}
		for _, r := range term.Teacher {
			names = append(names, "teacher:"+r.String())
		}
		bind := &Binding{Loss: term.Loss, Student: shapes, Names: names,
			Source: func() ([]Tensor, error) { return s.teacherTensors(term) }}
		s.binds = append(s.binds, bind)
		b.Loss(term.Name, ins, bind.Func)
		if err := b.Err(); err != nil {
			return err
		}
	}
	return nil
}

// adapt puts student tensor i of term through its learned 1x1 adapter
// convolution when its channel count differs from the teacher tensor's.
func (s *Student) adapt(b *nn.Builder, net *detector.Net, term *Term, i int, t *nn.Tensor) (*nn.Tensor, error) {
	tc, err := s.Teacher.Channels(term.Teacher[i], net.H, net.W)
	if err != nil {
		return nil, fmt.Errorf("%s: adapter for %s: %w", term.Name, term.Student[i], err)
	}
	if t.Shape()[1] == tc {
		return t, nil
	}
	t = b.Conv(fmt.Sprintf("%s.adapter.%d", term.Name, i), t, nn.ConvSpec{Out: tc, K: 1}, true)
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("%s: adapter for %s: %w", term.Name, term.Student[i], err)
	}
	return t, nil
}

// Init creates the adapters' parameters in det's parameter set (with the same
// initial values a training graph would give them) before any training graph
// is built, so that a checkpoint holding them loads (resume): train.Hooks.Init.
// When the teacher's shapes are known only from the first batch
// (ErrNoShapes) it does nothing: the adapters are then made with the first
// training graph, and a checkpoint holding them cannot be resumed from.
func (s *Student) Init(det *detector.Detector) error {
	need := false
	for _, t := range s.Recipe.Terms {
		need = need || slices.Contains(t.Adapter, true)
	}
	if !need {
		return nil
	}
	const side = 32
	for _, t := range s.Recipe.Terms {
		for i, r := range t.Teacher {
			if _, err := s.Teacher.Channels(r, side, side); t.Adapter[i] && errors.Is(err, ErrNoShapes) {
				return nil
			}
		}
	}
	b := nn.NewBuilder(det.Params, []int{1, det.Spec.InChannels, side, side})
	built, err := yolo.Build(det.Spec, b)
	if err != nil {
		return err
	}
	net := &detector.Net{Built: built, N: 1, H: side, W: side}
	for ti := range s.Recipe.Terms {
		term := &s.Recipe.Terms[ti]
		for i, r := range term.Student {
			if !term.Adapter[i] {
				continue
			}
			t, err := StudentTensor(net, r)
			if err != nil {
				return fmt.Errorf("%s: %w", term.Name, err)
			}
			if _, err := s.adapt(b, net, term, i, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// teacherTensors returns term's teacher tensors for the current batch.
func (s *Student) teacherTensors(term *Term) ([]Tensor, error) {
	out := make([]Tensor, len(term.Teacher))
	for i, r := range term.Teacher {
		t, err := s.Teacher.Tensor(r)
		if err != nil {
			return nil, err
		}
		out[i] = *t
		out[i].Name = "teacher:" + r.String()
	}
	return out, nil
}

// Prepare hands the current batch's stored-cell masks (sparse soft targets)
// to the fine-grained terms; call it after the Teacher has the batch and
// before the step.
func (s *Student) Prepare() error {
	if s.masks == nil {
		s.masks = make([][][]bool, len(s.Recipe.Terms))
	}
	for ti, term := range s.Recipe.Terms {
		f, ok := term.Loss.(*FineGrained)
		if !ok {
			continue
		}
		if s.masks[ti] == nil {
			s.masks[ti] = make([][]bool, len(term.Teacher))
		}
		any := false
		for i, r := range term.Teacher {
			if r.Head < 0 || r.Head >= len(s.Anchors) {
				return fmt.Errorf("%s: teacher %s is not a head output", term.Name, r)
			}
			m, err := s.Teacher.Stored(r, s.Anchors[r.Head])
			if err != nil {
				return err
			}
			s.masks[ti][i] = m
			any = any || m != nil
		}
		if any {
			for i, r := range term.Teacher {
				if s.masks[ti][i] == nil {
					return fmt.Errorf("%s: teacher %s has no stored-cell mask, the other head outputs do", term.Name, r)
				}
			}
			f.SetMask(s.masks[ti])
		} else {
			f.SetMask(nil)
		}
	}
	return nil
}

// Err is the first error a loss binding met (losses cannot return errors
// from inside a graph step).
func (s *Student) Err() error {
	for _, b := range s.binds {
		if err := b.Err(); err != nil {
			return err
		}
	}
	return nil
}
