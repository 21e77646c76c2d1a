#!/usr/bin/env bash
# Installs what yolodistill needs on a fresh Debian machine, or says what is
# missing. Called by `make build`, `make test`, `make demo`; safe to rerun.
# `setup.sh mpi` (make test-mpi) also needs Open MPI (libopenmpi-dev,
# openmpi-bin) and fails without it: the MPI tests have no fallback.
set -u
need_apt=()
want_mpi=${1:-}
if [ "$want_mpi" = mpi ] && ! { pkg-config --exists mpi 2>/dev/null && command -v mpirun >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing libopenmpi-dev openmpi-bin pkg-config with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq libopenmpi-dev openmpi-bin pkg-config >/dev/null; }; then
      echo "setup: apt-get could not install Open MPI" >&2
      exit 1
    fi
  else
    echo "setup: Open MPI is missing and this is not root: run 'sudo apt-get install libopenmpi-dev openmpi-bin pkg-config'" >&2
    exit 1
  fi
fi
if ! command -v go >/dev/null 2>&1; then
  echo "setup: Go is not on PATH (need Go >= 1.26: https://go.dev/dl/)" >&2
  exit 1
fi
if ! ldconfig -p 2>/dev/null | grep 'libopenblas\.so ' >/dev/null; then
  need_apt+=(libopenblas-dev)
fi
if ! command -v gcc >/dev/null 2>&1; then
  need_apt+=(gcc)
fi
# oneDNN: faster convolutions (build tag dnnl); optional, our kernels otherwise.
if ! { ldconfig -p 2>/dev/null | grep 'libdnnl\.so' >/dev/null && [ -f /usr/include/oneapi/dnnl/dnnl.h ]; }; then
  need_apt+=(libdnnl-dev)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null; }; then
      echo "setup: apt-get failed; falling back to the pure-Go kernels (slower)" >&2
    fi
  else
    echo "setup: ${need_apt[*]} missing and not root: using the pure-Go kernels (slower);" \
         "run 'sudo apt-get install ${need_apt[*]}' for OpenBLAS speed" >&2
  fi
fi
exit 0
