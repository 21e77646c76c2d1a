package softtarget_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/softtarget/softtargettest"
)

var encodings = []struct {
	name string
	enc  softtarget.Encoding
}{
	{"dense32", softtarget.Encoding{}},
	{"dense16", softtarget.Encoding{Half: true}},
	{"sparse32_t0.5", softtarget.Encoding{Kind: softtarget.Sparse, Threshold: 0.5}},
	{"sparse16_t0.5", softtarget.Encoding{Kind: softtarget.Sparse, Half: true, Threshold: 0.5}},
	{"sparse32_t0", softtarget.Encoding{Kind: softtarget.Sparse}},
	{"sparse16_t0.01", softtarget.Encoding{Kind: softtarget.Sparse, Half: true, Threshold: 0.01}},
}

// multiScaleViews: several images, two views each, input sizes changing per
// view as in multi-scale training.
func multiScaleViews(rng *rand.Rand, m *softtarget.Meta, n int) []*softtarget.View {
	sizes := [][2]int{{64, 64}, {96, 64}, {32, 96}, {128, 128}}
	g := softtargettest.Gen{Rand: rng}
	var vs []*softtarget.View
	for i := 0; i < n; i++ {
		sz := sizes[i%len(sizes)]
		vs = append(vs, g.View(m, int64(100+i/2), i%2, sz[0], sz[1]))
	}
	return vs
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range encodings {
		for _, perBatch := range []int{1, 3} {
			t.Run(tc.name+"/batch"+string(rune('0'+perBatch)), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(1, uint64(perBatch)))
				m := softtargettest.Meta(3, tc.enc, "backbone.c5", "head.route0")
				views := multiScaleViews(rng, &m, 7)
				if tc.enc.Kind == softtarget.Sparse { // the test must exercise both stored and dropped cells
					kept, all := 0, 0
					for _, v := range views {
						_, st := expectedDecoded(&m, v)
						for _, s := range st {
							for _, k := range s {
								all++
								if k {
									kept++
								}
							}
						}
					}
					if kept == 0 || (tc.enc.Threshold > 0 && kept == all) {
						t.Fatalf("sparse test data keeps %d of %d cells", kept, all)
					}
				}

				// Stream, read sequentially.
				stream := softtargettest.WriteStream(t, m, views, softtarget.WithViewsPerBatch(perBatch))
				r, err := softtarget.NewReader(bytes.NewReader(stream), "stream")
				if err != nil {
					t.Fatal(err)
				}
				got := softtargettest.ReadAll(t, r)
				if len(got) != len(views) {
					t.Fatalf("stream: %d views, want %d", len(got), len(views))
				}
				for i := range views {
					checkView(t, &m, views[i], got[i])
				}
				if r.RandomAccess() || r.Len() != -1 {
					t.Fatal("stream reader claims random access")
				}
				if err := r.Next(new(softtarget.View)); err != io.EOF {
					t.Fatalf("after the end: %v, want io.EOF", err)
				}
				r.Close()

				// File, random access in shuffled order, reusing one View.
				path := filepath.Join(t.TempDir(), "st.arrow")
				softtargettest.WriteFile(t, path, m, views, softtarget.WithViewsPerBatch(perBatch))
				fr, err := softtarget.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer fr.Close()
				if !fr.RandomAccess() || fr.Len() != len(views) {
					t.Fatalf("file: random access %v, len %d", fr.RandomAccess(), fr.Len())
				}
				gm := fr.Meta()
				if gm.Version != softtarget.Version || gm.TeacherConfigHash != m.TeacherConfigHash || gm.Encoding != m.Encoding ||
					strings.Join(gm.Classes, ",") != strings.Join(m.Classes, ",") || len(gm.Features) != 2 {
					t.Fatalf("meta %+v", gm)
				}
				if err := gm.CheckCompatible(m); err != nil {
					t.Fatal(err)
				}
				var reuse softtarget.View
				for _, i := range rng.Perm(len(views)) {
					row, ok := fr.Find(views[i].ImageID, views[i].ViewIndex)
					if !ok || row != i {
						t.Fatalf("Find(%d,%d) = %d,%v want %d", views[i].ImageID, views[i].ViewIndex, row, ok, i)
					}
					if err := fr.ReadRow(row, &reuse); err != nil {
						t.Fatal(err)
					}
					checkView(t, &m, views[i], &reuse)
				}
				if _, ok := fr.Find(999, 0); ok {
					t.Fatal("Find of an absent view succeeded")
				}
				// Sequential over the file too.
				seq := softtargettest.ReadAll(t, fr)
				if len(seq) != len(views) {
					t.Fatalf("file Next: %d views", len(seq))
				}
				// The file's bytes through a pipe-like reader (no random access).
				data, _ := os.ReadFile(path)
				sr, err := softtarget.NewReader(io.MultiReader(bytes.NewReader(data)), "file-as-stream")
				if err != nil {
					t.Fatal(err)
				}
				got = softtargettest.ReadAll(t, sr)
				if len(got) != len(views) {
					t.Fatalf("file as stream: %d views", len(got))
				}
				checkView(t, &m, views[len(views)-1], got[len(got)-1])
			})
		}
	}
}

func TestEmptyDump(t *testing.T) {
	m := softtargettest.Meta(2, softtarget.Encoding{})
	stream := softtargettest.WriteStream(t, m, nil)
	r, err := softtarget.NewReader(bytes.NewReader(stream), "empty")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Next(new(softtarget.View)); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
	path := filepath.Join(t.TempDir(), "e.arrow")
	w, _ := softtarget.CreateFile(path, m)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fr, err := softtarget.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	if fr.Len() != 0 || fr.Next(new(softtarget.View)) != io.EOF {
		t.Fatal("empty file not empty")
	}
}

func TestPipeConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	m := softtargettest.Meta(4, softtarget.Encoding{Kind: softtarget.Sparse, Half: true, Threshold: 0.5})
	views := multiScaleViews(rng, &m, 12)
	for _, tc := range []struct {
		name  string
		abort bool
	}{{"complete", false}, {"writer aborts", true}} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			werr := make(chan error, 1)
			go func() {
				w, err := softtarget.NewStreamWriter(pw, m, softtarget.WithViewsPerBatch(2))
				if err == nil {
					for i, v := range views {
						if tc.abort && i == 5 {
							w.Abort()
							break
						}
						if err = w.Write(v); err != nil {
							break
						}
					}
					if !tc.abort && err == nil {
						err = w.Close()
					}
				}
				pw.Close()
				werr <- err
			}()
			r, err := softtarget.NewReader(pr, "-")
			if err != nil {
				t.Fatal(err)
			}
			var n int
			var rerr error
			for {
				var v softtarget.View
				if rerr = r.Next(&v); rerr != nil {
					break
				}
				checkView(t, &m, views[n], &v)
				n++
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if tc.abort {
				if rerr == nil || rerr == io.EOF || !strings.Contains(rerr.Error(), "truncated") {
					t.Fatalf("aborted stream read as %v after %d views", rerr, n)
				}
				if n != 4 { // batches of 2: views 0-3 were flushed, view 4 was pending
					t.Fatalf("read %d views before the error, want 4", n)
				}
			} else if rerr != io.EOF || n != len(views) {
				t.Fatalf("read %d views, end %v", n, rerr)
			}
		})
	}
}

func TestAtomicFile(t *testing.T) {
	g := softtargettest.Gen{Rand: rand.New(rand.NewPCG(3, 3))}
	m := softtargettest.Meta(2, softtarget.Encoding{})
	dir := t.TempDir()
	path := filepath.Join(dir, "t.arrow")
	os.WriteFile(path, []byte("old"), 0o644)

	w, err := softtarget.CreateFile(path, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(g.View(&m, 1, 0, 64, 64)); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("abort changed the destination: %q", b)
	}
	// A bad view fails Write; Close then fails too and leaves no file.
	w, _ = softtarget.CreateFile(path, m)
	bad := g.View(&m, 1, 0, 64, 64)
	bad.Outputs = bad.Outputs[:2]
	if err := w.Write(bad); err == nil || !strings.Contains(err.Error(), "2 scale outputs") {
		t.Fatalf("bad view: %v", err)
	}
	w.Abort()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	w, _ = softtarget.CreateFile(path, m)
	w.Write(g.View(&m, 1, 0, 64, 64))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := softtarget.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Len() != 1 {
		t.Fatalf("len %d", r.Len())
	}
	if err := w.Write(g.View(&m, 2, 0, 64, 64)); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

func TestWriterRejects(t *testing.T) {
	g := softtargettest.Gen{Rand: rand.New(rand.NewPCG(4, 4))}
	m := softtargettest.Meta(2, softtarget.Encoding{}, "f")
	good := func() *softtarget.View { return g.View(&m, 1, 0, 64, 64) }
	cases := []struct {
		name string
		edit func(v *softtarget.View)
		want string
	}{
		{"negative view", func(v *softtarget.View) { v.ViewIndex = -1 }, "view index"},
		{"zero input", func(v *softtarget.View) { v.InputH = 0 }, "input size"},
		{"channels", func(v *softtarget.View) { v.Outputs[1].Shape[0] = 20 }, "channels"},
		{"data length", func(v *softtarget.View) { v.Outputs[2].Data = v.Outputs[2].Data[1:] }, "needs"},
		{"missing feature", func(v *softtarget.View) { v.Features = map[string]softtarget.Tensor{"g": v.Features["f"]} }, `"f" missing`},
		{"feature shape", func(v *softtarget.View) { f := v.Features["f"]; f.Shape = []int{3}; v.Features["f"] = f }, "feature map"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, err := softtarget.NewStreamWriter(io.Discard, m)
			if err != nil {
				t.Fatal(err)
			}
			v := good()
			tc.edit(v)
			err = w.Write(v)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			// A rejected view does not poison the writer.
			if err := w.Write(good()); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, bad := range []softtarget.Meta{
		{Classes: []string{"a"}, Anchors: softtargettest.Anchors, Masks: [][]int{{9}}},
		{Anchors: softtargettest.Anchors, Masks: softtargettest.Masks},
		{Classes: []string{"a"}, Anchors: softtargettest.Anchors, Masks: softtargettest.Masks, Encoding: softtarget.Encoding{Kind: softtarget.Sparse, Threshold: 1}},
		{Classes: []string{"a"}, Anchors: softtargettest.Anchors, Masks: softtargettest.Masks, Features: []string{"x", "x"}},
	} {
		if _, err := softtarget.NewStreamWriter(io.Discard, bad); err == nil {
			t.Errorf("meta %+v accepted", bad)
		}
	}
	if _, err := softtarget.CreateFile(filepath.Join(t.TempDir(), "no", "such", "dir.arrow"), m); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("create in a missing folder: %v", err)
	}
}
