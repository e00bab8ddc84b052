# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Build an untrained UniViGU pipeline folder from a Wan text-to-video diffusers folder (Wan2.1-T2V-1.3B/14B,
Wan2.2-TI2V-5B; a two-expert Wan2.2-A14B folder is refused, see docs/backbones.md).

Every Wan weight is kept; the text experts start as copies of their video counterparts and the text head at zero
(`UniViGUTransformer3DModel.from_wan`). The Wan folder's tokenizer, text encoder and VAE are copied as files, and
its video scheduler is kept, so that text-to-video with `text_stream=False` computes exactly what `WanPipeline`
computes (and with the text stream, what the untrained model computes with the prompt's tokens in its sequence).
"""

from __future__ import annotations

import os
from pathlib import Path

import diffusers
import torch

from ..models import UniViGUTransformer3DModel
from ..schedulers import DiscreteFlowScheduler
from .common import (
    check_finite,
    check_output_dir,
    load_safetensors_folder,
    load_tokenizer,
    read_wan_folder,
    write_converted_pipeline,
)


PathLike = str | os.PathLike


def text_vocab_size(tokenizer) -> int:
    """The text vocabulary of a tokenizer: every id it can produce (`len(tokenizer)` counts added tokens)."""
    return max(int(tokenizer.vocab_size), len(tokenizer))


def univigu_transformer_from_wan_folder(
    wan,
    vocab_size: int,
    text_mask_token: bool = False,
    seed: int | None = 0,
    torch_dtype: torch.dtype | None = None,
    vocab_init_std: float = 0.02,
):
    """`UniViGUTransformer3DModel.from_wan(WanTransformer3DModel.from_pretrained(wan/transformer), ...)`, computed
    without holding the Wan model and its copy in memory at once (`from_wan_state_dict` with `share_memory=True`).

    The Wan weights are memory-mapped from their safetensors files and assigned, uncopied, to a model built on the
    meta device; only the tensors that must be new are allocated: the text experts that start as copies of the video
    ones (`ffn_t`, the text time embedding and table) and the text tables (`vocab_embed`, drawn exactly as `from_wan`
    draws it for the same `seed`; the zero text head). The result equals `from_wan`'s, tensor for tensor (tested).
    """
    wan_state = load_safetensors_folder(wan.path / "transformer")
    model = UniViGUTransformer3DModel.from_wan_state_dict(
        wan.transformer_config, wan_state, vocab_size, text_mask_token, seed=seed, dtype=torch_dtype, cast=True,
        share_memory=True, vocab_init_std=vocab_init_std,
    )
    return model.eval()


def convert_wan(
    wan_path: PathLike,
    out_dir: PathLike,
    text_mask_token: bool = False,
    seed: int | None = 0,
    torch_dtype: torch.dtype | None = None,
    overwrite: bool = False,
    max_shard_size: int | str = "10GB",
    allow_non_finite: bool = False,
) -> Path:
    """Write an untrained `UniViGUPipeline` folder built from a Wan2.1 T2V diffusers folder.

    Args:
        wan_path: Wan text-to-video folder in diffusers format (e.g. a local Wan2.1-T2V-1.3B-Diffusers,
            Wan2.1-T2V-14B-Diffusers or Wan2.2-TI2V-5B-Diffusers), or its Hub id. Wan2.2-TI2V-5B's
            `expand_timesteps=True` is kept in the pipeline config; a Wan2.2-A14B folder (`transformer_2`,
            `boundary_ratio`) is refused before anything is written.
        out_dir: the output folder.
        text_mask_token: add a `[MASK]` token (id `vocab_size`) and use the mask source for text; default: the
            uniform source, as the reference.
        seed: seed of the `vocab_embed` initialisation (`None`: torch's global RNG).
        torch_dtype: dtype to load (and write) the transformer in; default: the checkpoint's.
        overwrite: replace `out_dir` if it exists and is not empty. The folder is written next to it and moved into
            place when complete (a failed conversion leaves the old one); an `out_dir` that is, contains or lies
            inside the Wan folder is refused.
        max_shard_size: shard size of the transformer's safetensors files.
        allow_non_finite: write the folder even if a weight holds NaN/inf (default: refuse, naming the tensors).

    The text vocabulary is the Wan tokenizer's (`max(tokenizer.vocab_size, len(tokenizer))`). The video scheduler is
    the Wan folder's own, the text scheduler a `DiscreteFlowScheduler` (`kappa(t) = t`), and the latent convention
    diffusers' (`latent_normalization="diffusers"`), as for every model trained with univigu.

    Returns:
        The output folder (loads with `UniViGUPipeline.from_pretrained`).
    """
    wan = read_wan_folder(wan_path)
    check_output_dir(out_dir, overwrite, inputs=[wan.path])  # before the (long) work
    tokenizer = load_tokenizer(wan)
    vocab_size = text_vocab_size(tokenizer)
    transformer = univigu_transformer_from_wan_folder(
        wan, vocab_size, text_mask_token=text_mask_token, seed=seed, torch_dtype=torch_dtype
    )
    non_finite = check_finite(transformer, allow_non_finite)

    scheduler = _load_wan_scheduler(wan)
    text_scheduler = DiscreteFlowScheduler(
        vocab_size=vocab_size,
        source="mask" if text_mask_token else "uniform",
        mask_token_id=vocab_size if text_mask_token else None,
    )

    return write_converted_pipeline(
        out_dir, wan, transformer, scheduler, text_scheduler, tokenizer, latent_normalization="diffusers",
        provenance={
            "source": "wan",
            "wan_path": os.fspath(wan.path),
            "vocab_size": vocab_size,
            "text_mask_token": bool(text_mask_token),
            "seed": seed,
            "trained": False,
            **({"non_finite_tensors": non_finite} if non_finite else {}),
        },
        overwrite=overwrite,
        inputs=[wan.path],
        max_shard_size=max_shard_size,
        # Wan2.2-TI2V-5B: per-token video timesteps, as its WanPipeline (the prior stays exactly Wan's)
        pipeline_config={"expand_timesteps": bool(wan.model_index.get("expand_timesteps", False))},
    )


def _load_wan_scheduler(wan):
    """The Wan folder's video scheduler (Wan2.1-Diffusers ships UniPCMultistepScheduler in flow mode)."""
    library, class_name = wan.component_class("scheduler")
    cls = getattr(diffusers, class_name, None) if library == "diffusers" else None
    if cls is None:
        raise ValueError(f"{wan.path}: unsupported video scheduler {library}.{class_name}.")
    return cls.from_pretrained(wan.path / "scheduler")
