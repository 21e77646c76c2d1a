#!/usr/bin/env bash
# Installs what `make test-onnx` and `make onnx-bench` need, or says what is
# missing: Debian's python3-onnx (onnx.checker) and nodejs/npm (as root,
# through apt-get), then npm's onnxruntime-node into DIR/node_modules (its CPU
# library ships inside the package, ~300 MB unpacked; ONNXRUNTIME_NODE_INSTALL=skip
# stops its install script from fetching GPU binaries). Safe to rerun.
# Usage: bash pipelines/onnx_setup.sh DIR VERSION
set -euo pipefail
dir=$1 version=$2
need_apt=()
/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1 || need_apt+=(python3-onnx)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "onnx-setup: installing ${need_apt[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "onnx-setup: ${need_apt[*]} missing and not root: run 'sudo apt-get install ${need_apt[*]}'" >&2
    exit 1
  fi
fi
if [ ! -f "$dir/node_modules/onnxruntime-node/package.json" ] ||
   [ "$(node -p "require('./$dir/node_modules/onnxruntime-node/package.json').version")" != "$version" ]; then
  echo "onnx-setup: installing onnxruntime-node@$version into $dir (npm)" >&2
  mkdir -p "$dir"
  ONNXRUNTIME_NODE_INSTALL=skip npm install --silent --no-audit --no-fund --prefix "$dir" "onnxruntime-node@$version" >&2
fi
