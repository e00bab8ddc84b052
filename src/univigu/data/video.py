# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Reading videos: decoding with imageio's ffmpeg reader into uint8 RGB frames, and choosing `num_frames = 4k + 1`
of them. numpy only (no torch), so that ShapesWorld's rendering and scoring can read videos without torch."""

from __future__ import annotations

import os
import tempfile
from typing import List

import numpy as np


#: How many times a video file is opened before an `OSError` from the decoder counts as a broken file.
READ_ATTEMPTS = 3


class BadSample(Exception):
    """Raised while reading one sample; the message is the reason it is skipped."""


class NoFramesError(ValueError):
    """A video decoded to no frames."""


def read_video(source) -> np.ndarray:
    """All frames of a video (a path, or encoded bytes) as uint8 `(F, H, W, 3)` RGB, through imageio's ffmpeg."""
    import imageio

    if isinstance(source, (bytes, bytearray)):
        with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
            tmp.write(source)
            tmp.flush()
            return read_video(tmp.name)
    path = os.fspath(source)
    for attempt in range(READ_ATTEMPTS):
        try:
            reader = imageio.get_reader(path, format="FFMPEG")
            try:
                frames = [np.asarray(frame) for frame in reader]
            finally:
                reader.close()
            break
        except OSError:
            # imageio talks to an ffmpeg subprocess; on a loaded machine reading its header can fail once ("Could not
            # load meta information") for a file that is fine. Retry, so that which samples a run keeps does not
            # depend on the machine's load; a file that is really broken fails every time and is raised.
            if attempt == READ_ATTEMPTS - 1 or not os.path.isfile(path):
                raise
    if not frames:
        raise NoFramesError("no frames")
    frames = np.stack(frames)
    if frames.ndim == 3:  # grey
        frames = np.repeat(frames[..., None], 3, axis=-1)
    return frames[..., :3].astype(np.uint8, copy=False)


def sample_frame_indices(num_available: int, num_frames: int, mode: str = "uniform", stride: int = 1) -> List[int]:
    """Indices of `num_frames` frames out of `num_available`: evenly spread over the whole clip ("uniform") or the
    first ones at `stride` ("first"). Raises `BadSample` when the clip is too short."""
    needed = 1 + (num_frames - 1) * (stride if mode == "first" else 1)
    if num_available < needed:
        raise BadSample(f"too short: {num_available} frames, need {needed}")
    if mode == "first":
        return list(range(0, needed, stride))
    if mode != "uniform":
        raise ValueError(f"Unknown frame sampling mode {mode!r} (use 'uniform' or 'first').")
    return np.linspace(0, num_available - 1, num_frames).round().astype(int).tolist()


__all__ = ["BadSample", "NoFramesError", "read_video", "sample_frame_indices"]
