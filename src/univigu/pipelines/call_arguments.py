# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The arguments of `UniViGUPipeline.__call__`: the values each choice accepts, the defaults that apply to an argument
left at `None` (built-in, or stored with a checkpoint as `call_defaults`), and the type and range checks that
`check_inputs` applies to every number and tensor (a bool is not an int; NaN and inf are refused).

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

import math
from typing import Any, Dict, List, Optional

import numpy as np
import torch


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
    # The frame rate a video to caption is sampled at (v2t). None: unknown, the frames are spread over the video.
    "fps": None,
}
#: Arguments a checkpoint may store defaults for (`call_defaults` in model_index.json), globally or per task.
CALL_DEFAULT_KEYS = tuple(BUILTIN_CALL_DEFAULTS)


#: The stored defaults that are counts or sizes (whole numbers >= 1).
_COUNT_DEFAULTS = ("height", "width", "num_frames", "num_inference_steps", "max_text_length", "max_sequence_length")
_CHOICE_DEFAULTS = {"video_latents_mode": VIDEO_LATENTS_MODES, "understanding_attention": UNDERSTANDING_ATTENTIONS}


def _check_call_default_value(name: str, key: str, value: Any) -> None:
    """One stored default: counts are whole numbers >= 1, `guidance_scale` a finite number >= 0, `fps` a number > 0
    (or null), the modes one of their choices; `TypeError`/`ValueError` naming `name` otherwise."""
    if key in _COUNT_DEFAULTS:
        check_int(name, value, minimum=1)
    elif key == "guidance_scale":
        check_real(name, value, minimum=0.0)
    elif key == "fps" and value is not None:
        check_real(name, value)
        if value <= 0:
            raise ValueError(f"{name}={value} must be above 0 (frames per second), or null for unknown.")
    elif key in _CHOICE_DEFAULTS and value not in _CHOICE_DEFAULTS[key]:
        raise ValueError(f"{name}={value!r} is not one of {list(_CHOICE_DEFAULTS[key])}.")


def check_call_defaults(call_defaults: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """Validates a checkpoint's stored call defaults: unknown names are refused, not ignored, and each value must be
    of its argument's type and range (errors name the key, e.g. `call_defaults['v2t']['num_frames']`)."""
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
        if key in TASKS:
            for name, task_value in value.items():
                _check_call_default_value(f"call_defaults[{key!r}][{name!r}]", name, task_value)
        else:
            _check_call_default_value(f"call_defaults[{key!r}]", key, value)
    return dict(call_defaults)


def nearest_valid(value: int, multiple: int, offset: int = 0) -> List[int]:
    """The valid values (of the form `multiple * k + offset`, at least `max(offset, 1)`) just below and above."""
    lower = (value - offset) // multiple * multiple + offset
    candidates = [lower, lower + multiple]
    smallest = offset if offset >= 1 else multiple
    return sorted({c for c in candidates if c >= smallest}) or [smallest]


#: The largest `max_sequence_length` (umT5 tokens) `__call__` accepts. umT5's positions are relative, so neither its
#: tokenizer nor its encoder has a hard limit, but its attention bias grows with the square of the length (100000
#: tokens would ask for ~80 GB); a text encoder with absolute positions (`config.max_position_embeddings`) lowers it.
MAX_SEQUENCE_LENGTH = 4096


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_int(
    name: str, value: Any, minimum: Optional[int] = 1, maximum: Optional[int] = None, hint: str = ""
) -> None:
    """`value` is a Python/numpy integer (not a bool) in [minimum, maximum] (`None`: unbounded); `TypeError` /
    `ValueError` otherwise."""
    if not is_int(value):
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


def check_real(name: str, value: Any, minimum: Optional[float] = None, hint: str = "") -> None:
    """`value` is a finite real number (not a bool) >= minimum; `TypeError`/`ValueError` otherwise."""
    if not is_real(value):
        fix = "pass a number" + (" (e.g. `float(x)`)" if isinstance(value, torch.Tensor) else "")
        raise TypeError(f"`{name}` must be a real number, got {value!r} ({type(value).__name__}): {fix}{hint}.")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value} is not a finite number: pass a finite value{hint}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value} is below {minimum}: use a value >= {minimum}{hint}.")


def check_tensor(name: str, value: Any, ndim: int, layout: str, floating: bool = True) -> None:
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


def callable_name(function: Any) -> str:
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    return name if isinstance(name, str) else type(function).__name__


__all__ = [
    "BUILTIN_CALL_DEFAULTS",
    "CALL_DEFAULT_KEYS",
    "LATENT_NORMALIZATIONS",
    "MAX_SEQUENCE_LENGTH",
    "OUTPUT_TYPES",
    "TASKS",
    "TEXT_UPDATES",
    "UNDERSTANDING_ATTENTIONS",
    "VIDEO_LATENTS_MODES",
    "callable_name",
    "check_call_defaults",
    "check_int",
    "check_real",
    "check_tensor",
    "is_int",
    "is_real",
    "nearest_valid",
]
