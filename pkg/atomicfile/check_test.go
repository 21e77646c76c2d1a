package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheck: Check and CheckDir refuse, before any work, the output paths
// a write would fail on, and leave nothing behind.
func TestCheck(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "f.txt")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, c := range []struct {
		name string
		err  error
		want string // substring of the error; "": none
	}{
		{"new file", Check(filepath.Join(tmp, "new.json")), ""},
		{"existing file", Check(file), ""},
		{"a folder", Check(tmp), "is a folder: give a file name"},
		{"a device", Check(os.DevNull), "is not a regular file"},
		{"missing folder", Check(filepath.Join(tmp, "no", "x.json")), "folder " + filepath.Join(tmp, "no") + " does not exist"},
		{"under a file", Check(filepath.Join(file, "x.json")), file + " is not a folder"},
		{"dir exists", CheckDir(tmp), ""},
		{"dir to create", CheckDir(filepath.Join(tmp, "a", "b")), ""},
		{"dir is a file", CheckDir(file), "is a file, not a folder"},
		{"dir under a file", CheckDir(filepath.Join(file, "sub")), "cannot create folder " + filepath.Join(file, "sub") + ": " + file + " is a file"},
	} {
		switch {
		case c.want == "" && c.err != nil:
			t.Errorf("%s: %v", c.name, c.err)
		case c.want != "" && (c.err == nil || !strings.Contains(c.err.Error(), c.want)):
			t.Errorf("%s: %v, want an error with %q", c.name, c.err, c.want)
		}
	}
	ents, _ := os.ReadDir(tmp)
	if len(ents) != 1 {
		t.Errorf("leftovers: %v", ents)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(tmp, "ro")
		os.Mkdir(ro, 0o555)
		if err := Check(filepath.Join(ro, "x")); err == nil || !strings.Contains(err.Error(), "cannot write in "+ro) {
			t.Errorf("read-only folder: %v", err)
		}
		if err := CheckDir(filepath.Join(ro, "sub")); err == nil || !strings.Contains(err.Error(), "cannot write in "+ro) {
			t.Errorf("under a read-only folder: %v", err)
		}
	}
}
