package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"yolodistill/pkg/cli"
	"yolodistill/pkg/dataset"
)

// source names a dataset on the command line and how to read it.
type source struct {
	format    string
	path      string
	split     string
	classes   []string
	imageRoot string
	images    dataset.ImageCheck
	maxPixels int
	limits    dataset.Limits
}

// limitFlags bound what an annotation can make the readers do: the flags of
// the configuration keys data.max_objects and data.max_annotation_mb, with
// the same defaults.
type limitFlags struct {
	MaxObjects      int `name:"max-objects" default:"10000" placeholder:"N" help:"an image with more objects (boxes) than this is an error and left out, before its boxes are checked (0: no limit); the configuration's data.max_objects."`
	MaxAnnotationMB int `name:"max-annotation-mb" default:"1024" placeholder:"MB" help:"refuse annotation files (VOC XML, COCO JSON, split lists) larger than this many MiB before reading them (0: no limit); the configuration's data.max_annotation_mb."`
}

// limits checks the flags and converts them (0: no limit).
func (l limitFlags) limits() (dataset.Limits, error) {
	if l.MaxObjects < 0 || l.MaxAnnotationMB < 0 {
		return dataset.Limits{}, cli.Usagef("--max-objects %d, --max-annotation-mb %d: want 0 (no limit) or more", l.MaxObjects, l.MaxAnnotationMB)
	}
	out := dataset.Limits{MaxObjects: l.MaxObjects, MaxFileBytes: int64(l.MaxAnnotationMB) << 20}
	if out.MaxObjects == 0 {
		out.MaxObjects = -1
	}
	if out.MaxFileBytes == 0 {
		out.MaxFileBytes = -1
	}
	return out, nil
}

// formatName is the format given, or else the one DetectFormat sees at the path.
func (s source) formatName() (string, error) {
	if s.format != "" {
		return s.format, nil
	}
	return dataset.DetectFormat(s.path)
}

// read reads the dataset with ReadVOC or ReadCOCO, the format guessed from
// the path when not given. A flag that does not apply to the format, or an
// unknown format, is a cli.UsageError; a path that does not exist is an error.
func (s source) read() (*dataset.Dataset, dataset.Problems, error) {
	format, err := s.formatName()
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(s.path); err != nil {
		return nil, nil, err
	}
	switch format {
	case "voc":
		if s.imageRoot != "" {
			return nil, nil, cli.UsageError{Err: errors.New("--image-root applies to COCO only (VOC images are in JPEGImages/)")}
		}
		ds, ps := dataset.ReadVOC(s.path, dataset.VOCOptions{Classes: s.classes, Split: s.split, Images: s.images, MaxPixels: s.maxPixels, Limits: s.limits})
		return ds, ps, nil
	case "coco":
		if s.split != "" {
			return nil, nil, cli.UsageError{Err: errors.New("--split applies to VOC only (a COCO file is one split)")}
		}
		ds, ps := dataset.ReadCOCO(s.path, dataset.COCOOptions{ImageRoot: s.imageRoot, Classes: s.classes, Images: s.images, MaxPixels: s.maxPixels, Limits: s.limits})
		return ds, ps, nil
	}
	return nil, nil, cli.UsageError{Err: fmt.Errorf("format %q: want voc or coco", format)}
}

func splitClasses(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, c := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(c))
	}
	return out
}

// wholeFileErrors returns the errors of ps that concern a whole input file
// rather than one image: a missing, unreadable or oversized split list,
// class list, annotation folder or COCO JSON file, or a COCO JSON syntax
// error (nothing of the file is read). Errors about one image's annotation
// (VOC XML files under Annotations/, COCO records with a line) are not among
// them: --skip-bad leaves those images out.
func wholeFileErrors(ps dataset.Problems, format, path string) dataset.Problems {
	annotations := filepath.Join(path, dataset.VOCAnnotations) + string(filepath.Separator)
	var out dataset.Problems
	for _, p := range ps {
		if p.Severity != dataset.Error {
			continue
		}
		switch p.Kind {
		case dataset.KindMissingFile, dataset.KindFileTooLarge:
			if p.Line == 0 && !(format == "voc" && strings.HasPrefix(p.File, annotations)) {
				out = append(out, p)
			}
		case dataset.KindSyntax:
			if format == "coco" {
				out = append(out, p)
			}
		}
	}
	return out
}
