package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckOutDir(t *testing.T) {
	base := t.TempDir()
	empty := filepath.Join(base, "empty")
	full := filepath.Join(base, "full")
	file := filepath.Join(base, "file")
	for _, d := range []string{empty, full} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(full, "x"), []byte("x"))
	writeFile(t, file, []byte("f"))
	tests := []struct {
		name, out, want string // want: "" for nil, else in the error
	}{
		{"absent", filepath.Join(base, "new"), ""},
		{"empty folder", empty, ""},
		{"not empty", full, full + " exists and is not empty; refusing to overwrite"},
		{"a file", file, file + " exists and is not a folder; refusing to overwrite"},
		{"under a file", filepath.Join(file, "o"), "not a directory"},
	}
	for _, tt := range tests {
		err := CheckOutDir(tt.out)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestWriteDir(t *testing.T) {
	base := t.TempDir()
	fill := func(tmp string) error { return os.WriteFile(filepath.Join(tmp, "a.txt"), []byte("a"), 0o644) }
	check := func(out string) {
		t.Helper()
		st, err := os.Stat(out)
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o755 {
			t.Fatalf("%s: %v %v", out, st, err)
		}
		if b, err := os.ReadFile(filepath.Join(out, "a.txt")); string(b) != "a" {
			t.Fatalf("%s/a.txt: %q %v", out, b, err)
		}
	}
	// A new folder, and an empty folder replaced.
	out := filepath.Join(base, "out")
	if err := WriteDir(out, fill); err != nil {
		t.Fatal(err)
	}
	check(out)
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(empty+"/", fill); err != nil {
		t.Fatal(err)
	}
	check(empty)
	// fill fails: nothing made, an existing empty folder kept.
	boom := errors.New("boom")
	failing := func(tmp string) error {
		if err := fill(tmp); err != nil {
			return err
		}
		return boom
	}
	if err := WriteDir(filepath.Join(base, "never"), failing); !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	kept := filepath.Join(base, "kept")
	if err := os.Mkdir(kept, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(kept, failing); !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	if ents, err := os.ReadDir(kept); err != nil || len(ents) != 0 {
		t.Fatalf("kept: %v %v", ents, err)
	}
	// A non-empty out is not replaced.
	if err := WriteDir(out, fill); err == nil {
		t.Fatal("WriteDir replaced a non-empty folder")
	}
	// No temporary folders are left.
	var names []string
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "empty kept out" {
		t.Fatalf("left in the parent: %s", got)
	}
	// The parent must exist.
	if err := WriteDir(filepath.Join(base, "no", "such"), fill); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing parent: %v", err)
	}
}

// TestWrite: Write picks the writer by format name; both read back.
func TestWrite(t *testing.T) {
	ds := reportDataset()
	for i := range ds.Samples {
		s := &ds.Samples[i]
		s.ID, s.File, s.Width, s.Height = int64(i+1), s.Name+".jpg", 16, 16
	}
	dir := t.TempDir()
	voc, coco := filepath.Join(dir, "voc"), filepath.Join(dir, "coco")
	if err := Write(voc, "voc", ds, WriteOptions{Split: "s", Images: ImagesNone}); err != nil {
		t.Fatal(err)
	}
	if err := Write(coco, "coco", ds, WriteOptions{Images: ImagesNone}); err != nil {
		t.Fatal(err)
	}
	a, ps := ReadVOC(voc, VOCOptions{Split: "s", Classes: ds.Classes, Images: ImageNone})
	b, ps2 := ReadCOCO(coco, COCOOptions{Classes: ds.Classes, Images: ImageNone})
	if len(ps)+len(ps2) != 0 || a.NumObjects() != 4 || b.NumObjects() != 4 {
		t.Fatalf("read back: %d and %d objects, %v %v", a.NumObjects(), b.NumObjects(), ps, ps2)
	}
	if err := Write(filepath.Join(dir, "y"), "yolo", ds, WriteOptions{}); err == nil || !strings.Contains(err.Error(), `"yolo"`) {
		t.Fatalf("format yolo: %v", err)
	}
}
