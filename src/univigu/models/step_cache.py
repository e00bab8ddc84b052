# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""diffusers' step caches (`enable_cache`: FirstBlockCache, MagCache, SeaCache, TaylorSeer, FasterCache, pyramid
attention broadcast) on `UniViGUTransformer3DModel`, as on `WanTransformer3DModel`.

The blocks are registered like Wan's (one joint `[video ; text]` sequence in and out), so the block-level caches work
unchanged; a few configs name Wan's modules or inputs in their defaults, and `cache_config_for` points those at
UniViGU's: TaylorSeer's lite mode predicts Wan's `proj_out` (ours: `video_head.proj_out`, and the text head's
`text_head.linear`), SeaCache reads the video latents through a callback it builds for Wan only, and FasterCache splits
the cond/uncond batch of the inputs it knows by name (plus ours: `text_ids`, `text_timestep`, `text_attention_mask`).
With no text stream each config then gives exactly what it gives on Wan (tests/test_step_cache.py).

Imports diffusers and torch only: exported Hub folders carry it next to `transformer_univigu.py`.
"""

import dataclasses
import inspect
from typing import Any

import torch
from diffusers.hooks import FasterCacheConfig, SeaCacheConfig, TaylorSeerCacheConfig
from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry


#: TaylorSeer's lite mode on UniViGU: every block skipped (as on Wan), the output layers predicted.
TAYLORSEER_LITE_SKIP = ["^[^.]*block[^.]*\\.[^.]+$"]
TAYLORSEER_LITE_CACHE = ["^video_head\\.proj_out$", "^text_head\\.linear$"]
#: The forward inputs that carry the batch, which FasterCache splits into its uncond / cond halves.
FASTER_CACHE_BATCH_INPUTS = ("text_ids", "text_timestep", "text_attention_mask")


def register_block(block_class: type) -> None:
    """A UniViGU block reads and returns one tensor, the joint sequence, named `hidden_states` (as Wan's)."""
    TransformerBlockRegistry.register(
        model_class=block_class,
        metadata=TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=None),
    )


def video_latents(module: torch.nn.Module, args: tuple, kwargs: dict) -> list[torch.Tensor] | None:
    """SeaCache's view of the output trajectory: the video latents `(C, F, H, W)` of each sample (Wan t2v's rule)."""
    bound = inspect.signature(type(module).forward).bind_partial(module, *args, **kwargs).arguments
    hidden_states = bound.get("hidden_states")
    if not isinstance(hidden_states, torch.Tensor) or hidden_states.ndim != 5:
        return None
    return list(hidden_states.unbind(dim=0))


def cache_config_for(model: torch.nn.Module, config: Any) -> Any:
    """`config` with its Wan-specific defaults pointed at UniViGU's modules and inputs (a copy; `config` is kept)."""
    if isinstance(config, TaylorSeerCacheConfig) and config.use_lite_mode:
        return dataclasses.replace(
            config, use_lite_mode=False, skip_predict_identifiers=list(TAYLORSEER_LITE_SKIP),
            cache_identifiers=list(TAYLORSEER_LITE_CACHE),
        )
    if isinstance(config, SeaCacheConfig) and config.raw_vision_callback is None:
        if model.config.in_channels == model.config.out_channels:  # what diffusers calls Wan t2v
            return dataclasses.replace(config, raw_vision_callback=video_latents)
    if isinstance(config, FasterCacheConfig):
        names = tuple(config._unconditional_conditional_input_kwargs_identifiers)
        names += tuple(name for name in FASTER_CACHE_BATCH_INPUTS if name not in names)
        return dataclasses.replace(config, _unconditional_conditional_input_kwargs_identifiers=names)
    return config
