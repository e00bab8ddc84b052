# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""ShapesWorld (`shapesworld-v1`): the tiny synthetic world in which the whole Uni-ViGU recipe runs on a CPU and is
scored exactly. See docs/toyworld.md for the fixed spec.

`DEFAULT_CHECKPOINT` is the bundled, trained ShapesWorld Uni-ViGU pipeline folder (ships inside the package, no
download): `UniViGUPipeline.from_pretrained(DEFAULT_CHECKPOINT)`.

The tiny model components (`univigu.toyworld.components`) import torch, diffusers and transformers; they are loaded
lazily (and left out of `__all__`) so that rendering and scoring stay importable without torch.
"""

from .analysis import DetectedObject, analyze_video, classify_motion, classify_shape, palette_labels
from .dataset import iter_samples, load_video_frames, make_dataset, read_metadata, write_video
from .scoring import (
    as_objects,
    generation_counts,
    match_objects,
    score_generation,
    score_joint,
    score_understanding,
    summarize,
    understanding_counts,
)
from .text import ParsedObject, follows_template, parse_text, scene_objects, scene_to_caption, scene_to_prompt, shapesworld_vocabulary
from .world import (
    COLOURS,
    DEFAULT_FPS,
    DEFAULT_NUM_FRAMES,
    FRAME_HEIGHT,
    FRAME_WIDTH,
    HELD_OUT_PAIRS,
    MOTIONS,
    REGIONS,
    SHAPES,
    SHAPESWORLD_VERSION,
    SIZES,
    SPEED,
    SPLITS,
    WORLDS,
    Scene,
    ShapeObject,
    WorldSpec,
    get_world,
    iter_scenes,
    region_of,
    render_scene,
    sample_scene,
    sample_scenes,
    scene_rng,
    shape_mask,
    world_of_folder,
)

from pathlib import Path as _Path


#: The bundled ShapesWorld Uni-ViGU checkpoint (a `UniViGUPipeline` folder of `shapesworld-v2`, built from
#: `DEFAULT_BASE_MODEL` by the recipe; see its README.md model card).
DEFAULT_CHECKPOINT = str(_Path(__file__).resolve().parent / "assets" / "shapesworld-v2")
#: The bundled ShapesWorld stand-in for Wan2.1-T2V (`shapesworld-v2`): a stock `diffusers.WanPipeline` folder (VAE,
#: umT5-style encoder, `WanTransformer3DModel`), the base model the recipe starts from.
DEFAULT_BASE_MODEL = str(_Path(__file__).resolve().parent / "assets" / "shapesworld-v2-base")
#: The bundled ShapesWorld VAE alone (stage 0 of the build).
DEFAULT_VAE = str(_Path(__file__).resolve().parent / "assets" / "shapesworld_vae")

_LAZY_COMPONENTS = (
    "build_tokenizer",
    "build_tiny_text_encoder",
    "build_tiny_vae",
    "build_tiny_wan_transformer",
    "build_tiny_components",
)


def __getattr__(name):
    if name in _LAZY_COMPONENTS:
        from . import components

        return getattr(components, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COLOURS",
    "DEFAULT_BASE_MODEL",
    "DEFAULT_CHECKPOINT",
    "DEFAULT_VAE",
    "DEFAULT_FPS",
    "DEFAULT_NUM_FRAMES",
    "FRAME_HEIGHT",
    "FRAME_WIDTH",
    "HELD_OUT_PAIRS",
    "MOTIONS",
    "REGIONS",
    "SHAPES",
    "SHAPESWORLD_VERSION",
    "SIZES",
    "SPEED",
    "SPLITS",
    "WORLDS",
    "DetectedObject",
    "ParsedObject",
    "Scene",
    "ShapeObject",
    "WorldSpec",
    "analyze_video",
    "as_objects",
    "classify_motion",
    "classify_shape",
    "generation_counts",
    "get_world",
    "iter_samples",
    "iter_scenes",
    "load_video_frames",
    "make_dataset",
    "match_objects",
    "palette_labels",
    "follows_template",
    "parse_text",
    "read_metadata",
    "region_of",
    "render_scene",
    "sample_scene",
    "sample_scenes",
    "scene_objects",
    "scene_rng",
    "scene_to_caption",
    "scene_to_prompt",
    "score_generation",
    "score_joint",
    "score_understanding",
    "shape_mask",
    "shapesworld_vocabulary",
    "summarize",
    "world_of_folder",
    "understanding_counts",
    "write_video",
]
