package augment

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"yolodistill/pkg/box"
	"yolodistill/pkg/dataset"
)

// memSource serves synthetic images of varying sizes from memory.
type memSource struct {
	imgs    []*dataset.Image
	targets [][]dataset.Target
	failAt  int          // Load(failAt) fails; -1 never
	damaged map[int]bool // Load fails with an *ImageError (skippable)
}

func newMemSource(n int) *memSource {
	m := &memSource{failAt: -1}
	for i := 0; i < n; i++ {
		opts := dataset.SynthOptions{Images: n, Size: 64 + 8*(i%3), Seed: 1, MinObjects: 1, MaxObjects: 5, MinObject: 6, MaxObject: 20}
		s, img := dataset.SynthImage(opts, i)
		f := img
		if i%2 == 1 { // a non-square one: crop the right part off
			w := f.W - 16
			g := dataset.NewImage(w, f.H)
			for y := 0; y < f.H; y++ {
				copy(g.Pix[y*w*3:(y+1)*w*3], f.Pix[y*f.W*3:y*f.W*3+w*3])
			}
			f = g
			var kept []dataset.Object
			for _, o := range s.Objects {
				if o.Box.X1 <= float64(w) {
					kept = append(kept, o)
				}
			}
			s.Objects = kept
		}
		m.imgs = append(m.imgs, f)
		m.targets = append(m.targets, dataset.TargetsOf(s.Objects))
	}
	return m
}

func (m *memSource) Len() int { return len(m.imgs) }
func (m *memSource) Load(i int) (*dataset.Image, []dataset.Target, error) {
	if i == m.failAt {
		return nil, nil, fmt.Errorf("img%03d.jpg: corrupt jpeg", i)
	}
	if m.damaged[i] {
		return nil, nil, &dataset.ImageError{File: fmt.Sprintf("img%03d.jpg", i), Kind: dataset.KindImageCorrupt, Err: errors.New("truncated jpeg")}
	}
	return m.imgs[i], m.targets[i], nil
}

func testLoaderConfig(src dataset.Source, workers int) LoaderConfig {
	aug := DefaultConfig()
	aug.Sizes = []int{32, 48, 64}
	return LoaderConfig{Source: src, Augment: aug, BatchSize: 4, Seed: 77, Shuffle: true, DropLast: true,
		Train: true, MixupEpochs: 1, Workers: workers, Prefetch: 2}
}

func hashBatch(b *Batch) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d %d %d %d|", b.Pos.Epoch, b.Pos.Batch, b.Size, b.Interp)
	binary.Write(h, binary.LittleEndian, b.Images)
	for _, it := range b.Items {
		rb, _ := it.Record.MarshalBinary()
		h.Write(rb)
		fmt.Fprintf(h, "%d|", it.Index)
		for _, t := range it.Targets {
			binary.Write(h, binary.LittleEndian, [6]float64{t.Box.X0, t.Box.Y0, t.Box.X1, t.Box.Y1, t.Score, float64(t.Label)})
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func runLoader(t *testing.T, cfg LoaderConfig, from Position, n int) []string {
	t.Helper()
	l, err := NewLoader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Start(context.Background(), from); err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := 0; i < n; i++ {
		b, err := l.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hashBatch(b))
	}
	return out
}

func TestLoaderDeterministicAcrossWorkers(t *testing.T) {
	src := newMemSource(10) // 2 full batches of 4 per epoch (DropLast)
	a := runLoader(t, testLoaderConfig(src, 1), Position{}, 6)
	b := runLoader(t, testLoaderConfig(src, 4), Position{}, 6)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("batch %d differs between 1 and 4 workers", i)
		}
	}
	// Different epochs give different batches.
	if a[0] == a[2] {
		t.Error("epoch 0 and epoch 1 first batches are identical")
	}
	// Resume from epoch 1, batch 1 continues exactly.
	c := runLoader(t, testLoaderConfig(src, 3), Position{Epoch: 1, Batch: 1}, 3)
	for i := range c {
		if c[i] != a[3+i] {
			t.Fatalf("resumed batch %d differs from the uninterrupted run", i)
		}
	}
	// Another seed changes things.
	cfg := testLoaderConfig(src, 2)
	cfg.Seed = 78
	if d := runLoader(t, cfg, Position{}, 1); d[0] == a[0] {
		t.Error("seed change left the first batch unchanged")
	}
}

func TestLoaderBatchesReplayAndShape(t *testing.T) {
	src := newMemSource(9)
	cfg := testLoaderConfig(src, 2)
	cfg.DropLast = false
	l, err := NewLoader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.BatchesPerEpoch() != 3 {
		t.Fatalf("%d batches per epoch, want 3", l.BatchesPerEpoch())
	}
	if err := l.Start(context.Background(), Position{}); err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	mixed := 0
	for i := 0; i < 6; i++ {
		b, err := l.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wantN := 4
		if b.Pos.Batch == 2 {
			wantN = 1
		}
		if len(b.Items) != wantN || len(b.Images) != wantN*3*b.Size*b.Size {
			t.Fatalf("batch %+v: %d items, %d values", b.Pos, len(b.Items), len(b.Images))
		}
		plane := 3 * b.Size * b.Size
		for k, it := range b.Items {
			if b.Pos.Epoch == 0 {
				seen[it.Index]++
			}
			if it.Record.Partner >= 0 {
				mixed++
				if b.Pos.Epoch > 0 {
					t.Fatalf("mixup in epoch %d with MixupEpochs 1", b.Pos.Epoch)
				}
			}
			if int(it.Record.Size) != b.Size || it.Record.Interp != b.Interp {
				t.Fatalf("item size %d/%v, batch %d/%v", it.Record.Size, it.Record.Interp, b.Size, b.Interp)
			}
			v, err := cfg.Augment.Replay(src, &it.Record, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := b.Images[k*plane : (k+1)*plane]
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(v.Image[j]) {
					t.Fatalf("batch %+v item %d: replayed pixel %d differs", b.Pos, k, j)
				}
			}
			if len(v.Targets) != len(it.Targets) {
				t.Fatalf("replayed targets differ")
			}
		}
		if l.Position() != (Position{Epoch: (i + 1) / 3, Batch: (i + 1) % 3}) {
			t.Fatalf("after batch %d: position %+v", i, l.Position())
		}
	}
	if len(seen) != 9 {
		t.Errorf("epoch 0 covered %d of 9 images", len(seen))
	}
	if mixed == 0 {
		t.Error("no mixup in epoch 0")
	}
}

func TestLoaderCancelAndErrors(t *testing.T) {
	src := newMemSource(8)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := NewLoader(testLoaderConfig(src, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx, Position{}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Next(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := l.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v, want context.Canceled", err)
	}
	done := make(chan struct{})
	go func() { l.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after cancel")
	}

	bad := newMemSource(8)
	bad.failAt = 5
	cfg := testLoaderConfig(bad, 2)
	cfg.Shuffle = false
	cfg.MixupEpochs = 0
	l2, err := NewLoader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	l2.Start(context.Background(), Position{})
	if _, err := l2.Next(context.Background()); err != nil {
		t.Fatalf("first batch (images 0-3): %v", err)
	}
	_, err = l2.Next(context.Background())
	if err == nil || !strings.Contains(err.Error(), "img005.jpg") {
		t.Fatalf("batch with a bad image: %v", err)
	}
	if _, err := NewLoader(LoaderConfig{Source: newMemSource(2), BatchSize: 4, DropLast: true}); err == nil {
		t.Error("2 images in batches of 4 with DropLast: no error")
	}
}

// BenchmarkLoaderBCCD measures loader throughput on BCCD at 416 px with the
// full augmentation (mixup, colour, expand, crop, flip, random interpolation).
// Reports images/s.
func BenchmarkLoaderBCCD(b *testing.B) {
	root := filepath.Join("..", "..", "..", "shared", "datasets", "bccd")
	if _, err := os.Stat(root); err != nil {
		b.Skipf("BCCD not found at %s", root)
	}
	ds, ps := dataset.ReadVOC(root, dataset.VOCOptions{Split: "train"})
	if ps.Count(dataset.Error) > 0 && (ds == nil || len(ds.Samples) == 0) {
		b.Fatalf("reading BCCD: %v", ps.Err())
	}
	aug := DefaultConfig()
	aug.Sizes = []int{416}
	cfg := LoaderConfig{Source: dataset.DatasetSource{DS: ds}, Augment: aug, BatchSize: 8, Seed: 1, Shuffle: true,
		DropLast: true, Train: true, MixupEpochs: 1 << 30}
	l, err := NewLoader(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	l.Start(context.Background(), Position{})
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	imgs := 0
	for i := 0; i < b.N; i++ {
		bt, err := l.Next(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		imgs += len(bt.Items)
	}
	b.ReportMetric(float64(imgs)/time.Since(start).Seconds(), "images/s")
	// CPU seconds per image, so the number means something on a shared machine.
	b.ReportMetric(float64(imgs)/(cpuTime()-cpu0).Seconds(), "images/cpu-s")
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestLoaderBCCDEval runs one un-augmented batch of real VOC data through the
// loader: boxes are the annotation's, scaled to the input size.
func TestLoaderBCCDEval(t *testing.T) {
	root := filepath.Join("..", "..", "..", "shared", "datasets", "bccd")
	if _, err := os.Stat(root); err != nil {
		t.Skipf("BCCD not found at %s", root)
	}
	ds, _ := dataset.ReadVOC(root, dataset.VOCOptions{Split: "test"})
	if ds == nil || len(ds.Samples) < 4 {
		t.Fatal("BCCD test split did not load")
	}
	ds.Samples = ds.Samples[:4]
	cfg := LoaderConfig{Source: dataset.DatasetSource{DS: ds}, Augment: DefaultConfig(), BatchSize: 4,
		EvalSize: 320, EvalInterp: InterpCubic, Workers: 2}
	cfg.Augment.MaxBoxes = 0
	l, err := NewLoader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Start(context.Background(), Position{})
	b, err := l.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.Size != 320 || len(b.Images) != 4*3*320*320 {
		t.Fatalf("batch size %d, %d values", b.Size, len(b.Images))
	}
	for k, it := range b.Items {
		s := ds.Samples[k]
		if it.Index != k || len(it.Targets) != len(s.Objects) {
			t.Fatalf("item %d: index %d, %d targets for %d objects", k, it.Index, len(it.Targets), len(s.Objects))
		}
		sx, sy := 320/float64(s.Width), 320/float64(s.Height)
		for j, o := range s.Objects {
			want := o.Box
			want.X0, want.X1, want.Y0, want.Y1 = want.X0*sx, want.X1*sx, want.Y0*sy, want.Y1*sy
			if !boxNear(it.Targets[j].Box, want, 1e-9) || it.Targets[j].Score != 1 {
				t.Fatalf("item %d box %d: %+v, want %v", k, j, it.Targets[j], want)
			}
		}
	}
	// Normalised pixels are in the range (0..255 - mean) / std.
	for _, v := range b.Images {
		if v < -2.2 || v > 2.7 {
			t.Fatalf("normalised value %v out of range", v)
		}
	}
}

func TestBatchPadded(t *testing.T) {
	b := &Batch{Size: 100, Items: []BatchItem{
		{Targets: []dataset.Target{{Box: box.Box{X0: 10, Y0: 20, X1: 30, Y1: 60}, Label: 2, Score: 0.25}, tgt(0, 0, 50, 50), tgt(1, 1, 2, 2)}},
		{},
	}}
	boxes, labels, scores := b.Padded(2)
	wantBoxes := []float32{0.2, 0.4, 0.2, 0.4, 0.25, 0.25, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0}
	for i := range wantBoxes {
		if math.Abs(float64(boxes[i]-wantBoxes[i])) > 1e-7 {
			t.Fatalf("boxes %v, want %v", boxes, wantBoxes)
		}
	}
	if labels[0] != 2 || labels[1] != 1 || labels[2] != 0 || scores[0] != 0.25 || scores[1] != 1 || scores[2] != 0 {
		t.Fatalf("labels %v scores %v", labels, scores)
	}
}

// TestLoaderSkipsDamagedImages: in training order an image that fails with
// an *ImageError is listed in Batch.Skipped and the next image of the
// epoch's order fills its slot (batches stay full, every slot keeps its own
// random choices, the output is the same for any worker count and every
// batch that does not meet the image is unchanged); a mixup partner is
// replaced the same way. In evaluation order the image is left out.
func TestLoaderSkipsDamagedImages(t *testing.T) {
	healthy := newMemSource(10)
	src := newMemSource(10)
	src.damaged = map[int]bool{3: true, 7: true}
	collect := func(cfg LoaderConfig, n int) ([]*Batch, []string) {
		l, err := NewLoader(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.Start(context.Background(), Position{}); err != nil {
			t.Fatal(err)
		}
		var bs []*Batch
		var hs []string
		for i := 0; i < n; i++ {
			b, err := l.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			bs = append(bs, b)
			hs = append(hs, hashBatch(b)+fmt.Sprint(b.Skipped))
		}
		return bs, hs
	}
	const batches = 8 // 4 epochs of 2 batches of 4 (DropLast); mixup in epoch 0
	ref, refHash := collect(testLoaderConfig(healthy, 2), batches)
	got, h1 := collect(testLoaderConfig(src, 1), batches)
	_, h4 := collect(testLoaderConfig(src, 4), batches)
	seen := map[int]int{}
	for i, b := range got {
		if h1[i] != h4[i] {
			t.Errorf("batch %d differs between 1 and 4 workers", i)
		}
		if len(b.Items) != 4 {
			t.Errorf("batch %d: %d items, want 4 (a full batch)", i, len(b.Items))
		}
		met := false
		for _, it := range b.Items {
			if src.damaged[it.Index] || src.damaged[int(it.Record.Partner)] {
				t.Errorf("batch %d: item of sample %d (partner %d) uses a damaged image", i, it.Index, it.Record.Partner)
			}
		}
		for k, it := range ref[i].Items {
			if src.damaged[it.Index] || (it.Record.Partner >= 0 && src.damaged[int(it.Record.Partner)]) {
				met = true
				continue
			}
			// A slot that did not meet a damaged image is the healthy loader's.
			if got := b.Items[k].Record; got != it.Record {
				t.Errorf("batch %d slot %d: record %+v, healthy %+v", i, k, got, it.Record)
			}
		}
		for _, s := range b.Skipped {
			seen[s.Index]++
			if !src.damaged[s.Index] || !dataset.Skippable(s.Err) || s.File() != fmt.Sprintf("img%03d.jpg", s.Index) {
				t.Errorf("batch %d: skip %+v", i, s)
			}
		}
		if met != (len(b.Skipped) > 0) {
			t.Errorf("batch %d: met a damaged image %v, skipped %v", i, met, b.Skipped)
		}
		if !met && h1[i] != refHash[i] {
			t.Errorf("batch %d meets no damaged image but differs from the healthy loader's", i)
		}
	}
	if seen[3] == 0 || seen[7] == 0 {
		t.Errorf("skips seen %v, want both damaged images", seen)
	}

	// Evaluation order: left out, the batch is shorter.
	cfg := LoaderConfig{Source: src, Augment: DefaultConfig(), BatchSize: 4, EvalSize: 32, Workers: 3}
	l, err := NewLoader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Start(context.Background(), Position{})
	var idx []int
	var skipped []int
	for b := 0; b < l.BatchesPerEpoch(); b++ {
		batch, err := l.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(batch.Images) != len(batch.Items)*3*32*32 {
			t.Errorf("eval batch %d: %d floats for %d items", b, len(batch.Images), len(batch.Items))
		}
		for _, it := range batch.Items {
			idx = append(idx, it.Index)
		}
		for _, s := range batch.Skipped {
			skipped = append(skipped, s.Index)
		}
	}
	if fmt.Sprint(idx) != "[0 1 2 4 5 6 8 9]" || fmt.Sprint(skipped) != "[3 7]" {
		t.Errorf("evaluation order: items %v, skipped %v", idx, skipped)
	}
	// The images that did load are the healthy loader's.
	hc := cfg
	hc.Source = healthy
	hl, err := NewLoader(hc)
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	hl.Start(context.Background(), Position{})
	first, _ := hl.Next(context.Background())
	l2, _ := NewLoader(cfg)
	defer l2.Close()
	l2.Start(context.Background(), Position{})
	b0, _ := l2.Next(context.Background())
	plane := 3 * 32 * 32
	for k := 0; k < 3; k++ {
		for i := 0; i < plane; i++ {
			if b0.Images[k*plane+i] != first.Images[k*plane+i] {
				t.Fatalf("eval image %d differs from the healthy loader's", k)
			}
		}
	}
}

func TestSkipTallyAndAllowed(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		n    int
		want int
	}{{0.01, 292, 3}, {0.01, 100, 1}, {0.01, 2, 1}, {0.01, 1, 0}, {0, 500, 0}, {0.5, 10, 5}, {1, 10, 9}, {0.03, 100, 3}} {
		if got := AllowedSkips(tc.f, tc.n); got != tc.want {
			t.Errorf("AllowedSkips(%v, %d) = %d, want %d", tc.f, tc.n, got, tc.want)
		}
	}
	ta := SkipTally{Allowed: 1, Split: 10, Fraction: 0.1, Key: "data.skip_limit"}
	e := func(i int) dataset.Skip {
		return dataset.Skip{Index: i, Err: &dataset.ImageError{File: fmt.Sprintf("f%d.jpg", i), Err: errors.New("corrupt")}}
	}
	if fresh := ta.Add([]dataset.Skip{e(2), e(2)}); len(fresh) != 1 || ta.Over() || ta.Err() != nil {
		t.Fatalf("one image twice: fresh %v, over %v", fresh, ta.Over())
	}
	if fresh := ta.Add([]dataset.Skip{e(2), e(5)}); len(fresh) != 1 || fresh[0].Index != 5 || !ta.Over() {
		t.Fatalf("second image: fresh %v, over %v", fresh, ta.Over())
	}
	if err := ta.Err(); err == nil || !strings.Contains(err.Error(), "f2.jpg") || !strings.Contains(err.Error(), "f5.jpg") ||
		!strings.Contains(err.Error(), "2 of 10 images") || !strings.Contains(err.Error(), "data.skip_limit=0.1") {
		t.Errorf("Err: %v", err)
	}
}

// TestShardedLoader: the shards of 2 and 3 processes (uneven shares of a
// batch of 4) make, slot for slot, the views of the unsharded loader, with
// damaged images skipped as it skips them (each slot is filled on its own),
// from the start and from a saved position; a batch smaller than the
// process count is refused.
func TestShardedLoader(t *testing.T) {
	src := newMemSource(10)
	src.damaged = map[int]bool{3: true}
	collect := func(cfg LoaderConfig, from Position, n int) []*Batch {
		l, err := NewLoader(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.Start(context.Background(), from); err != nil {
			t.Fatal(err)
		}
		var bs []*Batch
		for range n {
			b, err := l.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			bs = append(bs, b)
		}
		return bs
	}
	for _, from := range []Position{{}, {Epoch: 1, Batch: 1}} {
		whole := collect(testLoaderConfig(src, 2), from, 6)
		for _, size := range []int{2, 3} {
			shards := make([][]*Batch, size)
			for r := range size {
				cfg := testLoaderConfig(src, 1+r)
				cfg.Shard = Shard{Rank: r, Size: size}
				shards[r] = collect(cfg, from, 6)
			}
			for i, w := range whole {
				var joined Batch
				joined.Pos, joined.Size, joined.Interp = w.Pos, w.Size, w.Interp
				for r := range size {
					b := shards[r][i]
					lo, hi := b.Total*r/size, b.Total*(r+1)/size
					if b.Total != 4 || len(b.Items) != hi-lo || b.Pos != w.Pos || b.Size != w.Size {
						t.Fatalf("%d processes, rank %d, batch %d: %d of %d items at %+v size %d", size, r, i, len(b.Items), b.Total, b.Pos, b.Size)
					}
					joined.Items = append(joined.Items, b.Items...)
					joined.Images = append(joined.Images, b.Images...)
					joined.Skipped = append(joined.Skipped, b.Skipped...)
				}
				if hashBatch(&joined) != hashBatch(w) || fmt.Sprint(joined.Skipped) != fmt.Sprint(w.Skipped) {
					t.Errorf("from %+v, %d processes: batch %d differs from the unsharded loader's", from, size, i)
				}
			}
		}
	}
	cfg := testLoaderConfig(src, 1)
	cfg.Shard = Shard{Rank: 0, Size: 5}
	if _, err := NewLoader(cfg); err == nil || !strings.Contains(err.Error(), "cannot be split over 5") {
		t.Errorf("a batch of 4 over 5 processes: %v", err)
	}
}
