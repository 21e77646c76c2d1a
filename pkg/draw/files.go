package draw

import (
	"io/fs"
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
// folders): files with an ImageExt name that is not hidden (no leading '.'),
// as dir joined with the name, in name (byte) order. Symbolic links are
// followed: a link to a regular file is listed like the file, a link to a
// folder is not, and a broken link is listed (reading it then fails with a
// message naming it, rather than the image vanishing without a word). A
// folder without any gives an empty list and no error; an unreadable folder
// gives os.ReadDir's error.
func ListImages(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !ImageExt(e.Name()) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		switch t := e.Type(); {
		case t.IsRegular():
		case t&fs.ModeSymlink != 0:
			if st, err := os.Stat(p); err == nil && !st.Mode().IsRegular() {
				continue // a link to a folder or a device
			}
		default:
			continue
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}
