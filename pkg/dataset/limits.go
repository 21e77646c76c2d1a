package dataset

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"yolodistill/pkg/config"
)

// Limits bound what an annotation can make a reader do, so that a hostile or
// broken file costs a clear error instead of memory or time. The zero value
// takes the defaults; a negative field means no limit.
type Limits struct {
	// MaxObjects is the most objects one image may have (DefaultMaxObjects
	// when 0): an image with more is an error (KindTooManyObjects), found
	// while the annotation is parsed, and left out.
	MaxObjects int
	// MaxFileBytes is the largest annotation file (a VOC XML file, a COCO
	// JSON file, a VOC split list or class list) read (DefaultMaxFileBytes
	// when 0): a larger one is an error (KindFileTooLarge) before it is read.
	MaxFileBytes int64
}

// Defaults of Limits, as the configuration's data.max_objects and
// data.max_annotation_mb.
const (
	DefaultMaxObjects   = 10000
	DefaultMaxFileBytes = 1 << 30
)

// LimitsOf converts data.max_objects and data.max_annotation_mb (0: no limit).
func LimitsOf(cfg *config.Config) Limits {
	l := Limits{MaxObjects: cfg.Data.MaxObjects, MaxFileBytes: int64(cfg.Data.MaxAnnotationMB) << 20}
	if l.MaxObjects == 0 {
		l.MaxObjects = -1
	}
	if l.MaxFileBytes == 0 {
		l.MaxFileBytes = -1
	}
	return l
}

func (l Limits) maxObjects() int {
	switch {
	case l.MaxObjects == 0:
		return DefaultMaxObjects
	case l.MaxObjects < 0:
		return int(^uint(0) >> 1)
	}
	return l.MaxObjects
}

func (l Limits) maxFileBytes() int64 {
	switch {
	case l.MaxFileBytes == 0:
		return DefaultMaxFileBytes
	case l.MaxFileBytes < 0:
		return math.MaxInt64
	}
	return l.MaxFileBytes
}

// tooLargeError is readLimited's refusal of a file over the limit.
type tooLargeError struct {
	size  int64 // the file's size, or -1 when it only showed while reading
	limit int64
}

func (e *tooLargeError) Error() string {
	if e.size < 0 {
		return fmt.Sprintf("holds more than the limit of %s; not read", byteSize(e.limit))
	}
	return fmt.Sprintf("is %s, over the limit of %s; not read", byteSize(e.size), byteSize(e.limit))
}

// readLimited reads the file at path unless it holds more than max bytes
// (checked before reading, and again while reading, for files that grow or
// report no size). A folder is an error saying so.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a folder, not a file", path)
	}
	if st.Size() > max {
		return nil, &tooLargeError{st.Size(), max}
	}
	r := io.Reader(f)
	if max < math.MaxInt64 {
		r = io.LimitReader(f, max+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, &tooLargeError{-1, max}
	}
	return data, nil
}

// addReadError records a failure of readLimited as a problem of file: a file
// over the size limit (KindFileTooLarge, naming the configuration key and
// flag that raise it) or an unreadable one (KindMissingFile); what says what
// the file is.
func (ps *Problems) addReadError(file string, line int, what string, err error) {
	var tl *tooLargeError
	if errors.As(err, &tl) {
		ps.add(file, line, Error, KindFileTooLarge, "%s %v (data.max_annotation_mb; dataset's --max-annotation-mb)", what, err)
		return
	}
	ps.add(file, line, Error, KindMissingFile, "cannot read %s: %v", what, err)
}

// byteSize prints a byte count in B, KiB, MiB or GiB.
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
