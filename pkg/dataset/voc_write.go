package dataset

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"yolodistill/pkg/atomicfile"
)

// ImageMode says how a writer brings a dataset's image files into its output.
type ImageMode int

const (
	// ImagesLink hard-links each image (no copy, no extra disk), falling back
	// to a copy when the output is on another file system. The default.
	ImagesLink ImageMode = iota
	// ImagesCopy copies each image byte for byte (atomically).
	ImagesCopy
	// ImagesSymlink makes the output's image folder (JPEGImages/ or images/)
	// one symbolic link to the absolute source image folder: no copy, and the
	// output depends on the source staying in place. (Not one link per file:
	// the readers refuse a file link that leads out of its image folder.)
	ImagesSymlink
	// ImagesNone writes annotations only.
	ImagesNone
)

// ParseImageMode parses "link", "copy", "symlink" or "none".
func ParseImageMode(s string) (ImageMode, error) {
	switch s {
	case "link", "":
		return ImagesLink, nil
	case "copy":
		return ImagesCopy, nil
	case "symlink":
		return ImagesSymlink, nil
	case "none":
		return ImagesNone, nil
	}
	return 0, fmt.Errorf("image mode %q: want link, copy, symlink or none", s)
}

// VOCWriteOptions configure WriteVOC.
type VOCWriteOptions struct {
	Split  string    // split list to write, ImageSets/Main/<Split>.txt; "trainval" when empty
	Images ImageMode // how image files get into JPEGImages/
}

// VOCID is the VOC id a sample is written under: its File without extension
// (so "BloodImage_00000.jpg" -> "BloodImage_00000", "train/a.png" -> "train/a").
func VOCID(s *Sample) string {
	return strings.TrimSuffix(s.File, path.Ext(s.File))
}

// WriteVOC writes ds as a VOC folder into dir (created if needed):
// label_list.txt with the classes in label order (one per line),
// Annotations/<id>.xml for every sample (see MarshalVOCXML),
// ImageSets/Main/<split>.txt listing the ids in dataset order, and the images
// under JPEGImages/<Sample.File> as opt.Images says. Every file is written
// atomically. Two samples with one id, or a file name that escapes its folder,
// is an error and nothing more is written.
func WriteVOC(dir string, ds *Dataset, opt VOCWriteOptions) error {
	split := opt.Split
	if split == "" {
		split = "trainval"
	}
	if !localName(split) || strings.Contains(split, "/") {
		return fmt.Errorf("split name %q is not a plain file name", split)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range ds.Samples {
		s := &ds.Samples[i]
		id := VOCID(s)
		if !localName(s.File) || !localName(id) {
			return fmt.Errorf("sample %d: file name %q escapes the image folder", i, s.File)
		}
		if seen[id] {
			return fmt.Errorf("sample %d: VOC id %q used twice", i, id)
		}
		seen[id] = true
	}
	if opt.Images == ImagesSymlink {
		if err := linkImageFolder(ds.ImageRoot, filepath.Join(dir, VOCImages)); err != nil {
			return err
		}
	}
	var list bytes.Buffer
	for i := range ds.Samples {
		s := &ds.Samples[i]
		id := VOCID(s)
		data, err := MarshalVOCXML(s, ds.Classes)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, VOCAnnotations, filepath.FromSlash(id)+".xml")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(p, data); err != nil {
			return err
		}
		if err := placeImage(ds.ImageRoot, s.File, filepath.Join(dir, VOCImages), opt.Images); err != nil {
			return err
		}
		list.WriteString(id)
		list.WriteByte('\n')
	}
	var labels bytes.Buffer
	for _, c := range ds.Classes {
		if c == "" || strings.ContainsAny(c, "\r\n") || strings.TrimSpace(c) != c {
			return fmt.Errorf("class name %q cannot be written to %s", c, VOCLabelList)
		}
		labels.WriteString(c + "\n")
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, VOCLabelList), labels.Bytes()); err != nil {
		return err
	}
	sets := filepath.Join(dir, filepath.FromSlash(VOCSets))
	if err := os.MkdirAll(sets, 0o755); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(sets, split+".txt"), list.Bytes())
}

// MarshalVOCXML returns the VOC XML for s: folder, filename (Sample.File),
// size (depth 3), segmented 0, and per object name, pose Unspecified,
// truncated, difficult and bndbox with xmin = X0+1, ymin = Y0+1, xmax = X1,
// ymax = Y1 (the inverse of the reader's conversion, shortest decimal form).
// A label outside classes is an error.
func MarshalVOCXML(s *Sample, classes []string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("<annotation>\n\t<folder>JPEGImages</folder>\n")
	el(&b, 1, "filename", s.File)
	fmt.Fprintf(&b, "\t<size>\n\t\t<width>%d</width>\n\t\t<height>%d</height>\n\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n", s.Width, s.Height)
	for i, o := range s.Objects {
		if o.Label < 0 || o.Label >= len(classes) {
			return nil, fmt.Errorf("%s: object %d: label %d outside the %d classes", s.File, i, o.Label, len(classes))
		}
		b.WriteString("\t<object>\n")
		el(&b, 2, "name", classes[o.Label])
		el(&b, 2, "pose", "Unspecified")
		el(&b, 2, "truncated", flag(o.Truncated))
		el(&b, 2, "difficult", flag(o.Difficult))
		b.WriteString("\t\t<bndbox>\n")
		el(&b, 3, "xmin", num(o.Box.X0+1))
		el(&b, 3, "ymin", num(o.Box.Y0+1))
		el(&b, 3, "xmax", num(o.Box.X1))
		el(&b, 3, "ymax", num(o.Box.Y1))
		b.WriteString("\t\t</bndbox>\n\t</object>\n")
	}
	b.WriteString("</annotation>\n")
	return b.Bytes(), nil
}

func el(b *bytes.Buffer, indent int, name, text string) {
	b.WriteString(strings.Repeat("\t", indent))
	b.WriteString("<" + name + ">")
	xml.EscapeText(b, []byte(text))
	b.WriteString("</" + name + ">\n")
}

func flag(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// placeImage brings srcRoot/name to dstRoot/name as mode says. The name must
// be local (checked by the callers).
func placeImage(srcRoot, name, dstRoot string, mode ImageMode) error {
	if mode == ImagesNone || mode == ImagesSymlink {
		return nil // symlink: see linkImageFolder
	}
	src := filepath.Join(srcRoot, filepath.FromSlash(name))
	dst := filepath.Join(dstRoot, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch mode {
	case ImagesLink:
		if _, err := os.Stat(src); err != nil {
			return fmt.Errorf("image %s: %w", src, err)
		}
		err := replaceWith(dst, func(tmp string) error { return os.Link(src, tmp) })
		if err == nil {
			return nil
		}
		var le *os.LinkError
		if !errors.As(err, &le) {
			return err
		}
		// Another file system, or links not allowed: copy instead.
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("image %s: %w", src, err)
	}
	defer in.Close()
	return atomicfile.Write(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// linkImageFolder makes dstRoot a symbolic link to the absolute srcRoot.
func linkImageFolder(srcRoot, dstRoot string) error {
	abs, err := filepath.Abs(srcRoot)
	if err != nil {
		return err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return fmt.Errorf("image folder %s: not a folder (%v)", srcRoot, err)
	}
	if err := os.MkdirAll(filepath.Dir(dstRoot), 0o755); err != nil {
		return err
	}
	return replaceWith(dstRoot, func(tmp string) error { return os.Symlink(abs, tmp) })
}

// replaceWith creates a link at a temporary name beside dst with mk, then
// renames it over dst, so dst is never half made.
func replaceWith(dst string, mk func(tmp string) error) error {
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-link")
	os.Remove(tmp)
	if err := mk(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
