# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Reading videos: decoding into uint8 RGB frames (PyAV in the process when it is installed, else imageio's ffmpeg
subprocess), and choosing `num_frames` of them (of the form Tk+1, T the VAE's time compression: 4k+1 for Wan, 1, 5,
9, 13, ...). numpy only (no torch), so that ShapesWorld's rendering and scoring can read videos without torch.

The pipeline reads the videos it captions itself (`univigu.pipelines.video_input`: decoding only the window it
samples); this module reads training and evaluation data."""

from __future__ import annotations

import importlib.util
import os
import tempfile

import numpy as np

from ..utils.local_files import NotALocalVideoError, check_local_video, check_video_bytes, looks_like_url


#: How many times a video file is opened before an `OSError` from the decoder counts as a broken file.
READ_ATTEMPTS = 3


class BadSample(Exception):
    """Raised while reading one sample; the message is the reason it is skipped."""


class NoFramesError(ValueError):
    """A video decoded to no frames."""


class NotALocalVideo(BadSample, NotALocalVideoError):
    """A URL or a playlist where a local video file was expected (`univigu.utils.local_files`); a training or
    evaluation sample holding one is skipped with this reason."""


def read_video(source, allow_remote: bool | None = None) -> np.ndarray:
    """All frames of a video (a path, or encoded bytes) as uint8 `(F, H, W, 3)` RGB.

    Only local files are read: a URL, or a file (or bytes) that is a playlist (HLS .m3u8, ffconcat, ... whatever
    its name) raises `NotALocalVideo` unless `allow_remote` (or `UNIVIGU_ALLOW_REMOTE_VIDEO=1` when it is None).

    Decodes with PyAV (FFmpeg's libraries, in this process) when `av` is installed, else through imageio's ffmpeg
    subprocess; `UNIVIGU_VIDEO_READER=imageio` forces the latter. Both give the same frames (tested on lossless RGB
    and yuv420p H.264); PyAV is ~10x faster on short clips, where starting an ffmpeg process is most of the cost. A
    video whose stream asks to be displayed rotated is left to ffmpeg, which applies the rotation.
    """
    try:
        if isinstance(source, (bytes, bytearray)):
            check_video_bytes(source, allow_remote=allow_remote)
        else:
            path = check_local_video(source, allow_remote=allow_remote)
    except NotALocalVideoError as error:
        raise NotALocalVideo(f"not a local video file: {error}") from None
    if isinstance(source, (bytes, bytearray)):
        with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
            tmp.write(source)
            tmp.flush()
            return read_video(tmp.name, allow_remote=True)  # checked above; the temporary file is ours
    frames = None
    if _use_pyav():
        frames = _read_with_pyav(path)
    if frames is None:
        frames = _read_with_imageio(path)
    if not frames:
        raise NoFramesError("no frames")
    frames = np.stack(frames)
    if frames.ndim == 3:  # grey
        frames = np.repeat(frames[..., None], 3, axis=-1)
    return frames[..., :3].astype(np.uint8, copy=False)


def _use_pyav() -> bool:
    if os.environ.get("UNIVIGU_VIDEO_READER", "").lower() == "imageio":
        return False
    return importlib.util.find_spec("av") is not None


def _read_with_pyav(path: str):
    """The frames, or None when the video must go through ffmpeg (a rotated display). Errors are `OSError`s, as
    the imageio path raises them."""
    import av

    if not os.path.isfile(path) and not looks_like_url(path):  # a URL gets here only when remote reading is allowed
        raise FileNotFoundError(f"No such video file: {path!r}")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise OSError(f"{path!r} has no video stream")
            frames = []
            for frame in container.decode(video=0):
                if not frames and getattr(frame, "rotation", 0):  # a stream's display rotation is on every frame
                    return None
                frames.append(frame.to_ndarray(format="rgb24"))
            return frames
    except av.FFmpegError as error:
        raise OSError(f"could not decode {path!r}: {error}") from error


def _read_with_imageio(path: str):
    import imageio

    for attempt in range(READ_ATTEMPTS):
        try:
            reader = imageio.get_reader(path, format="FFMPEG")
            try:
                return [np.asarray(frame) for frame in reader]
            finally:
                reader.close()
        except OSError:
            # imageio talks to an ffmpeg subprocess; on a loaded machine reading its header can fail once ("Could not
            # load meta information") for a file that is fine. Retry, so that which samples a run keeps does not
            # depend on the machine's load; a file that is really broken fails every time and is raised.
            if attempt == READ_ATTEMPTS - 1 or not os.path.isfile(path):
                raise


def sample_frame_indices(num_available: int, num_frames: int, mode: str = "uniform", stride: int = 1) -> list[int]:
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


__all__ = ["BadSample", "NoFramesError", "NotALocalVideo", "read_video", "sample_frame_indices"]
