#!/usr/bin/python3
"""Reference shapes, parameter counts and FLOPs of YOLOv3 family members, from PyTorch.

Run with the system interpreter (torch 1.13):

    /usr/bin/python3 testdata/yolo/gen_reference.py > testdata/yolo/reference.json

Full-width networks are ../shared/bench/torch_reference.py's own Detector
(imported by path). Width variants (backbone and head width multipliers, ResNet18)
and the PaddleDetection layout are built here by small classes that reuse the
reference's conv_bn and BasicBlock; at width 1 they are checked to have exactly the
reference's parameter counts and FLOPs before anything is written.

For each configuration the JSON holds, at one input size: the totals (trainable
parameters as torch counts them, BatchNorm running-stat values, conv FLOPs = 2 x
multiply-adds as torch_reference.conv_flops), the named outputs' shapes [C, H, W]
(names as pkg/yolo's Spec uses them), and every convolution in forward order with
its output shape, kernel, stride, groups, parameters (conv weight + bias + the
following BatchNorm's weight and bias) and FLOPs. pkg/yolo/arch_test.go compares
these exactly.
"""
import importlib.util, json, os, sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REF_PATH = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "bench", "torch_reference.py"))
if not os.path.exists(REF_PATH):
    REF_PATH = "/work/shared/bench/torch_reference.py"
spec = importlib.util.spec_from_file_location("torch_reference", REF_PATH)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)


class WidthResNet(nn.Module):
    """BasicBlock ResNet with a width multiplier; paddle=True adds res2a's projection shortcut."""
    def __init__(self, depths, w=1.0, paddle=False):
        super().__init__()
        c = lambda n: int(n * w)
        self.stem = nn.Sequential(ref.conv_bn(3, c(64), 7, 2, act="relu"), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], c(64)
        for si, n in enumerate(depths):
            cout = c(64 << si)
            blocks = []
            for j in range(n):
                s = 2 if (j == 0 and si > 0) else 1
                blk = ref.BasicBlock(cin, cout, s)
                if paddle and si == 0 and j == 0:
                    blk.short = nn.Sequential(nn.Conv2d(cin, cout, 1, s, bias=False), nn.BatchNorm2d(cout))
                blocks.append(blk)
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.l1, self.l2, self.l3, self.l4 = stages
        self.channels = [c(128), c(256), c(512)]

    def forward(self, x):
        a = self.l2(self.l1(self.stem(x))); b = self.l3(a); return [a, b, self.l4(b)]


class PaddleTapMobileNet(nn.Module):
    """The reference MobileNetV1, tapped where PaddleDetection taps: after conv3_2 and conv4_2."""
    def __init__(self, scale=1.0):
        super().__init__()
        self.m = ref.MobileNetV1(scale)
        self.channels = self.m.channels

    def forward(self, x):
        m = self.m
        x = m.stem(x)
        for i in range(4):
            x = m.s8[i](x)
        a = x  # after conv3_2
        x = m.s8[4](x)  # conv4_1
        x = m.s16[0](x)  # conv4_2
        b = x
        for i in range(1, 6):
            x = m.s16[i](x)
        return [a, b, m.s32(x)]


class WidthHead(nn.Module):
    """The reference YOLOv3Head with a width multiplier on every channel count."""
    def __init__(self, in_channels, num_classes, w=1.0, num_anchors=3):
        super().__init__()
        conv_bn = ref.conv_bn
        self.blocks, self.tips, self.outs, self.routes = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        prev_route = 0
        for i, cin in enumerate(reversed(in_channels)):
            ch = int((512 >> i) * w)
            cin = cin + prev_route
            self.blocks.append(nn.Sequential(conv_bn(cin, ch, 1), conv_bn(ch, ch * 2, 3), conv_bn(ch * 2, ch, 1),
                                             conv_bn(ch, ch * 2, 3), conv_bn(ch * 2, ch, 1)))
            self.tips.append(conv_bn(ch, ch * 2, 3))
            self.outs.append(nn.Conv2d(ch * 2, num_anchors * (5 + num_classes), 1, bias=True))
            if i < len(in_channels) - 1:
                t = int((256 >> i) * w)
                self.routes.append(conv_bn(ch, t, 1)); prev_route = t

    forward = ref.YOLOv3Head.forward


class Net(nn.Module):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x))


def build(cfg):
    bb, bw, hw, classes, layout = cfg["backbone"], cfg["backbone_width"], cfg["head_width"], cfg["num_classes"], cfg["layout"]
    if layout == "torch" and bw == 1.0 and hw == 1.0 and bb in ("mobilenet_v1", "resnet34"):
        return ref.Detector(bb, classes)  # the reference itself
    if bb == "mobilenet_v1":
        backbone = PaddleTapMobileNet(bw) if layout == "paddle" else ref.MobileNetV1(bw)
    else:
        depths = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}[bb]
        backbone = WidthResNet(depths, bw, paddle=(layout == "paddle"))
    return Net(backbone, WidthHead(backbone.channels, classes, hw))


def shape(t):
    return list(t.shape[1:])


def describe(model, h, w):
    convs, named = [], {}
    hooks = []

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        convs.append({"shape": shape(out), "k": m.kernel_size[0], "stride": m.stride[0], "pad": m.padding[0],
                      "groups": m.groups, "bn": False,
                      "params": m.weight.numel() + (m.bias.numel() if m.bias is not None else 0),
                      "flops": 2 * k * out.numel() // out.shape[0]})

    def bn_hook(m, inp, out):
        convs[-1]["bn"] = True
        convs[-1]["params"] += m.weight.numel() + m.bias.numel()

    def named_hook(name):
        def f(m, inp, out):
            named[name] = shape(out)
        return f

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_hook(bn_hook))

    def backbone_hook(m, inp, out):
        for i, t in enumerate(out):
            named["backbone.c%d" % (3 + i)] = shape(t)
    hooks.append(model.backbone.register_forward_hook(backbone_hook))
    head = model.head
    for i in range(3):
        hooks.append(head.blocks[i].register_forward_hook(named_hook("head.%d.route" % i)))
        hooks.append(head.tips[i].register_forward_hook(named_hook("head.%d.tip" % i)))
        hooks.append(head.outs[i].register_forward_hook(named_hook("head.%d.out" % i)))
        if i < 2:
            hooks.append(head.routes[i].register_forward_hook(named_hook("head.%d.transition" % i)))
    with torch.no_grad():
        model.eval()
        model(torch.zeros(1, 3, h, w))
    for hk in hooks:
        hk.remove()
    for i in range(2):
        c, hh, ww = named["head.%d.transition" % i]
        named["head.%d.upsample" % i] = [c, 2 * hh, 2 * ww]
        feat = named["backbone.c%d" % (4 - i)]
        named["head.%d.concat" % (i + 1)] = [c + feat[0], feat[1], feat[2]]
    params = sum(p.numel() for p in model.parameters())
    bn_stats = sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    flops = sum(c["flops"] for c in convs)
    if h == w:
        assert flops == ref.conv_flops(model, h), "FLOPs differ from torch_reference.conv_flops"
    assert params == sum(c["params"] for c in convs)
    return {"params": params, "bn_stats": bn_stats, "flops": flops, "named": named, "convs": convs}


CONFIGS = [
    dict(backbone="mobilenet_v1", backbone_width=1.0, head_width=1.0, num_classes=20, layout="torch", h=608, w=608),
    dict(backbone="mobilenet_v1", backbone_width=1.0, head_width=1.0, num_classes=20, layout="torch", h=320, w=320),
    dict(backbone="resnet34", backbone_width=1.0, head_width=1.0, num_classes=20, layout="torch", h=608, w=608),
    dict(backbone="mobilenet_v1", backbone_width=0.25, head_width=0.25, num_classes=20, layout="torch", h=320, w=320),
    dict(backbone="resnet18", backbone_width=0.5, head_width=0.5, num_classes=20, layout="torch", h=320, w=320),
    dict(backbone="resnet18", backbone_width=1.0, head_width=1.0, num_classes=80, layout="torch", h=416, w=416),
    dict(backbone="mobilenet_v1", backbone_width=0.75, head_width=0.5, num_classes=3, layout="paddle", h=320, w=416),
    dict(backbone="resnet34", backbone_width=1.0, head_width=1.0, num_classes=20, layout="paddle", h=320, w=320),
]


def self_check():
    """Our width classes at width 1 must equal the reference exactly."""
    for bb in ("mobilenet_v1", "resnet34"):
        r = describe(ref.Detector(bb, 20), 320, 320)
        backbone = ref.MobileNetV1(1.0) if bb == "mobilenet_v1" else WidthResNet([3, 4, 6, 3], 1.0)
        o = describe(Net(backbone, WidthHead(backbone.channels, 20, 1.0)), 320, 320)
        for key in ("params", "bn_stats", "flops", "named", "convs"):
            assert r[key] == o[key], (bb, key)


def main():
    torch.manual_seed(0)
    self_check()
    out = {"generator": "testdata/yolo/gen_reference.py", "torch": torch.__version__, "configs": []}
    for cfg in CONFIGS:
        d = describe(build(cfg), cfg["h"], cfg["w"])
        out["configs"].append(dict(cfg, **d))
        print("%s x%g head x%g c%d %s %dx%d: %d params, %.2f GFLOPs" % (
            cfg["backbone"], cfg["backbone_width"], cfg["head_width"], cfg["num_classes"], cfg["layout"],
            cfg["h"], cfg["w"], d["params"], d["flops"] / 1e9), file=sys.stderr)
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
