# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The checks of the arguments of [`UniViGUPipeline.__call__`], in one place: once the task is resolved
(`call_arguments.resolve_task`), the rules below, run by `check_call_arguments` (which `pipe.check_inputs` calls)
before any model runs, in this order:

1. `REFUSED`: the arguments a task does not take;
2. `CHOICES`: the arguments that name one of a few options;
3. `NUMBERS` and `TOO_MANY`: counts and numbers (type, range, NaN/inf);
4. `ARGUMENT_CHECKS`: the arguments whose checks need more than a range (the video cache interval, the callback and
   its tensor names, sigmas, generators, text_ids);
5. `TASK_CHECKS`: per task, the inputs against each other and the model (`_check_captioning` for v2t,
   `_check_generation` for t2v/t2vt), which give the number of samples the call makes;
6. `_check_text_stream`: the text stream's tokens and model.

After them come `check_video` (a decoded video to caption, v2t) and `run_callback` (what a `callback_on_step_end`
returns, after each step). Each error is a `TypeError` (wrong type) or `ValueError` (bad value) that names the fix.

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

import inspect
from types import SimpleNamespace
from typing import Any
from collections.abc import Callable

import numpy as np
import torch

from diffusers.utils import logging

from .call_arguments import (
    COMMIT_STRATEGIES,
    MAX_SEQUENCE_LENGTH,
    OUTPUT_TYPES,
    TEXT_UPDATES,
    UNDERSTANDING_ATTENTIONS,
    VIDEO_LATENTS_MODES,
    callable_name,
    check_int,
    check_prompt,
    check_real,
    check_sigmas,
    check_tensor,
    defaults_before_checks,
    is_int,
    nearest_valid,
)
from .prompt_input import tokenize_prompts
from .video_input import CROP_MODES


logger = logging.get_logger(__name__)  # pylint: disable=invalid-name

GENERATION = ("t2v", "t2vt")
#: The settings a checkpoint is trained at, which a call may change (with a warning): the video's size and frame
#: count, and the caption's length (`max_text_length`, for the tasks that write one).
TRAINED_SETTINGS = ("height", "width", "num_frames", "max_text_length")
#: The most denoising steps and samples per prompt one call may ask for.
MAX_INFERENCE_STEPS = 10_000
MAX_VIDEOS_PER_PROMPT = 1_024
#: How a video to caption is sampled (`preprocess_video`).
VIDEO_SAMPLING = ("fps", "crop", "start", "duration")


# ---------------------------------------------------------------------------------------------- the rules

#: Arguments a task does not take: (the arguments, the tasks that refuse them, the message; `{task}` is the task,
#: `{given}` the refused arguments that were passed).
REFUSED = (
    (("video_cache_interval",), GENERATION,
     "`video_cache_interval` speeds up video -> text (task 'v2t'); drop it for t2v/t2vt."),
    (("sigmas",), ("v2t",),
     "`sigmas` sets the video noise levels of t2v/t2vt; v2t denoises only the text: drop `sigmas` and set "
     "num_inference_steps."),
    (("text_ids",), ("t2v",),
     "`text_ids` sets the starting caption tokens of v2t/t2vt; in t2v the text stream is the prompt's own tokens "
     "(pass `prompt`)."),
    (("prompt_embeds", "negative_prompt_embeds", "negative_prompt"), ("v2t",),
     "v2t has no guidance and takes its text condition as `conditioning_text`: drop `prompt_embeds`, "
     "`negative_prompt` and `negative_prompt_embeds`."),
    (("latents",), ("v2t",),
     "`latents` is the starting video noise of t2v/t2vt; to caption pre-encoded latents, pass them as "
     "`video_latents`."),
    (VIDEO_SAMPLING, GENERATION,
     "{given} sample a video to caption (task 'v2t'); task={task!r} generates one: drop them (the frame rate of a "
     "saved video is set when writing it, e.g. `export_to_video(..., fps=8)`)."),
    (("conditioning_text",), GENERATION,
     "`conditioning_text` is for task='v2t'; in {task!r} the condition is the prompt."),
)

#: Arguments that name one of a few options: (argument, the options, how the message names them). `None` passes
#: for the two that default to the model's own setting.
CHOICES = (
    ("output_type", OUTPUT_TYPES, f"one of {OUTPUT_TYPES}"),
    ("text_update", TEXT_UPDATES, f"one of {TEXT_UPDATES}"),
    ("video_latents_mode", VIDEO_LATENTS_MODES, f"one of {VIDEO_LATENTS_MODES}"),
    ("commit_strategy", (None, *COMMIT_STRATEGIES), "'stochastic' or 'confidence'"),
    ("understanding_attention", (None, *UNDERSTANDING_ATTENTIONS), f"one of {UNDERSTANDING_ATTENTIONS}"),
)


def _max_sequence_length_limit(pipe) -> int:
    return pipe.max_sequence_length_limit


#: Counts and numbers: (argument, check_int or check_real, its bounds and hint; a callable bound reads the pipeline).
#: A bool is not a number; NaN and inf are refused.
NUMBERS = (
    ("num_inference_steps", check_int, dict(minimum=1)),
    ("guidance_scale", check_real, dict(
        minimum=0.0, hint=" (values > 1 guide the video, e.g. 5.0; 1.0 or less turns guidance off)")),
    ("num_videos_per_prompt", check_int, dict(minimum=1)),
    ("temperature", check_real, dict(minimum=0.0, hint=" (0 = argmax, 1 = the model's own distribution)")),
    ("max_text_length", check_int, dict(minimum=1)),
    ("max_sequence_length", check_int, dict(
        minimum=1, maximum=_max_sequence_length_limit,
        hint=" (umT5 tokens the prompt is padded/truncated to; Wan uses 512)")),
)

#: Upper bounds found by benchmarks/probe_bad_inputs.py (10**9 steps built a 10**9-entry schedule for minutes, 10**9
#: videos per prompt failed allocating terabytes): (argument, the most a call may ask for, what to do instead).
TOO_MANY = (
    ("num_inference_steps", MAX_INFERENCE_STEPS, "Wan's sampler uses 50; more than a few hundred changes little"),
    ("num_videos_per_prompt", MAX_VIDEOS_PER_PROMPT, "for more, call the pipeline again with other generators"),
)


def check_call_arguments(pipe, task: str, arguments: dict[str, Any]) -> int | None:
    """Checks the arguments of one `__call__` (`arguments`, by name; those not given take `__call__`'s defaults and,
    left at `None`, the call defaults `__call__` fills in before checking) for type (a bool is not an int), range,
    NaN/inf, agreement with each other and with the model (the transformer's RoPE tables, channels, text_dim and
    vocabulary), and raises a `TypeError` / `ValueError` that names the fix. Returns the number of samples the call
    makes, or `None` when it depends on a `video` not yet decoded (`check_video` checks the rest after decoding)."""
    a = _call_arguments(pipe, task, arguments)
    for names, tasks, message in REFUSED:
        given = [name for name in names if getattr(a, name) is not None]
        if task in tasks and given:
            raise ValueError(message.format(task=task, given="/".join(given)))
    for name, options, use in CHOICES:
        value = getattr(a, name)
        if value not in options:
            raise ValueError(f"{name}={value!r} is not supported: use {use}.")
    for name, check, bounds in NUMBERS:
        check(name, getattr(a, name), **{k: v(pipe) if callable(v) else v for k, v in bounds.items()})
    for name, most, instead in TOO_MANY:
        if getattr(a, name) > most:
            raise ValueError(f"{name}={getattr(a, name)} is too many: use at most {most:,} ({instead}).")
    for name, check in ARGUMENT_CHECKS:
        if getattr(a, name) is not None:
            check(pipe, a)
    total = TASK_CHECKS[task](pipe, a)
    _check_text_stream(pipe, a, total)
    return total


def _call_arguments(pipe, task: str, given: dict[str, Any]) -> SimpleNamespace:
    parameters = inspect.signature(type(pipe).__call__).parameters
    unknown = sorted(set(given) - set(parameters) - {"task"})
    if unknown:
        raise TypeError(f"check_inputs() got arguments that `__call__` does not take: {unknown}.")
    values = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    values.update(given, task=task)
    text_ids = values["text_ids"]
    if values["max_text_length"] is None and isinstance(text_ids, torch.Tensor) and text_ids.ndim == 2:
        values["max_text_length"] = text_ids.shape[1]  # as `__call__` sets it
    for name in defaults_before_checks(task):
        values[name] = pipe.call_default(name, task, values[name])
    return SimpleNamespace(**values)


# ---------------------------------------------------------------------------------------------- one argument


def _check_video_cache_interval(pipe, a):
    value = a.video_cache_interval
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"video_cache_interval must be a positive integer (1 = refresh every step, i.e. exact; "
            f">= num_inference_steps = never refresh), got {value!r}."
        )


def _check_callback(pipe, a):
    callback = a.callback_on_step_end
    if not callable(callback):
        raise TypeError(
            f"`callback_on_step_end` must be callable as `callback(pipe, step, timestep, callback_kwargs)` (a "
            f"function or a diffusers PipelineCallback), got {type(callback).__name__}."
        )


def _check_callback_inputs(pipe, a):
    inputs = a.callback_on_step_end_tensor_inputs
    if not isinstance(inputs, (list, tuple)) or not all(isinstance(k, str) for k in inputs):
        raise TypeError(
            f"`callback_on_step_end_tensor_inputs` must be a list of names from {pipe._callback_tensor_inputs}, "
            f"got {inputs!r}."
        )
    bad = [k for k in inputs if k not in pipe._callback_tensor_inputs]
    if bad:
        raise ValueError(
            f"`callback_on_step_end_tensor_inputs` has to be in {pipe._callback_tensor_inputs}, but found "
            f"{bad}: drop them."
        )


def _check_sigmas(pipe, a):
    check_sigmas(a.sigmas)
    if "sigmas" not in inspect.signature(pipe.scheduler.set_timesteps).parameters:
        raise ValueError(
            f"The video scheduler {type(pipe.scheduler).__name__} does not take custom `sigmas`: leave `sigmas` "
            "None and set num_inference_steps, or use a FlowMatchEulerDiscreteScheduler."
        )


def _check_generator(pipe, a):
    generator = a.generator
    generators = generator if isinstance(generator, list) else [generator]
    if not generators or not all(isinstance(g, torch.Generator) for g in generators):
        got = type(generator).__name__ if not isinstance(generator, list) else "a list holding " + ", ".join(
            sorted({type(g).__name__ for g in generators}) or ["nothing"]
        )
        seed = f"({generator})" if is_int(generator) else "(0)"
        raise TypeError(
            f"`generator` must be a torch.Generator or a list of them (one per sample), got {got}: pass e.g. "
            f"`torch.Generator().manual_seed{seed}`."
        )
    device = pipe._execution_device
    for g in generators:
        if g.device.type not in ("cpu", torch.device(device).type):
            raise ValueError(
                f"`generator` is on {g.device} but the pipeline runs on {device}: create it on the CPU "
                f"(`torch.Generator()`) or on {device} (`torch.Generator('{torch.device(device).type}')`)."
            )


def _check_text_ids(pipe, a):
    text_ids = a.text_ids
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
    max_len = getattr(pipe.transformer.config, "text_rope_max_seq_len", None)
    if max_len is not None and text_ids.shape[1] > max_len:
        raise ValueError(
            f"`text_ids` has {text_ids.shape[1]} tokens per row, more than the transformer's text stream holds "
            f"(text_rope_max_seq_len={max_len}): pass at most {max_len} tokens per row."
        )
    limit = getattr(pipe.transformer, "num_text_embeddings", None) or pipe._text_vocab_size()
    low, high = int(text_ids.min()), int(text_ids.max())
    if low < 0 or high >= limit:
        raise ValueError(
            f"`text_ids` holds ids in [{low}, {high}], outside the transformer's text vocabulary [0, {limit}): "
            f"pass token ids of `pipe.tokenizer` (vocab size {pipe._text_vocab_size()})."
        )


#: The arguments whose checks need more than a range, each run when the argument is given (not `None`).
ARGUMENT_CHECKS: tuple[tuple[str, Callable], ...] = (
    ("video_cache_interval", _check_video_cache_interval),
    ("callback_on_step_end", _check_callback),
    ("callback_on_step_end_tensor_inputs", _check_callback_inputs),
    ("sigmas", _check_sigmas),
    ("generator", _check_generator),
    ("text_ids", _check_text_ids),
)


# ---------------------------------------------------------------------------------------------- per task


def _check_captioning(pipe, a) -> int | None:
    """v2t: how the video is sampled, or the pre-encoded `video_latents` (which fix the number of samples), and the
    text condition of the captions."""
    check_prompt("conditioning_text", a.conditioning_text)
    _check_video_sampling(a.fps, a.crop, a.start, a.duration)
    if a.video_latents is None:
        if a.num_frames is not None:
            check_num_frames(pipe, a.num_frames)
        if a.height is not None or a.width is not None:
            if a.height is None or a.width is None:
                raise ValueError("Pass both `height` and `width` (or neither, to keep the video's size).")
            check_size(pipe, a.height, a.width)
        return None  # `check_video` checks the rest once the video is decoded
    if a.height is not None or a.width is not None or a.num_frames is not None:
        raise ValueError(
            "`video_latents` already fix the video's size: drop height/width/num_frames (they resample a `video`)."
        )
    sampling = [name for name in VIDEO_SAMPLING if getattr(a, name) is not None]
    if sampling:
        raise ValueError(f"`video_latents` are an encoded video: drop {'/'.join(sampling)} (they sample a `video`).")
    _check_video_latents(pipe, a.video_latents)
    t, h, w = a.video_latents.shape[2:]
    warn_untrained(
        pipe, "v2t", num_frames=(t - 1) * pipe.vae_scale_factor_temporal + 1,
        height=h * pipe.vae_scale_factor_spatial, width=w * pipe.vae_scale_factor_spatial,
    )
    _check_conditioning_count(a.conditioning_text, a.video_latents.shape[0])
    total = a.video_latents.shape[0] * a.num_videos_per_prompt
    _check_batch(total, "videos", a.generator, a.text_ids)
    return total


def _check_generation(pipe, a) -> int:
    """t2v, t2vt: the prompt (or its embeddings), the video's size and starting noise; the samples it makes."""
    check_prompt("prompt", a.prompt)
    check_prompt("negative_prompt", a.negative_prompt)
    if a.prompt is not None and a.prompt_embeds is not None:
        raise ValueError("Pass either `prompt` or `prompt_embeds`, not both.")
    if a.negative_prompt is not None and a.negative_prompt_embeds is not None:
        raise ValueError("Pass either `negative_prompt` or `negative_prompt_embeds`, not both.")
    if a.task == "t2v" and a.text_stream and a.prompt is None and a.prompt_text_ids is None:
        raise ValueError(
            "text_stream=True puts the prompt's own tokens in the text stream, so it needs `prompt` or, with "
            "`prompt_embeds`, `prompt_text_ids` (`encode_prompt` returns both): pass them, or text_stream=False."
        )
    check_num_frames(pipe, a.num_frames)
    check_size(pipe, a.height, a.width)
    warn_untrained(pipe, a.task, height=a.height, width=a.width, num_frames=a.num_frames)
    n = a.num_videos_per_prompt
    if a.prompt_embeds is not None:
        _check_embeds(pipe, "prompt_embeds", a.prompt_embeds)
        if n != 1:
            raise ValueError(
                f"`prompt_embeds` are used as given (one row per video), so num_videos_per_prompt={n} does "
                f"not apply to them: repeat them yourself (`prompt_embeds.repeat_interleave({n}, dim=0)`, the "
                "same for negative_prompt_embeds) and pass num_videos_per_prompt=1."
            )
        batch = a.prompt_embeds.shape[0]
    else:
        batch = 1 if isinstance(a.prompt, str) else len(a.prompt)
    total = batch * n
    if isinstance(a.negative_prompt, list) and len(a.negative_prompt) != batch:
        raise ValueError(
            f"`negative_prompt` has batch size {len(a.negative_prompt)}, but `prompt` has batch size {batch}: "
            "pass one negative prompt per prompt (or a single string)."
        )
    if a.negative_prompt_embeds is not None:
        _check_embeds(
            pipe, "negative_prompt_embeds", a.negative_prompt_embeds, total,
            " (one row per video: prompts x num_videos_per_prompt)",
        )
    if a.latents is not None:
        _check_latents(pipe, a, total)
    _check_batch(total, "prompts", a.generator, a.text_ids)
    if a.task == "t2v" and a.text_stream and a.prompt is not None:
        _check_prompt_stream(pipe, a.prompt, a.max_sequence_length)
    return total


TASK_CHECKS = {"v2t": _check_captioning, "t2v": _check_generation, "t2vt": _check_generation}


def _check_text_stream(pipe, a, total: int | None):
    """The text stream: the prompt's tokens of t2v (`prompt_text_ids`), the caption's starting tokens and length,
    and a model that can write a caption."""
    if a.prompt_text_ids is not None or a.prompt_text_mask is not None:
        _check_prompt_text_ids(pipe, a, total)
    if a.text_ids is not None and a.text_ids.shape[1] != a.max_text_length:
        raise ValueError(
            f"`text_ids` has {a.text_ids.shape[1]} tokens per row but max_text_length={a.max_text_length}: drop "
            "max_text_length (text_ids set the caption length) or pass text_ids of that length."
        )
    if a.task != "t2v" or a.text_stream:
        _check_text_model(pipe, a.task, a.max_text_length)
    if a.task != "t2v":
        warn_untrained(pipe, a.task, max_text_length=a.max_text_length)


# ---------------------------------------------------------------------------------------------- the parts


def video_rope_length(transformer) -> int | None:
    """Positions per axis (latent frames, height, width after patching) of the transformer's video RoPE table."""
    table = getattr(getattr(transformer, "rope", None), "freqs_cos", None)
    if isinstance(table, torch.Tensor) and table.ndim == 2:
        return int(table.shape[0])
    value = getattr(transformer.config, "rope_max_seq_len", None)
    return int(value) if value is not None else None


def video_size_limits(transformer, temporal_factor: int, spatial_factor: int) -> dict[str, int | None]:
    """The largest `num_frames`, `height` and `width` whose patch grid fits the transformer's video RoPE table
    (`UniViGUPipeline.max_video_size`), for a VAE with these time and space factors; `None`: no limit."""
    limit = video_rope_length(transformer)
    if limit is None:
        return {"num_frames": None, "height": None, "width": None}
    p_t, p_h, p_w = transformer.config.patch_size
    return {
        "num_frames": (limit * p_t - 1) * temporal_factor + 1,
        "height": limit * p_h * spatial_factor,
        "width": limit * p_w * spatial_factor,
    }


def sequence_length_limit(text_encoder) -> int:
    """The largest `max_sequence_length` a call accepts: `MAX_SEQUENCE_LENGTH`, or the text encoder's
    `max_position_embeddings` when it has absolute positions and fewer of them."""
    limit = MAX_SEQUENCE_LENGTH
    config = getattr(text_encoder, "config", None)
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if is_int(value) and 0 < value < limit:
            limit = int(value)
    return limit


def _rope_note(pipe) -> str:
    return (
        f"what the transformer's video RoPE table holds ({video_rope_length(pipe.transformer)} positions per axis "
        "after patching: transformer.config.rope_max_seq_len)"
    )


def check_num_frames(pipe, num_frames: int, hint: str = ""):
    s = pipe.vae_scale_factor_temporal
    check_int("num_frames", num_frames, minimum=None)
    if num_frames < 1 or (num_frames - 1) % s != 0:
        options = nearest_valid(int(num_frames), s, 1)
        raise ValueError(
            f"num_frames={num_frames} is not {pipe.frame_rule} (the VAE compresses time {s}x and keeps the first "
            f"frame): use {' or '.join(map(str, options))}."
        )
    largest = pipe.max_video_size["num_frames"]
    if largest is not None and num_frames > largest:
        raise ValueError(
            f"num_frames={num_frames} is more than {_rope_note(pipe)}: use num_frames={largest} or fewer{hint}."
        )


def check_size(pipe, height: int, width: int, hint: str = ""):
    m = pipe.spatial_multiple
    for name, value in (("height", height), ("width", width)):
        check_int(name, value, minimum=None)
        if value < m or value % m != 0:
            options = nearest_valid(int(value), m)
            raise ValueError(
                f"{name}={value} is not a positive multiple of {m} (VAE spatial factor "
                f"{pipe.vae_scale_factor_spatial} x patch size {m // pipe.vae_scale_factor_spatial}): use "
                f"{' or '.join(map(str, options))}."
            )
        largest = pipe.max_video_size[name]
        if largest is not None and value > largest:
            raise ValueError(f"{name}={value} is more than {_rope_note(pipe)}: use {name}={largest} or less{hint}.")


def warn_untrained(pipe, task: str, **settings):
    """Warns (once per pipeline and setting) when a call's video size, frame count or caption length differs
    from what the checkpoint was trained on (its stored `call_defaults`); the call runs as asked. Settings the
    checkpoint stores nothing for are not checked."""
    trained = {name: pipe.stored_call_default(name, task) for name in TRAINED_SETTINGS}
    warned = pipe.__dict__.setdefault("_untrained_warned", set())
    new = [
        (name, value) for name, value in settings.items()
        if value is not None and trained.get(name) is not None and value != trained[name]
        and (name, value) not in warned
    ]
    if not new:
        return
    warned.update(new)
    given = ", ".join(f"{name}={value}" for name, value in new)
    known = ", ".join(f"{name}={trained[name]}" for name in TRAINED_SETTINGS if trained[name] is not None)
    logger.warning(
        f"{given}: this checkpoint was trained with {known} (its call_defaults for task {task!r}); other values "
        "run, but expect worse results. Leave them unset to use the trained ones."
    )


def _check_text_model(pipe, task: str, max_text_length: int):
    if getattr(pipe, "text_scheduler", None) is None:
        if task != "t2v":
            raise ValueError(
                f"task={task!r} writes a caption, which needs a text scheduler, and this pipeline has none "
                "(text_scheduler=None): load or build it with one (e.g. `DiscreteFlowScheduler(vocab_size="
                "transformer.config.vocab_size)`), or generate video only (task='t2v')."
            )
        return  # t2v: the text stream holds the prompt's clean tokens; nothing samples them
    vocab = pipe._text_vocab_size()
    model_vocab = getattr(pipe.transformer.config, "vocab_size", None)
    if model_vocab is not None and int(model_vocab) != vocab:
        raise ValueError(
            f"text_scheduler.config.vocab_size={vocab} but transformer.config.vocab_size={model_vocab}: build the "
            "text scheduler with the transformer's vocab_size."
        )
    if getattr(pipe.text_scheduler.config, "source", "uniform") == "mask" and getattr(
        pipe.transformer, "mask_token_id", None
    ) is None:
        raise ValueError(
            "text_scheduler uses the [MASK] source but the transformer has no mask token (text_mask_token=False): "
            "use a uniform-source scheduler or a transformer with text_mask_token=True."
        )
    max_len = getattr(pipe.transformer.config, "text_rope_max_seq_len", None)
    if task != "t2v" and (max_text_length < 1 or (max_len is not None and max_text_length > max_len)):
        raise ValueError(
            f"max_text_length={max_text_length} must be between 1 and the transformer's text_rope_max_seq_len "
            f"({max_len}): use max_text_length={max_len} or less."
        )


def _check_batch(total: int, what: str, generator, text_ids):
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


def _check_embeds(pipe, name: str, embeds: torch.Tensor, rows: int | None = None, rows_why: str = ""):
    check_tensor(name, embeds, 3, "(batch, sequence, text_dim)")
    text_dim = pipe.transformer.config.text_dim
    if embeds.shape[-1] != text_dim:
        raise ValueError(
            f"`{name}` has hidden size {embeds.shape[-1]}, but the transformer's cross-attention takes "
            f"text_dim={text_dim}: encode the text with this pipeline's text encoder (`pipe.encode_prompt`)."
        )
    if rows is not None and embeds.shape[0] != rows:
        raise ValueError(f"`{name}` has batch size {embeds.shape[0]}, expected {rows}{rows_why}.")


def _check_latents(pipe, a, total: int):
    check_tensor("latents", a.latents, 5, "(batch, channels, latent frames, latent height, latent width)")
    expected = (
        total,
        pipe.transformer.config.in_channels,
        (a.num_frames - 1) // pipe.vae_scale_factor_temporal + 1,
        a.height // pipe.vae_scale_factor_spatial,
        a.width // pipe.vae_scale_factor_spatial,
    )
    if tuple(a.latents.shape) != expected:
        raise ValueError(
            f"`latents` have shape {tuple(a.latents.shape)}, but {total} video(s) of num_frames={a.num_frames}, "
            f"height={a.height}, width={a.width} need {expected}: pass latents of that shape, or the "
            "height/width/num_frames they were made for."
        )


def _check_video_latents(pipe, video_latents: torch.Tensor):
    check_tensor("video_latents", video_latents, 5, "(batch, channels, frames, height, width) latents")
    channels = pipe.transformer.config.in_channels
    if video_latents.shape[1] != channels:
        raise ValueError(
            f"`video_latents` have {video_latents.shape[1]} channels, the transformer expects in_channels="
            f"{channels}: encode the video with this pipeline's VAE (`pipe.encode_video(pipe.preprocess_video(video))`)."
        )
    limit = video_rope_length(pipe.transformer)
    for axis, size, patch in zip(("frames", "height", "width"), video_latents.shape[2:], pipe.transformer.config.patch_size):
        if size % patch:
            raise ValueError(
                f"`video_latents` have {size} latent {axis}, not divisible by the patch size {patch}: encode a "
                f"video whose latent {axis} is a multiple of {patch}."
            )
        if limit is not None and size // patch > limit:
            raise ValueError(
                f"`video_latents` have {size} latent {axis}, at most {limit * patch} fit {_rope_note(pipe)}: "
                f"encode a shorter or smaller video (num_frames <= {pipe.max_video_size['num_frames']}, height "
                f"and width <= {pipe.max_video_size['height']})."
            )


def _check_video_sampling(fps, crop, start, duration):
    """v2t: how a video is sampled (`preprocess_video`): a frame rate > 0, a crop mode, a window in seconds."""
    if fps is not None:
        check_real("fps", fps, hint=" (frames per second to sample the video at, e.g. 8)")
        if fps <= 0:
            raise ValueError(f"fps={fps} is not a frame rate: pass a number > 0 (frames per second, e.g. 8).")
    if crop is not None and crop not in CROP_MODES:
        raise ValueError(
            f"crop={crop!r} is not supported: use 'center' (resize to cover, crop the centre) or 'pad' (resize to "
            "fit, pad with black)."
        )
    if start is not None:
        check_real("start", start, 0.0, hint=" (seconds from the video's beginning)")
    if duration is not None:
        check_real("duration", duration, hint=" (seconds of video to sample from)")
        if duration <= 0:
            raise ValueError(f"duration={duration} is not a length of video: pass a number of seconds > 0.")


def _check_conditioning_count(conditioning_text, num_videos: int):
    if isinstance(conditioning_text, list) and len(conditioning_text) not in (1, num_videos):
        raise ValueError(
            f"Got {len(conditioning_text)} conditioning texts for {num_videos} videos: pass one per video (or one "
            "string)."
        )


def _check_prompt_stream(pipe, prompt, max_sequence_length: int):
    """t2v with `text_stream=True`: the prompt's own tokens must fit the text stream (length, vocabulary)."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    tokens = tokenize_prompts(pipe.tokenizer, prompts, max_sequence_length)
    length = max(int(tokens.attention_mask.sum(dim=1).max()), 1)
    max_len = getattr(pipe.transformer.config, "text_rope_max_seq_len", None)
    if max_len is not None and length > max_len:
        raise ValueError(
            f"The prompt is {length} tokens long, more than the transformer's text stream holds "
            f"(text_rope_max_seq_len={max_len}): shorten it, pass max_sequence_length={max_len} (which truncates "
            "it), or text_stream=False."
        )
    check_ids_fit(pipe, tokens.input_ids[:, :length])


def _check_prompt_text_ids(pipe, a, total: int | None):
    """t2v with the text stream and `prompt_embeds`: the prompt's tokens and mask `encode_prompt` returned."""
    ids, mask = a.prompt_text_ids, a.prompt_text_mask
    if a.task != "t2v" or not a.text_stream:
        raise ValueError(
            "`prompt_text_ids` / `prompt_text_mask` are the prompt's tokens in the text stream of t2v with "
            f"text_stream=True; this call is task={a.task!r}, text_stream={a.text_stream}: drop them."
        )
    if ids is None:
        raise ValueError("`prompt_text_mask` needs `prompt_text_ids`: pass both (as `encode_prompt` returns them).")
    if a.prompt is not None:
        raise ValueError(
            "Pass either `prompt` or `prompt_text_ids` (the prompt's tokens, which `prompt` gives), not both."
        )
    name = "prompt_text_ids"
    if not isinstance(ids, torch.Tensor) or ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        got = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise TypeError(
            f"`{name}` must be an integer tensor of token ids (batch, length), got {got}: pass the ids "
            "`pipe.encode_prompt` returns."
        )
    if ids.ndim != 2 or ids.numel() == 0:
        raise ValueError(f"`{name}` must have shape (batch, length) with length >= 1, got {tuple(ids.shape)}.")
    if ids.shape[0] != total:
        raise ValueError(
            f"`{name}` has batch size {ids.shape[0]}, but the call makes {total} videos: pass one row "
            "per row of `prompt_embeds`."
        )
    max_len = getattr(pipe.transformer.config, "text_rope_max_seq_len", None)
    if max_len is not None and ids.shape[1] > max_len:
        raise ValueError(
            f"`{name}` has {ids.shape[1]} tokens per row, more than the transformer's text stream holds "
            f"(text_rope_max_seq_len={max_len}): encode the prompt with max_sequence_length={max_len}."
        )
    check_ids_fit(pipe, ids, name=f"`{name}`")
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.shape != ids.shape:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else None
        raise ValueError(
            f"`prompt_text_mask` must be a tensor of the shape of `prompt_text_ids` "
            f"{tuple(ids.shape)}, got {shape or type(mask).__name__}."
        )
    if mask.is_floating_point() or mask.is_complex() or (
        mask.numel() and not bool(((mask == 0) | (mask == 1)).all())
    ):
        raise ValueError("`prompt_text_mask` must hold booleans (True = token, False = padding), or 0/1 integers.")
    if not bool(mask.bool().any(dim=1).all()):
        raise ValueError("`prompt_text_mask` has a row without any token: every prompt needs at least one.")


def check_ids_fit(pipe, ids: torch.LongTensor, name: str = "the prompt's tokens"):
    """Token ids that enter the transformer's text stream are rows of its text embedding."""
    limit = getattr(pipe.transformer, "num_text_embeddings", None) or pipe._text_vocab_size()
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= limit):
        raise ValueError(
            f"{name} contain ids outside the transformer's text vocabulary [0, {limit}): the tokenizer does not "
            "match the transformer (build the transformer with vocab_size=len(tokenizer))."
        )


# ---------------------------------------------------------------------------------------------- after decoding


def check_video(pipe, video: torch.Tensor, num_videos_per_prompt: int, generator, text_ids, conditioning_text):
    """v2t, after `preprocess_video` and before the VAE: the decoded video fits the transformer's RoPE tables
    (its own frame count and size are the defaults), and the per-sample inputs match the number of videos."""
    _, _, frames, height, width = video.shape
    sizes = pipe.max_video_size
    if sizes["num_frames"] is not None and frames > sizes["num_frames"]:
        raise ValueError(
            f"The video gives num_frames={frames}, more than {_rope_note(pipe)}: pass "
            f"num_frames={sizes['num_frames']} or fewer (frames are sampled evenly)."
        )
    if (sizes["height"] is not None and height > sizes["height"]) or (
        sizes["width"] is not None and width > sizes["width"]
    ):
        raise ValueError(
            f"The video is {height}x{width} (height x width), more than {_rope_note(pipe)}: pass height and "
            f"width of at most {sizes['height']} x {sizes['width']} (frames are resized)."
        )
    _check_conditioning_count(conditioning_text, video.shape[0])
    _check_batch(video.shape[0] * num_videos_per_prompt, "videos", generator, text_ids)
    warn_untrained(pipe, "v2t", height=height, width=width, num_frames=frames)


# ---------------------------------------------------------------------------------------------- after each step


def run_callback(pipe, callback, step: int, timestep, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Calls `callback_on_step_end` and checks what it returns: a dict (or None) whose keys are among the tensors
    it was given, each a tensor of the shape, dtype and device of the one it replaces."""
    given = dict(callback_kwargs)  # the callback may edit callback_kwargs in place and return it
    outputs = callback(pipe, step, timestep, callback_kwargs)
    name = f"`callback_on_step_end` ({callable_name(callback)})"
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
                f"{pipe._callback_tensor_inputs}); otherwise drop it."
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
            limit = getattr(pipe.transformer, "num_text_embeddings", None) or pipe._text_vocab_size()
            if value.numel() and (int(value.min()) < 0 or int(value.max()) >= limit):
                raise ValueError(
                    f"{name} returned 'text_ids' with ids outside the text vocabulary [0, {limit}) at step {step}: "
                    "return token ids of `pipe.tokenizer`."
                )
        elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} returned {key!r} with NaN or inf values at step {step}: return finite values.")
    return outputs


__all__ = [
    "ARGUMENT_CHECKS",
    "CHOICES",
    "NUMBERS",
    "REFUSED",
    "TASK_CHECKS",
    "TOO_MANY",
    "check_call_arguments",
    "check_ids_fit",
    "check_num_frames",
    "check_size",
    "check_video",
    "run_callback",
    "sequence_length_limit",
    "video_rope_length",
    "video_size_limits",
    "warn_untrained",
]
