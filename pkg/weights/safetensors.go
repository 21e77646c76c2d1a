package weights

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// safetensors dtypes and their sizes in bytes.
var safeDTypes = map[string]struct {
	name string
	size int
}{
	"F32": {"float32", 4}, "F64": {"float64", 8}, "F16": {"float16", 2}, "BF16": {"bfloat16", 2},
	"I64": {"int64", 8}, "I32": {"int32", 4}, "I16": {"int16", 2}, "I8": {"int8", 1},
	"U64": {"int64", 8}, "U32": {"int32", 4}, "U16": {"int16", 2}, "U8": {"int8", 1}, "BOOL": {"int8", 1},
}

// readSafetensors reads the safetensors layout: a little-endian uint64
// header size N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin,
// end]}, "__metadata__": {...}}, then the data, offsets relative to its
// start. Tensors are returned in data order.
func readSafetensors(p string, size int64) (*File, error) {
	f := &File{Source: p, Format: FormatSafetensors}
	fail := func(rec string, err error) (*File, error) {
		return nil, &FormatError{Source: p, Format: f.Format, Record: rec, Err: err}
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var lb [8]byte
	if _, err := io.ReadFull(fh, lb[:]); err != nil {
		return fail("", errors.New("truncated header"))
	}
	n := binary.LittleEndian.Uint64(lb[:])
	if n > uint64(size-8) || n > 100<<20 {
		return fail("", fmt.Errorf("header of %d bytes in a file of %d", n, size))
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(fh, hdr); err != nil {
		return fail("", errors.New("truncated header"))
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &entries); err != nil {
		return fail("header", err)
	}
	type ent struct {
		name   string
		DType  string  `json:"dtype"`
		Shape  []int   `json:"shape"`
		Offs   []int64 `json:"data_offsets"`
		dt     string
		elSize int
	}
	var list []ent
	for name, raw := range entries {
		if name == "__metadata__" {
			continue
		}
		var e ent
		if err := json.Unmarshal(raw, &e); err != nil {
			return fail(name, err)
		}
		e.name = name
		info, ok := safeDTypes[e.DType]
		if !ok {
			return fail(name, fmt.Errorf("unsupported dtype %q", e.DType))
		}
		e.dt, e.elSize = info.name, info.size
		if len(e.Offs) != 2 || e.Offs[0] < 0 || e.Offs[1] < e.Offs[0] {
			return fail(name, fmt.Errorf("bad data_offsets %v", e.Offs))
		}
		num := checkpointNum(e.Shape)
		if num < 0 || int64(num*e.elSize) != e.Offs[1]-e.Offs[0] {
			return fail(name, fmt.Errorf("shape %v %s needs %d bytes, data_offsets %v span %d", e.Shape, e.DType, num*e.elSize, e.Offs, e.Offs[1]-e.Offs[0]))
		}
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Offs[0] < list[j].Offs[0] })
	data := size - 8 - int64(n)
	for _, e := range list {
		if e.Offs[1] > data {
			return fail(e.name, fmt.Errorf("truncated: data_offsets %v past the %d data bytes in the file", e.Offs, data))
		}
	}
	for _, e := range list {
		raw := make([]byte, e.Offs[1]-e.Offs[0])
		if _, err := fh.ReadAt(raw, 8+int64(n)+e.Offs[0]); err != nil {
			return fail(e.name, fmt.Errorf("reading data: %w", err))
		}
		shape := e.Shape
		if shape == nil {
			shape = []int{}
		}
		t := Tensor{Name: e.name, Shape: shape, DType: e.dt, Data: decodeFloats(raw, e.dt, binary.LittleEndian)}
		f.Tensors = append(f.Tensors, t)
	}
	if len(f.Tensors) == 0 {
		return fail("", errors.New("no tensors"))
	}
	return f, nil
}
