// Package metrics scores object detections: Pascal VOC AP at one IoU
// threshold (PaddleDetection's `11point` and `integral` modes) and COCO box AP
// with the exact semantics of pycocotools' COCOeval (iouType "bbox").
//
// Conventions.
//
// COCO inputs (GroundTruth, Detection) keep COCO's own box form: BBox is
// [x, y, w, h] in pixels, top-left origin, x to the right, y down, so the box
// covers the half-open range [x, x+w) x [y, y+h). Area ranges use the ground
// truth's Area field (the segmentation area), not w*h, as COCOeval does; a
// detection's area is w*h, as COCO.loadRes sets it. IoU between boxes is
// computed like pycocotools' bbIou (crowd ground truth: intersection over the
// detection's area).
//
// VOC inputs use box.Box (half-open pixel xyxy). Plain areas on half-open
// boxes equal PaddleDetection's "+1" areas on VOC's inclusive pixel
// coordinates (inclusive xmax = X1-1), so the default VOC evaluation needs no
// +1; VOCParams.PlusOne applies PaddleDetection's formula literally for callers
// that hold inclusive coordinates.
//
// Score turns a results file into a Report: the table, the JSON and the
// precision/recall curves detect-eval prints (pictures of the curves are
// drawn by the subpackage prplot, so that gonum/plot stays out of the tools
// that only score); ReadGroundTruth reads COCO or VOC ground truth for it.
//
// The package is plain Go and safe to call from several goroutines on
// different inputs.
//
// Imports (make vet checks it): of this module only pkg/box, pkg/dataset;
// never gorgonia, directly or through another package.
package metrics
