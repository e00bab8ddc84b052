# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""ShapesWorld v1 datasets on disk: a 🤗 datasets "videofolder"-style folder of lossless mp4 files + metadata.jsonl.

Why lossless: ordinary H.264 (yuv420p, lossy) smears the saturated palette colours across the hard shape edges
(4:2:0 chroma is stored at half resolution) and shifts them by a few levels, so the videos would no longer be the
world's truth. We encode RGB losslessly with `libx264rgb -qp 0`, which decodes back to the rendered frames bit for
bit. The catch: that H.264 "High 4:4:4 Predictive" profile does not play in most browsers; for viewing, re-encode
with diffusers' `export_to_video`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..data.video import NoFramesError, read_video
from .text import scene_to_caption, scene_to_prompt
from .world import DEFAULT_FPS, DEFAULT_NUM_FRAMES, Scene, get_world, iter_scenes, render_scene


METADATA_FILENAME = "metadata.jsonl"
INFO_FILENAME = "shapesworld.json"


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = DEFAULT_FPS, lossless: bool = True) -> None:
    """Write uint8 `(F, H, W, 3)` frames to an mp4 file.

    With `lossless=True` (default) the RGB frames are encoded with `libx264rgb -qp 0` and read back exactly; with
    `False`, a standard browser-playable yuv420p H.264 file is written (colours and edges change slightly).
    A single encoder thread keeps the bytes independent of the machine's core count.
    """
    import imageio

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"Expected uint8 frames of shape (F, H, W, 3), got {frames.dtype} {frames.shape}.")
    if lossless:
        codec, pixelformat, quality_params = "libx264rgb", "rgb24", ["-qp", "0"]
    else:
        codec, pixelformat, quality_params = "libx264", "yuv420p", ["-crf", "18"]
    writer = imageio.get_writer(
        os.fspath(path),
        format="FFMPEG",
        mode="I",
        fps=fps,
        codec=codec,
        pixelformat=pixelformat,
        quality=None,
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=quality_params + ["-preset", "medium", "-threads", "1", "-map_metadata", "-1"],
    )
    try:
        for frame in frames:
            writer.append_data(frame)
    finally:
        writer.close()


def load_video_frames(path: str | os.PathLike) -> np.ndarray:
    """Read a video file as uint8 `(F, H, W, 3)` RGB frames (`univigu.data.read_video`: PyAV, or imageio's ffmpeg)."""
    try:
        return read_video(path)
    except NoFramesError:
        raise ValueError(f"No frames could be read from {path}.") from None


def sample_record(scene: Scene, file_name: str, split: str, index: int) -> dict[str, Any]:
    """The metadata row of one sample."""
    return {
        "file_name": file_name,
        "prompt": scene_to_prompt(scene),
        "caption": scene_to_caption(scene),
        # the shape words alone: the caption of Recall's warm-up (training/shapesworld/build.py --recall-warmup-steps)
        "shapes": " ".join(obj.shape for obj in scene.objects),
        "scene": scene.to_json(),
        "split": split,
        "index": index,
        "held_out": scene.has_held_out,
        "num_objects": len(scene.objects),
    }


def iter_samples(
    num_samples: int,
    split: str = "train",
    seed: int = 0,
    num_frames: int = DEFAULT_NUM_FRAMES,
    version: str | None = None,
) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """In-memory samples `(frames, record)`, identical to what `make_dataset` writes (file names included)."""
    scenes = iter_scenes(num_samples, split=split, seed=seed, num_frames=num_frames, version=version)
    for index, scene in enumerate(scenes):
        yield render_scene(scene), sample_record(scene, f"{index:06d}.mp4", split, index)


def make_dataset(
    out_dir: str | os.PathLike,
    num_samples: int,
    split: str = "train",
    seed: int = 0,
    num_frames: int = DEFAULT_NUM_FRAMES,
    fps: int = DEFAULT_FPS,
    version: str | None = None,
) -> Path:
    """Render a seeded ShapesWorld split to `out_dir` and return the folder's path.

    Layout (loadable as a 🤗 datasets videofolder, or with `load_dataset("json", data_files=...)` and the paths
    decoded by `load_video_frames` / `diffusers.utils.load_video`):

        out_dir/000000.mp4, 000001.mp4, ...   lossless mp4 (see `write_video`)
        out_dir/metadata.jsonl                file_name, prompt, caption, shapes, scene (JSON), split, ...
        out_dir/shapesworld.json              how the folder was made (version, split, seed, sizes)

    The same `(split, seed, num_frames)` gives the same folder bit for bit, and sample `i` does not depend on
    `num_samples`. Splits "train"/"val" never contain held-out colour-shape pairs; in "test" every even-indexed
    sample contains one.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / METADATA_FILENAME, "w", encoding="utf-8") as metadata:
        for frames, record in iter_samples(num_samples, split=split, seed=seed, num_frames=num_frames,
                                           version=version):
            write_video(out_dir / record["file_name"], frames, fps=fps)
            metadata.write(json.dumps(record, sort_keys=True) + "\n")
    info = {
        "version": get_world(version).version,
        "split": split,
        "seed": seed,
        "num_samples": num_samples,
        "num_frames": num_frames,
        "fps": fps,
        "codec": "libx264rgb -qp 0 (lossless RGB)",
    }
    (out_dir / INFO_FILENAME).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir


def read_metadata(data_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a dataset folder's metadata.jsonl, in order."""
    with open(Path(data_dir) / METADATA_FILENAME, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
