#!/usr/bin/env bash
# bccd_results.sh json|md "SEEDS" "SIZES" "DISTILLED" EVALDIR
#
# Aggregates the evaluate.sh files of make bccd-bench:
#   EVALDIR/teacher-SIZE.json                 (one teacher)
#   EVALDIR/baseline-sSEED-SIZE.json
#   EVALDIR/NAME-sSEED-SIZE.json              (NAME in DISTILLED)
# json: one object with, per role and size, the per-seed values, mean and
#   sample standard deviation (n-1; null for one seed) of VOC mAP (11-point),
#   COCO AP, COCO AP50 and images/s, GFLOPs; and per distilled role and size the paired
#   differences distilled - baseline of the same seed, their mean and
#   standard error (sd / sqrt(n); null for one seed).
# md: the same as a markdown table (scores in percent), the paired gains
#   below it.
set -euo pipefail
if [ $# -ne 5 ] || { [ "$1" != json ] && [ "$1" != md ]; }; then
  echo 'usage: bccd_results.sh json|md "SEEDS" "SIZES" "DISTILLED" EVALDIR' >&2
  exit 2
fi
mode=$1 seeds=$2 sizes=$3 distilled=$4 dir=$5
field() { # field FILE KEY (one-line JSON objects written by evaluate.sh)
  grep -oE "\"$2\":(\"[^\"]*\"|[^,}]*)" "$1" | head -n1 | sed -E 's/^"[^"]*"://; s/^"//; s/"$//'
}
row() { # row ROLE SEED SIZE FILE: one tab-separated line
  [ -s "$4" ] || { echo "bccd_results.sh: $4 is missing or empty" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(field "$4" model)" "$(field "$4" gflops)" \
    "$(field "$4" images_per_s)" "$(field "$4" voc_map)" "$(field "$4" coco_ap)" "$(field "$4" coco_ap50)"
}
rows=$(
  for z in $sizes; do
    row teacher - "$z" "$dir/teacher-$z.json"
    for r in baseline $distilled; do
      for s in $seeds; do row "$r" "$s" "$z" "$dir/$r-s$s-$z.json"; done
    done
  done
)
awk -F'\t' -v mode="$mode" -v seeds="$seeds" -v sizes="$sizes" -v roles="teacher baseline $distilled" -v distilled="$distilled" '
  function mean(a, n,   i, s) { s = 0; for (i = 1; i <= n; i++) s += a[i]; return s / n }
  function sd(a, n,   i, m, s) { if (n < 2) return "null"; m = mean(a, n); s = 0
    for (i = 1; i <= n; i++) s += (a[i] - m)^2; return sqrt(s / (n - 1)) }
  function list(a, n,   i, s) { s = ""; for (i = 1; i <= n; i++) s = s (i > 1 ? "," : "") sprintf("%.6f", a[i]); return "[" s "]" }
  function num(x) { return x == "null" ? "null" : sprintf("%.6f", x) }
  function pct(x) { return x == "null" ? "-" : sprintf("%.1f", 100 * x) }
  function stat(a, n) { return sprintf("{\"values\":%s,\"mean\":%s,\"std\":%s}", list(a, n), num(mean(a, n)), num(sd(a, n))) }
  function joined(a, n,   i, s) { s = ""; for (i = 1; i <= n; i++) s = s (i > 1 ? "," : "") a[i]; return s }
  { V[$1, $2, $3] = $0; if ($1 != "teacher") seen[$1] = 1 }
  END {
    ns = split(seeds, S, " "); nz = split(sizes, Z, " "); nr = split(roles, R, " "); nd = split(distilled, D, " ")
    nrow = 0
    for (j = 1; j <= nz; j++) for (r = 1; r <= nr; r++) {
      role = R[r]; z = Z[j]; n = 0
      for (k = 1; k <= ns; k++) {
        s = (role == "teacher") ? "-" : S[k]
        split(V[role, s, z], f, "\t")
        n++; model = f[4]; gf = f[5]; ips[n] = f[6]; voc[n] = f[7]; ap[n] = f[8]; ap50[n] = f[9]
        if (role == "teacher") break
      }
      nrow++
      if (mode == "json")
        out[nrow] = sprintf("{\"role\":\"%s\",\"size\":%s,\"model\":\"%s\",\"gflops\":%s,\"n\":%d,\"images_per_s\":%s,\"voc_map\":%s,\"coco_ap\":%s,\"coco_ap50\":%s}",
          role, z, model, gf, n, stat(ips, n), stat(voc, n), stat(ap, n), stat(ap50, n))
      else
        out[nrow] = sprintf("| %s | %s | %d | %.3f | %.1f | %s%s | %s%s | %s%s |", role, model, z, gf, mean(ips, n),
          pct(mean(voc, n)), (n > 1 ? " ± " pct(sd(voc, n)) : ""), pct(mean(ap, n)), (n > 1 ? " ± " pct(sd(ap, n)) : ""),
          pct(mean(ap50, n)), (n > 1 ? " ± " pct(sd(ap50, n)) : ""))
    }
    npair = 0
    for (j = 1; j <= nz; j++) for (d = 1; d <= nd; d++) {
      z = Z[j]; n = 0
      for (k = 1; k <= ns; k++) {
        split(V["baseline", S[k], z], b, "\t"); split(V[D[d], S[k], z], f, "\t")
        n++; dv[n] = f[7] - b[7]; da[n] = f[8] - b[8]
      }
      sev = (n > 1) ? sd(dv, n) / sqrt(n) : "null"; sea = (n > 1) ? sd(da, n) / sqrt(n) : "null"
      npair++
      if (mode == "json")
        pair[npair] = sprintf("{\"role\":\"%s\",\"size\":%s,\"n\":%d,\"voc_map\":{\"diffs\":%s,\"mean\":%s,\"se\":%s},\"coco_ap\":{\"diffs\":%s,\"mean\":%s,\"se\":%s}}",
          D[d], z, n, list(dv, n), num(mean(dv, n)), num(sev), list(da, n), num(mean(da, n)), num(sea))
      else {
        lv = ""; la = ""
        for (i = 1; i <= n; i++) { lv = lv (i > 1 ? ", " : "") sprintf("%+.1f", 100 * dv[i]); la = la (i > 1 ? ", " : "") sprintf("%+.1f", 100 * da[i]) }
        pair[npair] = sprintf("| %s - baseline | %d | %+.1f%s (%s) | %+.1f%s (%s) |", D[d], z, 100 * mean(dv, n),
          (n > 1 ? " ± " pct(sev) : ""), lv, 100 * mean(da, n), (n > 1 ? " ± " pct(sea) : ""), la)
      }
    }
    if (mode == "json") {
      printf "{\"seeds\":[%s],\"sizes\":[%s],\"rows\":[\n", joined(S, ns), joined(Z, nz)
      for (i = 1; i <= nrow; i++) printf "  %s%s\n", out[i], (i < nrow ? "," : "")
      printf "],\"paired\":[\n"
      for (i = 1; i <= npair; i++) printf "  %s%s\n", pair[i], (i < npair ? "," : "")
      printf "]}\n"
    } else {
      printf "### BCCD test split: teacher, baseline and distilled students (seeds %s)\n\n", seeds
      printf "Mean ± sample standard deviation over seeds; the teacher is trained once.\n\n"
      printf "| model | network | input | GFLOPs | images/s | VOC mAP (11-pt) | COCO AP | COCO AP50 |\n|---|---|---:|---:|---:|---:|---:|---:|\n"
      for (i = 1; i <= nrow; i++) print out[i]
      printf "\nPaired differences, same seed (mean ± standard error; per seed in brackets), in points:\n\n"
      printf "| difference | input | VOC mAP | COCO AP |\n|---|---:|---:|---:|\n"
      for (i = 1; i <= npair; i++) print pair[i]
    }
  }' <<<"$rows"
