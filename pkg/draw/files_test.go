package draw

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

func TestImageExt(t *testing.T) {
	for name, want := range map[string]bool{
		"a.jpg": true, "a.JPEG": true, "b/c.Png": true, "x.jpg.txt": false,
		"notes.txt": false, "jpg": false, "a.gif": false, "": false,
	} {
		if got := ImageExt(name); got != want {
			t.Errorf("ImageExt(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestListImages: a folder's image files in name order, without sub
// folders, hidden files or other extensions.
func TestListImages(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b.jpg", "a.png", "C.PNG", "notes.txt", ".hidden.jpg", "z.jpeg"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.jpg"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := ListImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range []string{"C.PNG", "a.png", "b.jpg", "z.jpeg"} {
		want = append(want, filepath.Join(dir, f))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, err := ListImages(t.TempDir()); err != nil || len(got) != 0 {
		t.Errorf("empty folder: %q, %v", got, err)
	}
	if _, err := ListImages(filepath.Join(dir, "absent")); !os.IsNotExist(err) {
		t.Errorf("missing folder: %v", err)
	}
}

// TestListImagesSymlinks: links to image files are listed like the files
// (detect-infer used to skip them without a word), links to folders are not,
// and a broken link is listed so that reading it reports it.
func TestListImagesSymlinks(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	real := filepath.Join(other, "real.png")
	if err := os.WriteFile(real, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(other, "sub.jpg"), 0o755)
	for name, target := range map[string]string{"a.png": real, "b.jpg": filepath.Join(other, "sub.jpg"), "c.jpeg": filepath.Join(other, "gone.jpeg")} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ListImages(dir)
	want := []string{filepath.Join(dir, "a.png"), filepath.Join(dir, "c.jpeg")}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ListImages = %v, %v; want %v", got, err, want)
	}
}
