# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Pictures people would rather look at than tensors: a grid of videos (one row per video, one column per frame)."""

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw


def _as_uint8(video) -> np.ndarray:
    array = np.asarray(video.detach().cpu() if hasattr(video, "detach") else video)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise ValueError(f"Expected a video of shape (frames, height, width, 3), got {array.shape}.")
    return array


def video_grid(videos: Sequence, labels: Sequence[str] | None = None, scale: int = 2,
               label_width: int = 360, pad: int = 2) -> Image.Image:
    """One row per video (frames left to right, upscaled `scale`x with nearest neighbour), label text on the left."""
    videos = [_as_uint8(v) for v in videos]
    if not videos:
        raise ValueError("video_grid needs at least one video.")
    frames = max(v.shape[0] for v in videos)
    height = max(v.shape[1] for v in videos) * scale
    width = max(v.shape[2] for v in videos) * scale
    left = label_width if labels else 0
    canvas = Image.new("RGB", (left + frames * (width + pad), len(videos) * (height + pad)), (40, 40, 40))
    draw = ImageDraw.Draw(canvas)
    for row, video in enumerate(videos):
        y = row * (height + pad)
        if labels:
            _draw_wrapped(draw, str(labels[row]), (4, y + 2), label_width - 8)
        for col, frame in enumerate(video):
            image = Image.fromarray(frame.squeeze(-1) if frame.shape[-1] == 1 else frame)
            image = image.resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
            canvas.paste(image, (left + col * (width + pad), y))
    return canvas


def _draw_wrapped(draw: ImageDraw.ImageDraw, text: str, origin, max_width: int, line_height: int = 12):
    words, line, y = text.split(), "", origin[1]
    for word in words:
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate) > max_width and line:
            draw.text((origin[0], y), line, fill=(230, 230, 230))
            y += line_height
            line = word
        else:
            line = candidate
    if line:
        draw.text((origin[0], y), line, fill=(230, 230, 230))


def save_video_grid(path, videos: Sequence, labels: Sequence[str] | None = None, **kwargs) -> str:
    video_grid(videos, labels, **kwargs).save(path)
    return str(path)
