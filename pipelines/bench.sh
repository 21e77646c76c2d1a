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
