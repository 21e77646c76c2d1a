package detector

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"yolodistill/pkg/box"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/draw"
)

// InferFile runs the detector on one image file and draws what it finds:
// the image at path (JPEG or PNG, at most dataset.MaxPixels(d.Config)
// pixels; dataset.DecodeImage) is detected at size x size (DetectImages;
// size <= 0 means eval.size), the detections scoring at least thresh are
// drawn on it (draw.Detections, class names from data.classes, the style
// chosen from the image size) and the picture is saved atomically to
// outDir/base(path) in path's format (draw.Save); outDir must exist.
//
// It returns the drawn detections: half-open xyxy boxes in the image's own
// pixels, in descending score order. An image that cannot be read or
// decoded is a *dataset.ImageError (nothing is written); other errors are
// model or output failures.
func (d *Detector) InferFile(path string, size int, thresh float64, outDir string) ([]box.Scored, error) {
	img, err := dataset.DecodeImage(path, dataset.MaxPixels(d.Config))
	if err != nil {
		return nil, err
	}
	res, err := d.DetectImages([]*dataset.Image{img}, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var keep []box.Scored
	for _, s := range res[0] {
		if s.Score >= thresh {
			keep = append(keep, s)
		}
	}
	canvas := img.RGBA()
	if err := draw.Detections(canvas, keep, d.Config.Data.Classes, draw.Style{}); err != nil {
		return nil, err
	}
	if err := draw.Save(filepath.Join(outDir, filepath.Base(path)), canvas); err != nil {
		return nil, err
	}
	return keep, nil
}

// InferRecord is one detection in detect-infer's JSON output: a COCO result
// record (detect-eval --dets reads it) with two extra fields, the image
// file and the class name.
type InferRecord struct {
	ImageID    int64      `json:"image_id"`    // the image's position in the run, 0-based
	File       string     `json:"file"`        // the input path
	CategoryID int64      `json:"category_id"` // label + 1
	Category   string     `json:"category"`    // classes[label], or "class<label>" out of range
	BBox       [4]float64 `json:"bbox"`        // [x, y, w, h] in the image's pixels
	Score      float64    `json:"score"`
}

// InferRecords returns the records of image id (the file at path) for its
// detections (boxes in the image's pixels; labels index classes), in the
// detections' order.
func InferRecords(id int64, path string, dets []box.Scored, classes []string) []InferRecord {
	recs := make([]InferRecord, 0, len(dets))
	for _, s := range dets {
		name := fmt.Sprintf("class%d", s.Label)
		if s.Label < len(classes) {
			name = classes[s.Label]
		}
		recs = append(recs, InferRecord{ImageID: id, File: path, CategoryID: int64(s.Label + 1), Category: name,
			BBox: [4]float64{s.Box.X0, s.Box.Y0, s.Box.W(), s.Box.H()}, Score: s.Score})
	}
	return recs
}

// MarshalInferRecords returns the records as an indented JSON array (two
// spaces) ending in a newline; no records is "[]\n".
func MarshalInferRecords(recs []InferRecord) ([]byte, error) {
	if recs == nil {
		recs = []InferRecord{}
	}
	data, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
