"""Reference resizes for pkg/dataset's interpolation (TestResizeAgainstTorch).

PyTorch's F.interpolate with align_corners=False uses the same sampling as
OpenCV's cv2.resize for nearest (floor(dst*scale)), bilinear (half-pixel
centres, edge clamp, no antialias) and bicubic (A=-0.75, half-pixel centres,
edge clamp); 'area' (adaptive average pooling) equals OpenCV's INTER_AREA for
integer shrink factors. Run: /usr/bin/python3 gen_resize.py > resize_ref.json
"""
import json
import torch
import torch.nn.functional as F

torch.manual_seed(0)
src = (torch.rand(1, 1, 9, 12) * 255).round()
cases = []
for mode, sizes in [
    ("nearest", [(4, 5), (18, 24), (9, 12), (13, 7)]),
    ("bilinear", [(4, 5), (18, 24), (13, 7)]),
    ("bicubic", [(4, 5), (18, 24), (13, 7)]),
    ("area", [(3, 4), (3, 6), (9, 3)]),
]:
    for h, w in sizes:
        kw = {} if mode in ("nearest", "area") else {"align_corners": False}
        out = F.interpolate(src, size=(h, w), mode=mode, **kw)
        cases.append({"mode": mode, "h": h, "w": w, "out": [round(float(v), 4) for v in out.flatten()]})
print(json.dumps({"src_h": 9, "src_w": 12, "src": [float(v) for v in src.flatten()], "cases": cases}))
