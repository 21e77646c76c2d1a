#!/usr/bin/python3
"""onnx.checker on exported models (Debian python3-onnx).

    /usr/bin/python3 testdata/export/check_onnx.py MODEL.onnx...

Runs onnx.checker.check_model(full_check=True) (structure, opset 13 schemas and
shape inference) on each file; prints one line per model, exits 1 on the first
failure. Used by tools/detect-export's TestONNXRuntime (make test-onnx).
"""
import sys

import onnx


def main():
    for path in sys.argv[1:]:
        m = onnx.load(path)
        onnx.checker.check_model(m, full_check=True)
        ops = sorted({n.op_type for n in m.graph.node})
        print("%s: ok (ir %d, opset %d, %d nodes: %s)" % (path, m.ir_version, m.opset_import[0].version, len(m.graph.node), " ".join(ops)))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the checker's message names what is wrong
        print("check_onnx: %s" % e, file=sys.stderr)
        sys.exit(1)
