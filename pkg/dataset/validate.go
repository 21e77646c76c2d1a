package dataset

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"yolodistill/pkg/box"
)

// Severity says whether a Problem stops a sample from being used.
type Severity int

const (
	// Warning: the data was repaired (a box clipped, a box dropped) or looks
	// suspicious; the sample is still used.
	Warning Severity = iota
	// Error: the sample (or the whole file) cannot be used and is left out.
	Error
)

func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// MarshalJSON writes "warning" or "error".
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads "warning" or "error".
func (s *Severity) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v {
	case "warning":
		*s = Warning
	case "error":
		*s = Error
	default:
		return fmt.Errorf("severity %q: want warning or error", v)
	}
	return nil
}

// Kinds of Problem. They are stable strings, for tests, scripts and the JSON report.
const (
	KindImageMissing    = "image-missing"    // the image file does not exist
	KindImageUnreadable = "image-unreadable" // it exists but cannot be read
	KindImageCorrupt    = "image-corrupt"    // bad header, truncated or corrupt data
	KindImageFormat     = "image-format"     // not JPEG or PNG
	KindImageTooLarge   = "image-too-large"  // over the pixel limit (rejected before decoding)
	KindPathEscape      = "path-escape"      // a file name that leaves the image or annotation root
	KindSyntax          = "syntax"           // XML or JSON syntax error
	KindMissingFile     = "missing-file"     // an annotation or split file is missing
	KindBadField        = "bad-field"        // a missing or malformed field (size, coordinates, ids)
	KindSizeMismatch    = "size-mismatch"    // annotation size differs from the image
	KindBoxClipped      = "box-clipped"      // a box crossed the image border and was clipped
	KindBoxDropped      = "box-dropped"      // a box had zero area (or none left after clipping) and was dropped
	KindBoxTiny         = "box-tiny"         // a box under 2 pixels wide or high: kept, probably a stray click
	KindBoxDuplicate    = "box-duplicate"    // two boxes of one class with IoU >= 0.9: kept, probably annotated twice
	KindUnknownClass    = "unknown-class"    // a class name or category id not in the class list
	KindDuplicateID     = "duplicate-id"     // an image, annotation or category id used twice
	KindTooManyObjects  = "too-many-objects" // an image with more objects than Limits.MaxObjects
	KindFileTooLarge    = "file-too-large"   // an annotation file over Limits.MaxFileBytes (not read)
)

// Problem is one thing wrong with a dataset. File is the file it was found in
// (an annotation, a split list, an image); Line is 1-based, 0 when not known.
type Problem struct {
	File     string   `json:"file"`
	Line     int      `json:"line,omitempty"`
	Severity Severity `json:"severity"`
	Kind     string   `json:"kind"`
	Message  string   `json:"message"`
}

// String formats the problem as "file:line: severity: message (kind)".
func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s: %s: %s (%s)", loc, p.Severity, p.Message, p.Kind)
}

// Problems is the list a reader returns beside its dataset.
type Problems []Problem

func (ps *Problems) add(file string, line int, sev Severity, kind, format string, args ...any) {
	*ps = append(*ps, Problem{File: file, Line: line, Severity: sev, Kind: kind, Message: fmt.Sprintf(format, args...)})
}

// Count returns how many problems have severity s.
func (ps Problems) Count(s Severity) int {
	n := 0
	for _, p := range ps {
		if p.Severity == s {
			n++
		}
	}
	return n
}

// Err returns nil when there is no error-severity problem, else an error that
// names the first one and how many there are.
func (ps Problems) Err() error {
	n := ps.Count(Error)
	if n == 0 {
		return nil
	}
	for _, p := range ps {
		if p.Severity == Error {
			if n == 1 {
				return errors.New(p.String())
			}
			return fmt.Errorf("%s (and %d more errors)", p, n-1)
		}
	}
	return nil
}

// Summary is one line about ps for a tool that reads a dataset to train or
// evaluate on: how many warnings and errors, by kind, and the first of
// them ("" when ps is empty). `dataset check` lists them all.
func (ps Problems) Summary() string {
	if len(ps) == 0 {
		return ""
	}
	byKind := map[string]int{}
	for _, p := range ps {
		byKind[p.Kind]++
	}
	var kinds []string
	for k, n := range byKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	sorted := slices.Clone(ps)
	sorted.Sort()
	first := sorted[0]
	for _, p := range sorted {
		if p.Severity == Error {
			first = p
			break
		}
	}
	return fmt.Sprintf("%d errors, %d warnings (%s); the first: %s; `dataset check` lists them all",
		ps.Count(Error), ps.Count(Warning), strings.Join(kinds, ", "), first)
}

// Write prints one line per problem.
func (ps Problems) Write(w io.Writer) error {
	for _, p := range ps {
		if _, err := fmt.Fprintln(w, p.String()); err != nil {
			return err
		}
	}
	return nil
}

// Sort orders problems by file, line, then severity (errors first), stably.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Severity > b.Severity
	})
}

// ImageCheck says how much a reader looks at the image files.
type ImageCheck int

const (
	// ImageHeader (the default) opens every image and reads its header: finds
	// missing, unreadable, non-JPEG/PNG and oversized images and size mismatches.
	ImageHeader ImageCheck = iota
	// ImageDecode also decodes every image: finds truncated and corrupt data. Slow.
	ImageDecode
	// ImageNone does not touch image files (for fuzzing, or when images are elsewhere).
	ImageNone
)

// ParseImageCheck parses "header", "decode" or "none".
func ParseImageCheck(s string) (ImageCheck, error) {
	switch s {
	case "header", "":
		return ImageHeader, nil
	case "decode":
		return ImageDecode, nil
	case "none":
		return ImageNone, nil
	}
	return 0, fmt.Errorf("image check %q: want header, decode or none", s)
}

// DuplicateIoU is the IoU at or above which two boxes of one class in one image
// are reported as a probable duplicate annotation (a warning; both are kept).
const DuplicateIoU = 0.9

// objectLine carries where an object was found, for problem reports.
type objectLine struct {
	file string
	line int
}

// ValidateObjects checks and repairs the objects of one image of size w x h
// in place, with the rules every reader and loader share, and returns the
// problems found (file names the annotation file, lines[i] the line of object
// i when known, else nil):
//   - a box with a NaN or infinite coordinate: error;
//   - a label outside [0, nClasses): error (unknown class);
//   - a box crossing the image border [0, w) x [0, h): clipped, warning;
//   - a box with zero area (before or after clipping): dropped, warning
//     naming why (inverted: a right edge left of its left edge, or a bottom
//     above its top; zero width or height; outside the image);
//   - a box under 2 pixels wide or high: kept, warning (box-tiny);
//   - a box of the same class as an earlier box with IoU >= DuplicateIoU:
//     kept, warning (see findDuplicates: at most MaxDuplicatesListed lines
//     per image, then one summary line).
//
// Boxes are half-open pixel xyxy. It returns the kept objects (a prefix of
// objs, reused) and whether any error was found (the sample must then be left out).
func ValidateObjects(objs []Object, w, h, nClasses int, file string, lines []int) ([]Object, Problems, bool) {
	var ps Problems
	bad := false
	kept := objs[:0]
	keptLines := make([]int, 0, len(objs))
	keptIdx := make([]int, 0, len(objs))
	for i, o := range objs {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		b := o.Box
		if !finite(b.X0) || !finite(b.Y0) || !finite(b.X1) || !finite(b.Y1) {
			ps.add(file, line, Error, KindBadField, "object %d: box has a non-finite coordinate %v", i, b)
			bad = true
			continue
		}
		if o.Label < 0 || o.Label >= nClasses {
			ps.add(file, line, Error, KindUnknownClass, "object %d: label %d outside the %d classes", i, o.Label, nClasses)
			bad = true
			continue
		}
		if b.Empty() {
			ps.add(file, line, Warning, KindBoxDropped, "object %d: box %s %s; dropped", i, fmtBox(b), emptyReason(b))
			continue
		}
		c := b.Clip(float64(w), float64(h))
		if c != b {
			if c.Empty() {
				ps.add(file, line, Warning, KindBoxDropped, "object %d: box %s lies outside the %dx%d image; dropped", i, fmtBox(b), w, h)
				continue
			}
			ps.add(file, line, Warning, KindBoxClipped, "object %d: box %s crosses the %dx%d image border; clipped to %s", i, fmtBox(b), w, h, fmtBox(c))
			o.Box = c
		}
		if o.Box.W() < 2 || o.Box.H() < 2 {
			ps.add(file, line, Warning, KindBoxTiny, "object %d: box %s is only %gx%g pixels; kept, probably a stray click", i, fmtBox(o.Box), o.Box.W(), o.Box.H())
		}
		kept = append(kept, o)
		keptLines = append(keptLines, line)
		keptIdx = append(keptIdx, i)
	}
	ps = append(ps, findDuplicates(kept, keptLines, keptIdx, file)...)
	return kept, ps, bad
}

// emptyReason says why a box with zero area has none.
func emptyReason(b box.Box) string {
	switch {
	case b.X1 < b.X0 && b.Y1 < b.Y0:
		return "is inverted (right edge left of the left edge, bottom above the top: corners swapped?)"
	case b.X1 < b.X0:
		return fmt.Sprintf("is inverted (right edge %g left of the left edge %g: corners swapped?)", b.X1, b.X0)
	case b.Y1 < b.Y0:
		return fmt.Sprintf("is inverted (bottom edge %g above the top edge %g: corners swapped?)", b.Y1, b.Y0)
	case b.X1 == b.X0:
		return "has zero width"
	}
	return "has zero height"
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// fmtBox prints a half-open pixel box as [x0,y0,x1,y1).
func fmtBox(b box.Box) string {
	return fmt.Sprintf("[%g,%g,%g,%g)", b.X0, b.Y0, b.X1, b.Y1)
}

// CheckImage looks at the image of s under imageRoot as mode says and returns
// the problems: the file name escaping imageRoot, a missing, unreadable,
// corrupt, non-JPEG/PNG or oversized image, or a size differing from s.Width x
// s.Height. When s has no size yet (0), the image's size is stored into it.
// It returns false when the sample must be left out.
func CheckImage(imageRoot string, s *Sample, mode ImageCheck, maxPixels int) (Problems, bool) {
	var ps Problems
	display := path.Join(filepath.ToSlash(imageRoot), s.File)
	if !localName(s.File) {
		display = filepath.ToSlash(imageRoot) + "/" + s.File // not cleaned: show the name as given
		ps.add(display, 0, Error, KindPathEscape, "image file name %q escapes the image folder %s; rejected", s.File, imageRoot)
		return ps, false
	}
	if mode == ImageNone {
		return nil, true
	}
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	f, err := openInRoot(imageRoot, s.File)
	if err != nil {
		ps.addImageError(display, openError(display, err))
		return ps, false
	}
	defer f.Close()
	var w, h int
	if mode == ImageDecode {
		img, err := decodeFile(display, f, maxPixels)
		if err != nil {
			ps.addImageError(display, err)
			return ps, false
		}
		w, h = img.W, img.H
	} else {
		cfg, err := readConfig(display, f)
		if err != nil {
			ps.addImageError(display, err)
			return ps, false
		}
		if int64(cfg.W)*int64(cfg.H) > int64(maxPixels) {
			ps.add(display, 0, Error, KindImageTooLarge, "image is %dx%d = %d pixels, over the limit of %d; rejected before decoding", cfg.W, cfg.H, int64(cfg.W)*int64(cfg.H), maxPixels)
			return ps, false
		}
		w, h = cfg.W, cfg.H
	}
	if s.Width == 0 && s.Height == 0 {
		s.Width, s.Height = w, h
		return ps, true
	}
	if w != s.Width || h != s.Height {
		ps.add(display, 0, Error, KindSizeMismatch, "image is %dx%d but its annotation says %dx%d", w, h, s.Width, s.Height)
		return ps, false
	}
	return ps, true
}

func (ps *Problems) addImageError(file string, err error) {
	var ie *ImageError
	if errors.As(err, &ie) {
		ps.add(file, 0, Error, ie.Kind, "%v", ie.Err)
		return
	}
	ps.add(file, 0, Error, KindImageUnreadable, "%v", err)
}

// localName reports whether a slash-separated relative name stays inside its
// root: not empty, not absolute, no ".." component, no backslash or NUL.
func localName(name string) bool {
	if name == "" || strings.ContainsAny(name, "\\\x00") {
		return false
	}
	return filepath.IsLocal(filepath.FromSlash(name))
}

// parallelFor calls f(0) ... f(n-1) on GOMAXPROCS goroutines and returns
// when all are done. f must only write to its own index's results.
func parallelFor(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// LoadImage decodes the image of sample s of ds (see DecodeImage), confined to
// ds.ImageRoot, and checks that its size matches the annotation. It is what
// the training loaders call; errors are *ImageError.
func LoadImage(ds *Dataset, s *Sample, maxPixels int) (*Image, error) {
	display := path.Join(filepath.ToSlash(ds.ImageRoot), s.File)
	if !localName(s.File) {
		return nil, &ImageError{display, KindPathEscape, fmt.Errorf("image file name %q escapes the image folder", s.File)}
	}
	f, err := openInRoot(ds.ImageRoot, s.File)
	if err != nil {
		return nil, openError(display, err)
	}
	defer f.Close()
	img, err := decodeFile(display, f, maxPixels)
	if err != nil {
		return nil, err
	}
	if img.W != s.Width || img.H != s.Height {
		return nil, &ImageError{display, KindSizeMismatch, fmt.Errorf("image is %dx%d but its annotation says %dx%d", img.W, img.H, s.Width, s.Height)}
	}
	return img, nil
}
