# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The output of [`UniViGUPipeline`] (as `diffusers.pipelines.wan.pipeline_output` holds `WanPipelineOutput`).

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch

from diffusers.utils import BaseOutput


@dataclass
class UniViGUPipelineOutput(BaseOutput):
    r"""
    Output of [`UniViGUPipeline`].

    Args:
        frames (`np.ndarray`, `torch.Tensor`, `list[list[PIL.Image.Image]]` or `None`):
            The generated videos (`output_type` "np": `(batch, frames, height, width, 3)` floats in [0, 1]; "pt":
            `(batch, frames, 3, height, width)`; "pil": a list of frame lists; "latent": the latents). `None` for
            video-to-text.
        text (`list[str]` or `None`):
            The captions (v2t, t2vt), decoded with `skip_special_tokens=True`. `None` for text-to-video.
        text_ids (`torch.LongTensor` of shape `(batch, max_text_length)` or `None`):
            The caption token ids the text stream ended on.
        text_history (`list[list[str]]` or `None`):
            With `return_text_history=True`: the decoded text state after every denoising step (one list of
            `batch` strings per step), to watch the caption form.
    """

    frames: torch.Tensor | np.ndarray | list[list[PIL.Image.Image]] | None = None
    text: list[str] | None = None
    text_ids: torch.LongTensor | None = None
    text_history: list[list[str]] | None = None


__all__ = ["UniViGUPipelineOutput"]
