#!/usr/bin/env bash
# table.sh TITLE EVAL.json...
#
# Prints a markdown table, one row per evaluate.sh JSON file, in the order
# given: role, network (model-inspect's name), input size, GFLOPs per image,
# parameters, images/s (detect-eval's count), VOC mAP (11-point) and COCO AP
# (AP@[.5:.95], AP@.5), the scores in percent.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: table.sh TITLE EVAL.json..." >&2
  exit 2
fi
title=$1
shift
# field FILE KEY: the value of "KEY" in a one-line JSON object (numbers and
# strings without quotes or commas).
field() {
  grep -oE "\"$2\":(\"[^\"]*\"|[^,}]*)" "$1" | head -n1 | sed -E 's/^"[^"]*"://; s/^"//; s/"$//'
}
echo "### $title"
echo
echo "| model | network | input | GFLOPs | params (M) | images/s | VOC mAP (11-pt) | COCO AP | COCO AP50 |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for f in "$@"; do
  [ -s "$f" ] || { echo "table.sh: $f is missing or empty" >&2; exit 1; }
  awk -v name="$(field "$f" name)" -v model="$(field "$f" model)" -v size="$(field "$f" size)" \
      -v gf="$(field "$f" gflops)" -v p="$(field "$f" params)" -v ips="$(field "$f" images_per_s)" \
      -v voc="$(field "$f" voc_map)" -v ap="$(field "$f" coco_ap)" -v ap50="$(field "$f" coco_ap50)" \
      'BEGIN{printf "| %s | %s | %d | %.3f | %.2f | %.1f | %.1f | %.1f | %.1f |\n", name, model, size, gf, p/1e6, ips, 100*voc, 100*ap, 100*ap50}'
done
echo
echo "images/s: detect-eval's own count over the split (image decoding, network, box decoding, NMS;"
echo "batches of eval.batch_size) on this machine while it ran: compare rows of one table only."
echo "VOC mAP: 11-point; COCO AP: AP@[.5:.95] (pycocotools semantics); scores in percent."
