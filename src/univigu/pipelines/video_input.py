# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The video inputs of [`UniViGUPipeline`] (v2t): a file path, PIL frames, numpy arrays or tensors (one video or a
batch) -> the model's view of it (`sample_videos`, which `UniViGUPipeline.preprocess_video` calls): `num_frames`
frames sampled at `fps` over a window (`start`, `duration`, in seconds) and brought to `height` x `width` (resized
keeping the aspect, then centre-cropped or padded, `crop`), then encoded by the VAE (`encode_frames`). Every value
left at `None` defaults to what the checkpoint was trained on (its stored `call_defaults`), so a video of any size,
aspect, frame rate and length is captioned as the model saw its training clips.

A video file is decoded with PyAV when it is installed, and only as far as the window needs: the decoder seeks to
`start`, stops once the last frame to sample is reached, and each sampled frame is resized as soon as it is decoded
(a 10-second 4K clip costs about what a 1-second one does). GIFs, rotated videos and installs without PyAV go
through diffusers' `load_video`. Frames passed in memory carry no frame rate; they are sampled evenly.

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

import importlib.util
import os
from functools import partial
from typing import Any
from collections.abc import Iterator

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from diffusers.pipelines.wan.pipeline_wan_video2video import retrieve_latents
from diffusers.utils import load_video, logging
from diffusers.utils.torch_utils import get_module_execution_device

from .call_arguments import frame_rule
from .local_files import check_local_video, looks_like_url, remote_video_allowed


logger = logging.get_logger(__name__)  # pylint: disable=invalid-name


#: Float video values may overshoot [0, 1] (or [-1, 1]) by this much (resampling round-off) and are then clipped.
_VIDEO_RANGE_TOLERANCE = 1e-3
#: How a frame of another aspect is brought to height x width: "center" resizes it to cover the target and crops the
#: centre (as training does), "pad" resizes it to fit inside and pads with black.
CROP_MODES = ("center", "pad")
#: Frame times (seconds) closer than this count as the same instant.
_TIME_TOLERANCE = 1e-4


def _frames_to_float(frames: np.ndarray | torch.Tensor, channels_last: bool) -> torch.Tensor:
    """One video as a float32 tensor `(F, C, H, W)` in [0, 1]: uint8 -> /255; floats must lie in [0, 1] (or in
    [-1, 1], read as such when some value is below 0). Floats above 1 (0-255 frames stored as floats), below -1, NaN
    or inf are refused with the fix, not clipped."""
    if isinstance(frames, np.ndarray):
        if frames.dtype.kind not in "uif":
            raise TypeError(
                f"Video frames of numpy dtype {frames.dtype} are not supported: pass uint8 frames (0-255, "
                "`video.astype(np.uint8)`) or float frames in [0, 1]."
            )
        tensor = torch.from_numpy(np.ascontiguousarray(frames))
    else:
        tensor = frames.detach()
    if tensor.ndim != 4:
        raise ValueError(
            f"A single video must be 4D ({'(F, H, W, C)' if channels_last else '(F, C, H, W)'}), got shape "
            f"{tuple(tensor.shape)}."
        )
    if channels_last:
        tensor = tensor.permute(0, 3, 1, 2)
    channels = tensor.shape[1]
    if channels == 1:
        tensor = tensor.expand(-1, 3, -1, -1)
    elif channels == 4:
        tensor = tensor[:, :3]
    elif channels != 3:
        layout = "(F, H, W, 3) for numpy arrays" if channels_last else "(F, 3, H, W) for tensors"
        raise ValueError(f"Video frames must have 1, 3 or 4 channels; lay them out as {layout}.")
    if tensor.shape[0] and (tensor.shape[2] < 1 or tensor.shape[3] < 1):
        raise ValueError(f"The video's frames are {tensor.shape[2]}x{tensor.shape[3]} pixels: pass frames of at least 1x1.")
    if tensor.dtype == torch.uint8:
        return (tensor.float() / 255.0).cpu()
    if not tensor.is_floating_point():
        raise TypeError(
            f"Video frames must be uint8 (0-255) or floats in [0, 1], got dtype {tensor.dtype}: convert 0-255 "
            "integer frames with `.astype(np.uint8)` / `.to(torch.uint8)`, or divide them by 255."
        )
    tensor = tensor.float()
    if not tensor.numel():
        return tensor.cpu()
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("The video contains NaN or inf values: pass finite frames (uint8 0-255, or floats in [0, 1]).")
    low, high = float(tensor.min()), float(tensor.max())
    if high > 1.0 + _VIDEO_RANGE_TOLERANCE:
        raise ValueError(
            f"The video's float values go up to {high:.4g}, above 1: float frames must lie in [0, 1] (or [-1, 1]). "
            "For 0-255 frames, divide by 255 (`video / 255.0`) or pass them as uint8."
        )
    if low < -1.0 - _VIDEO_RANGE_TOLERANCE:
        raise ValueError(
            f"The video's float values go down to {low:.4g}, below -1: float frames must lie in [0, 1] or [-1, 1] "
            "(rescale them, e.g. `(video - video.min()) / (video.max() - video.min())`)."
        )
    if low < 0:
        tensor = (tensor + 1.0) / 2.0
    return tensor.clamp(0.0, 1.0).cpu()  # only the round-off tolerated above


def _decode_error(path: str, error: Exception) -> ValueError:
    reason = (str(error).strip().splitlines() or [""])[0]
    return ValueError(
        f"Could not decode the video file {path!r} ({type(error).__name__}: {reason}). Re-encode it as H.264 mp4 "
        f"(e.g. `ffmpeg -i {os.path.basename(path)} -c:v libx264 -pix_fmt yuv420p out.mp4`), or pass the frames "
        "yourself as a numpy array (F, H, W, 3) or a list of PIL images."
    )


def _check_video_path(path: str, allow_remote: bool | None = None) -> str:
    """The path to open: a local file (URLs and playlists refused unless `allow_remote`, see `local_files`)."""
    path = check_local_video(path, allow_remote=allow_remote)
    if not os.path.isfile(path) and not (remote_video_allowed(allow_remote) and looks_like_url(path)):
        raise ValueError(
            f"The video file {path!r} does not exist: pass the path of a video file (mp4, gif, ...), or the frames "
            "themselves (a list of PIL images, a numpy array (F, H, W, 3), or a tensor (F, 3, H, W))."
        )
    return path


def _load_whole_video(path: str, allow_remote: bool | None = None) -> tuple[torch.Tensor, float | None]:
    """Every frame of a file as `(F, 3, H, W)` floats in [0, 1], and its frame rate (None when unknown)."""
    # diffusers' `load_video`, not `univigu.data.read_video`: this module ships in exported folders, which load
    # without univigu, and the two differ (`load_video` reads GIFs through PIL; `read_video` forces ffmpeg, retries
    # under load and takes encoded bytes), so the pipeline decodes what diffusers pipelines decode.
    path = _check_video_path(path, allow_remote)
    try:
        try:
            frames, rate = load_video(path, return_fps=True)
        except ValueError as error:  # it decoded the frames but found no frame rate
            if "frame rate" not in str(error):
                raise
            frames, rate = load_video(path), None
    except Exception as error:  # imageio/ffmpeg/PIL raise many different types
        raise _decode_error(path, error) from error
    if len(frames) == 0:
        raise ValueError(f"The video file {path!r} decoded to 0 frames: check the file, or pass the frames directly.")
    rate = float(rate) if rate else None
    return _pil_frames_to_float(frames), (rate if rate and np.isfinite(rate) and rate > 0 else None)


def _read_video_file(path: str) -> torch.Tensor:
    return _load_whole_video(path)[0]


def _pil_frames_to_float(frames: list[PIL.Image.Image]) -> torch.Tensor:
    sizes = sorted({frame.size for frame in frames})
    if len(sizes) > 1:
        raise ValueError(
            f"The video's frames differ in size ({', '.join(f'{w}x{h}' for w, h in sizes[:4])} as width x height): "
            "resize them to one size first."
        )
    array = np.stack([np.asarray(frame.convert("RGB")) for frame in frames])
    return _frames_to_float(array, channels_last=True)


def video_input_to_list(video: Any) -> list[torch.Tensor]:
    """Any supported `video` input -> a list (batch) of float tensors `(F, 3, H, W)` in [0, 1]."""
    if isinstance(video, (str, os.PathLike)):
        return [_read_video_file(os.fspath(video))]
    if isinstance(video, PIL.Image.Image):
        return [_pil_frames_to_float([video])]
    if isinstance(video, np.ndarray):
        if video.ndim == 5:
            return [_frames_to_float(v, channels_last=True) for v in video]
        return [_frames_to_float(video, channels_last=True)]
    if isinstance(video, torch.Tensor):
        if video.ndim == 5:
            return [_frames_to_float(v, channels_last=False) for v in video]
        return [_frames_to_float(video, channels_last=False)]
    if isinstance(video, (list, tuple)):
        if len(video) == 0:
            raise ValueError("`video` is an empty list: pass at least one frame or one video.")
        first = video[0]
        if isinstance(first, PIL.Image.Image):
            return [_pil_frames_to_float(list(video))]
        out = []
        for item in video:
            if isinstance(item, (list, tuple)) and item and isinstance(item[0], PIL.Image.Image):
                out.append(_pil_frames_to_float(list(item)))
            elif isinstance(item, (str, os.PathLike, np.ndarray, torch.Tensor)):
                if getattr(item, "ndim", 4) == 5:
                    raise ValueError("A list of 5D arrays/tensors is ambiguous: concatenate them along the batch axis.")
                out.extend(video_input_to_list(item))
            else:
                raise ValueError(f"Unsupported item in the `video` list: {type(item).__name__}.")
        return out
    raise ValueError(
        f"Unsupported `video` type {type(video).__name__}: pass a path, a list of PIL images, a numpy array "
        "(F, H, W, 3) or (B, F, H, W, 3), or a tensor (F, 3, H, W) or (B, F, 3, H, W)."
    )


def fit_frames(frames: torch.Tensor, height: int, width: int, crop: str = "center") -> torch.Tensor:
    """`(F, 3, H, W)` float frames -> `(F, 3, height, width)`, keeping the aspect: `crop="center"` resizes them to
    cover the target and crops the centre (what training does), `"pad"` resizes them to fit inside and centres them
    on black. Frames of the target size are returned as they are."""
    if crop not in CROP_MODES:
        raise ValueError(f"crop={crop!r} is not supported: use one of {CROP_MODES}.")
    h, w = frames.shape[-2:]
    if (h, w) == (height, width):
        return frames
    if crop == "center":
        scale = max(height / h, width / w)
        new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    else:
        scale = min(height / h, width / w)
        new_h, new_w = min(height, max(1, round(h * scale))), min(width, max(1, round(w * scale)))
    if (new_h, new_w) != (h, w):
        frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    if crop == "center":
        top, left = (new_h - height) // 2, (new_w - width) // 2
        return frames[..., top : top + height, left : left + width]
    canvas = frames.new_zeros(frames.shape[:-2] + (height, width))
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[..., top : top + new_h, left : left + new_w] = frames
    return canvas


class _FramesInMemory:
    """A decoded video `(F, 3, H, W)`; its frames are at `rate` per second when the rate is known (GIFs, rotated
    videos and files read without PyAV), else untimed (frames passed in memory)."""

    def __init__(self, video: torch.Tensor, rate: float | None = None):
        self.video, self.rate = video, rate
        self.size = tuple(video.shape[-2:])

    def window(self, start: float, duration: float | None) -> Iterator[tuple[float | None, int]]:
        for index in range(self.video.shape[0]):
            if self.rate is None:
                yield None, index
                continue
            time = index / self.rate
            if time < start - _TIME_TOLERANCE:
                continue
            if duration is not None and time >= start + duration - _TIME_TOLERANCE:
                return
            yield time, index

    def frame(self, index: int) -> torch.Tensor:
        return self.video[index]


class _VideoFile:
    """A video file decoded with PyAV, lazily: `window` seeks to the window's start and yields its frames in order
    with their time (seconds from the stream's first frame); the consumer stops decoding by stopping iteration."""

    def __init__(self, path: str):
        import av

        self.path = path
        with av.open(path) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.rate = float(rate) if rate else None
            self.time_base = stream.time_base
            self.origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else None
            first = next(iter(container.decode(stream)))
            self.rotated = bool(getattr(first, "rotation", 0))
            self.size = (first.height, first.width)
            if first.time is not None:
                self.origin = first.time if self.origin is None else min(self.origin, first.time)

    def window(self, start: float, duration: float | None) -> Iterator[tuple[float | None, Any]]:
        import av

        end = None if duration is None else start + duration
        origin = self.origin or 0.0
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                if start > 0 and self.time_base:
                    # the keyframe at or before the window's start; the frames before it are decoded, not converted
                    container.seek(int((origin + start) / self.time_base), stream=stream)
                for index, frame in enumerate(container.decode(stream)):
                    if frame.time is None:
                        time = index / self.rate if self.rate and start == 0 else None
                    else:
                        time = frame.time - origin
                    if time is not None and time < start - _TIME_TOLERANCE:
                        continue
                    if end is not None and time is not None and time >= end - _TIME_TOLERANCE:
                        return
                    yield time, frame
        except av.FFmpegError as error:
            raise _decode_error(self.path, error) from error

    @staticmethod
    def frame(frame) -> torch.Tensor:
        return (torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).float() / 255.0)


def _video_sources(video: Any, allow_remote: bool | None = None) -> list[_FramesInMemory | _VideoFile]:
    """Any supported `video` input -> one frame source per video: files are opened lazily with PyAV where it can
    (not GIFs, which PIL reads, nor rotated videos, which ffmpeg turns), everything else is decoded now. Paths go
    through `local_files.check_local_video` first (`allow_remote`: the pipeline's `allow_remote_video`)."""
    if isinstance(video, (str, os.PathLike)):
        path = _check_video_path(os.fspath(video), allow_remote)
        if importlib.util.find_spec("av") is not None and not path.lower().endswith(".gif"):
            try:
                source = _VideoFile(path)
            except Exception:  # not a video PyAV reads: diffusers' reader decodes it or names the problem
                source = None
            if source is not None and not source.rotated:
                return [source]
        return [_FramesInMemory(*_load_whole_video(path, allow_remote))]
    if isinstance(video, (list, tuple)) and any(isinstance(item, (str, os.PathLike)) for item in video):
        return [source for item in video for source in _video_sources(item, allow_remote)]
    return [_FramesInMemory(v) for v in video_input_to_list(video)]


class _Picked:
    """The sampled frames, each converted (decoded to RGB, resized) as soon as it is chosen, so that no more than one
    full-size frame is held; a frame chosen twice in a row (a clip shorter than the window) is converted once."""

    def __init__(self, convert):
        self.convert, self.frames, self.last = convert, [], None

    def add(self, payload):
        if not self.frames or not (payload is self.last or (isinstance(payload, int) and payload == self.last)):
            self.last, self.tensor = payload, self.convert(payload)
        self.frames.append(self.tensor)

    def __len__(self):
        return len(self.frames)


def _sample_at_rate(source, num_frames: int, fps: float, start: float, duration: float | None, convert):
    """The frames nearest to `start + i / fps` (i < num_frames), decoding up to the last of them: `(frames, None)`,
    or `(None, count)` with the number of frames in the window when the window ends first (count None: the frames
    have no times)."""
    targets = [start + i / fps for i in range(num_frames)]
    picked, previous, count = _Picked(convert), None, 0
    for time, payload in source.window(start, duration):
        if time is None:
            return None, None
        count += 1
        while len(picked) < num_frames and time >= targets[len(picked)] - _TIME_TOLERANCE:
            target = targets[len(picked)]
            use_previous = previous is not None and target - previous[0] < time - target
            picked.add(previous[1] if use_previous else payload)
        if len(picked) == num_frames:
            return picked.frames, None
        previous = (time, payload)
    # the window ended: targets within half a frame after its last frame take that frame
    half = 0.5 / source.rate if source.rate else 0.0
    while previous is not None and len(picked) < num_frames and targets[len(picked)] <= previous[0] + half:
        picked.add(previous[1])
    return (picked.frames, None) if len(picked) == num_frames else (None, count)


def _count_frames(source, start: float, duration: float | None) -> int:
    return sum(1 for _ in source.window(start, duration))


def _sample_evenly(source, num_frames: int, start: float, duration: float | None, count: int, convert):
    """`num_frames` frames spread evenly over the `count` frames of the window (repeated when it has fewer)."""
    wanted = np.linspace(0, count - 1, num_frames).round().astype(np.int64).tolist()
    picked = _Picked(convert)
    for index, (_, payload) in enumerate(source.window(start, duration)):
        while len(picked) < num_frames and wanted[len(picked)] == index:
            picked.add(payload)
        if len(picked) == num_frames:
            break
    return picked.frames


def sample_videos(
    video: Any, height: int | None = None, width: int | None = None, num_frames: int | None = None,
    fps: float | None = None, crop: str | None = None, start: float | None = None, duration: float | None = None, *,
    trained: dict[str, Any], frame_factor: int, size_multiple: int, allow_remote: bool | None = None,
) -> list[torch.Tensor]:
    """Any supported video input -> one `(F, 3, height, width)` float tensor in [0, 1] per video: the frames
    `UniViGUPipeline.preprocess_video` gives the model (see there). `trained` holds the checkpoint's stored
    `height`, `width`, `num_frames` and `fps` (None where it stores none); `frame_factor` is the VAE's time
    compression (frame counts are of the form `frame_factor * k + 1`), `size_multiple` what height and width are
    multiples of; `allow_remote`: the pipeline's `allow_remote_video`."""
    start = 0.0 if start is None else float(start)
    sources = _video_sources(video, allow_remote)
    if (fps is not None or start or duration is not None) and any(
        isinstance(s, _FramesInMemory) and s.rate is None for s in sources
    ):
        raise ValueError(
            "`fps`, `start` and `duration` sample a video file by time, but frames passed in memory carry no "
            "frame rate: pass the file's path, or select the frames yourself (e.g. `frames[start:stop:step]`)."
        )
    fps = fps if fps is not None else trained["fps"]
    lenient = num_frames is None and trained["num_frames"] is not None
    num_frames = num_frames if num_frames is not None else trained["num_frames"]
    counts = [None] * len(sources)
    s = frame_factor
    if num_frames is None:
        counts = [_count_frames(source, start, duration) for source in sources]
        available = min(counts)
        if available < 1:
            raise ValueError(
                "The video has no frames" + (" in the window" if start or duration is not None else "")
                + ": pass a video with at least 1 frame."
            )
        num_frames = (available - 1) // s * s + 1

    m = size_multiple
    if height is None and width is None and trained["height"] is not None and trained["width"] is not None:
        height, width = trained["height"], trained["width"]
    elif height is None or width is None:
        native_h, native_w = sources[0].size
        height = height if height is not None else max(native_h // m * m, m)
        width = width if width is not None else max(native_w // m * m, m)
        if (height, width) != (native_h, native_w):
            logger.info(f"Resizing the video from {native_h}x{native_w} to {height}x{width} (multiples of {m}).")
    crop = "center" if crop is None else crop
    if crop not in CROP_MODES:
        raise ValueError(f"crop={crop!r} is not supported: use one of {CROP_MODES}.")

    frames = []
    for source, count in zip(sources, counts):
        convert = partial(_frame_for_model, source, height=height, width=width, crop=crop)
        picked = None
        if fps is not None and count is None:
            picked, count = _sample_at_rate(source, num_frames, fps, start, duration, convert)
        if picked is None:
            count = _count_frames(source, start, duration) if count is None else count
            if count < 1 and (start or duration is not None):
                raise ValueError(
                    f"The video has no frames in the window start={start}, duration={duration} (seconds): pass "
                    "a start within the video."
                )
            if count < 1:
                raise ValueError("The video has no frames: pass a video with at least 1 frame.")
            if count < num_frames and not lenient:
                raise ValueError(
                    f"The video has too few frames: num_frames={num_frames} needs at least {num_frames} frames, "
                    f"but {'a video of the batch' if len(sources) > 1 else 'the video'} has {count}. Pass a longer "
                    f"video, or num_frames={(count - 1) // s * s + 1} ({frame_rule(s)})."
                )
            if count < num_frames:
                logger.info(
                    f"The video has {count} frames; frames are repeated to give the {num_frames} frames this "
                    "checkpoint was trained on."
                )
            picked = _sample_evenly(source, num_frames, start, duration, count, convert)
        frames.append(torch.stack(picked))
    return frames


def _frame_for_model(source, payload, *, height: int, width: int, crop: str) -> torch.Tensor:
    """One decoded frame -> `(3, height, width)` floats in [0, 1]."""
    return fit_frames(source.frame(payload)[None], height, width, crop)[0]


def encode_frames(
    vae, video: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None = None, mode: str = "sample"
) -> torch.Tensor:
    """Preprocessed video `(B, 3, F, H, W)` in [-1, 1] -> the VAE's raw latents: `mode="sample"` draws from the
    posterior (what the reference does; a list of generators draws each video with its own), `"argmax"` takes its
    mean."""
    vae_device = get_module_execution_device(vae)
    video = video.to(device=vae_device, dtype=vae.dtype)
    if not isinstance(generator, list):
        return retrieve_latents(vae.encode(video), generator, sample_mode=mode)
    if len(generator) != video.shape[0]:
        raise ValueError(f"Got {len(generator)} generators for {video.shape[0]} videos: pass one generator per video.")
    return torch.cat(
        [retrieve_latents(vae.encode(video[i : i + 1]), generator[i], sample_mode=mode) for i in range(video.shape[0])]
    )


__all__ = ["CROP_MODES", "encode_frames", "fit_frames", "sample_videos", "video_input_to_list"]
