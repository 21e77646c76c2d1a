package draw

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ImageExt reports whether a file name has an extension that Encode and
// Save write: .jpg, .jpeg or .png, in any case. A picture of such a file
// can be drawn on and saved in its own format.
func ImageExt(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// ListImages returns the image files of folder dir (not of its sub
// folders): regular files with an ImageExt name that is not hidden (no
// leading '.'), as dir joined with the name, in name (byte) order. A folder
// without any gives an empty list and no error; an unreadable folder gives
// os.ReadDir's error.
func ListImages(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && ImageExt(e.Name()) && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}
