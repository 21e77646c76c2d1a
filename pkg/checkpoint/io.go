package checkpoint

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"

	"yolodistill/pkg/atomicfile"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// littleEndian is true on little-endian machines, where float32 slices are
// written and read in place.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// floatBytes views data as its little-endian bytes on a little-endian machine
// (no copy); elsewhere it returns a converted copy.
func floatBytes(data []float32) []byte {
	if len(data) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*len(data))
	}
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// Save writes c to path atomically.
func Save(path string, c *Checkpoint) error {
	return atomicfile.Write(path, func(w io.Writer) error { return Write(w, c) })
}

// Write encodes c to w. It fails (without writing a partial tensor) when a
// tensor's data does not match its shape or a name repeats in a section.
func Write(w io.Writer, c *Checkpoint) error {
	for _, s := range c.Sections {
		seen := map[string]bool{}
		for _, t := range s.Tensors {
			if n := NumElements(t.Shape); n < 0 || n != len(t.Data) {
				return fmt.Errorf("checkpoint: tensor %s: %d values for shape %v", t.Name, len(t.Data), t.Shape)
			}
			if seen[t.Name] {
				return fmt.Errorf("checkpoint: section %s: duplicate tensor %s", s.Name, t.Name)
			}
			seen[t.Name] = true
		}
	}
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriterSize(w, 1<<20)
	}
	e := msgpack.NewEncoder(bw)
	err := writeAll(e, bw, c)
	if err == nil {
		err = bw.Flush()
	}
	return err
}

func writeAll(e *msgpack.Encoder, bw *bufio.Writer, c *Checkpoint) error {
	ew := &errWriter{e: e}
	ew.mapLen(6)
	ew.str("format")
	ew.str(Format)
	ew.str("version")
	ew.int(Version)
	ew.str("config")
	ew.str(c.Config)

	ew.str("state")
	ew.mapLen(3)
	ew.str("iteration")
	ew.int(c.State.Iteration)
	ew.str("rng")
	ew.mapLen(len(c.State.RNG))
	for _, k := range sortedKeys(c.State.RNG) {
		ew.str(k)
		ew.bytes(c.State.RNG[k])
	}
	ew.str("data_order")
	ew.bytes(c.State.DataOrder)

	ew.str("meta")
	ew.mapLen(len(c.Meta))
	for _, k := range sortedKeys(c.Meta) {
		ew.str(k)
		ew.str(c.Meta[k])
	}

	ew.str("sections")
	ew.arrayLen(len(c.Sections))
	for _, s := range c.Sections {
		ew.mapLen(2)
		ew.str("name")
		ew.str(s.Name)
		ew.str("tensors")
		ew.arrayLen(len(s.Tensors))
		for _, t := range s.Tensors {
			raw := floatBytes(t.Data)
			ew.mapLen(5)
			ew.str("name")
			ew.str(t.Name)
			ew.str("shape")
			ew.arrayLen(len(t.Shape))
			for _, d := range t.Shape {
				ew.int(int64(d))
			}
			ew.str("dtype")
			ew.str("float32")
			ew.str("crc32c")
			ew.uint(uint64(crc32.Checksum(raw, castagnoli)))
			ew.str("data")
			if ew.err == nil {
				ew.err = e.EncodeBytesLen(len(raw))
			}
			if ew.err == nil {
				_, ew.err = bw.Write(raw)
			}
		}
	}
	return ew.err
}

// errWriter keeps the first encoding error.
type errWriter struct {
	e   *msgpack.Encoder
	err error
}

func (w *errWriter) str(s string) {
	if w.err == nil {
		w.err = w.e.EncodeString(s)
	}
}
func (w *errWriter) int(i int64) {
	if w.err == nil {
		w.err = w.e.EncodeInt(i)
	}
}
func (w *errWriter) uint(i uint64) {
	if w.err == nil {
		w.err = w.e.EncodeUint(i)
	}
}
func (w *errWriter) bytes(b []byte) {
	if w.err == nil {
		if b == nil {
			b = []byte{}
		}
		w.err = w.e.EncodeBytes(b)
	}
}
func (w *errWriter) mapLen(n int) {
	if w.err == nil {
		w.err = w.e.EncodeMapLen(n)
	}
}
func (w *errWriter) arrayLen(n int) {
	if w.err == nil {
		w.err = w.e.EncodeArrayLen(n)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// FormatError is returned for a file that is not a checkpoint, a checkpoint
// of another format version, or a damaged (truncated, corrupt) one. Path is
// "" when reading from a stream without a name.
type FormatError struct {
	Path string
	Msg  string
	Err  error // underlying error (io.ErrUnexpectedEOF for truncation), if any
}

func (e *FormatError) Error() string {
	if e.Path == "" {
		return "checkpoint: " + e.Msg
	}
	return e.Path + ": " + e.Msg
}

func (e *FormatError) Unwrap() error { return e.Err }

// ErrTruncated is wrapped by the error for a checkpoint that ends early.
var ErrTruncated = errors.New("truncated checkpoint")

// ErrNotCheckpoint is wrapped by the error for a file that is not a
// yolodistill checkpoint at all.
var ErrNotCheckpoint = errors.New("not a yolodistill checkpoint")

// ErrVersion is wrapped by the error for a checkpoint of another version.
var ErrVersion = errors.New("unsupported checkpoint version")

// Load reads and verifies the checkpoint at path (every tensor's checksum,
// no trailing bytes).
func Load(path string) (*Checkpoint, error) {
	return load(path, false)
}

// LoadHeader reads only the format, version, config, state and metadata of
// the checkpoint at path, stopping before the tensors (Sections is nil).
func LoadHeader(path string) (*Checkpoint, error) {
	return load(path, true)
}

func load(path string, headerOnly bool) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a folder, not a checkpoint file (give the .ckpt file inside it, e.g. %s)", path, filepath.Join(path, "model_final.ckpt"))
	}
	if !st.Mode().IsRegular() && st.Size() == 0 {
		return nil, fmt.Errorf("%s is not a regular file (%s), not a checkpoint", path, st.Mode().Type())
	}
	c, err := read(f, st.Size(), headerOnly)
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			fe.Path = path
		}
		return nil, err
	}
	c.Path = path
	return c, nil
}

// Read decodes a whole checkpoint from r. size is the number of bytes r
// holds when known (it bounds allocations on corrupt input), or -1.
func Read(r io.Reader, size int64) (*Checkpoint, error) {
	return read(r, size, false)
}

// countingReader counts bytes consumed from the underlying reader.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type reader struct {
	br   *bufio.Reader
	cr   *countingReader
	d    *msgpack.Decoder
	size int64 // total bytes, -1 unknown
	ctx  string
}

// remaining is an upper bound on the bytes left, or -1.
func (r *reader) remaining() int64 {
	if r.size < 0 {
		return -1
	}
	return r.size - r.cr.n + int64(r.br.Buffered())
}

func (r *reader) fail(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &FormatError{Msg: fmt.Sprintf("%v: unexpected end of file while reading %s", ErrTruncated, r.ctx), Err: ErrTruncated}
	}
	var fe *FormatError
	if errors.As(err, &fe) {
		return err
	}
	return &FormatError{Msg: fmt.Sprintf("corrupt checkpoint while reading %s: %v", r.ctx, err), Err: err}
}

func (r *reader) corrupt(format string, args ...any) error {
	return &FormatError{Msg: "corrupt checkpoint: " + fmt.Sprintf(format, args...)}
}

// maxHeaderString bounds strings and blobs outside tensor data when the size
// is unknown.
const maxHeaderString = 1 << 30

func (r *reader) str() (string, error) {
	s, err := r.d.DecodeString()
	return s, err
}

func (r *reader) blob() ([]byte, error) {
	n, err := r.d.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, nil
	}
	if rem := r.remaining(); (rem >= 0 && int64(n) > rem) || n > maxHeaderString {
		return nil, io.ErrUnexpectedEOF
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r.br, b)
	return b, err
}

// count decodes a map or array length and checks it against the bytes left
// (every entry takes at least minBytes).
func (r *reader) count(isMap bool, minBytes int64) (int, error) {
	var n int
	var err error
	if isMap {
		n, err = r.d.DecodeMapLen()
	} else {
		n, err = r.d.DecodeArrayLen()
	}
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, nil // nil map / array
	}
	if rem := r.remaining(); rem >= 0 && int64(n)*minBytes > rem {
		return 0, io.ErrUnexpectedEOF
	}
	return n, nil
}

func read(src io.Reader, size int64, headerOnly bool) (*Checkpoint, error) {
	cr := &countingReader{r: src}
	bufSize := 64 << 10
	if size >= 0 && size < int64(bufSize) {
		bufSize = int(size) + 16
	}
	br := bufio.NewReaderSize(cr, bufSize)
	r := &reader{br: br, cr: cr, d: msgpack.NewDecoder(br), size: size, ctx: "the header"}
	c, err := r.readAll(headerOnly)
	if err != nil {
		return nil, r.fail(err)
	}
	return c, nil
}

func (r *reader) readAll(headerOnly bool) (*Checkpoint, error) {
	// The first byte tells a msgpack map from anything else; the first key
	// must be "format" with our format name.
	code, err := r.d.PeekCode()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FormatError{Msg: fmt.Sprintf("%v (empty file)", ErrNotCheckpoint), Err: ErrNotCheckpoint}
		}
		return nil, err
	}
	if !(code >= 0x80 && code <= 0x8f) && code != 0xde && code != 0xdf {
		return nil, &FormatError{Msg: ErrNotCheckpoint.Error(), Err: ErrNotCheckpoint}
	}
	// No size check on this count: a non-checkpoint's first byte may look
	// like a large map, and what follows decides.
	n, err := r.d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	notCkpt := &FormatError{Msg: ErrNotCheckpoint.Error(), Err: ErrNotCheckpoint}
	if n < 2 {
		return nil, notCkpt
	}
	k, err := r.str()
	if err != nil || k != "format" {
		if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return nil, err
		}
		return nil, notCkpt
	}
	f, err := r.str()
	if err != nil || f != Format {
		if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return nil, err
		}
		return nil, notCkpt
	}
	k, err = r.str()
	if err != nil {
		return nil, err
	}
	if k != "version" {
		return nil, r.corrupt("want key version, got %q", k)
	}
	v, err := r.d.DecodeInt64()
	if err != nil {
		return nil, err
	}
	if v != Version {
		return nil, &FormatError{Msg: fmt.Sprintf("%v: checkpoint format version %d; this program reads version %d", ErrVersion, v, Version), Err: ErrVersion}
	}
	c := &Checkpoint{Meta: map[string]string{}, State: State{RNG: map[string][]byte{}}}
	seen := map[string]bool{}
	for i := 2; i < n; i++ {
		r.ctx = "the header"
		k, err := r.str()
		if err != nil {
			return nil, err
		}
		if seen[k] {
			return nil, r.corrupt("duplicate key %q", k)
		}
		seen[k] = true
		switch k {
		case "config":
			r.ctx = "the config"
			if c.Config, err = r.str(); err != nil {
				return nil, err
			}
		case "state":
			r.ctx = "the training state"
			if err := r.readState(&c.State); err != nil {
				return nil, err
			}
		case "meta":
			r.ctx = "the metadata"
			m, err := r.count(true, 2)
			if err != nil {
				return nil, err
			}
			for j := 0; j < m; j++ {
				mk, err := r.str()
				if err != nil {
					return nil, err
				}
				mv, err := r.str()
				if err != nil {
					return nil, err
				}
				c.Meta[mk] = mv
			}
		case "sections":
			if headerOnly {
				return c, nil
			}
			if c.Sections, err = r.readSections(); err != nil {
				return nil, err
			}
		default:
			// Unknown keys of a newer minor writer are skipped.
			if err := r.d.Skip(); err != nil {
				return nil, err
			}
		}
	}
	if !seen["config"] || !seen["sections"] {
		return nil, r.corrupt("missing config or sections")
	}
	if headerOnly {
		return c, nil
	}
	if _, err := r.br.ReadByte(); err == nil {
		return nil, r.corrupt("trailing bytes after the checkpoint")
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	return c, nil
}

func (r *reader) readState(s *State) error {
	n, err := r.count(true, 2)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		k, err := r.str()
		if err != nil {
			return err
		}
		switch k {
		case "iteration":
			if s.Iteration, err = r.d.DecodeInt64(); err != nil {
				return err
			}
		case "rng":
			m, err := r.count(true, 2)
			if err != nil {
				return err
			}
			for j := 0; j < m; j++ {
				name, err := r.str()
				if err != nil {
					return err
				}
				b, err := r.blob()
				if err != nil {
					return err
				}
				s.RNG[name] = b
			}
		case "data_order":
			if s.DataOrder, err = r.blob(); err != nil {
				return err
			}
		default:
			if err := r.d.Skip(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *reader) readSections() ([]Section, error) {
	r.ctx = "the section list"
	n, err := r.count(false, 2)
	if err != nil {
		return nil, err
	}
	secs := make([]Section, 0, min(n, 64))
	names := map[string]bool{}
	for i := 0; i < n; i++ {
		r.ctx = fmt.Sprintf("section %d", i)
		m, err := r.count(true, 2)
		if err != nil {
			return nil, err
		}
		var s Section
		for j := 0; j < m; j++ {
			k, err := r.str()
			if err != nil {
				return nil, err
			}
			switch k {
			case "name":
				if s.Name, err = r.str(); err != nil {
					return nil, err
				}
				r.ctx = "section " + s.Name
			case "tensors":
				tn, err := r.count(false, 8)
				if err != nil {
					return nil, err
				}
				s.Tensors = make([]Tensor, 0, min(tn, 4096))
				tnames := map[string]bool{}
				for ti := 0; ti < tn; ti++ {
					t, err := r.readTensor(s.Name, ti)
					if err != nil {
						return nil, err
					}
					if tnames[t.Name] {
						return nil, r.corrupt("section %s: duplicate tensor %s", s.Name, t.Name)
					}
					tnames[t.Name] = true
					s.Tensors = append(s.Tensors, t)
				}
			default:
				if err := r.d.Skip(); err != nil {
					return nil, err
				}
			}
		}
		if names[s.Name] {
			return nil, r.corrupt("duplicate section %s", s.Name)
		}
		names[s.Name] = true
		secs = append(secs, s)
	}
	return secs, nil
}

func (r *reader) readTensor(section string, idx int) (Tensor, error) {
	var t Tensor
	r.ctx = fmt.Sprintf("tensor %d of section %s", idx, section)
	m, err := r.count(true, 2)
	if err != nil {
		return t, err
	}
	var crc uint64
	haveCRC, haveData, haveShape := false, false, false
	dtype := "float32"
	for j := 0; j < m; j++ {
		k, err := r.str()
		if err != nil {
			return t, err
		}
		switch k {
		case "name":
			if t.Name, err = r.str(); err != nil {
				return t, err
			}
			r.ctx = fmt.Sprintf("tensor %s (section %s)", t.Name, section)
		case "shape":
			sn, err := r.count(false, 1)
			if err != nil {
				return t, err
			}
			if sn > 16 {
				return t, r.corrupt("%s: %d dimensions", r.ctx, sn)
			}
			t.Shape = make([]int, sn)
			for d := range t.Shape {
				v, err := r.d.DecodeInt64()
				if err != nil {
					return t, err
				}
				if v < 0 || v > math.MaxInt32 {
					return t, r.corrupt("%s: dimension %d", r.ctx, v)
				}
				t.Shape[d] = int(v)
			}
			haveShape = true
		case "dtype":
			if dtype, err = r.str(); err != nil {
				return t, err
			}
			if dtype != "float32" {
				return t, r.corrupt("%s: dtype %q; only float32 is supported", r.ctx, dtype)
			}
		case "crc32c":
			if crc, err = r.d.DecodeUint64(); err != nil {
				return t, err
			}
			haveCRC = true
		case "data":
			if t.Data, err = r.floats(); err != nil {
				return t, err
			}
			haveData = true
		default:
			if err := r.d.Skip(); err != nil {
				return t, err
			}
		}
	}
	if !haveData || !haveShape {
		return t, r.corrupt("%s: missing shape or data", r.ctx)
	}
	if NumElements(t.Shape) != len(t.Data) {
		return t, r.corrupt("%s: %d values for shape %v", r.ctx, len(t.Data), t.Shape)
	}
	if haveCRC && uint64(crc32.Checksum(floatBytes(t.Data), castagnoli)) != crc {
		return t, r.corrupt("%s: checksum mismatch", r.ctx)
	}
	return t, nil
}

// chunk is the most a tensor read allocates ahead of the data actually
// arriving when the input size is unknown.
const chunk = 64 << 20

// floats reads a bin blob of little-endian float32 values.
func (r *reader) floats() ([]float32, error) {
	n, err := r.d.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return []float32{}, nil
	}
	if n%4 != 0 {
		return nil, r.corrupt("%s: %d data bytes is not a whole number of float32", r.ctx, n)
	}
	if rem := r.remaining(); rem >= 0 && int64(n) > rem {
		return nil, io.ErrUnexpectedEOF
	}
	count := n / 4
	var out []float32
	if r.size >= 0 || n <= chunk {
		out = make([]float32, count)
		if err := r.readInto(out); err != nil {
			return nil, err
		}
		return out, nil
	}
	// Unknown size: grow as the data arrives.
	for len(out) < count {
		step := min(count-len(out), chunk/4)
		part := make([]float32, step)
		if err := r.readInto(part); err != nil {
			return nil, err
		}
		out = append(out, part...)
	}
	return out, nil
}

func (r *reader) readInto(dst []float32) error {
	if littleEndian {
		_, err := io.ReadFull(r.br, unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)))
		return err
	}
	var b [4]byte
	for i := range dst {
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return err
		}
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[:]))
	}
	return nil
}
