// Package anchor owns YOLO anchor boxes: the Anchor type, YOLOv3's default
// anchors, masks and output strides, the validation of an anchor list and its
// masks, the shape IoU that matches boxes to anchors, and the k-means fit of
// anchors to a dataset's box sizes.
//
// Conventions:
//   - An Anchor is a box size (width, height) in pixels of the network input,
//     whatever that input size is (PaddleDetection does not rescale anchors
//     with the input size). W and H are full widths and heights, not
//     half-sizes. Box sizes handed to Fit and MeanBestIoU are Anchors too.
//   - Anchors are listed smallest first; masks[i] lists the indices into the
//     anchor list of the anchors that output i predicts, in the order of the
//     output's anchor axis, outputs deepest first (strides 32, 16, 8).
//   - The shape IoU of two sizes is the IoU of two boxes of those sizes
//     placed at a common corner.
//
// The package imports the standard library only: no other package of this
// module, and never gorgonia. Everything here is safe to call from several
// goroutines on different inputs.
//
// Imports (make vet checks it): nothing of this module; never gorgonia,
// directly or through another package.
package anchor
