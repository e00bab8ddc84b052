# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Score a pipeline on fresh, seeded ShapesWorld test sets: understanding (v2t), generation (t2v) and joint (t2vt).

Used by the build (`python training/shapesworld/build.py`), `benchmarks/toy_eval.py` and the tests. Test scenes
come from the "test" split, so half of them (even indices) hold a held-out colour-shape pair; one- and two-object sets
are scored apart, and every score has a `held_out/...` twin over the held-out objects alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .scoring import score_generation, score_joint, score_understanding
from .text import scene_to_prompt
from .world import Scene, render_scene, sample_scene, scene_rng


#: What a ShapesWorld checkpoint is held to (the ladder of the stand-in issue), per `evaluate_pipeline` key:
#: `(task/objects, score, goal)`; `extra`/`hallucination` scores are maxima, the rest minima.
CHECKPOINT_GOALS: tuple[tuple[str, str, float], ...] = (
    ("t2v/1obj", "colour_accuracy", 0.95),
    ("t2v/1obj", "shape_accuracy", 0.90),
    ("t2v/1obj", "motion_accuracy", 0.90),
    ("t2v/2obj", "object_exact_match", 0.60),
    ("v2t/1obj", "object_exact_match", 0.90),
    ("v2t/2obj", "object_exact_match", 0.70),
    ("v2t/1obj", "hallucinations_per_sample", 0.10),
    ("v2t/2obj", "hallucinations_per_sample", 0.10),
)


def goal_met(score: str, value: float, goal: float) -> bool:
    """Maxima for invented objects, minima for everything else."""
    return value <= goal if ("hallucination" in score or "extra" in score) else value >= goal


def held_out_test_scenes(num_samples: int, num_objects: int, seed: int = 2026, split: str = "test",
                         version: str | None = None) -> list[Scene]:
    """Seeded scenes with a fixed object count; in "test", even indices hold a held-out colour-shape pair.
    `version`: the ShapesWorld version (`shapesworld-v1` by default)."""
    return [
        sample_scene(scene_rng(seed * 10 + num_objects, split, i), split=split, num_objects=num_objects,
                     require_held_out=split == "test" and i % 2 == 0, version=version)
        for i in range(num_samples)
    ]


def _to_uint8(frames) -> np.ndarray:
    return (np.asarray(frames, dtype=np.float32) * 255).round().clip(0, 255).astype(np.uint8)


def _batches(items: Sequence[Any], size: int):
    for start in range(0, len(items), size):
        yield start, list(items[start:start + size])


@torch.no_grad()
def caption_videos(pipe, videos: Sequence[np.ndarray], seed: int = 0, batch_size: int = 16, **call_kwargs) -> list[str]:
    """v2t on uint8 `(F, H, W, 3)` videos, one generator per video (a batch gives what single calls give)."""
    texts: list[str] = []
    for start, batch in _batches(videos, batch_size):
        generators = [torch.Generator().manual_seed(seed + start + i) for i in range(len(batch))]
        texts.extend(pipe(video=np.stack(batch), task="v2t", generator=generators, **call_kwargs).text)
    return texts


@torch.no_grad()
def generate_videos(pipe, prompts: Sequence[str], seed: int = 0, batch_size: int = 16, caption: bool = False,
                    **call_kwargs):
    """t2v (or t2vt with `caption=True`) for `prompts`; returns uint8 videos (and captions)."""
    videos: list[np.ndarray] = []
    captions: list[str] = []
    for start, batch in _batches(prompts, batch_size):
        generators = [torch.Generator().manual_seed(seed + start + i) for i in range(len(batch))]
        kwargs = dict(call_kwargs)
        if caption:
            kwargs["generate_caption"] = True
        out = pipe(prompt=batch, generator=generators, output_type="np", **kwargs)
        videos.extend(_to_uint8(out.frames))
        if caption:
            captions.extend(out.text)
    return (videos, captions) if caption else videos


def evaluate_understanding(pipe, scenes: Sequence[Scene], detailed: bool = False, **kwargs) -> dict[str, Any]:
    videos = [render_scene(s) for s in scenes]
    texts = caption_videos(pipe, videos, **kwargs)
    scores = score_understanding(texts, list(scenes), detailed=detailed)
    return {"scores": scores, "samples": [{"truth": scene_to_prompt(s), "text": t} for s, t in zip(scenes, texts)]}


def evaluate_generation(pipe, scenes: Sequence[Scene], **kwargs) -> dict[str, Any]:
    prompts = [scene_to_prompt(s) for s in scenes]
    videos = generate_videos(pipe, prompts, **kwargs)
    return {"scores": score_generation(videos, list(scenes)), "videos": videos, "prompts": prompts}


def evaluate_joint(pipe, scenes: Sequence[Scene], **kwargs) -> dict[str, Any]:
    prompts = [scene_to_prompt(s) for s in scenes]
    videos, captions = generate_videos(pipe, prompts, caption=True, **kwargs)
    return {
        "scores": score_joint(videos, captions, list(scenes)),
        "videos": videos,
        "samples": [{"prompt": p, "caption": c} for p, c in zip(prompts, captions)],
    }


def evaluate_pipeline(pipe, num_samples: int = 48, tasks: Sequence[str] = ("v2t", "t2v", "t2vt"),
                      detailed: bool = False, seed: int = 2026, version: str | None = None,
                      **call_kwargs) -> dict[str, Any]:
    """All requested tasks on one- and two-object test sets (`num_samples` each) of ShapesWorld `version`. Returns
    `{"<task>/<n>obj": {"scores": ..., ...}}`. A `WanPipeline` takes `tasks=("t2v",)`."""
    results: dict[str, Any] = {}
    for num_objects in (1, 2):
        scenes = held_out_test_scenes(num_samples, num_objects, seed=seed, version=version)
        if "v2t" in tasks:
            results[f"v2t/{num_objects}obj"] = evaluate_understanding(pipe, scenes, detailed=detailed, **call_kwargs)
        if "t2v" in tasks:
            results[f"t2v/{num_objects}obj"] = evaluate_generation(pipe, scenes, **call_kwargs)
        if "t2vt" in tasks:
            results[f"t2vt/{num_objects}obj"] = evaluate_joint(pipe, scenes, **call_kwargs)
    return results


def scores_only(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {key: value["scores"] for key, value in results.items()}
