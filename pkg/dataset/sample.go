package dataset

import "yolodistill/pkg/box"

// Object is one annotated object of an image.
type Object struct {
	Box       box.Box // pixels, half-open xyxy
	Label     int     // index into Dataset.Classes
	Difficult bool    // VOC "difficult": excluded from VOC AP
	Truncated bool    // VOC "truncated" (kept so that VOC round trips are lossless)
	Crowd     bool    // COCO "iscrowd"
	Area      float64 // COCO annotation area (segmentation area); 0 when unknown
	AnnID     int64   // COCO annotation id; 0 when the format has none
}

// Sample is one image and its objects.
type Sample struct {
	ID      int64    // COCO image id, or the index in the split for VOC
	Name    string   // VOC image stem (e.g. "BloodImage_00000"); COCO file name
	File    string   // image path relative to Dataset.ImageRoot, slash-separated
	Width   int      // pixels, from the annotation (checked against the image)
	Height  int      // pixels
	Objects []Object // may be empty
}

// Dataset is a list of samples with their class names.
type Dataset struct {
	ImageRoot string   // folder that Sample.File is relative to
	Classes   []string // label i is Classes[i]
	Samples   []Sample
}
