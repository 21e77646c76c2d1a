package dataset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"yolodistill/pkg/box"
)

// COCO coordinates: a COCO bbox [x, y, w, h] is already in continuous pixel
// coordinates with the origin at the top-left corner of pixel (0, 0), the same
// as our half-open boxes, so X0 = x, Y0 = y, X1 = x + w, Y1 = y + h, and the
// writer emits [X0, Y0, X1-X0, Y1-Y0]. This is exact for integer coordinates;
// for fractional ones x + w - x can differ from w in the last bit.

// COCO folder layout of this project's writer: DIR/annotations.json with the
// images under DIR/images/<file_name>. ReadCOCO also takes a JSON file with
// any image root (a real COCO download: annotations/instances_val2017.json
// with val2017/).
const (
	COCOAnnotationFile = "annotations.json"
	COCOImages         = "images"
)

// COCOOptions configure ReadCOCO and ParseCOCO.
type COCOOptions struct {
	// ImageRoot is the folder file_name is relative to. Empty: DIR/images when
	// ReadCOCO is given a folder, the JSON file's folder when given a file.
	ImageRoot string
	// Classes, when set, is the class list: a category's label is the index
	// of its name here, and a category whose name is not in it is an
	// unknown-class error. Nil: labels follow the categories sorted by id
	// (contiguous 0..C-1 whatever gaps the ids have, as COCO's 80 of 1..90).
	Classes []string
	// Images says how far image files are checked (default ImageHeader).
	Images ImageCheck
	// MaxPixels is the image size limit (DefaultMaxPixels when <= 0).
	MaxPixels int
	// Limits bound objects per image and the JSON file's size.
	Limits Limits
}

type cocoImageJSON struct {
	ID       json.RawMessage `json:"id"`
	FileName *string         `json:"file_name"`
	Width    *float64        `json:"width"`
	Height   *float64        `json:"height"`
}

type cocoAnnJSON struct {
	ID         json.RawMessage `json:"id"`
	ImageID    json.RawMessage `json:"image_id"`
	CategoryID json.RawMessage `json:"category_id"`
	BBox       []float64       `json:"bbox"`
	Area       *float64        `json:"area"`
	IsCrowd    *float64        `json:"iscrowd"`
	Difficult  *float64        `json:"difficult"` // VOC's flag, kept by our writer; not standard COCO
	Truncated  *float64        `json:"truncated"` // likewise
}

type cocoCatJSON struct {
	ID   json.RawMessage `json:"id"`
	Name *string         `json:"name"`
}

// lineIndex turns byte offsets into 1-based line numbers.
type lineIndex []int // offsets of '\n'

func newLineIndex(data []byte) lineIndex {
	var li lineIndex
	for i, c := range data {
		if c == '\n' {
			li = append(li, i)
		}
	}
	return li
}

func (li lineIndex) line(off int64) int {
	return sort.Search(len(li), func(i int) bool { return int64(li[i]) >= off }) + 1
}

// ReadCOCO reads a COCO instances file: path is the JSON file, or a folder
// holding annotations.json (images then under path/images unless
// opt.ImageRoot says otherwise). See ParseCOCO for the rules; images are then
// checked as opt.Images says, and a sample whose image fails is left out.
func ReadCOCO(path string, opt COCOOptions) (*Dataset, Problems) {
	jsonPath, root := path, opt.ImageRoot
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		jsonPath = filepath.Join(path, COCOAnnotationFile)
		if root == "" {
			root = filepath.Join(path, COCOImages)
		}
	} else if root == "" {
		root = filepath.Dir(path)
	}
	data, err := readLimited(jsonPath, opt.Limits.maxFileBytes())
	if err != nil {
		var ps Problems
		ps.addReadError(jsonPath, 0, "COCO annotations", err)
		return &Dataset{ImageRoot: root, Classes: opt.Classes}, ps
	}
	ds, ps, lines, pending := parseCOCO(data, jsonPath, opt)
	ds.ImageRoot = root
	type imageResult struct {
		s    Sample
		ps   Problems
		good bool
	}
	images := make([]imageResult, len(ds.Samples))
	if opt.Images != ImageNone {
		parallelFor(len(ds.Samples), func(i int) {
			s := ds.Samples[i]
			ips, good := CheckImage(root, &s, opt.Images, opt.MaxPixels)
			images[i] = imageResult{s, ips, good}
		})
	}
	kept := ds.Samples[:0]
	for i, s := range ds.Samples {
		if opt.Images != ImageNone {
			r := images[i]
			ps = append(ps, r.ps...)
			if !r.good {
				continue
			}
			s = r.s
		}
		if pending[i] {
			if s.Width <= 0 || s.Height <= 0 {
				ps.add(jsonPath, 0, Error, KindBadField, "image %d has no width/height and the image was not read", s.ID)
				continue
			}
			ps.add(jsonPath, 0, Warning, KindBadField, "image %d has no width/height; took %dx%d from the image", s.ID, s.Width, s.Height)
			objs, vps, bad := ValidateObjects(s.Objects, s.Width, s.Height, len(ds.Classes), jsonPath, lines[i])
			ps = append(ps, vps...)
			if bad {
				continue
			}
			s.Objects = objs
		}
		kept = append(kept, s)
	}
	ds.Samples = kept
	return ds, ps
}

// ParseCOCO parses COCO instances JSON held in data (file names it in
// problems, with the line of the offending image, annotation or category). It
// never panics and does not touch image files, but checks file names for
// escapes. Sample order is the order of "images"; Sample.ID is the image id,
// Name and File its file_name. Problems:
//   - a JSON syntax error (with line): error, nothing is read;
//   - a missing or malformed field (ids, file_name, bbox, sizes): error;
//   - an image, annotation or category id used twice: error;
//   - an annotation of an unknown image: error (the annotation is ignored);
//   - an unknown category id or name: error (unknown-class);
//   - the box rules of ValidateObjects (clip, drop, tiny, duplicate: warnings).
//
// An image with any error is left out of the dataset.
func ParseCOCO(data []byte, file string, opt COCOOptions) (*Dataset, Problems) {
	ds, ps, _, pending := parseCOCO(data, file, opt)
	kept := ds.Samples[:0]
	for i, s := range ds.Samples {
		if pending[i] {
			ps.add(file, 0, Error, KindBadField, "image %d has no width/height (ReadCOCO takes them from the image)", s.ID)
			continue
		}
		kept = append(kept, s)
	}
	ds.Samples = kept
	return ds, ps
}

// parseCOCO is ParseCOCO that keeps images without a size, unvalidated, with
// pending[i] set and the lines of their annotations, for ReadCOCO to finish.
func parseCOCO(data []byte, file string, opt COCOOptions) (ds *Dataset, ps Problems, lines [][]int, pending []bool) {
	ds = &Dataset{ImageRoot: opt.ImageRoot}
	li := newLineIndex(data)
	sections := map[string][]element{}
	if !splitCOCO(&ps, data, file, li, sections) {
		ds.Classes = append([]string(nil), opt.Classes...)
		return ds, ps, nil, nil
	}
	for _, key := range []string{"images", "annotations", "categories"} {
		if _, ok := sections[key]; !ok {
			ps.add(file, 0, Error, KindBadField, "no %q array", key)
		}
	}

	// Categories -> labels.
	type cat struct {
		id   int64
		name string
		line int
	}
	var cats []cat
	catSeen := map[int64]int{}
	for _, e := range sections["categories"] {
		var c cocoCatJSON
		if err := json.Unmarshal(e.raw, &c); err != nil {
			ps.add(file, e.line, Error, KindBadField, "category: %v", jsonErr(err))
			continue
		}
		id, ok := intField(&ps, file, e.line, "category", "id", c.ID)
		if !ok {
			continue
		}
		if c.Name == nil || strings.TrimSpace(*c.Name) == "" {
			ps.add(file, e.line, Error, KindBadField, "category %d has no name", id)
			continue
		}
		if l, dup := catSeen[id]; dup {
			ps.add(file, e.line, Error, KindDuplicateID, "category id %d used again (first on line %d); the repeat is ignored", id, l)
			continue
		}
		catSeen[id] = e.line
		cats = append(cats, cat{id, strings.TrimSpace(*c.Name), e.line})
	}
	sort.SliceStable(cats, func(i, j int) bool { return cats[i].id < cats[j].id })
	catLabel := map[int64]int{}
	if opt.Classes != nil {
		ds.Classes = append([]string(nil), opt.Classes...)
		index := map[string]int{}
		for i, n := range opt.Classes {
			index[n] = i
		}
		for _, c := range cats {
			if l, ok := index[c.name]; ok {
				catLabel[c.id] = l
			} else {
				ps.add(file, c.line, Error, KindUnknownClass, "category %d %q is not in the class list %v", c.id, c.name, opt.Classes)
			}
		}
	} else {
		names := map[string]int64{}
		for _, c := range cats {
			if first, dup := names[c.name]; dup {
				ps.add(file, c.line, Error, KindDuplicateID, "category name %q used by ids %d and %d; the second is ignored", c.name, first, c.id)
				continue
			}
			names[c.name] = c.id
			catLabel[c.id] = len(ds.Classes)
			ds.Classes = append(ds.Classes, c.name)
		}
	}

	// Images.
	type img struct {
		s    Sample
		line int
		bad  bool
		objs []Object
		ls   []int
		n    int // annotations seen
	}
	maxObjects := opt.Limits.maxObjects()
	var imgs []*img
	byID := map[int64]*img{}
	for _, e := range sections["images"] {
		var j cocoImageJSON
		if err := json.Unmarshal(e.raw, &j); err != nil {
			ps.add(file, e.line, Error, KindBadField, "image: %v", jsonErr(err))
			continue
		}
		id, ok := intField(&ps, file, e.line, "image", "id", j.ID)
		if !ok {
			continue
		}
		if prev, dup := byID[id]; dup {
			ps.add(file, e.line, Error, KindDuplicateID, "image id %d used again (first on line %d); both are left out", id, prev.line)
			prev.bad = true
			continue
		}
		im := &img{s: Sample{ID: id}, line: e.line}
		byID[id] = im
		imgs = append(imgs, im)
		if j.FileName == nil || *j.FileName == "" {
			ps.add(file, e.line, Error, KindBadField, "image %d has no file_name", id)
			im.bad = true
		} else if !localName(*j.FileName) {
			ps.add(file, e.line, Error, KindPathEscape, "image %d: file_name %q escapes the image folder; rejected", id, *j.FileName)
			im.bad = true
		} else {
			im.s.File, im.s.Name = *j.FileName, *j.FileName
		}
		im.s.Width = sizeField(&ps, file, e.line, id, "width", j.Width, &im.bad)
		im.s.Height = sizeField(&ps, file, e.line, id, "height", j.Height, &im.bad)
	}

	// Annotations.
	annSeen := map[int64]int{}
	for _, e := range sections["annotations"] {
		var a cocoAnnJSON
		if err := json.Unmarshal(e.raw, &a); err != nil {
			ps.add(file, e.line, Error, KindBadField, "annotation: %v", jsonErr(err))
			continue
		}
		aid, ok1 := intField(&ps, file, e.line, "annotation", "id", a.ID)
		iid, ok2 := intField(&ps, file, e.line, "annotation", "image_id", a.ImageID)
		cid, ok3 := intField(&ps, file, e.line, "annotation", "category_id", a.CategoryID)
		if !ok2 {
			continue
		}
		im, found := byID[iid]
		if !found {
			ps.add(file, e.line, Error, KindBadField, "annotation %d refers to image %d, which is not in \"images\"", aid, iid)
			continue
		}
		if !ok1 || !ok3 {
			im.bad = true
			continue
		}
		if im.n++; im.n > maxObjects {
			if im.n == maxObjects+1 {
				ps.add(file, e.line, Error, KindTooManyObjects, "image %d has more than %d annotations (data.max_objects; dataset's --max-objects): the image is left out", iid, maxObjects)
			}
			im.bad, im.objs, im.ls = true, nil, nil
			continue
		}
		if l, dup := annSeen[aid]; dup {
			ps.add(file, e.line, Error, KindDuplicateID, "annotation id %d used again (first on line %d)", aid, l)
			im.bad = true
			continue
		}
		annSeen[aid] = e.line
		label, known := catLabel[cid]
		if !known {
			if _, exists := catSeen[cid]; !exists {
				ps.add(file, e.line, Error, KindUnknownClass, "annotation %d: category_id %d is not in \"categories\"", aid, cid)
			} else {
				ps.add(file, e.line, Error, KindUnknownClass, "annotation %d: category %d has no label", aid, cid)
			}
			im.bad = true
			continue
		}
		if len(a.BBox) != 4 {
			ps.add(file, e.line, Error, KindBadField, "annotation %d: bbox has %d numbers, want 4 (x, y, w, h)", aid, len(a.BBox))
			im.bad = true
			continue
		}
		o := Object{Box: box.FromXYWH(a.BBox[0], a.BBox[1], a.BBox[2], a.BBox[3]), Label: label, AnnID: aid}
		if a.Area != nil {
			o.Area = *a.Area
		}
		var bad bool
		o.Crowd = flagField(&ps, file, e.line, aid, "iscrowd", a.IsCrowd, &bad)
		o.Difficult = flagField(&ps, file, e.line, aid, "difficult", a.Difficult, &bad)
		o.Truncated = flagField(&ps, file, e.line, aid, "truncated", a.Truncated, &bad)
		if bad {
			im.bad = true
			continue
		}
		im.objs = append(im.objs, o)
		im.ls = append(im.ls, e.line)
	}

	for _, im := range imgs {
		if im.bad {
			continue
		}
		s := im.s
		if s.Width > 0 && s.Height > 0 {
			kept, vps, bad := ValidateObjects(im.objs, s.Width, s.Height, len(ds.Classes), file, im.ls)
			ps = append(ps, vps...)
			if bad {
				continue
			}
			s.Objects = kept
			lines = append(lines, nil)
			pending = append(pending, false)
		} else {
			// Size unknown until the image is read: validated by ReadCOCO.
			s.Objects = im.objs
			lines = append(lines, im.ls)
			pending = append(pending, true)
		}
		ds.Samples = append(ds.Samples, s)
	}
	return ds, ps, lines, pending
}

// element is one member of a top-level COCO array with its line.
type element struct {
	raw  json.RawMessage
	line int
}

// splitCOCO walks the top-level object and collects the members of the
// "images", "annotations" and "categories" arrays with their line numbers.
// It reports false after a syntax error.
func splitCOCO(ps *Problems, data []byte, file string, li lineIndex, out map[string][]element) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	syntax := func(err error) bool {
		var se *json.SyntaxError
		off := dec.InputOffset()
		if errors.As(err, &se) {
			off = se.Offset
		}
		msg := err.Error()
		if errors.Is(err, io.EOF) || strings.Contains(msg, "unexpected EOF") {
			msg = "unexpected end of file (truncated JSON?)"
		}
		ps.add(file, li.line(off), Error, KindSyntax, "JSON syntax error: %s", msg)
		return false
	}
	tok, err := dec.Token()
	if err != nil {
		return syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		ps.add(file, 1, Error, KindSyntax, "COCO JSON must be an object, found %v", tok)
		return false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return syntax(err)
		}
		key, _ := tok.(string)
		if key != "images" && key != "annotations" && key != "categories" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return syntax(err)
			}
			continue
		}
		if _, dup := out[key]; dup {
			ps.add(file, li.line(dec.InputOffset()), Error, KindDuplicateID, "key %q appears twice; the second is used", key)
		}
		start := skipSpace(data, dec.InputOffset())
		tok, err = dec.Token()
		if err != nil {
			return syntax(err)
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			ps.add(file, li.line(start), Error, KindBadField, "%q is not an array", key)
			if _, isDelim := tok.(json.Delim); isDelim {
				// An object: skip it whole.
				depth := 1
				for depth > 0 {
					t, err := dec.Token()
					if err != nil {
						return syntax(err)
					}
					if d, ok := t.(json.Delim); ok {
						if d == '{' || d == '[' {
							depth++
						} else {
							depth--
						}
					}
				}
			}
			out[key] = []element{}
			continue
		}
		list := []element{}
		for dec.More() {
			off := skipSpace(data, dec.InputOffset())
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return syntax(err)
			}
			list = append(list, element{raw, li.line(off)})
		}
		if _, err := dec.Token(); err != nil { // ']'
			return syntax(err)
		}
		out[key] = list
	}
	if _, err := dec.Token(); err != nil { // '}'
		return syntax(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		ps.add(file, li.line(dec.InputOffset()), Error, KindSyntax, "JSON syntax error: data after the top-level object")
		return false
	}
	return true
}

// skipSpace moves off past white space and commas (where the next element starts).
func skipSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\n', '\r', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

func jsonErr(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q is a JSON %s, want %s", te.Field, te.Value, te.Type)
	}
	return err.Error()
}

// intField parses a JSON integer id (present, whole, fits int64).
func intField(ps *Problems, file string, line int, what, name string, n json.RawMessage) (int64, bool) {
	if n == nil || string(n) == "null" {
		ps.add(file, line, Error, KindBadField, "%s has no %q", what, name)
		return 0, false
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		shown := string(n)
		if len(shown) > 40 {
			shown = shown[:40] + "..."
		}
		ps.add(file, line, Error, KindBadField, "%s %q is %s, want an integer", what, name, shown)
		return 0, false
	}
	return v, true
}

func sizeField(ps *Problems, file string, line int, id int64, name string, v *float64, bad *bool) int {
	if v == nil {
		return 0 // taken from the image
	}
	if *v != math.Trunc(*v) || *v < 1 || *v > maxSide {
		ps.add(file, line, Error, KindBadField, "image %d: %s is %v, want a whole number of pixels in [1, %d]", id, name, *v, maxSide)
		*bad = true
		return 0
	}
	return int(*v)
}

func flagField(ps *Problems, file string, line int, aid int64, name string, v *float64, bad *bool) bool {
	if v == nil {
		return false
	}
	if *v != 0 && *v != 1 {
		ps.add(file, line, Error, KindBadField, "annotation %d: %s is %v, want 0 or 1", aid, name, *v)
		*bad = true
		return false
	}
	return *v == 1
}
