package softtarget

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var (
	fileMagic     = []byte("ARROW1")
	streamContTok = []byte{0xff, 0xff, 0xff, 0xff}
)

const (
	maxMetaLen   = 256 << 20 // an IPC message header (the trailer's index included)
	maxSchemaLen = 4 << 20   // the schema message
	maxBodyLen   = 16 << 30  // one record batch body
	directAllocN = 16 << 20  // bodies up to this size are allocated at once; larger grow as bytes arrive
)

// Reader reads views from a soft-target Arrow IPC file (random access) or
// stream (sequential). It is not safe for concurrent use. Errors name the
// input; a truncated or corrupt input is always an error, never a clean end.
type Reader struct {
	name string
	l    *layout
	err  error // sticky

	closer io.Closer

	// stream (sequential) input
	mr        *msgReader
	ar        *ipc.Reader
	br        *bufio.Reader
	seqFile   bool // an IPC file read front to back: the footer follows the stream
	rec       arrow.RecordBatch
	recRow    int
	seen      []Key
	seenBatch []int
	ended     bool

	// file (random access) input
	fr         *ipc.FileReader
	batchRows  []int
	batchStart []int // first row of each batch
	index      []Key
	byKey      map[Key]int
	cacheB     int
	cacheRec   arrow.RecordBatch
	next       int

	scrA, scrB []float32 // float16 decoding scratch
}

// Open opens path. An Arrow IPC file (magic "ARROW1") that is a regular file
// gets random access; anything else is read as a stream, sequentially.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var magic [8]byte
	n, _ := f.ReadAt(magic[:], 0)
	st, serr := f.Stat()
	if n >= len(fileMagic) && bytes.Equal(magic[:len(fileMagic)], fileMagic) && serr == nil && st.Mode().IsRegular() {
		r, err := NewFileReader(f, st.Size(), path)
		if err != nil {
			f.Close()
			return nil, err
		}
		r.closer = f
		return r, nil
	}
	r, err := NewReader(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// ErrEmpty is wrapped by NewReader's error for an input with no bytes at all
// (in a pipe: the writer failed before it wrote anything).
var ErrEmpty = errors.New("empty input")

// pipeHint is what a truncated stream on stdin ("-") most likely means.
func pipeHint(name string) string {
	if name != "-" {
		return ""
	}
	return ": the writer stopped before the end; see its error above"
}

// NewReader reads a soft-target stream from r sequentially; name is used in
// errors (e.g. "-" or "stdin"). The bytes of an IPC file are accepted too
// (read front to back, footer checked at the end). Close does not close r.
func NewReader(r io.Reader, name string) (_ *Reader, err error) {
	defer recoverTo(&err, name)
	rd := &Reader{name: name, cacheB: -1}
	rd.br = bufio.NewReaderSize(r, 4096) // bodies larger than this bypass the buffer
	head, perr := rd.br.Peek(8)
	switch {
	case len(head) == 0:
		return nil, fmt.Errorf("%s: %w, not a soft-target stream", name, ErrEmpty)
	case bytes.HasPrefix(head, fileMagic) && len(head) == 8:
		rd.seqFile = true
		rd.br.Discard(8)
	case bytes.HasPrefix(head, streamContTok):
	case perr != nil:
		return nil, fmt.Errorf("%s: truncated: %d bytes, not a soft-target stream%s", name, len(head), pipeHint(name))
	default:
		return nil, fmt.Errorf("%s: not an Arrow IPC stream or file (starts with % x)", name, head)
	}
	rd.mr = &msgReader{r: rd.br}
	ar, err := ipc.NewReaderFromMessageReader(rd.mr)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the schema: %w", name, err)
	}
	rd.ar = ar
	if err := rd.initSchema(ar.Schema()); err != nil {
		ar.Release()
		return nil, err
	}
	return rd, nil
}

// ReadAtSeeker is what random access needs (an *os.File, a *bytes.Reader).
type ReadAtSeeker interface {
	io.Reader
	io.ReaderAt
	io.Seeker
}

// NewFileReader reads an Arrow IPC file of size bytes from f with random
// access; name is used in errors. Close does not close f.
func NewFileReader(f ReadAtSeeker, size int64, name string) (_ *Reader, err error) {
	defer recoverTo(&err, name)
	if err := precheckFile(f, size); err != nil {
		return nil, fmt.Errorf("%s: not a complete Arrow IPC file (truncated?): %w", name, err)
	}
	fr, err := ipc.NewFileReader(f, ipc.WithFooterOffset(size), ipc.WithMetadataSizeLimit(maxMetaLen), ipc.WithBodySizeLimit(maxBodyLen))
	if err != nil {
		return nil, fmt.Errorf("%s: not a complete Arrow IPC file (truncated?): %w", name, err)
	}
	rd := &Reader{name: name, fr: fr, cacheB: -1}
	if err := rd.initSchema(fr.Schema()); err != nil {
		fr.Close()
		return nil, err
	}
	nb := fr.NumRecords()
	if nb == 0 {
		fr.Close()
		return nil, fmt.Errorf("%s: no end marker (truncated file)", name)
	}
	tr, err := fr.RecordBatchAt(nb - 1)
	if err != nil {
		fr.Close()
		return nil, fmt.Errorf("%s: reading the end marker: %w", name, err)
	}
	md, isTrailer := trailerOf(tr)
	rows := tr.NumRows()
	tr.Release()
	if !isTrailer || rows != 0 {
		fr.Close()
		return nil, fmt.Errorf("%s: last record batch is not the end marker (truncated or not written by this program)", name)
	}
	rd.batchRows, rd.index, err = parseTrailer(md)
	if err == nil && len(rd.batchRows) != nb-1 {
		err = fmt.Errorf("end marker lists %d batches, file has %d", len(rd.batchRows), nb-1)
	}
	if err != nil {
		fr.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	rd.batchStart = make([]int, len(rd.batchRows))
	start := 0
	for b, n := range rd.batchRows {
		rd.batchStart[b] = start
		start += n
	}
	rd.byKey = make(map[Key]int, len(rd.index))
	for i, k := range rd.index {
		if _, dup := rd.byKey[k]; !dup {
			rd.byKey[k] = i
		}
	}
	return rd, nil
}

// precheckFile checks the footer and every record batch's message header of
// an IPC file with fbCheck before arrow-go reads them.
func precheckFile(f io.ReaderAt, size int64) error {
	if size < 8+8+10 {
		return fmt.Errorf("%d bytes", size)
	}
	var tail [10]byte
	if _, err := f.ReadAt(tail[:], size-10); err != nil {
		return err
	}
	if !bytes.Equal(tail[4:], fileMagic) {
		return errors.New("no footer magic at the end")
	}
	fl := int64(int32(binary.LittleEndian.Uint32(tail[:])))
	end := size - 10 - fl // where the footer starts
	if fl <= 0 || fl > maxMetaLen || end < 8 {
		return fmt.Errorf("footer length %d in a %d-byte file", fl, size)
	}
	footer := make([]byte, fl)
	if _, err := f.ReadAt(footer, end); err != nil {
		return err
	}
	blocks, err := checkFooter(footer)
	if err != nil {
		return fmt.Errorf("footer: %w", err)
	}
	for i, b := range blocks {
		if b.offset < 8 || b.meta < 8 || b.meta > maxMetaLen || b.body < 0 || b.offset > end || int64(b.meta) > end-b.offset || b.body > end-b.offset-int64(b.meta) {
			return fmt.Errorf("record batch %d: block offset %d, header %d, body %d outside the file", i, b.offset, b.meta, b.body)
		}
		hdr := make([]byte, b.meta)
		if _, err := f.ReadAt(hdr, b.offset); err != nil {
			return err
		}
		ml := int64(int32(binary.LittleEndian.Uint32(hdr[4:])))
		if !bytes.Equal(hdr[:4], streamContTok) || ml <= 0 || ml > int64(b.meta)-8 {
			return fmt.Errorf("record batch %d: bad message prefix", i)
		}
		if err := checkMessage(hdr[8 : 8+ml]); err != nil {
			return fmt.Errorf("record batch %d: %w", i, err)
		}
	}
	return nil
}

func (r *Reader) initSchema(sc *arrow.Schema) error {
	if sc == nil {
		return fmt.Errorf("%s: no schema", r.name)
	}
	md := sc.Metadata()
	meta, err := parseMeta(func(k string) (string, bool) {
		if i := md.FindKey(k); i >= 0 {
			return md.Values()[i], true
		}
		return "", false
	})
	if err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	r.l = newLayout(meta)
	if !r.l.schema.Equal(sc) {
		return fmt.Errorf("%s: columns do not match the metadata (want %v, have %v)", r.name, r.l.schema.Fields(), sc.Fields())
	}
	return nil
}

func trailerOf(rec arrow.RecordBatch) (arrow.Metadata, bool) {
	wm, ok := rec.(arrow.RecordBatchWithMetadata)
	if !ok {
		return arrow.Metadata{}, false
	}
	md := wm.Metadata()
	return md, md.FindKey(KeyTrailer) >= 0
}

func recoverTo(err *error, name string) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%s: corrupt input: %v", name, p)
	}
}

// Meta is the file's metadata (classes, anchors, encoding, teacher hash...).
func (r *Reader) Meta() Meta { return r.l.meta }

// CheckCompatible is Meta().CheckCompatible(want) with the input's name in
// the error.
func (r *Reader) CheckCompatible(want Meta) error {
	if err := r.l.meta.CheckCompatible(want); err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	return nil
}

// RandomAccess reports whether ReadRow and Find work (an IPC file opened by path).
func (r *Reader) RandomAccess() bool { return r.fr != nil }

// Len is the number of views of a random-access file, or -1 for a stream.
func (r *Reader) Len() int {
	if r.fr == nil {
		return -1
	}
	return len(r.index)
}

// Keys lists the (image id, view) of every row of a random-access file, in
// row order; nil for a stream.
func (r *Reader) Keys() []Key {
	if r.fr == nil {
		return nil
	}
	return append([]Key(nil), r.index...)
}

// Find gives the row of (imageID, view) in a random-access file (the first, if
// the writer wrote it twice).
func (r *Reader) Find(imageID int64, view int) (row int, ok bool) {
	row, ok = r.byKey[Key{imageID, view}]
	return row, ok
}

// Next decodes the next view into dst, reusing dst's slices where they are
// large enough. It returns io.EOF only after the verified end marker; any
// truncation or corruption is another error, and sticks.
func (r *Reader) Next(dst *View) error {
	if r.err != nil {
		return r.err
	}
	if r.fr != nil {
		if r.next >= len(r.index) {
			return io.EOF
		}
		if err := r.ReadRow(r.next, dst); err != nil {
			return err
		}
		r.next++
		return nil
	}
	err := r.nextStream(dst)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return err
}

func (r *Reader) nextStream(dst *View) (err error) {
	defer recoverTo(&err, r.name)
	if r.ended {
		return io.EOF
	}
	for r.rec == nil || r.recRow >= int(r.rec.NumRows()) {
		r.rec = nil
		if !r.ar.Next() {
			if err := r.ar.Err(); err != nil {
				return fmt.Errorf("%s: after %d views: %w", r.name, len(r.seen), err)
			}
			return fmt.Errorf("%s: ends after %d views without the end marker (truncated)%s", r.name, len(r.seen), pipeHint(r.name))
		}
		rec := r.ar.RecordBatch()
		md, isTrailer := trailerOf(rec)
		if isTrailer {
			if rec.NumRows() != 0 {
				return fmt.Errorf("%s: end marker batch has %d rows", r.name, rec.NumRows())
			}
			return r.finishStream(md)
		}
		if rec.NumRows() == 0 {
			return fmt.Errorf("%s: empty record batch after %d views (not written by this program)", r.name, len(r.seen))
		}
		r.rec, r.recRow = rec, 0
		r.seenBatch = append(r.seenBatch, int(rec.NumRows()))
	}
	if err := r.decodeRow(r.rec, r.recRow, dst); err != nil {
		return fmt.Errorf("%s: view %d: %w", r.name, len(r.seen), err)
	}
	r.recRow++
	r.seen = append(r.seen, Key{dst.ImageID, dst.ViewIndex})
	return nil
}

// finishStream checks the trailer against what was read and that the input
// ends right after it, with Arrow's end-of-stream marker.
func (r *Reader) finishStream(md arrow.Metadata) error {
	rows, index, err := parseTrailer(md)
	if err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	if len(index) != len(r.seen) {
		return fmt.Errorf("%s: end marker counts %d views, stream held %d", r.name, len(index), len(r.seen))
	}
	for i := range index {
		if index[i] != r.seen[i] {
			return fmt.Errorf("%s: row %d is %s, end marker says %s", r.name, i, r.seen[i], index[i])
		}
	}
	if len(rows) != len(r.seenBatch) {
		return fmt.Errorf("%s: end marker lists %d batches, stream held %d", r.name, len(rows), len(r.seenBatch))
	}
	if r.ar.Next() {
		return fmt.Errorf("%s: data after the end marker", r.name)
	}
	if err := r.ar.Err(); err != nil {
		return fmt.Errorf("%s: after the end marker: %w", r.name, err)
	}
	if !r.mr.sawEOS {
		return fmt.Errorf("%s: no end-of-stream marker after the end record (truncated)", r.name)
	}
	if r.seqFile {
		rest, err := io.ReadAll(io.LimitReader(r.br, maxMetaLen))
		if err != nil {
			return fmt.Errorf("%s: reading the file footer: %w", r.name, err)
		}
		n := len(rest)
		if n < 10 || !bytes.Equal(rest[n-6:], fileMagic) || int(int32(binary.LittleEndian.Uint32(rest[n-10:]))) != n-10 {
			return fmt.Errorf("%s: Arrow file footer missing or damaged (truncated)", r.name)
		}
	}
	r.ended = true
	return io.EOF
}

// ReadRow decodes row i of a random-access file into dst (see Next for reuse).
func (r *Reader) ReadRow(i int, dst *View) (err error) {
	if r.fr == nil {
		return fmt.Errorf("%s: a stream has no random access; open an Arrow IPC file by path", r.name)
	}
	if i < 0 || i >= len(r.index) {
		return fmt.Errorf("%s: row %d out of range [0, %d)", r.name, i, len(r.index))
	}
	defer recoverTo(&err, r.name)
	b := sort.Search(len(r.batchStart), func(b int) bool { return r.batchStart[b] > i }) - 1
	if b != r.cacheB {
		if r.cacheRec != nil {
			r.cacheRec.Release()
			r.cacheRec, r.cacheB = nil, -1
		}
		rec, err := r.fr.RecordBatchAt(b)
		if err != nil {
			return fmt.Errorf("%s: record batch %d: %w", r.name, b, err)
		}
		if _, tr := trailerOf(rec); tr || int(rec.NumRows()) != r.batchRows[b] {
			rec.Release()
			return fmt.Errorf("%s: record batch %d has %d rows, end marker says %d", r.name, b, rec.NumRows(), r.batchRows[b])
		}
		r.cacheRec, r.cacheB = rec, b
	}
	if err := r.decodeRow(r.cacheRec, i-r.batchStart[b], dst); err != nil {
		return fmt.Errorf("%s: row %d: %w", r.name, i, err)
	}
	if got := (Key{dst.ImageID, dst.ViewIndex}); got != r.index[i] {
		return fmt.Errorf("%s: row %d is %s, end marker index says %s", r.name, i, got, r.index[i])
	}
	return nil
}

// Close releases the reader and closes the file Open opened.
func (r *Reader) Close() error {
	if r.cacheRec != nil {
		r.cacheRec.Release()
		r.cacheRec = nil
	}
	if r.fr != nil {
		r.fr.Close()
	}
	if r.ar != nil {
		r.ar.Release()
		r.ar = nil
	}
	if r.closer != nil {
		err := r.closer.Close()
		r.closer = nil
		return err
	}
	return nil
}

// ---- row decoding ----

func colAs[T any](rec arrow.RecordBatch, c int) T {
	a, ok := rec.Column(c).(T)
	if !ok {
		panic(fmt.Sprintf("column %d has type %T", c, rec.Column(c)))
	}
	return a
}

// listRange gives the child range of row i of list column c.
func listRange(rec arrow.RecordBatch, c, i int) (*array.List, int, int) {
	l := colAs[*array.List](rec, c)
	s, e := l.ValueOffsets(i)
	if s < 0 || e < s || e > int64(l.ListValues().Len()) {
		panic(fmt.Sprintf("column %q: row %d list offsets [%d, %d) outside %d values", rec.Schema().Field(c).Name, i, s, e, l.ListValues().Len()))
	}
	return l, int(s), int(e)
}

// floats decodes row i of a float32/float16 list column into dst (grown as needed).
func floats(rec arrow.RecordBatch, c, i int, dst []float32) []float32 {
	l, s, e := listRange(rec, c, i)
	dst = grow(dst, e-s)
	switch v := l.ListValues().(type) {
	case *array.Float32:
		copy(dst, v.Float32Values()[s:e])
	case *array.Float16:
		src := v.Values()[s:e]
		for j := range src {
			dst[j] = halfToFloat[src[j].Uint16()]
		}
	default:
		panic(fmt.Sprintf("column %q holds %T", rec.Schema().Field(c).Name, v))
	}
	return dst
}

func int32s(rec arrow.RecordBatch, c, i int) []int32 {
	l, s, e := listRange(rec, c, i)
	v, ok := l.ListValues().(*array.Int32)
	if !ok {
		panic(fmt.Sprintf("column %q holds %T", rec.Schema().Field(c).Name, l.ListValues()))
	}
	return v.Int32Values()[s:e]
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func int32At(rec arrow.RecordBatch, c, i int) int {
	return int(colAs[*array.Int32](rec, c).Value(i))
}

func (r *Reader) decodeRow(rec arrow.RecordBatch, i int, dst *View) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("corrupt record: %v", p)
		}
	}()
	l, m := r.l, &r.l.meta
	if i < 0 || i >= int(rec.NumRows()) {
		return fmt.Errorf("row %d of a %d-row batch", i, rec.NumRows())
	}
	if got, want := rowCRC(rec, i, l.kinds), colAs[*array.Uint32](rec, l.cCRC).Value(i); got != want {
		return fmt.Errorf("checksum mismatch (crc32c %08x, stored %08x): corrupt data", got, want)
	}
	dst.ImageID = colAs[*array.Int64](rec, l.cImageID).Value(i)
	dst.File = strings.Clone(colAs[*array.String](rec, l.cFile).Value(i))
	dst.ViewIndex = int32At(rec, l.cView, i)
	dst.Aug = append(dst.Aug[:0], colAs[*array.Binary](rec, l.cAug).Value(i)...)
	dst.InputH, dst.InputW = int32At(rec, l.cInH, i), int32At(rec, l.cInW, i)
	if dst.ViewIndex < 0 || dst.InputH <= 0 || dst.InputW <= 0 {
		return fmt.Errorf("view %d with input %dx%d", dst.ViewIndex, dst.InputH, dst.InputW)
	}
	ns := m.NumScales()
	dst.Outputs = grow(dst.Outputs, ns)
	if m.Encoding.Kind == Dense {
		dst.Stored = nil
	} else {
		dst.Stored = grow(dst.Stored, ns)
	}
	for s := 0; s < ns; s++ {
		ch := m.Channels(s)
		h, w := int32At(rec, l.cH[s], i), int32At(rec, l.cW[s], i)
		if h <= 0 || w <= 0 || h > 1<<20 || w > 1<<20 || int64(h)*int64(w)*int64(ch) > 1<<36 {
			return fmt.Errorf("scale %d grid %dx%d", s, h, w)
		}
		t := &dst.Outputs[s]
		t.Shape = append(t.Shape[:0], ch, h, w)
		n := ch * h * w
		if m.Encoding.Kind == Dense {
			t.Data = floats(rec, l.cOut[s], i, t.Data)
			if len(t.Data) != n {
				return fmt.Errorf("scale %d holds %d values, shape %v needs %d", s, len(t.Data), t.Shape, n)
			}
			continue
		}
		a, k, hw := len(m.Masks[s]), 5+len(m.Classes), h*w
		r.scrA = floats(rec, l.cObj[s], i, r.scrA)
		if len(r.scrA) != a*hw { // before allocating for the grid: it may be corrupt
			return fmt.Errorf("scale %d: sparse objectness has %d values, grid %dx%d needs %d", s, len(r.scrA), h, w, a*hw)
		}
		r.scrB = floats(rec, l.cBoxCls[s], i, r.scrB)
		idx := int32s(rec, l.cIdx[s], i)
		t.Data = grow(t.Data, n)
		dst.Stored[s] = grow(dst.Stored[s], a*hw)
		if err := sparseDecode(t.Data, dst.Stored[s], a, k, hw, r.scrA, idx, r.scrB); err != nil {
			return fmt.Errorf("scale %d: %w", s, err)
		}
	}
	dst.PixelHash = dst.PixelHash[:0]
	if l.cHash >= 0 {
		h := colAs[*array.Binary](rec, l.cHash).Value(i)
		if len(h) != 0 && len(h) != PixelHashSize {
			return fmt.Errorf("pixel hash of %d bytes, want %d", len(h), PixelHashSize)
		}
		dst.PixelHash = append(dst.PixelHash, h...)
	}
	if len(dst.PixelHash) == 0 {
		dst.PixelHash = nil
	}
	if len(m.Features) == 0 {
		dst.Features = nil
		return nil
	}
	if dst.Features == nil {
		dst.Features = make(map[string]Tensor, len(m.Features))
	}
	for f, name := range m.Features {
		t := dst.Features[name]
		sh := int32s(rec, l.cFeatShape[f], i)
		t.Shape = t.Shape[:0]
		for _, d := range sh {
			t.Shape = append(t.Shape, int(d))
		}
		t.Data = floats(rec, l.cFeat[f], i, t.Data)
		if n, ok := numel(t.Shape); !ok || len(t.Shape) == 0 || n != len(t.Data) {
			return fmt.Errorf("feature map %q: shape %v with %d values", name, t.Shape, len(t.Data))
		}
		dst.Features[name] = t
	}
	return nil
}

// ---- Arrow IPC message reader ----

// msgReader reads encapsulated IPC messages (continuation marker, length,
// flatbuffer, body). Unlike arrow's own, it tells an explicit end-of-stream
// marker from a plain end of input, and never allocates more than twice the
// bytes actually present for a (possibly corrupt) large body length.
type msgReader struct {
	r      io.Reader
	sawEOS bool
	n      int // messages read
	msg    *ipc.Message
	hdr    [8]byte
}

func (m *msgReader) Retain()  {}
func (m *msgReader) Release() {}

func (m *msgReader) Message() (msg *ipc.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			msg, err = nil, fmt.Errorf("invalid message: %v", p)
		}
	}()
	m.msg = nil
	if m.sawEOS {
		return nil, io.EOF
	}
	n, err := io.ReadFull(m.r, m.hdr[:])
	if n == 0 && errors.Is(err, io.EOF) {
		return nil, io.EOF // end of input, no end-of-stream marker: caller decides
	}
	if err != nil {
		return nil, fmt.Errorf("truncated message header: %w", io.ErrUnexpectedEOF)
	}
	if !bytes.Equal(m.hdr[:4], streamContTok) {
		return nil, fmt.Errorf("no IPC continuation marker (got % x)", m.hdr[:4])
	}
	ml := int32(binary.LittleEndian.Uint32(m.hdr[4:]))
	if ml == 0 {
		m.sawEOS = true
		return nil, io.EOF
	}
	if ml < 8 || ml > maxMetaLen {
		return nil, fmt.Errorf("message header length %d", ml)
	}
	if m.n == 0 && ml > maxSchemaLen {
		return nil, fmt.Errorf("schema message length %d", ml)
	}
	meta, err := readN(m.r, int64(ml))
	if err != nil {
		return nil, fmt.Errorf("message header (truncated?): %w", err)
	}
	if err := checkMessage(meta); err != nil {
		return nil, fmt.Errorf("message header: %w", err)
	}
	m.n++
	metaBuf := memory.NewBufferBytes(meta)
	probe := ipc.NewMessage(metaBuf, memory.NewBufferBytes(nil))
	bl := probe.BodyLen()
	probe.Release()
	if bl < 0 || bl > maxBodyLen {
		return nil, fmt.Errorf("message body length %d", bl)
	}
	body, err := readN(m.r, bl)
	if err != nil {
		return nil, fmt.Errorf("message body (truncated?): %w", err)
	}
	m.msg = ipc.NewMessage(memory.NewBufferBytes(meta), memory.NewBufferBytes(body))
	return m.msg, nil
}

// readN reads exactly n bytes; a short input is io.ErrUnexpectedEOF.
func readN(r io.Reader, n int64) ([]byte, error) {
	if n <= directAllocN {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return b, nil
	}
	var bb bytes.Buffer
	got, err := bb.ReadFrom(io.LimitReader(r, n))
	if err != nil {
		return nil, err
	}
	if got != n {
		return nil, io.ErrUnexpectedEOF
	}
	return bb.Bytes(), nil
}
