#!/usr/bin/env bash
# evaluate.sh NAME CONFIG WEIGHTS OUT.json SIZE [KEY=VALUE...]
#
# Scores one trained model on its configuration's eval split (data.eval_split)
# at one square input size and writes one JSON object to OUT.json:
#
#   {"name", "model", "config", "weights", "size", "gflops", "params",
#    "voc_map", "coco_ap", "coco_ap50", "images_per_s", "images"}
#
# - voc_map: VOC mAP, 11-point (PaddleDetection's), from detect-eval -c ... --json.
# - coco_ap, coco_ap50: COCO AP@[.5:.95] and AP@.5 (pycocotools semantics), from
#   a second detect-eval pass with -o eval.metric=coco over the same split.
# - images_per_s: detect-eval's own count of the first pass ("N images ... in
#   T s (X images/s)"): decode + network forward + box decoding + NMS at
#   eval.batch_size, wall time on this machine, whatever else it is running.
# - gflops: model-inspect --json totals.flops / 1e9 at SIZE (forward, 2 x
#   multiply-adds per image).
# KEY=VALUE arguments are -o overrides for every tool (e.g. data.root=DIR).
# OUT.json appears only when everything succeeded (written to a temp file in
# the same folder, then renamed). Tools are taken from BIN (default bin/).
set -euo pipefail
if [ $# -lt 5 ]; then
  echo "usage: evaluate.sh NAME CONFIG WEIGHTS OUT.json SIZE [KEY=VALUE...]" >&2
  exit 2
fi
name=$1 cfg=$2 weights=$3 out=$4 size=$5
shift 5
bin=${BIN:-bin}
ovr=()
for kv in "$@"; do ovr+=(-o "$kv"); done

mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$(dirname "$out")/.$(basename "$out").tmp-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# num FILE KEY: the first number after "KEY": in a JSON file (pretty or not;
# for an array, its first element).
num() {
  tr -d ' \n\t' <"$1" | grep -oE "\"$2\":\[?-?[0-9.eE+-]+" | head -n1 | sed -E 's/.*:\[?//'
}

# First pass: VOC mAP, detections, speed.
"$bin/detect-eval" -c "$cfg" "${ovr[@]}" --weights "$weights" --size "$size" \
  -o eval.metric=voc --json "$tmp/voc.json" --results "$tmp/bbox.json" 2>"$tmp/voc.log" >&2 \
  || { cat "$tmp/voc.log" >&2; exit 1; }
tail -n 2 "$tmp/voc.log" >&2
# Second pass: COCO AP (the same model and split; inference is repeated because
# detect-eval scores a VOC folder's COCO AP only in model mode).
"$bin/detect-eval" -c "$cfg" "${ovr[@]}" --weights "$weights" --size "$size" \
  -o eval.metric=coco --json "$tmp/coco.json" --results "$tmp/bbox_coco.json" 2>"$tmp/coco.log" >&2 \
  || { cat "$tmp/coco.log" >&2; exit 1; }
"$bin/model-inspect" -c "$cfg" "${ovr[@]}" --size "$size" --json >"$tmp/inspect.json"

speed=$(grep -oE '[0-9]+ images, [0-9]+ detections in [0-9.]+ s \([0-9.]+ images/s\)' "$tmp/voc.log" | tail -n1)
ips=$(sed -E 's/.*\(([0-9.]+) images\/s\)/\1/' <<<"$speed")
nimg=$(sed -E 's/^([0-9]+) images.*/\1/' <<<"$speed")
voc=$(num "$tmp/voc.json" map)
coco=$(num "$tmp/coco.json" stats)
ap50=$(tr -d ' \n\t' <"$tmp/coco.json" | grep -oE '"stats":\[[^]]*' | cut -d, -f2)
model=$(grep -oE '"model":"[^"]*"' "$tmp/inspect.json" | head -n1 | cut -d'"' -f4)
totals=$(grep -oE '"totals":\{[^}]*\}' "$tmp/inspect.json")
flops=$(grep -oE '"flops":[0-9]+' <<<"$totals" | cut -d: -f2)
params=$(grep -oE '"params":[0-9]+' <<<"$totals" | cut -d: -f2)
for v in ips nimg voc coco ap50 model flops params; do
  if [ -z "${!v}" ]; then echo "evaluate.sh: $name: could not read $v from the tools' output (in $tmp)" >&2; trap - EXIT; exit 1; fi
done
gflops=$(awk -v f="$flops" 'BEGIN{printf "%.4f", f/1e9}')
printf '{"name":"%s","model":"%s","config":"%s","weights":"%s","size":%d,"gflops":%s,"params":%s,"voc_map":%s,"coco_ap":%s,"coco_ap50":%s,"images_per_s":%s,"images":%s}\n' \
  "$name" "$model" "$cfg" "$weights" "$size" "$gflops" "$params" "$voc" "$coco" "$ap50" "$ips" "$nimg" >"$tmp/out.json"
mv "$tmp/out.json" "$out"
echo "evaluate.sh: $name at $size px: VOC mAP $voc, COCO AP $coco, $ips images/s -> $out" >&2
