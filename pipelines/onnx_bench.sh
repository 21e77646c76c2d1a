#!/usr/bin/env bash
# The exported BCCD student in onnxruntime-node against detect-infer's own
# network time, same machine, same run (`make onnx-bench BCCD=path/to/BCCD`).
# The student is freshly initialised (detect-train -o train.max_iters=0; speed
# does not depend on the weights), exported at 320 px with BatchNorm folded,
# and run by both on BCCD's 364 images, in place (detect-infer) or random input of the
# same size (onnxruntime). Both use 2 threads (GOMAXPROCS=2; intraOpNumThreads 2).
# Usage: bash pipelines/onnx_bench.sh BCCD OUTDIR NODE_MODULES
set -euo pipefail
bccd=$1 out=$2 modules=$3
cfg=pipelines/configs/bccd_student.yml
mkdir -p "$out"
bin/detect-train -c "$cfg" -o data.root="$bccd" -o train.max_iters=0 --out "$out/student" 2>/dev/null
bin/detect-export -c "$cfg" -o data.root="$bccd" --weights "$out/student/model_final.ckpt" --size 320 --out "$out/student.onnx"
bin/detect-infer --version 2>&1 | head -1
GOMAXPROCS=2 bin/detect-infer -c "$cfg" -o data.root="$bccd" --weights "$out/student/model_final.ckpt" --size 320 \
  --infer-dir "$bccd/JPEGImages" --output-dir "$out/infer" 2>&1 | grep 'network forward'
for batch in 1 8; do
  NODE_PATH="$modules" node testdata/export/ort_bench.cjs "$out/student.onnx" "$batch" 320 320 $((160 / batch)) 2
done
