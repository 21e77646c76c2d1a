#!/usr/bin/env bash
# make demo: the main job on the built-in synthetic data. Grows with the tools.
set -euo pipefail
echo "demo: tools built into bin/: $(ls bin | tr '\n' ' ')" >&2
