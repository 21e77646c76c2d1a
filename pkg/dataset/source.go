package dataset

import (
	"errors"

	"yolodistill/pkg/box"
)

// Target is one ground-truth box travelling through the augmentations.
type Target struct {
	Box   box.Box // pixels of the current image, half-open xyxy
	Label int     // class index
	Score float64 // mixup weight: 1 without mixup
}

// TargetsOf returns the objects of a sample as targets with score 1.
func TargetsOf(objs []Object) []Target {
	t := make([]Target, len(objs))
	for i, o := range objs {
		t[i] = Target{Box: o.Box, Label: o.Label, Score: 1}
	}
	return t
}

// NormCXCYWH returns the target's box as centre x, centre y, width, height,
// each divided by the input size (the YOLO loss's normalised form).
func (t Target) NormCXCYWH(size int) [4]float32 {
	s := float64(size)
	cx, cy := t.Box.Center()
	return [4]float32{float32(cx / s), float32(cy / s), float32(t.Box.W() / s), float32(t.Box.H() / s)}
}

// Source gives a loader its samples: Len of them, each decoded on demand.
// Load must be safe for concurrent use and return the same data every time.
type Source interface {
	Len() int
	// Load returns sample i's pixels and targets (pixels, score 1). The
	// caller does not modify them.
	Load(i int) (*Image, []Target, error)
}

// DatasetSource serves a Dataset's samples through LoadImage (decoding,
// confinement to the image root, size check against the annotation).
type DatasetSource struct {
	DS        *Dataset
	MaxPixels int // image size limit (DefaultMaxPixels when <= 0)
}

// Len is the number of samples.
func (s DatasetSource) Len() int { return len(s.DS.Samples) }

// Load decodes sample i; its targets are all its objects (difficult and
// crowd ones included, as PaddleDetection's YOLOv3 reader keeps them).
func (s DatasetSource) Load(i int) (*Image, []Target, error) {
	sm := &s.DS.Samples[i]
	img, err := LoadImage(s.DS, sm, s.MaxPixels)
	if err != nil {
		return nil, nil, err
	}
	return img, TargetsOf(sm.Objects), nil
}

// Skip is an image a loader passed over because it could not be loaded: the
// file is missing, unreadable, truncated or corrupt, or its size differs from
// its annotation. Err is the *ImageError, which names the file.
type Skip struct {
	Index int   // the sample's index in the source
	Err   error // a *ImageError
}

// File is the image file Err names ("" when it names none).
func (s Skip) File() string {
	var ie *ImageError
	if errors.As(s.Err, &ie) {
		return ie.File
	}
	return ""
}

// SampleError is an error loading sample Index of a source.
type SampleError struct {
	Index int
	Err   error
}

func (e *SampleError) Error() string { return e.Err.Error() }

// Unwrap returns the load error.
func (e *SampleError) Unwrap() error { return e.Err }

// Skippable reports whether a Source.Load error is about the image itself (a
// *ImageError): the loader skips such images instead of failing.
func Skippable(err error) bool {
	var ie *ImageError
	return errors.As(err, &ie)
}

// Without returns a copy of ds without the skipped samples (Skip.Index
// indexes ds.Samples), for scoring detections of the images that were
// loaded. ds itself is returned when skips is empty.
func (ds *Dataset) Without(skips []Skip) *Dataset {
	if len(skips) == 0 {
		return ds
	}
	drop := make(map[int]bool, len(skips))
	for _, s := range skips {
		drop[s.Index] = true
	}
	out := &Dataset{ImageRoot: ds.ImageRoot, Classes: ds.Classes, Samples: make([]Sample, 0, len(ds.Samples))}
	for i, s := range ds.Samples {
		if !drop[i] {
			out.Samples = append(out.Samples, s)
		}
	}
	return out
}
