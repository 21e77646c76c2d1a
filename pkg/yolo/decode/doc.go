// Package decode turns YOLOv3 head outputs into scored boxes in original
// image pixels, as PaddleDetection's YOLOv3Head.get_prediction does:
// fluid.layers.yolo_box on every output, then fluid.layers.multiclass_nms
// (PaddleDetection release/0.3 ppdet/modeling/anchor_heads/yolo_head.py;
// Paddle paddle/fluid/operators/detection/yolo_box_op.h and
// multiclass_nms_op.cc).
//
// # yolo_box
//
// Output s has shape [N, A*(5+C), H, W] (per anchor x, y, w, h, obj, cls...).
// For anchor a (anchor size aw x ah input pixels) and cell (row k, column l):
//
//	cx = (l + sigmoid(x)*sxy - (sxy-1)/2) / W    (fraction of the input width)
//	cy = (k + sigmoid(y)*sxy - (sxy-1)/2) / H
//	w  = exp(w) * aw / inputW,  h = exp(h) * ah / inputH
//	conf = sigmoid(obj); the prediction is dropped when conf < ConfThresh
//	score[c] = conf * sigmoid(cls[c])
//
// Paddle scales the normalised box by img_size, the original image size,
// which is right because PaddleDetection's YOLOv3 readers stretch the image to
// the input size (ResizeImage, no aspect ratio kept). Here a Placement says how
// the original image lies in the input (input pixel = original pixel * Scale
// + Pad), so stretch and letterbox resizes both map back; Stretch gives
// Paddle's mapping.
//
// # multiclass_nms (background_label -1, normalized false)
//
// No class is background. Per class, the candidates with score >
// ScoreThresh (strict) are sorted by descending score (stable: output order,
// then anchor, row, column), cut to NMSTopK, and greedily kept when their IoU
// with every box kept before is <= NMSThresh (nms_eta 1). All kept boxes are
// sorted by score (stable, classes in ascending order first) and cut to
// KeepTopK. pkg/box.NMS does exactly this once the strict threshold is
// applied (candidates are filtered with > before it is called).
//
// # Pixel convention
//
// Returned boxes are pkg/box's half-open pixel boxes of the original image.
// Paddle instead treats the decoded corners (x1, y1, x2, y2) as inclusive
// pixel indices: with clip_bbox it clips x2 to img_width-1, and
// normalized=false NMS uses areas (x2-x1+1)*(y2-y1+1). With PaddlePixels the
// decoder reproduces that exactly: corners clipped to [0, W-1] and the box
// returned as [x1, x2+1) x [y1, y2+1), so box.IoU equals Paddle's IoU for
// boxes whose inclusive corners overlap. Paddle's JaccardOverlap returns 0
// early when they do not (x1 of one box > x2 of the other), although its +1
// formula would give a positive overlap for fractional corners less than a
// pixel apart; so with PaddlePixels Detect runs that exact IoU in its own
// overlap measure through pkg/box.NMSWith instead of pkg/box.NMS. Without it (the default) the decoded box is the continuous one,
// [cx-w/2, cx+w/2), clipped to [0, W] x [0, H], consistent with GT boxes read
// as half-open boxes; IoUs then differ from Paddle's by the +1 only.
//
// Imports (make vet checks it): of this module only pkg/anchor, pkg/box;
// never gorgonia, directly or through another package.
package decode
