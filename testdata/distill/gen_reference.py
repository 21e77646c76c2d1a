#!/usr/bin/python3
"""Reference values for pkg/distill: every distillation loss written
independently in PyTorch (float64, autograd for the gradients), following

  PaddleDetection release/0.3 slim/distillation/distill.py
      l2_distill     sum over pairs of PaddleSlim l2_loss, times weight (100)
      split_distill  obj_weighted_reg + obj_weighted_cls + obj_loss per scale,
                     summed over scales, times weight (1000)
  PaddleSlim paddleslim/dist/single_distiller.py
      l2_loss        mean(square_error_cost(s, t))
      fsp_loss       mean(square_error_cost(fsp_matrix(s1, s2), fsp_matrix(t1, t2)))
                     fsp_matrix(x, y)[n] = x_n y_n^T / (H*W)  (Paddle fsp_op.h)
      soft_label_loss mean(cross_entropy(softmax(s/Ts), softmax(t/Tt), soft_label=True)),
                     softmax over the last axis (axis=-1)
  and the project's own pair losses (pkg/distill/pair.go):
      l1             mean |s - t|
      cosine         mean over positions of 1 - <s,t>/(max(|s|,eps) max(|t|,eps)), channels axis 1
      kl             T^2 * mean over positions of KL(softmax(t/T) || softmax(s/T)), channels axis 1

Run: /usr/bin/python3 testdata/distill/gen_reference.py > testdata/distill/reference.json

Inputs are not stored: the student tensors, then the teacher tensors, are
filled from a 64-bit LCG that the Go test reimplements (lcg_fill), then a short
list of overrides is applied (exact ties for the |.| terms, teacher objectness
exactly 0, large logits).
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

MASK64 = (1 << 64) - 1
torch.set_default_dtype(torch.float64)


def lcg_fill(state, count, amp):
    """count values uniform in [-amp, amp), rounded to float32; returns (values, state)."""
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK64
        u = (state >> 40) / float(1 << 24)
        out[i] = f32((u * 2.0 - 1.0) * amp)
    return out, state


def f32(v):
    return float(np.float32(v))


# ---------------------------------------------------------------- the losses

def sce(z, p):
    """fluid.layers.sigmoid_cross_entropy_with_logits(z, p), elementwise."""
    return torch.clamp(z, min=0) - z * p + torch.log(1 + torch.exp(-torch.abs(z)))


def split_output(out, num_classes):
    """yolo_loss.py _split_output: x, y, w, h, obj [N, A, H, W], cls [N, A, H, W, C]."""
    n, ch, h, w = out.shape
    a = ch // (5 + num_classes)
    o = out.reshape(n, a, 5 + num_classes, h, w)
    return (o[:, :, 0], o[:, :, 1], o[:, :, 2], o[:, :, 3], o[:, :, 4],
            o[:, :, 5:].permute(0, 1, 3, 4, 2))


def split_distill(student, teacher, num_classes, weight):
    regs, clss, objs = [], [], []
    for s, t in zip(student, teacher):
        sx, sy, sw, sh, sobj, scls = split_output(s, num_classes)
        tx, ty, tw, th, tobj, tcls = split_output(t, num_classes)
        # obj_weighted_reg
        loss = sce(sx, torch.sigmoid(tx)) + sce(sy, torch.sigmoid(ty)) \
            + torch.abs(sw - tw) + torch.abs(sh - th)
        regs.append((loss * torch.sigmoid(tobj)).mean())
        # obj_weighted_cls: elementwise_mul(axis=0) broadcasts tobj over C
        loss = sce(scls, torch.sigmoid(tcls))
        clss.append((loss * torch.sigmoid(tobj).unsqueeze(-1)).mean())
        # obj_loss
        mask = (tobj > 0.).to(torch.float64)
        objs.append(sce(sobj, mask).mean())
    reg, cls, obj = sum(regs), sum(clss), sum(objs)
    total = (reg + cls + obj) * weight
    return total, {"reg": float(reg * weight), "cls": float(cls * weight), "obj": float(obj * weight)}


def l2_pairs(student, teacher, weight):
    return sum(((s - t) ** 2).mean() for s, t in zip(student, teacher)) * weight


def l1_pairs(student, teacher, weight):
    return sum(torch.abs(s - t).mean() for s, t in zip(student, teacher)) * weight


def fsp_matrix(x, y):
    n, c1, h, w = x.shape
    c2 = y.shape[1]
    return torch.bmm(x.reshape(n, c1, h * w), y.reshape(n, c2, h * w).transpose(1, 2)) / (h * w)


def fsp(student, teacher, weight):
    total = 0
    for k in range(0, len(student), 2):
        gs = fsp_matrix(student[k], student[k + 1])
        gt = fsp_matrix(teacher[k], teacher[k + 1])
        total = total + ((gs - gt) ** 2).mean()
    return total * weight


def soft_label(student, teacher, ts, tt, axis, weight):
    total = 0
    for s, t in zip(student, teacher):
        ax = len(s.shape) - 1 if axis == 0 else (axis if axis > 0 else axis + len(s.shape))
        p = F.softmax(s / ts, dim=ax)
        q = F.softmax(t / tt, dim=ax)
        ce = -(q * torch.log(p)).sum(dim=ax)  # cross_entropy(soft_label=True)
        total = total + ce.mean()
    return total * weight


def cosine(student, teacher, eps, weight):
    total = 0
    for s, t in zip(student, teacher):
        dot = (s * t).sum(dim=1)
        ns = torch.clamp(torch.sqrt((s * s).sum(dim=1)), min=eps)
        nt = torch.clamp(torch.sqrt((t * t).sum(dim=1)), min=eps)
        total = total + (1 - dot / (ns * nt)).mean()
    return total * weight


def kl(student, teacher, temp, weight):
    total = 0
    for s, t in zip(student, teacher):
        positions = s.numel() // s.shape[1]
        logp = F.log_softmax(s / temp, dim=1)
        q = F.softmax(t / temp, dim=1)
        total = total + (q * (torch.log(q) - logp)).sum() / positions
    return total * weight * temp * temp


# ---------------------------------------------------------------- the cases

HEADS_C3 = [[2, 24, 4, 4], [2, 24, 2, 3], [2, 24, 1, 1]]  # A=3, C=3

CASES = [
    dict(name="l2_heads_voc", kind="l2", pair=False, options={},
         student=HEADS_C3, teacher=HEADS_C3, seed=11, amp=3.0, overrides=[]),
    dict(name="fine_grained_c3", kind="fine_grained", pair=False, options={"num_classes": 3},
         student=HEADS_C3, teacher=HEADS_C3, seed=12, amp=3.0,
         # w/h ties (|.| at 0), teacher obj exactly 0, large logits
         overrides=[["tie", 0, 2 * 16 + 5], ["tie", 0, 3 * 16 + 7], ["tie", 1, 10 * 6 + 2],
                    ["t", 0, 4 * 16 + 3, 0.0], ["t", 2, 4, 0.0], ["t", 1, 1 * 24 * 6 + 4 * 6, 0.0],
                    ["s", 0, 5, 30.0], ["s", 0, 6, -30.0], ["t", 0, 7, 25.0], ["t", 0, 8 * 16 + 1, -25.0],
                    ["t", 0, 12 * 16 + 2, 20.0], ["s", 0, 5 * 16 + 3, 40.0]]),
    dict(name="fine_grained_c1_a2_weight7", kind="fine_grained", pair=False,
         options={"num_classes": 1, "weight": 7.0},
         student=[[3, 12, 2, 5]], teacher=[[3, 12, 2, 5]], seed=13, amp=2.0, overrides=[]),
    dict(name="fsp_two_pairs", kind="fsp", pair=False, options={"weight": 0.5},
         student=[[2, 3, 4, 5], [2, 2, 4, 5], [2, 4, 3, 3], [2, 3, 3, 3]],
         teacher=[[2, 3, 2, 2], [2, 2, 2, 2], [2, 4, 6, 6], [2, 3, 6, 6]], seed=14, amp=1.5, overrides=[]),
    dict(name="soft_label_last_axis", kind="soft_label", pair=False,
         options={"student_temperature": 2.0, "teacher_temperature": 4.0},
         student=[[2, 3, 4, 5]], teacher=[[2, 3, 4, 5]], seed=15, amp=4.0, overrides=[]),
    dict(name="soft_label_channel_axis", kind="soft_label", pair=False,
         options={"teacher_temperature": 3.0, "axis": 1, "weight": 2.0},
         student=[[2, 5, 3, 2], [4, 6]], teacher=[[2, 5, 3, 2], [4, 6]], seed=16, amp=4.0, overrides=[]),
    dict(name="soft_label_logits", kind="soft_label", pair=False, options={},
         student=[[4, 10]], teacher=[[4, 10]], seed=17, amp=5.0, overrides=[]),
    dict(name="pair_l2", kind="l2", pair=True, options={},
         student=[[2, 4, 3, 3], [3, 5]], teacher=[[2, 4, 3, 3], [3, 5]], seed=18, amp=2.0, overrides=[]),
    dict(name="pair_l1_ties", kind="l1", pair=True, options={"weight": 3.0},
         student=[[2, 4, 3, 3]], teacher=[[2, 4, 3, 3]], seed=19, amp=2.0,
         overrides=[["tie", 0, 0], ["tie", 0, 17], ["tie", 0, 50]]),
    dict(name="pair_cosine", kind="cosine", pair=True, options={},
         student=[[2, 6, 3, 2], [4, 8]], teacher=[[2, 6, 3, 2], [4, 8]], seed=20, amp=2.0, overrides=[]),
    dict(name="pair_kl_t4", kind="kl", pair=True, options={"temperature": 4.0},
         student=[[2, 6, 3, 2]], teacher=[[2, 6, 3, 2]], seed=21, amp=5.0, overrides=[]),
    dict(name="pair_kl_t1_logits", kind="kl", pair=True, options={"weight": 0.25},
         student=[[5, 7]], teacher=[[5, 7]], seed=22, amp=3.0, overrides=[]),
]


def build(case):
    state = case["seed"]
    sides = []
    for shapes in (case["student"], case["teacher"]):
        side = []
        for sh in shapes:
            v, state = lcg_fill(state, int(np.prod(sh)), case["amp"])
            side.append(v)
        sides.append(side)
    stu, tea = sides
    for ov in case["overrides"]:
        if ov[0] == "tie":  # student value := teacher value
            stu[ov[1]][ov[2]] = tea[ov[1]][ov[2]]
        elif ov[0] == "s":
            stu[ov[1]][ov[2]] = f32(ov[3])
        else:
            tea[ov[1]][ov[2]] = f32(ov[3])
    # resolve ties to explicit values so that the Go side only applies values
    resolved = []
    for ov in case["overrides"]:
        if ov[0] == "tie":
            resolved.append(["s", ov[1], ov[2], float(tea[ov[1]][ov[2]])])
        else:
            resolved.append([ov[0], ov[1], ov[2], f32(ov[3])])
    s = [torch.tensor(v.reshape(sh), requires_grad=True) for v, sh in zip(stu, case["student"])]
    t = [torch.tensor(v.reshape(sh)) for v, sh in zip(tea, case["teacher"])]
    return s, t, resolved


def evaluate(case, s, t):
    o = case["options"]
    kind, pair = case["kind"], case["pair"]
    parts = None
    if not pair and kind == "l2":
        loss = l2_pairs(s, t, o.get("weight", 100.0))
    elif kind == "fine_grained":
        loss, parts = split_distill(s, t, o["num_classes"], o.get("weight", 1000.0))
    elif kind == "fsp":
        loss = fsp(s, t, o.get("weight", 1.0))
    elif kind == "soft_label":
        loss = soft_label(s, t, o.get("student_temperature", 1.0), o.get("teacher_temperature", 1.0),
                          o.get("axis", 0), o.get("weight", 1.0))
    elif pair and kind == "l2":
        loss = l2_pairs(s, t, o.get("weight", 1.0))
    elif kind == "l1":
        loss = l1_pairs(s, t, o.get("weight", 1.0))
    elif kind == "cosine":
        loss = cosine(s, t, o.get("eps", 1e-8), o.get("weight", 1.0))
    elif kind == "kl":
        loss = kl(s, t, o.get("temperature", 1.0), o.get("weight", 1.0))
    else:
        raise ValueError(kind)
    return loss, parts


def main():
    out = []
    for case in CASES:
        s, t, resolved = build(case)
        loss, parts = evaluate(case, s, t)
        loss.backward()
        rec = {k: case[k] for k in ("name", "kind", "pair", "options", "student", "teacher", "seed", "amp")}
        rec["overrides"] = resolved
        rec["loss"] = float(loss)
        if parts is not None:
            rec["parts"] = parts
        rec["grads"] = [[float("%.12g" % g) for g in x.grad.reshape(-1).tolist()] for x in s]
        out.append(rec)
    json.dump({"generator": "testdata/distill/gen_reference.py", "torch": torch.__version__,
               "cases": out}, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
