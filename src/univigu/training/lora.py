# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""LoRA weights of a UniViGU transformer: saving them in diffusers' layout and loading them into a pipeline.

The file written is diffusers' `pytorch_lora_weights.safetensors` (keys `transformer.<peft key>`, the adapter's peft
config in the safetensors metadata), so `pipe.load_lora_weights(folder)` loads it (`UniViGUPipeline` carries
`UniViGULoraLoaderMixin`). :func:`load_lora_weights` does the same for a pipeline object that lacks the mixin (e.g. one
loaded from an older exported folder).
"""

from __future__ import annotations

import os

import torch

from ..pipelines.lora_loader import UniViGULoraLoaderMixin


LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


def save_lora_weights(output_dir: str | os.PathLike, transformer, metadata: dict | None = None,
                      adapter_name: str = "default") -> str:
    """Writes the adapter `adapter_name` of `transformer` to `output_dir/pytorch_lora_weights.safetensors`."""
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(transformer, adapter_name=adapter_name)
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    adapter_metadata = transformer.peft_config[adapter_name].to_dict()
    UniViGULoraLoaderMixin.save_lora_weights(
        save_directory=output_dir,
        transformer_lora_layers=state,
        weight_name=LORA_WEIGHT_NAME,
        transformer_lora_adapter_metadata=adapter_metadata,
    )
    return os.path.join(os.fspath(output_dir), LORA_WEIGHT_NAME)


def load_lora_weights(pipe, pretrained_model_name_or_path_or_dict: str | dict[str, torch.Tensor],
                      adapter_name: str | None = None, **kwargs):
    """`pipe.load_lora_weights(...)` if the pipeline has it, else the same steps through
    :class:`UniViGULoraLoaderMixin` (state dict + metadata -> `transformer.load_lora_adapter`)."""
    if hasattr(pipe, "load_lora_weights"):
        return pipe.load_lora_weights(pretrained_model_name_or_path_or_dict, adapter_name=adapter_name, **kwargs)
    if isinstance(pretrained_model_name_or_path_or_dict, dict):
        pretrained_model_name_or_path_or_dict = dict(pretrained_model_name_or_path_or_dict)
    state_dict, metadata = UniViGULoraLoaderMixin.lora_state_dict(
        pretrained_model_name_or_path_or_dict, return_lora_metadata=True, **kwargs
    )
    if not all("lora" in key for key in state_dict):
        raise ValueError("Invalid LoRA checkpoint: every key must contain 'lora'.")
    UniViGULoraLoaderMixin.load_lora_into_transformer(
        state_dict, transformer=pipe.transformer, adapter_name=adapter_name, metadata=metadata, _pipeline=pipe
    )


__all__ = ["LORA_WEIGHT_NAME", "UniViGULoraLoaderMixin", "load_lora_weights", "save_lora_weights"]
