#!/usr/bin/python3
"""Small weight files in every foreign format pkg/weights reads, with PyTorch's forward outputs.

Run from the repository root with the system interpreter (Debian python3-torch,
python3-torchvision; no network):

    /usr/bin/python3 testdata/weights/gen_fixtures.py

It writes into testdata/weights/:

  mbv1_paddle.tar        PaddleDetection 1.x weights tar (a folder of one LoDTensor file per
                         variable, save_persistables), MobileNetV1-YOLOv3, model.layout paddle,
                         with optimizer variables (momentum velocities, learning rate) as the
                         released training tars have them
  r18_paddle.pdparams    Paddle .pdparams (pickle protocol 2 of numpy arrays, fluid.save),
                         ResNet18-YOLOv3, model.layout paddle
  mbv1_paddle2.pdparams  the same network as mbv1_paddle.tar as Paddle 2.x writes .pdparams
                         (pickle protocol 4, with the "StructuredToParameterName@@" entry)
  mbv1_torch.pth         PyTorch state_dict, zip format (torch.save), MobileNetV1-YOLOv3,
                         model.layout torch, ../shared/bench/torch_reference.py's names
  r18_torch_legacy.pt    PyTorch state_dict, legacy pickle format, ResNet18-YOLOv3, torch layout
  mbv1_torch.safetensors the state_dict of mbv1_torch.pth as safetensors (one tensor in float64)
  tv_resnet18.pth        a torchvision ResNet18 state_dict (torchvision's BasicBlock and
                         _make_layer; narrow) with its ImageNet classifier "fc": a backbone only
  torch_module.pt        a whole pickled nn.Module (not a state_dict): must be refused
  torchscript.pt         a TorchScript archive: must be refused
  input.bin              the input image batch, float32 little-endian, [1, 3, 64, 96]
  reference.json         per file: the model it holds (backbone, widths, classes, layout) and
                         the float64 forward outputs of that model in PyTorch on input.bin
                         (the three head outputs, deepest first; for the backbone-only
                         torchvision file the backbone maps c3, c4, c5)

The networks are gen_reference.py's width variants of torch_reference.py at tiny widths
(random weights and BatchNorm statistics, seed 0). The Paddle files are written from
the formats' specification (paddle/fluid/framework/lod_tensor.cc SerializeToStream,
tensor_util.cc TensorToStream, framework.proto VarType.TensorDesc; fluid.save and
paddle.save pickles), since Paddle itself is not packaged for Debian; their variable
names are PaddleDetection release/0.3's (ppdet/modeling/backbones/mobilenet.py and
resnet.py, anchor_heads/yolo_head.py).
"""
import collections, importlib.util, io, json, os, pickle, struct, sys, tarfile

import numpy as np
import torch
import torch.nn as nn
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("gen_reference", os.path.join(HERE, "..", "yolo", "gen_reference.py"))
gr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gr)
ref = gr.ref

N, H, W = 1, 64, 96
CLASSES = 2
BW, HW = 0.125, 0.0625      # backbone and head width multipliers
RW = 0.0625                 # ResNet18 backbone width


def randomize(model, seed):
    """Random weights and BatchNorm statistics, so that running stats matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(7)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.05)
                m.bias.zero_()
    return model.eval()


class PaddleTapMobileNetFlat(nn.Module):
    """gen_reference's PaddleTapMobileNet with the reference's own module names
    (stem, s8, s16, s32) instead of m.stem...: taps after conv3_2 and conv4_2."""
    def __init__(self, scale):
        super().__init__()
        m = ref.MobileNetV1(scale)
        self.stem, self.s8, self.s16, self.s32, self.channels = m.stem, m.s8, m.s16, m.s32, m.channels

    def forward(self, x):
        x = self.stem(x)
        for i in range(4):
            x = self.s8[i](x)
        a = x
        x = self.s16[0](self.s8[4](x))
        b = x
        for i in range(1, 6):
            x = self.s16[i](x)
        return [a, b, self.s32(x)]


def build(backbone, layout):
    if backbone == "mobilenet_v1":
        bb = PaddleTapMobileNetFlat(BW) if layout == "paddle" else ref.MobileNetV1(BW)
        hw = HW
    else:
        bb = gr.WidthResNet([2, 2, 2, 2], RW, paddle=(layout == "paddle"))
        hw = HW
    return gr.Net(bb, gr.WidthHead(bb.channels, CLASSES, hw))


def model_cfg(backbone, layout):
    return {"backbone": backbone, "backbone_width": BW if backbone == "mobilenet_v1" else RW,
            "head_width": HW, "num_classes": CLASSES, "layout": layout}


# ---- torch_reference names -> PaddleDetection names -------------------------

def mobilenet_blocks():
    names = ["conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv4_1", "conv4_2", "conv5_1", "conv5_2",
             "conv5_3", "conv5_4", "conv5_5", "conv5_6", "conv6"]
    out = []
    for k, n in enumerate(names):
        stage, j = ("s8", k) if k < 5 else (("s16", k - 5) if k < 11 else ("s32", k - 11))
        out.append((n, "backbone.%s.%d" % (stage, j)))
    return out


def paddle_names(model, backbone):
    """{torch state_dict key: PaddleDetection variable name} for the conv and BN tensors."""
    pairs = []  # (torch conv prefix, torch bn prefix, paddle conv weight, paddle bn prefix, bn style)

    def conv_bn_mb(tconv, pname):
        pairs.append((tconv + ".0", tconv + ".1", pname + "_weights", pname + "_bn", "_"))

    def conv_bn_res(tprefix, pname):
        bn = "bn_" + pname if pname == "conv1" else "bn" + pname[3:]
        pairs.append((tprefix + ".0", tprefix + ".1", pname + "_weights", bn, "_"))

    if backbone == "mobilenet_v1":
        conv_bn_mb("backbone.stem", "conv1")
        for n, t in mobilenet_blocks():
            conv_bn_mb(t + ".0", n + "_dw")
            conv_bn_mb(t + ".1", n + "_sep")
    else:
        conv_bn_res("backbone.stem.0", "conv1")
        for s in range(1, 5):
            stage = getattr(model.backbone, "l%d" % s)
            for j, blk in enumerate(stage):
                p = "res%d%s" % (s + 1, chr(97 + j))
                t = "backbone.l%d.%d" % (s, j)
                conv_bn_res(t + ".c1", p + "_branch2a")
                conv_bn_res(t + ".c2", p + "_branch2b")
                if blk.short is not None:
                    conv_bn_res(t + ".short", p + "_branch1")
    for i in range(3):
        blk = "yolo_block.%d" % i
        for k, suffix in enumerate(["0.0", "0.1", "1.0", "1.1", "2"]):
            pairs.append(("head.blocks.%d.%d.0" % (i, k), "head.blocks.%d.%d.1" % (i, k), "%s.%s.conv.weights" % (blk, suffix), "%s.%s.bn" % (blk, suffix), "."))
        pairs.append(("head.tips.%d.0" % i, "head.tips.%d.1" % i, blk + ".tip.conv.weights", blk + ".tip.bn", "."))
        if i < 2:
            pairs.append(("head.routes.%d.0" % i, "head.routes.%d.1" % i, "yolo_transition.%d.conv.weights" % i, "yolo_transition.%d.bn" % i, "."))
    names = {}
    for tconv, tbn, pw, pbn, sep in pairs:
        names[tconv + ".weight"] = pw
        names[tbn + ".weight"] = pbn + sep + "scale"
        names[tbn + ".bias"] = pbn + sep + "offset"
        names[tbn + ".running_mean"] = pbn + sep + "mean"
        names[tbn + ".running_var"] = pbn + sep + ("variance" if sep == "_" else "var")
    for i in range(3):
        names["head.outs.%d.weight" % i] = "yolo_output.%d.conv.weights" % i
        names["head.outs.%d.bias" % i] = "yolo_output.%d.conv.bias" % i
    sd = model.state_dict()
    for k in sd:
        if not k.endswith("num_batches_tracked"):
            assert k in names, k
    assert len(names) == len([k for k in sd if not k.endswith("num_batches_tracked")])
    return names


# ---- Paddle LoDTensor -------------------------------------------------------

def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def lod_tensor(arr):
    """One variable as fluid.io.save_vars writes it (SerializeToStream): uint32 version 0,
    uint64 LoD level count 0, uint32 tensor version 0, int32 size of the TensorDesc proto
    (data_type = 1: FP32 = 5 / INT64 = 3, dims = 2: repeated int64, unpacked as proto2
    writes it), then the raw little-endian data."""
    arr = np.ascontiguousarray(arr)
    dtype = {np.dtype("float32"): 5, np.dtype("int64"): 3}[arr.dtype]
    desc = bytes([0x08]) + varint(dtype)
    for d in arr.shape:
        desc += bytes([0x10]) + varint(d)
    return struct.pack("<IQI", 0, 0, 0) + struct.pack("<i", len(desc)) + desc + arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def write_paddle_tar(path, folder, tensors):
    """A tar of folder/NAME, one file per variable, as PaddleDetection's released weights."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo(folder)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
        tf.addfile(info)
        for name in sorted(tensors):
            data = lod_tensor(tensors[name])
            info = tarfile.TarInfo(folder + "/" + name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tf.addfile(info, io.BytesIO(data))


# ---- safetensors (https://github.com/huggingface/safetensors, the format's README) ----

def write_safetensors(path, sd, as_f64=()):
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        a = v.detach().cpu().numpy()
        dt = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[a.dtype]
        if k in as_f64:
            a, dt = a.astype(np.float64), "F64"
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---- torchvision ------------------------------------------------------------

class NarrowTorchvisionResNet(torchvision.models.resnet.ResNet):
    """torchvision's ResNet (its BasicBlock, _make_layer and module names) with every
    width multiplied by w: the state_dict keys are those of torchvision.models.resnet18."""
    def __init__(self, layers, w):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        c = lambda n: int(n * w)
        self.inplanes, self.dilation, self.groups, self.base_width = c(64), 1, 1, 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        blk = torchvision.models.resnet.BasicBlock
        self.layer1 = self._make_layer(blk, c(64), layers[0])
        self.layer2 = self._make_layer(blk, c(128), layers[1], stride=2)
        self.layer3 = self._make_layer(blk, c(256), layers[2], stride=2)
        self.layer4 = self._make_layer(blk, c(512), layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c(512), 1000)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        a = self.layer2(self.layer1(x))
        b = self.layer3(a)
        return [a, b, self.layer4(b)]


def outputs(model, x, features=False):
    m = model.double()
    with torch.no_grad():
        outs = m.features(x.double()) if features else m(x.double())
    model.float()
    return [{"shape": list(o.shape), "data": [float(v) for v in o.reshape(-1)]} for o in outs]


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return self.conv(x)


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.rand((N, 3, H, W), generator=g) * 4 - 2
    x.numpy().astype("<f4").tofile(os.path.join(HERE, "input.bin"))
    ref_out = {"generator": "testdata/weights/gen_fixtures.py", "torch": torch.__version__,
               "torchvision": torchvision.__version__, "input": [N, 3, H, W], "files": {}}

    def record(fname, model, cfg, kind, part="model", feats=False):
        ref_out["files"][fname] = {"format": kind, "part": part, "model": cfg, "outputs": outputs(model, x, feats)}
        print("%s: %s" % (fname, kind), file=sys.stderr)

    # PaddleDetection tar: MobileNetV1-YOLOv3, paddle layout, with optimizer state.
    mb_p = randomize(build("mobilenet_v1", "paddle"), 10)
    names = paddle_names(mb_p, "mobilenet_v1")
    sd = mb_p.state_dict()
    vars_ = {names[k]: v.numpy() for k, v in sd.items() if k in names}
    extra = dict(vars_)
    for k in list(vars_)[:3]:
        extra[k + "_velocity_0"] = np.zeros_like(vars_[k])
    extra["learning_rate_0"] = np.array([0.001], dtype=np.float32)
    extra["@LR_DECAY_COUNTER@"] = np.array([70000], dtype=np.int64)
    write_paddle_tar(os.path.join(HERE, "mbv1_paddle.tar"), "mbv1_paddle", extra)
    record("mbv1_paddle.tar", mb_p, model_cfg("mobilenet_v1", "paddle"), "paddle-tar")

    # Paddle 2.x .pdparams of the same network (protocol 4, structured-name table).
    p2 = collections.OrderedDict((k, v) for k, v in vars_.items())
    p2["StructuredToParameterName@@"] = {k: k for k in vars_}
    with open(os.path.join(HERE, "mbv1_paddle2.pdparams"), "wb") as f:
        pickle.dump(p2, f, protocol=4)
    record("mbv1_paddle2.pdparams", mb_p, model_cfg("mobilenet_v1", "paddle"), "pdparams")

    # fluid.save .pdparams: ResNet18-YOLOv3, paddle layout (res2a has a projection shortcut).
    r_p = randomize(build("resnet18", "paddle"), 11)
    names = paddle_names(r_p, "resnet18")
    vars_ = {names[k]: v.numpy() for k, v in r_p.state_dict().items() if k in names}
    with open(os.path.join(HERE, "r18_paddle.pdparams"), "wb") as f:
        pickle.dump(vars_, f, protocol=2)
    record("r18_paddle.pdparams", r_p, model_cfg("resnet18", "paddle"), "pdparams")

    # PyTorch zip state_dict, torch layout, torch_reference names.
    mb_t = randomize(build("mobilenet_v1", "torch"), 12)
    torch.save(mb_t.state_dict(), os.path.join(HERE, "mbv1_torch.pth"))
    record("mbv1_torch.pth", mb_t, model_cfg("mobilenet_v1", "torch"), "torch-zip")
    write_safetensors(os.path.join(HERE, "mbv1_torch.safetensors"), mb_t.state_dict(), as_f64={"head.outs.0.weight"})
    record("mbv1_torch.safetensors", mb_t, model_cfg("mobilenet_v1", "torch"), "safetensors")

    # PyTorch legacy state_dict, ResNet18-YOLOv3, torch layout.
    r_t = randomize(build("resnet18", "torch"), 13)
    torch.save(r_t.state_dict(), os.path.join(HERE, "r18_torch_legacy.pt"), _use_new_zipfile_serialization=False)
    record("r18_torch_legacy.pt", r_t, model_cfg("resnet18", "torch"), "torch-legacy")

    # torchvision ResNet18 (narrow), a backbone with its classifier.
    tv = randomize(NarrowTorchvisionResNet([2, 2, 2, 2], RW), 14)
    torch.save(tv.state_dict(), os.path.join(HERE, "tv_resnet18.pth"))
    record("tv_resnet18.pth", tv, model_cfg("resnet18", "torch"), "torch-zip", part="backbone", feats=True)

    # Files that are not state_dicts.
    torch.save(Tiny(), os.path.join(HERE, "torch_module.pt"))
    torch.jit.save(torch.jit.script(Tiny()), os.path.join(HERE, "torchscript.pt"))

    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump(ref_out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
