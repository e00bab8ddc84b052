# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Training Uni-ViGU: the unified loss and task views (`losses`), what the loop iterates over (`dataset`; the video
reading, frame sampling and bad-sample handling it uses live in `univigu.data`), encoding as the pipeline encodes
(`encoding`), the latent cache (`latent_cache`), atomic checkpoints (`checkpointing`), model loading / what trains
(`components`), LoRA save/load (`lora`), the command line (`arguments`), the output folder and loss log (`outputs`) and
the shared loop of `training/train_recall.py` and `training/train_refine.py` (`trainer`). See docs/training.md."""

from .losses import (
    GENERATION,
    JOINT,
    UNDERSTANDING,
    VIEW_NAMES,
    LossOutput,
    TrainingInputs,
    UnifiedLoss,
    UnifiedLossConfig,
    build_training_inputs,
    compute_unified_loss,
    sample_task_views,
)


__all__ = [
    "GENERATION",
    "JOINT",
    "UNDERSTANDING",
    "VIEW_NAMES",
    "LossOutput",
    "TrainingInputs",
    "UnifiedLoss",
    "UnifiedLossConfig",
    "build_training_inputs",
    "compute_unified_loss",
    "sample_task_views",
]
