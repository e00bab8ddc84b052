# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""UniViGUTransformer3DModel: one Wan2.1 diffusion transformer for video (continuous flow) and text (discrete flow)
over the joint sequence ``[video patch tokens ; text tokens]``, with a modality-driven mixture of experts: everything
in a block is shared but the feed-forward network (``ffn`` for video, ``ffn_t`` for text). Built from diffusers' own
Wan modules; with no text stream it computes exactly what ``WanTransformer3DModel`` computes. univigu's
docs/architecture.md has the diagram and the mapping to the paper and to the reference checkpoint's names.

This file and the siblings it imports (``wan_weights.py``, ``step_cache.py``, ``video_kv_cache.py``,
``context_parallel.py``) import diffusers and torch only, on purpose: saving the model (``save_pretrained``, and the
pipeline's Hub export) writes them from the package into the folder, so that
``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` works without univigu installed. Checkpoint
folders in the repository do not carry them.
"""

import math
import os
import shutil
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin, FeedForward
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.cache_utils import CacheMixin
from diffusers.models.embeddings import PixArtAlphaTextProjection, TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor, WanRotaryPosEmbed
from diffusers.utils import USE_PEFT_BACKEND, BaseOutput, logging, scale_lora_layers, unscale_lora_layers
from diffusers.utils.dynamic_modules_utils import get_relative_import_files

from .context_parallel import JointSequenceShards, joint_attention_mask
from .step_cache import cache_config_for, register_block
from .video_kv_cache import UniViGUVideoKVCache
from .wan_weights import is_text_expert, univigu_state_from_wan


logger = logging.get_logger(__name__)


@dataclass
class UniViGUTransformerOutput(BaseOutput):
    """
    Args:
        sample (`torch.Tensor` of shape `(batch_size, out_channels, num_frames, height, width)` or `None`):
            The predicted video velocity (noise - x0), or `None` when no video stream was given.
        text_logits (`torch.Tensor` of shape `(batch_size, text_length, num_text_embeddings)` or `None`):
            Logits of the clean text tokens, or `None` when no text stream was given.
    """

    sample: torch.Tensor | None = None
    text_logits: torch.Tensor | None = None


def _apply_interleaved_rope(x: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor) -> torch.Tensor:
    # Wan's video RoPE (pairs of adjacent channels), written with the very same ops as diffusers'
    # WanAttnProcessor so that the video-only path is bit-identical to WanTransformer3DModel.
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos = freqs_cos[..., 0::2]
    sin = freqs_sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


def _apply_rotate_half_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # The text RoPE of the reference: cos/sin of cat(freqs, freqs), rotate-half (non-interleaved) pairing.
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x.float() * cos + rotated.float() * sin).type_as(x)


def _apply_joint_rope(x: torch.Tensor, rotary_emb: dict[str, Any]) -> torch.Tensor:
    # `x` is `[video ; text]` (either part may be absent): each part takes its own stream's RoPE.
    video_rope, text_rope = rotary_emb.get("video"), rotary_emb.get("text")
    if text_rope is None:
        return _apply_interleaved_rope(x, *video_rope)
    if video_rope is None:
        return _apply_rotate_half_rope(x, *text_rope)
    n = rotary_emb["num_video_tokens"]
    return torch.cat([_apply_interleaved_rope(x[:, :n], *video_rope), _apply_rotate_half_rope(x[:, n:], *text_rope)], 1)


class UniViGUTextRotaryPosEmbed(nn.Module):
    """1D rotary embedding of the text stream: base `theta` over the full head dim, positions 0..L-1."""

    def __init__(self, attention_head_dim: int, theta: float = 10000.0):
        super().__init__()
        self.attention_head_dim = attention_head_dim
        self.theta = theta

    def forward(self, text_length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        dim = self.attention_head_dim
        # Computed on the fly (not a buffer): it is cheap, and meta-device/low-memory loading then never
        # leaves it uninitialised. The reference stores `inv_freq`; conversion drops it.
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim))
        positions = torch.arange(text_length, device=device, dtype=torch.float32)
        freqs = torch.outer(positions, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        # (1, L, 1, head_dim) to broadcast over (batch, seq, heads, head_dim)
        return emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]


class UniViGUAttnProcessor:
    """Joint self-attention over `[video ; text]`: Wan's 3D RoPE on the video part of q/k, the 1D rotate-half
    RoPE on the text part, and a key-padding mask for text. Without text it is Wan's processor, op for op."""

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self,
        attn: WanAttention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: dict[str, Any] | None = None,
        video_kv: tuple["UniViGUVideoKVCache", int] | None = None,
    ) -> torch.Tensor:
        if attn.fused_projections:
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query = attn.to_q(hidden_states)
            key = attn.to_k(hidden_states)
            value = attn.to_v(hidden_states)

        query = attn.norm_q(query)
        key = attn.norm_k(key)

        query = query.unflatten(2, (attn.heads, -1))
        key = key.unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))

        if rotary_emb is not None:
            query = _apply_joint_rope(query, rotary_emb)
            key = _apply_joint_rope(key, rotary_emb)

        if video_kv is not None:
            cache, layer = video_kv
            if cache.refresh:
                num_video = rotary_emb["num_video_tokens"]
                cache.store(layer, key[:, :num_video], value[:, :num_video])
            else:  # text-only step: the text attends to the stored video keys/values and to itself
                key, value = cache.extend(layer, key, value)

        hidden_states = dispatch_attention_fn(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False,
            backend=self._attention_backend,
            parallel_config=self._parallel_config,  # set by `enable_parallelism`: Ulysses/ring over the joint sequence
        )
        hidden_states = hidden_states.flatten(2, 3).type_as(query)

        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        return hidden_states


class UniViGUTimeEmbedding(nn.Module):
    """Per-stream time embedding: Wan's `timesteps_proj` + `time_embedder` + SiLU + `time_proj` (6 x dim)."""

    def __init__(self, dim: int, time_freq_dim: int, time_proj_dim: int):
        super().__init__()
        self.timesteps_proj = Timesteps(num_channels=time_freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedder = TimestepEmbedding(in_channels=time_freq_dim, time_embed_dim=dim)
        self.act_fn = nn.SiLU()
        self.time_proj = nn.Linear(dim, time_proj_dim)

    def forward(
        self, timestep: torch.Tensor, dtype: torch.dtype, timestep_seq_len: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        timestep = self.timesteps_proj(timestep)
        if timestep_seq_len is not None:  # per-token timesteps (Wan2.2 TI2V `expand_timesteps`), as in diffusers
            timestep = timestep.unflatten(0, (-1, timestep_seq_len))
        time_embedder_dtype = next(iter(self.time_embedder.parameters())).dtype
        if timestep.dtype != time_embedder_dtype and time_embedder_dtype != torch.int8:
            timestep = timestep.to(time_embedder_dtype)
        temb = self.time_embedder(timestep).to(dtype)
        timestep_proj = self.time_proj(self.act_fn(temb))
        return temb, timestep_proj


class UniViGUVideoHead(nn.Module):
    """Wan's output layer: `norm_out` (no params) + modulation from `scale_shift_table_v` + `proj_out`."""

    def __init__(self, dim: int, out_features: int, eps: float):
        super().__init__()
        self.norm_out = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.proj_out = nn.Linear(dim, out_features)

    def forward(self, hidden_states, temb, scale_shift_table):
        if temb.ndim == 3:  # (B, N, D): per-token timesteps (Wan2.2 TI2V), as in WanTransformer3DModel
            shift, scale = (scale_shift_table.unsqueeze(0).to(temb.device) + temb.unsqueeze(2)).chunk(2, dim=2)
            shift, scale = shift.squeeze(2), scale.squeeze(2)
        else:
            shift, scale = (scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        shift = shift.to(hidden_states.device)
        scale = scale.to(hidden_states.device)
        hidden_states = (self.norm_out(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        return self.proj_out(hidden_states)


class UniViGUTextHead(nn.Module):
    """Text output layer: weight-only LayerNorm in fp32, modulation from `scale_shift_table_t`, then a
    zero-initialised linear map to the vocabulary (so a fresh model predicts uniform logits). The norm's epsilon is
    PyTorch's default (1e-5), not Wan's 1e-6, as in the reference (checked against its outputs)."""

    def __init__(self, dim: int, num_embeddings: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        # called as a module (not through its weight), so that offloading hooks onload it
        self.norm_final = FP32LayerNorm(dim, eps=eps, elementwise_affine=True, bias=False)
        self.linear = nn.Linear(dim, num_embeddings)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden_states, temb, scale_shift_table):
        shift, scale = (scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        normed = self.norm_final(hidden_states.float())
        hidden_states = (normed * (1 + scale.float()) + shift.float()).type_as(hidden_states)
        return self.linear(hidden_states)


def _modulation(scale_shift_table: torch.Tensor, timestep_proj: torch.Tensor):
    # (1, 6, D) + (B, 6, D) -> six (B, 1, D) tensors: shift, scale, gate, c_shift, c_scale, c_gate
    if timestep_proj.ndim == 4:  # (B, N, 6, D), per-token timesteps (Wan2.2 TI2V): six (B, N, D), as diffusers
        return tuple(m.squeeze(2) for m in (scale_shift_table.unsqueeze(0) + timestep_proj.float()).chunk(6, dim=2))
    return (scale_shift_table + timestep_proj.float()).chunk(6, dim=1)


class UniViGUTransformerBlock(nn.Module):
    """A Wan block whose feed-forward is routed by modality: `ffn` for video tokens, `ffn_t` for text."""

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        num_heads: int,
        qk_norm: str = "rms_norm_across_heads",
        cross_attn_norm: bool = False,
        eps: float = 1e-6,
        text_ffn: str = "expert",
    ):
        super().__init__()
        head_dim = dim // num_heads
        self.norm1 = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.attn1 = WanAttention(
            dim=dim, heads=num_heads, dim_head=head_dim, eps=eps, cross_attention_dim_head=None,
            processor=UniViGUAttnProcessor(),
        )
        self.attn2 = WanAttention(
            dim=dim, heads=num_heads, dim_head=head_dim, eps=eps, cross_attention_dim_head=head_dim,
            processor=WanAttnProcessor(),
        )
        self.norm2 = FP32LayerNorm(dim, eps, elementwise_affine=True) if cross_attn_norm else nn.Identity()
        self.ffn = FeedForward(dim, inner_dim=ffn_dim, activation_fn="gelu-approximate")
        # The modality expert of the text stream; `text_ffn="shared"` (an ablation) routes text through `ffn` too.
        self.ffn_t = FeedForward(dim, inner_dim=ffn_dim, activation_fn="gelu-approximate") if text_ffn == "expert" else None
        self.norm3 = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.scale_shift_table = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        video_timestep_proj: torch.Tensor | None,
        text_timestep_proj: torch.Tensor | None,
        rotary_emb: dict[str, Any],
        attention_mask: torch.Tensor | None = None,
        video_kv: tuple[UniViGUVideoKVCache, int] | None = None,
    ) -> torch.Tensor:
        # `hidden_states` is the joint sequence `[video ; text]` (either part may be absent, as its timestep
        # projection then is) and so is the output: with no text it is Wan's block, in and out, which is what
        # diffusers' block-level cache hooks (FirstBlockCache, MagCache, ...) read and replace.
        num_video = rotary_emb["num_video_tokens"]
        streams = []  # (states, modulation, ffn) for the streams present, video first
        if video_timestep_proj is not None:
            video = hidden_states if text_timestep_proj is None else hidden_states[:, :num_video]
            streams.append([video, _modulation(self.scale_shift_table, video_timestep_proj), self.ffn])
        if text_timestep_proj is not None:
            text = hidden_states if video_timestep_proj is None else hidden_states[:, num_video:]
            text_ffn = self.ffn_t if self.ffn_t is not None else self.ffn
            streams.append([text, _modulation(self.scale_shift_table, text_timestep_proj), text_ffn])
        lengths = [s[0].shape[1] for s in streams]

        def joint(tensors):
            return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=1)

        def split(tensor):
            return [tensor] if len(lengths) == 1 else list(tensor.split(lengths, dim=1))

        # 1. Self-attention over the joint sequence, each stream modulated and gated by its own timestep.
        normed = [(self.norm1(x.float()) * (1 + mod[1]) + mod[0]).type_as(x) for x, mod, _ in streams]
        attn_kwargs = {"video_kv": video_kv} if video_kv is not None else {}
        attn_output = split(self.attn1(joint(normed), None, attention_mask, rotary_emb, **attn_kwargs))
        for stream, out in zip(streams, attn_output):
            x, mod, _ = stream
            stream[0] = (x.float() + out * mod[2]).type_as(x)

        # 2. Cross-attention of every token to the projected umT5 embedding (ungated).
        states = joint([s[0] for s in streams])
        normed = self.norm2(states.float()).type_as(states)
        states = states + self.attn2(normed, encoder_hidden_states, None, None)
        for stream, x in zip(streams, split(states)):
            stream[0] = x

        # 3. Feed-forward, routed by modality.
        outputs = []
        for x, mod, ffn in streams:
            normed = (self.norm3(x.float()) * (1 + mod[4]) + mod[3]).type_as(x)
            outputs.append((x.float() + ffn(normed).float() * mod[5]).type_as(x))
        return joint(outputs)


class UniViGUTransformer3DModel(ModelMixin, ConfigMixin, PeftAdapterMixin, CacheMixin, AttentionMixin):
    r"""
    The Uni-ViGU transformer: Wan2.1's video diffusion transformer plus a text stream.

    Args (Wan's, see `diffusers.WanTransformer3DModel`, plus):
        vocab_size (`int`): Number of real text tokens (the tokenizer's vocabulary size).
        text_mask_token (`bool`, defaults to `False`): Add one embedding row / logit for a `[MASK]` source
            token (id `vocab_size`). The reference uses the uniform source and no mask token.
        text_rope_theta (`float`, defaults to `10000.0`): Base of the text stream's 1D RoPE.
        text_rope_max_seq_len (`int`, defaults to `1024`): Longest text sequence accepted.
        text_ffn (`str`, defaults to `"expert"`): `"expert"`, the paper's modality-driven MoE (text tokens go through
            their own `ffn_t`), or `"shared"` (text tokens go through the video `ffn`; the ablation without experts).
    """

    _supports_gradient_checkpointing = True
    # Wan's own lists, under our names (its `condition_embedder` is our `cond_text_embedder` + `time_embedding_*`,
    # and its `^proj_out$`, a diffusers default, is our `video_head`), so that fp8 layerwise casting keeps in high
    # precision exactly what it keeps for WanTransformer3DModel.
    _skip_layerwise_casting_patterns = [
        "patch_embedding", "cond_text_embedder", "time_embedding", "vocab_embed", "norm", "video_head",
    ]
    _no_split_modules = ["UniViGUTransformerBlock"]
    # Wan's list, plus the names UniViGU gives Wan's output modulation (`scale_shift_table_v`) and its text twin: what
    # Wan keeps in float32 under `from_pretrained(dtype=torch.bfloat16)` must stay there for the prior to be kept.
    _keep_in_fp32_modules = [
        "rope", "time_embedder", "scale_shift_table", "scale_shift_table_v", "scale_shift_table_t", "norm1", "norm2",
        "norm3", "norm_final",
    ]
    _repeated_blocks = ["UniViGUTransformerBlock"]
    # What layerwise casting keeps in high precision, as module names for quantizers (torchao `modules_to_not_convert`,
    # bitsandbytes `llm_int8_skip_modules`); `_keep_in_fp32_modules` are kept out by diffusers itself.
    _skip_quantization_modules = ["patch_embedding", "cond_text_embedder", "time_embedding_v", "time_embedding_t",
                                  "vocab_embed", "video_head"]
    # `enable_parallelism(config=ContextParallelConfig(...))` needs a plan; each stream is split on its own, which hooks
    # cannot express, so `forward` shards the joint sequence itself (context_parallel.py) and the plan is empty.
    _cp_plan = {}

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        rope_max_seq_len: int = 1024,
        vocab_size: int = 256384,
        text_mask_token: bool = False,
        text_rope_theta: float = 10000.0,
        text_rope_max_seq_len: int = 1024,
        text_ffn: str = "expert",
    ) -> None:
        super().__init__()
        # a damaged config.json (null heads, a two-entry patch size) is named here rather than failing in a matmul or
        # as a weight-shape mismatch (found by benchmarks/probe_bad_inputs.py)
        sizes = dict(num_attention_heads=num_attention_heads, attention_head_dim=attention_head_dim,
                     in_channels=in_channels, text_dim=text_dim, freq_dim=freq_dim, ffn_dim=ffn_dim,
                     num_layers=num_layers, rope_max_seq_len=rope_max_seq_len, vocab_size=vocab_size,
                     text_rope_max_seq_len=text_rope_max_seq_len)
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"UniViGUTransformer3DModel: `{name}` must be a whole number >= 1, got {value!r} "
                                 "(check the transformer's config.json).")
        if (not isinstance(patch_size, (list, tuple)) or len(patch_size) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in patch_size)):
            raise ValueError(f"UniViGUTransformer3DModel: `patch_size` must be three whole numbers >= 1 (time, height, "
                             f"width), got {patch_size!r} (check the transformer's config.json).")
        if text_ffn not in ("expert", "shared"):
            raise ValueError(f"text_ffn must be 'expert' (the paper's MoE) or 'shared', got {text_ffn!r}.")
        if qk_norm != "rms_norm_across_heads":
            raise ValueError(f"Only qk_norm='rms_norm_across_heads' (Wan2.1's) is supported, got {qk_norm!r}.")
        inner_dim = num_attention_heads * attention_head_dim
        out_channels = out_channels or in_channels
        num_text_embeddings = vocab_size + (1 if text_mask_token else 0)

        # 1. Embeddings of the two streams and of the umT5 condition
        self.rope = WanRotaryPosEmbed(attention_head_dim, patch_size, rope_max_seq_len)
        self.rotary_emb_text = UniViGUTextRotaryPosEmbed(attention_head_dim, text_rope_theta)
        self.patch_embedding = nn.Conv3d(in_channels, inner_dim, kernel_size=patch_size, stride=patch_size)
        self.vocab_embed = nn.Embedding(num_text_embeddings, inner_dim)
        self.cond_text_embedder = PixArtAlphaTextProjection(text_dim, inner_dim, act_fn="gelu_tanh")

        # 2. One time embedding per stream
        self.time_embedding_v = UniViGUTimeEmbedding(inner_dim, freq_dim, inner_dim * 6)
        self.time_embedding_t = UniViGUTimeEmbedding(inner_dim, freq_dim, inner_dim * 6)

        # 3. Blocks
        self.blocks = nn.ModuleList(
            UniViGUTransformerBlock(inner_dim, ffn_dim, num_attention_heads, qk_norm, cross_attn_norm, eps, text_ffn)
            for _ in range(num_layers)
        )

        # 4. Output heads and their modulation tables
        self.scale_shift_table_v = nn.Parameter(torch.randn(1, 2, inner_dim) / inner_dim**0.5)
        self.scale_shift_table_t = nn.Parameter(torch.randn(1, 2, inner_dim) / inner_dim**0.5)
        self.video_head = UniViGUVideoHead(inner_dim, out_channels * math.prod(patch_size), eps)
        self.text_head = UniViGUTextHead(inner_dim, num_text_embeddings)

        self.gradient_checkpointing = False

    # ------------------------------------------------------------------ helpers

    @classmethod
    def extract_init_dict(cls, config_dict, **kwargs):
        # `auto_map` (written because the class is registered for AutoModel) is loading metadata, not an argument:
        # drop it so loading a saved folder does not warn about an unexpected config attribute.
        config_dict = {key: value for key, value in config_dict.items() if key != "auto_map"}
        return super().extract_init_dict(config_dict, **kwargs)

    def save_pretrained(
        self,
        save_directory,
        is_main_process: bool = True,
        save_function=None,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size="10GB",
        push_to_hub: bool = False,
        use_flashpack: bool = False,
        **kwargs,
    ):
        """`ModelMixin.save_pretrained`, plus a copy of this module file next to the weights, so that the folder
        loads with `diffusers.AutoModel.from_pretrained(folder, trust_remote_code=True)` without univigu.

        The arguments are `ModelMixin.save_pretrained`'s, spelled out: `DiffusionPipeline.save_pretrained` forwards
        `safe_serialization`, `variant` and `max_shard_size` only to components whose signature names them."""
        if use_flashpack:  # a `ModelMixin.save_pretrained` argument since diffusers 0.42
            kwargs["use_flashpack"] = use_flashpack
        super().save_pretrained(
            save_directory, is_main_process=is_main_process, save_function=save_function,
            safe_serialization=safe_serialization, variant=variant, max_shard_size=max_shard_size,
            push_to_hub=push_to_hub, **kwargs,
        )
        if is_main_process:  # with the sibling modules it imports (diffusers' dynamic loading resolves them)
            for source in [__file__, *get_relative_import_files(__file__)]:
                shutil.copyfile(source, os.path.join(save_directory, os.path.basename(source)))

    def enable_cache(self, config) -> None:
        """`CacheMixin.enable_cache`, as on `WanTransformer3DModel`, text stream on or off; the configs whose defaults
        name Wan's modules are pointed at ours (`step_cache.py`)."""
        super().enable_cache(cache_config_for(self, config))

    @property
    def num_text_embeddings(self) -> int:
        return self.config.vocab_size + (1 if self.config.text_mask_token else 0)

    @property
    def mask_token_id(self) -> int | None:
        return self.config.vocab_size if self.config.text_mask_token else None

    def text_expert_parameters(self):
        """The parameters the text stream adds to Wan (what `--trainable text_experts` trains)."""
        for name, param in self.named_parameters():
            if is_text_expert(name):
                yield name, param

    def _validate_inputs(self, hidden_states, timestep, text_ids, text_timestep, text_attention_mask):
        if hidden_states is None and text_ids is None:
            raise ValueError(
                "Both streams are absent: pass `hidden_states` (video latents), `text_ids` (text tokens), or both."
            )
        batch_size = None
        if hidden_states is not None:
            if hidden_states.ndim != 5:
                raise ValueError(
                    "`hidden_states` must be video latents of shape (batch, channels, frames, height, width), "
                    f"got shape {tuple(hidden_states.shape)}."
                )
            batch_size, channels, frames, height, width = hidden_states.shape
            if channels != self.config.in_channels:
                raise ValueError(
                    f"`hidden_states` has {channels} channels but the model expects in_channels="
                    f"{self.config.in_channels}: encode videos with the matching VAE (z_dim={self.config.in_channels})."
                )
            p_t, p_h, p_w = self.config.patch_size
            for name, size, patch in (("frames", frames, p_t), ("height", height, p_h), ("width", width, p_w)):
                if size % patch != 0:
                    raise ValueError(
                        f"Latent {name} ({size}) is not divisible by the patch size {patch}: use a latent {name} "
                        f"that is a multiple of {patch} (e.g. {size - size % patch or patch})."
                    )
            if timestep is None:
                raise ValueError("`timestep` (one per sample, 0..1000 scale) is required with a video stream.")
            num_tokens = (frames // p_t) * (height // p_h) * (width // p_w)
            if timestep.shape not in ((batch_size,), (batch_size, num_tokens)):
                raise ValueError(
                    f"`timestep` must have shape ({batch_size},) (one per sample) or ({batch_size}, {num_tokens}) (one "
                    f"per video token, Wan2.2 TI2V's `expand_timesteps`), got {tuple(timestep.shape)}: expand a "
                    "scalar with `timestep.expand(batch_size)`."
                )
        if text_ids is not None:
            if text_ids.ndim != 2:
                raise ValueError(f"`text_ids` must have shape (batch, length), got {tuple(text_ids.shape)}.")
            if batch_size is not None and text_ids.shape[0] != batch_size:
                raise ValueError(f"`text_ids` has batch size {text_ids.shape[0]} but `hidden_states` has {batch_size}.")
            batch_size = text_ids.shape[0]
            if text_ids.shape[1] > self.config.text_rope_max_seq_len:
                raise ValueError(
                    f"Text length {text_ids.shape[1]} exceeds text_rope_max_seq_len="
                    f"{self.config.text_rope_max_seq_len}: truncate the text or raise the config value."
                )
            # (Meta tensors, e.g. for FLOP counting at full size, hold no values to check; under torch.compile the
            # value check would be a data-dependent branch that breaks the graph, so compiled calls skip it.)
            checkable = text_ids.numel() and not text_ids.is_meta and not torch.compiler.is_compiling()
            if checkable and (text_ids.min() < 0 or text_ids.max() >= self.num_text_embeddings):
                raise ValueError(
                    f"`text_ids` must lie in [0, {self.num_text_embeddings}) but range over "
                    f"[{int(text_ids.min())}, {int(text_ids.max())}]: tokenize with the tokenizer this model was "
                    f"built for (vocab_size={self.config.vocab_size}"
                    + (", plus the mask id" if self.config.text_mask_token else "")
                    + ")."
                )
            if text_timestep is None:
                raise ValueError(
                    "`text_timestep` (one per sample, 0..1000 scale; 0 = clean text) is required with `text_ids`."
                )
            if text_timestep.ndim != 1 or text_timestep.shape[0] != batch_size:
                raise ValueError(f"`text_timestep` must have shape ({batch_size},), got {tuple(text_timestep.shape)}.")
            if text_attention_mask is not None and text_attention_mask.shape != text_ids.shape:
                raise ValueError(
                    f"`text_attention_mask` must have the shape of `text_ids` {tuple(text_ids.shape)}, "
                    f"got {tuple(text_attention_mask.shape)}."
                )
        return batch_size

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        hidden_states: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        text_ids: torch.LongTensor | None = None,
        text_timestep: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ):
        """
        Args:
            hidden_states (`torch.Tensor` of shape `(B, C, F, H, W)`, *optional*): video latents.
            timestep (`torch.Tensor` of shape `(B,)`): video timestep, 0..1000 (1000 = pure noise).
            encoder_hidden_states (`torch.Tensor` of shape `(B, N, text_dim)`, *optional*): the umT5 prompt
                embedding for cross-attention. `None` means the null condition (all zeros), as the reference
                uses for video-to-text; one zero row attends exactly like the reference's 512.
            text_ids (`torch.LongTensor` of shape `(B, L)`, *optional*): text tokens of the text stream.
            text_timestep (`torch.Tensor` of shape `(B,)`): text timestep, 0..1000 (0 = clean text).
            text_attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1/True for real tokens; padded
                positions are excluded as attention keys, so they change no other output.
            attention_kwargs (`dict`, *optional*): `{"scale": lora_scale}` for PEFT adapters;
                `"understanding_attention"`: `"full"` (default, the reference) or `"video_prefix"` (video tokens do
                not attend to text tokens, so clean video features do not depend on the caption being written), or a
                bool tensor `(B,)` choosing `"video_prefix"` per sample; `"video_kv_cache"`: a
                [`UniViGUVideoKVCache`] (see there) for fast captioning.

        Returns:
            [`UniViGUTransformerOutput`] with `.sample` (video velocity) and `.text_logits`, each `None` when
            its stream is absent, or a tuple `(sample, text_logits)` if `return_dict=False`.
        """
        attention_kwargs = dict(attention_kwargs or {})
        video_kv_cache = attention_kwargs.pop("video_kv_cache", None)
        understanding_attention = attention_kwargs.pop("understanding_attention", "full")
        lora_scale = attention_kwargs.pop("scale", 1.0)
        if attention_kwargs:
            raise ValueError(
                f"Unknown attention_kwargs {sorted(attention_kwargs)}: expected 'scale', 'understanding_attention' or "
                "'video_kv_cache'."
            )
        if USE_PEFT_BACKEND:
            scale_lora_layers(self, lora_scale)
        try:
            return self._forward(
                hidden_states, timestep, encoder_hidden_states, text_ids, text_timestep, text_attention_mask,
                return_dict, understanding_attention, video_kv_cache,
            )
        finally:
            if USE_PEFT_BACKEND:
                unscale_lora_layers(self, lora_scale)

    def _forward(
        self, hidden_states, timestep, encoder_hidden_states, text_ids, text_timestep, text_attention_mask,
        return_dict, understanding_attention="full", video_kv_cache=None,
    ):
        batch_size = self._validate_inputs(hidden_states, timestep, text_ids, text_timestep, text_attention_mask)
        if video_kv_cache is not None:
            if self.is_cache_enabled:
                raise ValueError(
                    "A video key/value cache changes the sequence between steps, which the step cache enabled with "
                    "`enable_cache` cannot follow: use one of the two (`disable_cache()`, or no `video_cache_interval`)."
                )
            if text_ids is None:
                raise ValueError("A video key/value cache serves the text stream: pass `text_ids`.")
            if video_kv_cache.refresh != (hidden_states is not None):
                raise ValueError(
                    "With a video key/value cache, a refresh step (cache.refresh = True) takes the video "
                    "(`hidden_states`) and a cached step takes none (`hidden_states=None`)."
                )
        p_t, p_h, p_w = self.config.patch_size
        param_dtype = self.patch_embedding.weight.dtype

        if encoder_hidden_states is None:
            # the inputs' device, not `self.device` (a parameter's, which offloading hooks may leave on the CPU/meta)
            device = (hidden_states if hidden_states is not None else text_ids).device
            encoder_hidden_states = torch.zeros(batch_size, 1, self.config.text_dim, device=device, dtype=param_dtype)
        encoder_hidden_states = self.cond_text_embedder(encoder_hidden_states)

        rotary_emb: dict[str, Any] = {"num_video_tokens": 0}
        video_states = video_temb = video_proj = None
        if hidden_states is not None:
            _, _, num_frames, height, width = hidden_states.shape
            post_patch = (num_frames // p_t, height // p_h, width // p_w)
            rotary_emb["video"] = self.rope(hidden_states)
            video_states = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()
            rotary_emb["num_video_tokens"] = video_states.shape[1]
            # (B,) or, per token (Wan2.2 TI2V `expand_timesteps`), (B, N): flattened as WanTransformer3DModel does
            video_temb, video_proj = self.time_embedding_v(
                timestep.flatten(), dtype=encoder_hidden_states.dtype,
                timestep_seq_len=timestep.shape[1] if timestep.ndim == 2 else None,
            )
            video_proj = video_proj.unflatten(-1, (6, -1))  # (B, 6, D), or (B, N, 6, D) per token

        text_states = text_temb = text_proj = None
        attention_mask = None
        if text_ids is not None:
            text_states = self.vocab_embed(text_ids)
            rotary_emb["text"] = self.rotary_emb_text(text_ids.shape[1], text_ids.device)
            text_temb, text_proj = self.time_embedding_t(text_timestep, dtype=encoder_hidden_states.dtype)
            text_proj = text_proj.unflatten(1, (6, -1))
            num_video_keys = video_states.shape[1] if video_states is not None else 0
            if video_kv_cache is not None and not video_kv_cache.refresh:
                num_video_keys = video_kv_cache.num_video_tokens
            attention_mask = joint_attention_mask(
                text_attention_mask, batch_size, num_video_keys, text_ids.shape[1], video_states is not None,
                understanding_attention, text_ids.device,
            )

        streams = [states for states in (video_states, text_states) if states is not None]
        lengths = [states.shape[1] for states in streams]
        shards = JointSequenceShards.of(self)  # context parallelism: this rank's piece of each stream
        if shards is not None:
            streams, video_temb, video_proj, rotary_emb, attention_mask = shards.shard_inputs(
                streams, video_temb, video_proj, rotary_emb, attention_mask, video_kv_cache
            )
        joint_states = streams[0] if len(streams) == 1 else torch.cat(streams, dim=1)  # [video ; text]
        for index, block in enumerate(self.blocks):
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                joint_states = self._gradient_checkpointing_func(
                    block, joint_states, encoder_hidden_states, video_proj, text_proj, rotary_emb, attention_mask,
                )
            else:
                joint_states = block(
                    joint_states, encoder_hidden_states, video_proj, text_proj, rotary_emb, attention_mask,
                    (video_kv_cache, index) if video_kv_cache is not None else None,
                )

        sample = text_logits = None
        parts = joint_states.split([s.shape[1] for s in streams], dim=1) if len(streams) > 1 else [joint_states]
        if video_states is not None:
            out = self.video_head(parts[0], video_temb, self.scale_shift_table_v)
            out = out if shards is None else shards.gather(out, lengths[0])
            out = out.reshape(batch_size, *post_patch, p_t, p_h, p_w, -1)
            out = out.permute(0, 7, 1, 4, 2, 5, 3, 6)
            sample = out.flatten(6, 7).flatten(4, 5).flatten(2, 3)
        if text_states is not None:
            text_logits = self.text_head(parts[-1], text_temb, self.scale_shift_table_t)
            text_logits = text_logits if shards is None else shards.gather(text_logits, lengths[-1])

        if not return_dict:
            return (sample, text_logits)
        return UniViGUTransformerOutput(sample=sample, text_logits=text_logits)

    @staticmethod
    def video_kv_cache() -> UniViGUVideoKVCache:
        """A fresh, empty video key/value cache for fast captioning (see [`UniViGUVideoKVCache`])."""
        return UniViGUVideoKVCache()

    def with_shared_text_ffn(self) -> "UniViGUTransformer3DModel":
        """A copy without text experts in the blocks (`text_ffn="shared"`): text tokens go through the video `ffn`.
        The ablation of the paper's modality-driven MoE; every other weight is kept."""
        if self.config.text_ffn == "shared":
            return self
        config = self.init_kwargs(self.config, text_ffn="shared")
        model = self.__class__(**config)
        state = {k: v for k, v in self.state_dict().items() if ".ffn_t." not in k}
        model.load_state_dict(state)
        return model.to(device=self.device) if self.dtype == torch.float32 else model.to(self.device, self.dtype)

    # ------------------------------------------------------------------ construction from Wan

    @classmethod
    def init_kwargs(cls, config: dict[str, Any], **extra) -> dict[str, Any]:
        """The entries of a model config (ours, or a `WanTransformer3DModel`'s) that are `__init__` arguments, updated
        with `extra` (e.g. `vocab_size`)."""
        allowed = set(cls._get_init_keys(cls)) - {"self"}
        kwargs = {k: v for k, v in config.items() if k in allowed}
        if "patch_size" in kwargs:
            kwargs["patch_size"] = tuple(kwargs["patch_size"])
        return {**kwargs, **extra}

    @classmethod
    def from_state_dict(cls, config: dict[str, Any], state: dict[str, torch.Tensor]) -> "UniViGUTransformer3DModel":
        """A model of `config` whose weights are the tensors of `state` themselves (assigned to a model built on the
        meta device, never copied). Every weight must be in `state`; the video RoPE tables are computed."""
        with torch.device("meta"):
            model = cls(**config)
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        if missing or unexpected:
            raise RuntimeError(f"{cls.__name__}: missing keys {missing}, unexpected keys {unexpected}")
        model.rope = WanRotaryPosEmbed(config["attention_head_dim"], config["patch_size"], config["rope_max_seq_len"])
        return model

    @classmethod
    def from_wan_state_dict(
        cls, wan_config: dict[str, Any], wan_state: dict[str, torch.Tensor], vocab_size: int,
        text_mask_token: bool = False, seed: int | None = None, dtype: torch.dtype | None = None,
        cast: bool = False, share_memory: bool = False, vocab_init_std: float = 0.02, **config_overrides,
    ) -> "UniViGUTransformer3DModel":
        """:meth:`from_wan` from a Wan config and state dict (e.g. memory-mapped from its files). `dtype`: of the new
        text tables (default: the first floating Wan tensor's), and with `cast` of every floating Wan tensor.
        `share_memory`: the Wan tensors themselves become weights (only the text experts that start as copies of
        video modules get their own storage); otherwise every weight is a fresh copy."""
        config = cls.init_kwargs(wan_config, vocab_size=vocab_size, text_mask_token=text_mask_token, **config_overrides)
        dim = config["num_attention_heads"] * config["attention_head_dim"]
        state = univigu_state_from_wan(wan_state, dim, vocab_size, text_mask_token, seed=seed, dtype=dtype, cast=cast,
                                       share_memory=share_memory, vocab_init_std=vocab_init_std)
        model = cls.from_state_dict(config, state)
        if not share_memory:  # clones, so training ffn_t or the text tables never moves the video ones (nor Wan's)
            for param in model.parameters():
                param.data = param.data.clone()
        return model

    @classmethod
    def from_wan(
        cls,
        wan_transformer,
        vocab_size: int,
        text_mask_token: bool = False,
        text_rope_theta: float = 10000.0,
        text_rope_max_seq_len: int = 1024,
        vocab_init_std: float = 0.02,
        seed: int | None = None,
    ) -> "UniViGUTransformer3DModel":
        """Build a UniViGU transformer from a pretrained `WanTransformer3DModel` (Wan2.1 text-to-video).

        Every Wan weight is copied; the text experts start as copies of their video counterparts (`ffn_t` <- `ffn`,
        `time_embedding_t` <- the video time embedding, `scale_shift_table_t` <- `scale_shift_table`), `vocab_embed`
        is freshly initialised (normal, std `vocab_init_std`) and the text head is zero. With no text stream the
        result computes exactly what `wan_transformer` computes.
        """
        config = dict(wan_transformer.config)
        if config.get("image_dim") is not None or config.get("added_kv_proj_dim") is not None:
            raise ValueError(
                "from_wan expects a Wan2.1 text-to-video transformer; this one has image conditioning "
                "(image_dim/added_kv_proj_dim set), which UniViGU does not use."
            )
        if config.get("pos_embed_seq_len") is not None:
            raise ValueError("from_wan does not support Wan transformers with `pos_embed_seq_len`.")
        model = cls.from_wan_state_dict(
            config, wan_transformer.state_dict(), vocab_size, text_mask_token, seed=seed, dtype=wan_transformer.dtype,
            vocab_init_std=vocab_init_std, text_rope_theta=text_rope_theta, text_rope_max_seq_len=text_rope_max_seq_len,
        )
        return model.to(device=wan_transformer.device)


UniViGUTransformer3DModel.register_for_auto_class("AutoModel")
register_block(UniViGUTransformerBlock)
