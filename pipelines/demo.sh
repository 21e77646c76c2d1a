#!/usr/bin/env bash
# demo.sh [DIR]: prints the demo's table (DIR/results.md, made by
# `make demo-results`) and how long each step took: a training step is timed
# from its run folder's config.yml (written at the start) to its
# model_final.ckpt (written last); the total runs from the first step's start
# to the last evaluation. Times are those of the run that made the files.
set -euo pipefail
dir=${1:-out/demo}
[ -s "$dir/results.md" ] || { echo "demo: $dir/results.md is missing: run make demo" >&2; exit 1; }
cat "$dir/results.md"
echo
# The kernels decide the rounding of every result: the table is reproduced
# bit for bit by a build running the same ones, whatever its core count.
bin=${BIN:-bin}
[ -x "$bin/detect-train" ] && echo "demo: $("$bin/detect-train" --version 2>&1)"
mt() { stat -c %Y "$1"; }
first=
for step in teacher baseline distilled; do
  s=$(mt "$dir/$step/config.yml") e=$(mt "$dir/$step/model_final.ckpt")
  if [ -z "$first" ] || [ "$s" -lt "$first" ]; then first=$s; fi
  printf 'demo: %-9s trained in %4d s\n' "$step" $((e - s))
done
last=0
for f in "$dir"/eval/*.json; do e=$(mt "$f"); if [ "$e" -gt "$last" ]; then last=$e; fi; done
printf 'demo: total wall time %d s (first training start to the last evaluation)\n' $((last - first))
