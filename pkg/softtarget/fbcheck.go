package softtarget

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Arrow's IPC readers trust the lengths of flatbuffer vectors: a corrupted
// vector length in a schema, footer or message header makes them allocate
// gigabytes (a fatal out-of-memory, not a recoverable panic). fbCheck walks
// the parts of those flatbuffers that arrow-go reads and checks every table,
// vector and string lies inside the buffer, before arrow sees it.

type fbCheck struct{ b []byte }

var errFB = errors.New("damaged flatbuffer")

func (f fbCheck) in(p, n int) bool { return p >= 0 && n >= 0 && p <= len(f.b) && n <= len(f.b)-p }

func (f fbCheck) u32(p int) (int, error) {
	if !f.in(p, 4) {
		return 0, errFB
	}
	return int(binary.LittleEndian.Uint32(f.b[p:])), nil
}

func (f fbCheck) u16(p int) (int, error) {
	if !f.in(p, 2) {
		return 0, errFB
	}
	return int(binary.LittleEndian.Uint16(f.b[p:])), nil
}

// table checks the table at p and its vtable; it returns the vtable position.
func (f fbCheck) table(p int) (vt int, err error) {
	if !f.in(p, 4) {
		return 0, errFB
	}
	vt = p - int(int32(binary.LittleEndian.Uint32(f.b[p:])))
	vs, err := f.u16(vt)
	if err != nil || vs < 4 || vs%2 != 0 || !f.in(vt, vs) {
		return 0, errFB
	}
	ts, err := f.u16(vt + 2)
	if err != nil || ts < 4 || !f.in(p, ts) {
		return 0, errFB
	}
	return vt, nil
}

// field gives the position of field i of the table at p (vtable vt), or -1.
func (f fbCheck) field(p, vt, i int) int {
	vs, _ := f.u16(vt)
	if 4+2*i+2 > vs {
		return -1
	}
	off, _ := f.u16(vt + 4 + 2*i)
	if off == 0 {
		return -1
	}
	return p + off
}

// ref follows the offset stored at pos.
func (f fbCheck) ref(pos int) (int, error) {
	o, err := f.u32(pos)
	if err != nil || !f.in(pos+o, 0) {
		return 0, errFB
	}
	return pos + o, nil
}

// subtable follows field i (an offset to a table); -1 when absent.
func (f fbCheck) subtable(p, vt, i int) (q, qvt int, err error) {
	pos := f.field(p, vt, i)
	if pos < 0 {
		return -1, 0, nil
	}
	if q, err = f.ref(pos); err != nil {
		return 0, 0, err
	}
	qvt, err = f.table(q)
	return q, qvt, err
}

// vector checks field i (a vector of n elements of elem bytes) and returns
// the element positions' start and n; n = 0 when absent.
func (f fbCheck) vector(p, vt, i, elem int) (start, n int, err error) {
	pos := f.field(p, vt, i)
	if pos < 0 {
		return 0, 0, nil
	}
	v, err := f.ref(pos)
	if err != nil {
		return 0, 0, err
	}
	if n, err = f.u32(v); err != nil || n > len(f.b)/elem || !f.in(v+4, n*elem) {
		return 0, 0, errFB
	}
	return v + 4, n, nil
}

// tables checks a vector of tables (field i) with check on each element.
func (f fbCheck) tables(p, vt, i int, check func(q, qvt int) error) error {
	start, n, err := f.vector(p, vt, i, 4)
	if err != nil {
		return err
	}
	for j := 0; j < n; j++ {
		q, err := f.ref(start + 4*j)
		if err != nil {
			return err
		}
		qvt, err := f.table(q)
		if err != nil {
			return err
		}
		if err := check(q, qvt); err != nil {
			return err
		}
	}
	return nil
}

func (f fbCheck) strField(p, vt, i int) error {
	_, _, err := f.vector(p, vt, i, 1)
	return err
}

func (f fbCheck) keyValues(p, vt, i int) error {
	return f.tables(p, vt, i, func(q, qvt int) error {
		if err := f.strField(q, qvt, 0); err != nil {
			return err
		}
		return f.strField(q, qvt, 1)
	})
}

// Field: name(0) nullable(1) type_type(2) type(3) dictionary(4) children(5) custom_metadata(6)
func (f fbCheck) arrowField(p, vt, depth int) error {
	if depth > 16 {
		return errFB
	}
	if err := f.strField(p, vt, 0); err != nil {
		return err
	}
	// type_type: only Int(2), FloatingPoint(3), Binary(4), Utf8(5), List(12) are written here.
	pos := f.field(p, vt, 2)
	if pos < 0 || !f.in(pos, 1) {
		return errFB
	}
	switch f.b[pos] {
	case 2, 3, 4, 5, 12:
	default:
		return fmt.Errorf("unexpected Arrow type %d", f.b[pos])
	}
	if _, _, err := f.subtable(p, vt, 3); err != nil {
		return err
	}
	if q, _, err := f.subtable(p, vt, 4); err != nil || q >= 0 {
		return errFB // dictionaries are never written here
	}
	if err := f.tables(p, vt, 5, func(q, qvt int) error { return f.arrowField(q, qvt, depth+1) }); err != nil {
		return err
	}
	return f.keyValues(p, vt, 6)
}

// Schema: endianness(0) fields(1) custom_metadata(2) features(3)
func (f fbCheck) schema(p, vt int) error {
	if err := f.tables(p, vt, 1, func(q, qvt int) error { return f.arrowField(q, qvt, 0) }); err != nil {
		return err
	}
	if err := f.keyValues(p, vt, 2); err != nil {
		return err
	}
	_, _, err := f.vector(p, vt, 3, 8)
	return err
}

func (f fbCheck) root() (int, int, error) {
	p, err := f.u32(0)
	if err != nil {
		return 0, 0, err
	}
	vt, err := f.table(p)
	return p, vt, err
}

// checkMessage checks an IPC Message flatbuffer: version(0) header_type(1)
// header(2) bodyLength(3) custom_metadata(4). Schema (1) and RecordBatch (3)
// headers are checked; other message types are refused.
func checkMessage(b []byte) error {
	f := fbCheck{b}
	p, vt, err := f.root()
	if err != nil {
		return err
	}
	if err := f.keyValues(p, vt, 4); err != nil {
		return err
	}
	ht := 0
	if pos := f.field(p, vt, 1); pos >= 0 {
		if !f.in(pos, 1) {
			return errFB
		}
		ht = int(b[pos])
	}
	q, qvt, err := f.subtable(p, vt, 2)
	if err != nil || q < 0 {
		return errFB
	}
	switch ht {
	case 1: // Schema
		return f.schema(q, qvt)
	case 3: // RecordBatch: length(0) nodes(1) buffers(2) compression(3) variadicBufferCounts(4)
		if _, _, err := f.vector(q, qvt, 1, 16); err != nil {
			return err
		}
		if _, _, err := f.vector(q, qvt, 2, 16); err != nil {
			return err
		}
		if _, _, err := f.subtable(q, qvt, 3); err != nil {
			return err
		}
		_, _, err := f.vector(q, qvt, 4, 8)
		return err
	default:
		return fmt.Errorf("unexpected IPC message type %d", ht)
	}
}

// fileBlock is one entry of an IPC file footer's record batch list.
type fileBlock struct {
	offset int64
	meta   int32
	body   int64
}

// checkFooter checks an IPC file Footer flatbuffer: version(0) schema(1)
// dictionaries(2) recordBatches(3) custom_metadata(4), and returns the blocks.
func checkFooter(b []byte) ([]fileBlock, error) {
	f := fbCheck{b}
	p, vt, err := f.root()
	if err != nil {
		return nil, err
	}
	q, qvt, err := f.subtable(p, vt, 1)
	if err != nil || q < 0 {
		return nil, errFB
	}
	if err := f.schema(q, qvt); err != nil {
		return nil, err
	}
	if _, n, err := f.vector(p, vt, 2, 24); err != nil || n != 0 {
		return nil, errFB
	}
	if err := f.keyValues(p, vt, 4); err != nil {
		return nil, err
	}
	start, n, err := f.vector(p, vt, 3, 24)
	if err != nil {
		return nil, err
	}
	blocks := make([]fileBlock, n)
	for i := range blocks {
		e := b[start+24*i:]
		blocks[i] = fileBlock{
			offset: int64(binary.LittleEndian.Uint64(e)),
			meta:   int32(binary.LittleEndian.Uint32(e[8:])),
			body:   int64(binary.LittleEndian.Uint64(e[16:])),
		}
	}
	return blocks, nil
}
