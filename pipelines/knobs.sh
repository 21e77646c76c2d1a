#!/usr/bin/env bash
# knobs.sh MODE FILE WHO FIX NAME=VALUE...
#
# Records the make knobs an output folder was made with in FILE (one
# NAME=VALUE a line), so that a target notices when they change instead of
# reusing outputs made with other values (pipelines/knobs.mk runs it on every
# make; the targets that depend on the knobs list FILE as a prerequisite).
#
#   - No FILE yet: it is written. In MODE refuse, when the folder already
#     holds models (made before knobs were recorded), it is written with an
#     old time, so that they are kept, and a line says which values were
#     assumed.
#   - Same knobs: FILE is left alone (its time too): nothing is redone.
#   - Other knobs, MODE follow: FILE is rewritten, so every target that
#     depends on it is redone; a line says what changed.
#   - Other knobs, MODE refuse: exit 2 with both sets of values and the ways
#     out (FIX, e.g. "give another VOC_OUT", deleting the folder, or REDO=1),
#     unless REDO is set to a non-empty value in the environment: then as
#     follow.
# WHO prefixes the messages (the make target, e.g. voc-distill).
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: knobs.sh follow|refuse FILE WHO FIX [NAME=VALUE...]" >&2
  exit 2
fi
mode=$1 file=$2 who=$3 fix=$4
shift 4
case $mode in follow|refuse) ;; *) echo "knobs.sh: mode $mode: want follow or refuse" >&2; exit 2 ;; esac
want=$(printf '%s\n' "$@")
dir=$(dirname "$file")
mkdir -p "$dir"
write() {
  local tmp
  tmp=$(mktemp "$file.XXXXXX")
  printf '%s\n' "$want" >"$tmp"
  mv -f "$tmp" "$file"
}
oneline() { tr '\n' ' ' <<<"$1" | sed 's/ *$//'; }
if [ ! -f "$file" ]; then
  write
  if [ "$mode" = refuse ] && [ -n "$(find "$dir" -mindepth 2 -name model_final.ckpt -print -quit 2>/dev/null)" ]; then
    touch -d @0 "$file"
    echo "$who: $dir holds outputs made before knobs were recorded: assuming they were made with $(oneline "$want") (delete $dir if not)" >&2
  fi
  exit 0
fi
have=$(cat "$file")
if [ "$have" = "$want" ]; then
  exit 0
fi
changed=$( { diff <(printf '%s\n' "$have") <(printf '%s\n' "$want") || true; } | sed -n 's/^> //p' | tr '\n' ' ' | sed 's/ *$//')
if [ "$mode" = refuse ] && [ -z "${REDO:-}" ]; then
  {
    echo "$who: $dir was made with $(oneline "$have")"
    echo "$who: this run asks for $changed: its models would not match these values, so nothing is reused or reprinted."
    echo "$who: $fix, delete $dir, or add REDO=1 to redo every step with the new values."
  } >&2
  exit 2
fi
write
echo "$who: knobs changed ($changed; recorded in $file): redoing what depends on them" >&2
