package main

import (
	"errors"
	"fmt"
	"os"
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
		ds, ps := dataset.ReadVOC(s.path, dataset.VOCOptions{Classes: s.classes, Split: s.split, Images: s.images, MaxPixels: s.maxPixels})
		return ds, ps, nil
	case "coco":
		if s.split != "" {
			return nil, nil, cli.UsageError{Err: errors.New("--split applies to VOC only (a COCO file is one split)")}
		}
		ds, ps := dataset.ReadCOCO(s.path, dataset.COCOOptions{ImageRoot: s.imageRoot, Classes: s.classes, Images: s.images, MaxPixels: s.maxPixels})
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
