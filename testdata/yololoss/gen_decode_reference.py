#!/usr/bin/python3
"""Reference detections for pkg/yolo/decode: Paddle's yolo_box followed by
multiclass_nms (background_label -1, normalized false), written independently
in numpy, float64.

Run: /usr/bin/python3 testdata/yololoss/gen_decode_reference.py > testdata/yololoss/decode_reference.json

Head outputs come from the same 64-bit LCG as gen_reference.py (the Go test
regenerates them). Paddle's boxes are inclusive-corner pixel boxes; they are
written here as half-open boxes [x1, x2+1) x [y1, y2+1), the decoder's
PaddlePixels convention.
"""
import json
import sys

import numpy as np

ANCHORS = [(10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119),
           (116, 90), (156, 198), (373, 326)]
MASKS = [[6, 7, 8], [3, 4, 5], [0, 1, 2]]
STRIDES = [32, 16, 8]
MASK64 = (1 << 64) - 1


def lcg_fill(state, count, amp):
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK64
        u = (state >> 40) / float(1 << 24)
        out[i] = (u * 2.0 - 1.0) * amp
    return out, state


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def yolo_box(x, anchors, C, ds, img_h, img_w, conf_thresh, clip):
    """x: [3*(5+C), H, W] of one image. Returns boxes [M, 4] (inclusive corners) and scores [M, C]."""
    _, H, W = x.shape
    x = x.reshape(3, 5 + C, H, W)
    boxes = np.zeros((3, H, W, 4))
    scores = np.zeros((3, H, W, C))
    for a in range(3):
        aw, ah = anchors[a]
        for k in range(H):
            for l in range(W):
                conf = sigmoid(x[a, 4, k, l])
                if conf < conf_thresh:
                    continue
                cx = (l + sigmoid(x[a, 0, k, l])) * img_w / W
                cy = (k + sigmoid(x[a, 1, k, l])) * img_h / H
                bw = np.exp(x[a, 2, k, l]) * aw * img_w / (ds * W)
                bh = np.exp(x[a, 3, k, l]) * ah * img_h / (ds * H)
                b = [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]
                if clip:
                    b = [max(b[0], 0), max(b[1], 0), min(b[2], img_w - 1), min(b[3], img_h - 1)]
                boxes[a, k, l] = b
                scores[a, k, l] = conf * sigmoid(x[a, 5:, k, l])
    return boxes.reshape(-1, 4), scores.reshape(-1, C)


def jaccard_unnormalized(b1, b2):
    if b2[0] > b1[2] or b2[2] < b1[0] or b2[1] > b1[3] or b2[3] < b1[1]:
        return 0.0
    iw = min(b1[2], b2[2]) - max(b1[0], b2[0]) + 1
    ih = min(b1[3], b2[3]) - max(b1[1], b2[1]) + 1
    inter = iw * ih

    def area(b):
        if b[2] < b[0] or b[3] < b[1]:
            return 0.0
        return (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / (area(b1) + area(b2) - inter)


def multiclass_nms(boxes, scores, score_thr, nms_top_k, keep_top_k, nms_thr):
    """boxes [M, 4], scores [M, C]; returns [(label, score, box)] in Paddle's final order."""
    kept = {}
    for c in range(scores.shape[1]):
        idx = [i for i in range(len(boxes)) if scores[i, c] > score_thr]
        idx.sort(key=lambda i: -scores[i, c])  # stable
        idx = idx[:nms_top_k]
        sel = []
        for i in idx:
            if all(jaccard_unnormalized(boxes[i], boxes[j]) <= nms_thr for j in sel):
                sel.append(i)
        if sel:
            kept[c] = sel
    pairs = [(scores[i, c], c, i) for c in sorted(kept) for i in kept[c]]
    order = sorted(range(len(pairs)), key=lambda k: -pairs[k][0])  # stable
    return [pairs[k] for k in order[:keep_top_k]]


def run_case(name, C, inp, seed, amp, img_w, img_h):
    state = seed
    outs, shapes = [], []
    for s in range(3):
        g = inp // STRIDES[s]
        shape = [1, 3 * (5 + C), g, g]
        vals, state = lcg_fill(state, int(np.prod(shape)), amp)
        outs.append(vals.reshape(shape))
        shapes.append(shape)
    all_b, all_s = [], []
    for s in range(3):
        anchors = [ANCHORS[m] for m in MASKS[s]]
        b, sc = yolo_box(outs[s][0], anchors, C, STRIDES[s], img_h, img_w, 0.01, True)
        all_b.append(b)
        all_s.append(sc)
    boxes, scores = np.concatenate(all_b), np.concatenate(all_s)
    dets = multiclass_nms(boxes, scores, 0.01, 1000, 100, 0.45)
    return {
        "name": name, "num_classes": C, "input": inp, "seed": seed, "amp": amp,
        "orig_w": img_w, "orig_h": img_h, "shapes": shapes,
        "candidates": int((scores > 0.01).sum()),
        "dets": [[float(boxes[i][0]), float(boxes[i][1]), float(boxes[i][2]) + 1, float(boxes[i][3]) + 1,
                  float(sc), int(c)] for sc, c, i in dets],
    }


def main():
    cases = [
        run_case("c3_64_stretch_640x480", 3, 64, 21, 4.0, 640, 480),
        run_case("c2_96_stretch_50x70", 2, 96, 22, 3.0, 50, 70),
        run_case("c1_32_no_keep_cut", 1, 32, 23, 6.0, 45, 30),
    ]
    json.dump({"generator": "testdata/yololoss/gen_decode_reference.py", "cases": cases},
              sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
