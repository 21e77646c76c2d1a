package main

import (
	"fmt"
	"slices"

	"yolodistill/pkg/detector"
	"yolodistill/pkg/distill"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/yolo"
)

// distiller attaches a distill.Recipe to every training graph of the student
// (train.Hooks.Attach) and supplies the teacher's tensors of each batch: from
// soft targets (offline: the views the source handed out with the batch) or
// from a teacher model run on the same input (online, in Prepare).
type distiller struct {
	recipe *distill.Recipe
	// online: the teacher model; nil offline.
	teacher *detector.Detector
	// tspec is the teacher's Spec when its configuration is known (always
	// online; offline with -t or distill.teacher): adapters take the teacher's
	// channel counts from it.
	tspec *yolo.Spec
	// offline: the views of the current batch (set by the source's Next).
	views []*softtarget.View

	binds []*distill.Binding // every binding made, to report the first error
	// Teacher tensors of the current batch, by ref key; their Data is the
	// teacher graph's buffer (online) or a buffer of ours (offline, stacked
	// from the views).
	cur    map[string]*distill.Tensor
	curSeq int // batches prepared
	infer  map[[2]int]*yolo.Inference
	// sparse (offline, a sparse soft-target input): each batch's stored-cell
	// masks go to the fine-grained terms (masks[ti][i] for teacher ref i of
	// term ti: [N*A*H*W], the cell order of the batched head output).
	sparse  bool
	anchors []int // anchors per head (model.anchor_masks)
	masks   [][][]bool
}

// checkSparse refuses the recipes that read every head logit of the
// teacher: every term on head outputs except fine_grained, which skips the
// box and class terms where the teacher's logits were not stored.
func checkSparse(rec *distill.Recipe) error {
	for _, t := range rec.Terms {
		if _, ok := t.Loss.(*distill.FineGrained); ok {
			continue
		}
		for _, r := range t.Teacher {
			if r.Head >= 0 {
				return fmt.Errorf("distill.loss %s: sparse soft targets carry box and class logits only where the teacher is confident; the %s loss reads every logit: dump dense (optionally --fp16)", rec.Kind, rec.Kind)
			}
		}
	}
	return nil
}

// prepareMasks lays out the current views' Stored masks like the batched
// head outputs ([N, A*(5+C), H, W] -> N*A*H*W cells per scale, view after
// view) and hands them to the fine-grained terms. A view without masks (from
// a dense input) counts as stored everywhere.
func (d *distiller) prepareMasks() error {
	if d.masks == nil {
		d.masks = make([][][]bool, len(d.recipe.Terms))
	}
	for ti, term := range d.recipe.Terms {
		f, ok := term.Loss.(*distill.FineGrained)
		if !ok {
			continue
		}
		if d.masks[ti] == nil {
			d.masks[ti] = make([][]bool, len(term.Teacher))
		}
		for i, r := range term.Teacher {
			t := d.cur[refKey(r)]
			if r.Head < 0 || r.Head >= len(d.anchors) || t == nil || len(t.Shape) != 4 {
				return fmt.Errorf("%s: teacher %s is not a head output", term.Name, r)
			}
			cells := d.anchors[r.Head] * t.Shape[2] * t.Shape[3] // per view
			m := d.masks[ti][i][:0]
			for _, v := range d.views {
				if v.Stored == nil {
					for range cells {
						m = append(m, true)
					}
					continue
				}
				if r.Head >= len(v.Stored) || len(v.Stored[r.Head]) != cells {
					return fmt.Errorf("soft targets of %s: the stored-cell mask of %s does not match its %d anchor cells", viewName(v), r, cells)
				}
				m = append(m, v.Stored[r.Head]...)
			}
			d.masks[ti][i] = m
		}
		f.SetMask(d.masks[ti])
	}
	return nil
}

func refKey(r distill.Ref) string {
	if r.Head >= 0 {
		return fmt.Sprintf("head:%d", r.Head)
	}
	return "feat:" + r.Name
}

// studentTensor resolves a ref on the student's graph.
func studentTensor(net *detector.Net, r distill.Ref) (*nn.Tensor, error) {
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

// teacherChannels is the channel count (dimension 1 of [N, C, ...]) of a
// teacher tensor at input h x w: from the teacher model online, from the
// current views offline.
func (d *distiller) teacherChannels(r distill.Ref, h, w int) (int, error) {
	if d.tspec != nil {
		key := [2]int{h, w}
		inf, ok := d.infer[key]
		if !ok {
			var err error
			if inf, err = d.tspec.Infer(h, w); err != nil {
				return 0, err
			}
			if d.infer == nil {
				d.infer = map[[2]int]*yolo.Inference{}
			}
			d.infer[key] = inf
		}
		name := r.Name
		if r.Head >= 0 {
			name = d.tspec.Outputs[r.Head]
		}
		li, ok := inf.Lookup(name)
		if !ok {
			return 0, fmt.Errorf("the teacher has no tensor %q", name)
		}
		return li.Shape.C, nil
	}
	if len(d.views) == 0 {
		return 0, fmt.Errorf("no soft targets for the batch")
	}
	v := d.views[0]
	if r.Head >= 0 {
		return v.Outputs[r.Head].Shape[0], nil
	}
	t, ok := v.Features[r.Name]
	if !ok || len(t.Shape) == 0 {
		return 0, fmt.Errorf("the soft targets hold no feature map %q", r.Name)
	}
	return t.Shape[0], nil
}

// attach adds the recipe's losses to a training graph (train.Hooks.Attach).
// A student tensor whose pair asks for an adapter goes through a 1x1
// convolution with bias, named "<term>.adapter.<i>" (parameters
// "<term>.adapter.<i>.weight" and ".bias", shared by every graph), when its
// channel count differs from the teacher's.
func (d *distiller) attach(b *nn.Builder, net *detector.Net) error {
	for ti := range d.recipe.Terms {
		term := &d.recipe.Terms[ti]
		ins := make([]*nn.Tensor, len(term.Student))
		shapes := make([][]int, len(term.Student))
		names := make([]string, 0, 2*len(term.Student))
		for i, r := range term.Student {
			t, err := studentTensor(net, r)
			if err != nil {
				return fmt.Errorf("%s: %w", term.Name, err)
			}
			if term.Adapter[i] {
				if t, err = d.adapt(b, net, term, i, t); err != nil {
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
		ti := ti
		bind := &distill.Binding{Loss: term.Loss, Student: shapes, Names: names,
			Source: func() ([]distill.Tensor, error) { return d.teacherTensors(ti) }}
		d.binds = append(d.binds, bind)
		b.Loss(term.Name, ins, bind.Func)
		if err := b.Err(); err != nil {
			return err
		}
	}
	return nil
}

// adapt puts student tensor i of term through its learned 1x1 adapter
// convolution when its channel count differs from the teacher tensor's.
func (d *distiller) adapt(b *nn.Builder, net *detector.Net, term *distill.Term, i int, t *nn.Tensor) (*nn.Tensor, error) {
	tc, err := d.teacherChannels(term.Teacher[i], net.H, net.W)
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

// createParams creates the adapters' parameters in det's parameter set (with
// the same initial values a training graph would give them) before any
// training graph is built, so that a checkpoint holding them loads (resume).
// It needs the teacher's Spec (tspec; without it, it does nothing). To be
// called right after the student Detector is made, before checkpoints are
// loaded: pkg/train calls it as Hooks.Init.
func (d *distiller) createParams(det *detector.Detector) error {
	need := false
	for _, t := range d.recipe.Terms {
		need = need || slices.Contains(t.Adapter, true)
	}
	if !need {
		return nil
	}
	if d.tspec == nil {
		// Without the teacher's configuration the channel counts come from
		// the first batch's soft targets: the adapters are made with the
		// first training graph, and a checkpoint holding them cannot be
		// resumed from.
		return nil
	}
	const side = 32
	b := nn.NewBuilder(det.Params, []int{1, det.Spec.InChannels, side, side})
	built, err := yolo.Build(det.Spec, b)
	if err != nil {
		return err
	}
	net := &detector.Net{Built: built, N: 1, H: side, W: side}
	for ti := range d.recipe.Terms {
		term := &d.recipe.Terms[ti]
		for i, r := range term.Student {
			if !term.Adapter[i] {
				continue
			}
			t, err := studentTensor(net, r)
			if err != nil {
				return fmt.Errorf("%s: %w", term.Name, err)
			}
			if _, err := d.adapt(b, net, term, i, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// teacherTensors returns term ti's teacher tensors for the current batch.
func (d *distiller) teacherTensors(ti int) ([]distill.Tensor, error) {
	term := &d.recipe.Terms[ti]
	out := make([]distill.Tensor, len(term.Teacher))
	for i, r := range term.Teacher {
		t, ok := d.cur[refKey(r)]
		if !ok {
			return nil, fmt.Errorf("no teacher tensor %s for this batch", r)
		}
		out[i] = *t
		out[i].Name = "teacher:" + r.String()
	}
	return out, nil
}

// err is the first error a loss binding met.
func (d *distiller) err() error {
	for _, b := range d.binds {
		if err := b.Err(); err != nil {
			return err
		}
	}
	return nil
}

// refs lists every teacher ref of the recipe once.
func (d *distiller) refs() []distill.Ref {
	var out []distill.Ref
	for _, t := range d.recipe.Terms {
		for _, r := range t.Teacher {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// prepareOnline runs the teacher on the batch input ([N, 3, S, S], the
// student's own normalised input) with BatchNorm running statistics, and
// points the current teacher tensors at its graph's buffers.
func (d *distiller) prepareOnline(input []float32, n, h, w int) error {
	net, err := d.teacher.Net(n, h, w, false)
	if err != nil {
		return fmt.Errorf("teacher: %w", err)
	}
	if err := net.Graph.SetInput(input); err != nil {
		return fmt.Errorf("teacher: %w", err)
	}
	if err := net.Graph.Forward(false); err != nil {
		return fmt.Errorf("teacher: %w", err)
	}
	if d.cur == nil {
		d.cur = map[string]*distill.Tensor{}
	}
	outs := net.Outputs()
	for _, r := range d.refs() {
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
		d.cur[refKey(r)] = &distill.Tensor{Data: data, Shape: shape}
	}
	d.curSeq++
	return nil
}

// prepareOffline stacks the current views' stored tensors into [N, ...]
// batch tensors (buffers reused from batch to batch).
func (d *distiller) prepareOffline() error {
	n := len(d.views)
	if n == 0 {
		return fmt.Errorf("no soft targets for the batch")
	}
	if d.cur == nil {
		d.cur = map[string]*distill.Tensor{}
	}
	for _, r := range d.refs() {
		get := func(v *softtarget.View) (softtarget.Tensor, bool) {
			if r.Head >= 0 {
				if r.Head >= len(v.Outputs) {
					return softtarget.Tensor{}, false
				}
				return v.Outputs[r.Head], true
			}
			t, ok := v.Features[r.Name]
			return t, ok
		}
		first, ok := get(d.views[0])
		if !ok {
			return fmt.Errorf("soft targets of %s hold no %s", viewName(d.views[0]), r)
		}
		per := len(first.Data)
		t := d.cur[refKey(r)]
		if t == nil {
			t = &distill.Tensor{}
			d.cur[refKey(r)] = t
		}
		t.Shape = append(append(t.Shape[:0], n), first.Shape...)
		if cap(t.Data) < n*per {
			t.Data = make([]float32, n*per)
		}
		t.Data = t.Data[:n*per]
		for i, v := range d.views {
			x, ok := get(v)
			if !ok || !slices.Equal(x.Shape, first.Shape) {
				return fmt.Errorf("soft targets of %s: %s has shape %v, the batch's first view %v", viewName(v), r, x.Shape, first.Shape)
			}
			copy(t.Data[i*per:(i+1)*per], x.Data)
		}
	}
	if d.sparse {
		if err := d.prepareMasks(); err != nil {
			return err
		}
	}
	d.curSeq++
	return nil
}

func viewName(v *softtarget.View) string {
	return fmt.Sprintf("image %d (%s) view %d", v.ImageID, v.File, v.ViewIndex)
}
