# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""UniViGUPipeline: one Wan2.1-based diffusion transformer that generates video from text (t2v), captions video (v2t),
and does both at once (t2vt).

This module and the sibling modules it imports relatively (`pipeline_output`, `call_arguments`, `input_checks`,
`prompt_input`, `video_input`, `serialization`, `hub`, `lora_loader`) import diffusers, transformers, torch, numpy
and PIL only, never `univigu`: `export_for_hub` copies them to the root of an exported folder, so that
`DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` works without univigu installed. The text
stream's sampling lives in its scheduler (`DiscreteFlowScheduler.step`, `.reference_step`, `.commit_argmax`).
"""

from functools import partial
from typing import Any, Callable, Dict, List, Optional, Union

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

from .call_arguments import LATENT_NORMALIZATIONS, check_call_defaults
from .hub import export_for_hub
from .input_checks import UniViGUInputChecksMixin
from .local_files import check_local_video  # noqa: F401 (so an exported folder's module cache carries it)
from .lora_loader import UniViGULoraLoaderMixin
from .pipeline_output import UniViGUPipelineOutput
from .prompt_input import UniViGUPromptInputMixin
from .serialization import UniViGUSerializationMixin, write_checksums  # noqa: F401 (write_checksums: re-exported)
from .video_input import UniViGUVideoInputMixin


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


class UniViGUPipeline(
    UniViGUSerializationMixin, DiffusionPipeline, UniViGULoraLoaderMixin, UniViGUInputChecksMixin,
    UniViGUPromptInputMixin, UniViGUVideoInputMixin,
):
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
            `"diffusers"`: latents are normalised with the VAE's `latents_mean` / `latents_std` (as `WanPipeline`
            does). `"raw"`: the reference implementation's convention (raw `latent_dist` values, decoded without
            de-normalisation); folders converted from the reference checkpoint set it.
        expand_timesteps (`bool`, defaults to `False`):
            Give the transformer one video timestep per latent token, `(batch, num_video_tokens)`, as `WanPipeline`
            does for Wan2.2-TI2V-5B (`expand_timesteps=True` in its `model_index.json`, which `univigu convert wan`
            carries over). Every token gets the step's timestep, so the values are those of the per-sample
            timestep; it keeps text-to-video exactly `WanPipeline`'s for that backbone. The text stream keeps one
            timestep per sample.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds", "text_ids"]
    _optional_components = ["text_scheduler"]

    def __init__(
        self,
        tokenizer: AutoTokenizer,
        text_encoder: UMT5EncoderModel,
        vae: AutoencoderKLWan,
        transformer: ModelMixin,
        scheduler: FlowMatchEulerDiscreteScheduler,
        text_scheduler: Optional[SchedulerMixin] = None,
        latent_normalization: str = "diffusers",
        call_defaults: Optional[Dict[str, Any]] = None,
        expand_timesteps: bool = False,  # Wan2.2 TI2V-5B, as in WanPipeline
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

    @property
    def spatial_multiple(self) -> int:
        """Height and width must be multiples of this (VAE spatial factor x transformer patch size)."""
        patch = self.transformer.config.patch_size
        return self.vae_scale_factor_spatial * max(patch[1], patch[2])

    def video_timestep(self, t: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """The transformer's video `timestep` at time `t` for `latents` `(B, C, F, H, W)`: `(B,)`, or with
        `expand_timesteps` one per video token, `(B, F/p_t * H/p_h * W/p_w)`, built as `WanPipeline` builds it."""
        if not self.config.get("expand_timesteps", False):
            return t.expand(latents.shape[0])
        p_t, p_h, p_w = self.transformer.config.patch_size
        mask = torch.ones(latents.shape[2:], dtype=torch.float32, device=latents.device)
        return (mask[::p_t, ::p_h, ::p_w] * t).flatten().unsqueeze(0).expand(latents.shape[0], -1)

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

    # ------------------------------------------------------------------ text stream

    def prepare_text_ids(
        self,
        batch_size: int,
        text_length: int,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]],
        device: torch.device,
        text_ids: Optional[torch.LongTensor] = None,
    ) -> torch.LongTensor:
        """Starting tokens of the text stream: `text_ids` as given, or source draws (uniform ids, or all [MASK]) from
        `text_scheduler` (a list of generators draws each row from its own generator)."""
        if text_ids is not None:
            return text_ids.to(device=device, dtype=torch.long)
        return self.text_scheduler.sample_source((batch_size, text_length), generator=generator, device=device)

    def decode_text(self, text_ids: torch.LongTensor) -> List[str]:
        """Token ids -> strings (`skip_special_tokens=True`; ids the tokenizer does not know are dropped)."""
        known = len(self.tokenizer)
        rows = [[i for i in row if 0 <= i < known] for row in text_ids.tolist()]
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True)

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
        fps: Optional[float] = None,
        crop: Optional[str] = None,
        start: Optional[float] = None,
        duration: Optional[float] = None,
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
        prompt_text_ids: Optional[torch.LongTensor] = None,
        prompt_text_mask: Optional[torch.Tensor] = None,
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
        if callback_on_step_end is not None and callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = []
        if isinstance(generator, tuple):
            generator = list(generator)

        # 1. Resolve the task and the defaults, and check every input before any model runs
        if max_text_length is None and isinstance(text_ids, torch.Tensor) and text_ids.ndim == 2:
            max_text_length = text_ids.shape[1]  # starting caption tokens set the caption length
        task = self._resolve_task(task, prompt, prompt_embeds, video, video_latents, generate_caption)
        # Arguments left at None take the checkpoint's stored defaults (`call_defaults`), then the built-in ones; the
        # size, frame count and rate of a video to caption are resolved by `preprocess_video`.
        default = partial(self._or_call_default, task=task)
        num_inference_steps = default("num_inference_steps", num_inference_steps)
        guidance_scale = default("guidance_scale", guidance_scale)
        video_latents_mode = default("video_latents_mode", video_latents_mode)
        max_text_length = default("max_text_length", max_text_length)
        max_sequence_length = default("max_sequence_length", max_sequence_length)
        understanding_attention = default("understanding_attention", understanding_attention)
        if task != "v2t":
            height, width = default("height", height), default("width", width)
            num_frames = default("num_frames", num_frames)
        self.check_inputs(
            task=task, prompt=prompt, negative_prompt=negative_prompt, height=height, width=width,
            num_frames=num_frames, fps=fps, crop=crop, start=start, duration=duration,
            num_inference_steps=num_inference_steps, sigmas=sigmas,
            guidance_scale=guidance_scale, num_videos_per_prompt=num_videos_per_prompt, generator=generator,
            latents=latents, prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds,
            prompt_text_ids=prompt_text_ids, prompt_text_mask=prompt_text_mask, text_stream=text_stream,
            video_latents=video_latents, video_latents_mode=video_latents_mode, conditioning_text=conditioning_text,
            max_text_length=max_text_length, temperature=temperature, commit_strategy=commit_strategy,
            video_cache_interval=video_cache_interval, understanding_attention=understanding_attention,
            text_update=text_update, text_ids=text_ids, output_type=output_type,
            max_sequence_length=max_sequence_length, callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )

        self._guidance_scale = guidance_scale
        self._attention_kwargs = attention_kwargs
        self._current_timestep = None
        self._interrupt = False

        device = self._execution_device
        transformer_dtype = self.transformer.dtype
        stream_mask = None

        # 2. Encode the inputs: the prompt (t2v, t2vt), or the video to caption and its optional text condition (v2t)
        if task == "v2t":
            if video_latents is None:
                video = self.preprocess_video(
                    video, height=height, width=width, num_frames=num_frames, fps=fps, crop=crop, start=start,
                    duration=duration,
                )
                self.check_video(video, num_videos_per_prompt, generator, text_ids, conditioning_text)
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
        text_scheduler = self.text_scheduler if task != "t2v" else None
        if text_scheduler is not None and commit_strategy not in (None, text_scheduler.config.commit_strategy):
            # a per-call override: the pipeline's scheduler keeps its own strategy
            text_scheduler = type(text_scheduler).from_config(text_scheduler.config, commit_strategy=commit_strategy)
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
            num_channels_latents = self.transformer.config.in_channels
            latents = self.prepare_latents(
                total, num_channels_latents, height, width, num_frames, torch.float32, device, generator, latents
            )
        if text_scheduler is not None:
            text_scheduler.set_begin_index(0)
            text_ids = self.prepare_text_ids(total, max_text_length, generator, device, text_ids)
            self._check_ids_fit(text_ids, name="text_ids")

        # 5. Denoising loop: one step of the video and/or the text stream per timestep
        if task == "v2t":
            # The video is clean and fixed: with a cache, only every `video_cache_interval`-th step runs its tokens.
            model_kwargs = dict(attention_kwargs or {})
            if understanding_attention != "full":
                model_kwargs["understanding_attention"] = understanding_attention
            if video_cache_interval is not None:
                model_kwargs["video_kv_cache"] = self.transformer.video_kv_cache()
            denoise_step = partial(
                self._caption_step, text_scheduler=text_scheduler, model_kwargs=model_kwargs,
                video_cache_interval=video_cache_interval, generator=generator, temperature=temperature,
            )
        else:
            text_step = None
            if task == "t2vt":
                text_step = text_scheduler.step if text_update == "scheduler" else text_scheduler.reference_step
            denoise_step = partial(
                self._generation_step, text_step=text_step, stream_mask=stream_mask, generator=generator,
                temperature=temperature,
            )
        # what a step updates, and what `callback_on_step_end` may see and replace (`_callback_tensor_inputs`)
        tensors = {"latents": latents, "text_ids": text_ids}
        tensors.update(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds)
        history = [] if return_text_history and task != "t2v" else None
        order = (text_scheduler if task == "v2t" else self.scheduler).order
        num_warmup_steps = len(timesteps) - num_inference_steps * order
        self._num_timesteps = len(timesteps)

        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                tensors = denoise_step(i, t, tensors)

                if history is not None:
                    history.append(self.decode_text(tensors["text_ids"]))
                if callback_on_step_end is not None:
                    callback_kwargs = {k: tensors[k] for k in callback_on_step_end_tensor_inputs}
                    tensors.update(self._run_callback(callback_on_step_end, i, t, callback_kwargs))

                if i == len(timesteps) - 1 or ((i + 1) > num_warmup_steps and (i + 1) % order == 0):
                    progress_bar.update()

        self._current_timestep = None
        latents, text_ids = tensors["latents"], tensors["text_ids"]

        # 6. text_update="reference": the reference's final argmax pass on the caption (text time 0, clean video)
        if task == "t2vt" and text_update == "reference":
            zeros = torch.zeros(latents.shape[0], device=device, dtype=timesteps.dtype)
            with self.transformer.cache_context("caption"):  # a step cache's own state: this call runs in full
                logits = self.transformer(
                    hidden_states=latents.to(transformer_dtype), timestep=self.video_timestep(zeros[0], latents),
                    text_ids=text_ids, text_timestep=zeros, encoder_hidden_states=tensors["prompt_embeds"],
                    attention_kwargs=attention_kwargs, return_dict=False,
                )[1]
            text_ids = text_scheduler.commit_argmax(logits[..., : self._text_vocab_size()], text_ids)
            if history is not None:
                history.append(self.decode_text(text_ids))

        # 7. Decode
        if task == "v2t":
            video = None
        elif output_type == "latent":
            video = latents
        else:
            video = self.decode_latents(latents, output_type=output_type)
        if task == "t2v":
            text_ids = None
        text = self.decode_text(text_ids) if text_ids is not None else None

        # Offload all models
        self.maybe_free_model_hooks()

        if not return_dict:
            return (video, text)
        return UniViGUPipelineOutput(frames=video, text=text, text_ids=text_ids, text_history=history)

    def _cache_context(self, name: str, step_index: int, sigma):
        """The context of one transformer call of the loop, for diffusers' step caches (`transformer.enable_cache`),
        as WanPipeline enters it: each name (`cond`, `uncond`) keeps its own cache state."""
        return self.transformer.cache_context(
            name, step_index=step_index, sigma=float(sigma), num_inference_steps=self._num_timesteps
        )

    def _generation_step(self, i, t, tensors, *, text_step, stream_mask, generator, temperature):
        """One step of t2v / t2vt: the video's flow step with classifier-free guidance (as in `WanPipeline`; both
        passes carry the same text stream) and, in t2vt, the caption's step (`text_step`, at text time = video time).
        In t2v the text stream, when on, holds the prompt's clean tokens (text time 0)."""
        latents, text_ids = tensors["latents"], tensors["text_ids"]
        latent_model_input = latents.to(self.transformer.dtype)
        timestep = self.video_timestep(t, latents)
        stream_kwargs = {}
        if text_ids is not None and text_step is None:  # t2v: the prompt's tokens, clean
            stream_kwargs = dict(text_ids=text_ids, text_timestep=torch.zeros_like(t.expand(latents.shape[0])))
            stream_kwargs["text_attention_mask"] = stream_mask
        elif text_ids is not None:  # t2vt: the caption being written, at the video's time (one per sample)
            stream_kwargs = dict(text_ids=text_ids, text_timestep=t.expand(latents.shape[0]))

        sigma = self.scheduler.sigmas[i]
        with self._cache_context("cond", i, sigma):
            output = self.transformer(
                hidden_states=latent_model_input,
                timestep=timestep,
                encoder_hidden_states=tensors["prompt_embeds"],
                attention_kwargs=self.attention_kwargs,
                return_dict=False,
                **stream_kwargs,
            )
        noise_pred = output[0]
        if self.do_classifier_free_guidance:
            with self._cache_context("uncond", i, sigma):
                noise_uncond = self.transformer(
                    hidden_states=latent_model_input,
                    timestep=timestep,
                    encoder_hidden_states=tensors["negative_prompt_embeds"],
                    attention_kwargs=self.attention_kwargs,
                    return_dict=False,
                    **stream_kwargs,
                )[0]
            noise_pred = noise_uncond + self.guidance_scale * (noise_pred - noise_uncond)

        # compute the previous noisy sample x_t -> x_t-1, and the caption's next tokens
        tensors["latents"] = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
        if text_step is not None:
            logits = output[1][..., : self._text_vocab_size()]
            text_ids = text_step(logits, t, text_ids, generator=generator, temperature=temperature).prev_sample
            tensors["text_ids"] = text_ids
        return tensors

    def _caption_step(self, i, t, tensors, *, text_scheduler, model_kwargs, video_cache_interval, generator,
                      temperature):
        """One step of v2t: the caption's discrete-flow step on the clean video (video time 0). With a video KV cache,
        the video tokens run only on every `video_cache_interval`-th step."""
        text_ids = tensors["text_ids"]
        video_kv_cache = model_kwargs.get("video_kv_cache")
        with_video = video_kv_cache is None or i % video_cache_interval == 0
        if video_kv_cache is not None:
            video_kv_cache.refresh = with_video
        with self._cache_context("cond", i, t / text_scheduler.config.num_train_timesteps):  # the text's noise level
            logits = self.transformer(
                hidden_states=tensors["latents"] if with_video else None,
                timestep=self.video_timestep(t.new_zeros(()), tensors["latents"]) if with_video else None,
                encoder_hidden_states=tensors["prompt_embeds"],
                text_ids=text_ids,
                text_timestep=t.expand(text_ids.shape[0]),
                attention_kwargs=model_kwargs or None,
                return_dict=False,
            )[1]
        logits = logits[..., : self._text_vocab_size()]
        text_ids = text_scheduler.step(logits, t, text_ids, generator=generator, temperature=temperature).prev_sample
        tensors["text_ids"] = text_ids
        return tensors


__all__ = ["UniViGUPipeline", "UniViGUPipelineOutput", "export_for_hub"]
