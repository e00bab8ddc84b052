# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Tiny, randomly initialised Wan-style components for tests, demos and smoke runs.

They stand in for Wan2.1's umT5 tokenizer and encoder, its VAE and its transformer, built from configs only (no Hub
downloads), and small enough that a whole pipeline call takes well under a second on a laptop CPU. The shapes follow
diffusers' own Wan tests (a VAE with base_dim 3, a transformer of 2 heads x 12 dims, 2 layers).

With the defaults, a 9-frame 64 x 64 video encodes to (16, 3, 8, 8) latents (4x temporal, 8x spatial, like Wan2.1's
VAE), which the transformer's (1, 2, 2) patches turn into 3 x 4 x 4 = 48 video tokens.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from .text import shapesworld_vocabulary


PAD_TOKEN = "<pad>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"
#: Special tokens come first, with the ids umT5 gives them (pad 0, eos 1, unk 2).
SPECIAL_TOKENS = (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch for a model's initialisation without disturbing the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_tokenizer(save_dir: str | os.PathLike | None = None, model_max_length: int = 128,
                    vocab_size: int | None = None):
    """A word-level tokenizer over the whole ShapesWorld vocabulary, behaving like Wan's umT5 tokenizer where it
    matters.

    - ids: `<pad>` 0, `</s>` 1, `<unk>` 2, then the sorted vocabulary (so ids are stable across runs and machines);
    - `</s>` is appended to every sequence by the post-processor, as umT5's tokenizer does;
    - case is kept (the vocabulary holds both "a"/"A" and "the"/"The"), and '.' is its own token;
    - `decode(..., skip_special_tokens=True)` gives the text back exactly (the decoder removes the space before '.').

    Args:
        save_dir: if given, the tokenizer is also saved there (`AutoTokenizer.from_pretrained(save_dir)` reloads it).
        model_max_length: default maximum length (pipelines usually pass `max_length` explicitly).
        vocab_size: if given, unused filler tokens (`<extra_N>`) pad the vocabulary to this size, e.g. umT5's 256,384,
            so that a full-size model can be benchmarked with a tokenizer of the real width and no download.

    Returns:
        `transformers.PreTrainedTokenizerFast`.
    """

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for word in shapesworld_vocabulary():
        vocab.setdefault(word, len(vocab))
    if vocab_size is not None:
        if vocab_size < len(vocab):
            raise ValueError(f"vocab_size={vocab_size} is smaller than the ShapesWorld vocabulary ({len(vocab)}).")
        vocab.update({f"<extra_{i}>": i for i in range(len(vocab), vocab_size)})

    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}",
        pair=f"$A {EOS_TOKEN} $B {EOS_TOKEN}",
        special_tokens=[(EOS_TOKEN, vocab[EOS_TOKEN])],
    )
    # WordPiece's decoder joins tokens with spaces and, with `cleanup`, removes the space before punctuation; no token
    # carries the "##" prefix, so it does nothing else.
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=model_max_length,
        padding_side="right",
    )
    if save_dir is not None:
        tokenizer.save_pretrained(save_dir)
    return tokenizer


def build_tiny_text_encoder(
    vocab_size: int, d_model: int = 32, seed: int = 0, num_layers: int = 2, num_heads: int = 2
):
    """A tiny `UMT5EncoderModel` (umT5 is Wan's text encoder); its hidden size is the transformer's `text_dim`.

    Dropout is off so that the encoder gives the same embedding whether or not it was left in train mode.
    """

    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=64,
        num_layers=num_layers,
        num_heads=num_heads,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        dropout_rate=0.0,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    with _seeded(seed):
        model = UMT5EncoderModel(config)
    return model.eval()


def build_tiny_vae(seed: int = 0, base_dim: int = 3, z_dim: int = 16):
    """A tiny `AutoencoderKLWan` with Wan2.1's compression (8x spatial, 4x temporal), as in diffusers' Wan tests.

    `dim_mult` [1, 1, 1, 1] gives three spatial downsamplings and `temperal_downsample` [False, True, True] two
    temporal ones: (3, 9, 64, 64) -> (16, 3, 8, 8). The config's `scale_factor_spatial=8` and
    `scale_factor_temporal=4` (the class defaults) are what diffusers pipelines read for latent shapes. Untrained, it
    only checks plumbing; `latents_mean`/`latents_std` are Wan2.1's defaults.
    """

    with _seeded(seed):
        vae = AutoencoderKLWan(
            base_dim=base_dim,
            z_dim=z_dim,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        )
    return vae.eval()


def build_tiny_wan_transformer(seed: int = 0, text_dim: int = 32, in_channels: int = 16):
    """A tiny `WanTransformer3DModel`: patch (1, 2, 2), 2 heads x 12 dims, 2 layers (diffusers' Wan test shapes)."""

    with _seeded(seed):
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=in_channels,
            out_channels=in_channels,
            text_dim=text_dim,
            freq_dim=16,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        )
    return transformer.eval()


def build_tiny_components(seed: int = 0) -> dict[str, Any]:
    """Every component a Wan-style pipeline needs, tiny and random: keys `tokenizer`, `text_encoder`, `vae`,
    `transformer` (a `WanTransformer3DModel`) and `scheduler` (`FlowMatchEulerDiscreteScheduler(shift=3.0)`, Wan's
    flow-match Euler sampler).

    `WanPipeline(**build_tiny_components())` runs as is; UniViGU builds its transformer from the Wan one.
    """

    tokenizer = build_tokenizer()
    text_encoder = build_tiny_text_encoder(vocab_size=len(tokenizer), seed=seed)
    return {
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "vae": build_tiny_vae(seed=seed),
        "transformer": build_tiny_wan_transformer(seed=seed, text_dim=text_encoder.config.d_model),
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=3.0),
    }
