package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/train"
	"yolodistill/pkg/yolo"
)

// input is one soft-target input: a file (random access) or a stream.
type input struct {
	name string
	r    *softtarget.Reader
}

// sequence reads the views of the inputs in order, one after the other. When
// every input is a random-access file it cycles: after the last view of the
// last file comes the first view of the first file again (the same views,
// which carry their own augmentation, are trained on again). A stream is read
// once; reading past its end is an error.
type sequence struct {
	ins   []input
	cycle bool
	total int64 // views of all inputs (cycle only)
	j     int   // current input
	row   int   // next row of a random-access input
}

func newSequence(ins []input) *sequence {
	s := &sequence{ins: ins, cycle: true}
	for _, in := range ins {
		if !in.r.RandomAccess() {
			s.cycle = false
		} else {
			s.total += int64(in.r.Len())
		}
	}
	if s.total == 0 {
		s.cycle = false
	}
	return s
}

// errExhausted is returned when a sequence that cannot cycle ends.
var errExhausted = errors.New("end of the soft targets")

// next decodes the next view into a new View.
func (s *sequence) next() (*softtarget.View, error) {
	v := &softtarget.View{}
	for {
		if s.j == len(s.ins) {
			if !s.cycle {
				return nil, errExhausted
			}
			s.j, s.row = 0, 0
		}
		in := s.ins[s.j]
		if in.r.RandomAccess() {
			if s.row < in.r.Len() {
				if err := in.r.ReadRow(s.row, v); err != nil {
					return nil, err
				}
				s.row++
				return v, nil
			}
			s.j, s.row = s.j+1, 0
			continue
		}
		err := in.r.Next(v)
		if err == io.EOF {
			s.j, s.row = s.j+1, 0
			continue
		}
		if err != nil {
			return nil, err
		}
		return v, nil
	}
}

// skip moves past n views: arithmetic for files, reading for streams.
func (s *sequence) skip(n int64) error {
	if s.cycle {
		n %= s.total
		for n > 0 {
			l := int64(s.ins[s.j].r.Len())
			if n < l {
				s.row = int(n)
				return nil
			}
			n -= l
			s.j++
		}
		return nil
	}
	for ; n > 0; n-- {
		if _, err := s.next(); err != nil {
			return err
		}
	}
	return nil
}

// drain reads every stream input to its verified end marker: a truncated
// stream is an error even when training needed fewer views than it holds.
// Random-access files were checked when they were opened.
func (s *sequence) drain() error {
	if s.cycle {
		return nil
	}
	for {
		_, err := s.next()
		if err == errExhausted {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// softState is the source's position in checkpoints (State.DataOrder).
type softState struct {
	Views   int64 `json:"views"`   // views handed out in batches so far
	Batches int64 `json:"batches"` // batches handed out so far
}

// produced is one batch with its views, or an error.
type produced struct {
	b     *dataset.Batch
	views []*softtarget.View
	err   error
}

// softSource is a train.Source over soft targets: batches of up to
// train.batch_size consecutive views of one input size, in file order, each
// view rebuilt from its augmentation record (dataset.AugmentConfig.Replay)
// from the student's training split.
type softSource struct {
	seq     *sequence
	split   *yolo.Split
	aug     dataset.AugmentConfig
	batch   int
	workers int
	d       *distiller
	need    int64 // batches the loop will ask for
	handed  int64 // batches Next returned

	st      softState
	cancel  context.CancelFunc
	ch      chan produced
	wg      sync.WaitGroup
	pending *softtarget.View // read but not yet batched (producer only)
}

// openSoftSource makes the source at a saved state (nil: the start).
func openSoftSource(ctx context.Context, cfg *config.Config, state []byte, seq *sequence, split *yolo.Split, d *distiller, need int64) (*softSource, error) {
	s := &softSource{seq: seq, split: split, aug: train.AugmentFromConfig(cfg), batch: cfg.Train.BatchSize,
		workers: cfg.Data.Workers, d: d, need: need}
	if s.workers <= 0 {
		s.workers = runtime.GOMAXPROCS(0)
	}
	if len(state) > 0 {
		if err := json.Unmarshal(state, &s.st); err != nil || s.st.Views < 0 || s.st.Batches < 0 {
			return nil, fmt.Errorf("soft-target position %q in the checkpoint: not a student-train position", state)
		}
		if err := seq.skip(s.st.Views); err != nil {
			return nil, fmt.Errorf("resuming after %d views: %w", s.st.Views, err)
		}
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.ch = make(chan produced, 2)
	s.wg.Add(1)
	go s.produce(ctx)
	return s, nil
}

func (s *softSource) produce(ctx context.Context) {
	defer s.wg.Done()
	defer close(s.ch)
	send := func(p produced) bool {
		select {
		case s.ch <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for i := int64(0); i < s.need; i++ {
		b, views, err := s.next(ctx, s.st.Batches+i)
		if err != nil {
			if err == errExhausted {
				err = fmt.Errorf("the soft targets end after %d batches (%d views read); training needs %d more (lower train.max_iters, or dump more --views)",
					s.st.Batches+i, s.st.Views, s.need-i)
			}
			send(produced{err: err})
			return
		}
		if !send(produced{b: b, views: views}) {
			return
		}
	}
	// After the last batch the loop needs: check that the streams end well.
	if err := s.seq.drain(); err != nil {
		send(produced{err: fmt.Errorf("after the last batch: %w", err)})
		return
	}
	send(produced{})
}

// next reads and rebuilds one batch.
func (s *softSource) next(ctx context.Context, index int64) (*dataset.Batch, []*softtarget.View, error) {
	var views []*softtarget.View
	if s.pending != nil {
		views = append(views, s.pending)
		s.pending = nil
	}
	for len(views) < s.batch {
		v, err := s.seq.next()
		if err == errExhausted && len(views) > 0 {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if len(views) > 0 && (v.InputH != views[0].InputH || v.InputW != views[0].InputW) {
			s.pending = v
			break
		}
		views = append(views, v)
	}
	v0 := views[0]
	if v0.InputH != v0.InputW {
		return nil, nil, fmt.Errorf("%s: input %dx%d is not square", viewName(v0), v0.InputH, v0.InputW)
	}
	size := v0.InputH
	b := &dataset.Batch{Pos: dataset.Position{Batch: int(index)}, Size: size, Items: make([]dataset.BatchItem, len(views)),
		Images: make([]float32, len(views)*3*size*size)}
	recs := make([]dataset.ViewRecord, len(views))
	for i, v := range views {
		if err := recs[i].UnmarshalBinary(v.Aug); err != nil {
			return nil, nil, fmt.Errorf("%s: augmentation record: %w", viewName(v), err)
		}
		r := &recs[i]
		if int(r.Size) != size {
			return nil, nil, fmt.Errorf("%s: the record's input size %d differs from the stored %d", viewName(v), r.Size, size)
		}
		if r.Sample < 0 || r.Sample >= int64(len(s.split.DS.Samples)) {
			return nil, nil, fmt.Errorf("%s: the record names sample %d, the student's split %q of %s has %d images (another dataset?)",
				viewName(v), r.Sample, s.split.Name, s.split.Where, len(s.split.DS.Samples))
		}
		sm := &s.split.DS.Samples[r.Sample]
		if sm.ID != v.ImageID || sm.File != v.File {
			return nil, nil, fmt.Errorf("%s: the record names sample %d, which is image %d (%s) in the student's split %q of %s (another dataset or split?)",
				viewName(v), r.Sample, sm.ID, sm.File, s.split.Name, s.split.Where)
		}
		b.Interp = r.Interp
	}
	// Rebuild the views in parallel; each writes its own slot.
	plane := 3 * size * size
	errs := make([]error, len(views))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < min(s.workers, len(views)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if ctx.Err() != nil {
					errs[i] = ctx.Err()
					continue
				}
				view, err := s.aug.Replay(s.split.Source, &recs[i], b.Images[i*plane:(i+1)*plane])
				if err != nil {
					errs[i] = fmt.Errorf("%s: rebuilding the view: %w", viewName(views[i]), err)
					continue
				}
				b.Items[i] = dataset.BatchItem{Index: int(recs[i].Sample), Record: recs[i], Targets: view.Targets}
			}
		}()
	}
	for i := range views {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return b, views, nil
}

// Next implements train.Source: the next batch, its views handed to the
// distiller. After the last batch training needs, it waits until every stream
// input has been read to its verified end (a truncated stream fails here,
// before the final checkpoint).
func (s *softSource) Next(ctx context.Context) (*dataset.Batch, error) {
	var p produced
	var ok bool
	select {
	case p, ok = <-s.ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if !ok {
		return nil, errors.New("soft targets: source closed")
	}
	if p.err != nil {
		return nil, p.err
	}
	if p.b == nil {
		return nil, errors.New("soft targets: no more batches")
	}
	s.st.Batches++
	s.st.Views += int64(len(p.views))
	s.handed++
	if s.handed == s.need {
		// The producer's check of the inputs' end follows the last batch.
		select {
		case q, ok := <-s.ch:
			if ok && q.err != nil {
				return nil, q.err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.d.views = p.views
	return p.b, nil
}

// State implements train.Source.
func (s *softSource) State() []byte {
	b, _ := json.Marshal(s.st)
	return b
}

// Close implements train.Source.
func (s *softSource) Close() {
	s.cancel()
	go func() {
		for range s.ch {
		}
	}()
	s.wg.Wait()
}
