package softtarget_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/softtarget/softtargettest"
)

// TestPixelHash: version 2 stores each view's pixel hash (or none) through
// files and streams, under the row checksum; a version 1 stream (an older
// teacher-dump) reads with no hashes; a hash of another length is refused.
func TestPixelHash(t *testing.T) {
	m := softtargettest.Meta(2, softtarget.Encoding{})
	g := softtargettest.Gen{Rand: rand.New(rand.NewPCG(3, 4))}
	var views []*softtarget.View
	for i := range 3 {
		v := g.View(&m, int64(i), 0, 64, 64)
		if i != 1 { // view 1 carries none
			h := sha256.Sum256([]byte{byte(i)})
			v.PixelHash = h[:]
		}
		views = append(views, v)
	}
	path := filepath.Join(t.TempDir(), "h.arrow")
	fw, err := softtarget.CreateFile(path, m)
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	sw, err := softtarget.NewStreamWriter(&stream, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*softtarget.Writer{fw, sw} {
		bad := *views[0]
		bad.PixelHash = []byte{1, 2, 3}
		if err := w.Write(&bad); err == nil || !strings.Contains(err.Error(), "pixel hash of 3 bytes") {
			t.Errorf("a 3-byte hash: %v", err)
		}
		for _, v := range views {
			if err := w.Write(v); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fr, err := softtarget.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	sr, err := softtarget.NewReader(&stream, "-")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*softtarget.Reader{fr, sr} {
		if m := r.Meta(); m.Version != softtarget.Version || !m.HasPixelHashes() {
			t.Errorf("version %d, hashes %v", m.Version, m.HasPixelHashes())
		}
		for i := range views {
			var v softtarget.View
			if err := r.Next(&v); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(v.PixelHash, views[i].PixelHash) || (v.PixelHash == nil) != (views[i].PixelHash == nil) {
				t.Errorf("view %d: hash %x, wrote %x", i, v.PixelHash, views[i].PixelHash)
			}
		}
		if err := r.Next(&softtarget.View{}); err != io.EOF {
			t.Errorf("end: %v", err)
		}
	}

	// An older teacher-dump's stream: version 1, no hash column.
	var old bytes.Buffer
	ow, err := softtarget.NewStreamWriterVersion(&old, m, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		if err := ow.Write(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
	or, err := softtarget.NewReader(&old, "old.arrows")
	if err != nil {
		t.Fatal(err)
	}
	if m := or.Meta(); m.Version != 1 || m.HasPixelHashes() {
		t.Errorf("old stream: version %d, hashes %v", m.Version, m.HasPixelHashes())
	}
	for range views {
		var v softtarget.View
		if err := or.Next(&v); err != nil {
			t.Fatal(err)
		}
		if v.PixelHash != nil {
			t.Errorf("old stream: hash %x", v.PixelHash)
		}
	}
}
