# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""LoRA loading for [`UniViGUPipeline`]: diffusers' Wan LoRA loader, which fits the UniViGU transformer.

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

import torch

from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin


class UniViGULoraLoaderMixin(WanLoraLoaderMixin):
    """`load_lora_weights` / `save_lora_weights` / `fuse_lora` / `unfuse_lora` for `UniViGUPipeline`: diffusers'
    Wan LoRA loader (the transformer is Wan's plus the text experts) minus its Wan2.1-I2V expansion step, which
    reads an `image_dim` config field that UniViGU does not have."""

    _lora_loadable_modules = ["transformer"]
    transformer_name = "transformer"

    @classmethod
    def _maybe_expand_t2v_lora_for_i2v(cls, transformer: torch.nn.Module, state_dict):
        if getattr(transformer.config, "image_dim", None) is None:
            return state_dict
        return super()._maybe_expand_t2v_lora_for_i2v(transformer, state_dict)


__all__ = ["UniViGULoraLoaderMixin"]
