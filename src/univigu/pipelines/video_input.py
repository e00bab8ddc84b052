# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The video inputs of [`UniViGUPipeline`] (v2t): a file path, PIL frames, numpy arrays or tensors (one video or a
batch) -> a list of float tensors `(F, 3, H, W)` in [0, 1] (`video_input_to_list`, naming the fix for every input it
refuses) -> the model's input, frames sampled and resized and then encoded by the VAE (`UniViGUVideoInputMixin`).

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

import os
from typing import Any, List, Optional, Union

import numpy as np
import PIL.Image
import torch

from diffusers.pipelines.wan.pipeline_wan_video2video import retrieve_latents
from diffusers.utils import load_video, logging
from diffusers.utils.torch_utils import get_module_execution_device


logger = logging.get_logger(__name__)  # pylint: disable=invalid-name


#: Float video values may overshoot [0, 1] (or [-1, 1]) by this much (resampling round-off) and are then clipped.
_VIDEO_RANGE_TOLERANCE = 1e-3


def _frames_to_float(frames: Union[np.ndarray, torch.Tensor], channels_last: bool) -> torch.Tensor:
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


def _read_video_file(path: str) -> torch.Tensor:
    # diffusers' `load_video`, not `univigu.data.read_video`: this module ships in exported folders, which load
    # without univigu, and the two differ (`load_video` reads GIFs through PIL; `read_video` forces ffmpeg, retries
    # under load and takes encoded bytes), so the pipeline decodes what diffusers pipelines decode.
    if not os.path.isfile(path):
        raise ValueError(
            f"The video file {path!r} does not exist: pass the path of a video file (mp4, gif, ...), or the frames "
            "themselves (a list of PIL images, a numpy array (F, H, W, 3), or a tensor (F, 3, H, W))."
        )
    try:
        frames = load_video(path)
    except Exception as error:  # imageio/ffmpeg/PIL raise many different types
        reason = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(
            f"Could not decode the video file {path!r} ({type(error).__name__}: {reason}). Re-encode it as H.264 mp4 "
            f"(e.g. `ffmpeg -i {os.path.basename(path)} -c:v libx264 -pix_fmt yuv420p out.mp4`), or pass the frames "
            "yourself as a numpy array (F, H, W, 3) or a list of PIL images."
        ) from error
    if len(frames) == 0:
        raise ValueError(f"The video file {path!r} decoded to 0 frames: check the file, or pass the frames directly.")
    return _pil_frames_to_float(frames)


def _pil_frames_to_float(frames: List[PIL.Image.Image]) -> torch.Tensor:
    sizes = sorted({frame.size for frame in frames})
    if len(sizes) > 1:
        raise ValueError(
            f"The video's frames differ in size ({', '.join(f'{w}x{h}' for w, h in sizes[:4])} as width x height): "
            "resize them to one size first."
        )
    array = np.stack([np.asarray(frame.convert("RGB")) for frame in frames])
    return _frames_to_float(array, channels_last=True)


def video_input_to_list(video: Any) -> List[torch.Tensor]:
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


class UniViGUVideoInputMixin:
    """The video to caption (v2t) in [`UniViGUPipeline`]: any supported input -> frames sampled and resized for the
    model (`preprocess_video`) -> normalised VAE latents (`encode_video`, `prepare_video_latents`), and the optional
    text condition of the captions (`encode_conditioning_text`). It uses the pipeline's VAE, video processor,
    text encoder and `normalize_latents`."""

    def preprocess_video(
        self,
        video: Any,
        height: Optional[int] = None,
        width: Optional[int] = None,
        num_frames: Optional[int] = None,
    ) -> torch.Tensor:
        """Any supported video input -> `(B, 3, F, H, W)` in [-1, 1], with `F = num_frames` frames sampled evenly
        (default: the largest `4k+1` count the videos have) and frames resized to `height` x `width` (default: the
        video's size, rounded down to a valid multiple)."""
        videos = video_input_to_list(video)
        s = self.vae_scale_factor_temporal
        available = min(v.shape[0] for v in videos)
        if num_frames is None:
            if available < 1:
                raise ValueError("The video has no frames: pass a video with at least 1 frame.")
            num_frames = (available - 1) // s * s + 1
        elif available < num_frames:
            raise ValueError(
                f"The video has too few frames: num_frames={num_frames} needs at least {num_frames} frames, but "
                f"{'a video of the batch' if len(videos) > 1 else 'the video'} has {available}. Pass a longer video, "
                f"or num_frames={(available - 1) // s * s + 1 if available >= 1 else 1} (of the form {s}k+1)."
            )
        frames = []
        for v in videos:
            if v.shape[0] != num_frames:
                index = torch.from_numpy(np.linspace(0, v.shape[0] - 1, num_frames).round().astype(np.int64))
                v = v[index]
            frames.append(v)

        m = self.spatial_multiple
        if height is None or width is None:
            native_h, native_w = frames[0].shape[-2:]
            height = height if height is not None else max(native_h // m * m, m)
            width = width if width is not None else max(native_w // m * m, m)
            if (height, width) != (native_h, native_w):
                logger.info(f"Resizing the video from {native_h}x{native_w} to {height}x{width} (multiples of {m}).")
        return self.video_processor.preprocess_video(frames, height=height, width=width)

    def encode_video(
        self,
        video: torch.Tensor,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        mode: str = "sample",
    ) -> torch.Tensor:
        """Preprocessed video `(B, 3, F, H, W)` in [-1, 1] -> normalised latents. `mode="sample"` draws from the
        VAE posterior (what the reference does), `"argmax"` takes its mean."""
        vae_device = get_module_execution_device(self.vae)
        video = video.to(device=vae_device, dtype=self.vae.dtype)
        if isinstance(generator, list):
            if len(generator) != video.shape[0]:
                raise ValueError(
                    f"Got {len(generator)} generators for {video.shape[0]} videos: pass one generator per video."
                )
            latents = torch.cat(
                [
                    retrieve_latents(self.vae.encode(video[i : i + 1]), generator[i], sample_mode=mode)
                    for i in range(video.shape[0])
                ]
            )
        else:
            latents = retrieve_latents(self.vae.encode(video), generator, sample_mode=mode)
        return self.normalize_latents(latents)

    def prepare_video_latents(
        self,
        video: Optional[torch.Tensor],
        video_latents: Optional[torch.Tensor],
        num_captions_per_video: int,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]],
        mode: str,
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """v2t: the clean latents of the videos to caption, `num_captions_per_video` rows per video: the preprocessed
        `video` encoded by the VAE (with a list of generators, one posterior draw per caption), or `video_latents`."""
        if video_latents is None:
            if num_captions_per_video > 1 and isinstance(generator, list):
                # one posterior sample per caption, each from its own generator
                video = video.repeat_interleave(num_captions_per_video, dim=0)
                latents = self.encode_video(video, generator, mode)
            else:
                latents = self.encode_video(video, generator, mode)
                latents = latents.repeat_interleave(num_captions_per_video, dim=0)
        else:
            latents = video_latents.repeat_interleave(num_captions_per_video, dim=0)
        latents = latents.to(device=device, dtype=dtype)
        if latents.shape[1] != self.transformer.config.in_channels:
            raise ValueError(
                f"`video_latents` have {latents.shape[1]} channels, the transformer expects "
                f"{self.transformer.config.in_channels}."
            )
        return latents

    def encode_conditioning_text(
        self,
        conditioning_text: Union[str, List[str]],
        num_videos: int,
        num_captions_per_video: int,
        max_sequence_length: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """v2t: the umT5 embedding of the text that conditions the captions (one string for every video, or one per
        video), `num_captions_per_video` rows per video."""
        texts = [conditioning_text] if isinstance(conditioning_text, str) else conditioning_text
        if len(texts) == 1:
            texts = texts * num_videos
        return self._get_t5_prompt_embeds(texts, num_captions_per_video, max_sequence_length, device=device).to(dtype)


__all__ = ["UniViGUVideoInputMixin", "video_input_to_list"]
