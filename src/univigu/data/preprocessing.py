# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""How a video file becomes model input: decoded (:mod:`univigu.data.video`), `num_frames = 4k + 1` frames sampled,
resized so the frame covers `height x width` with a center crop, scaled to [-1, 1].

A video that cannot be used (missing, unreadable, too short) raises :class:`~univigu.data.video.BadSample` from
:class:`VideoPreprocessing`; the message is the reason it is skipped.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from .video import BadSample, read_video, sample_frame_indices


def resize_center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`(F, 3, H, W)` float frames -> `(F, 3, height, width)`: scale so the frame covers the target, crop the center."""
    h, w = frames.shape[-2:]
    if (h, w) != (height, width):
        scale = max(height / h, width / w)
        new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
        if (new_h, new_w) != (h, w):
            frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        top, left = (new_h - height) // 2, (new_w - width) // 2
        frames = frames[..., top : top + height, left : left + width]
    return frames


@dataclasses.dataclass
class VideoPreprocessing:
    """How a video becomes model input: `num_frames` (4k+1) sampled frames, resized/cropped to height x width."""

    num_frames: int = 9
    height: int = 64
    width: int = 64
    frame_sampling: str = "uniform"
    frame_stride: int = 1

    def __post_init__(self):
        if self.num_frames < 1 or (self.num_frames - 1) % 4 != 0:
            raise ValueError(f"num_frames must be 4k + 1 (1, 5, 9, ..., 81), got {self.num_frames}.")
        if self.height % 16 or self.width % 16:
            raise ValueError(f"height and width must be multiples of 16, got {self.height} x {self.width}.")

    def __call__(self, source) -> torch.Tensor:
        """Decoded, sampled, resized video as `(3, num_frames, height, width)` floats in [-1, 1]."""
        if source is None or (isinstance(source, str) and not source):
            raise BadSample("missing video path")
        try:
            frames = read_video(source)
        except BadSample:
            raise
        except Exception as error:  # imageio/ffmpeg raise many kinds of errors on broken files
            raise BadSample(f"unreadable video ({type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''})")
        indices = sample_frame_indices(len(frames), self.num_frames, self.frame_sampling, self.frame_stride)
        video = torch.from_numpy(np.ascontiguousarray(frames[indices])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        video = resize_center_crop(video, self.height, self.width)
        return video.permute(1, 0, 2, 3).contiguous()


__all__ = ["VideoPreprocessing", "resize_center_crop"]
