#!/usr/bin/env bash
# The layout rules (README "The packages"), checked by `make vet`:
#  - each package under pkg/ imports only the packages of ours listed for it
#    below (the dependency graph, lowest first);
#  - only pkg/nn imports gorgonia, and the data-side packages do not even
#    reach it through another package;
#  - every package has a doc.go; no utils/common/misc/helpers packages.
# Usage: GO="go" GOTAGS=openblas bash pipelines/layout.sh
set -euo pipefail
GO=${GO:-go}
TAGS=${GOTAGS:-purego}
declare -A allow=(
  [atomicfile]=""
  [anchor]=""
  [box]=""
  [cli]=""
  [nn]="nn/simd"
  [nn/simd]=""
  [dist]=""
  [config]="anchor"
  [checkpoint]="atomicfile"
  [softtarget]="anchor atomicfile"
  [dataset]="anchor atomicfile box config"
  [augment]="box config dataset"
  [metrics]="box dataset"
  [metrics/prplot]="atomicfile metrics"
  [draw]="atomicfile box"
  [yolo]="anchor config nn"
  [yolo/loss]="anchor"
  [yolo/decode]="anchor box"
  [weights]="checkpoint yolo"
  [detector]="anchor atomicfile augment box checkpoint config dataset draw metrics nn weights yolo yolo/decode"
  [distill]="config detector nn yolo"
  [train]="atomicfile augment checkpoint config dataset detector dist metrics nn weights yolo yolo/loss"
  [teacher]="atomicfile augment checkpoint config dataset detector distill softtarget train yolo"
  [cli/clitest]="cli dist nn"
  [detector/detectortest]="checkpoint config detector"
  [weights/weightstest]=""
  [export/onnxpb]=""
  [export]="atomicfile detector export/onnxpb yolo"
  [softtarget/softtargettest]="anchor softtarget"
)
# Packages that must not depend on gorgonia, directly or not.
plain="atomicfile anchor box cli config nn/simd checkpoint dist softtarget dataset augment metrics metrics/prplot draw yolo/loss yolo/decode"
mod=$(env $GO list -m)
fail=0
while read -r pkg imports; do
  rel=${pkg#"$mod/pkg/"}
  if [[ -z ${allow[$rel]+x} ]]; then
    echo "layout: $pkg has no entry in pipelines/layout.sh (say what it may import)"; fail=1; continue
  fi
  for imp in $imports; do
    case $imp in
      "$mod"/pkg/*)
        dep=${imp#"$mod/pkg/"}
        if [[ " ${allow[$rel]} " != *" $dep "* ]]; then
          echo "layout: pkg/$rel imports pkg/$dep, which pipelines/layout.sh does not allow it"; fail=1
        fi ;;
      gorgonia.org/*)
        if [[ $rel != nn ]]; then echo "layout: pkg/$rel imports $imp (only pkg/nn may)"; fail=1; fi ;;
    esac
  done
  if [[ ! -f pkg/$rel/doc.go ]]; then echo "layout: pkg/$rel has no doc.go"; fail=1; fi
  case ${rel##*/} in utils|util|common|misc|helpers) echo "layout: pkg/$rel: no grab-bag packages"; fail=1 ;; esac
done < <(env $GO list -tags "$TAGS" -f '{{.ImportPath}} {{join .Imports " "}}' ./pkg/...)
for p in $plain; do
  [[ -d pkg/$p ]] || continue
  if env $GO list -tags "$TAGS" -deps "./pkg/$p" | grep '^gorgonia.org/' >/dev/null; then
    echo "layout: pkg/$p depends on gorgonia"; fail=1
  fi
done
exit $fail
