package weights

import (
	"archive/zip"
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"
)

// A pickle can name any Python class; these readers resolve only the few a
// weights file needs and refuse the rest by name, so that a file never
// makes the reader build arbitrary objects.

// readPdparams reads a Paddle .pdparams: a pickled dict (or OrderedDict) of
// numpy arrays by variable name, as fluid.save (protocol 2) and paddle.save
// (protocol 2-4) write it. paddle.save's "StructuredToParameterName@@" table
// is skipped.
func readPdparams(p string) (f *File, err error) {
	f = &File{Source: p, Format: FormatPdparams}
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	defer recoverPickle(p, f.Format, &err)
	cr := &countingReader{r: bufio.NewReader(fh)}
	u := pickle.NewUnpickler(cr)
	arrays := 0
	u.FindClass = func(module, name string) (any, error) {
		c, err := numpyClass(module, name)
		if rc, ok := c.(callable); ok && strings.HasSuffix(name, "_reconstruct") {
			c = callable(func(args ...any) (any, error) { // one call per array
				arrays++
				return rc(args...)
			})
		}
		return c, err
	}
	obj, err := u.Load()
	if err != nil {
		err = pickleErr(err)
		if err.Error() == "truncated pickle" {
			if arrays == 0 {
				err = fmt.Errorf("truncated pickle: the file ends at byte %d, before the first array is complete", cr.n)
			} else {
				err = fmt.Errorf("truncated pickle: the file ends at byte %d, inside array %d (after %d complete ones)", cr.n, arrays, arrays-1)
			}
		}
		return nil, &FormatError{Source: p, Format: f.Format, Err: err}
	}
	entries, ok := dictEntries(obj)
	if !ok {
		return nil, &FormatError{Source: p, Format: f.Format, Err: fmt.Errorf("the pickle holds a %s, not a dict of arrays", pyType(obj))}
	}
	for _, e := range entries {
		if e.key == "StructuredToParameterName@@" {
			continue
		}
		a, ok := e.value.(*ndarray)
		if !ok {
			return nil, &FormatError{Source: p, Format: f.Format, Record: e.key, Err: fmt.Errorf("a %s, not a numpy array", pyType(e.value))}
		}
		if a.err != nil {
			return nil, &FormatError{Source: p, Format: f.Format, Record: e.key, Err: a.err}
		}
		f.Tensors = append(f.Tensors, Tensor{Name: e.key, Shape: a.shape, DType: a.dtype, Data: a.data})
	}
	if len(f.Tensors) == 0 {
		return nil, &FormatError{Source: p, Format: f.Format, Err: errors.New("no arrays in the dict")}
	}
	return f, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

type entry struct {
	key   string
	value any
}

// dictEntries lists a pickled dict's or OrderedDict's string-keyed entries
// in order; ok is false for other objects or non-string keys.
func dictEntries(obj any) ([]entry, bool) {
	var out []entry
	switch d := obj.(type) {
	case *types.Dict:
		for _, e := range *d {
			k, ok := e.Key.(string)
			if !ok {
				return nil, false
			}
			out = append(out, entry{k, e.Value})
		}
	case *types.OrderedDict:
		for el := d.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			k, ok := e.Key.(string)
			if !ok {
				return nil, false
			}
			out = append(out, entry{k, e.Value})
		}
	default:
		return nil, false
	}
	return out, true
}

func pyType(v any) string {
	switch o := v.(type) {
	case nil:
		return "None"
	case *types.GenericObject:
		return "object of class " + o.Class.Module + "." + o.Class.Name
	case string:
		return "string"
	case int, int64:
		return "int"
	case float64:
		return "float"
	case *types.Dict, *types.OrderedDict:
		return "dict"
	case *types.List:
		return "list"
	case *types.Tuple:
		return "tuple"
	}
	return fmt.Sprintf("%T", v)
}

// recoverPickle turns a panic inside gopickle (it panics on a few malformed
// inputs) into a FormatError.
func recoverPickle(p string, format Format, err *error) {
	if r := recover(); r != nil {
		*err = &FormatError{Source: p, Format: format, Err: fmt.Errorf("malformed pickle (%v)", r)}
	}
}

func pickleErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated pickle")
	}
	return err
}

// refusedClass is the error for a class a weights pickle must not contain.
type refusedClass struct{ module, name string }

func (e *refusedClass) Error() string {
	return fmt.Sprintf("the pickle refers to class %s.%s, which a weights file does not need", e.module, e.name)
}

// ---- numpy ----

func numpyClass(module, name string) (any, error) {
	switch module + "." + name {
	case "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct":
		return callable(func(args ...any) (any, error) { return &ndarray{}, nil }), nil
	case "numpy.ndarray":
		return ndarrayClass{}, nil
	case "numpy.dtype":
		return callable(func(args ...any) (any, error) {
			if len(args) < 1 {
				return nil, errors.New("numpy.dtype without arguments")
			}
			s, ok := args[0].(string)
			if !ok {
				return nil, fmt.Errorf("numpy.dtype(%v)", args[0])
			}
			return &npDtype{kind: s, order: '<'}, nil
		}), nil
	case "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar":
		return callable(func(args ...any) (any, error) {
			if len(args) != 2 {
				return nil, errors.New("numpy scalar: want (dtype, bytes)")
			}
			dt, ok := args[0].(*npDtype)
			raw, ok2 := bytesArg(args[1])
			if !ok || !ok2 {
				return nil, errors.New("numpy scalar: want (dtype, bytes)")
			}
			a := &ndarray{shape: []int{}}
			a.fill(dt, raw)
			return a, nil
		}), nil
	case "_codecs.encode":
		return callable(func(args ...any) (any, error) {
			if len(args) < 1 {
				return nil, errors.New("_codecs.encode without arguments")
			}
			s, ok := args[0].(string)
			if !ok {
				return nil, errors.New("_codecs.encode of a non-string")
			}
			if len(args) > 1 {
				if enc, _ := args[1].(string); enc != "latin1" && enc != "latin-1" {
					return nil, fmt.Errorf("_codecs.encode with encoding %q", enc)
				}
			}
			out := make([]byte, 0, len(s))
			for _, r := range s {
				if r > 0xff {
					return nil, errors.New("_codecs.encode: not latin-1")
				}
				out = append(out, byte(r))
			}
			return out, nil
		}), nil
	}
	return nil, &refusedClass{module, name}
}

type callable func(args ...any) (any, error)

func (c callable) Call(args ...any) (any, error) { return c(args...) }

type ndarrayClass struct{}

// npDtype is a numpy dtype: kind as numpy.dtype's first argument ("f4",
// "f8", "i8", ...) and the byte order set by its state.
type npDtype struct {
	kind  string
	order byte
}

func (d *npDtype) PySetState(state any) error {
	t, ok := state.(*types.Tuple)
	if !ok || t.Len() < 2 {
		return errors.New("numpy dtype: bad state")
	}
	if s, ok := t.Get(1).(string); ok && len(s) == 1 {
		d.order = s[0]
	}
	return nil
}

// name and size of the dtype in Tensor.DType terms.
func (d *npDtype) info() (string, int) {
	switch d.kind {
	case "f4":
		return "float32", 4
	case "f8":
		return "float64", 8
	case "f2":
		return "float16", 2
	case "i8", "u8":
		return "int64", 8
	case "i4", "u4":
		return "int32", 4
	case "i2", "u2":
		return "int16", 2
	case "i1", "u1", "b1":
		return "int8", 1
	}
	return "", 0
}

// ndarray is a numpy array rebuilt from its pickle (its __setstate__:
// version, shape, dtype, Fortran order, raw data). err records a problem
// found while building, reported with the array's key.
type ndarray struct {
	shape []int
	dtype string
	data  []float32
	err   error
}

func (a *ndarray) PySetState(state any) error {
	t, ok := state.(*types.Tuple)
	if !ok || t.Len() != 5 {
		return errors.New("numpy array: bad state")
	}
	shp, ok := t.Get(1).(*types.Tuple)
	dt, ok2 := t.Get(2).(*npDtype)
	fortran, _ := t.Get(3).(bool)
	raw, ok3 := bytesArg(t.Get(4))
	if !ok || !ok2 {
		return errors.New("numpy array: bad state")
	}
	a.shape = make([]int, shp.Len())
	for i := range a.shape {
		v, ok := shp.Get(i).(int)
		if !ok {
			return errors.New("numpy array: bad shape")
		}
		a.shape[i] = v
	}
	if !ok3 {
		a.err = errors.New("numpy array of Python objects")
		return nil
	}
	if fortran && len(a.shape) > 1 {
		a.err = errors.New("numpy array in Fortran order")
		return nil
	}
	a.fill(dt, raw)
	return nil
}

func (a *ndarray) fill(dt *npDtype, raw []byte) {
	name, size := dt.info()
	if size == 0 {
		a.err = fmt.Errorf("unsupported numpy dtype %q", dt.kind)
		return
	}
	a.dtype = name
	n := checkpointNum(a.shape)
	if n < 0 || n*size != len(raw) {
		a.err = fmt.Errorf("truncated or inconsistent: shape %v %s needs %d bytes, the pickle holds %d", a.shape, name, n*size, len(raw))
		return
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if dt.order == '>' {
		bo = binary.BigEndian
	}
	a.data = decodeFloats(raw, name, bo)
}

func bytesArg(v any) ([]byte, bool) {
	switch b := v.(type) {
	case []byte:
		return b, true
	case string: // protocol 0/1 byte strings
		return []byte(b), true
	}
	return nil, false
}

// ---- PyTorch ----

// readTorch reads a PyTorch state_dict saved by torch.save, in the zip
// format (zipFormat) or the legacy one. A dict holding the state_dict under
// "state_dict", "model" or "model_state_dict" (a training checkpoint) is
// accepted too; "module." prefixes (DataParallel) are kept here and dropped
// by Map.
func readTorch(p string, zipFormat bool) (f *File, err error) {
	f = &File{Source: p, Format: FormatTorchLegacy}
	if zipFormat {
		f.Format = FormatTorchZip
	}
	defer recoverPickle(p, f.Format, &err)
	if zipFormat {
		// A zip's directory is at its end: a cut file does not open.
		z, zerr := zip.OpenReader(p)
		if zerr != nil {
			return nil, &FormatError{Source: p, Format: f.Format, Err: fmt.Errorf("truncated or corrupt zip archive: %v", zerr)}
		}
		z.Close()
	}
	obj, err := pytorch.LoadWithUnpickler(p, func(r io.Reader) pickle.Unpickler {
		u := pickle.NewUnpickler(r)
		u.FindClass = torchClass
		return u
	})
	if err != nil {
		var rc *refusedClass
		switch {
		case strings.Contains(err.Error(), "TorchScript"):
			err = errors.New("a TorchScript archive, not a state_dict: save model.state_dict() with torch.save")
		case errors.As(err, &rc):
			err = fmt.Errorf("%w: a pickled whole model or another object, not a state_dict; save model.state_dict() with torch.save", err)
		case errors.Is(err, pytorch.ErrInvalidMagicNumber) || errors.Is(err, pytorch.ErrInvalidProtocolVersion):
			err = fmt.Errorf("not a PyTorch file: %w", err)
		default:
			if err = pickleErr(err); err.Error() == "truncated pickle" && !zipFormat {
				err = errors.New("truncated: the file ends inside the pickle or the tensor data after it")
			}
		}
		return nil, &FormatError{Source: p, Format: f.Format, Err: err}
	}
	entries, ok := dictEntries(obj)
	if !ok {
		return nil, &FormatError{Source: p, Format: f.Format, Err: fmt.Errorf("the file holds a %s, not a state_dict", pyType(obj))}
	}
	if !hasTensor(entries) {
		for _, e := range entries {
			if e.key == "state_dict" || e.key == "model" || e.key == "model_state_dict" {
				if inner, ok := dictEntries(e.value); ok && hasTensor(inner) {
					entries = inner
					break
				}
			}
		}
	}
	for _, e := range entries {
		t, ok := e.value.(*pytorch.Tensor)
		if !ok {
			switch e.value.(type) {
			case int, float64, string, bool, nil:
				continue // training metadata beside the tensors (epoch, ...)
			}
			return nil, &FormatError{Source: p, Format: f.Format, Record: e.key, Err: fmt.Errorf("a %s, not a tensor", pyType(e.value))}
		}
		tt, err := torchTensor(e.key, t)
		if err != nil {
			return nil, &FormatError{Source: p, Format: f.Format, Record: e.key, Err: err}
		}
		f.Tensors = append(f.Tensors, tt)
	}
	if len(f.Tensors) == 0 {
		return nil, &FormatError{Source: p, Format: f.Format, Err: errors.New("no tensors in the state_dict")}
	}
	return f, nil
}

func hasTensor(es []entry) bool {
	for _, e := range es {
		if _, ok := e.value.(*pytorch.Tensor); ok {
			return true
		}
	}
	return false
}

func torchClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_parameter":
		return callable(func(args ...any) (any, error) {
			if len(args) < 1 {
				return nil, errors.New("_rebuild_parameter without data")
			}
			return args[0], nil
		}), nil
	}
	return nil, &refusedClass{module, name}
}

// torchTensor gathers a tensor's elements from its storage (any strides).
func torchTensor(name string, t *pytorch.Tensor) (Tensor, error) {
	out := Tensor{Name: name, Shape: append([]int{}, t.Size...)}
	if len(t.Stride) != len(t.Size) {
		return out, fmt.Errorf("%d strides for %d dims", len(t.Stride), len(t.Size))
	}
	n := checkpointNum(t.Size)
	if n < 0 {
		return out, fmt.Errorf("bad shape %v", t.Size)
	}
	var get func(i int) float32
	var length int
	switch s := t.Source.(type) {
	case *pytorch.FloatStorage:
		out.DType, length, get = "float32", len(s.Data), func(i int) float32 { return s.Data[i] }
	case *pytorch.HalfStorage:
		out.DType, length, get = "float16", len(s.Data), func(i int) float32 { return s.Data[i] }
	case *pytorch.BFloat16Storage:
		out.DType, length, get = "bfloat16", len(s.Data), func(i int) float32 { return s.Data[i] }
	case *pytorch.DoubleStorage:
		out.DType, length, get = "float64", len(s.Data), func(i int) float32 { return float32(s.Data[i]) }
	case *pytorch.LongStorage:
		out.DType = "int64"
		return out, nil
	case *pytorch.IntStorage, *pytorch.ShortStorage, *pytorch.CharStorage, *pytorch.ByteStorage, *pytorch.BoolStorage:
		out.DType = "int"
		return out, nil
	default:
		return out, fmt.Errorf("unsupported storage %T", t.Source)
	}
	if n == 0 {
		out.Data = []float32{}
		return out, nil
	}
	// The largest offset reached must lie in the storage.
	last := t.StorageOffset
	for d, sz := range t.Size {
		if t.Stride[d] < 0 {
			return out, fmt.Errorf("negative stride %v", t.Stride)
		}
		last += (sz - 1) * t.Stride[d]
	}
	if t.StorageOffset < 0 || last >= length {
		return out, fmt.Errorf("shape %v (strides %v, offset %d) reaches past its storage of %d elements (truncated?)", t.Size, t.Stride, t.StorageOffset, length)
	}
	out.Data = make([]float32, n)
	idx := make([]int, len(t.Size))
	for i := 0; i < n; i++ {
		off := t.StorageOffset
		for d := range idx {
			off += idx[d] * t.Stride[d]
		}
		out.Data[i] = get(off)
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < t.Size[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out, nil
}
