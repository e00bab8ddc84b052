# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The attention mask of the joint ``[video ; text]`` sequence, and its context-parallel shards.

Context parallelism (`model.enable_parallelism(config=ContextParallelConfig(ulysses_degree=P))`, diffusers' API, as on
`WanTransformer3DModel`) splits the tokens over P processes; the joint self-attention is the only place where tokens
meet, and diffusers' Ulysses attention exchanges them there (an all-to-all from "S/P tokens, all heads" to "all tokens,
H/P heads" and back). Wan's declarative `_cp_plan` cannot express the joint sequence (diffusers says as much of
Cosmos3's, which shards in `forward` too): each stream is split on its own, so `forward` shards it with
:class:`JointSequenceShards` and the model's `_cp_plan` is empty.

- Each stream is zero-padded to a multiple of P and cut into P equal pieces; rank r holds ``[video piece r ; text piece
  r]``. Every rank then has the same number of video tokens (the per-stream modulation, the FFN routing and the RoPE
  split stay what they are), and after Ulysses' all-to-all the keys lie in the order ``[v_0 ; t_0 ; v_1 ; t_1 ...]``.
- Each token carries its own RoPE (applied before the exchange), so the order does not matter to attention; the mask
  must follow it. Padding keys are masked out: a key mask is sharded like the keys (diffusers all-gathers it in rank
  order), a query-dependent one (`understanding_attention="video_prefix"`) is permuted whole (Ulysses uses it as
  given). Ring attention (`ring_degree`) hands one mask to every key chunk, so it is refused whenever a mask is needed.
- The output heads run on each rank's piece too; their outputs (video velocity patches, text logits) are all-gathered
  (diffusers' `EquipartitionSharder.unshard`, as Wan's plan gathers `proj_out`) and the padding dropped. So every
  weight's gradient on a rank is the part of its own tokens: summed over the ranks it is one process's gradient.
- The video key/value cache holds each rank's padded video piece; it remembers the unpadded count for the mask.

Imports torch and diffusers only: exported Hub folders carry it next to `transformer_univigu.py`, which imports it.
"""

from typing import Any

import torch
from diffusers.hooks.context_parallel import EquipartitionSharder


def joint_attention_mask(text_attention_mask, batch_size, num_video_keys, num_text, has_video_queries,
                         understanding_attention, device):
    """Boolean mask over the joint `[video ; text]` keys (True = attend), or `None` when every key is visible.

    Text padding removes padded text keys for every query. `"video_prefix"` removes the text keys from the
    video queries' rows (per sample when given as a bool tensor)."""
    if isinstance(understanding_attention, str):
        if understanding_attention not in ("full", "video_prefix"):
            raise ValueError(
                f"understanding_attention must be 'full' or 'video_prefix', got {understanding_attention!r}."
            )
        prefix = None if understanding_attention == "full" else torch.ones(batch_size, dtype=torch.bool, device=device)
    else:
        prefix = torch.as_tensor(understanding_attention, device=device).bool().reshape(-1)
        if prefix.shape[0] != batch_size:
            raise ValueError(f"understanding_attention has {prefix.shape[0]} entries for a batch of {batch_size}.")
        prefix = prefix if bool(prefix.any()) else None
    if not has_video_queries or num_video_keys == 0:
        prefix = None  # only text queries: video_prefix changes nothing for them
    padded = text_attention_mask is not None and not bool(text_attention_mask.bool().all())
    if prefix is None and not padded:
        return None
    keys = torch.ones(batch_size, num_video_keys + num_text, dtype=torch.bool, device=device)
    if padded:
        keys[:, num_video_keys:] = text_attention_mask.bool()
    if prefix is None:
        return keys[:, None, None, :]
    num_queries = (num_video_keys if has_video_queries else 0) + num_text
    mask = keys[:, None, None, :].expand(batch_size, 1, num_queries, keys.shape[1]).clone()
    video_rows = mask[:, :, :num_video_keys, num_video_keys:]
    mask[:, :, :num_video_keys, num_video_keys:] = video_rows & ~prefix[:, None, None, None]
    return mask


class JointSequenceShards:
    """This process's share of the joint sequence under context parallelism (see the module docstring)."""

    def __init__(self, parallel_config, num_heads: int):
        config = parallel_config.context_parallel_config
        if config.ulysses_degree > 1 and not config.ulysses_anything and num_heads % config.ulysses_degree:
            raise ValueError(
                f"Ulysses attention splits the {num_heads} attention heads over ulysses_degree={config.ulysses_degree} "
                "processes: use a degree that divides the head count, or ContextParallelConfig(ulysses_anything=True)."
            )
        self.mesh = config._flattened_mesh
        self.world = self.mesh.size()
        self.rank = torch.distributed.get_rank(self.mesh.get_group())
        self.ring = config.ring_degree > 1

    @classmethod
    def of(cls, model) -> "JointSequenceShards | None":
        """The shards of `model`'s forward, or `None` unless `enable_parallelism` gave it a context-parallel config."""
        config = model._parallel_config
        if config is None or config.context_parallel_config is None:
            return None
        return cls(config, model.config.num_attention_heads)

    def local_length(self, length: int) -> int:
        return -(-length // self.world)

    def shard(self, tensor: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """This rank's piece of one stream's `tensor`, zero-padded along `dim` to `world` equal pieces."""
        length = tensor.shape[dim]
        local = self.local_length(length)
        if local * self.world != length:
            shape = list(tensor.shape)
            shape[dim] = local * self.world - length
            tensor = torch.cat([tensor, tensor.new_zeros(shape)], dim)
        return tensor.narrow(dim, self.rank * local, local)

    def gather(self, piece: torch.Tensor, length: int) -> torch.Tensor:
        """One stream's whole output (its unpadded `length` tokens on dim 1) from every rank's `piece`."""
        return EquipartitionSharder.unshard(piece, 1, self.mesh)[:, :length]

    def shard_inputs(self, streams, video_temb, video_proj, rotary_emb: dict[str, Any], attention_mask, video_kv_cache):
        """This rank's streams, per-token video time embedding and modulation, RoPE tables and attention mask; the mask
        was built over the unpadded keys `[video ; text]`, the video keys being the cached ones in a cached step."""
        num_video_keys = rotary_emb["num_video_tokens"]
        if video_kv_cache is not None:
            if video_kv_cache.refresh:
                video_kv_cache.context_parallel_video_tokens = num_video_keys
            else:
                num_video_keys = video_kv_cache.num_video_tokens
        num_text = streams[-1].shape[1] if "text" in rotary_emb else 0
        local = dict(rotary_emb)
        for name in ("video", "text"):
            if name in rotary_emb:
                local[name] = tuple(self.shard(table) for table in rotary_emb[name])
        if "video" in rotary_emb:
            local["num_video_tokens"] = self.local_length(num_video_keys)
            if video_proj.ndim == 4:  # (B, N, 6, D) and (B, N, D): per-token timesteps (Wan2.2 TI2V)
                video_temb, video_proj = self.shard(video_temb), self.shard(video_proj)
        mask = self.shard_mask(attention_mask, streams[0].shape[0], num_video_keys, num_text, streams[0].device)
        return [self.shard(states) for states in streams], video_temb, video_proj, local, mask

    def shard_mask(self, mask, batch_size: int, num_video_keys: int, num_text: int, device) -> torch.Tensor | None:
        """The mask of this rank's keys (`(B, 1, 1, local keys)`, which diffusers' Ulysses all-gathers), or a
        query-dependent `mask` `(B, 1, S, S)` permuted whole into the exchanged order, with the padding keys masked."""
        local_video, local_text = self.local_length(num_video_keys), self.local_length(num_text)
        total = num_video_keys + num_text
        if mask is None and local_video * self.world == num_video_keys and local_text * self.world == num_text:
            return None
        if self.ring:
            raise ValueError(
                "Ring attention (ring_degree > 1) hands one attention mask to every key chunk, and this call needs one "
                "(text padding, a stream length not divisible by the degree, or video_prefix attention): use "
                "ulysses_degree instead."
            )
        # the unpadded key index of every exchanged position `[v_0 ; t_0 ; v_1 ; t_1 ...]`, `total` for padding
        video = torch.arange(local_video * self.world, device=device)
        video = torch.where(video < num_video_keys, video, total)
        text = torch.arange(local_text * self.world, device=device)
        text = torch.where(text < num_text, num_video_keys + text, total)
        order = torch.cat([video.view(self.world, -1), text.view(self.world, -1)], 1).flatten()
        if mask is None:
            mask = torch.ones(batch_size, 1, 1, total, dtype=torch.bool, device=device)
        mask = torch.cat([mask, mask.new_zeros(*mask.shape[:3], 1)], 3)  # the padding key's column
        if mask.shape[2] == 1:
            return mask[..., order].unflatten(3, (self.world, -1))[:, :, :, self.rank]
        # a padding query attends like the first query (any row with a visible key: an empty row would give NaN)
        return mask[:, :, torch.where(order < total, order, 0)][..., order]
