package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// sample builds a small checkpoint with every kind of content.
func sample(t testing.TB) *Checkpoint {
	t.Helper()
	c := &Checkpoint{
		Config: "model:\n  backbone: \"mobilenet_v1\"\n",
		State: State{
			Iteration: 1234,
			RNG:       map[string][]byte{"data": {1, 2, 3}, "augment": {}, "init": bytes.Repeat([]byte{7}, 300)},
			DataOrder: []byte{9, 8, 7, 6},
		},
		Meta: map[string]string{"model_hash": "abc", "created": "2026-01-01T00:00:00Z", "empty": ""},
	}
	add := func(sec, name string, shape []int) {
		n := NumElements(shape)
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(i)*0.25 - float32(len(name))
		}
		if err := c.Add(sec, name, shape, d); err != nil {
			t.Fatal(err)
		}
	}
	add(SectionParams, "backbone.conv1.weight", []int{8, 3, 3, 3})
	add(SectionParams, "head.0.out.weight", []int{24, 16, 1, 1})
	add(SectionParams, "head.0.out.bias", []int{24})
	add(SectionParams, "scalar", []int{})
	add(SectionParams, "empty", []int{0, 5})
	add(SectionBNStats, "backbone.conv1.bn.mean", []int{8})
	add(SectionBNStats, "backbone.conv1.bn.var", []int{8})
	add(SectionOptimizer, "backbone.conv1.weight", []int{8, 3, 3, 3})
	// Special values survive bit for bit.
	sp := c.Tensor(SectionParams, "head.0.out.bias")
	sp.Data[0] = float32(math.NaN())
	sp.Data[1] = float32(math.Inf(1))
	sp.Data[2] = float32(math.Inf(-1))
	sp.Data[3] = float32(math.Copysign(0, -1))
	sp.Data[4] = math.SmallestNonzeroFloat32
	return c
}

func encode(t testing.TB, c *Checkpoint) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func assertEqual(t *testing.T, want, got *Checkpoint) {
	t.Helper()
	if got.Config != want.Config || got.State.Iteration != want.State.Iteration ||
		!bytes.Equal(got.State.DataOrder, want.State.DataOrder) {
		t.Errorf("header differs: %+v vs %+v", got.State, want.State)
	}
	if len(got.State.RNG) != len(want.State.RNG) {
		t.Errorf("RNG states: %d, want %d", len(got.State.RNG), len(want.State.RNG))
	}
	for k, v := range want.State.RNG {
		if !bytes.Equal(got.State.RNG[k], v) {
			t.Errorf("RNG %s differs", k)
		}
	}
	if !reflect.DeepEqual(got.Meta, want.Meta) {
		t.Errorf("meta %v, want %v", got.Meta, want.Meta)
	}
	if len(got.Sections) != len(want.Sections) {
		t.Fatalf("%d sections, want %d", len(got.Sections), len(want.Sections))
	}
	for i, ws := range want.Sections {
		gs := got.Sections[i]
		if gs.Name != ws.Name || len(gs.Tensors) != len(ws.Tensors) {
			t.Fatalf("section %d: %s with %d tensors, want %s with %d", i, gs.Name, len(gs.Tensors), ws.Name, len(ws.Tensors))
		}
		for j, wt := range ws.Tensors {
			gt := gs.Tensors[j]
			if gt.Name != wt.Name || !reflect.DeepEqual(append([]int{}, gt.Shape...), append([]int{}, wt.Shape...)) || !sameBits(gt.Data, wt.Data) {
				t.Errorf("tensor %s/%s differs", ws.Name, wt.Name)
			}
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	c := sample(t)
	p := filepath.Join(t.TempDir(), "ckpt.msgpack")
	if err := Save(p, c); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, c, got)

	// The tensor data is one bin blob of little-endian float32s.
	raw, _ := os.ReadFile(p)
	w := c.Tensor(SectionParams, "head.0.out.weight")
	le := make([]byte, 4*len(w.Data))
	for i, v := range w.Data {
		binary.LittleEndian.PutUint32(le[4*i:], math.Float32bits(v))
	}
	hdr := []byte{0xc5, byte(len(le) >> 8), byte(len(le))} // bin16 header
	if !bytes.Contains(raw, append(hdr, le...)) {
		t.Error("file does not hold head.0.out.weight as a bin blob of little-endian float32")
	}
	// Deterministic bytes.
	if !bytes.Equal(raw, encode(t, c)) {
		t.Error("two encodings of the same checkpoint differ")
	}

	h, err := LoadHeader(p)
	if err != nil {
		t.Fatal(err)
	}
	if h.Config != c.Config || h.State.Iteration != 1234 || h.Sections != nil || h.Meta["model_hash"] != "abc" {
		t.Errorf("LoadHeader: %+v", h)
	}
	if got.Path != p {
		t.Errorf("Path = %q, want %q", got.Path, p)
	}
	specs := []TensorSpec{{SectionParams, "backbone.conv1.weight", []int{8, 3, 3, 3}}}
	if err := got.Check(specs); err == nil || !strings.HasPrefix(err.Error(), p+": checkpoint does not fit the model (4 differences)") {
		t.Errorf("Check error does not name the file: %v", err)
	}
	if got.NumParams(SectionParams) != 8*27+24*16+24+1 {
		t.Errorf("NumParams = %d", got.NumParams(SectionParams))
	}
}

func TestWriteRejectsBadTensors(t *testing.T) {
	c := &Checkpoint{}
	if err := c.Add(SectionParams, "w", []int{2, 3}, make([]float32, 5)); err == nil {
		t.Error("Add accepted 5 values for shape [2 3]")
	}
	if err := c.Add(SectionParams, "w", []int{2}, make([]float32, 2)); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(SectionParams, "w", []int{2}, make([]float32, 2)); err == nil {
		t.Error("Add accepted a duplicate name")
	}
	c.Sections[0].Tensors[0].Shape = []int{3}
	if err := Write(&bytes.Buffer{}, c); err == nil || !strings.Contains(err.Error(), "2 values for shape [3]") {
		t.Errorf("Write: %v", err)
	}
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func msgpackOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNotACheckpoint(t *testing.T) {
	cases := []struct {
		name string
		data []byte
	}{
		{"empty file", nil},
		{"text", []byte("model:\n  backbone: resnet34\n")},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")},
		{"json", []byte(`{"format": "yolodistill-checkpoint"}`)},
		{"msgpack array", msgpackOf(t, []int{1, 2, 3})},
		{"other format", msgpackOf(t, map[string]any{"format": "something-else"})},
		{"format not first", msgpackOf(t, map[string]any{"version": 1})},
		{"format not a string", msgpackOf(t, map[string]any{"format": 3})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, tc.data)
			_, err := Load(p)
			if !errors.Is(err, ErrNotCheckpoint) {
				t.Fatalf("error %v is not ErrNotCheckpoint", err)
			}
			if !strings.HasPrefix(err.Error(), p+": not a yolodistill checkpoint") {
				t.Errorf("error %q does not start with the path and the reason", err)
			}
		})
	}
}

// header encodes a checkpoint header by hand (format, version, then extra
// key/values).
func header(t *testing.T, version int, extra ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.EncodeMapLen(2 + len(extra)/2))
	must(e.EncodeString("format"))
	must(e.EncodeString(Format))
	must(e.EncodeString("version"))
	must(e.EncodeInt(int64(version)))
	for _, x := range extra {
		must(e.Encode(x))
	}
	return buf.Bytes()
}

func TestOtherVersion(t *testing.T) {
	p := writeFile(t, header(t, 2, "config", "", "sections", []any{}))
	_, err := Load(p)
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("error %v is not ErrVersion", err)
	}
	want := p + ": unsupported checkpoint version: checkpoint format version 2; this program reads version 1"
	if err.Error() != want {
		t.Errorf("error\n  %q\nwant\n  %q", err, want)
	}
	// Version 1 with the same content loads.
	if _, err := Load(writeFile(t, header(t, 1, "config", "", "sections", []any{}))); err != nil {
		t.Errorf("minimal v1 checkpoint: %v", err)
	}
}

func TestTruncatedAtEveryOffset(t *testing.T) {
	full := encode(t, sample(t))
	if len(full) > 20000 {
		t.Fatalf("sample too large for an every-offset test: %d bytes", len(full))
	}
	for k := 0; k < len(full); k++ {
		for _, size := range []int64{int64(k), -1} {
			if size < 0 && k%3 != 0 {
				continue // the unknown-size path at every third offset keeps the test fast
			}
			_, err := Read(bytes.NewReader(full[:k]), size)
			if err == nil {
				t.Fatalf("truncated at %d of %d bytes (size %d): no error", k, len(full), size)
			}
			if k == 0 {
				if !errors.Is(err, ErrNotCheckpoint) {
					t.Fatalf("empty input: %v", err)
				}
				continue
			}
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("truncated at %d (size %d): error %v is not ErrTruncated", k, size, err)
			}
		}
	}
	// A truncated file on disk names the file.
	p := writeFile(t, full[:len(full)/2])
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": truncated checkpoint: unexpected end of file while reading tensor") {
		t.Errorf("truncated file error: %v", err)
	}
}

func TestCorruptBytesNeverPanic(t *testing.T) {
	full := encode(t, sample(t))
	buf := make([]byte, len(full))
	// Every byte, three corruptions each: never a panic, and a change inside
	// tensor data or structure is caught (the checksum covers the data).
	for i := 0; i < len(full); i++ {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			copy(buf, full)
			buf[i] ^= x
			c, err := Read(bytes.NewReader(buf), int64(len(buf)))
			if err == nil && c == nil {
				t.Fatalf("byte %d: nil checkpoint without error", i)
			}
		}
	}
	// A flipped bit in the data of the first tensor: checksum mismatch.
	w := sample(t).Tensor(SectionParams, "backbone.conv1.weight")
	le := make([]byte, 4*len(w.Data))
	for i, v := range w.Data {
		binary.LittleEndian.PutUint32(le[4*i:], math.Float32bits(v))
	}
	at := bytes.Index(full, le)
	if at < 0 {
		t.Fatal("tensor data not found")
	}
	copy(buf, full)
	buf[at+10] ^= 0x04
	_, err := Read(bytes.NewReader(buf), int64(len(buf)))
	if err == nil || !strings.Contains(err.Error(), "tensor backbone.conv1.weight (section params): checksum mismatch") {
		t.Errorf("corrupt data: %v", err)
	}
}

func TestTrailingBytes(t *testing.T) {
	full := append(encode(t, sample(t)), 0xc0)
	_, err := Read(bytes.NewReader(full), int64(len(full)))
	if err == nil || !strings.Contains(err.Error(), "trailing bytes") {
		t.Errorf("trailing byte: %v", err)
	}
}

func TestHugeLengthsDoNotAllocate(t *testing.T) {
	// A header claiming a 2^32-1 element array and a 4 GiB blob in a tiny
	// file fails as truncated instead of allocating.
	var buf bytes.Buffer
	buf.Write(header(t, 1, "config", ""))
	buf.Bytes()[0] = 0x84 // four entries
	e := msgpack.NewEncoder(&buf)
	e.EncodeString("sections")
	buf.Write([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // array32 of 2^32-1
	for _, size := range []int64{int64(buf.Len()), -1} {
		_, err := Read(bytes.NewReader(buf.Bytes()), size)
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("size %d: huge section count: %v", size, err)
		}
	}
	var b2 bytes.Buffer
	b2.Write(header(t, 1, "config", ""))
	b2.Bytes()[0] = 0x84
	e = msgpack.NewEncoder(&b2)
	e.EncodeString("state")
	e.EncodeMapLen(1)
	e.EncodeString("data_order")
	b2.Write([]byte{0xc6, 0xff, 0xff, 0xff, 0xff}) // bin32 of 4 GiB
	for _, size := range []int64{int64(b2.Len()), -1} {
		_, err := Read(bytes.NewReader(b2.Bytes()), size)
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("size %d: huge blob: %v", size, err)
		}
	}
}

func FuzzRead(f *testing.F) {
	full := encode(f, sample(f))
	f.Add(full)
	f.Add(full[:len(full)/3])
	f.Add([]byte{})
	f.Add([]byte{0x82, 0xa6, 'f', 'o', 'r', 'm', 'a', 't'})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Read(bytes.NewReader(data), int64(len(data)))
		if err == nil {
			// What loads re-encodes and loads to the same thing.
			again, err := Read(bytes.NewReader(encode(t, c)), -1)
			if err != nil {
				t.Fatalf("re-read: %v", err)
			}
			assertEqual(t, c, again)
		}
	})
}

func TestCheck(t *testing.T) {
	c := sample(t)
	specs := []TensorSpec{
		{SectionParams, "backbone.conv1.weight", []int{8, 3, 3, 3}},
		{SectionParams, "head.0.out.weight", []int{24, 16, 1, 1}},
		{SectionParams, "head.0.out.bias", []int{24}},
		{SectionParams, "scalar", []int{}},
		{SectionParams, "empty", []int{0, 5}},
		{SectionBNStats, "backbone.conv1.bn.mean", []int{8}},
		{SectionBNStats, "backbone.conv1.bn.var", []int{8}},
	}
	if err := c.Check(specs); err != nil {
		t.Fatalf("matching specs: %v", err)
	}
	// The optimizer section is not compared unless listed.
	bad := append([]TensorSpec{}, specs...)
	bad[1] = TensorSpec{SectionParams, "head.0.out.weight", []int{75, 16, 1, 1}}
	bad[4] = TensorSpec{SectionParams, "head.1.out.weight", []int{75, 16, 1, 1}}
	bad[6] = TensorSpec{SectionBNStats, "backbone.conv1.bn.var", []int{16}}
	err := c.Check(bad)
	var me *MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("error %v is not a MismatchError", err)
	}
	want := []string{
		"head.0.out.weight: shape [24 16 1 1] in checkpoint, [75 16 1 1] in model",
		"head.1.out.weight: shape [75 16 1 1] in model, missing from checkpoint",
		"bn_stats backbone.conv1.bn.var: shape [8] in checkpoint, [16] in model",
		"empty: shape [0 5] in checkpoint, not in model",
	}
	var got []string
	for _, m := range me.Mismatches {
		got = append(got, m.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mismatches\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if !strings.Contains(err.Error(), "checkpoint does not fit the model (4 differences)\n  head.0.out.weight: shape [24 16 1 1] in checkpoint, [75 16 1 1] in model") {
		t.Errorf("error text: %v", err)
	}
}

func TestLoadInto(t *testing.T) {
	c := sample(t)
	w := make([]float32, 8*27)
	b := make([]float32, 24)
	wrong := make([]float32, 75*16)
	targets := []Target{
		{SectionParams, "backbone.conv1.weight", []int{8, 3, 3, 3}, w},
		{SectionParams, "head.0.out.bias", []int{24}, b},
		{SectionParams, "head.0.out.weight", []int{75, 16, 1, 1}, wrong},
	}
	// Strict: nothing copied, error names the tensors.
	diff, err := c.LoadInto(targets, true)
	if err == nil || len(diff) == 0 {
		t.Fatal("strict load of a mismatching model succeeded")
	}
	if w[1] != 0 {
		t.Error("strict load copied data despite the mismatch")
	}
	// Pretrained-style: what fits is copied, the rest reported.
	diff, err = c.LoadInto(targets, false)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(w, c.Tensor(SectionParams, "backbone.conv1.weight").Data) || !sameBits(b, c.Tensor(SectionParams, "head.0.out.bias").Data) {
		t.Error("fitting tensors not copied")
	}
	for _, v := range wrong {
		if v != 0 {
			t.Fatal("mis-shaped tensor was written")
		}
	}
	var names []string
	for _, m := range diff {
		names = append(names, m.Name)
	}
	want := []string{"head.0.out.weight", "scalar", "empty"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("reported %v, want %v", names, want)
	}
	// Exact fit, strict.
	c2 := &Checkpoint{}
	c2.Add(SectionParams, "a", []int{2}, []float32{1, 2})
	dst := make([]float32, 2)
	if _, err := c2.LoadInto([]Target{{SectionParams, "a", []int{2}, dst}}, true); err != nil || dst[1] != 2 {
		t.Errorf("exact strict load: %v %v", err, dst)
	}
}

func TestNumElements(t *testing.T) {
	cases := []struct {
		shape []int
		want  int
	}{
		{nil, 1}, {[]int{0}, 0}, {[]int{2, 3}, 6}, {[]int{-1, 2}, -1}, {[]int{1 << 40, 1 << 40}, -1},
	}
	for _, tc := range cases {
		if got := NumElements(tc.shape); got != tc.want {
			t.Errorf("NumElements(%v) = %d, want %d", tc.shape, got, tc.want)
		}
	}
}
