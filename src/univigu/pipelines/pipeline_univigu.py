# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""UniViGUPipeline: one Wan2.1-based diffusion transformer that generates video from text (t2v), captions video (v2t),
and does both at once (t2vt).

This file is self-contained on purpose (it imports diffusers, transformers, torch, numpy and PIL only, never
`univigu`): `export_for_hub` copies it verbatim to the root of an exported folder, so that
`DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` works without univigu installed.
"""

import copy
import inspect
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import PIL.Image
import torch
from transformers import AutoTokenizer, UMT5EncoderModel

from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin
from diffusers.models import AutoencoderKLWan
from diffusers.models.modeling_utils import ModelMixin
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.pipelines.wan.pipeline_wan import prompt_clean
from diffusers.pipelines.wan.pipeline_wan_video2video import retrieve_latents
from diffusers.schedulers import FlowMatchEulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput, logging, replace_example_docstring
from diffusers.utils.torch_utils import get_module_execution_device, randn_tensor
from diffusers.video_processor import VideoProcessor


logger = logging.get_logger(__name__)  # pylint: disable=invalid-name

TASKS = ("t2v", "v2t", "t2vt")
LATENT_NORMALIZATIONS = ("diffusers", "raw")
TEXT_UPDATES = ("scheduler", "reference")
VIDEO_LATENTS_MODES = ("sample", "argmax")
UNDERSTANDING_ATTENTIONS = ("full", "video_prefix")
OUTPUT_TYPES = ("np", "pt", "pil", "latent")

#: What `__call__` uses for an argument left at `None` when the checkpoint stores no default of its own: WanPipeline's
#: values for video, the reference's for captions.
BUILTIN_CALL_DEFAULTS = {
    "height": 480,
    "width": 832,
    "num_frames": 81,
    "num_inference_steps": 50,
    "guidance_scale": 5.0,
    "video_latents_mode": "sample",
    "max_text_length": 128,
    "max_sequence_length": 512,
    "understanding_attention": "full",
}
#: Arguments a checkpoint may store defaults for (`call_defaults` in model_index.json), globally or per task.
CALL_DEFAULT_KEYS = tuple(BUILTIN_CALL_DEFAULTS)

EXAMPLE_DOC_STRING = """
    Examples:
        ```python
        >>> import torch
        >>> from diffusers.utils import export_to_video
        >>> from univigu import UniViGUPipeline

        >>> pipe = UniViGUPipeline.from_pretrained("path/to/univigu-folder", dtype=torch.bfloat16).to("cuda")

        >>> # text -> video (the prompt also enters the text stream, as in the reference)
        >>> frames = pipe(prompt="a red circle moving left", num_frames=81).frames[0]
        >>> export_to_video(frames, "t2v.mp4", fps=16)

        >>> # video -> caption
        >>> caption = pipe(video="t2v.mp4").text[0]

        >>> # joint: a video and a detailed caption of it
        >>> out = pipe(prompt="a red circle moving left", task="t2vt", return_text_history=True)
        >>> out.text[0], len(out.text_history)
        ```
"""


@dataclass
class UniViGUPipelineOutput(BaseOutput):
    r"""
    Output of [`UniViGUPipeline`].

    Args:
        frames (`np.ndarray`, `torch.Tensor`, `list[list[PIL.Image.Image]]` or `None`):
            The generated videos (`output_type` "np": `(batch, frames, height, width, 3)` floats in [0, 1]; "pt":
            `(batch, frames, 3, height, width)`; "pil": a list of frame lists; "latent": the latents). `None` for
            video-to-text.
        text (`list[str]` or `None`):
            The captions (v2t, t2vt), decoded with `skip_special_tokens=True`. `None` for text-to-video.
        text_ids (`torch.LongTensor` of shape `(batch, max_text_length)` or `None`):
            The caption token ids the text stream ended on.
        text_history (`list[list[str]]` or `None`):
            With `return_text_history=True`: the decoded text state after every denoising step (one list of
            `batch` strings per step), to watch the caption form.
    """

    frames: Optional[Union[torch.Tensor, np.ndarray, List[List[PIL.Image.Image]]]] = None
    text: Optional[List[str]] = None
    text_ids: Optional[torch.LongTensor] = None
    text_history: Optional[List[List[str]]] = None


def check_call_defaults(call_defaults: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """Validates a checkpoint's stored call defaults (unknown names are refused, not ignored)."""
    if call_defaults is None:
        return None
    if not isinstance(call_defaults, dict):
        raise ValueError(f"`call_defaults` must be a dict, got {type(call_defaults).__name__}.")
    for key, value in call_defaults.items():
        if key in TASKS:
            if not isinstance(value, dict):
                raise ValueError(f"`call_defaults[{key!r}]` must be a dict of defaults for that task.")
            bad = sorted(set(value) - set(CALL_DEFAULT_KEYS))
        else:
            bad = [] if key in CALL_DEFAULT_KEYS else [key]
        if bad:
            raise ValueError(f"`call_defaults` has unknown keys {bad}: use {list(CALL_DEFAULT_KEYS)} or a task name.")
    return dict(call_defaults)


CHECKSUMS_FILENAME = "checksums.json"
#: Layout version of folders this file writes; a folder from a newer layout is refused with the fix.
CHECKPOINT_FORMAT = 1


def _sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Union[str, os.PathLike], **info: Any) -> str:
    """Record the size and sha256 of every file under `folder` (plus `info`, e.g. a version) in `checksums.json`,
    which `UniViGUPipeline.from_pretrained` then checks before loading."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            if rel == CHECKSUMS_FILENAME:
                continue
            files[rel] = {"bytes": os.path.getsize(path), "sha256": _sha256(path)}
    path = os.path.join(folder, CHECKSUMS_FILENAME)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"checkpoint_format": CHECKPOINT_FORMAT, **info, "files": dict(sorted(files.items()))}, f, indent=2)
        f.write("\n")
    return path


def verify_checksums(folder: Union[str, os.PathLike]) -> Optional[dict]:
    """If `folder` has a `checksums.json`, check that every file it lists is present, of the right size and hash;
    raise an error naming the damaged files and the fix otherwise. Returns the manifest (None when there is none)."""
    path = os.path.join(folder, CHECKSUMS_FILENAME)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if int(manifest.get("checkpoint_format", 1)) > CHECKPOINT_FORMAT:
        raise OSError(
            f"The pipeline folder {folder} has checkpoint format {manifest['checkpoint_format']}, newer than this "
            f"univigu reads ({CHECKPOINT_FORMAT}): upgrade univigu (`pip install -U univigu`)."
        )
    problems = []
    for rel, expected in manifest.get("files", {}).items():
        file = os.path.join(folder, rel)
        if not os.path.isfile(file):
            problems.append(f"{rel}: missing")
        elif os.path.getsize(file) != expected["bytes"]:
            problems.append(f"{rel}: {os.path.getsize(file)} bytes, expected {expected['bytes']} (truncated?)")
        elif _sha256(file) != expected["sha256"]:
            problems.append(f"{rel}: content differs from the checkpoint's recorded sha256")
    if problems:
        raise OSError(
            f"The pipeline folder {folder} is damaged: " + "; ".join(problems) + ". Restore the folder (for the "
            "bundled ShapesWorld checkpoint, reinstall univigu or rebuild it with `python -m univigu.toyworld.build`)."
        )
    return manifest


def check_component_folders(folder: Union[str, os.PathLike], passed: Tuple[str, ...] = ()) -> None:
    """Every component that a local pipeline folder's `model_index.json` lists (and that the caller does not pass
    itself, `passed`) must have its subfolder: otherwise diffusers looks for it at the folder's root and fails with
    an error that does not name the component. Raises an `OSError` naming the missing subfolders."""
    index_path = os.path.join(folder, "model_index.json")
    if not os.path.isfile(index_path):
        return  # diffusers' own error names the missing model_index.json
    with open(index_path, encoding="utf-8") as f:
        index = json.load(f)
    missing = []
    for name, entry in index.items():
        if name.startswith("_") or name in passed:
            continue
        is_component = isinstance(entry, (list, tuple)) and len(entry) == 2 and None not in entry
        if is_component and not os.path.isdir(os.path.join(folder, name)):
            missing.append(f"`{name}/` ({entry[1]})")
    if missing:
        names = [m.split("/")[0].strip("`") for m in missing]
        raise OSError(
            f"The pipeline folder {folder} lacks the component subfolder{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} that its model_index.json lists: restore {'them' if len(missing) > 1 else 'it'} "
            "(copy the whole folder again, or re-save it with `pipe.save_pretrained`), or pass the component "
            f"yourself: `UniViGUPipeline.from_pretrained(folder, {names[0]}=...)`."
        )


def _weight_file_keys(folder: str, variant: Optional[str]) -> Optional[set]:
    """The tensor names a component folder's safetensors weights hold (a single file or a sharded index), read from
    the file headers only; `None` when there is no safetensors file to read (e.g. `.bin` weights)."""
    from safetensors import safe_open  # a dependency of diffusers and transformers

    for suffix in ([f".{variant}"] if variant else []) + [""]:
        for prefix in ("diffusion_pytorch_model", "model"):
            name = f"{prefix}{suffix}.safetensors"
            index = os.path.join(folder, name + ".index.json")
            if os.path.isfile(index):
                with open(index, encoding="utf-8") as f:
                    return set(json.load(f).get("weight_map", {}))
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with safe_open(path, framework="pt") as f:
                    return set(f.keys())
    return None


def _summarize_keys(keys) -> str:
    """`blocks.4.*, blocks.5.*` for whole blocks, else the first few names."""
    blocks: Dict[str, set] = {}
    others = []
    for key in sorted(keys):
        match = re.match(r"^(.*?\b(?:blocks|block|layers|layer|h))\.(\d+)\.", key)
        if match:
            blocks.setdefault(match.group(1), set()).add(int(match.group(2)))
        else:
            others.append(key)
    parts = [f"{prefix}.{i}.*" for prefix, ids in sorted(blocks.items()) for i in sorted(ids)]
    parts += others
    shown = ", ".join(parts[:8])
    return shown + (f", ... ({len(parts) - 8} more)" if len(parts) > 8 else "")


def check_finite_weights(pipeline: DiffusionPipeline, passed: Tuple[str, ...] = ()):
    """After loading: NaN or inf in a model's weights (a broken conversion or fine-tune) would turn every output into
    NaN far from its cause; name the tensors instead. One reduction per tensor: cheap next to loading."""
    for name, component in pipeline.components.items():
        if name in passed or not isinstance(component, torch.nn.Module):
            continue
        bad = [key for key, tensor in component.state_dict().items()
               if tensor.is_floating_point() and tensor.device.type != "meta" and not bool(torch.isfinite(tensor).all())]
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise ValueError(
                f"The weights of `{name}` hold NaN or inf values ({shown}): the checkpoint is broken. Convert or "
                "train it again (`univigu convert ...` reports non-finite weights), or pass a healthy component "
                f"as `{name}=...`."
            )


def check_component_weights(pipeline: DiffusionPipeline, passed: Tuple[str, ...] = (), variant: Optional[str] = None):
    """After loading: the weights file of every model component loaded from a folder must hold exactly the tensors
    its config builds. diffusers and transformers only warn when they differ, then run with randomly initialised
    layers (config builds more blocks than the weights have) or silently drop layers (fewer); this raises a
    `ValueError` naming the component, the disagreeing tensors and the fix instead."""
    for name, component in pipeline.components.items():
        if name in passed or not isinstance(component, torch.nn.Module):
            continue
        config = getattr(component, "config", None)
        folder = getattr(component, "name_or_path", None) or getattr(config, "_name_or_path", None)
        if not folder or not os.path.isdir(folder):
            continue
        if getattr(component, "hf_quantizer", None) is not None or getattr(config, "quantization_config", None):
            continue  # quantized weights store extra tensors (scales, ...) under other names
        file_keys = _weight_file_keys(folder, variant)
        if file_keys is None:
            continue
        state = component.state_dict()
        model_keys = set(state)
        is_transformers_model = not isinstance(component, ModelMixin)
        if is_transformers_model:
            prefix = getattr(component, "base_model_prefix", "") or ""
            if prefix and file_keys and all(k.startswith(prefix + ".") for k in file_keys) and not any(
                k.startswith(prefix + ".") for k in model_keys
            ):
                file_keys = {k[len(prefix) + 1 :] for k in file_keys}
        ignore_missing = list(getattr(component, "_keys_to_ignore_on_load_missing", None) or [])
        ignore_unexpected = list(getattr(component, "_keys_to_ignore_on_load_unexpected", None) or [])
        tied = list(getattr(component, "_tied_weights_keys", None) or [])  # a list, or a dict keyed by the tied names
        present = {state[k].data_ptr() for k in model_keys & file_keys if state[k].device.type != "meta"}
        missing = sorted(
            k
            for k in model_keys - file_keys
            if not any(re.search(p, k) for p in ignore_missing)
            and k not in tied
            # not tied to a tensor the file has (a missing tensor left on the meta device is never tied)
            and (state[k].device.type == "meta" or state[k].data_ptr() not in present)
        )
        unexpected = [k for k in file_keys - model_keys if not any(re.search(p, k) for p in ignore_unexpected)]
        if is_transformers_model:
            # transformers ignores whole modules the class does not have (a decoder, a head); extra tensors under a
            # module it does have (more blocks) are a real mismatch
            tops = {k.split(".", 1)[0] for k in model_keys}
            unexpected = [k for k in unexpected if k.split(".", 1)[0] in tops]
        unexpected = sorted(unexpected)
        if not missing and not unexpected:
            continue
        sub = os.path.basename(os.path.normpath(folder))
        details = []
        if missing:
            details.append(f"the config builds {len(missing)} tensors the weights lack ({_summarize_keys(missing)}), "
                           "which would be left uninitialised or random")
        if unexpected:
            details.append(f"the weights hold {len(unexpected)} tensors the config does not build "
                           f"({_summarize_keys(unexpected)}), which would be dropped")
        counts = ", ".join(
            f"{k}={getattr(config, k)}" for k in ("num_layers", "num_hidden_layers") if getattr(config, k, None)
        )
        raise ValueError(
            f"The `{name}` of {os.path.dirname(os.path.normpath(folder))} does not match its weights: "
            + "; ".join(details)
            + f". Make `{sub}/config.json`"
            + (f" ({counts})" if counts else "")
            + " describe the model the weights file was saved from (e.g. the number of layers), or restore the "
            "weights that belong to this config."
        )


def _nearest_valid(value: int, multiple: int, offset: int = 0) -> List[int]:
    """The valid values (of the form `multiple * k + offset`, at least `max(offset, 1)`) just below and above."""
    lower = (value - offset) // multiple * multiple + offset
    candidates = [lower, lower + multiple]
    smallest = offset if offset >= 1 else multiple
    return sorted({c for c in candidates if c >= smallest}) or [smallest]


#: The largest `max_sequence_length` (umT5 tokens) `__call__` accepts. umT5's positions are relative, so neither its
#: tokenizer nor its encoder has a hard limit, but its attention bias grows with the square of the length (100000
#: tokens would ask for ~80 GB); a text encoder with absolute positions (`config.max_position_embeddings`) lowers it.
MAX_SEQUENCE_LENGTH = 4096


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_int(
    name: str, value: Any, minimum: Optional[int] = 1, maximum: Optional[int] = None, hint: str = ""
) -> None:
    """`value` is a Python/numpy integer (not a bool) in [minimum, maximum] (`None`: unbounded); `TypeError` /
    `ValueError` otherwise."""
    if not _is_int(value):
        if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
            fix = f"pass {int(value)}"
        elif isinstance(value, (bool, np.bool_)):
            fix = "a bool is not a count; pass a number"
        else:
            fix = "pass a whole number"
        raise TypeError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__}): {fix}{hint}.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name}={value} is out of range: use a value {bounds}{hint}.")


def _check_real(name: str, value: Any, minimum: Optional[float] = None, hint: str = "") -> None:
    """`value` is a finite real number (not a bool) >= minimum; `TypeError`/`ValueError` otherwise."""
    if not _is_real(value):
        fix = "pass a number" + (" (e.g. `float(x)`)" if isinstance(value, torch.Tensor) else "")
        raise TypeError(f"`{name}` must be a real number, got {value!r} ({type(value).__name__}): {fix}{hint}.")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value} is not a finite number: pass a finite value{hint}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value} is below {minimum}: use a value >= {minimum}{hint}.")


def _check_tensor(name: str, value: Any, ndim: int, layout: str, floating: bool = True) -> None:
    """`value` is a torch tensor with `ndim` dimensions (laid out as `layout`), none of them empty, and (when
    `floating`) a floating-point dtype and finite values."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"`{name}` must be a torch.Tensor {layout}, got {type(value).__name__}: convert it with "
            "`torch.as_tensor(...)`."
        )
    if value.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}D {layout}, got shape {tuple(value.shape)}.")
    if value.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(value.shape)}): every dimension of {layout} must be >= 1.")
    if floating:
        if not value.is_floating_point():
            raise TypeError(
                f"`{name}` must be a floating-point tensor, got dtype {value.dtype}: pass `{name}.float()`."
            )
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"`{name}` contains NaN or inf values: recompute it (or check what produced it).")


def _callable_name(function: Any) -> str:
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    return name if isinstance(name, str) else type(function).__name__


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
    if not os.path.isfile(path):
        raise ValueError(
            f"The video file {path!r} does not exist: pass the path of a video file (mp4, gif, ...), or the frames "
            "themselves (a list of PIL images, a numpy array (F, H, W, 3), or a tensor (F, 3, H, W))."
        )
    from diffusers.utils import load_video

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


def _video_input_to_list(video: Any) -> List[torch.Tensor]:
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
                out.extend(_video_input_to_list(item))
            else:
                raise ValueError(f"Unsupported item in the `video` list: {type(item).__name__}.")
        return out
    raise ValueError(
        f"Unsupported `video` type {type(video).__name__}: pass a path, a list of PIL images, a numpy array "
        "(F, H, W, 3) or (B, F, H, W, 3), or a tensor (F, 3, H, W) or (B, F, 3, H, W)."
    )


class UniViGULoraLoaderMixin(WanLoraLoaderMixin):
    """`load_lora_weights` / `save_lora_weights` / `fuse_lora` / `unfuse_lora` for `UniViGUPipeline`: diffusers'
    Wan LoRA loader (the transformer is Wan's plus the text experts) minus its Wan2.1-I2V expansion step, which
    reads an `image_dim` config field that UniViGU does not have."""

    _lora_loadable_modules = ["transformer"]
    transformer_name = "transformer"

    @classmethod
    def _maybe_expand_t2v_lora_for_i2v(cls, transformer: torch.nn.Module, state_dict):
        if getattr(transformer.config, "image_dim", None) is None:
            return state_dict
        return super()._maybe_expand_t2v_lora_for_i2v(transformer, state_dict)


class UniViGUPipeline(DiffusionPipeline, UniViGULoraLoaderMixin):
    r"""
    Uni-ViGU: text-to-video, video-to-text and joint text-to-video+caption with one Wan2.1-based diffusion
    transformer whose sequence is `[video patch tokens ; text tokens]`.

    The task follows from the inputs (`prompt` -> "t2v", `video` -> "v2t", `prompt` with `generate_caption=True` ->
    "t2vt") or from `task=`.

    Args:
        tokenizer ([`~transformers.AutoTokenizer`]):
            Wan's umT5 tokenizer. It tokenizes the prompt for umT5 and is also the tokenizer of the text stream.
        text_encoder ([`~transformers.UMT5EncoderModel`]):
            Wan's umT5 text encoder (the cross-attention condition).
        vae ([`AutoencoderKLWan`]):
            Wan's video VAE.
        transformer ([`UniViGUTransformer3DModel`]):
            The unified transformer (video velocity + text logits).
        scheduler ([`FlowMatchEulerDiscreteScheduler`] or [`UniPCMultistepScheduler`] in flow mode):
            The video sampler.
        text_scheduler ([`DiscreteFlowScheduler`]):
            The discrete-flow sampler of the text stream.
        latent_normalization (`str`, defaults to `"diffusers"`):
            `"diffusers"`: latents are normalised with the VAE's `latents_mean` / `latents_std` (as `WanPipeline`
            does). `"raw"`: the reference implementation's convention (raw `latent_dist` values, decoded without
            de-normalisation); folders converted from the reference checkpoint set it.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds", "text_ids"]
    _optional_components = []

    def __init__(
        self,
        tokenizer: AutoTokenizer,
        text_encoder: UMT5EncoderModel,
        vae: AutoencoderKLWan,
        transformer: ModelMixin,
        scheduler: FlowMatchEulerDiscreteScheduler,
        text_scheduler: SchedulerMixin,
        latent_normalization: str = "diffusers",
        call_defaults: Optional[Dict[str, Any]] = None,
    ):
        super().__init__()
        if latent_normalization not in LATENT_NORMALIZATIONS:
            raise ValueError(
                f"`latent_normalization` must be one of {LATENT_NORMALIZATIONS}, got {latent_normalization!r}."
            )
        call_defaults = check_call_defaults(call_defaults)
        self.register_modules(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
            text_scheduler=text_scheduler,
        )
        self.register_to_config(latent_normalization=latent_normalization, call_defaults=call_defaults)
        self.vae_scale_factor_temporal = self.vae.config.scale_factor_temporal if getattr(self, "vae", None) else 4
        self.vae_scale_factor_spatial = self.vae.config.scale_factor_spatial if getattr(self, "vae", None) else 8
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor_spatial)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """`DiffusionPipeline.from_pretrained`, with checks that name what is wrong with a damaged folder:

        - a local folder that carries a `checksums.json` (the bundled ShapesWorld checkpoint does) is checked first,
          so that a missing or truncated file is named clearly;
        - a component subfolder that `model_index.json` lists but the local folder lacks is named (`OSError`);
        - after loading, each model's weights must hold exactly the tensors its config builds (`ValueError`
          otherwise): a config with more blocks than the weights would run with randomly initialised layers, one
          with fewer would drop layers, where diffusers and transformers only warn;
        - no model weight may be NaN or inf (`ValueError` naming the tensors)."""
        passed = tuple(k for k in kwargs if not k.startswith("_"))
        if isinstance(pretrained_model_name_or_path, (str, os.PathLike)) and os.path.isdir(pretrained_model_name_or_path):
            verify_checksums(pretrained_model_name_or_path)
            check_component_folders(pretrained_model_name_or_path, passed)
        pipeline = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if kwargs.get("quantization_config") is None:
            check_component_weights(pipeline, passed, kwargs.get("variant"))
            check_finite_weights(pipeline, passed)
        return pipeline

    # ------------------------------------------------------------------ properties (WanPipeline's)

    @property
    def guidance_scale(self):
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self):
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self):
        return self._num_timesteps

    @property
    def current_timestep(self):
        return self._current_timestep

    @property
    def interrupt(self):
        return self._interrupt

    @property
    def attention_kwargs(self):
        return self._attention_kwargs

    def call_default(self, name: str, task: str):
        """The value `__call__` uses for `name` when the caller leaves it at `None`: the checkpoint's own default for
        `task` (`call_defaults[task][name]`), else its global one (`call_defaults[name]`), else
        `BUILTIN_CALL_DEFAULTS` (WanPipeline's / the reference's)."""
        stored = getattr(self.config, "call_defaults", None) or {}
        per_task = stored.get(task) or {}
        if name in per_task:
            return per_task[name]
        return stored.get(name, BUILTIN_CALL_DEFAULTS[name])

    def set_call_defaults(self, **defaults):
        """Record defaults with the pipeline (saved by `save_pretrained`): `pipe.set_call_defaults(height=64,
        v2t={"num_inference_steps": 16})`. Keys are `CALL_DEFAULT_KEYS`, or a task name holding a dict of them."""
        merged = copy.deepcopy(dict(getattr(self.config, "call_defaults", None) or {}))
        for key, value in defaults.items():
            if key in TASKS:
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
        self.register_to_config(call_defaults=check_call_defaults(merged))

    @property
    def spatial_multiple(self) -> int:
        """Height and width must be multiples of this (VAE spatial factor x transformer patch size)."""
        patch = self.transformer.config.patch_size
        return self.vae_scale_factor_spatial * max(patch[1], patch[2])

    # ------------------------------------------------------------------ prompt encoding

    def _tokenize(self, prompt: List[str], max_sequence_length: int):
        prompt = [prompt_clean(u) for u in prompt]
        text_inputs = self.tokenizer(
            prompt,
            padding="max_length",
            max_length=max_sequence_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        return text_inputs.input_ids, text_inputs.attention_mask

    def _get_t5_prompt_embeds(
        self,
        prompt: Union[str, List[str]] = None,
        num_videos_per_prompt: int = 1,
        max_sequence_length: int = 226,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ):
        # The same computation as WanPipeline._get_t5_prompt_embeds (the parity test depends on it).
        device = device or self._execution_device
        dtype = dtype or self.text_encoder.dtype

        prompt = [prompt] if isinstance(prompt, str) else prompt
        batch_size = len(prompt)
        text_input_ids, mask = self._tokenize(prompt, max_sequence_length)
        seq_lens = mask.gt(0).sum(dim=1).long()

        model_device = get_module_execution_device(self.text_encoder)
        prompt_embeds = self.text_encoder(text_input_ids.to(model_device), mask.to(model_device)).last_hidden_state
        prompt_embeds = prompt_embeds.to(dtype=dtype, device=device)
        prompt_embeds = [u[:v] for u, v in zip(prompt_embeds, seq_lens)]
        prompt_embeds = torch.stack(
            [torch.cat([u, u.new_zeros(max_sequence_length - u.size(0), u.size(1))]) for u in prompt_embeds], dim=0
        )

        _, seq_len, _ = prompt_embeds.shape
        prompt_embeds = prompt_embeds.repeat(1, num_videos_per_prompt, 1)
        prompt_embeds = prompt_embeds.view(batch_size * num_videos_per_prompt, seq_len, -1)
        return prompt_embeds

    def encode_prompt(
        self,
        prompt: Union[str, List[str]],
        negative_prompt: Optional[Union[str, List[str]]] = None,
        do_classifier_free_guidance: bool = True,
        num_videos_per_prompt: int = 1,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        max_sequence_length: int = 226,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ):
        r"""
        Encodes the prompt (and, with guidance, the negative prompt; `""` by default) into umT5 hidden states, exactly
        as `WanPipeline.encode_prompt` does. Returns `(prompt_embeds, negative_prompt_embeds)`.
        """
        device = device or self._execution_device

        prompt = [prompt] if isinstance(prompt, str) else prompt
        if prompt is not None:
            batch_size = len(prompt)
        else:
            batch_size = prompt_embeds.shape[0]

        if prompt_embeds is None:
            prompt_embeds = self._get_t5_prompt_embeds(
                prompt=prompt,
                num_videos_per_prompt=num_videos_per_prompt,
                max_sequence_length=max_sequence_length,
                device=device,
                dtype=dtype,
            )

        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negative_prompt = negative_prompt or ""
            negative_prompt = batch_size * [negative_prompt] if isinstance(negative_prompt, str) else negative_prompt

            if prompt is not None and type(prompt) is not type(negative_prompt):
                raise TypeError(
                    f"`negative_prompt` should be the same type to `prompt`, but got {type(negative_prompt)} !="
                    f" {type(prompt)}."
                )
            elif batch_size != len(negative_prompt):
                raise ValueError(
                    f"`negative_prompt` has batch size {len(negative_prompt)}, but `prompt` has batch size "
                    f"{batch_size}: pass one negative prompt per prompt (or a single string)."
                )

            negative_prompt_embeds = self._get_t5_prompt_embeds(
                prompt=negative_prompt,
                num_videos_per_prompt=num_videos_per_prompt,
                max_sequence_length=max_sequence_length,
                device=device,
                dtype=dtype,
            )

        return prompt_embeds, negative_prompt_embeds

    def prompt_text_stream(
        self,
        prompt: Union[str, List[str]],
        num_videos_per_prompt: int = 1,
        max_sequence_length: int = 512,
        device: Optional[torch.device] = None,
    ) -> Tuple[torch.LongTensor, torch.BoolTensor]:
        """The prompt's own token ids (same tokenizer and cleaning as the umT5 input) and their attention mask, for
        the text stream of text-to-video; trimmed to the longest prompt of the batch."""
        device = device or self._execution_device
        prompt = [prompt] if isinstance(prompt, str) else prompt
        ids, mask = self._tokenize(prompt, max_sequence_length)
        length = max(int(mask.sum(dim=1).max()), 1)
        ids = ids[:, :length].repeat_interleave(num_videos_per_prompt, dim=0)
        mask = mask[:, :length].bool().repeat_interleave(num_videos_per_prompt, dim=0)
        return ids.to(device), mask.to(device)

    # ------------------------------------------------------------------ latents

    def prepare_latents(
        self,
        batch_size: int,
        num_channels_latents: int = 16,
        height: int = 480,
        width: int = 832,
        num_frames: int = 81,
        dtype: Optional[torch.dtype] = None,
        device: Optional[torch.device] = None,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        if latents is not None:
            return latents.to(device=device, dtype=dtype)

        num_latent_frames = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        shape = (
            batch_size,
            num_channels_latents,
            num_latent_frames,
            int(height) // self.vae_scale_factor_spatial,
            int(width) // self.vae_scale_factor_spatial,
        )
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(
                f"You have passed a list of generators of length {len(generator)}, but requested an effective batch"
                f" size of {batch_size}. Make sure the batch size matches the length of the generators."
            )
        return randn_tensor(shape, generator=generator, device=device, dtype=dtype)

    def _latents_stats(self, latents: torch.Tensor):
        mean = torch.tensor(self.vae.config.latents_mean).view(1, self.vae.config.z_dim, 1, 1, 1)
        inv_std = 1.0 / torch.tensor(self.vae.config.latents_std).view(1, self.vae.config.z_dim, 1, 1, 1)
        return mean.to(latents.device, latents.dtype), inv_std.to(latents.device, latents.dtype)

    def normalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw VAE latents -> the transformer's latent space (per `latent_normalization`)."""
        if self.config.latent_normalization == "raw":
            return latents
        mean, inv_std = self._latents_stats(latents)
        return (latents - mean) * inv_std

    def decode_latents(self, latents: torch.Tensor, output_type: str = "np"):
        """Transformer-space latents -> video frames (de-normalised per `latent_normalization`)."""
        latents = latents.to(get_module_execution_device(self.vae), dtype=self.vae.dtype)
        if self.config.latent_normalization != "raw":
            latents_mean, latents_std = self._latents_stats(latents)
            latents = latents / latents_std + latents_mean
        video = self.vae.decode(latents, return_dict=False)[0]
        return self.video_processor.postprocess_video(video, output_type=output_type)

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

    # ------------------------------------------------------------------ text stream helpers

    def _text_vocab_size(self) -> int:
        return int(self.text_scheduler.config.vocab_size)

    def _text_schedulers(self, commit_strategy: Optional[str], generator) -> List[SchedulerMixin]:
        """One text scheduler for the batch (a single generator), or one per sample (a list of generators, so that
        each sample's randomness comes from its own generator and a batch equals the single calls)."""
        scheduler = self.text_scheduler
        if commit_strategy is not None and commit_strategy != scheduler.config.commit_strategy:
            scheduler = type(scheduler).from_config(scheduler.config, commit_strategy=commit_strategy)
        if isinstance(generator, list):
            return [copy.deepcopy(scheduler) for _ in generator]
        return [scheduler]

    @staticmethod
    def _generator_device(generator, fallback: torch.device) -> torch.device:
        return generator.device if isinstance(generator, torch.Generator) else fallback

    def prepare_text_ids(
        self,
        batch_size: int,
        text_length: int,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]],
        device: torch.device,
        text_ids: Optional[torch.LongTensor] = None,
    ) -> torch.LongTensor:
        """Starting tokens of the text stream: source draws (uniform ids, or all [MASK]) from `text_scheduler`."""
        if text_ids is not None:
            return text_ids.to(device=device, dtype=torch.long)
        if isinstance(generator, list):
            if len(generator) != batch_size:
                raise ValueError(
                    f"You have passed a list of generators of length {len(generator)}, but requested an effective "
                    f"batch size of {batch_size}. Make sure the batch size matches the length of the generators."
                )
            rows = [
                self.text_scheduler.sample_source(
                    (1, text_length), generator=g, device=self._generator_device(g, device)
                )
                for g in generator
            ]
            return torch.cat([r.to(device) for r in rows])
        gen_device = self._generator_device(generator, device)
        return self.text_scheduler.sample_source((batch_size, text_length), generator=generator, device=gen_device).to(
            device
        )

    def _scheduler_text_step(self, schedulers, logits, t, text_ids, generator, temperature):
        """One discrete-flow step of the text stream (per sample when `generator` is a list)."""
        if isinstance(generator, list):
            rows = []
            for i, (scheduler, g) in enumerate(zip(schedulers, generator)):
                gen_device = self._generator_device(g, text_ids.device)
                rows.append(
                    scheduler.step(
                        logits[i : i + 1].to(gen_device),
                        t,
                        text_ids[i : i + 1].to(gen_device),
                        generator=g,
                        temperature=temperature,
                    ).prev_sample.to(text_ids.device)
                )
            return torch.cat(rows)
        gen_device = self._generator_device(generator, text_ids.device)
        return (
            schedulers[0]
            .step(logits.to(gen_device), t, text_ids.to(gen_device), generator=generator, temperature=temperature)
            .prev_sample.to(text_ids.device)
        )

    def _sample_categorical(self, logits, generator, temperature):
        """x1 ~ softmax(logits / temperature) per position (argmax at temperature 0), in the text scheduler's
        sampling dtype; returns the ids and a uniform draw per position (for the reference's resampling)."""
        sampling_dtype = getattr(self.text_scheduler.config, "sampling_dtype", "float64")
        dtype = torch.float64 if sampling_dtype == "float64" else torch.float32

        def one(rows, g):
            gen_device = self._generator_device(g, rows.device)
            rows = rows.to(gen_device, dtype)
            if temperature == 0:
                ids = rows.argmax(dim=-1)
            else:
                probs = torch.softmax(rows / temperature, dim=-1)
                ids = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=g).view(probs.shape[:-1])
            u = torch.rand(ids.shape, generator=g, device=gen_device, dtype=torch.float64)
            return ids.to(logits.device), u.to(logits.device)

        if isinstance(generator, list):
            parts = [one(logits[i : i + 1], g) for i, g in enumerate(generator)]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return one(logits, generator)

    def decode_text(self, text_ids: torch.LongTensor) -> List[str]:
        """Token ids -> strings (`skip_special_tokens=True`; ids the tokenizer does not know are dropped)."""
        known = len(self.tokenizer)
        rows = [[i for i in row if 0 <= i < known] for row in text_ids.tolist()]
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True)

    # ------------------------------------------------------------------ input checking

    def _resolve_task(self, task, prompt, prompt_embeds, video, video_latents, generate_caption) -> str:
        has_text = prompt is not None or prompt_embeds is not None
        has_video = video is not None or video_latents is not None
        if task is not None:
            if task not in TASKS:
                raise ValueError(
                    f"Unknown task {task!r}: pick one of 't2v' (text -> video), 'v2t' (video -> caption) or 't2vt' "
                    "(text -> video + caption)."
                )
            if task in ("t2v", "t2vt"):
                if has_video:
                    raise ValueError(
                        f"task={task!r} generates a video from text and does not take `video`: drop `video`, or use "
                        "task='v2t' to caption it."
                    )
                if not has_text:
                    raise ValueError(f"task={task!r} needs a `prompt` (or `prompt_embeds`).")
            else:
                if not has_video:
                    raise ValueError("task='v2t' needs a `video` (or pre-encoded `video_latents`) to caption.")
                if has_text:
                    raise ValueError(
                        "task='v2t' does not take `prompt`/`prompt_embeds`: to condition the caption on a text, pass "
                        "it as `conditioning_text`."
                    )
            if generate_caption and task != "t2vt":
                raise ValueError(f"`generate_caption=True` means task='t2vt', but task={task!r} was passed.")
            return task
        if has_text and has_video:
            raise ValueError(
                "Got both a prompt and a video, so the task is ambiguous: to caption the video conditioned on the "
                "text, pass task='v2t' with the text as `conditioning_text` (not `prompt`); to generate from the "
                "text, drop `video` and use task='t2v' (video) or task='t2vt' (video + caption)."
            )
        if has_text:
            return "t2vt" if generate_caption else "t2v"
        if has_video:
            if generate_caption:
                raise ValueError(
                    "`generate_caption=True` needs a `prompt` (joint text -> video + caption), not `video`."
                )
            return "v2t"
        raise ValueError(
            "Nothing to do: pass `prompt` (text -> video; add `generate_caption=True` for a caption too) or `video` "
            "(video -> caption)."
        )

    def _check_prompt(self, name: str, prompt):
        if prompt is None:
            return
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
            prompts = prompt
        else:
            raise ValueError(f"`{name}` has to be a string or a list of strings, got {type(prompt).__name__}.")
        if len(prompts) == 0:
            raise ValueError(f"`{name}` is an empty list: pass at least one string.")
        for i, p in enumerate(prompts):
            if not p.strip():
                where = "" if isinstance(prompt, str) else f" (item {i})"
                raise ValueError(
                    f"`{name}` is empty{where}: write what the video should show (e.g. 'a red circle moving left'), "
                    "or pass precomputed `prompt_embeds`."
                )

    def _video_rope_length(self) -> Optional[int]:
        """Positions per axis (latent frames, height, width after patching) of the transformer's video RoPE table."""
        table = getattr(getattr(self.transformer, "rope", None), "freqs_cos", None)
        if isinstance(table, torch.Tensor) and table.ndim == 2:
            return int(table.shape[0])
        value = getattr(self.transformer.config, "rope_max_seq_len", None)
        return int(value) if value is not None else None

    @property
    def max_video_size(self) -> Dict[str, Optional[int]]:
        """The largest `num_frames`, `height` and `width` whose patch grid fits the transformer's video RoPE table
        (`rope_max_seq_len` positions per axis), e.g. 253 frames and 1024 x 1024 pixels for 64 positions with Wan's
        VAE and (1, 2, 2) patches; `None` where the model sets no limit."""
        limit = self._video_rope_length()
        if limit is None:
            return {"num_frames": None, "height": None, "width": None}
        p_t, p_h, p_w = self.transformer.config.patch_size
        return {
            "num_frames": (limit * p_t - 1) * self.vae_scale_factor_temporal + 1,
            "height": limit * p_h * self.vae_scale_factor_spatial,
            "width": limit * p_w * self.vae_scale_factor_spatial,
        }

    @property
    def max_sequence_length_limit(self) -> int:
        """The largest `max_sequence_length` `__call__` accepts: `MAX_SEQUENCE_LENGTH` (4096), or the text encoder's
        `max_position_embeddings` when it has absolute positions and fewer of them."""
        limit = MAX_SEQUENCE_LENGTH
        config = getattr(getattr(self, "text_encoder", None), "config", None)
        for key in ("max_position_embeddings", "n_positions"):
            value = getattr(config, key, None)
            if _is_int(value) and 0 < value < limit:
                limit = int(value)
        return limit

    def _rope_note(self) -> str:
        return (
            f"what the transformer's video RoPE table holds ({self._video_rope_length()} positions per axis after "
            "patching: transformer.config.rope_max_seq_len)"
        )

    def _check_num_frames(self, num_frames: int, hint: str = ""):
        s = self.vae_scale_factor_temporal
        _check_int("num_frames", num_frames, minimum=None)
        if num_frames < 1 or (num_frames - 1) % s != 0:
            options = _nearest_valid(int(num_frames), s, 1)
            raise ValueError(
                f"num_frames={num_frames} is not of the form {s}k+1 (the VAE compresses time {s}x and keeps the first "
                f"frame): use {' or '.join(map(str, options))}."
            )
        largest = self.max_video_size["num_frames"]
        if largest is not None and num_frames > largest:
            raise ValueError(
                f"num_frames={num_frames} is more than {self._rope_note()}: use num_frames={largest} or fewer{hint}."
            )

    def _check_size(self, height: int, width: int, hint: str = ""):
        m = self.spatial_multiple
        for name, value in (("height", height), ("width", width)):
            _check_int(name, value, minimum=None)
            if value < m or value % m != 0:
                options = _nearest_valid(int(value), m)
                raise ValueError(
                    f"{name}={value} is not a positive multiple of {m} (VAE spatial factor "
                    f"{self.vae_scale_factor_spatial} x patch size {m // self.vae_scale_factor_spatial}): use "
                    f"{' or '.join(map(str, options))}."
                )
            largest = self.max_video_size[name]
            if largest is not None and value > largest:
                raise ValueError(f"{name}={value} is more than {self._rope_note()}: use {name}={largest} or less{hint}.")

    def _check_text_model(self, task: str, max_text_length: int):
        vocab = self._text_vocab_size()
        model_vocab = getattr(self.transformer.config, "vocab_size", None)
        if model_vocab is not None and int(model_vocab) != vocab:
            raise ValueError(
                f"text_scheduler.config.vocab_size={vocab} but transformer.config.vocab_size={model_vocab}: build the "
                "text scheduler with the transformer's vocab_size."
            )
        if getattr(self.text_scheduler.config, "source", "uniform") == "mask" and getattr(
            self.transformer, "mask_token_id", None
        ) is None:
            raise ValueError(
                "text_scheduler uses the [MASK] source but the transformer has no mask token (text_mask_token=False): "
                "use a uniform-source scheduler or a transformer with text_mask_token=True."
            )
        max_len = getattr(self.transformer.config, "text_rope_max_seq_len", None)
        if task != "t2v" and (max_text_length < 1 or (max_len is not None and max_text_length > max_len)):
            raise ValueError(
                f"max_text_length={max_text_length} must be between 1 and the transformer's text_rope_max_seq_len "
                f"({max_len}): use max_text_length={max_len} or less."
            )

    def _check_sigmas(self, sigmas):
        if isinstance(sigmas, (torch.Tensor, np.ndarray)):
            if sigmas.ndim != 1 or (isinstance(sigmas, np.ndarray) and sigmas.dtype.kind not in "uif") or (
                isinstance(sigmas, torch.Tensor) and (sigmas.is_complex() or sigmas.dtype == torch.bool)
            ):
                raise TypeError(
                    f"`sigmas` must be a 1D sequence of noise levels, got a {type(sigmas).__name__} of shape "
                    f"{tuple(sigmas.shape)} and dtype {sigmas.dtype}: pass e.g. `numpy.linspace(1.0, 0.0, N + 1)[:-1]`."
                )
            values = [float(v) for v in sigmas.tolist()]
        elif isinstance(sigmas, (list, tuple)):
            for i, v in enumerate(sigmas):
                if not _is_real(v):
                    raise TypeError(
                        f"`sigmas[{i}]` is {v!r} ({type(v).__name__}): `sigmas` must hold numbers, e.g. "
                        "`numpy.linspace(1.0, 0.0, N + 1)[:-1]`."
                    )
            values = [float(v) for v in sigmas]
        else:
            raise TypeError(
                f"`sigmas` must be a list (or 1D array) of noise levels, got {type(sigmas).__name__}: pass e.g. "
                "`numpy.linspace(1.0, 0.0, N + 1)[:-1]`."
            )
        if not values:
            raise ValueError("`sigmas` is empty: pass at least one noise level, or leave it None and set num_inference_steps.")
        for i, v in enumerate(values):
            if not math.isfinite(v) or not 0.0 <= v <= 1.0:
                raise ValueError(
                    f"sigmas[{i}]={v} is not a noise level in [0, 1] (1 = pure noise, 0 = clean): use values in "
                    "[0, 1], e.g. `numpy.linspace(1.0, 0.0, N + 1)[:-1]`."
                )
        for i in range(1, len(values)):
            if values[i] >= values[i - 1]:
                raise ValueError(
                    f"`sigmas` must decrease from noise towards 0, but sigmas[{i}]={values[i]} >= "
                    f"sigmas[{i - 1}]={values[i - 1]}: sort them in decreasing order without repeats."
                )
        if "sigmas" not in inspect.signature(self.scheduler.set_timesteps).parameters:
            raise ValueError(
                f"The video scheduler {type(self.scheduler).__name__} does not take custom `sigmas`: leave `sigmas` "
                "None and set num_inference_steps, or use a FlowMatchEulerDiscreteScheduler."
            )

    def _check_generator(self, generator):
        if generator is None:
            return
        generators = generator if isinstance(generator, list) else [generator]
        if not generators or not all(isinstance(g, torch.Generator) for g in generators):
            got = type(generator).__name__ if not isinstance(generator, list) else "a list holding " + ", ".join(
                sorted({type(g).__name__ for g in generators}) or ["nothing"]
            )
            seed = f"({generator})" if _is_int(generator) else "(0)"
            raise TypeError(
                f"`generator` must be a torch.Generator or a list of them (one per sample), got {got}: pass e.g. "
                f"`torch.Generator().manual_seed{seed}`."
            )
        device = self._execution_device
        for g in generators:
            if g.device.type not in ("cpu", torch.device(device).type):
                raise ValueError(
                    f"`generator` is on {g.device} but the pipeline runs on {device}: create it on the CPU "
                    f"(`torch.Generator()`) or on {device} (`torch.Generator('{torch.device(device).type}')`)."
                )

    def _check_text_ids(self, text_ids):
        if not isinstance(text_ids, torch.Tensor):
            raise TypeError(
                f"`text_ids` must be a torch.LongTensor of token ids (batch, length), got {type(text_ids).__name__}: "
                "convert it with `torch.as_tensor(ids, dtype=torch.long)`."
            )
        if text_ids.dtype == torch.bool or text_ids.is_floating_point() or text_ids.is_complex():
            raise TypeError(
                f"`text_ids` must be an integer tensor of token ids, got dtype {text_ids.dtype}: pass ids from "
                "`pipe.tokenizer` as `text_ids.long()` (not logits or probabilities)."
            )
        if text_ids.ndim != 2:
            raise ValueError(
                f"`text_ids` must have shape (batch, length), got {tuple(text_ids.shape)}"
                + (": add the batch axis (`text_ids[None]`)." if text_ids.ndim == 1 else ".")
            )
        if text_ids.shape[0] < 1 or text_ids.shape[1] < 1:
            raise ValueError(f"`text_ids` is empty (shape {tuple(text_ids.shape)}): pass at least one token per row.")
        max_len = getattr(self.transformer.config, "text_rope_max_seq_len", None)
        if max_len is not None and text_ids.shape[1] > max_len:
            raise ValueError(
                f"`text_ids` has {text_ids.shape[1]} tokens per row, more than the transformer's text stream holds "
                f"(text_rope_max_seq_len={max_len}): pass at most {max_len} tokens per row."
            )
        limit = getattr(self.transformer, "num_text_embeddings", None) or self._text_vocab_size()
        low, high = int(text_ids.min()), int(text_ids.max())
        if low < 0 or high >= limit:
            raise ValueError(
                f"`text_ids` holds ids in [{low}, {high}], outside the transformer's text vocabulary [0, {limit}): "
                f"pass token ids of `pipe.tokenizer` (vocab size {self._text_vocab_size()})."
            )

    def _check_batch(self, total: int, what: str, generator, text_ids):
        """The per-sample inputs (a list of generators, `text_ids`) match the `total` samples the call makes."""
        if isinstance(generator, list) and len(generator) != total:
            raise ValueError(
                f"`generator` is a list of {len(generator)} generators, but the call makes {total} samples ({what} x "
                "num_videos_per_prompt): pass one generator per sample, or a single generator."
            )
        if text_ids is not None and text_ids.shape[0] != total:
            raise ValueError(
                f"`text_ids` has batch size {text_ids.shape[0]}, but the call makes {total} samples ({what} x "
                "num_videos_per_prompt): pass one row of starting tokens per sample."
            )

    def _check_embeds(self, name: str, embeds: torch.Tensor, rows: Optional[int] = None, rows_why: str = ""):
        _check_tensor(name, embeds, 3, "(batch, sequence, text_dim)")
        text_dim = self.transformer.config.text_dim
        if embeds.shape[-1] != text_dim:
            raise ValueError(
                f"`{name}` has hidden size {embeds.shape[-1]}, but the transformer's cross-attention takes "
                f"text_dim={text_dim}: encode the text with this pipeline's text encoder (`pipe.encode_prompt`)."
            )
        if rows is not None and embeds.shape[0] != rows:
            raise ValueError(f"`{name}` has batch size {embeds.shape[0]}, expected {rows}{rows_why}.")

    def _check_video_latents(self, video_latents: torch.Tensor):
        _check_tensor("video_latents", video_latents, 5, "(batch, channels, frames, height, width) latents")
        channels = self.transformer.config.in_channels
        if video_latents.shape[1] != channels:
            raise ValueError(
                f"`video_latents` have {video_latents.shape[1]} channels, the transformer expects in_channels="
                f"{channels}: encode the video with this pipeline's VAE (`pipe.encode_video(pipe.preprocess_video(video))`)."
            )
        limit = self._video_rope_length()
        for axis, size, patch in zip(("frames", "height", "width"), video_latents.shape[2:], self.transformer.config.patch_size):
            if size % patch:
                raise ValueError(
                    f"`video_latents` have {size} latent {axis}, not divisible by the patch size {patch}: encode a "
                    f"video whose latent {axis} is a multiple of {patch}."
                )
            if limit is not None and size // patch > limit:
                raise ValueError(
                    f"`video_latents` have {size} latent {axis}, at most {limit * patch} fit {self._rope_note()}: "
                    f"encode a shorter or smaller video (num_frames <= {self.max_video_size['num_frames']}, height "
                    f"and width <= {self.max_video_size['height']})."
                )

    def _check_prompt_stream(self, prompt, max_sequence_length: int):
        """t2v with `text_stream=True`: the prompt's own tokens must fit the text stream (length, vocabulary)."""
        prompts = [prompt] if isinstance(prompt, str) else prompt
        ids, mask = self._tokenize(prompts, max_sequence_length)
        length = max(int(mask.sum(dim=1).max()), 1)
        max_len = getattr(self.transformer.config, "text_rope_max_seq_len", None)
        if max_len is not None and length > max_len:
            raise ValueError(
                f"The prompt is {length} tokens long, more than the transformer's text stream holds "
                f"(text_rope_max_seq_len={max_len}): shorten it, pass max_sequence_length={max_len} (which truncates "
                "it), or text_stream=False."
            )
        self._check_ids_fit(ids[:, :length])

    def check_inputs(
        self,
        task: str,
        prompt=None,
        negative_prompt=None,
        height=None,
        width=None,
        num_frames=None,
        num_inference_steps=None,
        sigmas=None,
        guidance_scale=None,
        num_videos_per_prompt=1,
        generator=None,
        latents=None,
        prompt_embeds=None,
        negative_prompt_embeds=None,
        text_stream=True,
        video_latents=None,
        video_latents_mode="sample",
        conditioning_text=None,
        max_text_length=None,
        temperature=1.0,
        commit_strategy=None,
        text_update="scheduler",
        text_ids=None,
        output_type="np",
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=None,
        max_sequence_length=None,
    ) -> Optional[int]:
        """
        Checks the arguments of `__call__` (once `task` is resolved and the defaults are filled in) for type (a bool
        is not an int), range, NaN/inf, agreement with each other and with the model (the transformer's RoPE tables,
        channels, text_dim and vocabulary), and raises a `TypeError` / `ValueError` that names the fix, before any
        model runs. Returns the number of samples the call makes, or `None` when it depends on a `video` not yet
        decoded (`check_video` checks the rest after decoding).
        """
        # choices
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} is not supported: use one of {OUTPUT_TYPES}.")
        if text_update not in TEXT_UPDATES:
            raise ValueError(f"text_update={text_update!r} is not supported: use one of {TEXT_UPDATES}.")
        if video_latents_mode not in VIDEO_LATENTS_MODES:
            raise ValueError(
                f"video_latents_mode={video_latents_mode!r} is not supported: use one of {VIDEO_LATENTS_MODES}."
            )
        if commit_strategy is not None and commit_strategy not in ("stochastic", "confidence"):
            raise ValueError(f"commit_strategy={commit_strategy!r} is not supported: use 'stochastic' or 'confidence'.")

        # callback
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise TypeError(
                f"`callback_on_step_end` must be callable as `callback(pipe, step, timestep, callback_kwargs)` (a "
                f"function or a diffusers PipelineCallback), got {type(callback_on_step_end).__name__}."
            )
        inputs = callback_on_step_end_tensor_inputs
        if inputs is None and callback_on_step_end is not None:
            inputs = []
        if inputs is not None:
            if not isinstance(inputs, (list, tuple)) or not all(isinstance(k, str) for k in inputs):
                raise TypeError(
                    f"`callback_on_step_end_tensor_inputs` must be a list of names from {self._callback_tensor_inputs}, "
                    f"got {inputs!r}."
                )
            bad = [k for k in inputs if k not in self._callback_tensor_inputs]
            if bad:
                raise ValueError(
                    f"`callback_on_step_end_tensor_inputs` has to be in {self._callback_tensor_inputs}, but found "
                    f"{bad}: drop them."
                )

        # numbers
        _check_int("num_inference_steps", num_inference_steps, 1)
        _check_real(
            "guidance_scale", guidance_scale, 0.0,
            hint=" (values > 1 guide the video, e.g. 5.0; 1.0 or less turns guidance off)",
        )
        _check_int("num_videos_per_prompt", num_videos_per_prompt, 1)
        _check_real("temperature", temperature, 0.0, hint=" (0 = argmax, 1 = the model's own distribution)")
        _check_int("max_text_length", max_text_length, 1)
        _check_int(
            "max_sequence_length", max_sequence_length, 1, self.max_sequence_length_limit,
            hint=" (umT5 tokens the prompt is padded/truncated to; Wan uses 512)",
        )
        if sigmas is not None:
            if task == "v2t":
                raise ValueError(
                    "`sigmas` sets the video noise levels of t2v/t2vt; v2t denoises only the text: drop `sigmas` and "
                    "set num_inference_steps."
                )
            self._check_sigmas(sigmas)
        self._check_generator(generator)
        if text_ids is not None:
            if task == "t2v":
                raise ValueError(
                    "`text_ids` sets the starting caption tokens of v2t/t2vt; in t2v the text stream is the prompt's "
                    "own tokens (pass `prompt`)."
                )
            self._check_text_ids(text_ids)

        total = None
        n = num_videos_per_prompt
        if task == "v2t":
            if prompt_embeds is not None or negative_prompt_embeds is not None or negative_prompt is not None:
                raise ValueError(
                    "v2t has no guidance and takes its text condition as `conditioning_text`: drop `prompt_embeds`, "
                    "`negative_prompt` and `negative_prompt_embeds`."
                )
            if latents is not None:
                raise ValueError(
                    "`latents` is the starting video noise of t2v/t2vt; to caption pre-encoded latents, pass them as "
                    "`video_latents`."
                )
            self._check_prompt("conditioning_text", conditioning_text)
            if video_latents is not None:
                if height is not None or width is not None or num_frames is not None:
                    raise ValueError(
                        "`video_latents` already fix the video's size: drop height/width/num_frames (they resample "
                        "a `video`)."
                    )
                self._check_video_latents(video_latents)
                total = video_latents.shape[0] * n
                self._check_conditioning_count(conditioning_text, video_latents.shape[0])
                self._check_batch(total, "videos", generator, text_ids)
            else:
                if num_frames is not None:
                    self._check_num_frames(num_frames)
                if height is not None or width is not None:
                    if height is None or width is None:
                        raise ValueError("Pass both `height` and `width` (or neither, to keep the video's size).")
                    self._check_size(height, width)
        else:
            self._check_prompt("prompt", prompt)
            self._check_prompt("negative_prompt", negative_prompt)
            if prompt is not None and prompt_embeds is not None:
                raise ValueError("Pass either `prompt` or `prompt_embeds`, not both.")
            if negative_prompt is not None and negative_prompt_embeds is not None:
                raise ValueError("Pass either `negative_prompt` or `negative_prompt_embeds`, not both.")
            if conditioning_text is not None:
                raise ValueError(f"`conditioning_text` is for task='v2t'; in {task!r} the condition is the prompt.")
            if task == "t2v" and text_stream and prompt is None:
                raise ValueError(
                    "text_stream=True puts the prompt's own tokens in the text stream, so it needs `prompt` (not only "
                    "`prompt_embeds`): pass `prompt`, or text_stream=False."
                )
            self._check_num_frames(num_frames)
            self._check_size(height, width)
            if prompt_embeds is not None:
                self._check_embeds("prompt_embeds", prompt_embeds)
                if n != 1:
                    raise ValueError(
                        f"`prompt_embeds` are used as given (one row per video), so num_videos_per_prompt={n} does "
                        f"not apply to them: repeat them yourself (`prompt_embeds.repeat_interleave({n}, dim=0)`, the "
                        "same for negative_prompt_embeds) and pass num_videos_per_prompt=1."
                    )
                batch = prompt_embeds.shape[0]
            else:
                batch = 1 if isinstance(prompt, str) else len(prompt)
            total = batch * n
            if isinstance(negative_prompt, list) and len(negative_prompt) != batch:
                raise ValueError(
                    f"`negative_prompt` has batch size {len(negative_prompt)}, but `prompt` has batch size {batch}: "
                    "pass one negative prompt per prompt (or a single string)."
                )
            if negative_prompt_embeds is not None:
                self._check_embeds(
                    "negative_prompt_embeds", negative_prompt_embeds, total,
                    " (one row per video: prompts x num_videos_per_prompt)",
                )
            if latents is not None:
                _check_tensor("latents", latents, 5, "(batch, channels, latent frames, latent height, latent width)")
                expected = (
                    total,
                    self.transformer.config.in_channels,
                    (num_frames - 1) // self.vae_scale_factor_temporal + 1,
                    height // self.vae_scale_factor_spatial,
                    width // self.vae_scale_factor_spatial,
                )
                if tuple(latents.shape) != expected:
                    raise ValueError(
                        f"`latents` have shape {tuple(latents.shape)}, but {total} video(s) of num_frames={num_frames}, "
                        f"height={height}, width={width} need {expected}: pass latents of that shape, or the "
                        "height/width/num_frames they were made for."
                    )
            self._check_batch(total, "prompts", generator, text_ids)
            if task == "t2v" and text_stream:
                self._check_prompt_stream(prompt, max_sequence_length)
        if text_ids is not None and text_ids.shape[1] != max_text_length:
            raise ValueError(
                f"`text_ids` has {text_ids.shape[1]} tokens per row but max_text_length={max_text_length}: drop "
                "max_text_length (text_ids set the caption length) or pass text_ids of that length."
            )
        if task != "t2v" or text_stream:
            self._check_text_model(task, max_text_length)
        return total

    def _check_conditioning_count(self, conditioning_text, num_videos: int):
        if isinstance(conditioning_text, list) and len(conditioning_text) not in (1, num_videos):
            raise ValueError(
                f"Got {len(conditioning_text)} conditioning texts for {num_videos} videos: pass one per video (or one "
                "string)."
            )

    def check_video(self, video: torch.Tensor, num_videos_per_prompt: int, generator, text_ids, conditioning_text):
        """v2t, after `preprocess_video` and before the VAE: the decoded video fits the transformer's RoPE tables
        (its own frame count and size are the defaults), and the per-sample inputs match the number of videos."""
        _, _, frames, height, width = video.shape
        sizes = self.max_video_size
        if sizes["num_frames"] is not None and frames > sizes["num_frames"]:
            raise ValueError(
                f"The video gives num_frames={frames}, more than {self._rope_note()}: pass "
                f"num_frames={sizes['num_frames']} or fewer (frames are sampled evenly)."
            )
        if (sizes["height"] is not None and height > sizes["height"]) or (
            sizes["width"] is not None and width > sizes["width"]
        ):
            raise ValueError(
                f"The video is {height}x{width} (height x width), more than {self._rope_note()}: pass height and "
                f"width of at most {sizes['height']} x {sizes['width']} (frames are resized)."
            )
        self._check_conditioning_count(conditioning_text, video.shape[0])
        self._check_batch(video.shape[0] * num_videos_per_prompt, "videos", generator, text_ids)

    def _run_callback(self, callback, step: int, timestep, callback_kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """Calls `callback_on_step_end` and checks what it returns: a dict (or None) whose keys are among the tensors
        it was given, each a tensor of the shape, dtype and device of the one it replaces."""
        given = dict(callback_kwargs)  # the callback may edit callback_kwargs in place and return it
        outputs = callback(self, step, timestep, callback_kwargs)
        name = f"`callback_on_step_end` ({_callable_name(callback)})"
        if outputs is None:
            return {}
        if not isinstance(outputs, dict):
            raise TypeError(
                f"{name} returned {type(outputs).__name__} at step {step}: return a dict of the tensors it changes "
                "(e.g. `return callback_kwargs`), or `{}` / None to change nothing."
            )
        for key, value in outputs.items():
            if key not in given:
                raise ValueError(
                    f"{name} returned the key {key!r} at step {step}, which is not among the tensors it was given "
                    f"({sorted(given)}): to change {key!r}, name it in callback_on_step_end_tensor_inputs (any of "
                    f"{self._callback_tensor_inputs}); otherwise drop it."
                )
            old = given[key]
            if value is old:
                continue
            if old is None:
                if value is None:
                    continue
                raise ValueError(
                    f"{name} returned a value for {key!r} at step {step}, but this call has no {key} (it is None "
                    "here): drop the key or return None for it."
                )
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"{name} returned {type(value).__name__} for {key!r} at step {step}: return a torch.Tensor of "
                    f"shape {tuple(old.shape)} and dtype {old.dtype}."
                )
            if value.shape != old.shape or value.dtype != old.dtype or value.device != old.device:
                raise ValueError(
                    f"{name} returned {key!r} of shape {tuple(value.shape)}, dtype {value.dtype} on {value.device} at "
                    f"step {step}, but it replaces one of shape {tuple(old.shape)}, dtype {old.dtype} on {old.device}: "
                    f"return a tensor of the same shape, dtype and device (e.g. `.to({old.dtype})`)."
                )
            if key == "text_ids":
                limit = getattr(self.transformer, "num_text_embeddings", None) or self._text_vocab_size()
                if value.numel() and (int(value.min()) < 0 or int(value.max()) >= limit):
                    raise ValueError(
                        f"{name} returned 'text_ids' with ids outside the text vocabulary [0, {limit}) at step {step}: "
                        "return token ids of `pipe.tokenizer`."
                    )
            elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name} returned {key!r} with NaN or inf values at step {step}: return finite values.")
        return outputs

    # ------------------------------------------------------------------ video input

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
        videos = _video_input_to_list(video)
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

    # ------------------------------------------------------------------ call

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: Optional[Union[str, List[str]]] = None,
        negative_prompt: Optional[Union[str, List[str]]] = None,
        video: Optional[Any] = None,
        task: Optional[str] = None,
        generate_caption: bool = False,
        height: Optional[int] = None,
        width: Optional[int] = None,
        num_frames: Optional[int] = None,
        num_inference_steps: Optional[int] = None,
        sigmas: Optional[List[float]] = None,
        guidance_scale: Optional[float] = None,
        num_videos_per_prompt: int = 1,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        text_stream: bool = True,
        video_latents: Optional[torch.Tensor] = None,
        video_latents_mode: Optional[str] = None,
        conditioning_text: Optional[Union[str, List[str]]] = None,
        max_text_length: Optional[int] = None,
        temperature: float = 1.0,
        commit_strategy: Optional[str] = None,
        video_cache_interval: Optional[int] = None,
        understanding_attention: Optional[str] = None,
        text_update: str = "scheduler",
        text_ids: Optional[torch.LongTensor] = None,
        return_text_history: bool = False,
        output_type: str = "np",
        return_dict: bool = True,
        attention_kwargs: Optional[Dict[str, Any]] = None,
        callback_on_step_end: Optional[
            Union[Callable[[int, int, Dict], None], PipelineCallback, MultiPipelineCallbacks]
        ] = None,
        callback_on_step_end_tensor_inputs: List[str] = ["latents"],
        max_sequence_length: Optional[int] = None,
    ):
        r"""
        Text -> video ("t2v"), video -> caption ("v2t"), or text -> video + caption ("t2vt").

        Args:
            prompt (`str` or `list[str]`, *optional*):
                The prompt(s). Alone it means task "t2v"; with `generate_caption=True`, "t2vt".
            negative_prompt (`str` or `list[str]`, *optional*):
                The classifier-free-guidance negative prompt (default `""`). Guidance swaps only the umT5 embedding;
                the text stream is the same in both passes.
            video (*optional*):
                The video(s) to caption (task "v2t"): a file path, a list of PIL frames (or a list of such lists), a
                numpy array `(F, H, W, 3)` / `(B, F, H, W, 3)` (uint8 0-255, or floats in [0, 1]; floats with
                values below 0 are read as [-1, 1]), or a tensor `(F, 3, H, W)` / `(B, F, 3, H, W)` (same ranges).
                Float values above 1 (0-255 frames stored as floats), below -1, NaN or inf are refused, not clipped:
                divide 0-255 frames by 255. Videos with more frames than `num_frames` are sampled evenly; frames
                are resized to `height` x `width`.
            task (`str`, *optional*):
                "t2v", "v2t" or "t2vt"; inferred from the inputs when not given.
            generate_caption (`bool`, defaults to `False`):
                With a prompt: also generate a detailed caption (task "t2vt").
            height (`int`, *optional*), width (`int`, *optional*):
                Video size in pixels; multiples of `pipe.spatial_multiple` (16 for Wan), at most
                `pipe.max_video_size` (what the transformer's video RoPE table holds). Defaults: the checkpoint's
                `call_defaults`, else 480 x 832 when generating; the input video's size (rounded down to a valid multiple) when captioning.
            num_frames (`int`, *optional*):
                Number of frames, of the form `4k+1`, at most `pipe.max_video_size["num_frames"]`. Defaults: the checkpoint's `call_defaults`, else 81 when
                generating; the largest `4k+1` count the
                input video has when captioning.
            num_inference_steps (`int`, *optional*):
                Defaults (like every argument below documented with a default and left at `None`) to the
                checkpoint's stored `call_defaults` when it has them, else to the value given here (50).
                Denoising steps (video steps for t2v/t2vt, text steps for v2t; in t2vt both streams share them).
            sigmas (`list[float]`, *optional*):
                Custom video noise levels (before the scheduler's shift), passed to `scheduler.set_timesteps` as in
                diffusers' Flux/SD3 pipelines; overrides `num_inference_steps` for the video. The reference's grid
                is `numpy.linspace(1.0, 0.0, N + 1)[:-1]`. Finite values in [0, 1], strictly decreasing; t2v and
                t2vt only.
            guidance_scale (`float`, defaults to 5.0):
                Classifier-free guidance of the video (t2v, t2vt): a finite number >= 0; values > 1 guide, 1 or
                less turns guidance off. Captions are never guided.
            num_videos_per_prompt (`int`, defaults to 1):
                Videos per prompt (t2v, t2vt), or captions per video (v2t); an integer >= 1. Must be 1 with
                `prompt_embeds` (repeat the embeddings yourself).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                RNG. Pass one generator per sample (a list as long as the effective batch) to make every sample
                depend on its own generator only: then a batch gives exactly what the single calls give. With one
                generator, samples of a batch share its stream. Generators live on the CPU or on the pipeline's
                device.
            latents (`torch.Tensor`, *optional*):
                Starting video noise (t2v, t2vt), finite floats of exactly the shape the call needs:
                `(B * num_videos_per_prompt, C, (num_frames - 1) // t + 1, height // s, width // s)` with the VAE's
                temporal and spatial factors `t`, `s` (4 and 8 for Wan).
            prompt_embeds, negative_prompt_embeds (`torch.Tensor`, *optional*):
                Precomputed umT5 embeddings (as in `WanPipeline`): finite float tensors `(B, N, text_dim)`;
                `negative_prompt_embeds` has one row per video.
            text_stream (`bool`, defaults to `True`):
                t2v only: whether the prompt's own tokens also enter the text stream (clean, text timestep 0), as in
                the reference. `False` computes exactly what `WanPipeline` computes.
            video_latents (`torch.Tensor`, *optional*):
                v2t: pre-encoded, normalised video latents instead of `video`: finite floats `(B, C, F, H, W)` with
                the transformer's `in_channels`, within its RoPE table.
            video_latents_mode (`str`, defaults to `"sample"`):
                v2t: "sample" draws the VAE posterior (the reference), "argmax" takes its mean.
            conditioning_text (`str` or `list[str]`, *optional*):
                v2t: a text given to the model through umT5 cross-attention. Without it the condition is the null
                (zeros) one, as in the reference.
            max_text_length (`int`, defaults to 128):
                Caption length in tokens (v2t, t2vt), 1 to the transformer's `text_rope_max_seq_len`.
            temperature (`float`, defaults to 1.0):
                Softmax temperature of caption sampling: a finite number >= 0; 0 means argmax.
            commit_strategy (`str`, *optional*):
                Overrides the text scheduler's `commit_strategy` ("stochastic" or "confidence") for this call.
            video_cache_interval (`int`, *optional*):
                v2t: `None` runs the exact sampler (every step is the full joint forward). `k` runs the full forward on
                the first step and every `k`-th step and keeps each block's video keys/values; the steps in between
                run only the text tokens against them (`UniViGUVideoKVCache`). `1` equals the exact sampler; `k >=
                num_inference_steps` never refreshes. Exact for models trained with
                `understanding_attention="video_prefix"`, an approximation otherwise (see docs/benchmarks.md).
            understanding_attention (`str`, defaults to `"full"`):
                v2t: `"full"` (the reference: video tokens attend to the text being written) or `"video_prefix"`
                (they do not; use it with models trained with `--understanding_attention video_prefix`, which store
                it in their `call_defaults`).
            text_update (`str`, defaults to `"scheduler"`):
                t2vt: "scheduler" (the discrete-flow Euler step of `text_scheduler`, text time = video time) or
                "reference" (the reference's heuristic: at step i resample every position with probability
                i/(N-1), then a final argmax pass at text time 0).
            text_ids (`torch.LongTensor`, *optional*):
                v2t, t2vt: starting tokens of the text stream `(B, L)` (default: source draws): an integer tensor
                of ids below the text vocabulary size, one row per sample; `L` sets `max_text_length`.
            return_text_history (`bool`, defaults to `False`):
                Also return the decoded caption after every step (`output.text_history`).
            output_type (`str`, defaults to `"np"`):
                "np", "pt", "pil" or "latent" (the video latents, not decoded).
            return_dict (`bool`, defaults to `True`):
                Return a [`UniViGUPipelineOutput`] or a tuple `(frames, text)`.
            attention_kwargs (`dict`, *optional*):
                Passed to the transformer (e.g. `{"scale": lora_scale}`).
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*):
                Called after each step as `callback_on_step_end(pipe, step, timestep, callback_kwargs)`; it may return
                updated tensors. `callback_kwargs` holds the tensors named in `callback_on_step_end_tensor_inputs`,
                any of `pipe._callback_tensor_inputs` = latents, prompt_embeds, negative_prompt_embeds, text_ids. It
                returns a dict (or None) whose keys are among those it was given, each a tensor of the shape, dtype
                and device of the one it replaces; anything else stops the call with an error naming the key.
            callback_on_step_end_tensor_inputs (`list[str]`, defaults to `["latents"]`):
                See above.
            max_sequence_length (`int`, defaults to 512):
                umT5 sequence length (prompts are padded/truncated to it), 1 to `pipe.max_sequence_length_limit`
                (`MAX_SEQUENCE_LENGTH` = 4096, or fewer for a text encoder with absolute positions).

        Every argument is checked before any model runs ([`~UniViGUPipeline.check_inputs`]): a wrong type raises a
        `TypeError`, a bad value (out of range, NaN/inf, not matching the other inputs or the model) a `ValueError`,
        each naming the fix.

        Examples:

        Returns:
            [`UniViGUPipelineOutput`] (`frames`, `text`, `text_ids`, `text_history`), or a tuple `(frames, text)`.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs

        # 1. Check every input before any model runs.
        if max_text_length is None and isinstance(text_ids, torch.Tensor) and text_ids.ndim == 2:
            max_text_length = text_ids.shape[1]  # starting caption tokens set the caption length
        task = self._resolve_task(task, prompt, prompt_embeds, video, video_latents, generate_caption)
        # Arguments left at None take the checkpoint's stored defaults (`call_defaults`), then the built-in ones.
        # Height, width and frame count of a captioned video default to the video's own.
        if num_inference_steps is None:
            num_inference_steps = self.call_default("num_inference_steps", task)
        if guidance_scale is None:
            guidance_scale = self.call_default("guidance_scale", task)
        if video_latents_mode is None:
            video_latents_mode = self.call_default("video_latents_mode", task)
        if max_text_length is None:
            max_text_length = self.call_default("max_text_length", task)
        if max_sequence_length is None:
            max_sequence_length = self.call_default("max_sequence_length", task)
        if understanding_attention is None:
            understanding_attention = self.call_default("understanding_attention", task)
        if understanding_attention not in UNDERSTANDING_ATTENTIONS:
            raise ValueError(
                f"understanding_attention={understanding_attention!r} is not supported: use one of "
                f"{UNDERSTANDING_ATTENTIONS}."
            )
        if video_cache_interval is not None:
            if task != "v2t":
                raise ValueError("`video_cache_interval` speeds up video -> text (task 'v2t'); drop it for t2v/t2vt.")
            if isinstance(video_cache_interval, bool) or not isinstance(video_cache_interval, (int, np.integer)) \
                    or video_cache_interval < 1:
                raise ValueError(
                    f"video_cache_interval must be a positive integer (1 = refresh every step, i.e. exact; "
                    f">= num_inference_steps = never refresh), got {video_cache_interval!r}."
                )
        if isinstance(generator, tuple):
            generator = list(generator)
        if callback_on_step_end is not None and callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = []
        if task != "v2t":
            height = self.call_default("height", task) if height is None else height
            width = self.call_default("width", task) if width is None else width
            num_frames = self.call_default("num_frames", task) if num_frames is None else num_frames
        self.check_inputs(
            task=task,
            prompt=prompt,
            negative_prompt=negative_prompt,
            height=height,
            width=width,
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            sigmas=sigmas,
            guidance_scale=guidance_scale,
            num_videos_per_prompt=num_videos_per_prompt,
            generator=generator,
            latents=latents,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            text_stream=text_stream,
            video_latents=video_latents,
            video_latents_mode=video_latents_mode,
            conditioning_text=conditioning_text,
            max_text_length=max_text_length,
            temperature=temperature,
            commit_strategy=commit_strategy,
            text_update=text_update,
            text_ids=text_ids,
            output_type=output_type,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            max_sequence_length=max_sequence_length,
        )

        self._guidance_scale = guidance_scale
        self._attention_kwargs = attention_kwargs
        self._current_timestep = None
        self._interrupt = False

        if task == "v2t":
            if video_latents is None:
                video = self.preprocess_video(video, height=height, width=width, num_frames=num_frames)
                self.check_video(video, num_videos_per_prompt, generator, text_ids, conditioning_text)
            return self._caption(
                video=video if video_latents is None else None,
                video_latents=video_latents,
                video_latents_mode=video_latents_mode,
                conditioning_text=conditioning_text,
                num_captions_per_video=num_videos_per_prompt,
                num_inference_steps=num_inference_steps,
                generator=generator,
                max_text_length=max_text_length,
                temperature=temperature,
                commit_strategy=commit_strategy,
                video_cache_interval=video_cache_interval,
                understanding_attention=understanding_attention,
                text_ids=text_ids,
                return_text_history=return_text_history,
                return_dict=return_dict,
                attention_kwargs=attention_kwargs,
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
                max_sequence_length=max_sequence_length,
            )

        # t2v / t2vt
        return self._generate(
            task=task,
            prompt=prompt,
            negative_prompt=negative_prompt,
            height=height,
            width=width,
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            sigmas=sigmas,
            guidance_scale=guidance_scale,
            num_videos_per_prompt=num_videos_per_prompt,
            generator=generator,
            latents=latents,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            text_stream=text_stream,
            max_text_length=max_text_length,
            temperature=temperature,
            commit_strategy=commit_strategy,
            text_update=text_update,
            text_ids=text_ids,
            return_text_history=return_text_history,
            output_type=output_type,
            return_dict=return_dict,
            attention_kwargs=attention_kwargs,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            max_sequence_length=max_sequence_length,
        )

    # ------------------------------------------------------------------ t2v and t2vt

    def _generate(
        self,
        task,
        prompt,
        negative_prompt,
        height,
        width,
        num_frames,
        num_inference_steps,
        sigmas,
        guidance_scale,
        num_videos_per_prompt,
        generator,
        latents,
        prompt_embeds,
        negative_prompt_embeds,
        text_stream,
        max_text_length,
        temperature,
        commit_strategy,
        text_update,
        text_ids,
        return_text_history,
        output_type,
        return_dict,
        attention_kwargs,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs,
        max_sequence_length,
    ):
        device = self._execution_device
        if prompt is not None and isinstance(prompt, str):
            batch_size = 1
        elif prompt is not None and isinstance(prompt, list):
            batch_size = len(prompt)
        else:
            batch_size = prompt_embeds.shape[0]
        joint = task == "t2vt"

        # 2. Encode the prompt (and the negative one for guidance)
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt=prompt,
            negative_prompt=negative_prompt,
            do_classifier_free_guidance=self.do_classifier_free_guidance,
            num_videos_per_prompt=num_videos_per_prompt,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            max_sequence_length=max_sequence_length,
            device=device,
        )
        transformer_dtype = self.transformer.dtype
        prompt_embeds = prompt_embeds.to(transformer_dtype)
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.to(transformer_dtype)
        total = batch_size * num_videos_per_prompt

        # 3. The text stream of t2v: the prompt's own tokens, clean
        stream_mask = None
        prompt_stream = task == "t2v" and text_stream
        if prompt_stream:
            text_ids, stream_mask = self.prompt_text_stream(prompt, num_videos_per_prompt, max_sequence_length, device)
            self._check_ids_fit(text_ids)
            if bool(stream_mask.all()):
                stream_mask = None

        # 4. Timesteps and starting noise
        if sigmas is not None:
            self.scheduler.set_timesteps(sigmas=sigmas, device=device)
        else:
            self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        latents = self.prepare_latents(
            total,
            self.transformer.config.in_channels,
            height,
            width,
            num_frames,
            torch.float32,
            device,
            generator,
            latents,
        )
        text_schedulers = None
        if joint:
            text_schedulers = self._text_schedulers(commit_strategy, generator)
            if text_update == "scheduler":
                for scheduler in text_schedulers:
                    scheduler.set_timesteps(timesteps=timesteps, device=device)
            text_ids = self.prepare_text_ids(total, max_text_length, generator, device, text_ids)
            self._check_ids_fit(text_ids, name="text_ids")
        vocab = self._text_vocab_size()
        history = [] if (return_text_history and joint) else None

        # 5. Denoising loop
        num_warmup_steps = len(timesteps) - num_inference_steps * self.scheduler.order
        self._num_timesteps = len(timesteps)
        self.scheduler.set_begin_index(0)

        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                latent_model_input = latents.to(transformer_dtype)
                timestep = t.expand(latents.shape[0])

                stream_kwargs = {}
                if prompt_stream:
                    stream_kwargs = {
                        "text_ids": text_ids,
                        "text_timestep": torch.zeros_like(timestep),
                        "text_attention_mask": stream_mask,
                    }
                elif joint:
                    stream_kwargs = {"text_ids": text_ids, "text_timestep": timestep}

                output = self.transformer(
                    hidden_states=latent_model_input,
                    timestep=timestep,
                    encoder_hidden_states=prompt_embeds,
                    attention_kwargs=attention_kwargs,
                    return_dict=False,
                    **stream_kwargs,
                )
                noise_pred = output[0]
                text_logits = output[1] if joint else None

                if self.do_classifier_free_guidance:
                    noise_uncond = self.transformer(
                        hidden_states=latent_model_input,
                        timestep=timestep,
                        encoder_hidden_states=negative_prompt_embeds,
                        attention_kwargs=attention_kwargs,
                        return_dict=False,
                        **stream_kwargs,
                    )[0]
                    noise_pred = noise_uncond + guidance_scale * (noise_pred - noise_uncond)

                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]

                if joint:
                    logits = text_logits[..., :vocab]
                    if text_update == "scheduler":
                        text_ids = self._scheduler_text_step(
                            text_schedulers, logits, t, text_ids, generator, temperature
                        )
                    else:
                        prob = i / (len(timesteps) - 1) if len(timesteps) > 1 else 1.0
                        x1, u = self._sample_categorical(logits, generator, temperature)
                        text_ids = torch.where(u < prob, x1, text_ids)
                    if history is not None:
                        history.append(self.decode_text(text_ids))

                if callback_on_step_end is not None:
                    callback_kwargs = {}
                    for k in callback_on_step_end_tensor_inputs:
                        callback_kwargs[k] = locals()[k]
                    callback_outputs = self._run_callback(callback_on_step_end, i, t, callback_kwargs)

                    latents = callback_outputs.pop("latents", latents)
                    prompt_embeds = callback_outputs.pop("prompt_embeds", prompt_embeds)
                    negative_prompt_embeds = callback_outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                    text_ids = callback_outputs.pop("text_ids", text_ids)

                if i == len(timesteps) - 1 or ((i + 1) > num_warmup_steps and (i + 1) % self.scheduler.order == 0):
                    progress_bar.update()

        self._current_timestep = None

        # 6. The reference's final argmax pass on the caption (text time 0, video clean)
        if joint and text_update == "reference":
            zeros = torch.zeros(latents.shape[0], device=device, dtype=timesteps.dtype)
            logits = self.transformer(
                hidden_states=latents.to(transformer_dtype),
                timestep=zeros,
                encoder_hidden_states=prompt_embeds,
                text_ids=text_ids,
                text_timestep=zeros,
                attention_kwargs=attention_kwargs,
                return_dict=False,
            )[1]
            text_ids = logits[..., :vocab].argmax(dim=-1)
            if history is not None:
                history.append(self.decode_text(text_ids))

        if output_type != "latent":
            video = self.decode_latents(latents, output_type=output_type)
        else:
            video = latents
        text = self.decode_text(text_ids) if joint else None

        self.maybe_free_model_hooks()

        if not return_dict:
            return (video, text)
        return UniViGUPipelineOutput(
            frames=video, text=text, text_ids=text_ids if joint else None, text_history=history
        )

    def _check_ids_fit(self, ids: torch.LongTensor, name: str = "the prompt's tokens"):
        limit = getattr(self.transformer, "num_text_embeddings", None) or self._text_vocab_size()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= limit):
            raise ValueError(
                f"{name} contain ids outside the transformer's text vocabulary [0, {limit}): the tokenizer does not "
                "match the transformer (build the transformer with vocab_size=len(tokenizer))."
            )

    # ------------------------------------------------------------------ v2t

    def _caption(
        self,
        video,
        video_latents,
        video_latents_mode,
        conditioning_text,
        num_captions_per_video,
        num_inference_steps,
        generator,
        max_text_length,
        temperature,
        commit_strategy,
        text_ids,
        return_text_history,
        return_dict,
        attention_kwargs,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs,
        max_sequence_length,
        video_cache_interval=None,
        understanding_attention="full",
    ):
        device = self._execution_device
        transformer_dtype = self.transformer.dtype
        num_videos = video.shape[0] if video_latents is None else video_latents.shape[0]
        total = num_videos * num_captions_per_video

        # 2. Clean video latents (time 0)
        if video_latents is None:
            if num_captions_per_video > 1 and isinstance(generator, list):
                # one posterior sample per caption, each from its own generator
                video = video.repeat_interleave(num_captions_per_video, dim=0)
                latents = self.encode_video(video, generator, video_latents_mode)
            else:
                latents = self.encode_video(video, generator, video_latents_mode)
                latents = latents.repeat_interleave(num_captions_per_video, dim=0)
        else:
            latents = video_latents.repeat_interleave(num_captions_per_video, dim=0)
        latents = latents.to(device=device, dtype=transformer_dtype)
        if latents.shape[1] != self.transformer.config.in_channels:
            raise ValueError(
                f"`video_latents` have {latents.shape[1]} channels, the transformer expects "
                f"{self.transformer.config.in_channels}."
            )

        # 3. umT5 condition: the null one unless a conditioning text is given (no guidance in v2t)
        prompt_embeds = negative_prompt_embeds = None  # noqa: F841 (callback tensor inputs)
        if conditioning_text is not None:
            texts = [conditioning_text] if isinstance(conditioning_text, str) else conditioning_text
            if len(texts) == 1 and num_videos > 1:
                texts = texts * num_videos
            if len(texts) != num_videos:
                raise ValueError(
                    f"Got {len(texts)} conditioning texts for {num_videos} videos: pass one per video (or one string)."
                )
            prompt_embeds = self._get_t5_prompt_embeds(
                texts, num_captions_per_video, max_sequence_length, device=device
            ).to(transformer_dtype)

        # 4. Text stream from the source distribution
        text_schedulers = self._text_schedulers(commit_strategy, generator)
        for scheduler in text_schedulers:
            scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = text_schedulers[0].timesteps
        text_ids = self.prepare_text_ids(total, max_text_length, generator, device, text_ids)
        self._check_ids_fit(text_ids, name="text_ids")
        if text_ids.shape[0] != total:
            raise ValueError(f"`text_ids` has batch size {text_ids.shape[0]}, expected {total}.")
        vocab = self._text_vocab_size()
        history = [] if return_text_history else None
        video_timestep = torch.zeros(total, device=device, dtype=timesteps.dtype)
        self._num_timesteps = len(timesteps)
        # The video is clean and fixed: with a cache, only every `video_cache_interval`-th step runs its tokens.
        video_kv_cache = self.transformer.video_kv_cache() if video_cache_interval is not None else None
        model_kwargs = dict(attention_kwargs or {})
        if understanding_attention != "full":
            model_kwargs["understanding_attention"] = understanding_attention

        # 5. Discrete-flow denoising of the text
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                with_video = video_kv_cache is None or i % video_cache_interval == 0
                if video_kv_cache is not None:
                    video_kv_cache.refresh = with_video
                    model_kwargs["video_kv_cache"] = video_kv_cache
                logits = self.transformer(
                    hidden_states=latents if with_video else None,
                    timestep=video_timestep if with_video else None,
                    encoder_hidden_states=prompt_embeds,
                    text_ids=text_ids,
                    text_timestep=t.expand(total),
                    attention_kwargs=model_kwargs or None,
                    return_dict=False,
                )[1]
                text_ids = self._scheduler_text_step(
                    text_schedulers, logits[..., :vocab], t, text_ids, generator, temperature
                )
                if history is not None:
                    history.append(self.decode_text(text_ids))

                if callback_on_step_end is not None:
                    callback_kwargs = {}
                    for k in callback_on_step_end_tensor_inputs:
                        callback_kwargs[k] = locals()[k]
                    callback_outputs = self._run_callback(callback_on_step_end, i, t, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)
                    prompt_embeds = callback_outputs.pop("prompt_embeds", prompt_embeds)
                    text_ids = callback_outputs.pop("text_ids", text_ids)
                progress_bar.update()

        self._current_timestep = None
        text = self.decode_text(text_ids)
        self.maybe_free_model_hooks()

        if not return_dict:
            return (None, text)
        return UniViGUPipelineOutput(frames=None, text=text, text_ids=text_ids, text_history=history)

    # ------------------------------------------------------------------ saving

    def save_pretrained(
        self,
        save_directory: Union[str, os.PathLike],
        safe_serialization: bool = True,
        variant: Optional[str] = None,
        max_shard_size: Optional[Union[int, str]] = None,
        push_to_hub: bool = False,
        hub_export: bool = False,
        **kwargs,
    ):
        """`DiffusionPipeline.save_pretrained`. With `hub_export=True` (or `push_to_hub=True`) the folder is written
        by [`export_for_hub`] instead: self-contained, loadable with `trust_remote_code=True` without univigu."""
        if not (hub_export or push_to_hub):
            return super().save_pretrained(
                save_directory, safe_serialization=safe_serialization, variant=variant, max_shard_size=max_shard_size
            )
        card_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _CARD_KWARGS}
        if not push_to_hub:
            export_for_hub(
                self,
                save_directory,
                safe_serialization=safe_serialization,
                variant=variant,
                max_shard_size=max_shard_size,
                **card_kwargs,
            )
            return
        from huggingface_hub import create_repo

        token = kwargs.pop("token", None)
        repo_id = kwargs.pop("repo_id", os.path.basename(os.path.normpath(os.fspath(save_directory))))
        repo_id = create_repo(repo_id, exist_ok=True, private=kwargs.pop("private", None), token=token).repo_id
        export_for_hub(
            self,
            save_directory,
            safe_serialization=safe_serialization,
            variant=variant,
            max_shard_size=max_shard_size,
            repo_id=repo_id,
            **card_kwargs,
        )
        return self._upload_folder(
            save_directory,
            repo_id,
            token=token,
            commit_message=kwargs.pop("commit_message", None),
            create_pr=kwargs.pop("create_pr", False),
        )

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: Optional[str] = None,
        private: Optional[bool] = None,
        token: Optional[str] = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        variant: Optional[str] = None,
        **card_kwargs,
    ) -> str:
        """Uploads the pipeline to the Hub as the folder [`export_for_hub`] writes (module files included, so the
        repository loads with `DiffusionPipeline.from_pretrained(repo_id, trust_remote_code=True)`)."""
        from huggingface_hub import create_repo

        repo_id = create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmpdir:
            export_for_hub(
                self, tmpdir, safe_serialization=safe_serialization, variant=variant, repo_id=repo_id, **card_kwargs
            )
            return self._upload_folder(
                tmpdir, repo_id, token=token, commit_message=commit_message, create_pr=create_pr
            )


# ---------------------------------------------------------------------- Hub export

_CARD_KWARGS = ("license", "base_model", "model_description", "tags")


def _is_library_module(library: str) -> bool:
    import diffusers.pipelines as diffusers_pipelines
    from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES

    return library in LOADABLE_CLASSES or hasattr(diffusers_pipelines, library)


def _model_card(pipeline, repo_id, license, base_model, model_description, tags) -> str:
    from huggingface_hub import ModelCardData

    card_tags = ["univigu", "text-to-video", "video-to-text", "video-captioning", "wan", "custom-pipeline"]
    card_tags += [tag for tag in (tags or []) if tag not in card_tags]
    data = ModelCardData(
        library_name="diffusers",
        pipeline_tag="text-to-video",
        tags=card_tags,
        license=license,
        base_model=base_model,
    )
    name = repo_id or "path/to/this/folder"
    convention = pipeline.config.latent_normalization
    description = model_description or (
        "A Uni-ViGU model: one Wan2.1-based diffusion transformer that generates video from text and captions video "
        "(discrete flow matching on text tokens), with a modality-routed feed-forward network per block."
    )
    return f"""---
{data.to_yaml()}
---

# Uni-ViGU ({type(pipeline.transformer).__name__})

{description}

The pipeline code ships with the weights (`pipeline_univigu.py`, `transformer/transformer_univigu.py`,
`text_scheduler/scheduling_discrete_flow.py`), so diffusers loads it without any other package:

```python
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import export_to_video

pipe = DiffusionPipeline.from_pretrained("{name}", trust_remote_code=True)

# text -> video
frames = pipe(prompt="a red circle moving left", num_frames=81, height=480, width=832).frames[0]
export_to_video(frames, "video.mp4", fps=16)

# video -> caption
print(pipe(video="video.mp4").text[0])

# text -> video + caption
out = pipe(prompt="a red circle moving left", task="t2vt")
```

- Tasks: `t2v` (prompt), `v2t` (video), `t2vt` (prompt + `generate_caption=True` or `task="t2vt"`).
- Latent convention: `{convention}` (`diffusers` = normalised with the VAE's latents_mean/latents_std as in
  WanPipeline; `raw` = the reference implementation's unnormalised latents).
- Components: {", ".join(f"`{k}` ({type(v).__name__})" for k, v in pipeline.components.items())}.
"""


def export_for_hub(
    pipeline: DiffusionPipeline,
    save_directory: Union[str, os.PathLike],
    safe_serialization: bool = True,
    variant: Optional[str] = None,
    max_shard_size: Optional[Union[int, str]] = None,
    repo_id: Optional[str] = None,
    license: Optional[str] = None,
    base_model: Optional[str] = None,
    model_description: Optional[str] = None,
    tags: Optional[List[str]] = None,
) -> str:
    """
    Writes `pipeline` to `save_directory` as a self-contained folder for the Hub:

    - the `save_pretrained` output (safetensors weights and configs);
    - the pipeline's module file at the root (`pipeline_univigu.py`) and, for each component whose class is not from
      diffusers/transformers (the transformer, the text scheduler), its module file inside the component's folder
      (`transformer/transformer_univigu.py`, `text_scheduler/scheduling_discrete_flow.py`);
    - `model_index.json` rewritten so that those entries name the module files (`"_class_name": ["pipeline_univigu",
      "UniViGUPipeline"]`, `"transformer": ["transformer_univigu", "UniViGUTransformer3DModel"]`, ...), which is how
      diffusers resolves custom code with `trust_remote_code=True`;
    - a model card `README.md` with YAML metadata (library_name: diffusers, pipeline_tag: text-to-video, tags).

    `DiffusionPipeline.from_pretrained(save_directory, trust_remote_code=True)` then loads it with no univigu
    installed. Returns `save_directory`.
    """
    save_directory = os.fspath(save_directory)
    os.makedirs(save_directory, exist_ok=True)
    DiffusionPipeline.save_pretrained(
        pipeline,
        save_directory,
        safe_serialization=safe_serialization,
        variant=variant,
        max_shard_size=max_shard_size,
    )
    index_path = os.path.join(save_directory, "model_index.json")
    with open(index_path, encoding="utf-8") as f:
        index = json.load(f)

    def copy_module(cls, folder) -> str:
        source = inspect.getsourcefile(cls)
        if source is None or not os.path.isfile(source):
            raise ValueError(f"Cannot find the source file of {cls.__name__} to export it.")
        target = os.path.join(folder, os.path.basename(source))
        if os.path.abspath(source) != os.path.abspath(target):
            shutil.copyfile(source, target)
        return os.path.splitext(os.path.basename(source))[0]

    pipeline_cls = type(pipeline)
    index["_class_name"] = [copy_module(pipeline_cls, save_directory), pipeline_cls.__name__]
    for name, component in pipeline.components.items():
        entry = index.get(name)
        if component is None or not isinstance(entry, list) or entry[0] is None or _is_library_module(entry[0]):
            continue
        folder = os.path.join(save_directory, name)
        os.makedirs(folder, exist_ok=True)
        index[name] = [copy_module(type(component), folder), type(component).__name__]
    with open(index_path, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")

    with open(os.path.join(save_directory, "README.md"), "w", encoding="utf-8") as f:
        f.write(_model_card(pipeline, repo_id, license, base_model, model_description, tags))
    return save_directory


__all__ = ["UniViGUPipeline", "UniViGUPipelineOutput", "export_for_hub"]
