#!/usr/bin/env python
# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Uni-ViGU stage 1, Knowledge Recall: teach a Wan2.1 text-to-video model (turned into a UniViGU transformer) to
read back the prompt a video was generated from (text column "prompt"). See docs/training.md.

    accelerate launch training/train_recall.py \
        --pretrained_model_name_or_path path/to/Wan2.1-T2V-1.3B-Diffusers \
        --train_data_dir path/to/videos_with_metadata --output_dir univigu-recall \
        --num_frames 81 --height 480 --width 832 --train_batch_size 1 --max_train_steps 4000 \
        --learning_rate 1e-4 --mixed_precision bf16 --gradient_checkpointing \
        --latents_cache_dir path/to/cache --checkpointing_steps 500 --validation_steps 500

A problem with the flags, the data or --output_dir ends it with a message and exit status 1.
All flags: `python training/train_recall.py --help`.
"""

import sys
from pathlib import Path

try:
    import univigu  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from univigu.training.cli import script_main  # noqa: E402


if __name__ == "__main__":
    sys.exit(script_main("recall"))
