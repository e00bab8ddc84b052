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
# The Space's browser test drives Debian's Chromium through playwright (no browser download). In CI, install it
# when missing; elsewhere the test skips and says why.
if [ "${CI:-}" = "true" ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
    || echo "warning: could not install chromium; tests/test_space.py::test_in_a_real_browser will skip"
fi
