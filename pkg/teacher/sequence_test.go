package teacher

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/softtarget/softtargettest"
)

// seqViews draws views of images first..first+n-1 (32 px, one class).
func seqViews(first, n int) []*softtarget.View {
	g := softtargettest.Gen{Rand: rand.New(rand.NewPCG(uint64(first), uint64(n)))}
	m := softtargettest.Meta(1, softtarget.Encoding{})
	var vs []*softtarget.View
	for id := first; id < first+n; id++ {
		vs = append(vs, g.View(&m, int64(id), 0, 32, 32))
	}
	return vs
}

// fileInput writes views of images first..first+n-1 as a soft-target file
// and opens it; it is closed when the test ends.
func fileInput(t *testing.T, first, n int) input {
	t.Helper()
	p := filepath.Join(t.TempDir(), "st.arrow")
	softtargettest.WriteFile(t, p, softtargettest.Meta(1, softtarget.Encoding{}), seqViews(first, n))
	r, err := softtarget.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return input{name: p, r: r}
}

// streamInput is a stream of the views of images first..first+n-1, cut to
// keep bytes (all of them when keep < 0).
func streamInput(t *testing.T, first, n, keep int) input {
	t.Helper()
	data := softtargettest.WriteStream(t, softtargettest.Meta(1, softtarget.Encoding{}), seqViews(first, n))
	if keep >= 0 {
		data = data[:keep]
	}
	r, err := softtarget.NewReader(bytes.NewReader(data), "-")
	if err != nil {
		t.Fatal(err)
	}
	return input{name: "-", r: r}
}

// ids reads n views from s and returns their image ids.
func ids(t *testing.T, s *sequence, n int) []int64 {
	t.Helper()
	var out []int64
	for range n {
		v, err := s.next()
		if err != nil {
			t.Fatalf("after %v: %v", out, err)
		}
		out = append(out, v.ImageID)
	}
	return out
}

// TestSequenceCyclesFiles: file inputs are read in order and cycled (the
// first view of the first file follows the last view of the last file);
// skip lands where reading would (resuming), across files and cycles.
func TestSequenceCyclesFiles(t *testing.T) {
	a, b := fileInput(t, 1, 3), fileInput(t, 10, 2)
	s := newSequence([]input{a, b})
	if !s.cycle || s.total != 5 {
		t.Fatalf("cycle %v over %d views, want a cycle of 5", s.cycle, s.total)
	}
	want := []int64{1, 2, 3, 10, 11, 1, 2, 3, 10, 11, 1, 2}
	if got := ids(t, s, len(want)); !slices.Equal(got, want) {
		t.Errorf("views %v, want %v", got, want)
	}
	if err := s.drain(); err != nil {
		t.Errorf("drain of files: %v", err)
	}
	for n := range 12 {
		s := newSequence([]input{a, b})
		if err := s.skip(int64(n)); err != nil {
			t.Fatal(err)
		}
		if got := ids(t, s, 3); !slices.Equal(got, want[n%5:n%5+3]) {
			t.Errorf("after skipping %d: %v, want %v", n, got, want[n%5:n%5+3])
		}
	}
}

// TestSequenceStreamOnce: with a stream among the inputs nothing cycles: the
// views are read once and then the sequence is exhausted; skip reads; drain
// reads a stream to its end marker, so a truncated stream is an error even
// when training needed fewer views than it holds.
func TestSequenceStreamOnce(t *testing.T) {
	s := newSequence([]input{fileInput(t, 1, 2), streamInput(t, 10, 3, -1)})
	if s.cycle {
		t.Fatal("a sequence with a stream cycles")
	}
	if err := s.skip(1); err != nil {
		t.Fatal(err)
	}
	if got, want := ids(t, s, 4), []int64{2, 10, 11, 12}; !slices.Equal(got, want) {
		t.Errorf("views %v, want %v", got, want)
	}
	if _, err := s.next(); err != errExhausted {
		t.Errorf("after the last view: %v, want errExhausted", err)
	}

	s = newSequence([]input{streamInput(t, 10, 3, -1)})
	ids(t, s, 1)
	if err := s.drain(); err != nil {
		t.Errorf("drain of a whole stream: %v", err)
	}
	full := len(softtargettest.WriteStream(t, softtargettest.Meta(1, softtarget.Encoding{}), seqViews(10, 3)))
	s = newSequence([]input{streamInput(t, 10, 3, full-1)})
	ids(t, s, 1)
	if err := s.drain(); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("drain of a truncated stream: %v, want an error saying truncated", err)
	}
}
