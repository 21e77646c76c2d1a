package weights

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Paddle's VarType.Type values for tensor data (framework.proto).
var paddleDTypes = map[uint64]struct {
	name string
	size int
}{
	0: {"bool", 1}, 1: {"int16", 2}, 2: {"int32", 4}, 3: {"int64", 8}, 4: {"float16", 2},
	5: {"float32", 4}, 6: {"float64", 8}, 20: {"uint8", 1}, 21: {"int8", 1}, 22: {"bfloat16", 2},
}

// skipPaddleFile reports whether a member of a weights folder or tar is not
// a variable: hidden files (".DS_Store", "._x" from macOS tar) and the
// program description "__model__" of an inference model.
func skipPaddleFile(name string) bool {
	return strings.HasPrefix(name, ".") || name == "__model__"
}

func readPaddleDir(dir string) (*File, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	f := &File{Source: dir, Format: FormatPaddleDir}
	for _, e := range ents {
		if !e.Type().IsRegular() || skipPaddleFile(e.Name()) {
			continue
		}
		if e.Name() == "__params__" {
			return nil, &FormatError{Source: dir, Format: f.Format, Record: e.Name(), Err: errCombined}
		}
		fh, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		st, _ := fh.Stat()
		t, err := readLoDTensorFile(bufio.NewReader(fh), e.Name(), st.Size())
		fh.Close()
		if err != nil {
			return nil, &FormatError{Source: dir, Format: f.Format, Record: e.Name(), Err: err}
		}
		f.Tensors = append(f.Tensors, t)
	}
	if len(f.Tensors) == 0 {
		return nil, &FormatError{Source: dir, Format: f.Format, Err: errors.New("no variable files in the folder")}
	}
	return f, nil
}

var errCombined = errors.New("a combined parameter file (save_combine) holds no variable names: use the training weights (one file per variable) or a .pdparams")

func readPaddleTar(p string, gz bool) (*File, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var r io.Reader = bufio.NewReader(fh)
	if gz {
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, &FormatError{Source: p, Format: FormatPaddleTar, Err: err}
		}
		r = z
	}
	f := &File{Source: p, Format: FormatPaddleTar}
	tr := tar.NewReader(r)
	seen := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			rec := "after the last complete member"
			if len(f.Tensors) == 0 {
				rec = "first member"
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = errors.New("truncated tar")
			}
			return nil, &FormatError{Source: p, Format: f.Format, Record: rec, Err: err}
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			continue
		}
		name := path.Base(h.Name)
		if skipPaddleFile(name) {
			continue
		}
		if name == "__params__" {
			return nil, &FormatError{Source: p, Format: f.Format, Record: h.Name, Err: errCombined}
		}
		if prev, ok := seen[name]; ok {
			return nil, &FormatError{Source: p, Format: f.Format, Record: h.Name, Err: fmt.Errorf("variable %s also in %s", name, prev)}
		}
		seen[name] = h.Name
		t, err := readLoDTensorFile(tr, name, h.Size)
		if err != nil {
			return nil, &FormatError{Source: p, Format: f.Format, Record: h.Name, Err: err}
		}
		f.Tensors = append(f.Tensors, t)
	}
	if len(f.Tensors) == 0 {
		return nil, &FormatError{Source: p, Format: f.Format, Err: errors.New("no variable files in the tar")}
	}
	return f, nil
}

// readLoDTensorFile reads one variable file of size bytes: a LoDTensor and
// nothing after it.
func readLoDTensorFile(r io.Reader, name string, size int64) (Tensor, error) {
	lr := &io.LimitedReader{R: r, N: size}
	t, err := readLoDTensor(lr, name)
	if err != nil {
		return t, err
	}
	if lr.N != 0 {
		return t, fmt.Errorf("%d bytes after the tensor data", lr.N)
	}
	return t, nil
}

// readLoDTensor reads Paddle's SerializeToStream layout (lod_tensor.cc,
// tensor_util.cc): uint32 version 0; uint64 LoD level count, each level a
// uint64 byte size and its offsets; uint32 tensor version 0; int32 size of a
// VarType.TensorDesc protobuf (data_type = 1, dims = 2); the raw
// little-endian data. r must be a *io.LimitedReader bounding the record, so
// that sizes are checked before anything is allocated.
func readLoDTensor(r *io.LimitedReader, name string) (Tensor, error) {
	t := Tensor{Name: name}
	var hdr [12]byte
	if err := readFull(r, hdr[:], "header"); err != nil {
		return t, err
	}
	if v := binary.LittleEndian.Uint32(hdr[:4]); v != 0 {
		return t, fmt.Errorf("LoDTensor version %d, want 0 (not a Paddle variable file?)", v)
	}
	levels := binary.LittleEndian.Uint64(hdr[4:])
	if levels > 16 {
		return t, fmt.Errorf("%d LoD levels (not a Paddle variable file?)", levels)
	}
	for i := uint64(0); i < levels; i++ {
		var b [8]byte
		if err := readFull(r, b[:], "LoD level size"); err != nil {
			return t, err
		}
		n := binary.LittleEndian.Uint64(b[:])
		if n > uint64(r.N) {
			return t, fmt.Errorf("truncated: LoD level %d needs %d bytes, %d left", i, n, r.N)
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return t, fmt.Errorf("truncated LoD level %d", i)
		}
	}
	var b [8]byte
	if err := readFull(r, b[:], "tensor header"); err != nil {
		return t, err
	}
	if v := binary.LittleEndian.Uint32(b[:4]); v != 0 {
		return t, fmt.Errorf("tensor version %d, want 0", v)
	}
	dl := int32(binary.LittleEndian.Uint32(b[4:]))
	if dl < 0 || int64(dl) > r.N || dl > 1<<16 {
		return t, fmt.Errorf("tensor description of %d bytes (%d left)", dl, r.N)
	}
	desc := make([]byte, dl)
	if err := readFull(r, desc, "tensor description"); err != nil {
		return t, err
	}
	dt, dims, err := parseTensorDesc(desc)
	if err != nil {
		return t, fmt.Errorf("tensor description: %w", err)
	}
	info, ok := paddleDTypes[dt]
	if !ok {
		return t, fmt.Errorf("unsupported data type %d", dt)
	}
	t.DType, t.Shape = info.name, dims
	n := checkpointNum(dims)
	if n < 0 {
		return t, fmt.Errorf("bad dims %v", dims)
	}
	need := int64(n) * int64(info.size)
	if need > r.N {
		return t, fmt.Errorf("truncated: shape %v %s needs %d bytes of data, %d left", dims, info.name, need, r.N)
	}
	raw := make([]byte, need)
	if err := readFull(r, raw, "tensor data"); err != nil {
		return t, err
	}
	t.Data = decodeFloats(raw, info.name, binary.LittleEndian)
	return t, nil
}

func readFull(r io.Reader, b []byte, what string) error {
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("truncated in the %s", what)
		}
		return err
	}
	return nil
}

// parseTensorDesc decodes VarType.TensorDesc: data_type (1, varint) and dims
// (2, int64: one varint per field as proto2 writes them, or packed).
func parseTensorDesc(b []byte) (dt uint64, dims []int, err error) {
	haveType := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, nil, protowire.ParseError(n)
			}
			dt, haveType, b = v, true, b[n:]
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, nil, protowire.ParseError(n)
			}
			dims, b = append(dims, int(int64(v))), b[n:]
		case num == 2 && typ == protowire.BytesType:
			p, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, nil, protowire.ParseError(n)
			}
			b = b[n:]
			for len(p) > 0 {
				v, m := protowire.ConsumeVarint(p)
				if m < 0 {
					return 0, nil, protowire.ParseError(m)
				}
				dims, p = append(dims, int(int64(v))), p[m:]
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, nil, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	if !haveType {
		return 0, nil, errors.New("no data_type")
	}
	return dt, dims, nil
}

// checkpointNum is product(dims), -1 for a negative dimension or overflow.
func checkpointNum(dims []int) int {
	n := 1
	for _, d := range dims {
		if d < 0 || (d != 0 && n > (1<<40)/d) {
			return -1
		}
		n *= d
	}
	return n
}

// decodeFloats converts raw data of a floating-point dtype to float32; it
// returns nil for other dtypes.
func decodeFloats(raw []byte, dtype string, bo binary.ByteOrder) []float32 {
	switch dtype {
	case "float32":
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(bo.Uint32(raw[4*i:]))
		}
		return out
	case "float64":
		out := make([]float32, len(raw)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(bo.Uint64(raw[8*i:])))
		}
		return out
	case "float16":
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = halfToFloat(bo.Uint16(raw[2*i:]))
		}
		return out
	case "bfloat16":
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = math.Float32frombits(uint32(bo.Uint16(raw[2*i:])) << 16)
		}
		return out
	}
	return nil
}

// halfToFloat converts an IEEE 754 binary16 value exactly.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := int(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		v := float32(mant) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | uint32(exp-15+127)<<23 | mant<<13)
}
