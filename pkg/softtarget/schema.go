package softtarget

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// colKind is the physical form of a column.
type colKind int

const (
	colInt64 colKind = iota
	colInt32
	colString
	colBinary
	colListF32
	colListF16
	colListI32
	colUint32 // values kept in colBuf.i32 as bits
)

// layout is the column plan of a schema, derived from Meta alone.
type layout struct {
	meta   Meta
	schema *arrow.Schema
	kinds  []colKind

	cImageID, cFile, cView, cAug, cInH, cInW int
	cH, cW                                   []int // per scale
	cOut                                     []int // dense, per scale
	cObj, cIdx, cBoxCls                      []int // sparse, per scale
	cFeat, cFeatShape                        []int // per feature
	cHash                                    int   // view_sha256 (version >= 2), else -1
	cCRC                                     int   // CRC-32C of the row's other columns
}

func newLayout(m Meta) *layout {
	if m.Version == 0 {
		m.Version = Version
	}
	l := &layout{meta: m}
	var fields []arrow.Field
	add := func(name string, k colKind) int {
		var t arrow.DataType
		switch k {
		case colInt64:
			t = arrow.PrimitiveTypes.Int64
		case colInt32:
			t = arrow.PrimitiveTypes.Int32
		case colString:
			t = arrow.BinaryTypes.String
		case colBinary:
			t = arrow.BinaryTypes.Binary
		case colListF32:
			t = arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32)
		case colListF16:
			t = arrow.ListOfNonNullable(arrow.FixedWidthTypes.Float16)
		case colListI32:
			t = arrow.ListOfNonNullable(arrow.PrimitiveTypes.Int32)
		case colUint32:
			t = arrow.PrimitiveTypes.Uint32
		}
		fields = append(fields, arrow.Field{Name: name, Type: t})
		l.kinds = append(l.kinds, k)
		return len(fields) - 1
	}
	fl := colListF32
	if m.Encoding.Half {
		fl = colListF16
	}
	l.cImageID = add("image_id", colInt64)
	l.cFile = add("file", colString)
	l.cView = add("view", colInt32)
	l.cAug = add("aug", colBinary)
	l.cInH = add("input_h", colInt32)
	l.cInW = add("input_w", colInt32)
	for s := 0; s < m.NumScales(); s++ {
		p := fmt.Sprintf("out%d", s)
		l.cH = append(l.cH, add(p+".h", colInt32))
		l.cW = append(l.cW, add(p+".w", colInt32))
		if m.Encoding.Kind == Dense {
			l.cOut = append(l.cOut, add(p, fl))
		} else {
			l.cObj = append(l.cObj, add(p+".obj", fl))
			l.cIdx = append(l.cIdx, add(p+".idx", colListI32))
			l.cBoxCls = append(l.cBoxCls, add(p+".box_cls", fl))
		}
	}
	for _, f := range m.Features {
		l.cFeat = append(l.cFeat, add("feat."+f, fl))
		l.cFeatShape = append(l.cFeatShape, add("feat."+f+".shape", colListI32))
	}
	l.cHash = -1
	if m.HasPixelHashes() {
		l.cHash = add("view_sha256", colBinary)
	}
	l.cCRC = add("crc32c", colUint32)
	keys, vals := m.metadata()
	md := arrow.NewMetadata(keys, vals)
	l.schema = arrow.NewSchema(fields, &md)
	return l
}

// colBuf accumulates one column of a record batch being built.
type colBuf struct {
	i64  []int64
	i32  []int32 // int32 column, or list<int32> values
	f32  []float32
	u16  []uint16
	data []byte  // string/binary bytes
	offs []int32 // list/string/binary offsets; offs[0] = 0
}

func (c *colBuf) reset() {
	c.i64, c.i32, c.f32, c.u16, c.data = c.i64[:0], c.i32[:0], c.f32[:0], c.u16[:0], c.data[:0]
	c.offs = append(c.offs[:0], 0)
}

// endRow closes the current list or binary value; it fails when the batch's
// values would not fit Arrow's int32 offsets.
func (c *colBuf) endRow(n int) error {
	if n > math.MaxInt32 {
		return fmt.Errorf("column holds %d values in one batch, more than Arrow's int32 offsets allow", n)
	}
	c.offs = append(c.offs, int32(n))
	return nil
}

func (c *colBuf) appendFloats(half bool, v []float32) error {
	if half {
		n := len(c.u16)
		c.u16 = append(c.u16, make([]uint16, len(v))...)
		dst := c.u16[n:]
		for i, x := range v {
			dst[i] = floatToHalf(x)
		}
		return c.endRow(len(c.u16))
	}
	c.f32 = append(c.f32, v...)
	return c.endRow(len(c.f32))
}

// array wraps the accumulated values as an Arrow array of rows rows, without copying.
func (c *colBuf) array(t arrow.DataType, k colKind, rows int) arrow.Array {
	buf := memory.NewBufferBytes
	offs := buf(arrow.Int32Traits.CastToBytes(c.offs))
	var d arrow.ArrayData
	switch k {
	case colInt64:
		d = array.NewData(t, rows, []*memory.Buffer{nil, buf(arrow.Int64Traits.CastToBytes(c.i64))}, nil, 0, 0)
	case colInt32, colUint32:
		d = array.NewData(t, rows, []*memory.Buffer{nil, buf(arrow.Int32Traits.CastToBytes(c.i32))}, nil, 0, 0)
	case colString, colBinary:
		d = array.NewData(t, rows, []*memory.Buffer{nil, offs, buf(c.data)}, nil, 0, 0)
	default:
		lt := t.(*arrow.ListType)
		var child arrow.ArrayData
		switch k {
		case colListF32:
			child = array.NewData(lt.Elem(), len(c.f32), []*memory.Buffer{nil, buf(arrow.Float32Traits.CastToBytes(c.f32))}, nil, 0, 0)
		case colListF16:
			child = array.NewData(lt.Elem(), len(c.u16), []*memory.Buffer{nil, buf(arrow.Uint16Traits.CastToBytes(c.u16))}, nil, 0, 0)
		case colListI32:
			child = array.NewData(lt.Elem(), len(c.i32), []*memory.Buffer{nil, buf(arrow.Int32Traits.CastToBytes(c.i32))}, nil, 0, 0)
		}
		defer child.Release()
		d = array.NewData(t, rows, []*memory.Buffer{nil, offs}, []arrow.ArrayData{child}, 0, 0)
	}
	defer d.Release()
	return array.MakeFromData(d)
}

// castagnoli is the CRC-32C table (hardware-accelerated on amd64 and arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// colMark remembers a colBuf's lengths before a row is appended.
type colMark struct{ i64, i32, f32, u16, data int }

func (c *colBuf) mark() colMark {
	return colMark{len(c.i64), len(c.i32), len(c.f32), len(c.u16), len(c.data)}
}

// crcSince extends crc with the bytes appended since m (a column uses one of
// the typed slices; values in native little-endian order).
func (c *colBuf) crcSince(crc uint32, m colMark) uint32 {
	crc = crc32.Update(crc, castagnoli, arrow.Int64Traits.CastToBytes(c.i64[m.i64:]))
	crc = crc32.Update(crc, castagnoli, arrow.Int32Traits.CastToBytes(c.i32[m.i32:]))
	crc = crc32.Update(crc, castagnoli, arrow.Float32Traits.CastToBytes(c.f32[m.f32:]))
	crc = crc32.Update(crc, castagnoli, arrow.Uint16Traits.CastToBytes(c.u16[m.u16:]))
	return crc32.Update(crc, castagnoli, c.data[m.data:])
}

// rowCRC computes, from a record batch, the checksum the writer stored for
// row i: CRC-32C over the row's values of every column but the last, in
// column order.
func rowCRC(rec arrow.RecordBatch, i int, kinds []colKind) uint32 {
	var crc uint32
	var tmp [8]byte
	for c, k := range kinds[:len(kinds)-1] {
		var b []byte
		switch k {
		case colInt64:
			binary.LittleEndian.PutUint64(tmp[:], uint64(colAs[*array.Int64](rec, c).Value(i)))
			b = tmp[:8]
		case colInt32:
			binary.LittleEndian.PutUint32(tmp[:], uint32(colAs[*array.Int32](rec, c).Value(i)))
			b = tmp[:4]
		case colString:
			b = []byte(colAs[*array.String](rec, c).Value(i))
		case colBinary:
			b = colAs[*array.Binary](rec, c).Value(i)
		default:
			l, s, e := listRange(rec, c, i)
			switch v := l.ListValues().(type) {
			case *array.Float32:
				b = arrow.Float32Traits.CastToBytes(v.Float32Values()[s:e])
			case *array.Float16:
				b = arrow.Float16Traits.CastToBytes(v.Values()[s:e])
			case *array.Int32:
				b = arrow.Int32Traits.CastToBytes(v.Int32Values()[s:e])
			default:
				panic(fmt.Sprintf("column %d holds %T", c, v))
			}
		}
		crc = crc32.Update(crc, castagnoli, b)
	}
	return crc
}
