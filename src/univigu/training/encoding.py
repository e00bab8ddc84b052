# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""What training feeds the transformer, computed as `UniViGUPipeline` computes it: umT5 prompt embeddings
(`UniViGUPipeline.encode_prompt`), normalised VAE latents (`UniViGUPipeline.normalize_latents`) and the text-stream
token ids (the pipeline's tokenizer and prompt cleaning).

The frozen encoders are used through a pipeline that holds only them (:func:`encoding_pipeline`), so that a training
run and the pipeline it saves cannot disagree on how a prompt or a video is encoded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers.pipelines.wan.pipeline_wan import prompt_clean

from ..pipelines import UniViGUPipeline
from ..pipelines.prompt_input import tokenize_prompts


def encoding_pipeline(tokenizer=None, text_encoder=None, vae=None, latent_normalization: str = "diffusers"):
    """A `UniViGUPipeline` holding only the given encoders (no transformer, no schedulers): its `encode_prompt` and
    `normalize_latents` are what training encodes with."""
    return UniViGUPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=None, scheduler=None,
                           text_scheduler=None, latent_normalization=latent_normalization)


@torch.no_grad()
def encode_videos(vae, videos: torch.Tensor, latent_normalization: str = "diffusers") -> torch.Tensor:
    """`(B, 3, F, H, W)` videos in [-1, 1] -> float32 latents (the mode of the VAE posterior), normalised like
    diffusers' WanPipeline (`(z - latents_mean) / latents_std`) or left raw (the reference's convention).

    The latents are normalised in float32 whatever the VAE's dtype (`UniViGUPipeline.encode_video` normalises in the
    VAE's dtype, which rounds differently for a bf16 VAE)."""
    if latent_normalization not in ("diffusers", "raw"):
        raise ValueError(f"latent_normalization must be 'diffusers' or 'raw', got {latent_normalization!r}.")
    videos = videos.to(device=vae.device, dtype=vae.dtype)
    z = vae.encode(videos).latent_dist.mode().float()
    return encoding_pipeline(vae=vae, latent_normalization=latent_normalization).normalize_latents(z)


@torch.no_grad()
def encode_prompts_padded(tokenizer, text_encoder, prompts: Sequence[str],
                          max_sequence_length: int = 512) -> torch.Tensor:
    """umT5 embeddings of `prompts` as `UniViGUPipeline.encode_prompt` (= WanPipeline) computes them: float32, on the
    CPU, each prompt's own tokens followed by zeros, `(B, max_sequence_length, text_dim)`."""
    pipe = encoding_pipeline(tokenizer=tokenizer, text_encoder=text_encoder)
    return pipe.encode_prompt(list(prompts), do_classifier_free_guidance=False, max_sequence_length=max_sequence_length,
                              device=torch.device("cpu"), dtype=torch.float32)[0]


def encode_prompts(tokenizer, text_encoder, prompts: Sequence[str],
                   max_sequence_length: int = 512) -> list[torch.Tensor]:
    """:func:`encode_prompts_padded`, each trimmed to its own length `(n_i, text_dim)` (what the latent cache stores;
    pad them back with zeros to `max_sequence_length` with :func:`pad_prompt_embeds`)."""
    embeds = encode_prompts_padded(tokenizer, text_encoder, prompts, max_sequence_length)
    lengths = tokenize(tokenizer, prompts, max_sequence_length).attention_mask.gt(0).sum(dim=1).tolist()
    return [e[:n] for e, n in zip(embeds, lengths)]


def clean_text(text: str) -> str:
    """The prompt cleaning of WanPipeline / UniViGUPipeline (html unescape, ftfy if installed, whitespace), so that
    training sees texts tokenized exactly as the pipeline tokenizes them."""
    return prompt_clean(text)


def tokenize(tokenizer, texts: Sequence[str], max_length: int):
    """Cleaned `texts` tokenized as the pipeline tokenizes a prompt: padded and truncated to `max_length`, with EOS."""
    return tokenize_prompts(tokenizer, list(texts), max_length)


def pad_prompt_embeds(embeds: Sequence[torch.Tensor], max_sequence_length: int) -> torch.Tensor:
    """Zero-pads trimmed umT5 embeddings to `(B, max_sequence_length, text_dim)` (WanPipeline's layout)."""
    text_dim = embeds[0].shape[-1]
    out = torch.zeros(len(embeds), max_sequence_length, text_dim, dtype=torch.float32)
    for i, e in enumerate(embeds):
        n = min(e.shape[0], max_sequence_length)
        out[i, :n] = e[:n].float()
    return out


def tokenize_text_stream(tokenizer, texts: Sequence[str], max_text_length: int, text_padding: str = "learn"):
    """Token ids of the text stream, padded to `max_text_length`.

    `text_padding="learn"` (default): every position is trained and attended, so the model learns to end a text
    with EOS and padding, which is what the v2t sampler needs (it denoises `max_text_length` positions and decodes
    with `skip_special_tokens`, as the reference does). `"mask"`: padding is excluded from attention and loss.
    Returns `(ids, mask, real_token_mask)`; the last one marks the text's own tokens (incl. EOS), which is what a
    generation view attends to (text-to-video puts the prompt's own tokens in the text stream, padding masked).
    """
    enc = tokenize(tokenizer, texts, max_text_length)
    ids = enc.input_ids.long()
    real = enc.attention_mask.bool()
    if text_padding == "learn":
        mask = torch.ones_like(ids, dtype=torch.bool)
    elif text_padding == "mask":
        mask = real
    else:
        raise ValueError(f"text_padding must be 'learn' or 'mask', got {text_padding!r}.")
    return ids, mask, real


__all__ = ["clean_text", "encode_prompts", "encode_prompts_padded", "encode_videos", "encoding_pipeline",
           "pad_prompt_embeds", "tokenize", "tokenize_text_stream"]
