// Package loss is the YOLOv3 training loss exactly as PaddleDetection computes
// it, on plain float32 slices: the target assignment (Matcher) and the
// criterion (Criterion), with the analytic gradient of the loss with respect
// to the head outputs. It imports neither gorgonia nor the model: the lead
// wraps Criterion.Forward into a graph op.
//
// # Reference
//
// Two code paths of PaddleDetection release/0.3 are reproduced; Config.Path
// selects one. (The yolo_loss.py read was a later 0.x revision that adds
// iou_loss, iou_aware_loss and match_score options; with those off, the two
// paths are the ones described here.)
//
//   - OperatorPath: ppdet/modeling/losses/yolo_loss.py YOLOv3Loss.__call__
//     with use_fine_grained_loss=false, which calls fluid.layers.yolov3_loss
//     per output and sums reduce_mean(loss) over the outputs. The operator is
//     Paddle's paddle/fluid/operators/detection/yolov3_loss_op.h
//     (Yolov3LossKernel, Yolov3LossGradKernel; phi/kernels/cpu/yolo_loss_kernel.cc
//     in Paddle 2.x computes the same).
//   - FineGrainedPath: YOLOv3Loss._get_fine_grained_loss with the dense targets
//     of ppdet/data/transform/batch_operators.py Gt2YoloTarget and the
//     objectness ignore of YOLOv3Loss._calc_obj_loss (fluid.layers.yolo_box +
//     iou_similarity).
//
// # Output layout
//
// A head output of scale s is outs[s] with shape [N, A*(5+C), H, W], NCHW,
// where A = len(Masks[s]) and, per anchor a, the 5+C channels a*(5+C)+0..4+C
// are the logits x, y, w, h, obj, cls[0..C-1] (PaddleDetection's layout).
//
// # Ground truth
//
// A GT is normalised to the network input: CX, CY the box centre and W, H its
// size, as fractions of the input width (x, w) and height (y, h), so a box
// inside the image has 0 <= CX-W/2 and CX+W/2 <= 1. Score is the mixup weight
// (1 without mixup). This is PaddleDetection's gt_bbox after its
// BboxXYXY2XYWH + NormalizeBox transforms, and gt_score.
//
// # Target assignment (both paths)
//
// Each valid GT is matched to the single anchor, among all anchors (all nine
// by default, not only those of one output), whose shape IoU with the box is
// highest: IoU of [0,0,W,H] with [0,0,anchor_w/inputW, anchor_h/inputH],
// strictly greater than the best so far, so the first anchor wins ties. If
// that anchor is in Masks[s] at position a, cell (gi, gj) = (int(CX*W_s),
// int(CY*H_s)) of output s, anchor a, is positive with targets
//
//	tx = CX*W_s - gi, ty = CY*H_s - gj,
//	tw = log(W*inputW/anchor_w), th = log(H*inputH/anchor_h),
//	tscale = 2 - W*H.
//
// Validity: OperatorPath skips a GT with W < 1e-6 or H < 1e-6 (GtValid in the
// operator) but keeps a GT with Score 0; FineGrainedPath skips a GT with
// W <= 0, H <= 0 or Score <= 0 (Gt2YoloTarget).
//
// # OperatorPath loss (yolov3_loss_op.h), per image, per output
//
//   - ignore: every prediction (anchor a, cell k,l) is decoded like yolo_box,
//     from its logits x, y, w, h as cx = (l + sigmoid(x)*sxy - (sxy-1)/2)/W_s,
//     bw = exp(w)*anchor_w/inputW (likewise cy, bh); if its best centre-form IoU with any valid GT of the
//     image is > IgnoreThresh its objectness mask is -1 (ignored).
//   - positives, GT by GT in order: location loss (2 - W*H)*score *
//     [SCE(x, tx) + SCE(y, ty) + |w - tw| + |h - th|] (SCE = sigmoid cross
//     entropy of a logit against a probability); objectness mask of the cell
//     := score (overwriting -1 or an earlier GT's score); class loss score *
//     sum_c SCE(cls_c, c == label ? pos : neg), pos = 1-delta, neg = delta,
//     delta = 0 without label smoothing, else min(1/C, 1/40) (Paddle since
//     Fluid 1.5, which PaddleDetection release/0.3 requires: SmoothCap =
//     PaddleSmoothCap, what pkg/train uses) or 1/C (the 2019 operator,
//     SmoothCap 0).
//     Two GTs on the same anchor and cell both add their location and class
//     losses (the forward accumulates); the objectness target is the last
//     one's score.
//   - objectness: mask > 1e-5: SCE(obj, 1)*mask; mask == 0 (> -0.5):
//     SCE(obj, 0); mask -1: nothing. A positive whose score is 0 is therefore
//     a plain negative.
//
// The per-image loss is the sum of all of this; yolo_loss.py takes
// reduce_mean over the batch per output and sums the outputs. Parts splits the
// same total into xy, wh, obj and cls (the operator returns only the total).
//
// ScaleXY (scale_x_y) only moves the decoded box used for the ignore test, as
// in Paddle 2.x's operator; the location loss is unchanged. PaddleDetection
// release/0.3 does not pass it (a TODO in yolo_loss.py), so 1 is the default;
// its fine-grained path ignores it too, and so does FineGrainedPath here.
//
// Gradient: Criterion returns the exact gradient of the forward loss. Paddle's
// grad kernel differs in one case: when two GTs share an anchor and cell it
// assigns (=) instead of accumulating (+=) the location and class gradients,
// so only the last GT's gradient survives although the forward counts both.
// Config.PaddleGrad reproduces that kernel exactly; the default does not.
// At |w - tw| == 0 the L1 gradient is -1 (Paddle's L1LossGrad, x > y ? 1 : -1).
//
// # FineGrainedPath loss (yolo_loss.py _get_fine_grained_loss)
//
// Gt2YoloTarget builds dense targets per output [A, 6+C, H, W]: GT by GT, the
// positive cell's x, y, w, h, tscale and tobj (= score) are overwritten by
// each later GT on the same anchor and cell, but the one-hot class channel is
// only ever set, so the class target of a shared cell has a 1 for every GT
// class that landed there. There is no label smoothing on this path. Then,
// per image and output, summed over anchors and cells:
//
//	loss_xy  = sum (SCE(x, tx) + SCE(y, ty)) * tscale * tobj
//	loss_wh  = sum (|w - tw| + |h - th|) * tscale * tobj
//	loss_obj = sum SCE(obj, tobj > 0) * tobj
//	         + sum SCE(obj, 0) * (tobj == 0) * (maxIoU <= IgnoreThresh)
//	loss_cls = sum_c SCE(cls_c, tcls_c) * tobj
//
// maxIoU is the IoU (xyxy, normalised, no +1: iou_similarity) of the
// prediction decoded by yolo_box (img_size 1, no clipping) with every GT of
// the image, including those the target skipped. Each part is reduce_mean over
// the batch and summed over the outputs; the trainer adds the four parts.
// The gradient is autograd's: sign(w - tw) for the L1 terms (0 at equality),
// the ignore mask and targets are constants.
//
// # Deviations
//
//   - Paddle's operator uses input_size = downsample*H and grid_size = H for
//     both axes; this package uses W for x and H for y. They are the same on
//     the square inputs PaddleDetection trains with; on non-square inputs this
//     package is the consistent generalisation (as Gt2YoloTarget and Paddle
//     2.x's yolo_box are).
//   - A GT centre at exactly 1.0 would index cell W (out of bounds in Paddle);
//     the cell is clamped to W-1 (and likewise a negative centre to 0).
//   - Gt2YoloTarget's iou_thresh < 1 option (extra anchors per GT, added after
//     release/0.3) and YOLOv3Loss's iou_loss / iou_aware_loss / match_score
//     are not implemented.
//   - Sums are accumulated in float64; per-element values are float32.
//
// Imports (make vet checks it): of this module only pkg/anchor; never
// gorgonia, directly or through another package.
package loss
