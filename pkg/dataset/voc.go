package dataset

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"yolodistill/pkg/box"
)

// Pascal VOC coordinates.
//
// A VOC <bndbox> holds inclusive, 1-based pixel indices: xmin=1 is the
// leftmost pixel column and xmax=W the rightmost, so a box covers xmax-xmin+1
// columns. Our boxes are half-open and 0-based, so the readers and writers use
//
//	read:  X0 = xmin - 1, Y0 = ymin - 1, X1 = xmax, Y1 = ymax
//	write: xmin = X0 + 1, ymin = Y0 + 1, xmax = X1, ymax = Y1
//
// which are exact inverses for integer coordinates (every VOC tool writes
// integers), so VOC round trips are lossless. A VOC box with xmin == xmax is
// one pixel wide (X1-X0 = 1), not empty; it has zero area only when xmax < xmin.
// (PaddleDetection instead reads X0 = xmin, X1 = xmax and drops boxes with
// xmax <= xmin; on BCCD that drops two one-pixel boxes which we keep and warn about.)

// VOC folder layout: root/Annotations/<id>.xml, root/JPEGImages/<image>,
// root/ImageSets/Main/<split>.txt (one id per line; extra columns are
// ignored). An id may hold slashes (sub/x -> Annotations/sub/x.xml).
const (
	VOCAnnotations = "Annotations"
	VOCImages      = "JPEGImages"
	VOCSets        = "ImageSets/Main"
)

// VOCOptions configure ReadVOC.
type VOCOptions struct {
	// Classes is the class list (label i is Classes[i]), usually from the
	// config. Nil: root/label_list.txt (one name per line, PaddleDetection's
	// convention; WriteVOC writes it) when present, else discovered as the
	// sorted (byte order) set of object names in the annotations read. A name
	// not in the list is an unknown-class error.
	Classes []string
	// Split names ImageSets/Main/<Split>.txt; several may be joined with
	// commas ("trainval,test"). Empty: every .xml under Annotations/ (sub
	// folders included), sorted by id.
	Split string
	// Images says how far image files are checked (default ImageHeader).
	Images ImageCheck
	// MaxPixels is the image size limit (DefaultMaxPixels when <= 0).
	MaxPixels int
	// Limits bound objects per image and annotation file sizes.
	Limits Limits
}

// VOCObject is one <object> of a VOC annotation, its box already converted to
// half-open 0-based pixels.
type VOCObject struct {
	Name      string
	Box       box.Box
	Difficult bool
	Truncated bool
	Line      int // line of the <object> element
}

// VOCAnnotation is one parsed VOC XML file.
type VOCAnnotation struct {
	Filename      string // <filename>, "" when absent
	Width, Height int    // <size>; 0 when absent
	Objects       []VOCObject
}

type xmlBndbox struct {
	Xmin string `xml:"xmin"`
	Ymin string `xml:"ymin"`
	Xmax string `xml:"xmax"`
	Ymax string `xml:"ymax"`
}

type xmlObject struct {
	Name      *string    `xml:"name"`
	Difficult string     `xml:"difficult"`
	Truncated string     `xml:"truncated"`
	Bndbox    *xmlBndbox `xml:"bndbox"`
}

type xmlSize struct {
	Width  string `xml:"width"`
	Height string `xml:"height"`
}

// ParseVOCXML parses one VOC annotation. file names it in problems. It never
// panics; an error-severity problem means the annotation must not be used
// (a syntax error, a missing root element, a malformed size or object, more
// than DefaultMaxObjects objects). Boxes are converted but not validated
// against the image (see ValidateObjects).
func ParseVOCXML(data []byte, file string) (*VOCAnnotation, Problems) {
	return parseVOCXML(data, file, Limits{}.maxObjects())
}

// parseVOCXML is ParseVOCXML with a limit on objects: parsing stops at the
// object past it, so that neither memory nor time grows with a longer file.
func parseVOCXML(data []byte, file string, maxObjects int) (*VOCAnnotation, Problems) {
	var ps Problems
	objects := 0
	ann := &VOCAnnotation{}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = charsetReader
	depth := 0
	sawRoot := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			line, _ := dec.InputPos()
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				line = se.Line
			}
			ps.add(file, line, Error, KindSyntax, "XML syntax error: %v", trimXMLErr(err))
			return ann, ps
		}
		switch t := tok.(type) {
		case xml.StartElement:
			line, _ := dec.InputPos()
			if depth == 0 {
				if sawRoot {
					ps.add(file, line, Error, KindSyntax, "XML has more than one root element")
					return ann, ps
				}
				sawRoot = true
				if t.Name.Local != "annotation" {
					ps.add(file, line, Error, KindSyntax, "root element is <%s>, want <annotation>", t.Name.Local)
					return ann, ps
				}
				depth++
				continue
			}
			var err error
			switch t.Name.Local {
			case "filename":
				var s string
				if err = dec.DecodeElement(&s, &t); err == nil {
					ann.Filename = strings.TrimSpace(s)
				}
			case "size":
				var s xmlSize
				if err = dec.DecodeElement(&s, &t); err == nil {
					ann.Width = parseSize(&ps, file, line, "width", s.Width)
					ann.Height = parseSize(&ps, file, line, "height", s.Height)
				}
			case "object":
				if objects++; objects > maxObjects {
					ps.add(file, line, Error, KindTooManyObjects, "more than %d objects (data.max_objects; dataset's --max-objects): the image is left out", maxObjects)
					return ann, ps
				}
				var o xmlObject
				if err = dec.DecodeElement(&o, &t); err == nil {
					if vo, ok := convertVOCObject(&ps, file, line, len(ann.Objects), &o); ok {
						ann.Objects = append(ann.Objects, vo)
					}
				}
			default:
				err = dec.Skip()
			}
			if err != nil {
				l, _ := dec.InputPos()
				var se *xml.SyntaxError
				if errors.As(err, &se) {
					l = se.Line
				}
				ps.add(file, l, Error, KindSyntax, "XML syntax error in <%s>: %v", t.Name.Local, trimXMLErr(err))
				return ann, ps
			}
		case xml.EndElement:
			depth--
		}
	}
	if !sawRoot {
		ps.add(file, 0, Error, KindSyntax, "no <annotation> element")
	}
	return ann, ps
}

func trimXMLErr(err error) string {
	s := err.Error()
	// "XML syntax error on line 7: ..." repeats the line we report.
	if i := strings.Index(s, ": "); strings.HasPrefix(s, "XML syntax error on line") && i >= 0 {
		return s[i+2:]
	}
	return s
}

// charsetReader accepts the encodings VOC files are written in.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "latin1", "latin-1", "iso8859-1":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(b)*2)
		for _, c := range b {
			out = utf8.AppendRune(out, rune(c))
		}
		return bytes.NewReader(out), nil
	}
	return nil, fmt.Errorf("unsupported encoding %q (want UTF-8 or ISO-8859-1)", label)
}

// maxSide bounds a width or height read from an annotation (sanity, not a pixel limit).
const maxSide = 1 << 20

func parseSize(ps *Problems, file string, line int, what, s string) int {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != math.Trunc(v) || v < 0 || v > maxSide {
		ps.add(file, line, Error, KindBadField, "<size><%s> is %q, want a whole number of pixels in [0, %d]", what, s, maxSide)
		return 0
	}
	return int(v)
}

func parseFlag(ps *Problems, file string, line, i int, what, s string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || (v != 0 && v != 1) {
		ps.add(file, line, Error, KindBadField, "object %d: <%s> is %q, want 0 or 1", i, what, s)
		return false
	}
	return v == 1
}

func convertVOCObject(ps *Problems, file string, line, i int, o *xmlObject) (VOCObject, bool) {
	n0 := len(*ps)
	vo := VOCObject{Line: line}
	if o.Name == nil || strings.TrimSpace(*o.Name) == "" {
		ps.add(file, line, Error, KindBadField, "object %d has no <name>", i)
	} else {
		vo.Name = strings.TrimSpace(*o.Name)
	}
	vo.Difficult = parseFlag(ps, file, line, i, "difficult", o.Difficult)
	vo.Truncated = parseFlag(ps, file, line, i, "truncated", o.Truncated)
	if o.Bndbox == nil {
		ps.add(file, line, Error, KindBadField, "object %d has no <bndbox>", i)
		return vo, false
	}
	var c [4]float64
	for k, s := range []string{o.Bndbox.Xmin, o.Bndbox.Ymin, o.Bndbox.Xmax, o.Bndbox.Ymax} {
		name := [4]string{"xmin", "ymin", "xmax", "ymax"}[k]
		s = strings.TrimSpace(s)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || !finite(v) || math.Abs(v) > maxSide {
			ps.add(file, line, Error, KindBadField, "object %d: <%s> is %q, want a number", i, name, s)
			continue
		}
		c[k] = v
	}
	vo.Box = box.Box{X0: c[0] - 1, Y0: c[1] - 1, X1: c[2], Y1: c[3]}
	return vo, len(*ps) == n0
}

// ReadVOC reads the VOC folder root (see VOCOptions). It never panics and
// never stops at the first problem: every problem is returned, and a sample
// with an error-severity problem is left out of the dataset. Sample.ID is the
// position of the id in the split list (0-based, counting left-out ones, so
// that ids do not move when a file is fixed), Sample.Name the VOC id,
// Sample.File the <filename> (or <id>.jpg when absent) under root/JPEGImages.
// When <filename> names no file but <id>.jpg exists, <id>.jpg is used with a warning.
func ReadVOC(root string, opt VOCOptions) (*Dataset, Problems) {
	var ps Problems
	ds := &Dataset{ImageRoot: filepath.Join(root, VOCImages)}
	ids, lines, files := vocIDs(&ps, root, opt.Split, opt.Limits.maxFileBytes())

	type parsed struct {
		ann    *VOCAnnotation
		sample Sample
		file   string
	}
	var all []parsed
	for k, id := range ids {
		xmlPath := filepath.Join(root, VOCAnnotations, filepath.FromSlash(id)+".xml")
		data, err := readLimited(xmlPath, opt.Limits.maxFileBytes())
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				ps.add(files[k], lines[k], Error, KindMissingFile, "annotation %s for id %q not found", xmlPath, id)
			} else {
				ps.addReadError(xmlPath, 0, "annotation", err)
			}
			continue
		}
		ann, aps := parseVOCXML(data, xmlPath, opt.Limits.maxObjects())
		ps = append(ps, aps...)
		if aps.Count(Error) > 0 {
			continue
		}
		fname := ann.Filename
		if fname == "" {
			fname = id + ".jpg"
		}
		all = append(all, parsed{ann, Sample{ID: int64(k), Name: id, File: fname, Width: ann.Width, Height: ann.Height}, xmlPath})
	}

	classes := opt.Classes
	if classes == nil {
		classes = readLabelList(&ps, root, opt.Limits.maxFileBytes())
	}
	if classes == nil {
		set := map[string]bool{}
		for _, p := range all {
			for _, o := range p.ann.Objects {
				set[o.Name] = true
			}
		}
		for n := range set {
			classes = append(classes, n)
		}
		sort.Strings(classes)
	}
	ds.Classes = append([]string(nil), classes...)
	index := make(map[string]int, len(classes))
	for i, c := range classes {
		index[c] = i
	}

	// Images are checked in parallel (decoding is the slow part); problems
	// are then reported in sample order, so the output is deterministic.
	type imageResult struct {
		s    Sample
		ps   Problems
		good bool
	}
	images := make([]imageResult, len(all))
	if opt.Images != ImageNone {
		parallelFor(len(all), func(k int) {
			p := all[k]
			s := p.sample
			if !localName(s.File) {
				return // reported below
			}
			ips, good := CheckImage(ds.ImageRoot, &s, opt.Images, opt.MaxPixels)
			if !good && len(ips) == 1 && ips[0].Kind == KindImageMissing && p.ann.Filename != "" && p.ann.Filename != s.Name+".jpg" {
				alt := s
				alt.File = s.Name + ".jpg"
				if aps, good2 := CheckImage(ds.ImageRoot, &alt, opt.Images, opt.MaxPixels); good2 {
					ips = append(Problems{{File: p.file, Severity: Warning, Kind: KindImageMissing,
						Message: fmt.Sprintf("<filename> %q not found under %s; using %s", p.ann.Filename, ds.ImageRoot, alt.File)}}, aps...)
					good, s = true, alt
				}
			}
			if good && p.sample.Width == 0 && p.sample.Height == 0 {
				ips.add(p.file, 0, Warning, KindBadField, "annotation has no <size>; took %dx%d from the image", s.Width, s.Height)
			}
			images[k] = imageResult{s, ips, good}
		})
	}

	for k, p := range all {
		s := p.sample
		ok := true
		objs := make([]Object, 0, len(p.ann.Objects))
		objLines := make([]int, 0, len(p.ann.Objects))
		for i, o := range p.ann.Objects {
			label, found := index[o.Name]
			if !found {
				ps.add(p.file, o.Line, Error, KindUnknownClass, "object %d: class %q is not in the class list %v", i, o.Name, classes)
				ok = false
				continue
			}
			objs = append(objs, Object{Box: o.Box, Label: label, Difficult: o.Difficult, Truncated: o.Truncated})
			objLines = append(objLines, o.Line)
		}
		if !ok {
			continue
		}
		if !localName(s.File) {
			ps.add(p.file, 0, Error, KindPathEscape, "<filename> %q escapes the image folder %s; rejected", s.File, ds.ImageRoot)
			continue
		}
		if opt.Images != ImageNone {
			r := images[k]
			ps = append(ps, r.ps...)
			if !r.good {
				continue
			}
			s = r.s
		}
		if s.Width <= 0 || s.Height <= 0 {
			ps.add(p.file, 0, Error, KindBadField, "annotation has no usable <size> (%dx%d) and the image was not read", s.Width, s.Height)
			continue
		}
		kept, vps, bad := ValidateObjects(objs, s.Width, s.Height, len(classes), p.file, objLines)
		ps = append(ps, vps...)
		if bad {
			continue
		}
		s.Objects = kept
		ds.Samples = append(ds.Samples, s)
	}
	return ds, ps
}

// VOCLabelList is the optional class list file of a VOC folder.
const VOCLabelList = "label_list.txt"

// readLabelList reads root/label_list.txt; nil when absent or unusable.
func readLabelList(ps *Problems, root string, maxBytes int64) []string {
	file := filepath.Join(root, VOCLabelList)
	data, err := readLimited(file, maxBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		ps.addReadError(file, 0, "the class list", err)
		return nil
	}
	var classes []string
	seen := map[string]int{}
	for n, line := range strings.Split(string(data), "\n") {
		name := strings.TrimSpace(line)
		if name == "" {
			continue
		}
		if first, dup := seen[name]; dup {
			ps.add(file, n+1, Error, KindDuplicateID, "class %q listed again (first on line %d); the repeat is ignored", name, first)
			continue
		}
		seen[name] = n + 1
		classes = append(classes, name)
	}
	return classes
}

// vocIDs lists the ids to read, with the file and line each came from.
func vocIDs(ps *Problems, root, split string, maxBytes int64) (ids []string, lines []int, files []string) {
	if split == "" {
		dir := filepath.Join(root, VOCAnnotations)
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".xml") {
				rel, err := filepath.Rel(dir, p)
				if err != nil {
					return err
				}
				ids = append(ids, strings.TrimSuffix(filepath.ToSlash(rel), ".xml"))
				lines = append(lines, 0)
				files = append(files, dir)
			}
			return nil
		})
		if err != nil {
			ps.add(dir, 0, Error, KindMissingFile, "cannot list annotations: %v", err)
			return nil, nil, nil
		}
		// WalkDir visits in lexical order per folder; sort the slash paths so
		// that the order is the same on every system.
		sort.Strings(ids)
		return
	}
	seen := map[string]string{}
	for _, name := range strings.Split(split, ",") {
		name = strings.TrimSpace(name)
		if !localName(name) {
			ps.add(filepath.Join(root, VOCSets), 0, Error, KindPathEscape, "split name %q is not a plain file name", name)
			continue
		}
		file := filepath.Join(root, filepath.FromSlash(VOCSets), name+".txt")
		data, err := readLimited(file, maxBytes)
		if err != nil {
			ps.addReadError(file, 0, "split list", err)
			continue
		}
		for n, raw := range strings.Split(string(data), "\n") {
			f := strings.Fields(raw)
			if len(f) == 0 {
				continue
			}
			id := f[0]
			if !localName(id) {
				ps.add(file, n+1, Error, KindPathEscape, "id %q escapes the annotation folder; rejected", id)
				continue
			}
			if where, dup := seen[id]; dup {
				ps.add(file, n+1, Error, KindDuplicateID, "id %q listed again (first at %s); the repeat is ignored", id, where)
				continue
			}
			seen[id] = fmt.Sprintf("%s:%d", file, n+1)
			ids = append(ids, id)
			lines = append(lines, n+1)
			files = append(files, file)
		}
	}
	return
}
