#!/usr/bin/env bash
# make bench: JSON lines from our full-network benchmarks and, when PyTorch is
# installed, from ../shared/bench/torch_reference.py in the same run, so that
# ratios (ours / PyTorch images/s) can be quoted. Peak memory (max RSS, KiB) is
# added to each line from /usr/bin/time when it is available.
set -euo pipefail
tags=${GOTAGS:-openblas}
ref=../shared/bench/torch_reference.py
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
timeit() { # timeit FILE CMD...: run CMD, store its max RSS in FILE
  if [ -x /usr/bin/time ]; then /usr/bin/time -f '%M' -o "$1" "${@:2}"; else "${@:2}"; echo 0 >"$1"; fi
}
addrss() { # addrss RSSFILE < json lines
  local rss; rss=$(tail -n1 "$1")
  sed -E "s/}\$/, \"max_rss_kib\": ${rss}}/"
}
go test -c -tags "$tags" -o "$out/yolo.test" ./pkg/yolo
for b in TrainStepMobileNetV1YOLOv3 InferResNet34YOLOv3; do
  YOLODISTILL_BENCH_JSON="$out/$b.json" timeit "$out/$b.rss" \
    "$out/yolo.test" -test.run '^$' -test.bench "^Benchmark$b\$" -test.benchtime 5x >&2
  addrss "$out/$b.rss" <"$out/$b.json"
done
if [ -f "$ref" ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  timeit "$out/t1.rss" /usr/bin/python3 "$ref" --model mobilenet_v1 --mode train --size 320 --batch 8 >"$out/t1.json"
  addrss "$out/t1.rss" <"$out/t1.json"
  timeit "$out/t2.rss" /usr/bin/python3 "$ref" --model resnet34 --mode infer --size 320 --batch 8 >"$out/t2.json"
  addrss "$out/t2.rss" <"$out/t2.json"
else
  echo "bench: PyTorch or $ref not found; only our numbers (apt-get install python3-torch for the yardstick)" >&2
fi
# With BCCD=DIR (make bench BCCD=path/to/BCCD): the CPU-sized networks of the
# BCCD bench on real data, through the tools (bin/, built by make build):
# - the student's training step (bccd_student.yml: MobileNetV1 x0.25 at 320,
#   batch 8; the preset trains multi-scale, the bench pins 320): detect-train for 40 iterations without evaluation, images/s as
#   the median of metrics.jsonl's records after iteration 10;
# - the teacher-dump rate (bccd_teacher.yml: ResNet18 x0.5 at 320) in views/s
#   for one epoch of the student's views, with --cache-mb 0 (every view run
#   through the teacher; the default cache writes repeated views from memory),
#   from an initialised teacher (weights do not change the cost).
# PyTorch has no equivalent of these width-multiplied networks in the
# yardstick: these rows are ours alone ("pytorch": null).
if [ -n "${BCCD:-}" ]; then
  if [ ! -d "$BCCD" ]; then
    echo "bench: BCCD=$BCCD: no such folder" >&2
    exit 2
  fi
  b="$out/bccd"
  mkdir -p "$b"
  info=$(bin/detect-train --version 2>&1 | sed -E 's/.*\((.*)\)/\1/')
  timeit "$b/st.rss" bin/detect-train -c pipelines/configs/bccd_student.yml -o data.root="$BCCD" -o 'data.augment.multi_scale=[320]' -o train.max_iters=40 \
    -o train.log_iter=5 -o 'data.eval_split=""' -o train.snapshot_iter=100000 --out "$b/student" 2>"$b/student.log" ||
    { cat "$b/student.log" >&2; exit 1; }
  python3 - "$b/student/metrics.jsonl" "$info" <<'PY' | addrss "$b/st.rss"
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ips = [r["images_per_s"] for r in rs if r.get("iter", 0) > 10 and "images_per_s" in r]
print(json.dumps({"impl": "yolodistill-go", "model": "bccd_student mobilenet_v1_x0.25", "mode": "train", "size": 320,
                  "batch": 8, "classes": 3, "images_per_s": statistics.median(ips), "records": len(ips),
                  "build": sys.argv[2], "pytorch": None}))
PY
  bin/detect-train -c pipelines/configs/bccd_teacher.yml -o data.root="$BCCD" -o 'data.augment.multi_scale=[320]' -o train.max_iters=0 -o 'data.eval_split=""' \
    --out "$b/teacher" 2>"$b/teacher.log" || { cat "$b/teacher.log" >&2; exit 1; }
  timeit "$b/td.rss" bin/teacher-dump -c pipelines/configs/bccd_teacher.yml -o data.root="$BCCD" -o 'data.augment.multi_scale=[320]' --weights "$b/teacher/model_final.ckpt" \
    --student-config pipelines/configs/bccd_student.yml --student-override data.root="$BCCD" \
    --student-override 'data.augment.multi_scale=[320]' --views 1 --cache-mb 0 \
    --out "$b/soft.arrow" 2>"$b/dump.log" || { cat "$b/dump.log" >&2; exit 1; }
  python3 - "$b/dump.log" "$info" <<'PY' | addrss "$b/td.rss"
import json, re, sys
m = re.findall(r"(\d+)/(\d+) views, ([0-9.]+) views/s", open(sys.argv[1]).read())
if not m:
    sys.exit("bench: no views/s line in teacher-dump's output")
print(json.dumps({"impl": "yolodistill-go", "model": "bccd_teacher resnet18_x0.5", "mode": "teacher-dump", "size": 320,
                  "views": int(m[-1][0]), "views_per_s": float(m[-1][2]), "build": sys.argv[2], "pytorch": None}))
PY
else
  echo "bench: BCCD=DIR adds the BCCD student's training step and the teacher-dump rate" >&2
fi
