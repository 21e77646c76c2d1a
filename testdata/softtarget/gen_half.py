"""Reference float32 -> IEEE binary16 conversions from numpy (round to nearest,
ties to even, subnormals kept) for pkg/softtarget's half-precision encoding.

Run: /usr/bin/python3 gen_half.py > half_numpy.json
"""
import json

import numpy as np

rng = np.random.default_rng(20261129)
vals = [0.0, -0.0, 1.0, -1.0, 0.5, 65504.0, 65519.99, 65520.0, 1e6, -1e6,
        2.0**-24, 2.0**-25, 3 * 2.0**-25, 2.0**-14, 2.0**-14 - 2.0**-25, 1e-8,
        1 + 2.0**-11, 1 + 3 * 2.0**-11, 2048 + 1, 2048 + 3, float("inf"), float("-inf")]
vals += list(rng.normal(0, 4, 1000))          # logits
vals += list(rng.normal(-7, 2, 500))          # background objectness
vals += list(np.exp(rng.uniform(-20, 12, 500)) * rng.choice([-1, 1], 500))  # every exponent
f32 = np.array(vals, dtype=np.float32)
f16 = f32.astype(np.float16)
print(json.dumps({
    "float32_bits": [int(b) for b in f32.view(np.uint32)],
    "float16_bits": [int(b) for b in f16.view(np.uint16)],
}))
