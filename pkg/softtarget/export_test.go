package softtarget

import (
	"bytes"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// Internals for the external tests (package softtarget_test).

// FileMagic and StreamContTok are the Arrow IPC file magic and the
// continuation marker before every message.
var FileMagic, StreamContTok = fileMagic, streamContTok

// QuantHalf rounds x to float16 and back, as the 16-bit encodings store it.
func QuantHalf(x float32) float32 { return halfToFloat[floatToHalf(x)] }

// RawStream writes an Arrow stream with the soft-target columns of m but the
// given schema metadata edits (an empty value deletes the key), and one
// trailer batch.
func RawStream(m Meta, edit map[string]string) ([]byte, error) {
	l := newLayout(m)
	md := l.schema.Metadata().ToMap()
	for k, v := range edit {
		if v == "" {
			delete(md, k)
		} else {
			md[k] = v
		}
	}
	mm := arrow.MetadataFrom(md)
	sc := arrow.NewSchema(l.schema.Fields(), &mm)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc))
	cols := make([]colBuf, len(l.kinds))
	arrs := make([]arrow.Array, len(cols))
	for i := range cols {
		cols[i].reset()
		arrs[i] = cols[i].array(sc.Field(i).Type, l.kinds[i], 0)
	}
	rec := array.NewRecordBatchWithMetadata(sc, arrs, 0, trailerMetadata(nil, nil))
	if err := w.Write(rec); err != nil {
		return nil, err
	}
	w.Close()
	return buf.Bytes(), nil
}

// NewStreamWriterVersion is NewStreamWriter writing schema version version
// (1: as teacher-dump wrote before pixel hashes), for reading tests.
func NewStreamWriterVersion(w io.Writer, meta Meta, version int) (*Writer, error) {
	wr, err := newWriter(meta, nil)
	if err != nil {
		return nil, err
	}
	meta.Version = version
	wr.l = newLayout(meta)
	wr.cols = make([]colBuf, len(wr.l.kinds))
	wr.resetCols()
	wr.rw = ipc.NewWriter(w, ipc.WithSchema(wr.l.schema))
	return wr, nil
}
