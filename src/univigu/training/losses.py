# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The unified Uni-ViGU training loss and the task views it is computed on.

One forward pass of `UniViGUTransformer3DModel` serves a whole batch whose samples are each drawn in one of three
*task views* (docs/training.md):

| view          | video stream                              | text stream                  | umT5 condition |
|---------------|-------------------------------------------|------------------------------|----------------|
| understanding | clean (timestep 0) or lightly noised      | noised (own timestep)        | null (zeros)   |
| generation    | noised (flow matching)                    | clean, text timestep 0       | the prompt     |
| joint         | noised                                    | noised, independent timestep | the prompt     |

The understanding view's condition is null on purpose: in Knowledge Recall the text target *is* the prompt, so a
visible prompt would teach the model to copy it through cross-attention instead of reading the video.

The loss is

    L = mean_{video-noised samples} w(sigma) * mean((v_pred - (noise - x0))^2)
        + lambda * mean_{real tokens of text-noised samples} CE(text_logits, clean ids)

Video: sigma ~ diffusers' `compute_density_for_timestep_sampling` (uniform, logit-normal or mode), optionally
shifted like Wan's sampler (`sigma' = shift * sigma / (1 + (shift - 1) * sigma)`), `x_s = (1 - sigma) x0 +
sigma * noise`, model timestep `sigma * 1000`, velocity target `noise - x0`, weighting from
`compute_loss_weighting_for_sd3`. Text: paper time `t ~ U(0, 1)` (0 = source, 1 = clean), model timestep
`(1 - t) * 1000`, `x_t` from `DiscreteFlowScheduler.add_noise`, cross-entropy of the logits against the clean ids.
Each stream draws its own timestep, independently. A stream that is not noised in a view (video in understanding,
text in generation) carries no loss for that sample: there is nothing to predict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.training_utils import compute_density_for_timestep_sampling, compute_loss_weighting_for_sd3


UNDERSTANDING = 0
GENERATION = 1
JOINT = 2
VIEW_NAMES = ("understanding", "generation", "joint")


@dataclass
class UnifiedLossConfig:
    """Settings of the unified loss and of the view sampling.

    Args:
        view_ratios: relative frequencies of the (understanding, generation, joint) views; normalised, need not sum
            to 1. `(1, 0, 0)` trains understanding only.
        text_loss_weight: lambda, the weight of the text cross-entropy.
        video_loss_weight: weight of the video flow-matching MSE.
        weighting_scheme: diffusers' timestep density and loss weighting: "none" (uniform sigma, unit weights),
            "logit_normal", "mode", "sigma_sqrt", "cosmap".
        logit_mean, logit_std, mode_scale: parameters of the "logit_normal" / "mode" densities.
        flow_shift: time shift applied to the sampled sigma (1.0 = none; Wan's sampler uses 3.0-5.0).
        understanding_video_noise: maximum sigma of the light noise put on the video of an understanding view
            (sigma ~ U(0, max)); 0 (default) keeps the video exactly clean, as the reference's v2t sees it.
        text_time_power: the text stream's paper time is drawn as `t = u ** text_time_power`, `u ~ U(0, 1)`. 1
            (default) is the uniform draw; above 1, captions are mostly noised, so more of their tokens must be
            predicted from the video rather than from the caption's other, still clean words.
        num_train_timesteps: the model's timestep scale (1000 for Wan).
        understanding_attention: "full" (the reference) or "video_prefix": in understanding views the clean video
            tokens do not attend to the text tokens, so a captioning sampler may compute the video's keys/values
            once (`video_cache_interval`) and stay exact. Generation and joint views always use full attention.
    """

    view_ratios: Sequence[float] = (1.0, 1.0, 1.0)
    text_loss_weight: float = 1.0
    video_loss_weight: float = 1.0
    weighting_scheme: str = "none"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    flow_shift: float = 1.0
    understanding_video_noise: float = 0.0
    text_time_power: float = 1.0
    num_train_timesteps: int = 1000
    understanding_attention: str = "full"

    def __post_init__(self):
        ratios = [float(r) for r in self.view_ratios]
        if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
            raise ValueError(
                "`view_ratios` must be three non-negative numbers (understanding, generation, joint) with a positive "
                f"sum, got {list(self.view_ratios)}."
            )
        self.view_ratios = tuple(ratios)
        if self.weighting_scheme not in ("none", "logit_normal", "mode", "sigma_sqrt", "cosmap"):
            raise ValueError(
                f"Unknown weighting_scheme {self.weighting_scheme!r}: use one of none, logit_normal, mode, "
                "sigma_sqrt, cosmap (diffusers.training_utils)."
            )
        if not 0.0 <= self.understanding_video_noise <= 1.0:
            raise ValueError(f"`understanding_video_noise` must lie in [0, 1], got {self.understanding_video_noise}.")
        if self.understanding_attention not in ("full", "video_prefix"):
            raise ValueError(
                f"`understanding_attention` must be 'full' or 'video_prefix', got {self.understanding_attention!r}."
            )
        if self.flow_shift <= 0:
            raise ValueError(f"`flow_shift` must be > 0, got {self.flow_shift}.")
        if self.text_time_power <= 0:
            raise ValueError(f"`text_time_power` must be > 0, got {self.text_time_power}.")


@dataclass
class TrainingInputs:
    """Model inputs of one batch of task views, and what the loss needs to score the outputs."""

    hidden_states: torch.Tensor  # (B, C, F, H, W) noised (or clean) video latents
    timestep: torch.Tensor  # (B,) video timesteps, sigma * 1000
    encoder_hidden_states: torch.Tensor  # (B, N, text_dim), zeros for understanding views
    text_ids: torch.LongTensor  # (B, L) noised (or clean) text ids
    text_timestep: torch.Tensor  # (B,) text timesteps, (1 - t) * 1000; 0 = clean
    text_attention_mask: torch.Tensor  # (B, L) bool
    views: torch.LongTensor  # (B,) UNDERSTANDING / GENERATION / JOINT
    sigmas: torch.Tensor  # (B,) video sigma in [0, 1]
    video_target: torch.Tensor  # (B, C, F, H, W) noise - x0
    clean_text_ids: torch.LongTensor  # (B, L)
    video_loss_mask: torch.Tensor  # (B,) bool: sample contributes to the video loss
    text_loss_mask: torch.Tensor  # (B,) bool: sample contributes to the text loss
    video_weighting: torch.Tensor  # (B,) loss weighting of each sample's video term

    def model_kwargs(self) -> dict:
        return {
            "hidden_states": self.hidden_states,
            "timestep": self.timestep,
            "encoder_hidden_states": self.encoder_hidden_states,
            "text_ids": self.text_ids,
            "text_timestep": self.text_timestep,
            "text_attention_mask": self.text_attention_mask,
        }


@dataclass
class LossOutput:
    loss: torch.Tensor  # the total, differentiable
    video_loss: torch.Tensor  # detached; nan when no sample of the batch trains the video stream
    text_loss: torch.Tensor  # detached; nan when no sample of the batch trains the text stream
    num_video_samples: int = 0
    num_text_tokens: int = 0
    view_counts: dict = field(default_factory=dict)


def sample_task_views(
    batch_size: int,
    view_ratios: Sequence[float],
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.LongTensor:
    """Draws one task view per sample (0 understanding, 1 generation, 2 joint) with probabilities proportional to
    `view_ratios`."""
    probs = torch.tensor([float(r) for r in view_ratios], dtype=torch.float64)
    if probs.numel() != 3 or (probs < 0).any() or probs.sum() <= 0:
        raise ValueError(f"`view_ratios` must be three non-negative numbers with a positive sum, got {view_ratios}.")
    gen_device = generator.device if generator is not None else "cpu"
    views = torch.multinomial(probs.to(gen_device), batch_size, replacement=True, generator=generator)
    return views.to(device)


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan/SD3 time shift: `shift * s / (1 + (shift - 1) * s)` (identity for shift 1)."""
    if shift == 1.0:
        return sigmas
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def sample_video_sigmas(
    batch_size: int, config: UnifiedLossConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Flow-matching sigmas in [0, 1] from diffusers' SD3 timestep densities (then `flow_shift`)."""
    gen_device = generator.device if generator is not None else "cpu"
    u = compute_density_for_timestep_sampling(
        weighting_scheme=config.weighting_scheme,
        batch_size=batch_size,
        logit_mean=config.logit_mean,
        logit_std=config.logit_std,
        mode_scale=config.mode_scale,
        device=gen_device,
        generator=generator,
    )
    return shift_sigmas(u.float().clamp(0.0, 1.0), config.flow_shift)


def sample_text_times(batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Paper times t ~ U(0, 1) of the text stream (0 = pure source, 1 = clean)."""
    gen_device = generator.device if generator is not None else "cpu"
    return torch.rand(batch_size, generator=generator, device=gen_device, dtype=torch.float32)


def build_training_inputs(
    latents: torch.Tensor,
    text_ids: torch.LongTensor,
    text_attention_mask: torch.Tensor | None,
    prompt_embeds: torch.Tensor,
    text_scheduler,
    config: UnifiedLossConfig,
    views: torch.LongTensor | None = None,
    generator: torch.Generator | None = None,
    generation_attention_mask: torch.Tensor | None = None,
) -> TrainingInputs:
    """Turns a clean batch into one batch of task views.

    Args:
        latents: clean (normalised) VAE latents x0, `(B, C, F, H, W)`.
        text_ids: clean text-stream ids, `(B, L)`.
        text_attention_mask: `(B, L)`, 1 for positions that are trained and attended (None: all).
        prompt_embeds: umT5 embedding of the conditioning prompt, `(B, N, text_dim)`.
        text_scheduler: a `DiscreteFlowScheduler` (its `add_noise` draws the text mixture path).
        config: a `UnifiedLossConfig`.
        views: the view of each sample (drawn from `config.view_ratios` when None).
        generator: a CPU `torch.Generator`; every random draw (views, sigmas, noise, text times, text noise) comes
            from it, so a (seed, step) pair fixes the batch completely, whatever the process's global RNG did.
        generation_attention_mask: `(B, L)`, the text attention mask of generation views (default:
            `text_attention_mask`). Text-to-video puts the prompt's own tokens in the text stream with its padding
            masked, so a generation view can attend the same way while understanding views learn the padding.
    """
    device = latents.device
    batch_size = latents.shape[0]
    if text_ids.shape[0] != batch_size or prompt_embeds.shape[0] != batch_size:
        raise ValueError(
            f"Batch sizes differ: latents {batch_size}, text_ids {text_ids.shape[0]}, "
            f"prompt_embeds {prompt_embeds.shape[0]}."
        )
    if text_attention_mask is None:
        text_attention_mask = torch.ones_like(text_ids, dtype=torch.bool)
    text_attention_mask = text_attention_mask.to(device=text_ids.device, dtype=torch.bool)

    if views is None:
        views = sample_task_views(batch_size, config.view_ratios, generator=generator)
    views = views.to("cpu")
    understanding = views == UNDERSTANDING
    generation = views == GENERATION

    # Video stream: flow matching. Understanding views see the clean (or lightly noised) video.
    sigmas = sample_video_sigmas(batch_size, config, generator)
    if config.understanding_video_noise > 0:
        light = torch.rand(batch_size, generator=generator, device=sigmas.device) * config.understanding_video_noise
    else:
        light = torch.zeros(batch_size)
    sigmas = torch.where(understanding, light, sigmas)
    noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32).to(device=device)
    sig = sigmas.to(device=device, dtype=torch.float32).view(-1, 1, 1, 1, 1)
    x0 = latents.float()
    noisy_latents = ((1.0 - sig) * x0 + sig * noise).to(latents.dtype)
    video_target = noise - x0
    timestep = (sigmas * config.num_train_timesteps).to(device)

    # Text stream: discrete mixture path. Generation views see the clean text at timestep 0.
    t = sample_text_times(batch_size, generator)
    if config.text_time_power != 1.0:
        t = t.pow(config.text_time_power)
    text_timestep = (1.0 - t) * config.num_train_timesteps
    text_timestep = torch.where(generation, torch.zeros_like(text_timestep), text_timestep)
    noised = text_scheduler.add_noise(text_ids.cpu(), text_timestep.double(), generator=generator)
    noised = noised.to(text_ids.device)
    # Padding positions (mask 0) are neither noised nor scored: keep them as they are.
    noised = torch.where(text_attention_mask, noised, text_ids)
    noised = torch.where(generation.to(text_ids.device).view(-1, 1), text_ids, noised)

    if generation_attention_mask is not None:
        gen_rows = generation.to(text_ids.device).view(-1, 1)
        text_attention_mask = torch.where(
            gen_rows, generation_attention_mask.to(device=text_ids.device, dtype=torch.bool), text_attention_mask
        )

    # Condition: the null condition (zeros) for understanding views, the prompt otherwise.
    keep_prompt = (~understanding).to(device=prompt_embeds.device, dtype=prompt_embeds.dtype).view(-1, 1, 1)
    encoder_hidden_states = prompt_embeds * keep_prompt

    video_weighting = compute_loss_weighting_for_sd3(config.weighting_scheme, sigmas.clamp_min(1e-4))

    return TrainingInputs(
        hidden_states=noisy_latents,
        timestep=timestep,
        encoder_hidden_states=encoder_hidden_states,
        text_ids=noised,
        text_timestep=text_timestep.to(device),
        text_attention_mask=text_attention_mask,
        views=views.to(device),
        sigmas=sigmas.to(device),
        video_target=video_target,
        clean_text_ids=text_ids,
        video_loss_mask=(~understanding).to(device),
        text_loss_mask=(~generation).to(device),
        video_weighting=video_weighting.to(device),
    )


def compute_unified_loss(
    video_pred: torch.Tensor | None,
    text_logits: torch.Tensor | None,
    inputs: TrainingInputs,
    config: UnifiedLossConfig,
) -> LossOutput:
    """`video_loss_weight * video MSE + text_loss_weight * text CE` on the samples whose stream was noised.

    The video term is the mean over contributing samples of `weight * mean((pred - (noise - x0))^2)`; the text term
    is the cross-entropy averaged over the real (attention-mask) tokens of the contributing samples. A term with no
    contributing sample in the batch adds an exact zero that still touches the graph (so DDP sees every parameter
    used).
    """
    total = 0.0
    video_loss = text_loss = torch.tensor(float("nan"))
    num_video = int(inputs.video_loss_mask.sum())
    num_tokens = 0

    if video_pred is not None:
        per_sample = ((video_pred.float() - inputs.video_target.float()) ** 2).flatten(1).mean(dim=1)
        per_sample = per_sample * inputs.video_weighting.float()
        mask = inputs.video_loss_mask.float()
        if num_video > 0:
            video_term = (per_sample * mask).sum() / mask.sum()
            video_loss = video_term.detach()
        else:
            video_term = (per_sample * 0.0).sum()
        total = total + config.video_loss_weight * video_term
    if text_logits is not None:
        token_mask = inputs.text_attention_mask & inputs.text_loss_mask.view(-1, 1)
        num_tokens = int(token_mask.sum())
        ce = F.cross_entropy(
            text_logits.float().flatten(0, 1), inputs.clean_text_ids.flatten(), reduction="none"
        ).view_as(token_mask)
        if num_tokens > 0:
            text_term = (ce * token_mask.float()).sum() / num_tokens
            text_loss = text_term.detach()
        else:
            text_term = (ce * 0.0).sum()
        total = total + config.text_loss_weight * text_term
    if not torch.is_tensor(total):
        raise ValueError("compute_unified_loss needs at least one of `video_pred` and `text_logits`.")
    counts = {name: int((inputs.views == i).sum()) for i, name in enumerate(VIEW_NAMES)}
    return LossOutput(
        loss=total,
        video_loss=video_loss,
        text_loss=text_loss,
        num_video_samples=num_video,
        num_text_tokens=num_tokens,
        view_counts=counts,
    )


class UnifiedLoss:
    """Draws task views for a clean batch, runs the transformer once, and returns the unified loss.

    >>> loss_fn = UnifiedLoss(text_scheduler, UnifiedLossConfig(view_ratios=(2, 1, 1), text_loss_weight=1.0))
    >>> out = loss_fn(transformer, latents, text_ids, text_mask, prompt_embeds, generator=torch.Generator().manual_seed(0))
    >>> out.loss.backward()
    """

    def __init__(self, text_scheduler, config: UnifiedLossConfig | None = None):
        self.text_scheduler = text_scheduler
        self.config = config or UnifiedLossConfig()

    def prepare(self, latents, text_ids, text_attention_mask, prompt_embeds, views=None, generator=None,
                generation_attention_mask=None):
        return build_training_inputs(
            latents, text_ids, text_attention_mask, prompt_embeds, self.text_scheduler, self.config, views, generator,
            generation_attention_mask,
        )

    def __call__(
        self,
        model,
        latents: torch.Tensor,
        text_ids: torch.LongTensor,
        text_attention_mask: torch.Tensor | None,
        prompt_embeds: torch.Tensor,
        views: torch.LongTensor | None = None,
        generator: torch.Generator | None = None,
        input_dtype: torch.dtype | None = None,
        generation_attention_mask: torch.Tensor | None = None,
    ) -> LossOutput:
        """`input_dtype` casts the float model inputs (e.g. to bf16 when the frozen base weights are bf16 and no
        autocast is active); targets and the loss stay in fp32."""
        inputs = self.prepare(
            latents, text_ids, text_attention_mask, prompt_embeds, views, generator, generation_attention_mask
        )
        kwargs = inputs.model_kwargs()
        if input_dtype is not None:
            kwargs["hidden_states"] = kwargs["hidden_states"].to(input_dtype)
            kwargs["encoder_hidden_states"] = kwargs["encoder_hidden_states"].to(input_dtype)
        if self.config.understanding_attention == "video_prefix":
            kwargs["attention_kwargs"] = {"understanding_attention": inputs.views == UNDERSTANDING}
        output = model(**kwargs, return_dict=True)
        return compute_unified_loss(output.sample, output.text_logits, inputs, self.config)


__all__ = [
    "UNDERSTANDING",
    "GENERATION",
    "JOINT",
    "VIEW_NAMES",
    "UnifiedLossConfig",
    "TrainingInputs",
    "LossOutput",
    "UnifiedLoss",
    "sample_task_views",
    "sample_video_sigmas",
    "sample_text_times",
    "shift_sigmas",
    "build_training_inputs",
    "compute_unified_loss",
]
