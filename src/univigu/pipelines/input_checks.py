# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The arguments of [`UniViGUPipeline.__call__`]: the defaults of those left at `None` (`call_default`,
`set_call_defaults`), the task they ask for (`_resolve_task`), and their checks: `check_inputs` (every argument,
before any model runs), `check_video` (a decoded video), and the checks of what a `callback_on_step_end` returns.
Each error is a `TypeError` (wrong type) or `ValueError` (bad value) that names the fix.

The checks are methods of `UniViGUInputChecksMixin`, which `UniViGUPipeline` inherits: they read the pipeline's
components (`self.transformer`, `self.text_scheduler`, `self.tokenizer`) and VAE scale factors.

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

import copy
import inspect
import math
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch

from diffusers.utils import logging

from .call_arguments import (
    BUILTIN_CALL_DEFAULTS,
    MAX_SEQUENCE_LENGTH,
    OUTPUT_TYPES,
    TASKS,
    TEXT_UPDATES,
    UNDERSTANDING_ATTENTIONS,
    VIDEO_LATENTS_MODES,
    callable_name,
    check_call_defaults,
    check_int,
    check_real,
    check_tensor,
    is_int,
    is_real,
    nearest_valid,
)
from .video_input import CROP_MODES


logger = logging.get_logger(__name__)  # pylint: disable=invalid-name

#: The settings a checkpoint is trained at, which a call may change (with a warning): the video's size and frame
#: count, and the caption's length (`max_text_length`, for the tasks that write one).
TRAINED_SETTINGS = ("height", "width", "num_frames", "max_text_length")
#: The most denoising steps and samples per prompt one call may ask for.
MAX_INFERENCE_STEPS = 10_000
MAX_VIDEOS_PER_PROMPT = 1_024


class UniViGUInputChecksMixin:
    """The defaults and checks of the arguments of [`UniViGUPipeline.__call__`] (see the module docstring)."""

    def call_default(self, name: str, task: str):
        """The value `__call__` uses for `name` when the caller leaves it at `None`: the checkpoint's own default for
        `task` (`call_defaults[task][name]`), else its global one (`call_defaults[name]`), else
        `BUILTIN_CALL_DEFAULTS` (WanPipeline's / the reference's)."""
        value = self.stored_call_default(name, task)
        return BUILTIN_CALL_DEFAULTS[name] if value is None else value

    def stored_call_default(self, name: str, task: str):
        """The checkpoint's own default for `name` in `task` (`call_defaults[task][name]`, else
        `call_defaults[name]`), or None when it stores none. For the video size, frame count, frame rate and caption
        length, it is what the checkpoint was trained on."""
        stored = getattr(self.config, "call_defaults", None) or {}
        per_task = stored.get(task) or {}
        if name in per_task:
            return per_task[name]
        return stored.get(name)

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

    def _or_call_default(self, name: str, value: Any, task: str) -> Any:
        return self.call_default(name, task) if value is None else value

    def _text_vocab_size(self) -> int:
        """Real text tokens: the text scheduler's `vocab_size` (the transformer's for a pipeline without one)."""
        text_scheduler = getattr(self, "text_scheduler", None)
        if text_scheduler is None:
            return int(self.transformer.config.vocab_size)
        return int(text_scheduler.config.vocab_size)

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
            if is_int(value) and 0 < value < limit:
                limit = int(value)
        return limit

    def _rope_note(self) -> str:
        return (
            f"what the transformer's video RoPE table holds ({self._video_rope_length()} positions per axis after "
            "patching: transformer.config.rope_max_seq_len)"
        )

    @property
    def frame_rule(self) -> str:
        """How `num_frames` is stated in every message: "of the form Tk+1", T the VAE's time compression, with the
        first counts: "of the form 4k+1 (1, 5, 9, 13, ...)" for Wan's VAE, "2k+1 (1, 3, 5, 7, ...)" for ShapesWorld's."""
        s = self.vae_scale_factor_temporal
        return f"of the form {s}k+1 ({', '.join(str(s * k + 1) for k in range(4))}, ...)"

    def _check_num_frames(self, num_frames: int, hint: str = ""):
        s = self.vae_scale_factor_temporal
        check_int("num_frames", num_frames, minimum=None)
        if num_frames < 1 or (num_frames - 1) % s != 0:
            options = nearest_valid(int(num_frames), s, 1)
            raise ValueError(
                f"num_frames={num_frames} is not {self.frame_rule} (the VAE compresses time {s}x and keeps the first "
                f"frame): use {' or '.join(map(str, options))}."
            )
        largest = self.max_video_size["num_frames"]
        if largest is not None and num_frames > largest:
            raise ValueError(
                f"num_frames={num_frames} is more than {self._rope_note()}: use num_frames={largest} or fewer{hint}."
            )

    def warn_untrained(self, task: str, **settings):
        """Warns (once per pipeline and setting) when a call's video size, frame count or caption length differs
        from what the checkpoint was trained on (its stored `call_defaults`); the call runs as asked. Settings the
        checkpoint stores nothing for are not checked."""
        trained = {name: self.stored_call_default(name, task) for name in TRAINED_SETTINGS}
        warned = self.__dict__.setdefault("_untrained_warned", set())
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

    def _check_size(self, height: int, width: int, hint: str = ""):
        m = self.spatial_multiple
        for name, value in (("height", height), ("width", width)):
            check_int(name, value, minimum=None)
            if value < m or value % m != 0:
                options = nearest_valid(int(value), m)
                raise ValueError(
                    f"{name}={value} is not a positive multiple of {m} (VAE spatial factor "
                    f"{self.vae_scale_factor_spatial} x patch size {m // self.vae_scale_factor_spatial}): use "
                    f"{' or '.join(map(str, options))}."
                )
            largest = self.max_video_size[name]
            if largest is not None and value > largest:
                raise ValueError(f"{name}={value} is more than {self._rope_note()}: use {name}={largest} or less{hint}.")

    def _check_text_model(self, task: str, max_text_length: int):
        if getattr(self, "text_scheduler", None) is None:
            if task != "t2v":
                raise ValueError(
                    f"task={task!r} writes a caption, which needs a text scheduler, and this pipeline has none "
                    "(text_scheduler=None): load or build it with one (e.g. `DiscreteFlowScheduler(vocab_size="
                    "transformer.config.vocab_size)`), or generate video only (task='t2v')."
                )
            return  # t2v: the text stream holds the prompt's clean tokens; nothing samples them
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
            seed = f"({generator})" if is_int(generator) else "(0)"
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
        check_tensor(name, embeds, 3, "(batch, sequence, text_dim)")
        text_dim = self.transformer.config.text_dim
        if embeds.shape[-1] != text_dim:
            raise ValueError(
                f"`{name}` has hidden size {embeds.shape[-1]}, but the transformer's cross-attention takes "
                f"text_dim={text_dim}: encode the text with this pipeline's text encoder (`pipe.encode_prompt`)."
            )
        if rows is not None and embeds.shape[0] != rows:
            raise ValueError(f"`{name}` has batch size {embeds.shape[0]}, expected {rows}{rows_why}.")

    def _check_video_latents(self, video_latents: torch.Tensor):
        check_tensor("video_latents", video_latents, 5, "(batch, channels, frames, height, width) latents")
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

    def _check_prompt_text_ids(self, task, text_stream, prompt, prompt_text_ids, prompt_text_mask, total):
        """t2v with the text stream and `prompt_embeds`: the prompt's tokens and mask `encode_prompt` returned."""
        if task != "t2v" or not text_stream:
            raise ValueError(
                "`prompt_text_ids` / `prompt_text_mask` are the prompt's tokens in the text stream of t2v with "
                f"text_stream=True; this call is task={task!r}, text_stream={text_stream}: drop them."
            )
        if prompt_text_ids is None:
            raise ValueError("`prompt_text_mask` needs `prompt_text_ids`: pass both (as `encode_prompt` returns them).")
        if prompt is not None:
            raise ValueError(
                "Pass either `prompt` or `prompt_text_ids` (the prompt's tokens, which `prompt` gives), not both."
            )
        name = "prompt_text_ids"
        if not isinstance(prompt_text_ids, torch.Tensor) or prompt_text_ids.dtype == torch.bool or (
            prompt_text_ids.is_floating_point() or prompt_text_ids.is_complex()
        ):
            got = prompt_text_ids.dtype if isinstance(prompt_text_ids, torch.Tensor) else type(prompt_text_ids).__name__
            raise TypeError(
                f"`{name}` must be an integer tensor of token ids (batch, length), got {got}: pass the ids "
                "`pipe.encode_prompt` returns."
            )
        if prompt_text_ids.ndim != 2 or prompt_text_ids.numel() == 0:
            raise ValueError(f"`{name}` must have shape (batch, length) with length >= 1, got {tuple(prompt_text_ids.shape)}.")
        if prompt_text_ids.shape[0] != total:
            raise ValueError(
                f"`{name}` has batch size {prompt_text_ids.shape[0]}, but the call makes {total} videos: pass one row "
                "per row of `prompt_embeds`."
            )
        max_len = getattr(self.transformer.config, "text_rope_max_seq_len", None)
        if max_len is not None and prompt_text_ids.shape[1] > max_len:
            raise ValueError(
                f"`{name}` has {prompt_text_ids.shape[1]} tokens per row, more than the transformer's text stream holds "
                f"(text_rope_max_seq_len={max_len}): encode the prompt with max_sequence_length={max_len}."
            )
        self._check_ids_fit(prompt_text_ids, name=f"`{name}`")
        if prompt_text_mask is not None:
            if not isinstance(prompt_text_mask, torch.Tensor) or prompt_text_mask.shape != prompt_text_ids.shape:
                shape = tuple(prompt_text_mask.shape) if isinstance(prompt_text_mask, torch.Tensor) else None
                raise ValueError(
                    f"`prompt_text_mask` must be a tensor of the shape of `prompt_text_ids` "
                    f"{tuple(prompt_text_ids.shape)}, got {shape or type(prompt_text_mask).__name__}."
                )
            if prompt_text_mask.is_floating_point() or prompt_text_mask.is_complex() or (
                prompt_text_mask.numel() and not bool(((prompt_text_mask == 0) | (prompt_text_mask == 1)).all())
            ):
                raise ValueError(
                    "`prompt_text_mask` must hold booleans (True = token, False = padding), or 0/1 integers."
                )
            if not bool(prompt_text_mask.bool().any(dim=1).all()):
                raise ValueError("`prompt_text_mask` has a row without any token: every prompt needs at least one.")

    def check_inputs(
        self,
        task: str,
        prompt: Optional[Union[str, List[str]]] = None,
        negative_prompt: Optional[Union[str, List[str]]] = None,
        height: Optional[int] = None,
        width: Optional[int] = None,
        num_frames: Optional[int] = None,
        num_inference_steps: Optional[int] = None,
        sigmas: Optional[List[float]] = None,
        guidance_scale: Optional[float] = None,
        num_videos_per_prompt: int = 1,
        fps: Optional[float] = None,
        crop: Optional[str] = None,
        start: Optional[float] = None,
        duration: Optional[float] = None,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
        prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        prompt_text_ids: Optional[torch.LongTensor] = None,
        prompt_text_mask: Optional[torch.Tensor] = None,
        text_stream: bool = True,
        video_latents: Optional[torch.Tensor] = None,
        video_latents_mode: str = "sample",
        conditioning_text: Optional[Union[str, List[str]]] = None,
        max_text_length: Optional[int] = None,
        temperature: float = 1.0,
        commit_strategy: Optional[str] = None,
        video_cache_interval: Optional[int] = None,
        understanding_attention: Optional[str] = None,
        text_update: str = "scheduler",
        text_ids: Optional[torch.LongTensor] = None,
        output_type: str = "np",
        callback_on_step_end: Optional[Any] = None,
        callback_on_step_end_tensor_inputs: Optional[List[str]] = None,
        max_sequence_length: Optional[int] = None,
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
        if understanding_attention is not None and understanding_attention not in UNDERSTANDING_ATTENTIONS:
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
        # upper bounds (found by benchmarks/probe_bad_inputs.py): 10**9 steps built a 10**9-entry schedule for
        # minutes, 10**9 videos per prompt failed allocating terabytes
        check_int("num_inference_steps", num_inference_steps, 1)
        if num_inference_steps is not None and num_inference_steps > MAX_INFERENCE_STEPS:
            raise ValueError(f"num_inference_steps={num_inference_steps} is too many: use at most "
                             f"{MAX_INFERENCE_STEPS:,} (Wan's sampler uses 50; more than a few hundred changes little).")
        check_real(
            "guidance_scale", guidance_scale, 0.0,
            hint=" (values > 1 guide the video, e.g. 5.0; 1.0 or less turns guidance off)",
        )
        check_int("num_videos_per_prompt", num_videos_per_prompt, 1)
        if num_videos_per_prompt > MAX_VIDEOS_PER_PROMPT:
            raise ValueError(f"num_videos_per_prompt={num_videos_per_prompt} is too many: use at most "
                             f"{MAX_VIDEOS_PER_PROMPT:,} (for more, call the pipeline again with other generators).")
        check_real("temperature", temperature, 0.0, hint=" (0 = argmax, 1 = the model's own distribution)")
        check_int("max_text_length", max_text_length, 1)
        check_int(
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
            self._check_video_sampling(fps, crop, start, duration)
            if video_latents is not None:
                if height is not None or width is not None or num_frames is not None:
                    raise ValueError(
                        "`video_latents` already fix the video's size: drop height/width/num_frames (they resample "
                        "a `video`)."
                    )
                sampling = [name for name, value in (("fps", fps), ("crop", crop), ("start", start),
                            ("duration", duration)) if value is not None]
                if sampling:
                    raise ValueError(
                        f"`video_latents` are an encoded video: drop {'/'.join(sampling)} (they sample a `video`)."
                    )
                self._check_video_latents(video_latents)
                t, h, w = video_latents.shape[2:]
                self.warn_untrained(
                    task, num_frames=(t - 1) * self.vae_scale_factor_temporal + 1,
                    height=h * self.vae_scale_factor_spatial, width=w * self.vae_scale_factor_spatial,
                )
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
            sampling = [name for name, value in (("fps", fps), ("crop", crop), ("start", start),
                        ("duration", duration)) if value is not None]
            if sampling:
                raise ValueError(
                    f"{'/'.join(sampling)} sample a video to caption (task 'v2t'); task={task!r} generates one: drop "
                    "them (the frame rate of a saved video is set when writing it, e.g. `export_to_video(..., fps=8)`)."
                )
            self._check_prompt("prompt", prompt)
            self._check_prompt("negative_prompt", negative_prompt)
            if prompt is not None and prompt_embeds is not None:
                raise ValueError("Pass either `prompt` or `prompt_embeds`, not both.")
            if negative_prompt is not None and negative_prompt_embeds is not None:
                raise ValueError("Pass either `negative_prompt` or `negative_prompt_embeds`, not both.")
            if conditioning_text is not None:
                raise ValueError(f"`conditioning_text` is for task='v2t'; in {task!r} the condition is the prompt.")
            if task == "t2v" and text_stream and prompt is None and prompt_text_ids is None:
                raise ValueError(
                    "text_stream=True puts the prompt's own tokens in the text stream, so it needs `prompt` or, with "
                    "`prompt_embeds`, `prompt_text_ids` (`encode_prompt` returns both): pass them, or text_stream=False."
                )
            self._check_num_frames(num_frames)
            self._check_size(height, width)
            self.warn_untrained(task, height=height, width=width, num_frames=num_frames)
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
                check_tensor("latents", latents, 5, "(batch, channels, latent frames, latent height, latent width)")
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
            if task == "t2v" and text_stream and prompt is not None:
                self._check_prompt_stream(prompt, max_sequence_length)
        if prompt_text_ids is not None or prompt_text_mask is not None:
            self._check_prompt_text_ids(task, text_stream, prompt, prompt_text_ids, prompt_text_mask, total)
        if text_ids is not None and text_ids.shape[1] != max_text_length:
            raise ValueError(
                f"`text_ids` has {text_ids.shape[1]} tokens per row but max_text_length={max_text_length}: drop "
                "max_text_length (text_ids set the caption length) or pass text_ids of that length."
            )
        if task != "t2v" or text_stream:
            self._check_text_model(task, max_text_length)
        if task != "t2v":
            self.warn_untrained(task, max_text_length=max_text_length)
        return total

    def _check_video_sampling(self, fps, crop, start, duration):
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
        self.warn_untrained("v2t", height=height, width=width, num_frames=frames)

    def _run_callback(self, callback, step: int, timestep, callback_kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """Calls `callback_on_step_end` and checks what it returns: a dict (or None) whose keys are among the tensors
        it was given, each a tensor of the shape, dtype and device of the one it replaces."""
        given = dict(callback_kwargs)  # the callback may edit callback_kwargs in place and return it
        outputs = callback(self, step, timestep, callback_kwargs)
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


    def _check_ids_fit(self, ids: torch.LongTensor, name: str = "the prompt's tokens"):
        limit = getattr(self.transformer, "num_text_embeddings", None) or self._text_vocab_size()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= limit):
            raise ValueError(
                f"{name} contain ids outside the transformer's text vocabulary [0, {limit}): the tokenizer does not "
                "match the transformer (build the transformer with vocab_size=len(tokenizer))."
            )


__all__ = ["UniViGUInputChecksMixin"]
