package dataset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// CheckOutDir returns nil when out may receive a new dataset folder: it does
// not exist, or it is an empty folder. Otherwise the error says that out
// "exists and is not a folder" or "exists and is not empty", "refusing to
// overwrite"; other Stat errors (a parent that is a file, no permission) are
// returned as they are.
func CheckOutDir(out string) error {
	st, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s exists and is not a folder; refusing to overwrite", out)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s exists and is not empty; refusing to overwrite", out)
	}
	return nil
}

// WriteDir makes the folder out, as a whole or not at all: fill writes into
// a new temporary folder beside out (".<base>.tmp-*", in out's parent, which
// must exist), and only when fill returns nil is that folder given mode 0755
// and renamed to out, replacing out if it is an empty folder. When fill or a
// file operation fails, the temporary folder is removed and out is left as
// it was. WriteDir does not check out first: CheckOutDir does; a non-empty
// folder out makes the final rename fail.
func WriteDir(out string, fill func(tmp string) error) error {
	clean := filepath.Clean(out)
	tmp, err := os.MkdirTemp(filepath.Dir(clean), "."+filepath.Base(clean)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	if err := fill(tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		if err := os.Remove(out); err != nil {
			return err
		}
	}
	return os.Rename(tmp, out)
}

// WriteOptions tune Write.
type WriteOptions struct {
	// Split names the VOC output's split list, ImageSets/Main/<Split>.txt,
	// which lists every image (VOC only).
	Split  string
	Images ImageMode // how the image files get into dir
}

// Write writes ds into the folder dir in format "voc" (WriteVOC) or "coco"
// (WriteCOCO: dir/annotations.json with the images under dir/images/).
func Write(dir, format string, ds *Dataset, opt WriteOptions) error {
	switch format {
	case "voc":
		return WriteVOC(dir, ds, VOCWriteOptions{Split: opt.Split, Images: opt.Images})
	case "coco":
		return WriteCOCO(dir, ds, COCOWriteOptions{Images: opt.Images})
	}
	return fmt.Errorf("write: format %q: want voc or coco", format)
}
