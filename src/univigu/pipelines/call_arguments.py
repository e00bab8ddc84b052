# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The arguments of `UniViGUPipeline.__call__`: the values each choice accepts, the defaults that apply to an argument
left at `None` (built-in, or stored with a checkpoint as `call_defaults`), the task they ask for (`resolve_task`),
and the checks that need no model, which `input_checks` applies: types and ranges of every number and tensor (a bool
is not an int; NaN and inf are refused), prompts, noise levels.

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

import copy
import math
from typing import Any

import numpy as np
import torch


TASKS = ("t2v", "v2t", "t2vt")
LATENT_NORMALIZATIONS = ("diffusers", "raw")
TEXT_UPDATES = ("scheduler", "reference")
VIDEO_LATENTS_MODES = ("sample", "argmax")
UNDERSTANDING_ATTENTIONS = ("full", "video_prefix")
OUTPUT_TYPES = ("np", "pt", "pil", "latent")
COMMIT_STRATEGIES = ("stochastic", "confidence")

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
#: The call defaults that a video to caption brings itself (`preprocess_video` resolves them from the video).
VIDEO_SAMPLING_DEFAULTS = ("height", "width", "num_frames", "fps")


def defaults_before_checks(task: str) -> tuple[str, ...]:
    """The arguments `__call__` fills from the call defaults before checking them: all but the frame rate, and when
    captioning (v2t) all but the video's size and frame count too, which `preprocess_video` resolves."""
    sampled = VIDEO_SAMPLING_DEFAULTS if task == "v2t" else ("fps",)
    return tuple(name for name in CALL_DEFAULT_KEYS if name not in sampled)


def frame_rule(temporal_factor: int) -> str:
    """How a frame count is stated: "of the form Tk+1 (...)", T the VAE's time compression, with the first counts:
    "of the form 4k+1 (1, 5, 9, 13, ...)" for Wan's VAE, "2k+1 (1, 3, 5, 7, ...)" for ShapesWorld's."""
    s = temporal_factor
    return f"of the form {s}k+1 ({', '.join(str(s * k + 1) for k in range(4))}, ...)"


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


def check_call_defaults(call_defaults: dict[str, Any] | None) -> dict[str, Any] | None:
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


def stored_call_default(call_defaults: dict[str, Any] | None, name: str, task: str) -> Any:
    """A checkpoint's own default for `name` in `task` (`call_defaults[task][name]`, else `call_defaults[name]`),
    or None when it stores none."""
    stored = call_defaults or {}
    per_task = stored.get(task) or {}
    if name in per_task:
        return per_task[name]
    return stored.get(name)


def merge_call_defaults(call_defaults: dict[str, Any] | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """`call_defaults` updated with `defaults` (keys `CALL_DEFAULT_KEYS`, or a task name holding a dict of them,
    merged into the task's), checked (`check_call_defaults`)."""
    merged = copy.deepcopy(dict(call_defaults or {}))
    for key, value in defaults.items():
        if key in TASKS:
            merged.setdefault(key, {}).update(value)
        else:
            merged[key] = value
    return check_call_defaults(merged)


def nearest_valid(value: int, multiple: int, offset: int = 0) -> list[int]:
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
    name: str, value: Any, minimum: int | None = 1, maximum: int | None = None, hint: str = ""
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


def check_real(name: str, value: Any, minimum: float | None = None, hint: str = "") -> None:
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


def resolve_task(task, prompt, prompt_embeds, video, video_latents, generate_caption) -> str:
    """The task the inputs ask for: `task` as given (checked against the inputs), else "t2v" for a prompt, "t2vt"
    for a prompt with `generate_caption=True`, "v2t" for a video."""
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



def check_prompt(name: str, prompt):
    """A prompt (or `conditioning_text`): a non-empty string, or a non-empty list of them."""
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



def check_sigmas(sigmas: Any) -> None:
    """Custom video noise levels: a list (or 1D array) of finite numbers in [0, 1], strictly decreasing."""
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
            if not is_real(v):
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


def callable_name(function: Any) -> str:
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    return name if isinstance(name, str) else type(function).__name__


__all__ = [
    "BUILTIN_CALL_DEFAULTS",
    "CALL_DEFAULT_KEYS",
    "COMMIT_STRATEGIES",
    "LATENT_NORMALIZATIONS",
    "MAX_SEQUENCE_LENGTH",
    "OUTPUT_TYPES",
    "TASKS",
    "TEXT_UPDATES",
    "UNDERSTANDING_ATTENTIONS",
    "VIDEO_LATENTS_MODES",
    "callable_name",
    "check_call_defaults",
    "check_prompt",
    "check_sigmas",
    "check_int",
    "check_real",
    "check_tensor",
    "defaults_before_checks",
    "frame_rule",
    "is_int",
    "is_real",
    "merge_call_defaults",
    "nearest_valid",
    "resolve_task",
    "stored_call_default",
]
