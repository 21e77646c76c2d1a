package metrics

import (
	"fmt"
	"os"
	"path/filepath"

	"yolodistill/pkg/dataset"
)

// ReadGroundTruth reads ground truth to score a results file against, in
// format "coco" or "voc" (dataset.DetectFormat's answer for path):
//
//   - coco: a COCO instances JSON file, or a folder holding
//     dataset.COCOAnnotationFile (ReadCOCOGroundTruth).
//   - voc: a VOC folder read by dataset.ReadVOC with opt (its Split and
//     Classes; images are never opened), converted by GroundTruthFromDataset:
//     image id = position in the split list, category id = class index + 1,
//     "difficult" objects ignored. warnings counts the reader's warnings
//     (boxes repaired or dropped); a reading error names the folder.
func ReadGroundTruth(path, format string, opt dataset.VOCOptions) (gt *GroundTruth, warnings int, err error) {
	switch format {
	case "coco":
		st, err := os.Stat(path)
		if err != nil {
			return nil, 0, err
		}
		if st.IsDir() {
			path = filepath.Join(path, dataset.COCOAnnotationFile)
		}
		gt, err := ReadCOCOGroundTruth(path)
		return gt, 0, err
	case "voc":
		opt.Images = dataset.ImageNone
		ds, ps := dataset.ReadVOC(path, opt)
		if err := ps.Err(); err != nil {
			return nil, 0, fmt.Errorf("VOC ground truth %s: %w", path, err)
		}
		return GroundTruthFromDataset(ds), ps.Count(dataset.Warning), nil
	}
	return nil, 0, fmt.Errorf("ground truth %s: format %q: want coco or voc", path, format)
}
