package augment

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"yolodistill/pkg/dataset"
)

// Replay rebuilds the view rec describes from src: it loads the record's
// sample and mixup partner and applies the record (see Apply). dst as in Apply.
// A load error comes as a *SampleError naming the sample that failed.
func (c *Config) Replay(src dataset.Source, rec *Record, dst []float32) (View, error) {
	n := src.Len()
	if rec.Sample < 0 || rec.Sample >= int64(n) || rec.Partner >= int64(n) {
		return View{}, fmt.Errorf("%w: record names sample %d / partner %d of a %d-image set", ErrRecordMismatch, rec.Sample, rec.Partner, n)
	}
	img, t, err := src.Load(int(rec.Sample))
	if err != nil {
		return View{}, &dataset.SampleError{Index: int(rec.Sample), Err: err}
	}
	var pimg *dataset.Image
	var pt []dataset.Target
	if rec.Partner >= 0 {
		if pimg, pt, err = src.Load(int(rec.Partner)); err != nil {
			return View{}, &dataset.SampleError{Index: int(rec.Partner), Err: err}
		}
	}
	return c.Apply(rec, img, t, pimg, pt, dst)
}

// LoaderConfig configures a Loader. Zero fields take the defaults noted.
type LoaderConfig struct {
	Source    dataset.Source
	Augment   Config // training augmentation (Train) and normalisation (always)
	BatchSize int    // images per batch (required)
	Seed      uint64 // with the position, fixes every order and every random choice
	Shuffle   bool   // a new random order every epoch
	DropLast  bool   // drop the last, partial batch of an epoch
	// Train draws an augmented view per image (Augment) and an input size per
	// batch (Augment.Sizes); otherwise every view is EvalRecord(EvalSize, EvalInterp).
	Train       bool
	MixupEpochs int    // mixup only in epochs < MixupEpochs (PaddleDetection's mixup_epoch); 0: no mixup
	EvalSize    int    // input size when not Train (default 608)
	EvalInterp  Interp // interpolation when not Train (PaddleDetection's eval: InterpCubic)
	Workers     int    // decode+augment goroutines (default GOMAXPROCS; at most (Prefetch+2)*BatchSize); never changes the output
	Prefetch    int    // batches prepared ahead of the consumer (default 2): bounds memory
	// Shard makes only this process's share of every batch (data-parallel
	// training); the zero value makes whole batches.
	Shard Shard
}

// Shard selects one process's part of every batch in data-parallel
// training: of a batch of n images, process Rank of Size takes the
// contiguous slots Range(n). The zero value (or Size 1) is the whole batch.
// Every slot's view depends on the loader's seed and its position in the
// epoch only, so the shards of all processes make exactly the views of one
// unsharded loader.
type Shard struct {
	Rank, Size int
}

// Range returns the slots [lo, hi) of a batch of n images that the shard
// takes: [Rank*n/Size, (Rank+1)*n/Size).
func (s Shard) Range(n int) (lo, hi int) {
	if s.Size <= 1 {
		return 0, n
	}
	return s.Rank * n / s.Size, (s.Rank + 1) * n / s.Size
}

// Check returns an error unless 0 <= Rank < Size and a batch of n images
// gives every process at least one.
func (s Shard) Check(n int) error {
	if s.Size <= 1 && s.Rank == 0 {
		return nil
	}
	if s.Rank < 0 || s.Rank >= s.Size {
		return fmt.Errorf("rank %d of %d processes", s.Rank, s.Size)
	}
	if n < s.Size {
		return fmt.Errorf("a batch of %d images cannot be split over %d processes (each needs one at least)", n, s.Size)
	}
	return nil
}

// Position is where a loader stands: the next batch it will return. Every
// random choice (epoch order, batch size and interpolation, each view's
// record, mixup partners) comes from an RNG derived from (Seed, Position), so
// (Seed, Position) is the loader's whole random state: a loader with the same
// config started at a saved Position continues exactly as an uninterrupted
// one would.
type Position struct {
	Epoch int // 0-based
	Batch int // batch index within the epoch
}

// BatchItem is one image of a batch.
type BatchItem struct {
	Index   int              // sample index in the source
	Record  Record           // how the view was made (replay with Augment.Replay)
	Targets []dataset.Target // input pixels, half-open xyxy; Score = mixup weight

	skipped []dataset.Skip // images passed over for this slot (producer to Next)
	dropped bool           // no image for this slot (evaluation order): Next removes it
}

// Batch is a batch of views with one input size.
type Batch struct {
	Pos    Position
	Size   int       // input side S
	Interp Interp    // the batch's resize interpolation
	Images []float32 // [N, 3, S, S], normalised; N = len(Items)
	Items  []BatchItem
	// Total is the number of images of the whole batch, all processes'
	// shares together (LoaderConfig.Shard); without a shard, len(Items)
	// (before evaluation order drops images that could not be loaded).
	Total int
	// Skipped lists the images that could not be loaded (Skippable errors)
	// while this batch was made, in slot order. In training order the next
	// loadable image of the epoch's order took each one's place, so the batch
	// is full; in evaluation order the image is left out and the batch is
	// shorter.
	Skipped []dataset.Skip
}

// Loader produces batches in a fixed order on worker goroutines: the output
// for a given seed and position is the same for any Workers and any timing.
// At most Prefetch batches are prepared ahead. Use: NewLoader, Start, Next
// until done, Close. A Loader runs epoch after epoch; the caller stops it.
//
// An image that cannot be loaded (Skippable: missing, truncated, corrupt) does
// not stop the loader: it is listed in Batch.Skipped. In training order (Train)
// its slot is filled by the next image of the epoch's order that loads, with
// the slot's own random choices, so batch sizes, positions and every other
// slot stay as they were (resume and replay are unchanged); in evaluation
// order the slot is left out. Limiting how many may be skipped is the
// caller's (SkipTally). Any other error stops the loader.
type Loader struct {
	cfg     LoaderConfig
	n       int
	perEp   int
	cancel  context.CancelFunc
	out     chan *pending
	wg      sync.WaitGroup
	next    Position
	started bool
	failed  error
}

type pending struct {
	b    *Batch
	left atomic.Int32
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// Streams of the derived RNGs (the second word of NewRNG).
const (
	streamOrder = 1
	streamShape = 2
	streamItem  = 3
)

// NewLoader checks cfg and returns a loader positioned at epoch 0, batch 0.
func NewLoader(cfg LoaderConfig) (*Loader, error) {
	if cfg.Source == nil {
		return nil, errors.New("loader: no source")
	}
	n := cfg.Source.Len()
	if cfg.BatchSize <= 0 {
		return nil, fmt.Errorf("loader: batch size %d", cfg.BatchSize)
	}
	if n == 0 {
		return nil, errors.New("loader: the dataset has no images")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 2
	}
	// At most Prefetch+2 batches are in the making at once: more workers
	// than their images would only idle (a huge data.workers would spawn
	// that many goroutines for nothing).
	cfg.Workers = min(cfg.Workers, (cfg.Prefetch+2)*cfg.BatchSize)
	if cfg.EvalSize <= 0 {
		cfg.EvalSize = 608
	}
	per := n / cfg.BatchSize
	if !cfg.DropLast && n%cfg.BatchSize != 0 {
		per++
	}
	if per == 0 {
		return nil, fmt.Errorf("loader: %d images make no full batch of %d", n, cfg.BatchSize)
	}
	last := cfg.BatchSize
	if !cfg.DropLast && n%cfg.BatchSize != 0 {
		last = n % cfg.BatchSize
	}
	if err := cfg.Shard.Check(min(last, cfg.BatchSize)); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	return &Loader{cfg: cfg, n: n, perEp: per}, nil
}

// BatchesPerEpoch is the number of batches in every epoch.
func (l *Loader) BatchesPerEpoch() int { return l.perEp }

// Position is the position of the next batch Next returns.
func (l *Loader) Position() Position { return l.next }

// order returns the sample order of an epoch.
func (l *Loader) order(epoch int) []int {
	if !l.cfg.Shuffle {
		o := make([]int, l.n)
		for i := range o {
			o[i] = i
		}
		return o
	}
	return dataset.NewRNG(l.cfg.Seed, streamOrder, uint64(epoch)).Perm(l.n)
}

// Start begins producing batches from pos. It may be called once.
func (l *Loader) Start(ctx context.Context, pos Position) error {
	if l.started {
		return errors.New("loader: already started")
	}
	if pos.Epoch < 0 || pos.Batch < 0 || pos.Batch >= l.perEp {
		return fmt.Errorf("loader: position %+v outside an epoch of %d batches", pos, l.perEp)
	}
	l.started = true
	l.next = pos
	ctx, l.cancel = context.WithCancel(ctx)
	l.out = make(chan *pending, l.cfg.Prefetch)
	type job struct {
		p     *pending
		slot  int
		pos   int // position within the epoch
		epoch int
		order []int
	}
	jobs := make(chan job, l.cfg.Workers)
	for w := 0; w < l.cfg.Workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for j := range jobs {
				if ctx.Err() == nil {
					if err := l.makeItem(j.p.b, j.slot, j.epoch, j.pos, j.order); err != nil {
						j.p.mu.Lock()
						if j.p.err == nil {
							j.p.err = err
						}
						j.p.mu.Unlock()
					}
				}
				if j.p.left.Add(-1) == 0 {
					close(j.p.done)
				}
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(jobs)
		defer close(l.out)
		p := pos
		var order []int
		orderEpoch := -1
		for {
			if orderEpoch != p.Epoch {
				order, orderEpoch = l.order(p.Epoch), p.Epoch
			}
			first := p.Batch * l.cfg.BatchSize
			total := min(l.cfg.BatchSize, l.n-first)
			lo, hi := l.cfg.Shard.Range(total)
			first += lo
			count := hi - lo
			b := &Batch{Pos: p, Items: make([]BatchItem, count), Total: total}
			if l.cfg.Train {
				b.Size, b.Interp = l.cfg.Augment.DrawShape(dataset.NewRNG(l.cfg.Seed, streamShape, uint64(p.Epoch), uint64(p.Batch)))
			} else {
				b.Size, b.Interp = l.cfg.EvalSize, l.cfg.EvalInterp
			}
			b.Images = make([]float32, count*3*b.Size*b.Size)
			pd := &pending{b: b, done: make(chan struct{})}
			pd.left.Store(int32(count))
			select {
			case l.out <- pd:
			case <-ctx.Done():
				return
			}
			for k := 0; k < count; k++ {
				select {
				case jobs <- job{p: pd, slot: k, pos: first + k, epoch: p.Epoch, order: order}:
				case <-ctx.Done():
					return
				}
			}
			p.Batch++
			if p.Batch == l.perEp {
				p = Position{Epoch: p.Epoch + 1}
			}
		}
	}()
	return nil
}

// makeItem loads, draws and applies the view at position pos of the epoch
// into slot k of b. Its random choices come from NewRNG(Seed, streamItem,
// epoch, pos) only.
func (l *Loader) makeItem(b *Batch, k, epoch, pos int, order []int) error {
	it := &b.Items[k]
	if !l.cfg.Train {
		idx := order[pos]
		img, t, err := l.cfg.Source.Load(idx)
		if err != nil {
			if !dataset.Skippable(err) {
				return err
			}
			*it = BatchItem{Index: idx, dropped: true, skipped: []dataset.Skip{{Index: idx, Err: err}}}
			return nil
		}
		rec := EvalRecord(int64(idx), b.Size, b.Interp)
		plane := 3 * b.Size * b.Size
		v, err := l.cfg.Augment.Apply(&rec, img, t, nil, nil, b.Images[k*plane:(k+1)*plane])
		if err != nil {
			return err
		}
		*it = BatchItem{Index: idx, Record: rec, Targets: v.Targets}
		return nil
	}
	var skipped []dataset.Skip
	idx, img, t, err := l.loadFrom(order, pos, -1, &skipped)
	if err != nil {
		return err
	}
	a := &l.cfg.Augment
	var pimg *dataset.Image
	var pt []dataset.Target
	r := dataset.NewRNG(l.cfg.Seed, streamItem, uint64(epoch), uint64(pos))
	pidx := int64(-1)
	var pg *Geometry
	if a.Mixup && epoch < l.cfg.MixupEpochs && l.n > 1 {
		// PaddleDetection's reader: a uniformly chosen other sample.
		var p int
		if p, pimg, pt, err = l.loadFrom(order, (pos+1+r.Intn(l.n-1))%l.n, idx, &skipped); err != nil {
			return err
		}
		pidx = int64(p)
		pg = &Geometry{W: pimg.W, H: pimg.H, Targets: pt}
	} else {
		r.Uint64() // keep the stream aligned whether or not mixup is on
	}
	rec := a.Draw(r, int64(idx), Geometry{W: img.W, H: img.H, Targets: t}, pidx, pg, b.Size, b.Interp)
	plane := 3 * b.Size * b.Size
	v, err := a.Apply(&rec, img, t, pimg, pt, b.Images[k*plane:(k+1)*plane])
	if err != nil {
		return err
	}
	*it = BatchItem{Index: idx, Record: rec, Targets: v.Targets, skipped: skipped}
	return nil
}

// loadFrom loads the sample at position pos of the epoch's order or, when it
// cannot be loaded (Skippable), the next one in the order that can, other
// than avoid (a mixup partner is never the image itself). Images passed over
// are appended to skipped. It fails when no image of the split loads.
func (l *Loader) loadFrom(order []int, pos, avoid int, skipped *[]dataset.Skip) (int, *dataset.Image, []dataset.Target, error) {
	for k := 0; k < l.n; k++ {
		idx := order[(pos+k)%l.n]
		if idx == avoid {
			continue
		}
		img, t, err := l.cfg.Source.Load(idx)
		if err == nil {
			return idx, img, t, nil
		}
		if !dataset.Skippable(err) {
			return 0, nil, nil, err
		}
		*skipped = append(*skipped, dataset.Skip{Index: idx, Err: err})
	}
	return 0, nil, nil, fmt.Errorf("none of the %d images could be loaded (the first: %w)", l.n, (*skipped)[0].Err)
}

// settle gathers the batch's skipped images into b.Skipped and removes the
// slots left without an image.
func (b *Batch) settle() {
	if len(b.Items) == 0 {
		return
	}
	plane := len(b.Images) / len(b.Items)
	kept := 0
	for k := range b.Items {
		it := b.Items[k]
		b.Skipped = append(b.Skipped, it.skipped...)
		if it.dropped {
			continue
		}
		it.skipped = nil
		if kept != k {
			copy(b.Images[kept*plane:(kept+1)*plane], b.Images[k*plane:(k+1)*plane])
		}
		b.Items[kept] = it
		kept++
	}
	b.Items = b.Items[:kept]
	b.Images = b.Images[:kept*plane]
}

// Next returns the next batch in order, waiting for it if needed. It returns
// ctx's error when ctx ends first, and the first load or augmentation error
// of the batch (naming the file) otherwise; after an error the loader is
// stopped. The caller owns the returned batch.
func (l *Loader) Next(ctx context.Context) (*Batch, error) {
	if !l.started {
		return nil, errors.New("loader: Next before Start")
	}
	if l.failed != nil {
		return nil, l.failed
	}
	// A cancelled context wins over a batch that is already waiting (select
	// would pick between them at random).
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var p *pending
	var ok bool
	select {
	case p, ok = <-l.out:
		if !ok {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			l.failed = errors.New("loader: stopped")
			return nil, l.failed
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		l.failed = ctx.Err()
		l.Close()
		return nil, ctx.Err()
	}
	if p.err != nil {
		l.failed = fmt.Errorf("loader: epoch %d batch %d: %w", p.b.Pos.Epoch, p.b.Pos.Batch, p.err)
		l.Close()
		return nil, l.failed
	}
	p.b.settle()
	l.next = p.b.Pos
	l.next.Batch++
	if l.next.Batch == l.perEp {
		l.next = Position{Epoch: l.next.Epoch + 1}
	}
	return p.b, nil
}

// Close stops the workers and waits for them. It is safe to call more than
// once; Next fails after it.
func (l *Loader) Close() {
	if l.failed == nil {
		l.failed = errors.New("loader: closed")
	}
	if l.cancel != nil {
		l.cancel()
		// Drain so the producer is not blocked on a full channel.
		go func(out chan *pending) {
			for range out {
			}
		}(l.out)
		l.wg.Wait()
	}
}

// Padded returns the batch's targets in PaddleDetection's padded form (PadBox
// then BboxXYXY2XYWH), for the YOLO loss: per image the first maxBoxes
// targets, the rest zero. A zero-width row is padding.
//
//	boxes:  [N, maxBoxes, 4] centre x, centre y, width, height, divided by Size
//	labels: [N, maxBoxes]
//	scores: [N, maxBoxes] mixup weights (1 without mixup), 0 for padding
func (b *Batch) Padded(maxBoxes int) (boxes []float32, labels []int32, scores []float32) {
	n := len(b.Items)
	boxes = make([]float32, n*maxBoxes*4)
	labels = make([]int32, n*maxBoxes)
	scores = make([]float32, n*maxBoxes)
	for i, it := range b.Items {
		for j, t := range it.Targets {
			if j == maxBoxes {
				break
			}
			k := i*maxBoxes + j
			v := t.NormCXCYWH(b.Size)
			copy(boxes[4*k:4*k+4], v[:])
			labels[k] = int32(t.Label)
			scores[k] = float32(t.Score)
		}
	}
	return boxes, labels, scores
}
