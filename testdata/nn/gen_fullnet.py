#!/usr/bin/python3
"""Whole-network gradients of tiny YOLOv3 detectors, from PyTorch (float64).

pkg/yolo/fullnet_test.go builds MobileNetV1-YOLOv3 and ResNet18-YOLOv3 at width
0.25 (3 classes, input [2, 3, 64, 64]), attaches an MSE loss (sum over the
three outputs of mean((out - target)^2)) and runs one training step. With
FULLNET_EXPORT=DIR it writes, per network, DIR/NAME.json (parameter names and
shapes in ParamSet order, the Spec's layers) and DIR/NAME.bin (float32 little-
endian: parameters, then input, then targets).

This script builds the same networks with testdata/yolo/gen_reference.py's
width classes (over ../shared/bench/torch_reference.py), loads the Go
parameters by forward order of the conv and BatchNorm modules (every shape is
checked), runs forward + backward in float64 in train mode, and writes the
loss, the outputs, and summaries (norm, sum, sum of |.|, first 16 values) of
every parameter gradient and every layer-output gradient:

    FULLNET_EXPORT=/tmp/fullnet go test -tags openblas -run TestFullNet ./pkg/yolo/
    /usr/bin/python3 testdata/nn/gen_fullnet.py /tmp/fullnet > testdata/nn/fullnet.json

The "train" entries (TestFullNetTrainSteps) come from DIR/NAME.train.*: 30 SGD
steps of the YOLOv3 loss (testdata/yololoss/gen_reference.py) on one batch.
With --local DIR it instead checks the Go step op by op (see local_check):

    /usr/bin/python3 testdata/nn/gen_fullnet.py --local /tmp/fullnet
"""
import importlib.util, json, os, sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("gen_reference", os.path.join(HERE, "..", "yolo", "gen_reference.py"))
gr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gr)

NETS = [
    ("mobilenet_v1_x0.25", dict(backbone="mobilenet_v1", backbone_width=0.25, head_width=0.25, num_classes=3, layout="torch")),
    ("resnet18_x0.25", dict(backbone="resnet18", backbone_width=0.25, head_width=0.25, num_classes=3, layout="torch")),
]
FIRST = 16


def summary(g):
    g = g.detach().reshape(-1).double()
    return {"n": g.numel(), "norm": float(g.norm()), "sum": float(g.sum()), "sumabs": float(g.abs().sum()),
            "first": [float(v) for v in g[:FIRST]]}


def forward_order(model, x):
    """Modules (Conv2d, BatchNorm2d, ReLU, LeakyReLU, BasicBlock) in call order with their input and output."""
    calls, hooks = [], []
    kinds = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, gr.ref.BasicBlock)
    for m in model.modules():
        if isinstance(m, kinds):
            hooks.append(m.register_forward_hook(lambda m, i, o: calls.append((m, i[0], o))))
    outs = model(x)
    for h in hooks:
        h.remove()
    return calls, outs


def load_model(prefix, cfg, dtype=torch.float64, with_targets=True):
    """The torch model with the Go export's parameters, the input and the targets
    (none when with_targets is false), the Go layer name of each conv module and
    the BN module after each conv."""
    hdr = json.load(open(prefix + ".json"))
    blob = np.fromfile(prefix + ".bin", dtype="<f4")
    torch.manual_seed(0)
    model = gr.build(cfg).to(dtype).train()
    # Go parameters in ParamSet order, grouped by layer name.
    params, off = {}, 0
    for p in hdr["params"]:
        n = int(np.prod(p["shape"]))
        params[p["name"]] = (p["shape"], torch.from_numpy(blob[off:off + n].astype(np.float64)).reshape(p["shape"]).to(dtype))
        off += n
    n_in = int(np.prod(hdr["input"]))
    x = torch.from_numpy(blob[off:off + n_in].astype(np.float64)).reshape(hdr["input"]).to(dtype)
    off += n_in
    targets = []
    for s in (hdr["outputs"] if with_targets else []):
        n = int(np.prod(s))
        targets.append(torch.from_numpy(blob[off:off + n].astype(np.float64)).reshape(s).to(dtype))
        off += n
    assert off == blob.size, (off, blob.size)

    # Map conv/BN modules (forward order) to the Go Spec's conv layers (Spec order).
    with torch.no_grad():
        calls, _ = forward_order(model, torch.zeros_like(x))
    convs = [m for (m, _, _) in calls if isinstance(m, nn.Conv2d)]
    bn_after = {}
    for k, (m, _, _) in enumerate(calls):
        if isinstance(m, nn.Conv2d) and k + 1 < len(calls) and isinstance(calls[k + 1][0], nn.BatchNorm2d):
            bn_after[m] = calls[k + 1][0]
    go_convs = [l for l in hdr["layers"] if l["kind"] in ("conv_bn_act", "conv")]
    assert len(go_convs) == len(convs), (len(go_convs), len(convs))
    used = set()

    def load(dst, gname):
        shape, v = params[gname]
        assert list(dst.shape) == list(shape), (gname, list(dst.shape), shape)
        dst.copy_(v)
        used.add(gname)

    conv_name = {}
    with torch.no_grad():
        for l, m in zip(go_convs, convs):
            L = l["name"]
            conv_name[m] = L
            assert m.groups == l["conv"]["Groups"], (L, m.groups, l["conv"])
            load(m.weight, L + ".weight")
            if l["kind"] == "conv":
                assert m not in bn_after and (m.bias is not None) == l["bias"], L
                if m.bias is not None:
                    load(m.bias, L + ".bias")
            else:
                assert m.bias is None and m in bn_after, L
                bn = bn_after[m]
                load(bn.weight, L + ".bn.scale")
                load(bn.bias, L + ".bn.bias")
                load(bn.running_mean, L + ".bn.mean")
                load(bn.running_var, L + ".bn.var")
                assert bn.eps == 1e-5
    assert used == set(params), sorted(set(params) - used)

    return hdr, model, x, targets, conv_name, bn_after


def run(prefix, name, cfg, dtype=torch.float64, full=False):
    """One network's fixture entry; dtype float32 is for judging float32 rounding noise."""
    hdr, model, x, targets, conv_name, bn_after = load_model(prefix, cfg, dtype)
    # Train-mode forward with every layer output kept for its gradient.
    calls, outs = forward_order(model, x)
    named, order = {}, []
    adds = [l["name"] for l in hdr["layers"] if l["kind"] == "add_act"]
    blocks = [o for (m, _, o) in calls if isinstance(m, gr.ref.BasicBlock)]
    assert len(adds) == len(blocks)
    for k, (m, i, o) in enumerate(calls):
        if isinstance(m, nn.Conv2d):
            L = conv_name[m]
            if m in bn_after:
                named[L + ".conv"] = o
                order.append(L + ".conv")
                y = calls[k + 1][2]  # BN output
                if k + 2 < len(calls) and isinstance(calls[k + 2][0], (nn.ReLU, nn.LeakyReLU)) and calls[k + 2][1] is y:
                    y = calls[k + 2][2]
                named[L] = y
            else:
                named[L] = o
            order.append(L)
        elif isinstance(m, gr.ref.BasicBlock):
            L = adds.pop(0)
            named[L] = o
            order.append(L)
    for t in named.values():
        t.retain_grad()
    assert len(outs) == len(targets)
    loss = sum(((o - t) ** 2).mean() for o, t in zip(outs, targets))
    loss.backward()

    pg = {}
    for m, L in conv_name.items():
        pg[L + ".weight"] = summary(m.weight.grad)
        if m.bias is not None:
            pg[L + ".bias"] = summary(m.bias.grad)
        if m in bn_after:
            pg[L + ".bn.scale"] = summary(bn_after[m].weight.grad)
            pg[L + ".bn.bias"] = summary(bn_after[m].bias.grad)
    tg = {k: summary(v.grad) for k, v in named.items() if v.grad is not None}
    if full:  # whole tensors, for debugging: layer outputs and their gradients
        return {k: v.detach().numpy() for k, v in named.items()}, {k: v.grad.numpy() for k, v in named.items() if v.grad is not None}
    print("%s: loss %.8g, %d param grads, %d tensor grads" % (name, float(loss), len(pg), len(tg)), file=sys.stderr)
    return {"name": name, "loss": float(loss), "outputs": [[float(v) for v in o.detach().reshape(-1)] for o in outs],
            "param_grads": pg, "tensor_grads": tg, "order": order}


# TestFullNetTrainSteps: the fixed ground truths (cx, cy, w, h normalised, label,
# score), the step count, learning rate and objectness bias init of fullnet_test.go.
TRAIN_GTS = [
    [[0.30, 0.40, 0.20, 0.25, 0, 1.0], [0.70, 0.60, 0.50, 0.45, 1, 1.0], [0.50, 0.50, 0.90, 0.80, 2, 1.0]],
    [[0.20, 0.75, 0.15, 0.30, 2, 1.0], [0.60, 0.30, 0.40, 0.35, 0, 1.0]],
]
TRAIN_STEPS, TRAIN_LR = 30, 2e-3


def train_run(prefix, name, cfg, dtype=torch.float64):
    """30 steps of torch.optim.SGD (momentum 0.9, weight decay 5e-4 on conv
    weights only, as pkg/nn's SGD) on the YOLOv3 operator-path loss of
    testdata/yololoss/gen_reference.py, from the Go initial weights (the
    objectness biases already set), float64, train mode."""
    hdr, model, x, _, conv_name, bn_after = load_model(prefix, cfg, dtype, with_targets=False)
    spec = importlib.util.spec_from_file_location("yololoss_ref", os.path.join(HERE, "..", "yololoss", "gen_reference.py"))
    yl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(yl)
    assert hdr["input"][2] == hdr["input"][3]
    yl.INPUT = hdr["input"][2]
    gts = [[[float(np.float32(v)) for v in b[:4]] + [int(b[4]), b[5]] for b in im] for im in TRAIN_GTS]
    lcfg = {"ignore_thresh": 0.7, "label_smooth": False, "smooth_cap": 0.0, "scale_xy": 1.0}
    decay = [m.weight for m in conv_name]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}],
                          lr=TRAIN_LR, momentum=0.9)
    losses = []
    for _ in range(TRAIN_STEPS):
        opt.zero_grad()
        outs = model(x)
        total = sum(yl.operator_loss(o, gts, cfg["num_classes"], s, lcfg).mean(dim=0).sum() for s, o in enumerate(outs))
        total.backward()
        losses.append(float(total))
        opt.step()
    rms = {}
    for m, L in conv_name.items():
        rms[L + ".weight"] = float(m.weight.detach().pow(2).mean().sqrt())
        if m.bias is not None:
            rms[L + ".bias"] = float(m.bias.detach().pow(2).mean().sqrt())
        if m in bn_after:
            rms[L + ".bn.scale"] = float(bn_after[m].weight.detach().pow(2).mean().sqrt())
            rms[L + ".bn.bias"] = float(bn_after[m].bias.detach().pow(2).mean().sqrt())
    print("%s: train loss %.6g -> %.6g" % (name, losses[0], losses[-1]), file=sys.stderr)
    return {"name": name, "losses": losses, "rms": rms}


def local_check(prefix, tol):
    """Op-by-op check of a Go Step, from DIR/NAME.grads.json (written by the Go
    test with FULLNET_EXPORT set): every layer's backward is recomputed in
    float64 from the Go graph's own forward values and its own upstream
    gradient (activation slopes from the Go output's sign), the contributions
    to each tensor are summed over its consumers, and the results are compared
    with the Go tensor and parameter gradients (relative L2 error). Rounding
    differences upstream cannot accumulate here, so this localises a wrong op
    or a wrong fan-out sum exactly. Prints the worst error and every check
    above tol; returns the number of those."""
    hdr = json.load(open(prefix + ".json"))
    blob = np.fromfile(prefix + ".bin", dtype="<f4")
    go = json.load(open(prefix + ".grads.json"))
    t64 = lambda a: torch.tensor(np.asarray(a, dtype=np.float64))
    P, off = {}, 0
    for p in hdr["params"]:
        n = int(np.prod(p["shape"]))
        P[p["name"]] = t64(blob[off:off + n]).reshape(p["shape"])
        off += n
    V = {"input": t64(blob[off:off + int(np.prod(hdr["input"]))]).reshape(hdr["input"])}
    gval = lambda name, like: t64(go["values"][name]).reshape(like.shape)
    ggrad = lambda name, like: t64(go["tensors"][name]).reshape(like.shape)

    def slope(act, y):
        if act == "relu":
            return (y > 0).double()
        if act == "leaky":
            return torch.where(torch.signbit(y), torch.tensor(0.1), torch.tensor(1.0))
        return torch.ones_like(y)

    rel = lambda a, b: float((a - b).norm() / max(float(b.norm()), 1e-30))
    contrib, pgrad, checks = {}, {}, []

    def add(name, g):
        contrib[name] = contrib.get(name, 0) + g

    for l in hdr["layers"]:
        L, k, ins = l["name"], l["kind"], l["inputs"]
        xs = [V[n] for n in ins]
        if k in ("conv_bn_act", "conv"):
            c, W = l["conv"], P[L + ".weight"]
            b = P[L + ".bias"] if l["bias"] else None
            cname = L + ".conv" if k == "conv_bn_act" else L
            ref_y = F.conv2d(xs[0], W, b, c["Stride"], c["Pad"], 1, c["Groups"])
            V[cname] = gval(cname, ref_y)
            checks.append(("forward " + cname, rel(V[cname], ref_y)))
            if k == "conv_bn_act":
                z = V[cname]
                V[L] = gval(L, z)
                dz = ggrad(L, z) * slope(l["act"], V[L])
                mu, var = z.mean((0, 2, 3), keepdim=True), z.var((0, 2, 3), unbiased=False, keepdim=True)
                inv = 1 / torch.sqrt(var + 1e-5)
                xh = (z - mu) * inv
                pgrad[L + ".bn.bias"] = dz.sum((0, 2, 3))
                pgrad[L + ".bn.scale"] = (dz * xh).sum((0, 2, 3))
                g = P[L + ".bn.scale"].reshape(1, -1, 1, 1)
                dconv = g * inv * (dz - dz.mean((0, 2, 3), keepdim=True) - xh * (dz * xh).mean((0, 2, 3), keepdim=True))
                checks.append(("bn backward -> grad of " + cname, rel(ggrad(cname, z), dconv)))
            xr, Wr = xs[0].clone().requires_grad_(True), W.clone().requires_grad_(True)
            br = b.clone().requires_grad_(True) if b is not None else None
            F.conv2d(xr, Wr, br, c["Stride"], c["Pad"], 1, c["Groups"]).backward(ggrad(cname, ref_y))
            pgrad[L + ".weight"] = Wr.grad
            if br is not None:
                pgrad[L + ".bias"] = br.grad
            add(ins[0], xr.grad)
        elif k == "maxpool":
            p = l["pool"]
            xr = xs[0].clone().requires_grad_(True)
            y = F.max_pool2d(xr, p["K"], p["Stride"], p["Pad"])
            V[L] = gval(L, y)
            checks.append(("forward " + L, rel(V[L], y.detach())))
            y.backward(ggrad(L, y))
            add(ins[0], xr.grad)
        elif k == "upsample2x":
            y = F.interpolate(xs[0], scale_factor=2, mode="nearest")
            V[L] = gval(L, y)
            checks.append(("forward " + L, rel(V[L], y)))
            n, ch, h, w = xs[0].shape
            add(ins[0], ggrad(L, y).reshape(n, ch, h, 2, w, 2).sum((3, 5)))
        elif k == "concat":
            y = torch.cat(xs, 1)
            V[L] = gval(L, y)
            checks.append(("forward " + L, rel(V[L], y)))
            dy, o = ggrad(L, y), 0
            for n, x in zip(ins, xs):
                add(n, dy[:, o:o + x.shape[1]])
                o += x.shape[1]
        elif k == "add_act":
            s = xs[0] + xs[1]
            V[L] = gval(L, s)
            dz = ggrad(L, s) * slope(l["act"], V[L])
            add(ins[0], dz)
            add(ins[1], dz)
        else:
            raise SystemExit("gen_fullnet: unknown layer kind " + k)
    for n, g in contrib.items():
        if n != "input":
            checks.append(("sum over consumers -> grad of " + n, rel(ggrad(n, g), g)))
    for n, g in pgrad.items():
        got = t64(go["params"][n]).reshape(g.shape)
        scale = float(g.norm())
        if n.endswith(".bn.scale"):  # see fullnet_test.go, fullnetBNScaleFloor
            scale = max(scale, 1e-3 * float(pgrad[n[:-len("scale")] + "bias"].norm()))
        checks.append(("param grad " + n, float((got - g).norm()) / max(scale, 1e-30)))
    worst = max(checks, key=lambda c: c[1])
    rest = max((c for c in checks if not c[0].endswith(".bn.scale")), key=lambda c: c[1])
    print("%s: %d op-level checks, worst %.2e (%s); worst but BN scales %.2e (%s)" % (
        os.path.basename(prefix), len(checks), worst[1], worst[0], rest[1], rest[0]))
    bad = [c for c in checks if c[1] > tol]
    for c in bad:
        print("  above %.0e: %-60s %.3e" % (tol, c[0], c[1]))
    return len(bad)


def main():
    torch.set_default_dtype(torch.float64)
    if len(sys.argv) == 3 and sys.argv[1] == "--local":
        sys.exit(1 if sum(local_check(os.path.join(sys.argv[2], n), 1e-3) for n, _ in NETS) else 0)
    if len(sys.argv) != 2:
        sys.exit("usage: gen_fullnet.py EXPORT_DIR > fullnet.json | gen_fullnet.py --local EXPORT_DIR")
    nets = []
    for name, cfg in NETS:
        prefix = os.path.join(sys.argv[1], name)
        if os.path.exists(prefix + ".json"):
            nets.append(run(prefix, name, cfg))
    train = []
    for name, cfg in NETS:
        prefix = os.path.join(sys.argv[1], name + ".train")
        if os.path.exists(prefix + ".json"):
            train.append(train_run(prefix, name, cfg))
    out = {"generator": "testdata/nn/gen_fullnet.py", "torch": torch.__version__, "nets": nets, "train": train}
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
