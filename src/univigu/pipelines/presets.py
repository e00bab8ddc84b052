# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Documented argument presets for `UniViGUPipeline.__call__` (measured in benchmarks/bench_caption.py)."""

from __future__ import annotations

from typing import Any


def fast_caption_kwargs(pipe, num_inference_steps: int | None = None) -> dict[str, Any]:
    """Video -> text at a fraction of the cost: the video's keys/values are computed once, on the first step, and
    every later step runs only the text tokens (`video_cache_interval` >= the step count).

        caption = pipe(video=clip, task="v2t", **fast_caption_kwargs(pipe)).text[0]

    At the Wan2.1-1.3B config (81x480x832, 128 text tokens, 50 steps) this costs ~1/40 of the exact sampler's
    transformer FLOPs; docs/benchmarks.md has the measured FLOPs, wall-clock and ShapesWorld accuracy of every
    setting.
    """
    steps = num_inference_steps or pipe.call_default("num_inference_steps", "v2t")
    return {"num_inference_steps": steps, "video_cache_interval": steps}
