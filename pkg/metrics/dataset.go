package metrics

import "yolodistill/pkg/dataset"

// GroundTruthFromDataset converts a dataset (VOC or COCO, as pkg/dataset
// reads it) to COCO-form ground truth, the way pkg/dataset's COCO writer
// numbers things: image id = Sample.ID, category id = label+1 with the class
// name, bbox [X0, Y0, X1-X0, Y1-Y0] from the half-open box, area = the
// object's COCO Area when known, else the box area, annotation id = AnnID or
// a running number, Crowd from Object.Crowd and Ignore from Object.Difficult
// (so VOC "difficult" objects are ignored by COCO AP and excluded by VOC AP).
// Detections scored against it must use the same image and category ids.
func GroundTruthFromDataset(ds *dataset.Dataset) *GroundTruth {
	gt := &GroundTruth{}
	for i, c := range ds.Classes {
		gt.Categories = append(gt.Categories, Category{ID: int64(i + 1), Name: c})
	}
	used := make(map[int64]bool)
	for _, s := range ds.Samples {
		for _, o := range s.Objects {
			if o.AnnID != 0 {
				used[o.AnnID] = true
			}
		}
	}
	next := int64(1)
	for _, s := range ds.Samples {
		gt.Images = append(gt.Images, Image{ID: s.ID, FileName: s.File, Width: s.Width, Height: s.Height})
		for _, o := range s.Objects {
			id := o.AnnID
			if id == 0 {
				for used[next] {
					next++
				}
				id = next
				used[id] = true
			}
			w, h := o.Box.X1-o.Box.X0, o.Box.Y1-o.Box.Y0
			area := o.Area
			if area == 0 {
				area = w * h
			}
			gt.Annotations = append(gt.Annotations, Annotation{
				ID: id, ImageID: s.ID, CategoryID: int64(o.Label + 1),
				BBox: [4]float64{o.Box.X0, o.Box.Y0, w, h}, Area: area,
				Crowd: o.Crowd, Ignore: o.Difficult,
			})
		}
	}
	return gt
}
