#!/usr/bin/python3
"""Reference values for pkg/yolo/loss: PaddleDetection's YOLOv3 loss, both paths,
written independently in PyTorch (float64, autograd for the gradients).

Run: /usr/bin/python3 testdata/yololoss/gen_reference.py > testdata/yololoss/reference.json

Head outputs are not stored: they come from a 64-bit LCG that the Go test
reimplements (lcg_fill), plus a short list of overrides that place some
predictions exactly on ground-truth boxes (so that the ignore threshold fires).

Paths (see pkg/yolo/loss/doc.go for the Paddle sources):
  operator     fluid.layers.yolov3_loss (yolov3_loss_op.h), reduce_mean over the
               batch, summed over outputs
  fine-grained YOLOv3Loss._get_fine_grained_loss on Gt2YoloTarget targets
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

ANCHORS = [(10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119),
           (116, 90), (156, 198), (373, 326)]
MASKS = [[6, 7, 8], [3, 4, 5], [0, 1, 2]]
STRIDES = [32, 16, 8]
INPUT = 128
N = 2
MASK64 = (1 << 64) - 1


def lcg_fill(state, count, amp):
    """count values uniform in [-amp, amp), float32-exact; returns (values, state)."""
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK64
        u = (state >> 40) / float(1 << 24)
        out[i] = (u * 2.0 - 1.0) * amp
    return out, state


def f32(v):
    return float(np.float32(v))


def shape_iou(gw, gh, aw, ah):
    inter = min(gw, aw) * min(gh, ah)
    return inter / (gw * gh + aw * ah - inter)


def best_anchor(gw, gh):
    best, best_iou = -1, 0.0
    for i, (aw, ah) in enumerate(ANCHORS):
        iou = shape_iou(gw, gh, aw / INPUT, ah / INPUT)
        if iou > best_iou:
            best, best_iou = i, iou
    return best


def make_gts(rng):
    """Two images of boxes (cx, cy, w, h, label, score), normalised, float32 values."""
    def ok_centre(v):
        # keep v*G away from integers for every grid G, so int() is unambiguous
        return all(abs(v * g - round(v * g)) > 1e-3 for g in (4, 8, 16))

    def rand_box(C):
        while True:
            cx, cy = rng.uniform(0.05, 0.95, 2)
            w, h = rng.uniform(0.04, 0.9, 2)
            cx, cy, w, h = f32(cx), f32(cy), f32(w), f32(h)
            if ok_centre(cx) and ok_centre(cy):
                return [cx, cy, w, h, int(rng.integers(0, C)), 1.0]
    return rand_box


def gts_for(rng, C):
    rb = make_gts(rng)
    im0 = [rb(C) for _ in range(5)]
    # same anchor and cell as im0[0], another label: shared positive
    b = list(im0[0])
    b[0] = f32(b[0] + 0.004)
    b[2] = f32(b[2] * 1.02)
    b[4] = (b[4] + 1) % C
    im0.append(b)
    im0[2][5] = f32(0.6)  # mixup score
    im1 = [rb(C) for _ in range(6)]
    im1[3][5] = f32(0.35)  # mixup score
    im1.append([f32(0.5), f32(0.5), 0.0, f32(0.2), 0, 1.0])  # zero width: invalid
    z = rb(C)
    z[5] = 0.0  # score 0 (operator: valid, forced negative; fine: skipped)
    im1.append(z)
    return [im0, im1]


def base_outputs(C, seed, amp):
    outs, shapes = [], []
    state = seed
    for s in range(3):
        g = INPUT // STRIDES[s]
        shape = [N, 3 * (5 + C), g, g]
        vals, state = lcg_fill(state, int(np.prod(shape)), amp)
        outs.append(vals.reshape(shape))
        shapes.append(shape)
    return outs, shapes


def overrides_for(outs, gts, C):
    """Put every anchor of the GT's cell, on every output, right on the GT box
    (w, h logits +0.05 so L1 terms are not at their kink)."""
    ov = []
    for i, j in ((0, 0), (1, 1), (0, 3)):
        cx, cy, w, h = gts[i][j][:4]
        for s in range(3):
            g = INPUT // STRIDES[s]
            gi, gj = int(cx * g), int(cy * g)
            tx, ty = cx * g - gi, cy * g - gj
            for a in range(3):
                aw, ah = ANCHORS[MASKS[s][a]]
                vals = [math.log(tx / (1 - tx)), math.log(ty / (1 - ty)),
                        math.log(w * INPUT / aw) + 0.05, math.log(h * INPUT / ah) + 0.05]
                for e, v in enumerate(vals):
                    ch = a * (5 + C) + e
                    idx = ((i * 3 * (5 + C) + ch) * g + gj) * g + gi
                    v = f32(v)
                    outs[s].reshape(-1)[idx] = v
                    ov.append([s, idx, v])
    return ov


def split(x, C):
    """x: [N, 3*(5+C), H, W] -> [N, 3, 5+C, H, W]"""
    n, _, h, w = x.shape
    return x.view(n, 3, 5 + C, h, w)


def operator_loss(xt, gts, C, s, cfg):
    """yolov3_loss for output s. xt: [N, 3*(5+C), H, W] tensor. Returns per-image parts [N, 4]."""
    x = split(xt, C)
    n, A, _, H, W = x.shape
    sxy = cfg["scale_xy"]
    bias = -0.5 * (sxy - 1)
    gx = torch.arange(W, dtype=torch.float64).view(1, 1, 1, W)
    gy = torch.arange(H, dtype=torch.float64).view(1, 1, H, 1)
    aw = torch.tensor([ANCHORS[m][0] for m in MASKS[s]], dtype=torch.float64).view(1, A, 1, 1)
    ah = torch.tensor([ANCHORS[m][1] for m in MASKS[s]], dtype=torch.float64).view(1, A, 1, 1)
    with torch.no_grad():
        px = (gx + torch.sigmoid(x[:, :, 0]) * sxy + bias) / W
        py = (gy + torch.sigmoid(x[:, :, 1]) * sxy + bias) / H
        pw = torch.exp(x[:, :, 2]) * aw / INPUT
        ph = torch.exp(x[:, :, 3]) * ah / INPUT
    delta = 0.0
    if cfg["label_smooth"]:
        delta = 1.0 / C
        if cfg["smooth_cap"] > 0:
            delta = min(delta, cfg["smooth_cap"])
    parts = []
    for i in range(n):
        valid = [b for b in gts[i] if not (b[2] < 1e-6 or b[3] < 1e-6)]
        best = torch.zeros(A, H, W, dtype=torch.float64)
        for b in valid:
            cx, cy, w, h = b[:4]
            ow = torch.minimum(px[i] + pw[i] / 2, torch.tensor(cx + w / 2)) - torch.maximum(px[i] - pw[i] / 2, torch.tensor(cx - w / 2))
            oh = torch.minimum(py[i] + ph[i] / 2, torch.tensor(cy + h / 2)) - torch.maximum(py[i] - ph[i] / 2, torch.tensor(cy - h / 2))
            inter = torch.where((ow >= 0) & (oh >= 0), ow * oh, torch.zeros_like(ow))
            iou = inter / (pw[i] * ph[i] + w * h - inter)
            best = torch.maximum(best, iou)
        objt = -(best > cfg["ignore_thresh"]).to(torch.float64)
        xy = torch.zeros((), dtype=torch.float64)
        wh = torch.zeros((), dtype=torch.float64)
        cls = torch.zeros((), dtype=torch.float64)
        for b in valid:
            cx, cy, w, h, label, score = b
            bn = best_anchor(w, h)
            if bn not in MASKS[s]:
                continue
            a = MASKS[s].index(bn)
            gi, gj = min(int(cx * W), W - 1), min(int(cy * H), H - 1)
            tx, ty = cx * W - gi, cy * H - gj
            tw = math.log(w * INPUT / ANCHORS[bn][0])
            th = math.log(h * INPUT / ANCHORS[bn][1])
            sc = (2.0 - w * h) * score
            t = lambda v: torch.tensor(v, dtype=torch.float64)
            xy = xy + sc * (F.binary_cross_entropy_with_logits(x[i, a, 0, gj, gi], t(tx))
                            + F.binary_cross_entropy_with_logits(x[i, a, 1, gj, gi], t(ty)))
            wh = wh + sc * (torch.abs(x[i, a, 2, gj, gi] - tw) + torch.abs(x[i, a, 3, gj, gi] - th))
            objt[a, gj, gi] = score
            tc = torch.full((C,), delta, dtype=torch.float64)
            tc[label] = 1.0 - delta
            cls = cls + score * F.binary_cross_entropy_with_logits(x[i, a, 5:, gj, gi], tc, reduction="sum")
        o = x[i, :, 4]
        pos = objt > 1e-5
        neg = (objt > -0.5) & ~pos
        lpos = F.binary_cross_entropy_with_logits(o, torch.ones_like(o), reduction="none")
        lneg = F.binary_cross_entropy_with_logits(o, torch.zeros_like(o), reduction="none")
        obj = (lpos * torch.where(pos, objt, torch.zeros_like(objt))).sum() + (lneg * neg.to(torch.float64)).sum()
        parts.append(torch.stack([xy, wh, obj, cls]))
    return torch.stack(parts)


def gt2yolo_target(gts, C, s):
    """Gt2YoloTarget for one image and output s: [3, 6+C, H, W] numpy."""
    g = INPUT // STRIDES[s]
    target = np.zeros((3, 6 + C, g, g))
    for cx, cy, w, h, label, score in gts:
        if w <= 0 or h <= 0 or score <= 0:
            continue
        bn = best_anchor(w, h)
        gi, gj = min(int(cx * g), g - 1), min(int(cy * g), g - 1)
        if bn in MASKS[s]:
            a = MASKS[s].index(bn)
            target[a, 0, gj, gi] = cx * g - gi
            target[a, 1, gj, gi] = cy * g - gj
            target[a, 2, gj, gi] = math.log(w * INPUT / ANCHORS[bn][0])
            target[a, 3, gj, gi] = math.log(h * INPUT / ANCHORS[bn][1])
            target[a, 4, gj, gi] = 2.0 - w * h
            target[a, 5, gj, gi] = score
            target[a, 6 + label, gj, gi] = 1.0
    return target


def fine_loss(xt, gts, C, s, cfg):
    """_get_fine_grained_loss for output s; per-image parts [N, 4]."""
    x = split(xt, C)
    n, A, _, H, W = x.shape
    tgt = torch.tensor(np.stack([gt2yolo_target(gts[i], C, s) for i in range(n)]))
    tx, ty, tw, th, tscale, tobj = (tgt[:, :, k] for k in range(6))
    tcls = tgt[:, :, 6:]
    ts = tscale * tobj
    bce = lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="none")
    loss_xy = ((bce(x[:, :, 0], tx) + bce(x[:, :, 1], ty)) * ts).sum(dim=[1, 2, 3])
    loss_wh = ((torch.abs(x[:, :, 2] - tw) + torch.abs(x[:, :, 3] - th)) * ts).sum(dim=[1, 2, 3])
    # ignore: yolo_box with img_size 1, no clip, then iou_similarity (xyxy)
    sxy = cfg["scale_xy"]
    bias = -0.5 * (sxy - 1)
    with torch.no_grad():
        gx = torch.arange(W, dtype=torch.float64).view(1, 1, 1, W)
        gy = torch.arange(H, dtype=torch.float64).view(1, 1, H, 1)
        aw = torch.tensor([ANCHORS[m][0] for m in MASKS[s]], dtype=torch.float64).view(1, A, 1, 1)
        ah = torch.tensor([ANCHORS[m][1] for m in MASKS[s]], dtype=torch.float64).view(1, A, 1, 1)
        cx = (gx + torch.sigmoid(x[:, :, 0]) * sxy + bias) / W
        cy = (gy + torch.sigmoid(x[:, :, 1]) * sxy + bias) / H
        w = torch.exp(x[:, :, 2]) * aw / (STRIDES[s] * W)
        h = torch.exp(x[:, :, 3]) * ah / (STRIDES[s] * H)
        x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        iou_mask = torch.ones(n, A, H, W, dtype=torch.float64)
        for i in range(n):
            best = torch.zeros(A, H, W, dtype=torch.float64)
            for b in gts[i]:
                u0, v0, u1, v1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
                iw = (torch.clamp(torch.minimum(x1[i], torch.tensor(u1)) - torch.maximum(x0[i], torch.tensor(u0)), min=0))
                ih = (torch.clamp(torch.minimum(y1[i], torch.tensor(v1)) - torch.maximum(y0[i], torch.tensor(v0)), min=0))
                inter = iw * ih
                iou = inter / ((x1[i] - x0[i]) * (y1[i] - y0[i]) + (u1 - u0) * (v1 - v0) - inter)
                best = torch.maximum(best, iou)
            iou_mask[i] = (best <= cfg["ignore_thresh"]).to(torch.float64)
    obj_mask = (tobj > 0).to(torch.float64)
    lo = bce(x[:, :, 4], obj_mask)
    loss_obj = (lo * tobj).sum(dim=[1, 2, 3]) + (lo * (1 - obj_mask) * iou_mask).sum(dim=[1, 2, 3])
    loss_cls = (bce(x[:, :, 5:], tcls) * tobj.unsqueeze(2)).sum(dim=[1, 2, 3, 4])
    return torch.stack([loss_xy, loss_wh, loss_obj, loss_cls], dim=1)


def run_case(name, path, C, seed, cfg, gt_seed):
    rng = np.random.default_rng(gt_seed)
    gts = gts_for(rng, C)
    amp = 2.0
    outs, shapes = base_outputs(C, seed, amp)
    ov = overrides_for(outs, gts, C)
    xs = [torch.tensor(o, dtype=torch.float64, requires_grad=True) for o in outs]
    per_scale = []
    for s in range(3):
        fn = operator_loss if path == "operator" else fine_loss
        per_scale.append(fn(xs[s], gts, C, s, cfg).mean(dim=0))  # reduce_mean over the batch
    parts = torch.stack(per_scale).sum(dim=0)  # summed over outputs
    total = parts.sum()
    total.backward()
    grads = []
    for xg in xs:
        g = xg.grad.reshape(-1).numpy()
        nz = np.nonzero(g)[0]
        # 10 significant digits: far below the tests' 1e-4 relative tolerance
        grads.append({"idx": [int(k) for k in nz], "val": [float("%.10g" % g[k]) for k in nz]})
    return {
        "name": name, "path": path, "num_classes": C, "input": INPUT,
        "seed": seed, "amp": amp, "shapes": shapes, "overrides": ov,
        "ignore_thresh": cfg["ignore_thresh"], "label_smooth": cfg["label_smooth"],
        "smooth_cap": cfg["smooth_cap"], "scale_xy": cfg["scale_xy"],
        "gts": gts,
        "parts": {"xy": float(parts[0]), "wh": float(parts[1]), "obj": float(parts[2]),
                  "cls": float(parts[3]), "total": float(total)},
        "grads": grads,
    }


def main():
    base = {"ignore_thresh": 0.7, "label_smooth": False, "smooth_cap": 0.0, "scale_xy": 1.0}
    cases = [
        ("operator_c3", "operator", 3, 11, dict(base), 1),
        ("operator_c3_smooth", "operator", 3, 12, dict(base, label_smooth=True), 2),
        ("operator_c20_smooth_cap40", "operator", 20, 13, dict(base, label_smooth=True, smooth_cap=1.0 / 40), 3),
        ("operator_c20_scalexy", "operator", 20, 14, dict(base, label_smooth=True, scale_xy=1.1, ignore_thresh=0.5), 4),
        ("fine_c3", "fine-grained", 3, 15, dict(base), 5),
        ("fine_c20_ignore05", "fine-grained", 20, 16, dict(base, ignore_thresh=0.5), 6),
    ]
    out = {"generator": "testdata/yololoss/gen_reference.py", "torch": torch.__version__,
           "anchors": ANCHORS, "masks": MASKS, "strides": STRIDES,
           "cases": [run_case(*c) for c in cases]}
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
