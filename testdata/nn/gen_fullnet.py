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
loss, the outputs, and summaries (norm, sum, sum of |.|, a fixed pseudo-random
projection, first 16 values) of
every parameter gradient and every layer-output gradient:

    FULLNET_EXPORT=/tmp/fullnet go test -tags openblas -run TestFullNet ./pkg/yolo/
    /usr/bin/python3 testdata/nn/gen_fullnet.py /tmp/fullnet > testdata/nn/fullnet.json

(The export is written before any step runs, so any build and BLAS gives the
same files.) The "train" entries (TestFullNetTrainSteps) come from
DIR/NAME.train.*: 30 SGD steps of the YOLOv3 loss
(testdata/yololoss/gen_reference.py) on one batch.

Every compared quantity also gets its measured float32 sensitivity ("dev",
"flipdev", see net_sensitivity and train_sensitivity): the same computation
is repeated in float32 with inputs perturbed by a few ulps and other
summation orders, and activations close to a ReLU/LeakyReLU kink are flipped
one at a time; the test's tolerances are a fixed multiple of it. That is
about 200 float32 and flipped gradient runs and 32 float32 training runs,
spread over the CPUs (GEN_FULLNET_JOBS=N to choose): ~15 minutes on 2 cores.
With --local DIR it instead checks the Go step op by op (see local_check):

    /usr/bin/python3 testdata/nn/gen_fullnet.py --local /tmp/fullnet
"""
import importlib.util, json, multiprocessing, os, sys

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
_proj = np.zeros(0)


def proj_weights(n):
    """The first n weights of fullnet_test.go's projection: its fullnetRand
    (64-bit LCG, top 24 bits, uniform [-1, 1), exact in float32) from seed
    PROJ_SEED. A swap or permutation of gradient entries, which keeps the
    norm and sums, moves the projection."""
    global _proj
    if len(_proj) < n:
        out, r = np.empty(max(n, 2 * len(_proj))), PROJ_SEED
        for i in range(len(out)):
            r = (r * 6364136223846793005 + 1442695040888963407) % (1 << 64)
            out[i] = (r >> 40) / float(1 << 23) - 1
        _proj = out
    return _proj[:n]


PROJ_SEED = 4242


def summary(g):
    g = g.detach().reshape(-1).double()
    return {"n": g.numel(), "norm": float(g.norm()), "sum": float(g.sum()), "sumabs": float(g.abs().sum()),
            "proj": float(g @ torch.from_numpy(proj_weights(g.numel()))), "first": [float(v) for v in g[:FIRST]]}


def _block_forward(self, x):
    """BasicBlock.forward with its final ReLU as a module (self.post, added by
    load_model), so that act_hooks sees it like every other activation."""
    y = self.c2(self.c1(x))
    return self.post(y + (x if self.short is None else self.short(x)))


gr.ref.BasicBlock.forward = _block_forward


def act_hooks(model, act_name, record=None, flip=None):
    """Hooks on every ReLU and LeakyReLU module, whose output is the Go layer
    act_name[module]. record: dict filled with each one's input (the
    pre-activation) by Go layer name. flip: (Go layer name, flat element
    index) whose slope is exchanged (1 <-> 0 or 0.1), as if float32 rounding
    had put it on the other side of the kink. Returns the hook handles."""
    hooks = []
    for m, L in act_name.items():
        def hook(m, i, o, L=L):
            z = i[0]
            if record is not None:
                record[L] = z.detach()
            if flip is not None and flip[0] == L:
                pos = (z > 0).reshape(-1).clone()
                pos[flip[1]] = ~pos[flip[1]]
                slope = m.negative_slope if isinstance(m, nn.LeakyReLU) else 0.0
                return torch.where(pos.reshape(z.shape), z, slope * z)
            return None
        hooks.append(m.register_forward_hook(hook))
    return hooks


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


def perturb(blob, seed):
    """blob (float32) with every nonzero value moved by a random whole number of
    ulps in [-ULPS, ULPS] (zeros stay zero: the BN shifts start at exactly 0, and
    the structure that makes some gradients cancel must survive)."""
    rng = np.random.default_rng(seed)
    bits = blob.astype("<f4").view("<i4").copy()
    nz = blob != 0
    bits[nz] += rng.integers(-ULPS, ULPS + 1, size=int(nz.sum()), dtype=np.int64).astype("<i4")
    return bits.view("<f4")


def load_model(prefix, cfg, dtype=torch.float64, with_targets=True, seed=None):
    """The torch model with the Go export's parameters, the input and the targets
    (none when with_targets is false), the Go layer name of each conv module and
    the BN module after each conv. With seed set, every parameter, input and
    target value is perturbed by a few ulps first (see perturb)."""
    hdr = json.load(open(prefix + ".json"))
    blob = np.fromfile(prefix + ".bin", dtype="<f4")
    if seed is not None:
        blob = perturb(blob, seed)
    torch.manual_seed(0)
    model = gr.build(cfg).to(dtype).train()
    for m in [m for m in model.modules() if isinstance(m, gr.ref.BasicBlock)]:
        m.post = nn.ReLU()
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

    # The Go layer whose output each activation module makes.
    act_name = {}
    for k, (m, _, _) in enumerate(calls):
        if m in bn_after and k + 2 < len(calls) and isinstance(calls[k + 2][0], (nn.ReLU, nn.LeakyReLU)) \
                and calls[k + 2][1] is calls[k + 1][2]:
            act_name[calls[k + 2][0]] = conv_name[m]
    adds = [l["name"] for l in hdr["layers"] if l["kind"] == "add_act"]
    blocks = [m for (m, _, _) in calls if isinstance(m, gr.ref.BasicBlock)]
    assert len(adds) == len(blocks)
    for L, m in zip(adds, blocks):
        act_name[m.post] = L
    assert len(act_name) == sum(isinstance(m, (nn.ReLU, nn.LeakyReLU)) for m in model.modules())

    return hdr, model, x, targets, conv_name, bn_after, act_name


def run(prefix, name, cfg, dtype=torch.float64, full=False, seed=None, record=None, flip=None):
    """One network's fixture entry; dtype float32 (with seed: perturbed
    inputs) and flip are for judging float32 rounding noise (see
    net_sensitivity); record and flip go to act_hooks."""
    hdr, model, x, targets, conv_name, bn_after, act_name = load_model(prefix, cfg, dtype, seed=seed)
    hooks = act_hooks(model, act_name, record, flip)
    # Train-mode forward with every layer output kept for its gradient.
    calls, outs = forward_order(model, x)
    for h in hooks:
        h.remove()
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
    if seed is None and flip is None:
        print("%s: loss %.8g, %d param grads, %d tensor grads" % (name, float(loss), len(pg), len(tg)), file=sys.stderr)
    return {"name": name, "loss": float(loss), "outputs": [[float(v) for v in o.detach().reshape(-1)] for o in outs],
            "param_grads": pg, "tensor_grads": tg, "order": order}


# TestFullNetTrainSteps: the fixed ground truths (cx, cy, w, h normalised, label,
# score), the step count, learning rate and objectness bias init of fullnet_test.go.
TRAIN_GTS = [
    [[0.30, 0.40, 0.20, 0.25, 0, 1.0], [0.70, 0.60, 0.50, 0.45, 1, 1.0], [0.50, 0.50, 0.90, 0.80, 2, 1.0]],
    [[0.20, 0.75, 0.15, 0.30, 2, 1.0], [0.60, 0.30, 0.40, 0.35, 0, 1.0]],
]
TRAIN_STEPS, TRAIN_LR, TAIL = 30, 2e-3, 10

# Sensitivity (see net_sensitivity): RUNS float32 gradient runs and TRAIN_RUNS
# float32 training runs per network, each with every input, weight and target
# moved by up to ULPS ulps and with one of four summation orders (oneDNN or
# PyTorch's own im2col convolution, 1 or 2 threads); activations within
# FLIP_MARGIN times their float32 error of a kink flipped one at a time.
RUNS, TRAIN_RUNS, ULPS = 32, 16, 4
FLIP_MARGIN, MAX_FLIPS = 4, 256
POOL = None  # the worker processes (main)


class order:
    """Run k's summation order: oneDNN convolutions on even k, PyTorch's own
    (im2col + BLAS) on odd k; 1 thread for k mod 4 < 2, else 2."""
    def __init__(self, k):
        self.mkldnn, self.threads = k % 2 == 0, 1 + (k // 2) % 2

    def __enter__(self):
        self.prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        self.flags = torch.backends.mkldnn.flags(enabled=self.mkldnn)
        self.flags.__enter__()

    def __exit__(self, *exc):
        self.flags.__exit__(*exc)
        torch.set_num_threads(self.prev)


def sig(x):
    """x rounded up to 3 significant digits (deviations: keep the fixture small)."""
    if x == 0 or not np.isfinite(x):
        return float(x)
    e = 10 ** (np.floor(np.log10(abs(x))) - 2)
    return float("%.3g" % (np.ceil(x / e) * e))


def dev_summary(ref, runs):
    """Largest |run - ref| over the runs of each summary field."""
    d = lambda f: sig(max(abs(r[f] - ref[f]) for r in runs))
    return {"norm": d("norm"), "sum": d("sum"), "sumabs": d("sumabs"), "proj": d("proj"),
            "first": [sig(max(abs(r["first"][i] - ref["first"][i]) for r in runs)) for i in range(len(ref["first"]))]}


def deviations(ref, runs):
    """The largest |run - ref| over the runs of the loss, of each output (over
    its elements too) and of every field of every gradient summary."""
    d = {"loss": sig(max(abs(r["loss"] - ref["loss"]) for r in runs)),
         "outputs": [sig(max(float(np.max(np.abs(np.subtract(r["outputs"][k], o)))) for r in runs))
                     for k, o in enumerate(ref["outputs"])]}
    for key in ("param_grads", "tensor_grads"):
        d[key] = {n: dev_summary(s, [r[key][n] for r in runs]) for n, s in ref[key].items()}
    return d


def net_sensitivity(prefix, name, cfg):
    """The fixture entry of one network with its measured sensitivity.

    "dev" (per compared quantity, and in ref["dev"] for the loss and outputs)
    is the largest |float32 - float64| over RUNS float32 runs, each with every
    input, weight and target moved by up to ULPS ulps and one of four
    summation orders: how far float32 arithmetic alone moves each quantity.

    Flips: a pre-activation this close to the kink of its ReLU/LeakyReLU may
    land on either side in float32, and the other side changes the gradient of
    everything upstream of it by a discrete amount (up to ~10% in MobileNetV1,
    through BN backward). The runs cover the flips they happen to make; every
    other activation within FLIP_MARGIN times the largest float32 error seen
    at it (closest first, at most MAX_FLIPS) is flipped alone in a float64 run,
    listed in ref["dev"]["flips"] (Go layer, flat index, side in float64) and
    its effect kept apart as "flipdev". fullnet_test.go reads its own side of
    each listed activation and allows flipdev only when it took the other."""
    z64 = {}
    ref = run(prefix, name, cfg, record=z64)
    err = {L: torch.zeros_like(z) for L, z in z64.items()}
    crossed = {L: torch.zeros_like(z, dtype=torch.bool) for L, z in z64.items()}
    runs = []
    for e, zr in POOL.imap(_grad_job, [(prefix, name, cfg, k) for k in range(RUNS)]):
        runs.append(e)
        for L, z in zr.items():
            z = torch.from_numpy(z)
            err[L] = torch.maximum(err[L], (z.double() - z64[L]).abs())
            crossed[L] |= (z > 0) != (z64[L] > 0)
    cands, n_crossed = [], 0
    for L, z in z64.items():
        zf, ef, cf = z.reshape(-1), err[L].reshape(-1), crossed[L].reshape(-1)
        n_crossed += int(cf.sum())
        for j in torch.nonzero((zf.abs() <= FLIP_MARGIN * ef) & ~cf).reshape(-1).tolist():
            cands.append((float(zf[j].abs() / ef[j]) if ef[j] > 0 else 0.0, L, j, bool(zf[j] > 0)))
    cands.sort()
    cands = cands[:MAX_FLIPS]
    flips = POOL.map(_flip_job, [(prefix, name, cfg, (L, j)) for _, L, j, _ in cands], chunksize=4)
    print("%s: %d float32 runs; %d activations crossed a kink in them, %d more within %g x their float32 error "
          "of one flipped alone" % (name, RUNS, n_crossed, len(cands), FLIP_MARGIN), file=sys.stderr)
    d = deviations(ref, runs)
    ref["dev"] = {"runs": RUNS, "ulps": ULPS, "loss": d["loss"], "outputs": d["outputs"],
                  "flips": [{"tensor": L, "index": j, "positive": pos, "margin": sig(m)} for m, L, j, pos in cands]}
    for key in ("param_grads", "tensor_grads"):
        for n, s in ref[key].items():
            s["dev"] = d[key][n]
    if flips:
        f = deviations(ref, flips)
        ref["dev"]["flip_loss"], ref["dev"]["flip_outputs"] = f["loss"], f["outputs"]
        for key in ("param_grads", "tensor_grads"):
            for n, s in ref[key].items():
                s["flipdev"] = f[key][n]
    return ref


def train_sensitivity(ref, runs):
    """Adds to a float64 train entry ref the largest |float32 - float64| over
    the float32 training runs of each step's loss, of the mean loss of the
    last TAIL steps and of each parameter's final RMS (no flips: after the
    first update every run is on its own trajectory anyway)."""
    ref["dev"] = {"runs": len(runs), "ulps": ULPS,
                  "losses": [sig(max(abs(r["losses"][i] - l) for r in runs)) for i, l in enumerate(ref["losses"])],
                  "tail": sig(max(abs(np.mean(r["losses"][-TAIL:]) - np.mean(ref["losses"][-TAIL:])) for r in runs)),
                  "rms": {n: sig(max(abs(r["rms"][n] - v) for r in runs)) for n, v in ref["rms"].items()}}
    return ref


def train_run(prefix, name, cfg, dtype=torch.float64, seed=None):
    """30 steps of torch.optim.SGD (momentum 0.9, weight decay 5e-4 on conv
    weights only, as pkg/nn's SGD) on the YOLOv3 operator-path loss of
    testdata/yololoss/gen_reference.py, from the Go initial weights (the
    objectness biases already set), float64, train mode."""
    hdr, model, x, _, conv_name, bn_after, _ = load_model(prefix, cfg, dtype, with_targets=False, seed=seed)
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
    if seed is None:
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
        if n.endswith(".bn.scale"):
            # Where a BN+ReLU feeds a depthwise conv and then another BN, the
            # loss depends on the BN scale only through eps: dL/dscale is a
            # sum that cancels to ~1e-5 of the shift gradient, and float
            # rounding of it (ours and the float64 recomputation here) is
            # ~5% of that. Compare it on the scale of 1e-3 x the shift
            # gradient.
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


def _grad_job(args):
    """Worker: float32 gradient run k of one network, with its pre-activations."""
    prefix, name, cfg, k = args
    _worker_init()
    z = {}
    with order(k):
        e = run(prefix, name, cfg, torch.float32, seed=1000 + k, record=z)
    return e, {L: v.numpy() for L, v in z.items()}


def _flip_job(args):
    """Worker: float64 gradient run of one network with one activation flipped."""
    prefix, name, cfg, flip = args
    _worker_init()
    return run(prefix, name, cfg, flip=flip)


def _train_job(args):
    """Worker: train run (float64 for k < 0, else float32 run k)."""
    prefix, name, cfg, k = args
    _worker_init()
    if k < 0:
        return train_run(prefix, name, cfg)
    with order(k):
        return train_run(prefix, name, cfg, torch.float32, seed=2000 + k)


def _worker_init():
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)


def main():
    _worker_init()
    if len(sys.argv) == 3 and sys.argv[1] == "--local":
        sys.exit(1 if sum(local_check(os.path.join(sys.argv[2], n), 1e-3) for n, _ in NETS) else 0)
    if len(sys.argv) != 2:
        sys.exit("usage: gen_fullnet.py EXPORT_DIR > fullnet.json | gen_fullnet.py --local EXPORT_DIR")
    global POOL
    # The float32 and flipped runs are independent: spread them over the CPUs
    # (GEN_FULLNET_JOBS to override). Every run is deterministic on its own.
    jobs = int(os.environ.get("GEN_FULLNET_JOBS", "0")) or os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(jobs) as POOL:
        nets = []
        for name, cfg in NETS:
            prefix = os.path.join(sys.argv[1], name)
            if os.path.exists(prefix + ".json"):
                nets.append(net_sensitivity(prefix, name, cfg))
        train = []
        for name, cfg in NETS:
            prefix = os.path.join(sys.argv[1], name + ".train")
            if os.path.exists(prefix + ".json"):
                runs = POOL.map(_train_job, [(prefix, name, cfg, k) for k in range(-1, TRAIN_RUNS)], chunksize=1)
                train.append(train_sensitivity(runs[0], runs[1:]))
                print("%s: %d float32 training runs" % (name, TRAIN_RUNS), file=sys.stderr)
    out = {"generator": "testdata/nn/gen_fullnet.py", "torch": torch.__version__, "nets": nets, "train": train}
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
