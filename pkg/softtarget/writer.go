package softtarget

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// Option configures a Writer.
type Option func(*Writer)

// WithViewsPerBatch sets how many views go into one Arrow record batch
// (default 1). A reader loads a whole batch to read one of its views, so 1 is
// best for random access; views are megabytes, so per-batch overhead (a few
// hundred bytes) does not matter. The writer holds at most one batch in memory.
func WithViewsPerBatch(n int) Option {
	return func(w *Writer) {
		if n > 0 {
			w.perBatch = n
		}
	}
}

type recordWriter interface {
	Write(arrow.RecordBatch) error
	Close() error
}

// Writer writes views to an Arrow IPC stream or file. It is not safe for
// concurrent use. Every view must have the scales and features Meta declares;
// a view that does not is rejected and the writer stays usable. After any
// other error (writing the output failed) the Writer is unusable: Close
// returns that error and removes a file's temporary file.
type Writer struct {
	l        *layout
	rw       recordWriter
	perBatch int
	cols     []colBuf
	rows     int // rows pending in cols
	batch    []int
	index    []Key
	err      error
	done     bool

	scrObj, scrBC []float32 // float32 scratch of sparse16 encoding
	marks         []colMark

	// file output
	path string
	tmp  *os.File
	bw   *bufio.Writer
}

// NewStreamWriter writes an Arrow IPC stream to w (for stdout and pipes). The
// stream is complete only after Close; a reader of a stream whose writer did
// not Close reports it as truncated.
func NewStreamWriter(w io.Writer, meta Meta, opts ...Option) (*Writer, error) {
	wr, err := newWriter(meta, opts)
	if err != nil {
		return nil, err
	}
	wr.rw = ipc.NewWriter(w, ipc.WithSchema(wr.l.schema))
	return wr, nil
}

// CreateFile writes an Arrow IPC file at path, atomically: the data goes to a
// temporary file in the same folder, which Close syncs and renames over path.
// Abort (or a failed Close) removes the temporary file and leaves path as it was.
func CreateFile(path string, meta Meta, opts ...Option) (*Writer, error) {
	wr, err := newWriter(meta, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	wr.path, wr.tmp = path, tmp
	wr.bw = bufio.NewWriterSize(tmp, 1<<20)
	fw, err := ipc.NewFileWriter(wr.bw, ipc.WithSchema(wr.l.schema))
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	wr.rw = fw
	return wr, nil
}

func newWriter(meta Meta, opts []Option) (*Writer, error) {
	meta.Version = Version
	meta.Replay = maps.Clone(meta.Replay) // the caller may change its map later
	meta.Data = maps.Clone(meta.Data)
	if err := meta.validate(); err != nil {
		return nil, fmt.Errorf("soft-target metadata: %w", err)
	}
	w := &Writer{l: newLayout(meta), perBatch: 1}
	for _, o := range opts {
		o(w)
	}
	w.cols = make([]colBuf, len(w.l.kinds))
	w.resetCols()
	return w, nil
}

// Meta returns the metadata the writer records (Version filled in).
func (w *Writer) Meta() Meta { return w.l.meta }

// Count is the number of views written so far.
func (w *Writer) Count() int { return len(w.index) }

func (w *Writer) resetCols() {
	for i := range w.cols {
		w.cols[i].reset()
	}
	w.rows = 0
}

func (w *Writer) name() string {
	if w.path != "" {
		return w.path
	}
	return "soft-target stream"
}

// Write adds one view. v.Outputs[s] must be [Meta.Channels(s), H_s, W_s];
// v.Features must hold every name of Meta.Features (and no other). Write
// copies what it needs; v may be reused after it returns.
func (w *Writer) Write(v *View) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return fmt.Errorf("%s: write after Close", w.name())
	}
	if err := w.check(v); err != nil {
		return fmt.Errorf("%s: %s: %w", w.name(), Key{v.ImageID, v.ViewIndex}, err)
	}
	if err := w.add(v); err != nil {
		w.err = fmt.Errorf("%s: %w", w.name(), err)
		return w.err
	}
	w.index = append(w.index, Key{v.ImageID, v.ViewIndex})
	if w.rows >= w.perBatch {
		if err := w.flush(); err != nil {
			w.err = fmt.Errorf("%s: %w", w.name(), err)
			return w.err
		}
	}
	return nil
}

func (w *Writer) check(v *View) error {
	m := &w.l.meta
	if v.ViewIndex < 0 || v.ViewIndex > math.MaxInt32 {
		return fmt.Errorf("view index %d outside [0, 2^31)", v.ViewIndex)
	}
	if v.InputH <= 0 || v.InputW <= 0 || v.InputH > math.MaxInt32 || v.InputW > math.MaxInt32 {
		return fmt.Errorf("input size %dx%d", v.InputH, v.InputW)
	}
	if len(v.Outputs) != m.NumScales() {
		return fmt.Errorf("%d scale outputs, metadata declares %d", len(v.Outputs), m.NumScales())
	}
	if n := len(v.PixelHash); n != 0 && n != PixelHashSize {
		return fmt.Errorf("pixel hash of %d bytes, want %d (or none)", n, PixelHashSize)
	}
	for s := range v.Outputs {
		if _, _, err := checkOutputShape(&v.Outputs[s], m.Channels(s)); err != nil {
			return fmt.Errorf("scale %d output: %w", s, err)
		}
	}
	if len(v.Features) != len(m.Features) {
		return fmt.Errorf("%d feature maps, metadata declares %d %s", len(v.Features), len(m.Features), quoteList(m.Features))
	}
	for _, name := range m.Features {
		t, ok := v.Features[name]
		if !ok {
			return fmt.Errorf("feature map %q missing", name)
		}
		n, ok := numel(t.Shape)
		if !ok || len(t.Shape) == 0 || len(t.Shape) > 8 || n != len(t.Data) {
			return fmt.Errorf("feature map %q: shape %v with %d values", name, t.Shape, len(t.Data))
		}
		for _, d := range t.Shape {
			if d > math.MaxInt32 {
				return fmt.Errorf("feature map %q: shape %v", name, t.Shape)
			}
		}
	}
	return nil
}

func (w *Writer) add(v *View) error {
	l := w.l
	if len(w.marks) != len(w.cols) {
		w.marks = make([]colMark, len(w.cols))
	}
	for i := range w.cols {
		w.marks[i] = w.cols[i].mark()
	}
	if err := w.addValues(v); err != nil {
		return err
	}
	var crc uint32
	for i := range w.cols[:l.cCRC] {
		crc = w.cols[i].crcSince(crc, w.marks[i])
	}
	w.cols[l.cCRC].i32 = append(w.cols[l.cCRC].i32, int32(crc))
	w.rows++
	return nil
}

// addValues appends v's values to every column but the checksum.
func (w *Writer) addValues(v *View) error {
	l, m := w.l, &w.l.meta
	c := w.cols
	c[l.cImageID].i64 = append(c[l.cImageID].i64, v.ImageID)
	c[l.cFile].data = append(c[l.cFile].data, v.File...)
	if err := c[l.cFile].endRow(len(c[l.cFile].data)); err != nil {
		return err
	}
	c[l.cView].i32 = append(c[l.cView].i32, int32(v.ViewIndex))
	c[l.cAug].data = append(c[l.cAug].data, v.Aug...)
	if err := c[l.cAug].endRow(len(c[l.cAug].data)); err != nil {
		return err
	}
	c[l.cInH].i32 = append(c[l.cInH].i32, int32(v.InputH))
	c[l.cInW].i32 = append(c[l.cInW].i32, int32(v.InputW))
	half := m.Encoding.Half
	thr := m.Encoding.logitThreshold()
	for s := range v.Outputs {
		t := &v.Outputs[s]
		h, wd := t.Shape[1], t.Shape[2]
		c[l.cH[s]].i32 = append(c[l.cH[s]].i32, int32(h))
		c[l.cW[s]].i32 = append(c[l.cW[s]].i32, int32(wd))
		if m.Encoding.Kind == Dense {
			if err := c[l.cOut[s]].appendFloats(half, t.Data); err != nil {
				return err
			}
			continue
		}
		a, k, hw := len(m.Masks[s]), 5+len(m.Classes), h*wd
		co, ci, cb := &c[l.cObj[s]], &c[l.cIdx[s]], &c[l.cBoxCls[s]]
		if half {
			// Encode in float32 scratch, then convert: one code path decides what is stored.
			w.scrObj, ci.i32, w.scrBC = sparseEncode(t.Data, a, k, hw, thr, w.scrObj[:0], ci.i32, w.scrBC[:0])
			if err := co.appendFloats(true, w.scrObj); err != nil {
				return err
			}
			if err := cb.appendFloats(true, w.scrBC); err != nil {
				return err
			}
		} else {
			co.f32, ci.i32, cb.f32 = sparseEncode(t.Data, a, k, hw, thr, co.f32, ci.i32, cb.f32)
			if err := co.endRow(len(co.f32)); err != nil {
				return err
			}
			if err := cb.endRow(len(cb.f32)); err != nil {
				return err
			}
		}
		if err := ci.endRow(len(ci.i32)); err != nil {
			return err
		}
	}
	for f, name := range m.Features {
		t := v.Features[name]
		if err := c[l.cFeat[f]].appendFloats(half, t.Data); err != nil {
			return err
		}
		cs := &c[l.cFeatShape[f]]
		for _, d := range t.Shape {
			cs.i32 = append(cs.i32, int32(d))
		}
		if err := cs.endRow(len(cs.i32)); err != nil {
			return err
		}
	}
	if l.cHash >= 0 {
		ch := &c[l.cHash]
		ch.data = append(ch.data, v.PixelHash...)
		if err := ch.endRow(len(ch.data)); err != nil {
			return err
		}
	}
	return nil
}

// flush writes the pending rows as one record batch.
func (w *Writer) flush() error {
	if w.rows == 0 {
		return nil
	}
	if err := w.writeBatch(w.rows, arrow.Metadata{}); err != nil {
		return err
	}
	w.batch = append(w.batch, w.rows)
	w.resetCols()
	return nil
}

func (w *Writer) writeBatch(rows int, md arrow.Metadata) error {
	cols := make([]arrow.Array, len(w.cols))
	for i := range w.cols {
		cols[i] = w.cols[i].array(w.l.schema.Field(i).Type, w.l.kinds[i], rows)
	}
	rec := array.NewRecordBatchWithMetadata(w.l.schema, cols, int64(rows), md)
	for _, c := range cols {
		c.Release()
	}
	defer rec.Release()
	return w.rw.Write(rec)
}

// Close flushes the last batch, writes the end marker (trailer batch) and
// closes the Arrow stream or file; a file is then synced and renamed into
// place. Close does not close the io.Writer of NewStreamWriter.
func (w *Writer) Close() error {
	if w.done {
		return w.err
	}
	w.done = true
	err := w.err
	if err == nil {
		err = w.finish()
	}
	if err != nil {
		w.err = err
		if w.tmp != nil {
			w.abortFile()
		}
		return err
	}
	if w.tmp != nil {
		if err := w.commitFile(); err != nil {
			w.err = fmt.Errorf("%s: %w", w.path, err)
			return w.err
		}
	}
	return nil
}

func (w *Writer) finish() error {
	if err := w.flush(); err != nil {
		return fmt.Errorf("%s: %w", w.name(), err)
	}
	w.resetCols()
	if err := w.writeBatch(0, trailerMetadata(w.batch, w.index)); err != nil {
		return fmt.Errorf("%s: writing the end marker: %w", w.name(), err)
	}
	if err := w.rw.Close(); err != nil {
		return fmt.Errorf("%s: %w", w.name(), err)
	}
	return nil
}

func (w *Writer) commitFile() error {
	var err error
	if err = w.bw.Flush(); err == nil {
		if err = w.tmp.Chmod(0o644); err == nil {
			if err = w.tmp.Sync(); err == nil {
				err = w.tmp.Close()
				if err == nil {
					err = os.Rename(w.tmp.Name(), w.path)
				}
			}
		}
	}
	if err != nil {
		w.tmp.Close()
		os.Remove(w.tmp.Name())
		return err
	}
	if d, derr := os.Open(filepath.Dir(w.path)); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (w *Writer) abortFile() {
	w.tmp.Close()
	os.Remove(w.tmp.Name())
}

// Abort ends the writer without the end marker. A file's temporary file is
// removed (the destination is untouched); a stream is left without its end
// marker, so readers report it truncated.
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.err == nil {
		w.err = errors.New("aborted")
	}
	if w.tmp != nil {
		w.abortFile()
	}
	return nil
}

func trailerMetadata(batchRows []int, index []Key) arrow.Metadata {
	var br, ix strings.Builder
	for i, n := range batchRows {
		if i > 0 {
			br.WriteByte(',')
		}
		br.WriteString(strconv.Itoa(n))
	}
	for i, k := range index {
		if i > 0 {
			ix.WriteByte(' ')
		}
		ix.WriteString(strconv.FormatInt(k.ImageID, 10))
		ix.WriteByte(':')
		ix.WriteString(strconv.Itoa(k.View))
	}
	return arrow.NewMetadata(
		[]string{KeyTrailer, KeyBatchRows, KeyIndex},
		[]string{strconv.Itoa(len(index)), br.String(), ix.String()})
}

// parseTrailer reads a trailer's metadata.
func parseTrailer(md arrow.Metadata) (batchRows []int, index []Key, err error) {
	get := func(k string) string {
		if i := md.FindKey(k); i >= 0 {
			return md.Values()[i]
		}
		return ""
	}
	n, err := strconv.Atoi(get(KeyTrailer))
	if err != nil || n < 0 {
		return nil, nil, fmt.Errorf("bad end marker: view count %q", get(KeyTrailer))
	}
	if s := get(KeyBatchRows); s != "" {
		total := 0
		for _, f := range strings.Split(s, ",") {
			r, err := strconv.Atoi(f)
			if err != nil || r <= 0 || r > n-total {
				return nil, nil, fmt.Errorf("bad end marker: batch rows %q", f)
			}
			total += r
			batchRows = append(batchRows, r)
		}
		if total != n {
			return nil, nil, fmt.Errorf("bad end marker: batches hold %d rows, count says %d", total, n)
		}
	} else if n != 0 {
		return nil, nil, fmt.Errorf("bad end marker: %d views but no batches", n)
	}
	if s := get(KeyIndex); s != "" {
		fs := strings.Split(s, " ")
		if len(fs) != n {
			return nil, nil, fmt.Errorf("bad end marker: index has %d entries, count says %d", len(fs), n)
		}
		index = make([]Key, n)
		for i, f := range fs {
			id, view, ok := strings.Cut(f, ":")
			a, err1 := strconv.ParseInt(id, 10, 64)
			b, err2 := strconv.Atoi(view)
			if !ok || err1 != nil || err2 != nil || b < 0 {
				return nil, nil, fmt.Errorf("bad end marker: index entry %q", f)
			}
			index[i] = Key{a, b}
		}
	} else if n != 0 {
		return nil, nil, fmt.Errorf("bad end marker: %d views but no index", n)
	}
	return batchRows, index, nil
}
