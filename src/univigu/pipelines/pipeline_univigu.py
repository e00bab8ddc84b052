# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""UniViGUPipeline: one Wan2.1-based diffusion transformer that generates video from text (t2v), captions video (v2t),
and does both at once (t2vt). `__call__` reads top to bottom: check (`input_checks`), encode (`prompt_input`,
`video_input`), prepare, one denoising loop, decode; the text stream's updates live in its scheduler.

This module and the sibling modules it imports relatively import diffusers, transformers, torch, numpy and PIL only,
never `univigu`: `export_for_hub` copies them to the root of an exported folder, so that
`DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` works without univigu installed.
"""

from typing import Any
from collections.abc import Callable

import torch
from transformers import AutoTokenizer, UMT5EncoderModel

from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.models import AutoencoderKLWan
from diffusers.models.modeling_utils import ModelMixin
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers import FlowMatchEulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import logging, replace_example_docstring
from diffusers.utils.torch_utils import get_module_execution_device, randn_tensor
from diffusers.video_processor import VideoProcessor

from .call_arguments import BUILTIN_CALL_DEFAULTS, LATENT_NORMALIZATIONS, check_call_defaults, frame_rule, resolve_task
from .call_arguments import merge_call_defaults, stored_call_default
from .hub import export_for_hub
from .input_checks import check_call_arguments, check_ids_fit, check_video, run_callback
from .input_checks import sequence_length_limit, video_size_limits
from .local_files import check_local_video  # noqa: F401 (so an exported folder's module cache carries it)
from .lora_loader import UniViGULoraLoaderMixin
from .pipeline_output import UniViGUPipelineOutput
from .prompt_input import negative_prompts, prompt_tokens, t5_prompt_embeds
from .serialization import UniViGUSerializationMixin
from .video_input import encode_frames, sample_videos


logger = logging.get_logger(__name__)  # pylint: disable=invalid-name

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


class UniViGUPipeline(UniViGUSerializationMixin, DiffusionPipeline, UniViGULoraLoaderMixin):
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
        text_scheduler ([`DiscreteFlowScheduler`], *optional*):
            The discrete-flow sampler of the text stream (it owns every text update rule). Captioning (v2t, t2vt)
            needs it; a pipeline without one generates video only (t2v).
        latent_normalization (`str`, defaults to `"diffusers"`):
            `"diffusers"`: latents normalised with the VAE's `latents_mean` / `latents_std` (as in `WanPipeline`).
            `"raw"`: the reference's convention (raw `latent_dist` values), set by folders converted from it.
        call_defaults (`dict`, *optional*):
            The checkpoint's defaults of `__call__`'s arguments (what it was trained at), globally or per task.
        expand_timesteps (`bool`, defaults to `False`):
            One video timestep per latent token, `(batch, num_video_tokens)`, as `WanPipeline` gives Wan2.2-TI2V-5B
            (`univigu convert wan` carries it over): every token gets the step's timestep, so text-to-video stays
            exactly `WanPipeline`'s for that backbone. The text stream keeps one timestep per sample.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds", "text_ids"]
    _optional_components = ["text_scheduler"]
    #: Whether video paths may be URLs or playlists (None: `UNIVIGU_ALLOW_REMOTE_VIDEO`); see `local_files`.
    allow_remote_video: bool | None = None

    def __init__(
        self, tokenizer: AutoTokenizer, text_encoder: UMT5EncoderModel, vae: AutoencoderKLWan, transformer: ModelMixin,
        scheduler: FlowMatchEulerDiscreteScheduler, text_scheduler: SchedulerMixin | None = None,
        latent_normalization: str = "diffusers", call_defaults: dict[str, Any] | None = None,
        expand_timesteps: bool = False,  # Wan2.2 TI2V-5B, as in WanPipeline
    ):
        super().__init__()
        if latent_normalization not in LATENT_NORMALIZATIONS:
            raise ValueError(
                f"`latent_normalization` must be one of {LATENT_NORMALIZATIONS}, got {latent_normalization!r}."
            )
        call_defaults = check_call_defaults(call_defaults)
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                              scheduler=scheduler, text_scheduler=text_scheduler)
        self.register_to_config(latent_normalization=latent_normalization, call_defaults=call_defaults)
        self.register_to_config(expand_timesteps=bool(expand_timesteps))
        self.vae_scale_factor_temporal = self.vae.config.scale_factor_temporal if getattr(self, "vae", None) else 4
        self.vae_scale_factor_spatial = self.vae.config.scale_factor_spatial if getattr(self, "vae", None) else 8
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor_spatial)

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

    # ------------------------------------------------------------------ what a call may ask for

    @property
    def spatial_multiple(self) -> int:
        """Height and width must be multiples of this (VAE spatial factor x transformer patch size)."""
        patch = self.transformer.config.patch_size
        return self.vae_scale_factor_spatial * max(patch[1], patch[2])

    @property
    def frame_rule(self) -> str:
        """How `num_frames` is stated in messages, e.g. "of the form 4k+1 (1, 5, 9, 13, ...)" for Wan's VAE."""
        return frame_rule(self.vae_scale_factor_temporal)

    @property
    def max_video_size(self) -> dict[str, int | None]:
        """The largest `num_frames`, `height` and `width` whose patch grid fits the transformer's video RoPE table
        (`rope_max_seq_len` positions per axis: 253 frames and 1024 x 1024 pixels for 64 with Wan's VAE and (1, 2, 2)
        patches); `None` where the model sets no limit."""
        return video_size_limits(self.transformer, self.vae_scale_factor_temporal, self.vae_scale_factor_spatial)

    @property
    def max_sequence_length_limit(self) -> int:
        """The largest `max_sequence_length` `__call__` accepts: `MAX_SEQUENCE_LENGTH` (4096), or the text encoder's
        `max_position_embeddings` when it has absolute positions and fewer of them."""
        return sequence_length_limit(getattr(self, "text_encoder", None))

    def _text_vocab_size(self) -> int:
        """Real text tokens: the text scheduler's `vocab_size` (the transformer's for a pipeline without one)."""
        if getattr(self, "text_scheduler", None) is None:
            return int(self.transformer.config.vocab_size)
        return int(self.text_scheduler.config.vocab_size)

    # ------------------------------------------------------------------ defaults and checks of a call

    def call_default(self, name: str, task: str, value: Any = None) -> Any:
        """The value `__call__` uses for `name` when the caller leaves it at `None` (`value`, when not None, is
        returned as it is): the checkpoint's own default for `task` (`call_defaults[task][name]`), else its global one
        (`call_defaults[name]`), else `BUILTIN_CALL_DEFAULTS` (WanPipeline's / the reference's)."""
        if value is None:
            value = self.stored_call_default(name, task)
        return BUILTIN_CALL_DEFAULTS[name] if value is None else value

    def stored_call_default(self, name: str, task: str) -> Any:
        """The checkpoint's own default for `name` in `task` (`call_defaults[task][name]`, else `call_defaults[name]`),
        or None: for the video size, frame count, frame rate and caption length, what it was trained on."""
        return stored_call_default(self.config.get("call_defaults"), name, task)

    def set_call_defaults(self, **defaults):
        """Record defaults with the pipeline (saved by `save_pretrained`): `pipe.set_call_defaults(height=64,
        v2t={"num_inference_steps": 16})`. Keys are `CALL_DEFAULT_KEYS`, or a task name holding a dict of them."""
        self.register_to_config(call_defaults=merge_call_defaults(self.config.get("call_defaults"), defaults))

    def check_inputs(self, task: str, **arguments) -> int | None:
        """Checks the arguments of `__call__` (by name; those not given take its defaults) with the rules of
        `input_checks`, before any model runs: a `TypeError` / `ValueError` names the fix. Returns the number of
        samples the call makes, or `None` when it depends on a `video` not yet decoded (checked after decoding)."""
        return check_call_arguments(self, task, arguments)

    # ------------------------------------------------------------------ encoding: the prompt (t2v, t2vt)

    def encode_prompt(
        self, prompt: str | list[str], negative_prompt: str | list[str] | None = None,
        do_classifier_free_guidance: bool = True, num_videos_per_prompt: int = 1,
        prompt_embeds: torch.Tensor | None = None, negative_prompt_embeds: torch.Tensor | None = None,
        max_sequence_length: int | None = None, device: torch.device | None = None, dtype: torch.dtype | None = None,
        prompt_text_ids: torch.LongTensor | None = None, prompt_text_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.LongTensor | None, torch.BoolTensor | None]:
        r"""
        Encodes the prompt (and, with guidance, the negative prompt; `""` by default) into umT5 hidden states, exactly
        as `WanPipeline.encode_prompt` does, and tokenizes it for the text stream of t2v ([`prompt_text_stream`]).
        What is passed in (`prompt_embeds`, ...) is returned as given. `max_sequence_length` defaults to the one
        `__call__` uses (the checkpoint's `call_defaults`, else 512).

        Returns `(prompt_embeds, negative_prompt_embeds, prompt_text_ids, prompt_text_mask)`, the `__call__`
        arguments of those names: encode once (under `torch.no_grad()`), then call `pipe(prompt_embeds=...,
        negative_prompt_embeds=..., prompt_text_ids=..., prompt_text_mask=..., ...)` as often as needed, which computes
        what `pipe(prompt, ...)` computes. `negative_prompt_embeds` is `None` without guidance; the tokens are `None`
        when only `prompt_embeds` are given.
        """
        device = device or self._execution_device
        max_sequence_length = self.call_default("max_sequence_length", "t2v", max_sequence_length)
        prompt = [prompt] if isinstance(prompt, str) else prompt
        batch_size = len(prompt) if prompt is not None else prompt_embeds.shape[0]

        def embed(texts):  # the prompt and the negative prompt are embedded alike
            return t5_prompt_embeds(self.tokenizer, self.text_encoder, texts, num_videos_per_prompt,
                                    max_sequence_length, device=device, dtype=dtype)

        if prompt_embeds is None:
            prompt_embeds = embed(prompt)
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negative_prompt_embeds = embed(negative_prompts(negative_prompt, prompt, batch_size))

        if prompt_text_ids is None and prompt is not None:
            prompt_text_ids, prompt_text_mask = self.prompt_text_stream(
                prompt, num_videos_per_prompt, max_sequence_length, device
            )
        elif prompt_text_ids is not None:
            prompt_text_ids = prompt_text_ids.to(device=device, dtype=torch.long)
            if prompt_text_mask is not None:
                prompt_text_mask = prompt_text_mask.to(device=device, dtype=torch.bool)
        return prompt_embeds, negative_prompt_embeds, prompt_text_ids, prompt_text_mask

    def prompt_text_stream(
        self, prompt: str | list[str], num_videos_per_prompt: int = 1, max_sequence_length: int = 512,
        device: torch.device | None = None,
    ) -> tuple[torch.LongTensor, torch.BoolTensor]:
        """The prompt's own token ids (same tokenizer and cleaning as the umT5 input) and their attention mask, for
        the text stream of text-to-video; trimmed to the longest prompt of the batch."""
        device = device or self._execution_device
        return prompt_tokens(self.tokenizer, prompt, num_videos_per_prompt, max_sequence_length, device)

    # ------------------------------------------------------------------ encoding: the video to caption (v2t)

    def preprocess_video(self, video: Any, height: int | None = None, width: int | None = None,
                         num_frames: int | None = None, fps: float | None = None, crop: str | None = None,
                         start: float | None = None, duration: float | None = None) -> torch.Tensor:
        """Any supported video input -> `(B, 3, F, H, W)` in [-1, 1]: the model's view of it, `num_frames` frames
        (`self.frame_rule`) sampled at `fps` from `start` seconds, within `duration`, resized to `height` x `width`
        keeping the aspect and cropped or padded (`crop`); see `video_input.sample_videos`. Defaults: what the
        checkpoint was trained on (`call_defaults`), else the video's own size and frame count."""
        trained = {name: self.stored_call_default(name, "v2t") for name in ("height", "width", "num_frames", "fps")}
        frames = sample_videos(
            video, height, width, num_frames, fps, crop, start, duration, trained=trained,
            frame_factor=self.vae_scale_factor_temporal, size_multiple=self.spatial_multiple,
            allow_remote=self.allow_remote_video,
        )
        height, width = frames[0].shape[-2:]
        return self.video_processor.preprocess_video(frames, height=height, width=width)

    def encode_video(self, video: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None = None,
                     mode: str = "sample") -> torch.Tensor:
        """Preprocessed video `(B, 3, F, H, W)` in [-1, 1] -> normalised latents. `mode="sample"` draws from the
        VAE posterior (what the reference does), `"argmax"` takes its mean."""
        return self.normalize_latents(encode_frames(self.vae, video, generator, mode))

    def prepare_video_latents(self, video: torch.Tensor | None, video_latents: torch.Tensor | None,
                              num_captions_per_video: int, generator, mode: str, device, dtype) -> torch.Tensor:
        """v2t: the clean latents of the videos to caption, `num_captions_per_video` rows per video: the preprocessed
        `video` encoded by the VAE (with a list of generators, one posterior draw per caption), or `video_latents`."""
        if video_latents is not None:
            latents = video_latents.repeat_interleave(num_captions_per_video, dim=0)
        elif num_captions_per_video > 1 and isinstance(generator, list):
            # one posterior sample per caption, each from its own generator
            latents = self.encode_video(video.repeat_interleave(num_captions_per_video, dim=0), generator, mode)
        else:
            latents = self.encode_video(video, generator, mode).repeat_interleave(num_captions_per_video, dim=0)
        latents = latents.to(device=device, dtype=dtype)
        if latents.shape[1] != self.transformer.config.in_channels:
            raise ValueError(f"`video_latents` have {latents.shape[1]} channels, the transformer expects "
                             f"{self.transformer.config.in_channels}.")
        return latents

    def encode_conditioning_text(self, conditioning_text: str | list[str], num_videos: int, num_captions_per_video: int,
                                 max_sequence_length: int, device, dtype) -> torch.Tensor:
        """v2t: the umT5 embedding of the text that conditions the captions (one string for every video, or one per
        video), `num_captions_per_video` rows per video."""
        texts = [conditioning_text] if isinstance(conditioning_text, str) else conditioning_text
        if len(texts) == 1:
            texts = texts * num_videos
        return t5_prompt_embeds(self.tokenizer, self.text_encoder, texts, num_captions_per_video,
                                max_sequence_length, device).to(dtype)

    # ------------------------------------------------------------------ preparing: latents and text ids

    def prepare_latents(self, batch_size: int, num_channels_latents: int = 16, height: int = 480, width: int = 832,
                        num_frames: int = 81, dtype: torch.dtype | None = None, device: torch.device | None = None,
                        generator: torch.Generator | list[torch.Generator] | None = None,
                        latents: torch.Tensor | None = None) -> torch.Tensor:
        if latents is not None:
            return latents.to(device=device, dtype=dtype)

        num_latent_frames = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        shape = (batch_size, num_channels_latents, num_latent_frames,
                 int(height) // self.vae_scale_factor_spatial, int(width) // self.vae_scale_factor_spatial)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(f"You have passed a list of generators of length {len(generator)}, but requested an "
                             f"effective batch size of {batch_size}. Make sure the batch size matches the length of "
                             "the generators.")
        return randn_tensor(shape, generator=generator, device=device, dtype=dtype)

    def prepare_text_ids(self, batch_size: int, text_length: int, generator, device,
                         text_ids: torch.LongTensor | None = None) -> torch.LongTensor:
        """Starting tokens of the text stream: `text_ids` as given, or source draws (uniform ids, or all [MASK]) from
        `text_scheduler` (a list of generators draws each row from its own generator)."""
        if text_ids is not None:
            return text_ids.to(device=device, dtype=torch.long)
        return self.text_scheduler.sample_source((batch_size, text_length), generator=generator, device=device)

    def video_timestep(self, t: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """The transformer's video `timestep` at time `t` for `latents` `(B, C, F, H, W)`: `(B,)`, or with
        `expand_timesteps` one per video token, `(B, F/p_t * H/p_h * W/p_w)`, built as `WanPipeline` builds it."""
        if not self.config.get("expand_timesteps", False):
            return t.expand(latents.shape[0])
        p_t, p_h, p_w = self.transformer.config.patch_size
        mask = torch.ones(latents.shape[2:], dtype=torch.float32, device=latents.device)
        return (mask[::p_t, ::p_h, ::p_w] * t).flatten().unsqueeze(0).expand(latents.shape[0], -1)

    # ------------------------------------------------------------------ decoding: latents and text ids

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

    def decode_text(self, text_ids: torch.LongTensor) -> list[str]:
        """Token ids -> strings (`skip_special_tokens=True`; ids the tokenizer does not know are dropped)."""
        known = len(self.tokenizer)
        rows = [[i for i in row if 0 <= i < known] for row in text_ids.tolist()]
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True)

    # ------------------------------------------------------------------ call

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        video: Any | None = None,
        task: str | None = None,
        generate_caption: bool = False,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        fps: float | None = None,
        crop: str | None = None,
        start: float | None = None,
        duration: float | None = None,
        num_inference_steps: int | None = None,
        sigmas: list[float] | None = None,
        guidance_scale: float | None = None,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        text_stream: bool = True,
        video_latents: torch.Tensor | None = None,
        video_latents_mode: str | None = None,
        conditioning_text: str | list[str] | None = None,
        max_text_length: int | None = None,
        temperature: float = 1.0,
        commit_strategy: str | None = None,
        video_cache_interval: int | None = None,
        understanding_attention: str | None = None,
        text_update: str = "scheduler",
        text_ids: torch.LongTensor | None = None,
        return_text_history: bool = False,
        output_type: str = "np",
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],
        max_sequence_length: int | None = None,
        prompt_text_ids: torch.LongTensor | None = None,
        prompt_text_mask: torch.Tensor | None = None,
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
                divide 0-255 frames by 255. Any size, aspect, frame rate and length: by default the video is
                brought to what the checkpoint was trained on (see `height`, `num_frames`, `fps`, `crop`).
            task (`str`, *optional*):
                "t2v", "v2t" or "t2vt"; inferred from the inputs when not given.
            generate_caption (`bool`, defaults to `False`):
                With a prompt: also generate a detailed caption (task "t2vt").
            height (`int`, *optional*), width (`int`, *optional*):
                Video size in pixels; multiples of `pipe.spatial_multiple` (16 for Wan), at most `pipe.max_video_size`
                (what the transformer's video RoPE table holds). Defaults: the checkpoint's `call_defaults` (what it
                was trained on), else 480 x 832 when generating and the input video's size (rounded down to a valid
                multiple) when captioning. A captioned video is resized keeping its aspect, then cropped or padded
                (`crop`). A size the checkpoint was not trained on runs, with a warning (once per setting).
            num_frames (`int`, *optional*):
                Number of frames, of the form Tk+1, T the VAE's time compression (4k+1 for Wan: 1, 5, 9, 13, ...;
                `pipe.frame_rule` states it for this pipeline), at most `pipe.max_video_size["num_frames"]`.
                Defaults: the checkpoint's `call_defaults`, else 81 when generating and the largest such count the
                input video has when captioning. A count the checkpoint was not trained on warns once.
            fps (`float`, *optional*), start (`float`, *optional*), duration (`float`, *optional*):
                v2t, a video file: sample `num_frames` frames at `fps` frames per second from `start` seconds
                (default 0), decoding no further than needed; `duration` bounds the window. A window too short for
                that gives `num_frames` frames spread evenly over it. `fps` defaults to the checkpoint's stored rate
                (`call_defaults["fps"]`); without one, frames are spread evenly over the video, as they are for
                frames passed in memory (which take none of the three).
            crop (`str`, *optional*):
                v2t: `"center"` (default; what training does) resizes a video of another aspect to cover
                `height` x `width` and crops the centre, `"pad"` fits it inside and pads with black.
            num_inference_steps (`int`, *optional*):
                Denoising steps (video steps for t2v/t2vt, text steps for v2t; in t2vt both streams share them).
                Defaults, like every argument below with a default and left at `None`, to the checkpoint's stored
                `call_defaults` when it has them, else to the value given here (50).
            sigmas (`list[float]`, *optional*):
                t2v, t2vt: custom video noise levels (before the scheduler's shift) for `scheduler.set_timesteps`, as
                in diffusers' Flux/SD3 pipelines, instead of `num_inference_steps`; finite, in [0, 1], strictly
                decreasing. The reference's grid is `numpy.linspace(1.0, 0.0, N + 1)[:-1]`.
            guidance_scale (`float`, defaults to 5.0):
                Classifier-free guidance of the video (t2v, t2vt): a finite number >= 0; values > 1 guide, 1 or
                less turns guidance off. Captions are never guided.
            num_videos_per_prompt (`int`, defaults to 1):
                Videos per prompt (t2v, t2vt), or captions per video (v2t); an integer >= 1. Must be 1 with
                `prompt_embeds` (repeat the embeddings yourself).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                RNG, on the CPU or the pipeline's device. One generator per sample (a list as long as the effective
                batch) makes every sample depend on its own generator only: a batch then gives exactly what the
                single calls give. With one generator, the samples of a batch share its stream.
            latents (`torch.Tensor`, *optional*):
                Starting video noise (t2v, t2vt), finite floats of exactly the shape the call needs:
                `(B * num_videos_per_prompt, C, (num_frames - 1) // t + 1, height // s, width // s)` with the VAE's
                temporal and spatial factors `t`, `s` (4 and 8 for Wan).
            prompt_embeds, negative_prompt_embeds (`torch.Tensor`, *optional*):
                Precomputed umT5 embeddings (as in `WanPipeline`): finite float tensors `(B, N, text_dim)`;
                `negative_prompt_embeds` has one row per video.
            prompt_text_ids (`torch.LongTensor`, *optional*), prompt_text_mask (`torch.BoolTensor`, *optional*):
                t2v with `text_stream=True` and `prompt_embeds` instead of `prompt`: the prompt's own tokens for the
                text stream, `(B, L)` ids of `pipe.tokenizer` and their attention mask (`True` = token, default all
                `True`), one row per video. [`~UniViGUPipeline.encode_prompt`] returns them with the embeddings, so that
                encoding once and calling with its four outputs computes what calling with `prompt` computes.
            text_stream (`bool`, defaults to `True`):
                t2v only: whether the prompt's own tokens (from `prompt`, or `prompt_text_ids`) also enter the text
                stream (clean, text timestep 0), as in the reference. `False` computes exactly what `WanPipeline`
                computes, and needs no `text_scheduler`.
            video_latents (`torch.Tensor`, *optional*):
                v2t: pre-encoded, normalised video latents instead of `video`: finite floats `(B, C, F, H, W)` with
                the transformer's `in_channels`, within its RoPE table.
            video_latents_mode (`str`, defaults to `"sample"`):
                v2t: "sample" draws the VAE posterior (the reference), "argmax" takes its mean.
            conditioning_text (`str` or `list[str]`, *optional*):
                v2t: a text given to the model through umT5 cross-attention; without it, the null (zeros) condition
                of the reference.
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
                (they do not; for models trained with `--understanding_attention video_prefix`, which store it in
                their `call_defaults`).
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
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*),
            callback_on_step_end_tensor_inputs (`list[str]`, defaults to `["latents"]`):
                Called after each step as `callback_on_step_end(pipe, step, timestep, callback_kwargs)`, with the
                tensors named in `callback_on_step_end_tensor_inputs` (any of `pipe._callback_tensor_inputs` =
                latents, prompt_embeds, negative_prompt_embeds, text_ids). It returns a dict (or None) of updated
                tensors among those it was given, each of the shape, dtype and device of the one it replaces;
                anything else stops the call with an error naming the key.
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

        # 1. Check the inputs: the task they ask for, the defaults of those left at None, then every argument
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        if callback_on_step_end is not None and callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = []
        if isinstance(generator, tuple):
            generator = list(generator)
        if max_text_length is None and isinstance(text_ids, torch.Tensor) and text_ids.ndim == 2:
            max_text_length = text_ids.shape[1]  # starting caption tokens set the caption length
        task = resolve_task(task, prompt, prompt_embeds, video, video_latents, generate_caption)
        # Arguments left at None take the checkpoint's stored defaults (`call_defaults`), then the built-in ones; the
        # size, frame count and rate of a video to caption are resolved by `preprocess_video`.
        num_inference_steps = self.call_default("num_inference_steps", task, num_inference_steps)
        guidance_scale = self.call_default("guidance_scale", task, guidance_scale)
        video_latents_mode = self.call_default("video_latents_mode", task, video_latents_mode)
        max_text_length = self.call_default("max_text_length", task, max_text_length)
        max_sequence_length = self.call_default("max_sequence_length", task, max_sequence_length)
        understanding_attention = self.call_default("understanding_attention", task, understanding_attention)
        if task != "v2t":
            height = self.call_default("height", task, height)
            width = self.call_default("width", task, width)
            num_frames = self.call_default("num_frames", task, num_frames)
        self.check_inputs(**{name: value for name, value in locals().items() if name != "self"})

        self._guidance_scale = guidance_scale
        self._attention_kwargs = attention_kwargs
        self._current_timestep = None
        self._interrupt = False

        device = self._execution_device
        transformer_dtype = self.transformer.dtype

        # 2. Encode the inputs: the prompt (t2v, t2vt), or the video to caption and its optional text condition (v2t)
        stream_mask = None
        if task == "v2t":
            if video_latents is None:
                video = self.preprocess_video(video, height, width, num_frames, fps, crop, start, duration)
                check_video(self, video, num_videos_per_prompt, generator, text_ids, conditioning_text)
            latents = self.prepare_video_latents(
                video, video_latents, num_videos_per_prompt, generator, video_latents_mode, device, transformer_dtype
            )
            negative_prompt_embeds = None  # captions are never guided
            if conditioning_text is not None:  # otherwise the null condition, as in the reference
                prompt_embeds = self.encode_conditioning_text(
                    conditioning_text, latents.shape[0] // num_videos_per_prompt, num_videos_per_prompt,
                    max_sequence_length, device, transformer_dtype,
                )
        else:
            prompt_embeds, negative_prompt_embeds, prompt_text_ids, prompt_text_mask = self.encode_prompt(
                prompt=prompt, negative_prompt=negative_prompt,
                do_classifier_free_guidance=self.do_classifier_free_guidance,
                num_videos_per_prompt=num_videos_per_prompt, prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds, max_sequence_length=max_sequence_length, device=device,
                prompt_text_ids=prompt_text_ids, prompt_text_mask=prompt_text_mask,
            )
            prompt_embeds = prompt_embeds.to(transformer_dtype)
            if negative_prompt_embeds is not None:
                negative_prompt_embeds = negative_prompt_embeds.to(transformer_dtype)
            if task == "t2v" and text_stream:  # the text stream of t2v: the prompt's own tokens, clean
                text_ids = prompt_text_ids
                stream_mask = None if prompt_text_mask is None or bool(prompt_text_mask.all()) else prompt_text_mask

        # 3. Prepare timesteps: the video's (t2v, t2vt; the caption follows them in t2vt) or the caption's (v2t)
        text_scheduler = self._text_scheduler_for_call(commit_strategy) if task != "t2v" else None
        if task == "v2t":
            text_scheduler.set_timesteps(num_inference_steps, device=device)
            timesteps = text_scheduler.timesteps
        else:
            if sigmas is not None:
                self.scheduler.set_timesteps(sigmas=sigmas, device=device)
            else:
                self.scheduler.set_timesteps(num_inference_steps, device=device)
            timesteps = self.scheduler.timesteps
            self.scheduler.set_begin_index(0)
            if text_scheduler is not None and text_update == "scheduler":
                text_scheduler.set_timesteps(timesteps=timesteps, device=device)  # text time = video time
            elif text_scheduler is not None:
                text_scheduler.set_timesteps(len(timesteps), device=device)  # the reference counts steps only

        # 4. Prepare the starting video noise (t2v, t2vt) and text (v2t, t2vt)
        total = prompt_embeds.shape[0] if task != "v2t" else latents.shape[0]
        if task != "v2t":
            latents = self.prepare_latents(total, self.transformer.config.in_channels, height, width, num_frames,
                                           torch.float32, device, generator, latents)
        if text_scheduler is not None:
            text_scheduler.set_begin_index(0)
            text_ids = self.prepare_text_ids(total, max_text_length, generator, device, text_ids)
            check_ids_fit(self, text_ids, name="text_ids")

        # 5. Denoising loop: one step of the video and/or the text stream per timestep
        vocab_size = self._text_vocab_size()
        if task == "v2t":  # the video is clean and fixed: with `video_cache_interval`, its keys/values are cached
            video_kv_cache = self.transformer.video_kv_cache() if video_cache_interval is not None else None
        elif task == "t2vt":  # the caption's update rule
            text_step = text_scheduler.step if text_update == "scheduler" else text_scheduler.reference_step
        history = [] if return_text_history and task != "t2v" else None
        order = (text_scheduler if task == "v2t" else self.scheduler).order
        num_warmup_steps = len(timesteps) - num_inference_steps * order
        self._num_timesteps = len(timesteps)

        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t

                if task == "v2t":
                    # the caption's step on the clean video (video time 0); with a video KV cache the video tokens
                    # run only on every `video_cache_interval`-th step, the others attend to their cached keys/values
                    with_video = video_kv_cache is None or i % video_cache_interval == 0
                    if video_kv_cache is not None:
                        video_kv_cache.refresh = with_video
                    logits = self._predict_caption_logits(
                        i, t, text_scheduler, latents if with_video else None, text_ids, prompt_embeds,
                        understanding_attention, video_kv_cache,
                    )
                    text_ids = text_scheduler.step(
                        logits[..., :vocab_size], t, text_ids, generator=generator, temperature=temperature
                    ).prev_sample
                else:
                    # the video's guided flow step; both passes carry the text stream: in t2v the prompt's own tokens
                    # (clean, text time 0), in t2vt the caption being written (at the video's time)
                    text_inputs = {}
                    if task == "t2vt":
                        text_inputs = dict(text_ids=text_ids, text_timestep=t.expand(latents.shape[0]))
                    elif text_ids is not None:
                        zeros = torch.zeros_like(t.expand(latents.shape[0]))
                        text_inputs = dict(text_ids=text_ids, text_timestep=zeros, text_attention_mask=stream_mask)
                    noise_pred, logits = self._predict_velocity_with_guidance(
                        i, t, latents, prompt_embeds, negative_prompt_embeds, text_inputs
                    )
                    # compute the previous noisy sample x_t -> x_t-1, and in t2vt the caption's next tokens
                    latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                    if task == "t2vt":
                        text_ids = text_step(
                            logits[..., :vocab_size], t, text_ids, generator=generator, temperature=temperature
                        ).prev_sample

                if history is not None:
                    history.append(self.decode_text(text_ids))
                if callback_on_step_end is not None:
                    callback_kwargs = {}
                    for k in callback_on_step_end_tensor_inputs:
                        callback_kwargs[k] = locals()[k]
                    callback_outputs = run_callback(self, callback_on_step_end, i, t, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)
                    text_ids = callback_outputs.pop("text_ids", text_ids)
                    prompt_embeds = callback_outputs.pop("prompt_embeds", prompt_embeds)
                    negative_prompt_embeds = callback_outputs.pop("negative_prompt_embeds", negative_prompt_embeds)

                if i == len(timesteps) - 1 or ((i + 1) > num_warmup_steps and (i + 1) % order == 0):
                    progress_bar.update()

        self._current_timestep = None

        # 6. text_update="reference": the reference's final argmax pass on the caption (text time 0, clean video)
        if task == "t2vt" and text_update == "reference":
            text_ids = self._commit_caption_argmax(text_scheduler, latents, text_ids, prompt_embeds, timesteps.dtype)
            if history is not None:
                history.append(self.decode_text(text_ids))

        # 7. Decode
        if task == "v2t":
            video = None
        elif output_type == "latent":
            video = latents
        else:
            video = self.decode_latents(latents, output_type=output_type)
        text_ids = None if task == "t2v" else text_ids
        text = self.decode_text(text_ids) if text_ids is not None else None

        self.maybe_free_model_hooks()  # offload all models

        if not return_dict:
            return (video, text)
        return UniViGUPipelineOutput(frames=video, text=text, text_ids=text_ids, text_history=history)

    def _cache_context(self, name: str, step_index: int, sigma):
        """The context of one transformer call of the loop, for diffusers' step caches (`transformer.enable_cache`),
        as WanPipeline enters it: each name (`cond`, `uncond`) keeps its own cache state."""
        return self.transformer.cache_context(
            name, step_index=step_index, sigma=float(sigma), num_inference_steps=self._num_timesteps
        )

    def _text_scheduler_for_call(self, commit_strategy: str | None):
        """The pipeline's text scheduler, or a copy with this call's `commit_strategy` (it keeps its own)."""
        if commit_strategy in (None, self.text_scheduler.config.commit_strategy):
            return self.text_scheduler
        return type(self.text_scheduler).from_config(self.text_scheduler.config, commit_strategy=commit_strategy)

    def _predict_caption_logits(self, i, t, text_scheduler, latents, text_ids, prompt_embeds, understanding_attention,
                                video_kv_cache):
        """The text logits of v2t step `i`: the caption at text time `t` on the clean video `latents` (video time 0;
        `None`: the video tokens do not run, their keys/values come from `video_kv_cache`)."""
        attention_kwargs = dict(self.attention_kwargs or {})
        if understanding_attention != "full":
            attention_kwargs["understanding_attention"] = understanding_attention
        if video_kv_cache is not None:
            attention_kwargs["video_kv_cache"] = video_kv_cache
        with self._cache_context("cond", i, t / text_scheduler.config.num_train_timesteps):  # the text's noise level
            return self.transformer(
                hidden_states=latents,
                timestep=self.video_timestep(t.new_zeros(()), latents) if latents is not None else None,
                encoder_hidden_states=prompt_embeds, text_ids=text_ids, text_timestep=t.expand(text_ids.shape[0]),
                attention_kwargs=attention_kwargs or None, return_dict=False,
            )[1]

    def _commit_caption_argmax(self, text_scheduler, latents, text_ids, prompt_embeds, dtype):
        """t2vt with `text_update="reference"`: the reference's final pass, every caption position set to its argmax
        at text time 0 on the clean video (`text_scheduler.commit_argmax`)."""
        zeros = torch.zeros(latents.shape[0], device=latents.device, dtype=dtype)
        with self.transformer.cache_context("caption"):  # a step cache's own state: this call runs in full
            logits = self.transformer(
                hidden_states=latents.to(self.transformer.dtype), timestep=self.video_timestep(zeros[0], latents),
                text_ids=text_ids, text_timestep=zeros, encoder_hidden_states=prompt_embeds,
                attention_kwargs=self.attention_kwargs, return_dict=False,
            )[1]
        return text_scheduler.commit_argmax(logits[..., : self._text_vocab_size()], text_ids)

    def _predict_velocity_with_guidance(self, i, t, latents, prompt_embeds, negative_prompt_embeds, text_inputs):
        """The video velocity at step `i` with classifier-free guidance, as in `WanPipeline` (the unconditional pass
        swaps only the umT5 embedding; both take the text stream's `text_inputs`), and the conditional text logits."""
        latent_model_input = latents.to(self.transformer.dtype)
        timestep = self.video_timestep(t, latents)
        sigma = self.scheduler.sigmas[i]
        with self._cache_context("cond", i, sigma):
            noise_pred, logits = self.transformer(
                hidden_states=latent_model_input, timestep=timestep, encoder_hidden_states=prompt_embeds,
                attention_kwargs=self.attention_kwargs, return_dict=False, **text_inputs,
            )
        if self.do_classifier_free_guidance:
            with self._cache_context("uncond", i, sigma):
                noise_uncond = self.transformer(
                    hidden_states=latent_model_input, timestep=timestep, encoder_hidden_states=negative_prompt_embeds,
                    attention_kwargs=self.attention_kwargs, return_dict=False, **text_inputs,
                )[0]
            noise_pred = noise_uncond + self.guidance_scale * (noise_pred - noise_uncond)
        return noise_pred, logits


__all__ = ["UniViGUPipeline", "UniViGUPipelineOutput", "export_for_hub"]
