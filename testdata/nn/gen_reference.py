#!/usr/bin/env python3
"""PyTorch reference values for pkg/nn (run: /usr/bin/python3 gen_reference.py).

Two blocks in train mode on random tensors, loss = sum(out * r) with a fixed
random r:
  convbn:    conv3x3 (no bias) + BatchNorm2d + LeakyReLU(0.1)
  depthwise: depthwise conv3x3 + BN + ReLU, then conv1x1 + BN + ReLU
Stored per block: input, r, initial parameters and running stats, the output,
the gradients w.r.t. the input and every parameter, and the running stats after
the step. torch BN momentum 0.1 (= running*0.9 + batch*0.1), eps 1e-5, running
variance unbiased. Writes reference.json beside this script.
"""
import json, os
import torch
import torch.nn as nn

torch.manual_seed(1234)
torch.set_num_threads(1)


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def randomise_bn(bn):
    with torch.no_grad():
        bn.weight.copy_(1 + 0.3 * torch.randn_like(bn.weight))
        bn.bias.copy_(0.2 * torch.randn_like(bn.bias))
        bn.running_mean.copy_(0.1 * torch.randn_like(bn.running_mean))
        bn.running_var.copy_(1 + 0.2 * torch.rand_like(bn.running_var))


def run(name, model, convs, bns, xshape):
    """convs/bns: lists of (our parameter name prefix, module)."""
    for _, bn in bns:
        randomise_bn(bn)
    x = torch.randn(*xshape, requires_grad=True)
    params, state = {}, {}
    for p, conv in convs:
        params[p + ".weight"] = {"shape": list(conv.weight.shape), "data": flat(conv.weight)}
    for p, bn in bns:
        params[p + ".bn.scale"] = {"shape": list(bn.weight.shape), "data": flat(bn.weight)}
        params[p + ".bn.bias"] = {"shape": list(bn.bias.shape), "data": flat(bn.bias)}
        state[p + ".bn.mean"] = flat(bn.running_mean)
        state[p + ".bn.var"] = flat(bn.running_var)
    model.train()
    out = model(x)
    r = torch.randn_like(out)
    (out * r).sum().backward()
    grads = {}
    for p, conv in convs:
        grads[p + ".weight"] = flat(conv.weight.grad)
    for p, bn in bns:
        grads[p + ".bn.scale"] = flat(bn.weight.grad)
        grads[p + ".bn.bias"] = flat(bn.bias.grad)
    after = {}
    for p, bn in bns:
        after[p + ".bn.mean"] = flat(bn.running_mean)
        after[p + ".bn.var"] = flat(bn.running_var)
    return {
        "input_shape": list(xshape), "input": flat(x), "r": flat(r),
        "output_shape": list(out.shape), "output": flat(out),
        "params": params, "state_before": state,
        "grad_input": flat(x.grad), "grads": grads, "state_after": after,
    }


def main():
    ref = {"torch_version": torch.__version__, "momentum_torch": 0.1, "eps": 1e-5}
    conv = nn.Conv2d(3, 4, 3, 2, 1, bias=False)
    bn = nn.BatchNorm2d(4, eps=1e-5, momentum=0.1)
    m = nn.Sequential(conv, bn, nn.LeakyReLU(0.1))
    ref["convbn"] = run("convbn", m, [("blk", conv)], [("blk", bn)], (2, 3, 9, 8))

    dw = nn.Conv2d(4, 4, 3, 1, 1, groups=4, bias=False)
    bn1 = nn.BatchNorm2d(4)
    pw = nn.Conv2d(4, 6, 1, 1, 0, bias=False)
    bn2 = nn.BatchNorm2d(6)
    m = nn.Sequential(dw, bn1, nn.ReLU(), pw, bn2, nn.ReLU())
    ref["depthwise"] = run("depthwise", m, [("dw", dw), ("pw", pw)], [("dw", bn1), ("pw", bn2)], (2, 4, 7, 6))

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.json")
    with open(path + ".tmp", "w") as f:
        json.dump(ref, f)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
