# Copyright 2026 The univigu authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Discrete flow matching scheduler for Uni-ViGU's text stream.

**Probability path.** Text tokens follow the *mixture path* of discrete flow matching. With paper time
``t`` in ``[0, 1]`` (``t = 0``: pure source, ``t = 1``: clean) and a clean sequence ``x1``, every position is
independently

    x_t = x1                with probability kappa(t) = t ** n            (n = ``kappa_exponent``, 1 by default)
    x_t ~ source            with probability 1 - kappa(t)

where the source is either uniform over the ``vocab_size`` real tokens (``source="uniform"``, the reference's
choice; a uniform draw may coincide with the clean token) or the single ``[MASK]`` id (``source="mask"``).

**Sampling (the Euler jump).** Given denoiser logits, the posterior ``p_{1|t}`` is a softmax over the real tokens
(a mask id is never predicted). The marginal velocity of the mixture path is

    u_t(y | x_t) = kappa'(t) / (1 - kappa(t)) * (p_{1|t}(y) - delta(y, x_t)),

so over a step ``t -> t' = t + h`` a position jumps to a fresh sample ``x1 ~ p_{1|t}`` with probability
``min(1, h * kappa'(t) / (1 - kappa(t)))`` and otherwise stays. This is the first-order (Euler) discretisation of
the jump rate; with ``kappa(t) = t`` and the uniform grid ``t_k = k / N`` it gives ``1 / (N - k)``, so the expected
fraction of jumped (mask) positions after ``k`` steps is exactly ``k / N``. Whatever ``kappa``, a step that lands on
``t' = 1`` jumps with probability 1, so sampling always ends on the model's prediction. ``commit_strategy=
"confidence"`` replaces the random jumps by deterministic commits of the most confident positions, following the
same ``kappa`` schedule (see :meth:`DiscreteFlowScheduler.step`).

**The reference's update.** :meth:`DiscreteFlowScheduler.reference_step` is the heuristic of the reference
implementation's joint sampler (resample every position with probability ``i / (N - 1)`` at step ``i`` of ``N``),
and :meth:`DiscreteFlowScheduler.commit_argmax` its final argmax pass. Every rule samples through
:meth:`DiscreteFlowScheduler.sample_tokens`, which takes one generator per sample (a list) as well as one for the batch.

**Timestep convention.** Public methods take and return timesteps on the Wan/diffusers scale
``timestep = (1 - t) * num_train_timesteps``: ``1000`` is pure source and ``0`` is clean, exactly like Wan's
video timesteps, so text and video time can be fed to the transformer the same way (and be equal in joint
generation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput


_SOURCES = ("uniform", "mask")
_SAMPLING_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_COMMIT_STRATEGIES = ("stochastic", "confidence")


@dataclass
class DiscreteFlowSchedulerOutput(BaseOutput):
    """
    Output of [`DiscreteFlowScheduler.step`].

    Args:
        prev_sample (`torch.LongTensor` of shape `(batch_size, seq_len)`):
            Token ids at the next (cleaner) time. Feed them to the model at the next step.
        pred_original_sample (`torch.LongTensor` of shape `(batch_size, seq_len)`):
            The clean tokens sampled (or, with `temperature=0`, the argmax) from the model's posterior at this step.
            Positions excluded by `attention_mask` hold the input tokens.
    """

    prev_sample: torch.LongTensor
    pred_original_sample: torch.LongTensor


class DiscreteFlowScheduler(SchedulerMixin, ConfigMixin):
    """
    Mixture-path discrete flow matching scheduler for text token ids (uniform or mask source, polynomial `kappa`,
    Euler jump step or confidence-ordered commits).

    Timesteps are on the `0..num_train_timesteps` scale: `timestep = (1 - t) * num_train_timesteps` with paper time
    `t` (`t = 0` pure source, `t = 1` clean). See the module docstring for the path and the jump rate.

    Args:
        vocab_size (`int`):
            Number of real tokens. Sampled and uniform-source ids lie in `[0, vocab_size)`.
        source (`str`, defaults to `"uniform"`):
            Source distribution: `"uniform"` over the real tokens, or `"mask"` (every noised token is
            `mask_token_id`).
        mask_token_id (`int`, *optional*):
            Id of the mask token; only used with `source="mask"`. Defaults to `vocab_size` (the extra embedding row).
            Must be `>= vocab_size`, i.e. not a real token.
        kappa_exponent (`float`, defaults to `1.0`):
            `n` in `kappa(t) = t ** n`, the probability that a token equals the clean token at time `t`.
        num_train_timesteps (`int`, defaults to `1000`):
            Scale of the model timesteps.
        sampling_dtype (`str`, defaults to `"float64"`):
            Dtype of the softmax and of categorical sampling (`"float64"` or `"float32"`).
        commit_strategy (`str`, defaults to `"stochastic"`):
            `"stochastic"`: the Euler jump of the mixture path. `"confidence"`: commit the most confident positions
            first, so that a fraction `kappa(t')` of the valid positions is committed after each step.
    """

    config_name = "scheduler_config.json"
    _compatibles = []
    order = 1

    @register_to_config
    def __init__(
        self,
        vocab_size: int,
        source: str = "uniform",
        mask_token_id: int | None = None,
        kappa_exponent: float = 1.0,
        num_train_timesteps: int = 1000,
        sampling_dtype: str = "float64",
        commit_strategy: str = "stochastic",
    ):
        if int(vocab_size) < 1:
            raise ValueError(f"`vocab_size` must be a positive integer, got {vocab_size}.")
        if source not in _SOURCES:
            raise ValueError(f"`source` must be one of {_SOURCES}, got {source!r}.")
        if sampling_dtype not in _SAMPLING_DTYPES:
            raise ValueError(f"`sampling_dtype` must be one of {tuple(_SAMPLING_DTYPES)}, got {sampling_dtype!r}.")
        if commit_strategy not in _COMMIT_STRATEGIES:
            raise ValueError(f"`commit_strategy` must be one of {_COMMIT_STRATEGIES}, got {commit_strategy!r}.")
        if not float(kappa_exponent) > 0:
            raise ValueError(f"`kappa_exponent` must be > 0, got {kappa_exponent}.")
        if int(num_train_timesteps) < 1:
            raise ValueError(f"`num_train_timesteps` must be a positive integer, got {num_train_timesteps}.")

        if source == "mask":
            if mask_token_id is None:
                mask_token_id = int(vocab_size)
                # record the resolved id so that the saved config is explicit
                self.register_to_config(mask_token_id=mask_token_id)
            elif int(mask_token_id) < int(vocab_size):
                raise ValueError(
                    f"`mask_token_id` ({mask_token_id}) is a real token id (< vocab_size={vocab_size}); with "
                    f"source='mask' it must be >= vocab_size. Leave it as None to use vocab_size (the extra "
                    f"embedding row), or reduce `vocab_size` to the number of real tokens."
                )
        self.mask_token_id = int(mask_token_id) if source == "mask" else None

        self.num_inference_steps: int | None = None
        self.timesteps: torch.Tensor | None = None
        # paper times of the schedule, float64, length num_inference_steps + 1 (the last one is t = 1)
        self.t_schedule: torch.Tensor | None = None
        self._committed: torch.BoolTensor | None = None
        self._step_index: int | None = None
        self._begin_index: int | None = None

    # ------------------------------------------------------------------ time helpers

    def timestep_to_t(self, timestep: float | torch.Tensor) -> float | torch.Tensor:
        """Model timestep (`num_train_timesteps` = source, 0 = clean) -> paper time `t` (0 = source, 1 = clean)."""
        return 1.0 - timestep / self.config.num_train_timesteps

    def t_to_timestep(self, t: float | torch.Tensor) -> float | torch.Tensor:
        """Paper time `t` (0 = source, 1 = clean) -> model timestep `(1 - t) * num_train_timesteps`."""
        return (1.0 - t) * self.config.num_train_timesteps

    def kappa(self, t: float | torch.Tensor) -> float | torch.Tensor:
        """`kappa(t) = t ** n`: probability that a token equals the clean token at paper time `t`."""
        return t ** float(self.config.kappa_exponent)

    def kappa_derivative(self, t: float | torch.Tensor) -> float | torch.Tensor:
        """`kappa'(t) = n * t ** (n - 1)` (infinite at `t = 0` when `n < 1`)."""
        n = float(self.config.kappa_exponent)
        if isinstance(t, torch.Tensor):
            if n == 1.0:
                return torch.ones_like(t)
            return n * t.pow(n - 1.0)
        t = float(t)
        if n == 1.0:
            return 1.0
        if t == 0.0:
            return 0.0 if n > 1.0 else math.inf
        return n * t ** (n - 1.0)

    # ------------------------------------------------------------------ step index (diffusers style)

    @property
    def step_index(self) -> int | None:
        """Index of the current timestep; increases by 1 after each `step`."""
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        """Index of the first timestep; set it from a pipeline with `set_begin_index`."""
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0):
        """Sets the index of the first timestep (e.g. to start sampling part-way through the schedule)."""
        self._begin_index = begin_index

    @property
    def committed(self) -> torch.BoolTensor | None:
        """Per-position commit state of `commit_strategy="confidence"` (`None` before the first step)."""
        return self._committed

    def index_for_timestep(self, timestep: float | torch.Tensor, schedule_timesteps: torch.Tensor | None = None) -> int:
        """Index of the schedule entry nearest to `timestep`."""
        if schedule_timesteps is None:
            schedule_timesteps = self.timesteps
        value = float(timestep.flatten()[0]) if isinstance(timestep, torch.Tensor) else float(timestep)
        return int((schedule_timesteps.detach().cpu().double() - value).abs().argmin())

    def _init_step_index(self, timestep: float | torch.Tensor):
        if self.begin_index is None:
            self._step_index = self.index_for_timestep(timestep)
        else:
            self._step_index = self._begin_index

    def __len__(self):
        return self.config.num_train_timesteps

    # ------------------------------------------------------------------ schedule

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: list[float] | torch.Tensor | None = None,
    ):
        """
        Sets the discrete time grid used for sampling (call it before every sampling run; it also resets the step
        index and the commit state of the confidence strategy).

        Args:
            num_inference_steps (`int`, *optional*):
                Number of model calls `N`. The default grid is `t_k = k / N`, `k = 0..N-1`, i.e. timesteps
                `(1 - k / N) * num_train_timesteps`, from `num_train_timesteps` down to `num_train_timesteps / N`.
            device (`str` or `torch.device`, *optional*):
                Device of `self.timesteps`.
            timesteps (`list[float]` or `torch.Tensor`, *optional*):
                A custom, strictly descending list of timesteps in `[0, num_train_timesteps]`, e.g. the video
                scheduler's timesteps for joint generation (text time = video time). The step after the last one goes
                to `t = 1` (timestep 0). If the list itself ends at 0, its last step is a final pass at `t = 1` that
                commits the model's prediction everywhere.
        """
        T = self.config.num_train_timesteps
        if timesteps is not None:
            ts = torch.as_tensor(timesteps).detach().to("cpu", torch.float64).flatten()
            if num_inference_steps is not None and num_inference_steps != ts.numel():
                raise ValueError(
                    f"Got `num_inference_steps={num_inference_steps}` and {ts.numel()} custom `timesteps`; pass only "
                    f"one of them (or make them agree)."
                )
            if ts.numel() == 0:
                raise ValueError("`timesteps` is empty; pass at least one timestep.")
            if not torch.isfinite(ts).all() or ts.min() < 0 or ts.max() > T:
                raise ValueError(
                    f"`timesteps` must lie in [0, {T}] (num_train_timesteps = pure source, 0 = clean), got "
                    f"{ts.tolist()}."
                )
            if ts.numel() > 1 and not (ts[1:] < ts[:-1]).all():
                raise ValueError(
                    f"`timesteps` must be strictly descending (from noisy {T} towards clean 0), got {ts.tolist()}. "
                    f"Sort them with `sorted(timesteps, reverse=True)` and remove duplicates."
                )
            t_grid = 1.0 - ts / T
        else:
            if num_inference_steps is None:
                raise ValueError("Pass `num_inference_steps` (or a custom `timesteps` list) to `set_timesteps`.")
            if int(num_inference_steps) < 1:
                raise ValueError(f"`num_inference_steps` must be >= 1, got {num_inference_steps}.")
            n = int(num_inference_steps)
            t_grid = torch.arange(n, dtype=torch.float64) / n
            ts = (1.0 - t_grid) * T

        self.num_inference_steps = int(ts.numel())
        self.t_schedule = torch.cat([t_grid, torch.ones(1, dtype=torch.float64)])
        self.timesteps = ts.to(device=device, dtype=torch.float32)
        self._committed = None
        self._step_index = None
        self._begin_index = None

    # ------------------------------------------------------------------ forward process

    def sample_source(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
    ) -> torch.LongTensor:
        """Token ids drawn from the source distribution (uniform real ids, or all `mask_token_id`): the `t = 0`
        starting point of sampling.

        `generator` may be a list with one generator per row of `shape` (each row is then drawn from its own
        generator, so that a batch equals the single draws). Draws are made on the generator's device and returned
        on `device` (default: the generator's device)."""
        shape = tuple(shape)
        if isinstance(generator, list):
            _check_generator_list(generator, shape[0])
            device = device if device is not None else generator[0].device
            rows = [self.sample_source((1, *shape[1:]), generator=g, device=device) for g in generator]
            return torch.cat(rows) if rows else torch.empty(shape, dtype=torch.long, device=device)
        if device is None and generator is not None:
            device = generator.device
        if self.config.source == "mask":
            return torch.full(shape, self.mask_token_id, dtype=torch.long, device=device)
        draw_device = generator.device if generator is not None else device
        ids = torch.randint(0, self.config.vocab_size, shape, generator=generator, device=draw_device, dtype=torch.long)
        return ids.to(device)

    def add_noise(
        self,
        original_ids: torch.LongTensor,
        timesteps: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.LongTensor:
        """
        Samples `x_t` from the mixture path: each position keeps its clean id with probability `kappa(t)`,
        otherwise it is replaced by a source draw (a uniform id in `[0, vocab_size)`, which may coincide with the
        clean id, or `mask_token_id`).

        Args:
            original_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`):
                Clean token ids.
            timesteps (`float` or `torch.Tensor` of shape `(batch_size,)`):
                Timesteps on the `0..num_train_timesteps` scale (`num_train_timesteps` = pure source).
            generator (`torch.Generator`, *optional*):
                RNG on `original_ids.device`, for reproducibility.

        Returns:
            `torch.LongTensor`: the noised ids, same shape as `original_ids`.
        """
        if original_ids.dtype not in (torch.long, torch.int32, torch.int64):
            raise ValueError(f"`original_ids` must be integer token ids, got dtype {original_ids.dtype}.")
        device = original_ids.device
        ts = torch.as_tensor(timesteps, device=device).to(torch.float64)
        if ts.ndim == 0:
            ts = ts.expand(original_ids.shape[0])
        if ts.ndim != 1 or ts.shape[0] != original_ids.shape[0]:
            raise ValueError(
                f"`timesteps` must be a scalar or have shape (batch_size,) = ({original_ids.shape[0]},), got "
                f"{tuple(ts.shape)}."
            )
        kappa = self.kappa(self.timestep_to_t(ts).clamp(0.0, 1.0))
        kappa = kappa.view(-1, *([1] * (original_ids.ndim - 1)))
        keep = torch.rand(original_ids.shape, generator=generator, device=device, dtype=torch.float64) < kappa
        noise = self.sample_source(original_ids.shape, generator=generator, device=device)
        return torch.where(keep, original_ids.long(), noise)

    # ------------------------------------------------------------------ reverse process

    def _check_logits(self, model_output: torch.Tensor, sample: torch.Tensor):
        V = self.config.vocab_size
        allowed = {V, V + 1}
        if self.mask_token_id is not None:
            allowed.add(self.mask_token_id + 1)
        if model_output.ndim != 3 or model_output.shape[-1] not in allowed:
            raise ValueError(
                f"`model_output` must be logits of shape (batch_size, seq_len, vocab) with vocab in "
                f"{sorted(allowed)} (vocab_size={V} real tokens, optionally + the mask row), got "
                f"{tuple(model_output.shape)}. Check that the scheduler's `vocab_size` matches the model's text head."
            )
        if model_output.shape[:2] != sample.shape:
            raise ValueError(
                f"`model_output` has (batch_size, seq_len) = {tuple(model_output.shape[:2])} but `sample` has shape "
                f"{tuple(sample.shape)}; they must match."
            )

    def _sample_x1(
        self, logits: torch.Tensor, temperature: float, generator: torch.Generator | None,
        draw: str = "multinomial",
    ) -> tuple[torch.LongTensor, torch.Tensor]:
        """Samples x1 ~ softmax(logits / temperature) over the real tokens, where the logits are; returns (x1, p(x1)).

        `draw="multinomial"`: `torch.multinomial` (the reference's sampling; the generator must be on the logits'
        device). `draw="inverse_cdf"`: one `U[0, 1)` number per position from the generator, wherever it lives, and x1
        read off the cumulative distribution, so only those draws cross devices, never the (B, L, vocab) posterior.
        Same distribution, other draws."""
        dtype = _SAMPLING_DTYPES[self.config.sampling_dtype]
        # the mask id (and any row beyond the real tokens) is never predicted
        logits = logits[..., : self.config.vocab_size].to(dtype)
        probs = torch.softmax(logits if temperature == 0 else logits / temperature, dim=-1)
        if temperature == 0:
            x1 = logits.argmax(dim=-1)
        elif draw == "multinomial":
            flat = probs.reshape(-1, probs.shape[-1])
            x1 = torch.multinomial(flat, num_samples=1, generator=generator).view(probs.shape[:-1])
        else:
            u = torch.rand(probs.shape[:-1], generator=generator, device=generator.device, dtype=torch.float64)
            cdf = probs.cumsum(dim=-1)
            target = (u.to(probs.device, dtype) * cdf[..., -1]).unsqueeze(-1)
            # right=True: the first token whose cumulative probability exceeds the draw, so a zero-probability token
            # is never picked (u = 0 included)
            x1 = torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_max(probs.shape[-1] - 1)
        confidence = probs.gather(-1, x1.unsqueeze(-1)).squeeze(-1)
        return x1, confidence

    def sample_tokens(
        self,
        model_output: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        temperature: float = 1.0,
        draw_uniform: bool = False,
    ) -> tuple[torch.LongTensor, torch.Tensor, torch.Tensor | None]:
        """
        Categorical sampling from the model's posterior: `x1 ~ softmax(logits / temperature)` over the real tokens
        (argmax when `temperature == 0`), in `sampling_dtype`. This is the draw every update rule of the scheduler
        starts from.

        Args:
            model_output (`torch.FloatTensor` of shape `(batch_size, seq_len, vocab)`):
                Text logits; rows beyond `vocab_size` (the mask row) are never sampled.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                RNG. A list holds one generator per row: each row then draws from its own generator only (its `x1`,
                then its uniform draw), so that a batch gives exactly what the single rows give. The draws are made
                on the generator's device.
            temperature (`float`, defaults to `1.0`):
                Softmax temperature; `0` means argmax (no randomness).
            draw_uniform (`bool`, defaults to `False`):
                Also draw one `U[0, 1)` number (float64) per position, after `x1`, from the same generator.

        Returns:
            `(x1, confidence, u)` on `model_output.device`: the sampled ids, their probability `p(x1)`, and the uniform
            draws (`None` unless `draw_uniform`).

        A generator on the logits' device draws with `torch.multinomial` (the reference's sampling, bit for bit); one on
        another device (a CPU generator for a GPU model, as diffusers' examples use) draws one uniform per position
        and samples by inverse CDF on the logits' device, so the posterior never leaves the accelerator.
        """
        if isinstance(generator, list):
            _check_generator_list(generator, model_output.shape[0])
            rows = [
                self.sample_tokens(model_output[i : i + 1], g, temperature, draw_uniform)
                for i, g in enumerate(generator)
            ]
            x1, confidence, u = (None if parts[0] is None else torch.cat(parts) for parts in zip(*rows))
            return x1, confidence, u
        device = generator.device if generator is not None else model_output.device
        # e.g. logits on a GPU and a CPU generator: moving the (B, L, vocab) posterior to the CPU and sampling it there
        # cost ~1 s a step for 128 tokens of umT5's 256k vocabulary (t2vt at the 1.3B config ran 2.0x WanPipeline's
        # time on an H100), so the posterior stays on the logits' device and only the uniform draws cross
        draw = "multinomial" if device == model_output.device else "inverse_cdf"
        x1, confidence = self._sample_x1(model_output, temperature, generator, draw=draw)
        u = torch.rand(x1.shape, generator=generator, device=device, dtype=torch.float64) if draw_uniform else None
        out_device = model_output.device
        return x1.to(out_device), confidence.to(out_device), None if u is None else u.to(out_device)

    def step(
        self,
        model_output: torch.FloatTensor,
        timestep: float | torch.Tensor,
        sample: torch.LongTensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        attention_mask: torch.BoolTensor | None = None,
        return_dict: bool = True,
    ) -> DiscreteFlowSchedulerOutput | tuple:
        """
        One step from the current time `t` to the next time `t'` of the schedule.

        The posterior `p_{1|t} = softmax(logits / temperature)` over the real tokens gives a clean sample `x1` per
        position (argmax when `temperature == 0`). Then:

        - `commit_strategy="stochastic"`: each position jumps to `x1` with probability
          `min(1, h * kappa'(t) / (1 - kappa(t)))`, `h = t' - t` (first-order Euler step of the mixture-path jump
          rate; probability 1 when `t' = 1`). With the mask source only masked positions may change; with the uniform
          source a position whose `x1` equals its token simply stays.
        - `commit_strategy="confidence"`: the scheduler keeps a per-position *committed* state (reset by
          `set_timesteps`; at the first step, with the mask source, positions that are not masked count as
          committed). After the step, `ceil(kappa(t') * L_valid)` valid positions of each sequence are committed
          (at least one more per step while any remain): the uncommitted ones with the highest `p_{1|t}(x1)` take
          their `x1`; committed positions are frozen and uncommitted ones keep their current token. At `t' = 1` all
          valid positions are committed.

        Args:
            model_output (`torch.FloatTensor` of shape `(batch_size, seq_len, vocab_size [+ 1])`):
                Text logits of the model.
            timestep (`float` or `torch.Tensor`):
                Current timestep (an entry of `self.timesteps`). Only used to locate the first step; afterwards the
                internal step index advances by one per call.
            sample (`torch.LongTensor` of shape `(batch_size, seq_len)`):
                Current token ids `x_t`.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*):
                RNG for categorical sampling and the jumps, on any device (the draws are made there). A list holds one
                generator per sample, each row then depending on its own generator only (see `sample_tokens`).
            temperature (`float`, defaults to `1.0`):
                Softmax temperature; `0` means argmax.
            attention_mask (`torch.BoolTensor` of shape `(batch_size, seq_len)`, *optional*):
                Positions where it is `False` (padding) are left untouched and do not count as valid.
            return_dict (`bool`, defaults to `True`):
                Return a [`DiscreteFlowSchedulerOutput`] or a tuple `(prev_sample, pred_original_sample)`.
        """
        i, valid = self._begin_step("step", model_output, timestep, sample, temperature, attention_mask)
        t = float(self.t_schedule[i])
        t_next = float(self.t_schedule[i + 1])

        stochastic = self.config.commit_strategy == "stochastic"
        x1, confidence, u = self.sample_tokens(model_output, generator, temperature, draw_uniform=stochastic)
        x1, confidence = x1.to(sample.device), confidence.to(sample.device)
        is_mask_source = self.config.source == "mask"

        if stochastic:
            if t_next >= 1.0:
                jump_prob = 1.0
            else:
                rate = self.kappa_derivative(t) / (1.0 - self.kappa(t))
                jump_prob = min(1.0, (t_next - t) * rate)
            jump = (u.to(sample.device) < jump_prob) & valid
            if is_mask_source:
                jump &= sample == self.mask_token_id
            prev_sample = torch.where(jump, x1, sample)
        else:
            if self._committed is None:
                committed = torch.zeros_like(sample, dtype=torch.bool)
                if is_mask_source:
                    committed = sample != self.mask_token_id
                self._committed = committed & valid
            elif self._committed.shape != sample.shape:
                raise ValueError(
                    f"`sample` shape {tuple(sample.shape)} differs from the one this sampling run started with "
                    f"{tuple(self._committed.shape)}; call `set_timesteps` to start a new run."
                )
            committed = self._committed.to(sample.device) & valid
            n_valid = valid.sum(dim=-1)
            n_committed = committed.sum(dim=-1)
            if t_next >= 1.0:
                target = n_valid
            else:
                frac = self.kappa(t_next)
                target = torch.ceil(n_valid.double() * frac - 1e-6).long()
            remaining = n_valid - n_committed
            n_new = torch.maximum(target - n_committed, (remaining > 0).long()).clamp(min=0)
            n_new = torch.minimum(n_new, remaining)

            candidates = valid & ~committed
            score = confidence.masked_fill(~candidates, -math.inf)
            order = score.argsort(dim=-1, descending=True, stable=True)
            ranks = torch.empty_like(order)
            ranks.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
            new = candidates & (ranks < n_new.unsqueeze(-1))
            self._committed = committed | new
            prev_sample = torch.where(new, x1, sample)

        return self._end_step(prev_sample, x1, sample, valid, return_dict)

    def reference_step(
        self,
        model_output: torch.FloatTensor,
        timestep: float | torch.Tensor,
        sample: torch.LongTensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        temperature: float = 1.0,
        attention_mask: torch.BoolTensor | None = None,
        return_dict: bool = True,
    ) -> DiscreteFlowSchedulerOutput | tuple:
        """
        The reference implementation's text update (its joint text-to-video+caption sampler), a heuristic rather
        than a discretisation of the probability path: at step `i` of the `N`-step schedule every valid position is
        resampled to `x1 ~ softmax(logits / temperature)` with probability `i / (N - 1)` (1 when `N = 1`), whatever
        `kappa`, `source` and `commit_strategy`. The reference then ends with one argmax pass on the clean video
        ([`~DiscreteFlowScheduler.commit_argmax`]).

        Only the number of steps of the schedule matters (`set_timesteps(N)`); the arguments are those of
        [`~DiscreteFlowScheduler.step`].
        """
        i, valid = self._begin_step("reference_step", model_output, timestep, sample, temperature, attention_mask)
        n = self.num_inference_steps
        resample_prob = i / (n - 1) if n > 1 else 1.0
        x1, _, u = self.sample_tokens(model_output, generator, temperature, draw_uniform=True)
        x1, u = x1.to(sample.device), u.to(sample.device)
        prev_sample = torch.where((u < resample_prob) & valid, x1, sample)
        return self._end_step(prev_sample, x1, sample, valid, return_dict)

    def commit_argmax(
        self,
        model_output: torch.FloatTensor,
        sample: torch.LongTensor,
        attention_mask: torch.BoolTensor | None = None,
    ) -> torch.LongTensor:
        """The model's argmax over the real tokens at every valid position (padding keeps `sample`): the final pass
        of the reference sampler, outside the schedule (it takes no step and uses no randomness)."""
        if sample.ndim != 2:
            raise ValueError(f"`sample` must be token ids of shape (batch_size, seq_len), got {tuple(sample.shape)}.")
        self._check_logits(model_output, sample)
        x1 = model_output[..., : self.config.vocab_size].argmax(dim=-1).to(sample.device)
        if attention_mask is None:
            return x1
        return torch.where(self._valid_positions(sample, attention_mask), x1, sample)

    def _valid_positions(self, sample: torch.LongTensor, attention_mask: torch.BoolTensor | None) -> torch.BoolTensor:
        if attention_mask is None:
            return torch.ones_like(sample, dtype=torch.bool)
        if attention_mask.shape != sample.shape:
            raise ValueError(
                f"`attention_mask` must have the shape of `sample` {tuple(sample.shape)}, got "
                f"{tuple(attention_mask.shape)}."
            )
        return attention_mask.to(device=sample.device, dtype=torch.bool)

    def _begin_step(self, name, model_output, timestep, sample, temperature, attention_mask):
        """Checks the arguments of a step, locates it in the schedule; returns its index and the valid positions."""
        if self.timesteps is None or self.t_schedule is None:
            raise ValueError(
                "The scheduler has no timesteps: call `scheduler.set_timesteps(num_inference_steps)` (or "
                f"`set_timesteps(timesteps=...)`) before `scheduler.{name}(...)`."
            )
        if temperature < 0:
            raise ValueError(f"`temperature` must be >= 0, got {temperature}.")
        if sample.ndim != 2:
            raise ValueError(f"`sample` must be token ids of shape (batch_size, seq_len), got {tuple(sample.shape)}.")
        self._check_logits(model_output, sample)
        if isinstance(timestep, torch.Tensor) and timestep.numel() > 1:
            if not (timestep == timestep.flatten()[0]).all():
                raise ValueError(
                    f"`{name}` needs one timestep for the whole batch, got different per-sample timesteps."
                )

        if self.step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        if i >= self.num_inference_steps:
            raise ValueError(
                f"All {self.num_inference_steps} steps of the schedule have been taken; call `set_timesteps` again "
                f"to start a new sampling run."
            )
        return i, self._valid_positions(sample, attention_mask)

    def _end_step(self, prev_sample, x1, sample, valid, return_dict):
        """Ends a step of either update rule: the clean prediction is `x1` at the valid positions, and the schedule
        advances by one."""
        pred_original_sample = torch.where(valid, x1, sample)
        self._step_index += 1
        if not return_dict:
            return prev_sample, pred_original_sample
        return DiscreteFlowSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)


def _check_generator_list(generators: list, batch_size: int):
    if len(generators) != batch_size:
        raise ValueError(
            f"Got a list of {len(generators)} generators for a batch of {batch_size}: pass one generator per sample "
            "(or a single generator)."
        )


__all__ = ["DiscreteFlowScheduler", "DiscreteFlowSchedulerOutput"]
