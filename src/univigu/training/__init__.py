"""Training Uni-ViGU: the unified loss and task views (`losses`), data and the latent cache (`data`), atomic
checkpoints (`checkpointing`), model loading / what trains (`models`), LoRA save/load (`lora`) and the shared loop of
`training/train_recall.py` and `training/train_refine.py` (`trainer`). See docs/training.md."""

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
