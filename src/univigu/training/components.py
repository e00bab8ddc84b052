# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Loading the components a training run starts from, choosing what trains, and saving the result.

A run starts from either
    * a Wan2.1 text-to-video folder in diffusers format (`model_index.json` of `WanPipeline`): its transformer is
      turned into a `UniViGUTransformer3DModel` with `from_wan` (text experts initialised from the video ones, fresh
      `vocab_embed`, zero text head) and a `DiscreteFlowScheduler` is created for the text stream; or
    * a `UniViGUPipeline` folder (e.g. the output of Knowledge Recall, where Capability Refinement starts).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import diffusers
import huggingface_hub
import torch
import transformers
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from packaging import version
from transformers import AutoTokenizer, UMT5EncoderModel

from ..models import UniViGUTransformer3DModel
from ..pipelines import UniViGUPipeline
from ..schedulers import DiscreteFlowScheduler
from ..utils.hub import looks_like_hub_id
from .lora import save_lora_weights


logger = logging.getLogger(__name__)

TRAINABLE_CHOICES = ("text_experts", "all", "lora")
#: LoRA targets: every attention projection (self- and cross-attention) and the text expert FFN.
DEFAULT_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ffn_t.net.0.proj", "ffn_t.net.2")


@dataclasses.dataclass
class Components:
    tokenizer: Any
    text_encoder: Any
    vae: Any
    transformer: Any
    scheduler: Any
    text_scheduler: Any
    latent_normalization: str = "diffusers"
    source_kind: str = "univigu"  # "wan" or "univigu"
    call_defaults: dict | None = None  # the starting pipeline's stored call defaults (UniViGU folders)
    expand_timesteps: bool = False  # per-token video timesteps at inference (Wan2.2-TI2V-5B's pipeline flag)


def _model_index(path: str) -> dict:
    index = Path(path) / "model_index.json"
    if not index.exists():
        raise FileNotFoundError(
            f"{path} has no model_index.json: pass a Wan2.1 text-to-video folder in diffusers format (e.g. a local "
            f"copy of Wan-AI/Wan2.1-T2V-1.3B-Diffusers) or a UniViGUPipeline folder."
        )
    return json.loads(index.read_text())


def load_components(
    pretrained_model_name_or_path: str,
    revision: str | None = None,
    variant: str | None = None,
    text_source: str | None = None,
    latent_normalization: str = "diffusers",
    init_seed: int | None = 0,
    encoder_dtype: torch.dtype | None = None,
) -> Components:
    """Loads tokenizer, umT5, VAE, video scheduler, and builds/loads the UniViGU transformer and text scheduler.

    `encoder_dtype` loads the frozen umT5 directly in that dtype (umT5-XXL is 22 GB in fp32: loading it in bf16
    halves every process's host-memory peak)."""
    path = pretrained_model_name_or_path
    if not os.path.isdir(path):
        if not looks_like_hub_id(path):
            raise FileNotFoundError(
                f"--pretrained_model_name_or_path {path}: no such folder. Pass an existing local folder (a Wan2.1 "
                f"diffusers folder or a UniViGUPipeline folder) or a Hub id such as Wan-AI/Wan2.1-T2V-1.3B-Diffusers."
            )
        path = huggingface_hub.snapshot_download(path, revision=revision)
    index = _model_index(path)
    kind = index.get("_class_name")
    if index.get("boundary_ratio") is not None or any(index.get("transformer_2") or ()):
        raise ValueError(
            f"{path} is a two-expert Wan2.2-A14B pipeline (transformer + transformer_2, boundary_ratio="
            f"{index.get('boundary_ratio')}), which UniViGU does not support (docs/backbones.md): start from "
            "Wan2.1-T2V-1.3B/14B or Wan2.2-TI2V-5B."
        )
    common = {"revision": revision}
    tokenizer = AutoTokenizer.from_pretrained(path, subfolder="tokenizer", **common)
    te_kwargs = dict(common)
    if encoder_dtype is not None:
        key = "dtype" if version.parse(transformers.__version__) >= version.parse("4.56") else "torch_dtype"
        te_kwargs[key] = encoder_dtype
    text_encoder = UMT5EncoderModel.from_pretrained(path, subfolder="text_encoder", variant=variant, **te_kwargs)
    vae = AutoencoderKLWan.from_pretrained(path, subfolder="vae", variant=variant, **common)
    scheduler_class = getattr(diffusers, index.get("scheduler", [None, "FlowMatchEulerDiscreteScheduler"])[1])
    scheduler = scheduler_class.from_pretrained(path, subfolder="scheduler", **common)

    if kind == "UniViGUPipeline":
        transformer = UniViGUTransformer3DModel.from_pretrained(path, subfolder="transformer", variant=variant, **common)
        text_scheduler = DiscreteFlowScheduler.from_pretrained(path, subfolder="text_scheduler", **common)
        if text_source is not None and text_source != text_scheduler.config.source:
            raise ValueError(
                f"--text_source {text_source}: {path} was built with the {text_scheduler.config.source} source and "
                f"keeps it (its vocabulary and text head are sized for it). Drop --text_source, or start from a folder "
                f"converted for it (`univigu convert wan ... --text-source {text_source}`)."
            )
        return Components(
            tokenizer, text_encoder, vae, transformer, scheduler, text_scheduler,
            latent_normalization=index.get("latent_normalization", "diffusers"), source_kind="univigu",
            call_defaults=index.get("call_defaults"), expand_timesteps=bool(index.get("expand_timesteps", False)),
        )
    if kind in ("WanPipeline", None) and "transformer" in index:
        wan = WanTransformer3DModel.from_pretrained(path, subfolder="transformer", variant=variant, **common)
        # the same text vocabulary as `univigu convert wan` (umT5: 256,384 ids incl. the extra ids)
        vocab_size = max(int(getattr(tokenizer, "vocab_size", 0) or 0), len(tokenizer))
        transformer = UniViGUTransformer3DModel.from_wan(
            wan, vocab_size=vocab_size, text_mask_token=text_source == "mask", seed=init_seed
        )
        del wan
        text_scheduler = DiscreteFlowScheduler(vocab_size=vocab_size, source=text_source or "uniform")
        return Components(
            tokenizer, text_encoder, vae, transformer, scheduler, text_scheduler,
            latent_normalization=latent_normalization, source_kind="wan",
            expand_timesteps=bool(index.get("expand_timesteps", False)),
        )
    raise ValueError(
        f"{path} holds a {kind!r}; training starts from a Wan2.1 text-to-video folder (WanPipeline) or a "
        f"UniViGUPipeline folder."
    )


def configure_trainable(
    transformer,
    trainable: str,
    lora_rank: int = 16,
    lora_alpha: float | None = None,
    lora_dropout: float = 0.0,
    lora_target_modules: Iterable[str] | None = None,
) -> list[torch.nn.Parameter]:
    """Sets `requires_grad` for `trainable` in {"text_experts", "all", "lora"} and returns the trainable parameters.

    "lora" adds a peft adapter named "default" (Gaussian init: the adapter starts as an exact no-op) on
    `lora_target_modules` (default: the attention projections and the text FFN `ffn_t`).
    """
    if trainable not in TRAINABLE_CHOICES:
        raise ValueError(f"--trainable must be one of {TRAINABLE_CHOICES}, got {trainable!r}.")
    transformer.requires_grad_(False)
    if trainable == "all":
        transformer.requires_grad_(True)
    elif trainable == "text_experts":
        for _, param in transformer.text_expert_parameters():
            param.requires_grad_(True)
    else:
        from peft import LoraConfig

        targets = list(lora_target_modules or DEFAULT_LORA_TARGETS)
        config = LoraConfig(
            r=lora_rank,
            lora_alpha=lora_alpha if lora_alpha is not None else lora_rank,
            lora_dropout=lora_dropout,
            init_lora_weights="gaussian",
            target_modules=targets,
        )
        transformer.add_adapter(config)
    params = [p for p in transformer.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"--trainable {trainable} left no trainable parameter (check --lora_target_modules).")
    return params


def reinit_modules(transformer, names: Iterable[str], seed: int = 0) -> list[str]:
    """Re-draws the weights of the named submodules (e.g. ``blocks.3.attn1``) from their own default initialisation,
    seeded, and returns the names of the tensors it replaced.

    Why: the last blocks of a trained generator can be a poor place for the text stream to read a video from (on
    ShapesWorld the self-attention of the last two of four blocks keeps captions from learning shape,
    docs/research_log.md, session 8); re-initialising them before Knowledge Recall trades part of the prior for it,
    and the generation views re-train them. The draws are the same on every process (DDP also broadcasts rank 0's).
    """
    replaced = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in names:
            try:
                module = transformer.get_submodule(name)
            except AttributeError as error:
                raise ValueError(
                    f"--reinit_modules: the transformer has no submodule {name!r} (names look like 'blocks.3.attn1'; "
                    f"print(pipe.transformer) lists them)."
                ) from error
            before = {k: v.detach().clone() for k, v in module.state_dict().items()}
            resettable = [m for m in module.modules() if hasattr(m, "reset_parameters")]
            if not resettable:
                raise ValueError(f"--reinit_modules: {name!r} has no layer with a default initialisation to re-draw.")
            for sub in resettable:
                sub.reset_parameters()
            replaced += [f"{name}.{k}" for k, v in module.state_dict().items() if not torch.equal(v, before[k])]
    return replaced


def count_parameters(module) -> dict[str, int]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}


def training_call_defaults(args, base: dict | None = None) -> dict:
    """The call defaults a trained pipeline records: the size, frame count and text lengths it was trained at, the
    caption steps its validation used, and the training-time rule for reading videos — latents are the VAE
    posterior's mode (`encode_videos`), so inference must use `video_latents_mode="argmax"` too. Merged over the
    starting pipeline's own defaults (e.g. tuned t2v steps)."""
    defaults = copy.deepcopy(base or {})
    defaults.update(height=args.height, width=args.width, num_frames=args.num_frames,
                    max_sequence_length=args.max_sequence_length, video_latents_mode="argmax")
    for task in ("v2t", "t2vt"):
        defaults.setdefault(task, {})["max_text_length"] = args.max_text_length
    # how understanding views attended in training is how captioning must attend
    defaults["v2t"]["understanding_attention"] = getattr(args, "understanding_attention", "full")
    defaults["v2t"]["num_inference_steps"] = args.validation_num_inference_steps
    return defaults


def build_pipeline(components: Components, transformer=None, call_defaults: dict | None = None):
    return UniViGUPipeline(
        tokenizer=components.tokenizer,
        text_encoder=components.text_encoder,
        vae=components.vae,
        transformer=transformer if transformer is not None else components.transformer,
        scheduler=components.scheduler,
        text_scheduler=components.text_scheduler,
        latent_normalization=components.latent_normalization,
        call_defaults=call_defaults if call_defaults is not None else components.call_defaults,
        expand_timesteps=components.expand_timesteps,
    )


def save_lora(output_dir: str, transformer) -> str:
    """Writes `pytorch_lora_weights.safetensors` (loadable with `pipe.load_lora_weights(output_dir)`)."""
    return save_lora_weights(output_dir, transformer)
