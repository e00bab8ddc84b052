# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The video key/value cache of fast captioning (`attention_kwargs={"video_kv_cache": ...}`). Imports torch only:
exported Hub folders carry it next to `transformer_univigu.py`, which imports it."""


import torch


class UniViGUVideoKVCache:
    """Keys and values of the clean video tokens in every block's self-attention (after q/k norm and RoPE), kept
    across captioning steps: the video never changes in video -> text, so between *refresh* steps (the full joint
    forward, which stores them) the text tokens run alone against the stored video keys/values.

    Exact with `understanding_attention="video_prefix"`; with full attention the stored keys/values saw the text of the
    last refresh (an approximation, as in diffusion language models' KV caches). Pass it as
    `attention_kwargs={"video_kv_cache": cache}`, with `cache.refresh = True` for a full forward and `False` for a
    text-only one (`hidden_states=None`).
    """

    def __init__(self):
        self.refresh = True
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        # Under context parallelism each rank caches its padded piece of the video; this is the whole video's count.
        self.context_parallel_video_tokens: int | None = None

    @property
    def num_video_tokens(self) -> int:
        """The number of cached video tokens (under context parallelism: of the whole video, all ranks together)."""
        if self.context_parallel_video_tokens is not None:
            return self.context_parallel_video_tokens
        return next(iter(self.keys.values())).shape[1] if self.keys else 0

    def store(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> None:
        self.keys[layer], self.values[layer] = key, value

    def extend(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if layer not in self.keys:
            raise RuntimeError(
                "The video key/value cache is empty: run a refresh step (cache.refresh = True, with the video) first."
            )
        if self.keys[layer].shape[0] != key.shape[0]:
            raise ValueError(
                f"The video key/value cache holds a batch of {self.keys[layer].shape[0]}, this step has {key.shape[0]}: "
                "refresh it when the batch changes."
            )
        return torch.cat([self.keys[layer], key], dim=1), torch.cat([self.values[layer], value], dim=1)
