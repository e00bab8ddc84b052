#!/usr/bin/env bash
# First README command: install what the demo needs, then run the main job on the bundled ShapesWorld checkpoint
# (no download, CPU). Only univigu, its dependencies and the `inference` extra are installed (accelerate to load
# the checkpoint, imageio + ffmpeg to write mp4 files); scripts/test.sh installs the rest (training, the Space, pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo.sh: installing univigu[inference]: torch if none is present, diffusers, transformers, accelerate, imageio ..."
bash scripts/install.sh inference
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
echo "demo.sh: running examples/shapesworld_demo.py on the bundled checkpoint (CPU, under a minute) ..."
$PY examples/shapesworld_demo.py --out outputs/demo "$@"
