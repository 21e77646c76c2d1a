package teacher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/softtarget"
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
	b        *augment.Batch
	views    []*softtarget.View
	consumed int64 // views read for the batch (dropped ones included)
	err      error
}

// Replay is the training batch source of offline distillation (a
// train.Source): batches of up to
// train.batch_size consecutive views of one input size, in file order, each
// view rebuilt from its augmentation record (augment.Config.Replay)
// from the student's training split.
//
// With a shard (data-parallel training) every rank reads and rebuilds every
// view, so that all of them make the same batches (a view whose image cannot
// be loaded shifts the views after it), and hands over its share of each
// batch, views and soft targets alike.
type Replay struct {
	seq     *sequence
	split   *dataset.Split
	aug     augment.Config
	batch   int
	workers int
	off     *Offline
	need    int64 // batches the loop will ask for
	handed  int64 // batches Next returned
	shard   augment.Shard

	st      softState
	cancel  context.CancelFunc
	ch      chan produced
	wg      sync.WaitGroup
	pending *softtarget.View // read but not yet batched (producer only)

	verify replayChecks
	sizes  map[int]bool // input sizes met so far (producer only)
	noHash bool         // a view without a pixel hash was met (producer only)
}

// replayChecks are what Replay verifies besides the records (see
// Session.open): the memory a new input size needs, each view's pixels
// against the hash the dump stored, and the sizes the configuration lists.
type replayChecks struct {
	// fits checks that a training batch of n images of size px fits memory;
	// nil checks nothing.
	fits func(n, size int) error
	// dumped and here are the data settings of the dump (nil: not
	// recorded) and of this configuration (DataSettings), for the message
	// about a view whose pixels differ.
	dumped, here map[string]string
	// multiScale are the configuration's data.augment.multi_scale sizes: a
	// view of another size is trained on as dumped, with one warning.
	multiScale []int
	// replayUnchecked: some input does not record the replay settings
	// (augment.Config.ReplaySettings), so they may differ from the dump's.
	replayUnchecked bool
	logf            func(format string, args ...any)
}

// openReplay makes the source at a saved state (nil: the start).
func openReplay(ctx context.Context, cfg *config.Config, state []byte, seq *sequence, split *dataset.Split, off *Offline, need int64, shard augment.Shard, verify replayChecks) (*Replay, error) {
	s := &Replay{seq: seq, split: split, aug: augment.FromConfig(cfg), batch: cfg.Train.BatchSize,
		workers: cfg.Data.Workers, off: off, need: need, shard: shard, verify: verify, sizes: map[int]bool{}}
	if s.verify.logf == nil {
		s.verify.logf = func(string, ...any) {}
	}
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
	// The producer gets the starting position by value: s.st belongs to Next.
	go s.produce(ctx, s.st)
	return s, nil
}

// produce makes the batches after position start on its own goroutine. It
// never reads s.st, which Next updates concurrently.
func (s *Replay) produce(ctx context.Context, start softState) {
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
	views := start.Views
	for i := int64(0); i < s.need; i++ {
		b, vs, consumed, err := s.next(ctx, start.Batches+i)
		if err != nil {
			if err == errExhausted {
				err = fmt.Errorf("the soft targets end after %d batches (%d views read); training needs %d more (lower train.max_iters, or dump more --views)",
					start.Batches+i, views, s.need-i)
			}
			send(produced{err: err})
			return
		}
		views += consumed
		if !send(produced{b: b, views: vs, consumed: consumed}) {
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

// next reads and rebuilds one batch of up to train.batch_size views of one
// input size. A view whose image cannot be loaded here (dataset.Skippable: a
// missing or damaged copy) is dropped together with its soft targets and
// listed in Batch.Skipped, and the next view takes its place, so that views
// and teacher outputs stay paired. consumed counts every view read for the
// batch, dropped ones included.
func (s *Replay) next(ctx context.Context, index int64) (b *augment.Batch, views []*softtarget.View, consumed int64, err error) {
	size := 0
	var recs []augment.Record
	var skipped []dataset.Skip
	for len(views) < s.batch {
		// Read the views that fill the batch.
		var fresh []*softtarget.View
		for len(views)+len(fresh) < s.batch {
			var v *softtarget.View
			if s.pending != nil {
				v, s.pending = s.pending, nil
			} else {
				v, err = s.seq.next()
				if err == errExhausted && len(views)+len(fresh) > 0 {
					break
				}
				if err != nil {
					return nil, nil, 0, err
				}
			}
			if size == 0 {
				if v.InputH != v.InputW {
					return nil, nil, 0, fmt.Errorf("%s: input %dx%d is not square", viewName(v), v.InputH, v.InputW)
				}
				size = v.InputH
				if err := s.newSize(v, size); err != nil {
					return nil, nil, 0, err
				}
			} else if v.InputH != size || v.InputW != size {
				s.pending = v
				break
			}
			fresh = append(fresh, v)
		}
		if len(fresh) == 0 {
			break
		}
		consumed += int64(len(fresh))
		if b == nil {
			b = &augment.Batch{Pos: augment.Position{Batch: int(index)}, Size: size, Items: make([]augment.BatchItem, 0, s.batch),
				Images: make([]float32, 0, s.batch*3*size*size)}
		}
		frecs := make([]augment.Record, len(fresh))
		for i, v := range fresh {
			if err := s.check(v, &frecs[i], size); err != nil {
				return nil, nil, 0, err
			}
			b.Interp = frecs[i].Interp
		}
		items, imgs, errs := s.rebuild(ctx, fresh, frecs, size)
		plane := 3 * size * size
		for i, v := range fresh {
			if errs[i] == nil {
				if err := s.checkPixels(v, size, imgs[i*plane:(i+1)*plane]); err != nil {
					return nil, nil, 0, err
				}
			}
			if errs[i] != nil {
				var se *dataset.SampleError
				if ctx.Err() == nil && dataset.Skippable(errs[i]) && errors.As(errs[i], &se) {
					// The image that failed may be the view's mixup partner.
					skipped = append(skipped, dataset.Skip{Index: se.Index, Err: se.Err})
					continue
				}
				return nil, nil, 0, fmt.Errorf("%s: rebuilding the view: %w", viewName(v), errs[i])
			}
			views = append(views, v)
			recs = append(recs, frecs[i])
			b.Items = append(b.Items, items[i])
			b.Images = append(b.Images, imgs[i*plane:(i+1)*plane]...)
		}
	}
	if len(views) == 0 {
		if len(skipped) > 0 {
			return nil, nil, 0, fmt.Errorf("soft targets: no view of batch %d could be rebuilt (the first: %w)", index, skipped[0].Err)
		}
		return nil, nil, 0, errExhausted
	}
	b.Skipped = skipped
	return b, views, consumed, nil
}

// newSize checks an input size met for the first time: its training graph
// must fit memory (before its batch is allocated: a damaged or hostile file
// may name any size), and a size data.augment.multi_scale does not list gets
// one warning (offline distillation trains at the dumped sizes).
func (s *Replay) newSize(v *softtarget.View, size int) error {
	if s.sizes[size] {
		return nil
	}
	s.sizes[size] = true
	if s.verify.fits != nil {
		if err := s.verify.fits(s.batch, size); err != nil {
			return fmt.Errorf("%s: input size %d: %w", viewName(v), size, err)
		}
	}
	if len(s.verify.multiScale) > 0 && !slices.Contains(s.verify.multiScale, size) {
		s.verify.logf("warning: the soft targets hold views of %d px, which data.augment.multi_scale %v does not list: offline distillation trains at the sizes teacher-dump rebuilt the views at, so data.augment.multi_scale is not used (dump with teacher-dump --student-override data.augment.multi_scale=... for other sizes)",
			size, s.verify.multiScale)
	}
	return nil
}

// checkPixels compares a rebuilt view's pixels ([3, size, size]) with the
// hash the dump stored for the pixels the teacher saw: a mismatch stops the
// run, naming the image, the view and what can explain it. A view without a
// hash (an older file) cannot be checked.
func (s *Replay) checkPixels(v *softtarget.View, size int, pix []float32) error {
	if v.PixelHash == nil {
		if !s.noHash {
			s.noHash = true
			s.verify.logf("warning: %s carries no pixel hash: its pixels (and those of other such views) cannot be verified against the images here", viewName(v))
		}
		return nil
	}
	h := viewKey(size, pix)
	if bytes.Equal(h[:], v.PixelHash) {
		return nil
	}
	why := "the image differs from the one the teacher saw (another dataset under the same file names, or a replaced or re-encoded file?), or the augmentations round differently in this build (another build or architecture of these tools: dump the soft targets with this build)"
	if d := dataDiff(s.verify.dumped, s.verify.here); len(d) > 0 {
		why = "the soft targets come from other pictures: " + strings.Join(d, "; ")
	} else if root, ok := s.verify.here["data.root"]; ok && s.verify.dumped != nil {
		where := fmt.Sprintf("data.root %q", root)
		if s.verify.here["data.format"] == "synth" && root == "" {
			where = "the synthetic set of the same data.synth settings"
		}
		why = fmt.Sprintf("the dump and this run read %s, yet the pixels differ: an image file was replaced or re-encoded since the dump, or the augmentations round differently in this build (another build or architecture of these tools: dump the soft targets with this build)", where)
	}
	if s.verify.replayUnchecked {
		why += "; or this configuration's data.augment mean, std or expand fill differ from the dump's (the soft targets do not record them)"
	}
	return fmt.Errorf("%s: the view rebuilt here is not the one the teacher saw (its pixel hash differs from the dump's): %s; stopped at the first such view", viewName(v), why)
}

// check validates a view's record against the student's split and decodes it
// into rec.
func (s *Replay) check(v *softtarget.View, rec *augment.Record, size int) error {
	if err := rec.UnmarshalBinary(v.Aug); err != nil {
		return fmt.Errorf("%s: augmentation record: %w", viewName(v), err)
	}
	if int(rec.Size) != size {
		return fmt.Errorf("%s: the record's input size %d differs from the stored %d", viewName(v), rec.Size, size)
	}
	if rec.Sample < 0 || rec.Sample >= int64(len(s.split.DS.Samples)) {
		return fmt.Errorf("%s: the record names sample %d, the student's split %q of %s has %d images (another dataset?)",
			viewName(v), rec.Sample, s.split.Name, s.split.Where, len(s.split.DS.Samples))
	}
	sm := &s.split.DS.Samples[rec.Sample]
	if sm.ID != v.ImageID || sm.File != v.File {
		return fmt.Errorf("%s: the record names sample %d, which is image %d (%s) in the student's split %q of %s (another dataset or split?)",
			viewName(v), rec.Sample, sm.ID, sm.File, s.split.Name, s.split.Where)
	}
	return nil
}

// rebuild replays the views' records in parallel into imgs ([n, 3, size,
// size]); each slot's outcome is its item or its error.
func (s *Replay) rebuild(ctx context.Context, views []*softtarget.View, recs []augment.Record, size int) ([]augment.BatchItem, []float32, []error) {
	plane := 3 * size * size
	items := make([]augment.BatchItem, len(views))
	imgs := make([]float32, len(views)*plane)
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
				view, err := s.aug.Replay(s.split.Source, &recs[i], imgs[i*plane:(i+1)*plane])
				if err != nil {
					errs[i] = err
					continue
				}
				items[i] = augment.BatchItem{Index: int(recs[i].Sample), Record: recs[i], Targets: view.Targets}
			}
		}()
	}
	for i := range views {
		work <- i
	}
	close(work)
	wg.Wait()
	return items, imgs, errs
}

// Next implements train.Source: the next batch, its views handed to the
// distiller. After the last batch training needs, it waits until every stream
// input has been read to its verified end (a truncated stream fails here,
// before the final checkpoint).
func (s *Replay) Next(ctx context.Context) (*augment.Batch, error) {
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
	b, views := p.b, p.views
	b.Total = len(b.Items)
	if s.shard.Size > 1 {
		if err := s.shard.Check(b.Total); err != nil {
			return nil, fmt.Errorf("soft targets: batch %d: %w (dump with teacher-dump --batch equal to train.batch_size, so that no batch is cut short)", s.st.Batches, err)
		}
		lo, hi := s.shard.Range(b.Total)
		plane := 3 * b.Size * b.Size
		b.Items, b.Images, views = b.Items[lo:hi], b.Images[lo*plane:hi*plane], views[lo:hi]
	}
	s.st.Batches++
	s.st.Views += p.consumed
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
	s.off.setViews(views)
	return b, nil
}

// Images implements train.Source: the images of the student's training split.
func (s *Replay) Images() int { return len(s.split.DS.Samples) }

// State implements train.Source.
func (s *Replay) State() []byte {
	b, _ := json.Marshal(s.st)
	return b
}

// Close implements train.Source.
func (s *Replay) Close() {
	s.cancel()
	go func() {
		for range s.ch {
		}
	}()
	s.wg.Wait()
}
