#!/usr/bin/env bash
# First README command: install, then run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
$PY examples/smoke.py --out outputs/smoke "$@"
