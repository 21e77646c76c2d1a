package dataset

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"yolodistill/pkg/atomicfile"
)

// COCOWriteOptions configure WriteCOCO.
type COCOWriteOptions struct {
	Images ImageMode // how image files get into DIR/images/
}

type cocoOut struct {
	Info        cocoInfo     `json:"info"`
	Licenses    []struct{}   `json:"licenses"`
	Images      []cocoImgOut `json:"images"`
	Annotations []cocoAnnOut `json:"annotations"`
	Categories  []cocoCatOut `json:"categories"`
}

type cocoInfo struct {
	Description string `json:"description"`
}

type cocoImgOut struct {
	ID       int64  `json:"id"`
	FileName string `json:"file_name"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
}

type cocoAnnOut struct {
	ID           int64       `json:"id"`
	ImageID      int64       `json:"image_id"`
	CategoryID   int         `json:"category_id"`
	BBox         [4]float64  `json:"bbox"`
	Area         float64     `json:"area"`
	IsCrowd      int         `json:"iscrowd"`
	Segmentation [][]float64 `json:"segmentation"`
	Difficult    int         `json:"difficult,omitempty"`
	Truncated    int         `json:"truncated,omitempty"`
}

type cocoCatOut struct {
	ID            int    `json:"id"`
	Name          string `json:"name"`
	Supercategory string `json:"supercategory"`
}

// MarshalCOCO returns ds as COCO instances JSON (indented, deterministic: same
// dataset, same bytes). Categories get id = label+1 in class order. Images
// keep Sample.ID (which must be unique). Annotations keep Object.AnnID when
// every one is non-zero and unique, else all are numbered 1, 2, ... in
// dataset order. bbox is [X0, Y0, X1-X0, Y1-Y0]; area is Object.Area, or the
// box area when that is 0; segmentation is the box as one polygon. VOC's
// difficult and truncated flags are written as extra annotation keys
// ("difficult": 1) when set, which COCO tools ignore and ReadCOCO reads back.
func MarshalCOCO(ds *Dataset) ([]byte, error) {
	out := cocoOut{
		Info:        cocoInfo{Description: "written by yolodistill dataset"},
		Licenses:    []struct{}{},
		Images:      []cocoImgOut{},
		Annotations: []cocoAnnOut{},
		Categories:  []cocoCatOut{},
	}
	for i, c := range ds.Classes {
		out.Categories = append(out.Categories, cocoCatOut{ID: i + 1, Name: c, Supercategory: "none"})
	}
	keepIDs := true
	annSeen := map[int64]bool{}
	imgSeen := map[int64]bool{}
	for i := range ds.Samples {
		s := &ds.Samples[i]
		if imgSeen[s.ID] {
			return nil, fmt.Errorf("sample %d (%s): image id %d used twice", i, s.File, s.ID)
		}
		imgSeen[s.ID] = true
		if !localName(s.File) {
			return nil, fmt.Errorf("sample %d: file name %q escapes the image folder", i, s.File)
		}
		for _, o := range s.Objects {
			if o.AnnID == 0 || annSeen[o.AnnID] {
				keepIDs = false
			}
			annSeen[o.AnnID] = true
		}
	}
	next := int64(1)
	for i := range ds.Samples {
		s := &ds.Samples[i]
		out.Images = append(out.Images, cocoImgOut{ID: s.ID, FileName: s.File, Width: s.Width, Height: s.Height})
		for j, o := range s.Objects {
			if o.Label < 0 || o.Label >= len(ds.Classes) {
				return nil, fmt.Errorf("%s: object %d: label %d outside the %d classes", s.File, j, o.Label, len(ds.Classes))
			}
			b := o.Box
			a := cocoAnnOut{
				ID: o.AnnID, ImageID: s.ID, CategoryID: o.Label + 1,
				BBox:         [4]float64{b.X0, b.Y0, b.X1 - b.X0, b.Y1 - b.Y0},
				Area:         o.Area,
				Segmentation: [][]float64{{b.X0, b.Y0, b.X1, b.Y0, b.X1, b.Y1, b.X0, b.Y1}},
			}
			if !keepIDs {
				a.ID = next
				next++
			}
			if a.Area == 0 {
				a.Area = b.Area()
			}
			if o.Crowd {
				a.IsCrowd = 1
			}
			if o.Difficult {
				a.Difficult = 1
			}
			if o.Truncated {
				a.Truncated = 1
			}
			out.Annotations = append(out.Annotations, a)
		}
	}
	data, err := json.MarshalIndent(&out, "", " ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// WriteCOCO writes ds into dir (created if needed) as DIR/annotations.json
// (see MarshalCOCO) and the images under DIR/images/<Sample.File> as
// opt.Images says. Every file is written atomically.
func WriteCOCO(dir string, ds *Dataset, opt COCOWriteOptions) error {
	data, err := MarshalCOCO(ds)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if opt.Images == ImagesSymlink {
		if err := linkImageFolder(ds.ImageRoot, filepath.Join(dir, COCOImages)); err != nil {
			return err
		}
	}
	for i := range ds.Samples {
		if err := placeImage(ds.ImageRoot, ds.Samples[i].File, filepath.Join(dir, COCOImages), opt.Images); err != nil {
			return err
		}
	}
	return atomicfile.WriteBytes(filepath.Join(dir, COCOAnnotationFile), data)
}
