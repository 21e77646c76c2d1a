#!/usr/bin/env bash
# views.sh STUDENT.yml [-o KEY=VALUE]...
#
# Prints how many views per image (--views of teacher-dump) a soft-target
# stream needs so that student-train finds train.max_iters batches in it:
# ceil(max_iters / batches per epoch) + 1, where an epoch is the training
# split's images in whole batches (the loader drops the last partial batch).
# The extra epoch covers images the loader skips (no usable boxes); the
# surplus views are read and dropped by student-train.
#
# Reads train.max_iters, train.batch_size, data.format, data.root and
# data.train_split from the configuration's top-level sections (the presets'
# layout: two-space keys), with -o overrides of those keys applied. The split
# size is the line count of ImageSets/Main/<split>.txt (VOC) or the number of
# "file_name" entries of annotations/instances_<split>.json (COCO).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: views.sh STUDENT.yml [-o KEY=VALUE]..." >&2; exit 2; }
cfg=$1
shift
# key SECTION NAME: the value of "  NAME:" inside "SECTION:" of the YAML file.
key() {
  awk -v sec="$1:" -v k="$2:" '
    /^[^ #]/ { in_sec = ($1 == sec) }
    in_sec && $1 == k { v = $2; sub(/#.*/, "", v); gsub(/"/, "", v); print v; exit }' "$cfg"
}
iters=$(key train max_iters) batch=$(key train batch_size)
format=$(key data format) root=$(key data root) split=$(key data train_split)
while [ $# -gt 0 ]; do
  [ "$1" = -o ] && [ $# -ge 2 ] || { echo "views.sh: expected -o KEY=VALUE, got $1" >&2; exit 2; }
  case $2 in
    train.max_iters=*) iters=${2#*=} ;;
    train.batch_size=*) batch=${2#*=} ;;
    data.format=*) format=${2#*=} ;;
    data.root=*) root=${2#*=} ;;
    data.train_split=*) split=${2#*=} ;;
  esac
  shift 2
done
case $format in
  voc)
    f=$root/ImageSets/Main/$split.txt
    [ -f "$f" ] || { echo "views.sh: $f: no such file (data.root=$root, data.train_split=$split)" >&2; exit 1; }
    n=$(grep -c . "$f" || true) ;;
  coco)
    f=$root/annotations/instances_$split.json
    [ -f "$f" ] || { echo "views.sh: $f: no such file (data.root=$root, data.train_split=$split)" >&2; exit 1; }
    n=$(grep -o '"file_name"' "$f" | wc -l) ;;
  *) echo "views.sh: $cfg: data.format $format: only voc and coco folders" >&2; exit 1 ;;
esac
per_epoch=$((n / batch))
[ "$per_epoch" -gt 0 ] || { echo "views.sh: $f: $n images, fewer than one batch of $batch" >&2; exit 1; }
echo $(((iters + per_epoch - 1) / per_epoch + 1))
