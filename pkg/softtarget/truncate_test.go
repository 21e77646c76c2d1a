package softtarget_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/softtarget/softtargettest"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// readEverything opens data (as an IPC file with random access when asFile,
// else as a stream) and reads every view; it returns the views read and the
// first error (nil at a verified end).
func readEverything(data []byte, asFile bool) (views []*softtarget.View, err error) {
	var r *softtarget.Reader
	if asFile {
		r, err = softtarget.NewFileReader(bytes.NewReader(data), int64(len(data)), "file")
	} else {
		r, err = softtarget.NewReader(bytes.NewReader(data), "stream")
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	for {
		v := new(softtarget.View)
		err := r.Next(v)
		if err == io.EOF {
			return views, nil
		}
		if err != nil {
			return views, err
		}
		views = append(views, v)
	}
}

// sameViews reports whether two decoded view lists are identical, bit for bit.
func sameViews(a, b []*softtarget.View) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ImageID != y.ImageID || x.File != y.File || x.ViewIndex != y.ViewIndex || !bytes.Equal(x.Aug, y.Aug) ||
			x.InputH != y.InputH || x.InputW != y.InputW || fmt.Sprint(x.Stored) != fmt.Sprint(y.Stored) || len(x.Features) != len(y.Features) {
			return false
		}
		ts := func(v *softtarget.View) []softtarget.Tensor {
			out := append([]softtarget.Tensor(nil), v.Outputs...)
			for _, n := range []string{"f"} {
				out = append(out, v.Features[n])
			}
			return out
		}
		tx, ty := ts(x), ts(y)
		for j := range tx {
			if fmt.Sprint(tx[j].Shape) != fmt.Sprint(ty[j].Shape) || len(tx[j].Data) != len(ty[j].Data) {
				return false
			}
			for k := range tx[j].Data {
				if math.Float32bits(tx[j].Data[k]) != math.Float32bits(ty[j].Data[k]) {
					return false
				}
			}
		}
	}
	return true
}

func smallDump(t *testing.T, enc softtarget.Encoding, perBatch int) (stream, file []byte, n int) {
	g := softtargettest.Gen{Rand: rand.New(rand.NewPCG(11, uint64(perBatch)))}
	m := softtargettest.Meta(1, enc, "f")
	var views []*softtarget.View
	for i := 0; i < 5; i++ {
		views = append(views, g.View(&m, int64(i), i%2, 32, 32+32*(i%2)))
	}
	stream = softtargettest.WriteStream(t, m, views, softtarget.WithViewsPerBatch(perBatch))
	path := filepath.Join(t.TempDir(), "f.arrow")
	softtargettest.WriteFile(t, path, m, views, softtarget.WithViewsPerBatch(perBatch))
	file, _ = os.ReadFile(path)
	return stream, file, len(views)
}

// cutPoints lists where to cut data: every IPC message boundary and the 3
// bytes either side of it, every byte of the first and last 64, and every
// 11th byte elsewhere.
func cutPoints(t *testing.T, data []byte) []int {
	marks := map[int]bool{}
	pos := 0
	if bytes.HasPrefix(data, softtarget.FileMagic) {
		pos = 8
	}
	for pos+8 <= len(data) {
		marks[pos] = true
		ml := int(int32(binary.LittleEndian.Uint32(data[pos+4:])))
		if !bytes.Equal(data[pos:pos+4], softtarget.StreamContTok) || ml == 0 {
			marks[pos+8] = true // end-of-stream marker; a file's footer follows
			break
		}
		msg := ipc.NewMessage(memory.NewBufferBytes(data[pos+8:pos+8+ml]), memory.NewBufferBytes(nil))
		pos += 8 + ml + int(msg.BodyLen())
		msg.Release()
	}
	if len(marks) < 6 {
		t.Fatalf("found only %d message boundaries", len(marks))
	}
	var cuts []int
	for c := 0; c < len(data); c++ {
		near := false
		for d := -3; d <= 3; d++ {
			near = near || marks[c+d]
		}
		if near || c < 64 || c >= len(data)-64 || c%11 == 0 {
			cuts = append(cuts, c)
		}
	}
	return cuts
}

// TestTruncation cuts streams and files at many byte offsets (cutPoints): each cut must
// read as an error, never as a clean (shorter) end.
func TestTruncation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		enc      softtarget.Encoding
		perBatch int
	}{
		{"dense32 batch1", softtarget.Encoding{}, 1},
		{"sparse16 batch2", softtarget.Encoding{Kind: softtarget.Sparse, Half: true, Threshold: 0.01}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, file, n := smallDump(t, tc.enc, tc.perBatch)
			for _, in := range []struct {
				name   string
				data   []byte
				asFile bool
			}{{"stream", stream, false}, {"file", file, true}, {"file bytes as stream", file, false}} {
				views, err := readEverything(in.data, in.asFile)
				if err != nil || len(views) != n {
					t.Fatalf("%s: whole input: %d views, %v", in.name, len(views), err)
				}
				cuts, t0 := 0, time.Now()
				for _, cut := range cutPoints(t, in.data) {
					cuts++
					views, err := readEverything(in.data[:cut], in.asFile)
					if err == nil {
						t.Fatalf("%s cut at %d of %d bytes: clean end after %d views", in.name, cut, len(in.data), len(views))
					}
				}
				t.Logf("%s: %d bytes, %d cuts, all errors (%v)", in.name, len(in.data), cuts, time.Since(t0))
			}
			// Through Open on disk too, at a few cuts (one file written per cut).
			p := filepath.Join(t.TempDir(), "cut.arrow")
			for _, cut := range []int{0, 7, 8, len(file) / 3, len(file) / 2, len(file) - 10, len(file) - 1} {
				if err := os.WriteFile(p, file[:cut], 0o644); err != nil {
					t.Fatal(err)
				}
				r, err := softtarget.Open(p)
				if err == nil {
					var v softtarget.View
					for err == nil {
						err = r.Next(&v)
					}
					r.Close()
					if err == io.EOF {
						t.Fatalf("file on disk cut at %d: clean end", cut)
					}
				}
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error does not name the file: %v", err)
				}
			}
		})
	}
}

// TestCorruption flips and overwrites bytes at random: reading must never
// panic, and a read that succeeds must give back exactly the original views
// (the per-row CRC-32C catches changed values; only changes to padding or to
// bytes nobody reads go unnoticed).
func TestCorruption(t *testing.T) {
	stream, file, n := smallDump(t, softtarget.Encoding{Kind: softtarget.Sparse, Threshold: 0.01}, 2)
	want, err := readEverything(stream, false)
	if err != nil || len(want) != n {
		t.Fatalf("clean read: %d views, %v", len(want), err)
	}
	rng := rand.New(rand.NewPCG(99, 1))
	for _, in := range []struct {
		name   string
		data   []byte
		asFile bool
	}{{"stream", stream, false}, {"file", file, true}} {
		errs, oks := 0, 0
		for trial := 0; trial < 400; trial++ {
			d := bytes.Clone(in.data)
			switch trial % 3 {
			case 0: // one bit
				i := rng.IntN(len(d))
				d[i] ^= 1 << rng.IntN(8)
			case 1: // one random byte
				d[rng.IntN(len(d))] = byte(rng.IntN(256))
			case 2: // 8 random bytes (lengths, offsets)
				i := rng.IntN(len(d) - 8)
				for j := 0; j < 8; j++ {
					d[i+j] = byte(rng.IntN(256))
				}
			}
			got, err := func() (v []*softtarget.View, err error) {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("PANIC: %v", p)
						t.Errorf("%s trial %d: panic: %v", in.name, trial, p)
					}
				}()
				return readEverything(d, in.asFile)
			}()
			if err != nil {
				if errors.Is(err, io.EOF) {
					t.Errorf("%s trial %d: error wraps io.EOF: %v", in.name, trial, err)
				}
				errs++
				continue
			}
			oks++
			if !sameViews(got, want) {
				t.Errorf("%s trial %d: corrupted input read without error but with different views", in.name, trial)
			}
		}
		t.Logf("%s: %d corrupted inputs: %d errors, %d read back identical (padding or unread bytes)", in.name, errs+oks, errs, oks)
		if errs < oks {
			t.Errorf("%s: only %d of %d corruptions detected", in.name, errs, errs+oks)
		}
	}
}
