#!/usr/bin/env bash
# make bench: JSON lines from our benchmarks and, when PyTorch is installed, from
# ../shared/bench/torch_reference.py in the same run, so that ratios can be quoted.
set -euo pipefail
echo "bench: no benchmarks yet" >&2
