#!/usr/bin/env python3
"""Fit 9 YOLOv3 anchors to BCCD trainval boxes (k-means on 1 - IoU of
(w, h) pairs, boxes scaled to a 320x320 input), deterministic init at area
quantiles. Writes bccd_anchors.json beside this script.
With --sizes S1,S2,...: the boxes at every one of these input sizes pooled
(multi-scale training), written to bccd_anchors_ms.json; pipelines/configs
/bccd_*.yml carry these (from `dataset anchors --sizes`, whole pixels;
pkg/config and pkg/dataset tests check they agree).

usage: python3 gen_bccd_anchors.py ../../../shared/datasets/bccd
       python3 gen_bccd_anchors.py ../../../shared/datasets/bccd --sizes 320,352,384,416,448,480,512,544,576,608
"""
import json, os, sys
import xml.etree.ElementTree as ET

import numpy as np

SIZE = 320


def boxes(root, size=SIZE):
    ids = open(os.path.join(root, "ImageSets/Main/trainval.txt")).read().split()
    out = []
    for i in ids:
        t = ET.parse(os.path.join(root, "Annotations", i + ".xml")).getroot()
        w = float(t.find("size/width").text)
        h = float(t.find("size/height").text)
        for o in t.findall("object"):
            b = o.find("bndbox")
            x0, y0, x1, y1 = (float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            x0, x1 = max(0.0, x0), min(w, x1)
            y0, y1 = max(0.0, y0), min(h, y1)
            if x1 <= x0 or y1 <= y0:
                continue  # malformed box
            out.append(((x1 - x0) * size / w, (y1 - y0) * size / h))
    return np.array(out)


def iou(wh, c):
    inter = np.minimum(wh[:, None, 0], c[None, :, 0]) * np.minimum(wh[:, None, 1], c[None, :, 1])
    return inter / (wh[:, 0:1] * wh[:, 1:2] + (c[:, 0] * c[:, 1])[None, :] - inter)


def main():
    sizes = [SIZE]
    name = "bccd_anchors.json"
    if len(sys.argv) == 4 and sys.argv[2] == "--sizes":
        sizes = [int(x) for x in sys.argv[3].split(",")]
        name = "bccd_anchors_ms.json"
    wh = np.concatenate([boxes(sys.argv[1], s) for s in sizes])
    order = np.argsort(wh[:, 0] * wh[:, 1])
    k = 9
    c = wh[order[((np.arange(k) + 0.5) / k * len(wh)).astype(int)]].copy()
    for _ in range(300):
        a = np.argmax(iou(wh, c), axis=1)
        nc = np.array([np.median(wh[a == j], axis=0) if np.any(a == j) else c[j] for j in range(k)])
        if np.allclose(nc, c):
            break
        c = nc
    c = c[np.argsort(c[:, 0] * c[:, 1])]
    anchors = [[round(float(x), 1), round(float(y), 1)] for x, y in c]
    mean_iou = float(np.mean(np.max(iou(wh, np.array(anchors)), axis=1)))
    coco = np.array([[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90], [156, 198], [373, 326]], float)
    res = {"input_size": sizes[0], "num_boxes": int(len(wh)), "anchors": anchors,
           "mean_iou": round(mean_iou, 4),
           "coco_anchors_mean_iou_at_608_scaled": round(float(np.mean(np.max(iou(wh, coco * sizes[0] / 608), axis=1))), 4)}
    if len(sizes) > 1:
        res["input_sizes"] = sizes
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(json.dumps(res))


main()
