#!/usr/bin/env python
# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Uni-ViGU stage 2, Capability Refinement: fine-tune a Knowledge Recall model on detailed captions (text column
"caption"), starting from the UniViGUPipeline folder that train_recall.py wrote. See docs/training.md.

    accelerate launch training/train_refine.py \
        --pretrained_model_name_or_path univigu-recall \
        --train_data_dir path/to/videos_with_captions --output_dir univigu-refine \
        --num_frames 81 --height 480 --width 832 --max_text_length 256 --max_train_steps 2000 \
        --learning_rate 5e-5 --mixed_precision bf16 --gradient_checkpointing --latents_cache_dir path/to/cache

A problem with the flags, the data or --output_dir ends it with a message and exit status 1.
All flags: `python training/train_refine.py --help`.
"""

import sys
from pathlib import Path

try:
    import univigu  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from univigu.training.cli import script_main  # noqa: E402


if __name__ == "__main__":
    sys.exit(script_main("refine"))
