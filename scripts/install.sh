#!/usr/bin/env bash
# Install univigu with its training/dev extras. torch is pinned here to the CPU build
# that this project's machines carry; on your own machine install the torch you want first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! $PY -c "import torch" 2>/dev/null; then
  $PY -m pip install -q "torch==${UNIVIGU_TORCH_VERSION:-2.13.0}"
fi
$PY -m pip install -q -e ".[dev]"
