package dataset

import (
	"fmt"

	"yolodistill/pkg/anchor"
)

// BoxSizes returns the sizes of ds's boxes once every image is resized to
// size x size pixels by stretching (no letterbox), as the YOLOv3 reader does:
// W = (X1-X0) * size / Sample.Width, H = (Y1-Y0) * size / Sample.Height,
// ready for anchor.Fit and anchor.MeanBestIoU. Crowd boxes (COCO iscrowd,
// never a training target) and boxes with zero area are left out; difficult
// boxes are kept. Samples are taken in order, objects in order. It panics if
// size <= 0.
func BoxSizes(ds *Dataset, size int) []anchor.Anchor {
	if size <= 0 {
		panic(fmt.Sprintf("dataset.BoxSizes: size %d <= 0", size))
	}
	var out []anchor.Anchor
	for _, s := range ds.Samples {
		if s.Width <= 0 || s.Height <= 0 {
			continue
		}
		sx, sy := float64(size)/float64(s.Width), float64(size)/float64(s.Height)
		for _, o := range s.Objects {
			if o.Crowd || o.Box.Empty() {
				continue
			}
			out = append(out, anchor.Anchor{o.Box.W() * sx, o.Box.H() * sy})
		}
	}
	return out
}
