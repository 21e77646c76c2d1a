package checkpoint

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
)

// bigCheckpoint has about 25M float32 parameters (the size of a full-width
// ResNet34-YOLOv3) in 120 tensors.
func bigCheckpoint(b *testing.B) *Checkpoint {
	c := &Checkpoint{Config: "model: {}\n"}
	const total = 25_000_000
	for i := 0; i < 120; i++ {
		n := total / 120
		d := make([]float32, n)
		for j := range d {
			d[j] = float32(j%1000) * 0.001
		}
		if err := c.Add(SectionParams, fmt.Sprintf("layer%d.weight", i), []int{n}, d); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

func BenchmarkSave(b *testing.B) {
	c := bigCheckpoint(b)
	p := filepath.Join(b.TempDir(), "big.ckpt")
	b.SetBytes(int64(4 * c.NumParams(SectionParams)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Save(p, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	c := bigCheckpoint(b)
	p := filepath.Join(b.TempDir(), "big.ckpt")
	if err := Save(p, c); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(4 * c.NumParams(SectionParams)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Load(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode measures encoding alone (no disk, no fsync).
func BenchmarkEncode(b *testing.B) {
	c := bigCheckpoint(b)
	var buf bytes.Buffer
	b.SetBytes(int64(4 * c.NumParams(SectionParams)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if err := Write(&buf, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode measures decoding from memory with an unknown size.
func BenchmarkDecode(b *testing.B) {
	c := bigCheckpoint(b)
	var buf bytes.Buffer
	if err := Write(&buf, c); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(4 * c.NumParams(SectionParams)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Read(bytes.NewReader(buf.Bytes()), -1); err != nil {
			b.Fatal(err)
		}
	}
}
