#!/usr/bin/env python3
"""PyTorch timings of the layers benchmarked in pkg/nn/bench_test.go (2 threads),
to quote ratios measured in the same run: /usr/bin/python3 bench_reference.py"""
import json, time
import torch
import torch.nn as nn

torch.set_num_threads(2)


def cbl(cin, cout, k, s=1, g=1, act="leaky"):
    return [nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.1) if act == "leaky" else nn.ReLU()]


def bench(name, model, shape, train, reps=5):
    x = torch.randn(*shape)
    model.train(train)
    def step():
        if train:
            model.zero_grad()
            (model(x).sum() * 1e-3).backward()
        else:
            with torch.no_grad():
                model(x)
    step()
    t = time.perf_counter()
    for _ in range(reps):
        step()
    dt = (time.perf_counter() - t) / reps
    print(json.dumps({"bench": name, "ms_per_op": round(dt * 1e3, 1)}))


convbn = nn.Sequential(*cbl(128, 256, 3), *cbl(256, 128, 1))
dw = nn.Sequential(*cbl(256, 256, 3, g=256, act="relu"), *cbl(256, 256, 1, act="relu"))
stem = nn.Sequential(*cbl(3, 64, 7, 2, act="relu"), nn.MaxPool2d(3, 2, 1))
bench("ConvBNLeakyTrain", convbn, (8, 128, 40, 40), True)
bench("ConvBNLeakyInfer", convbn, (8, 128, 40, 40), False)
bench("DepthwiseBlockTrain", dw, (8, 256, 40, 40), True)
bench("DepthwiseBlockInfer", dw, (8, 256, 40, 40), False)
bench("StemInfer", stem, (8, 3, 320, 320), False)
