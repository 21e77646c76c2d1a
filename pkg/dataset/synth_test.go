package dataset

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// readTree returns every regular file under dir by slash path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestSynthReproducibleByteForByte(t *testing.T) {
	for _, format := range []string{"voc", "coco"} {
		opts := SynthOptions{Images: 10, Size: 64, Seed: 7}
		a, b := t.TempDir(), t.TempDir()
		if _, err := WriteSynth(context.Background(), a, format, opts, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := WriteSynth(context.Background(), b, format, opts, 3); err != nil {
			t.Fatal(err)
		}
		fa, fb := readTree(t, a), readTree(t, b)
		if len(fa) == 0 || len(fa) != len(fb) {
			t.Fatalf("%s: %d files vs %d", format, len(fa), len(fb))
		}
		for name, data := range fa {
			if !bytes.Equal(data, fb[name]) {
				t.Errorf("%s: %s differs between two runs", format, name)
			}
		}
		// A different seed gives different images.
		c := t.TempDir()
		opts.Seed = 8
		if _, err := WriteSynth(context.Background(), c, format, opts, 2); err != nil {
			t.Fatal(err)
		}
		fc := readTree(t, c)
		same := 0
		for name, data := range fa {
			if filepath.Ext(name) == ".jpg" && bytes.Equal(data, fc[name]) {
				same++
			}
		}
		if same > 0 {
			t.Errorf("%s: %d images identical under another seed", format, same)
		}
	}
}

func TestSynthReadsBack(t *testing.T) {
	dir := t.TempDir()
	opts := SynthOptions{Images: 20, Size: 96, Seed: 3}
	sum, err := WriteSynth(context.Background(), dir, "voc", opts, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Images["train"] != 16 || sum.Images["val"] != 2 || sum.Images["test"] != 2 {
		t.Fatalf("split sizes %v, want 16/2/2", sum.Images)
	}
	ds, ps := ReadVOC(dir, VOCOptions{Classes: DefaultSynthClasses, Split: "train", Images: ImageDecode})
	if n := ps.Count(Error) + ps.Count(Warning); n != 0 {
		t.Fatalf("ReadVOC found %d problems: %v", n, ps)
	}
	if len(ds.Samples) != 16 {
		t.Fatalf("read %d train samples, want 16", len(ds.Samples))
	}
	objs, small := 0, 0
	for _, s := range ds.Samples {
		want, _ := SynthImage(opts, int(mustIndex(t, s.Name)))
		if len(s.Objects) != len(want.Objects) {
			t.Fatalf("%s: %d objects read, %d rendered", s.Name, len(s.Objects), len(want.Objects))
		}
		for k, o := range s.Objects {
			if o.Box != want.Objects[k].Box || o.Label != want.Objects[k].Label {
				t.Fatalf("%s object %d: read %+v, rendered %+v", s.Name, k, o, want.Objects[k])
			}
			objs++
			// "Small" as COCO counts it (< 32x32 px), at a 416 px scale.
			if sc := 416 / float64(opts.Size); o.Box.W()*sc*o.Box.H()*sc < 32*32 {
				small++
			}
		}
	}
	if objs < 16*3 {
		t.Errorf("only %d objects in 16 images", objs)
	}
	if small == 0 {
		t.Errorf("no small objects among %d", objs)
	}
	// Every class appears.
	cds, _ := ReadVOC(dir, VOCOptions{Classes: DefaultSynthClasses, Split: "train,val,test"})
	seen := map[int]bool{}
	for _, s := range cds.Samples {
		for _, o := range s.Objects {
			seen[o.Label] = true
		}
	}
	if len(seen) != len(DefaultSynthClasses) {
		t.Errorf("%d of %d classes appear", len(seen), len(DefaultSynthClasses))
	}
}

func mustIndex(t *testing.T, name string) int64 {
	var i int64
	for _, c := range name[len("synth_"):] {
		i = i*10 + int64(c-'0')
	}
	return i
}

func TestSynthOptionErrors(t *testing.T) {
	for _, o := range []SynthOptions{
		{Images: 0},
		{Images: 1, Size: 10},
		{Images: 1, Classes: []string{"circle", "blob"}},
		{Images: 1, Classes: []string{"circle", "circle"}},
		{Images: 1, MinObjects: 5, MaxObjects: 2},
	} {
		if _, err := WriteSynth(context.Background(), t.TempDir(), "voc", o, 1); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	if _, err := WriteSynth(context.Background(), t.TempDir(), "yolo", SynthOptions{Images: 1}, 1); err == nil {
		t.Error("format yolo accepted")
	}
}
