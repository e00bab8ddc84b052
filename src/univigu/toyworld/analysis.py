# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""ShapesWorld v1 generation analyzer: what objects does a (generated) video show?

It measures only what the spec says a video encodes: for each palette colour, the pixels nearest to it (within a
tolerance), the centroid track over frames (motion), and the bounding-box fill ratio in the middle frame (shape).
Generated videos are noisy, so each frame's mask is reduced to its largest 4-connected component before
measuring.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .world import BACKGROUND, COLOURS, get_world, region_of


#: Default maximum Euclidean RGB distance between a pixel and its nearest palette colour.
DEFAULT_COLOUR_TOLERANCE = 80.0
#: A colour counts as an object when its mask holds at least this many pixels on average over the frames.
DEFAULT_MIN_PIXELS = 12
#: Dominant-axis displacement (pixels, first to last frame) above which an object is moving.
DEFAULT_MOTION_THRESHOLD = 6.0
#: Fill-ratio thresholds between the prototypes square (1.0), circle (~0.8) and triangle (~0.53-0.56).
SQUARE_MIN_FILL = 0.9
CIRCLE_MIN_FILL = 0.67

_PALETTE_NAMES = tuple(COLOURS)
# Black is included so that dark pixels fall to the background instead of to the nearest colour.
_PALETTE = np.asarray([COLOURS[name] for name in _PALETTE_NAMES] + [BACKGROUND], dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class DetectedObject:
    """An object found in a video by `analyze_video`.

    `size`, `start_region` and `end_region` estimate the object's box from the mask's bounding box (every ShapesWorld
    shape spans its box's full width and is bottom-aligned), so they can be compared with a detailed caption.
    """

    colour: str
    shape: str
    motion: str
    size: str
    start_region: str
    end_region: str
    fill_ratio: float
    displacement: tuple[float, float]
    mean_pixels: float
    track: tuple[tuple[float, float] | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def to_uint8_frames(video: Any) -> np.ndarray:
    """Bring a video to uint8 `(F, H, W, 3)`.

    Accepts uint8 arrays, float arrays in [0, 1] (the `output_type="np"` of diffusers video pipelines), torch tensors
    of either kind, and lists of PIL images or arrays.
    """
    if isinstance(video, (list, tuple)):
        video = np.stack([np.asarray(frame) for frame in video])
    if hasattr(video, "detach"):  # torch.Tensor, without importing torch
        video = video.detach().cpu().float().numpy() if video.is_floating_point() else video.detach().cpu().numpy()
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"Expected a video of shape (F, H, W, 3), got {video.shape}.")
    if video.dtype == np.uint8:
        return video
    if np.issubdtype(video.dtype, np.floating):
        return (np.clip(video, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return np.clip(video, 0, 255).astype(np.uint8)


def palette_labels(frames: np.ndarray, tolerance: float = DEFAULT_COLOUR_TOLERANCE) -> np.ndarray:
    """Per pixel, the index of the nearest palette colour in `COLOURS` order, or -1 (background, or too far).

    Distances are computed once per distinct RGB value (a clean render has only a handful).
    """
    packed = (frames[..., 0].astype(np.int64) << 16) | (frames[..., 1].astype(np.int64) << 8) | frames[..., 2]
    values, inverse = np.unique(packed.ravel(), return_inverse=True)
    rgb = np.stack([(values >> 16) & 255, (values >> 8) & 255, values & 255], axis=-1).astype(np.float32)
    distances = np.sqrt(((rgb[:, None, :] - _PALETTE[None]) ** 2).sum(-1))  # (num_values, P + 1)
    nearest = distances.argmin(-1)
    within = distances[np.arange(len(values)), nearest] <= tolerance
    background = len(_PALETTE_NAMES)
    value_labels = np.where(within & (nearest != background), nearest, -1)
    return value_labels[inverse.ravel()].reshape(packed.shape)


def largest_components(masks: np.ndarray) -> np.ndarray:
    """Per frame, the largest 4-connected component of a boolean `(F, H, W)` mask stack.

    Vectorised min-label propagation inside the masks' bounding box: every mask pixel starts with its own label and
    repeatedly takes the smallest label among its 4-neighbours in the mask, until nothing changes (as many sweeps as
    the longest path inside a component). Ties between equally large components go to the one whose first pixel
    comes first in raster order.
    """
    out = np.zeros_like(masks, dtype=bool)
    if not masks.any():
        return out
    ys, xs = np.nonzero(masks.any(0))
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = masks[:, y0:y1, x0:x1]
    num_frames, height, width = crop.shape
    size = height * width
    sentinel = num_frames * size
    labels = np.where(crop, np.arange(sentinel).reshape(crop.shape), sentinel)
    while True:
        updated = labels.copy()
        np.minimum(updated[:, 1:], labels[:, :-1], out=updated[:, 1:])
        np.minimum(updated[:, :-1], labels[:, 1:], out=updated[:, :-1])
        np.minimum(updated[:, :, 1:], labels[:, :, :-1], out=updated[:, :, 1:])
        np.minimum(updated[:, :, :-1], labels[:, :, 1:], out=updated[:, :, :-1])
        updated[~crop] = sentinel
        if np.array_equal(updated, labels):
            break
        labels = updated
    counts = np.bincount(labels[crop], minlength=sentinel)
    for f in range(num_frames):
        frame_counts = counts[f * size : (f + 1) * size]
        if frame_counts.any():
            out[f, y0:y1, x0:x1] = labels[f] == f * size + int(frame_counts.argmax())
    return out


def classify_shape(fill_ratio: float) -> str:
    """Shape whose prototypical bounding-box fill ratio is nearest: square ~1.0, circle ~0.79, triangle ~0.5."""
    if fill_ratio >= SQUARE_MIN_FILL:
        return "square"
    if fill_ratio >= CIRCLE_MIN_FILL:
        return "circle"
    return "triangle"


def classify_motion(displacement: tuple[float, float], threshold: float = DEFAULT_MOTION_THRESHOLD) -> str:
    """Direction of the dominant axis of `(dx, dy)` (image coordinates, y down) if it exceeds `threshold`."""
    dx, dy = displacement
    if max(abs(dx), abs(dy)) <= threshold:
        return "still"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _box_centre(mask: np.ndarray) -> tuple[float, float]:
    """Centre of the object's box estimated from a mask: full width, bottom-aligned (exact for clean renders)."""
    ys, xs = np.nonzero(mask)
    side = xs.max() - xs.min() + 1
    return (xs.min() + xs.max() + 1) / 2.0, ys.max() + 1 - side / 2.0


def analyze_video(
    video: Any,
    tolerance: float = DEFAULT_COLOUR_TOLERANCE,
    min_pixels: float = DEFAULT_MIN_PIXELS,
    motion_threshold: float = DEFAULT_MOTION_THRESHOLD,
    version: str | None = None,
) -> list[DetectedObject]:
    """Find the palette objects of `video` and measure their shape, motion, size and regions.

    Args:
        video: `(F, H, W, 3)` uint8 or float in [0, 1] (see `to_uint8_frames`).
        tolerance: maximum RGB distance to the nearest palette colour for a pixel to count.
        min_pixels: minimum mean pixel count per frame for a colour to count as an object (ignores speckle).
        motion_threshold: displacement (pixels) of the centroid, first to last frame, needed to call it moving.
        version: the ShapesWorld version whose sizes name the measured side (`shapesworld-v1` by default).

    Returns:
        One `DetectedObject` per palette colour present, in `COLOURS` order.
    """
    sizes = get_world(version).sizes
    frames = to_uint8_frames(video)
    num_frames, height, width, _ = frames.shape
    labels = palette_labels(frames, tolerance)
    detected = []
    for index, colour in enumerate(_PALETTE_NAMES):
        masks = labels == index
        if masks.reshape(num_frames, -1).sum(-1).mean() < min_pixels:
            continue
        components = largest_components(masks)
        counts = components.reshape(num_frames, -1).sum(-1)
        if counts.mean() < min_pixels:
            continue
        valid = [f for f in range(num_frames) if counts[f] > 0]
        track = []
        for f in range(num_frames):
            if counts[f] == 0:
                track.append(None)
                continue
            ys, xs = np.nonzero(components[f])
            track.append((float(xs.mean()), float(ys.mean())))
        first, last = valid[0], valid[-1]
        displacement = (track[last][0] - track[first][0], track[last][1] - track[first][1])

        # Shape and size from the middle frame, or the valid frame nearest to it.
        middle = min(valid, key=lambda f: (abs(f - num_frames // 2), f))
        ys, xs = np.nonzero(components[middle])
        box_height, box_width = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        fill_ratio = float(counts[middle]) / float(box_height * box_width)
        side = max(box_height, box_width)
        size = min(sizes, key=lambda name: abs(sizes[name] - side))

        detected.append(
            DetectedObject(
                colour=colour,
                shape=classify_shape(fill_ratio),
                motion=classify_motion(displacement, motion_threshold),
                size=size,
                start_region=region_of(*_box_centre(components[first]), height=height, width=width),
                end_region=region_of(*_box_centre(components[last]), height=height, width=width),
                fill_ratio=fill_ratio,
                displacement=displacement,
                mean_pixels=float(counts.mean()),
                track=tuple(track),
            )
        )
    return detected
