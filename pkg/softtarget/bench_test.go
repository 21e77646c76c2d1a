package softtarget_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/softtarget/softtargettest"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var benchEncodings = []struct {
	name string
	enc  softtarget.Encoding
}{
	{"dense32", softtarget.Encoding{}},
	{"dense16", softtarget.Encoding{Half: true}},
	{"sparse32", softtarget.Encoding{Kind: softtarget.Sparse, Threshold: 0.5}},
	{"sparse16", softtarget.Encoding{Kind: softtarget.Sparse, Half: true, Threshold: 0.5}},
}

// benchView: a 416 px view with 20 classes; SetBytes counts its dense float32 size.
func benchView(m *softtarget.Meta) *softtarget.View {
	return (&softtargettest.Gen{Rand: rand.New(rand.NewPCG(416, 20))}).View(m, 1, 0, 416, 416)
}

func denseBytes(v *softtarget.View) int64 {
	n := 0
	for _, t := range v.Outputs {
		n += 4 * len(t.Data)
	}
	return int64(n)
}

// BenchmarkWrite: one 416 px / 20-class view per op to an IPC stream
// (io.Discard). MB/s is in dense float32 terms.
func BenchmarkWrite(b *testing.B) {
	for _, e := range benchEncodings {
		b.Run(e.name, func(b *testing.B) {
			m := softtargettest.Meta(20, e.enc)
			v := benchView(&m)
			w, err := softtarget.NewStreamWriter(io.Discard, m)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(denseBytes(v))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := w.Write(v); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			w.Close()
		})
	}
}

// BenchmarkRead: one 416 px / 20-class view per op into a reused View, from an
// in-memory IPC file by row (random access) and from a stream (sequential).
func BenchmarkRead(b *testing.B) {
	const nViews = 8
	for _, e := range benchEncodings {
		m := softtargettest.Meta(20, e.enc)
		v := benchView(&m)
		views := make([]*softtarget.View, nViews)
		for i := range views {
			c := *v
			c.ImageID = int64(i)
			views[i] = &c
		}
		stream := softtargettest.WriteStream(b, m, views)
		file := fileBytes(b, m, views)
		b.Run(e.name+"/file", func(b *testing.B) {
			r, err := softtarget.NewFileReader(bytes.NewReader(file), int64(len(file)), "bench")
			if err != nil {
				b.Fatal(err)
			}
			var dst softtarget.View
			b.SetBytes(denseBytes(v))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := r.ReadRow(i%nViews, &dst); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(e.name+"/stream", func(b *testing.B) {
			var dst softtarget.View
			b.SetBytes(denseBytes(v))
			r, _ := softtarget.NewReader(bytes.NewReader(stream), "bench")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				err := r.Next(&dst)
				if err == io.EOF {
					b.StopTimer()
					r, _ = softtarget.NewReader(bytes.NewReader(stream), "bench")
					b.StartTimer()
					err = r.Next(&dst)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fileBytes writes views as an IPC file and returns its bytes.
func fileBytes(b testing.TB, m softtarget.Meta, views []*softtarget.View) []byte {
	p := filepath.Join(b.TempDir(), "b.arrow")
	softtargettest.WriteFile(b, p, m, views)
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkLayout compares decoding one 416 px / 20-class scale-2 output
// (3*25 x 52 x 52 floats) stored as list<float32> with the same bytes stored
// as binary, from an IPC stream to []float32.
func BenchmarkLayout(b *testing.B) {
	vals := make([]float32, 75*52*52)
	for i := range vals {
		vals[i] = float32(i)
	}
	raw := arrow.Float32Traits.CastToBytes(vals)
	mk := func(t arrow.DataType) []byte {
		var arr arrow.Array
		if t.ID() == arrow.LIST {
			child := array.NewData(arrow.PrimitiveTypes.Float32, len(vals), []*memory.Buffer{nil, memory.NewBufferBytes(raw)}, nil, 0, 0)
			offs := arrow.Int32Traits.CastToBytes([]int32{0, int32(len(vals))})
			arr = array.MakeFromData(array.NewData(t, 1, []*memory.Buffer{nil, memory.NewBufferBytes(offs)}, []arrow.ArrayData{child}, 0, 0))
		} else {
			offs := arrow.Int32Traits.CastToBytes([]int32{0, int32(len(raw))})
			arr = array.MakeFromData(array.NewData(t, 1, []*memory.Buffer{nil, memory.NewBufferBytes(offs), memory.NewBufferBytes(raw)}, nil, 0, 0))
		}
		sc := arrow.NewSchema([]arrow.Field{{Name: "x", Type: t}}, nil)
		var buf bytes.Buffer
		w := ipc.NewWriter(&buf, ipc.WithSchema(sc))
		w.Write(array.NewRecordBatch(sc, []arrow.Array{arr}, 1))
		w.Close()
		return buf.Bytes()
	}
	dst := make([]float32, len(vals))
	cases := []struct {
		name   string
		data   []byte
		decode func(arrow.Array)
	}{
		{"list_float32", mk(arrow.ListOfNonNullable(arrow.PrimitiveTypes.Float32)), func(a arrow.Array) {
			l := a.(*array.List)
			s, e := l.ValueOffsets(0)
			copy(dst, l.ListValues().(*array.Float32).Float32Values()[s:e])
		}},
		{"binary_unsafe", mk(arrow.BinaryTypes.Binary), func(a arrow.Array) {
			v := a.(*array.Binary).Value(0)
			copy(dst, unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(v))), len(v)/4))
		}},
		{"binary_portable", mk(arrow.BinaryTypes.Binary), func(a arrow.Array) {
			v := a.(*array.Binary).Value(0)
			for i := range dst {
				dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(v[4*i:]))
			}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for i := 0; i < b.N; i++ {
				r, err := ipc.NewReader(bytes.NewReader(c.data))
				if err != nil || !r.Next() {
					b.Fatal(err)
				}
				c.decode(r.RecordBatch().Column(0))
				r.Release()
			}
			if dst[len(dst)-1] != vals[len(vals)-1] {
				b.Fatal("decoded wrong values")
			}
		})
	}
}
