#!/usr/bin/env bash
# First README command: install, then run the main job on the bundled ShapesWorld checkpoint (no download, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
$PY examples/shapesworld_demo.py --out outputs/demo "$@"
