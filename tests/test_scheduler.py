"""Tests for the discrete flow matching text scheduler."""

import math

import pytest
import torch

from univigu.schedulers import DiscreteFlowScheduler, DiscreteFlowSchedulerOutput


V = 8  # small vocabulary so that the uniform-source coincidence term (1 - kappa) / V is measurable


def make(**kwargs):
    kwargs.setdefault("vocab_size", V)
    return DiscreteFlowScheduler(**kwargs)


def peaked_logits(target, n_logits, strength=50.0):
    """Logits that put (numerically) all mass on `target`."""
    logits = torch.zeros(*target.shape, n_logits)
    logits.scatter_(-1, target.unsqueeze(-1), strength)
    return logits


def run_sampling(scheduler, logits_fn, shape, seed, num_steps=None, timesteps=None, **step_kwargs):
    gen = torch.Generator().manual_seed(seed)
    scheduler.set_timesteps(num_steps, timesteps=timesteps)
    x = scheduler.sample_source(shape, generator=gen)
    for ts in scheduler.timesteps:
        out = scheduler.step(logits_fn(x, ts), ts, x, generator=gen, **step_kwargs)
        assert isinstance(out, DiscreteFlowSchedulerOutput)
        x = out.prev_sample
    return x


# ---------------------------------------------------------------- conventions


def test_time_helpers_and_default_grid():
    s = make()
    assert s.timestep_to_t(1000.0) == 0.0 and s.timestep_to_t(0.0) == 1.0
    assert s.t_to_timestep(0.25) == 750.0
    s.set_timesteps(4)
    assert s.timesteps.dtype == torch.float32
    assert s.timesteps.tolist() == [1000.0, 750.0, 500.0, 250.0]
    assert s.t_schedule.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    s2 = make(kappa_exponent=2.0)
    assert s2.kappa(0.5) == 0.25 and s2.kappa_derivative(0.5) == 1.0
    assert torch.allclose(s2.kappa_derivative(torch.tensor([0.0, 0.25])), torch.tensor([0.0, 0.5]))


def test_custom_timesteps_end_at_clean():
    s = make()
    s.set_timesteps(timesteps=[1000.0, 900.0, 300.0])
    assert s.num_inference_steps == 3
    assert torch.allclose(s.t_schedule, torch.tensor([0.0, 0.1, 0.7, 1.0], dtype=torch.float64))


# ---------------------------------------------------------------- forward process


@pytest.mark.parametrize("source", ["uniform", "mask"])
@pytest.mark.parametrize("kappa_exponent", [1.0, 2.0])
@pytest.mark.parametrize("t", [0.3, 0.75])
def test_add_noise_keeps_clean_with_probability_kappa(source, kappa_exponent, t):
    s = make(source=source, kappa_exponent=kappa_exponent)
    gen = torch.Generator().manual_seed(0)
    B, L = 200, 1000  # 200k tokens
    clean = torch.randint(0, V, (B, L), generator=gen)
    timesteps = torch.full((B,), (1.0 - t) * 1000.0)
    noisy = s.add_noise(clean, timesteps, generator=gen)
    assert noisy.shape == clean.shape and noisy.dtype == torch.long

    kappa = t**kappa_exponent
    if source == "uniform":
        expected = kappa + (1.0 - kappa) / V  # a uniform draw may coincide with the clean id
        assert noisy.min() >= 0 and noisy.max() < V
    else:
        expected = kappa
        assert ((noisy == clean) | (noisy == V)).all()  # mask id defaults to vocab_size
    rate = (noisy == clean).double().mean().item()
    tol = 5.0 * math.sqrt(expected * (1.0 - expected) / (B * L))
    assert abs(rate - expected) < tol, (rate, expected, tol)


def test_add_noise_per_sample_timesteps_and_endpoints():
    s = make(source="mask")
    gen = torch.Generator().manual_seed(1)
    clean = torch.randint(0, V, (3, 20000), generator=gen)
    noisy = s.add_noise(clean, torch.tensor([0.0, 1000.0, 500.0]), generator=gen)
    assert torch.equal(noisy[0], clean[0])  # timestep 0: clean
    assert (noisy[1] == V).all()  # timestep 1000: pure source
    assert abs((noisy[2] == clean[2]).double().mean().item() - 0.5) < 0.02


def test_uniform_source_noise_is_uniform():
    s = make()
    gen = torch.Generator().manual_seed(2)
    noisy = s.add_noise(torch.zeros(100, 1000, dtype=torch.long), torch.tensor(1000.0), generator=gen)
    counts = torch.bincount(noisy.flatten(), minlength=V).double() / noisy.numel()
    assert torch.allclose(counts, torch.full((V,), 1.0 / V, dtype=torch.float64), atol=0.005)


# ---------------------------------------------------------------- sampling


@pytest.mark.parametrize("source", ["uniform", "mask"])
@pytest.mark.parametrize("commit_strategy", ["stochastic", "confidence"])
@pytest.mark.parametrize("num_steps", [1, 3, 10, 25])
@pytest.mark.parametrize("kappa_exponent", [1.0, 2.0])
def test_sampling_converges_to_target(source, commit_strategy, num_steps, kappa_exponent):
    s = make(source=source, commit_strategy=commit_strategy, kappa_exponent=kappa_exponent)
    target = torch.randint(0, V, (3, 17), generator=torch.Generator().manual_seed(3))
    n_logits = V + 1 if source == "mask" else V
    logits = peaked_logits(target, n_logits)
    x = run_sampling(s, lambda x, ts: logits, target.shape, seed=4, num_steps=num_steps)
    assert torch.equal(x, target)


@pytest.mark.parametrize("source", ["uniform", "mask"])
@pytest.mark.parametrize("commit_strategy", ["stochastic", "confidence"])
def test_sampling_with_video_scheduler_timesteps(source, commit_strategy):
    from diffusers import FlowMatchEulerDiscreteScheduler

    video = FlowMatchEulerDiscreteScheduler(shift=3.0)
    video.set_timesteps(12)
    s = make(source=source, commit_strategy=commit_strategy)
    target = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(5))
    logits = peaked_logits(target, V)
    x = run_sampling(s, lambda x, ts: logits, target.shape, seed=6, timesteps=video.timesteps)
    assert torch.equal(x, target)


def test_mask_source_never_predicts_mask_and_never_unmasks_clean():
    s = make(source="mask")
    s.set_timesteps(4)
    s.set_begin_index(3)  # last step (t' = 1): every masked position jumps
    gen = torch.Generator().manual_seed(7)
    logits = torch.zeros(2, 6, V + 1)
    logits[..., V] = 100.0  # the model "wants" the mask id: it must be ignored
    logits[..., V - 1] = 50.0  # among real tokens it prefers V - 1, which differs from every clean token below
    sample = torch.tensor([[V, V, 3, V, 1, V], [2, V, V, V, V, 5]])
    out = s.step(logits, s.timesteps[3], sample, generator=gen)
    assert (out.pred_original_sample == V - 1).all()
    clean = sample != V
    assert torch.equal(out.prev_sample[clean], sample[clean])
    assert (out.prev_sample[~clean] == V - 1).all()


def test_stochastic_jumps_follow_kappa():
    # kappa = t and the grid k/N: the expected fraction of unmasked positions after k steps is k/N.
    N, B, L = 5, 100, 400
    s = make(source="mask")
    s.set_timesteps(N)
    gen = torch.Generator().manual_seed(8)
    x = s.sample_source((B, L))
    logits = torch.zeros(B, L, V)  # uniform posterior
    for k, ts in enumerate(s.timesteps[:-1], start=1):
        x = s.step(logits, ts, x, generator=gen).prev_sample
        frac = (x != V).double().mean().item()
        p = k / N
        assert abs(frac - p) < 5.0 * math.sqrt(p * (1 - p) / (B * L)), (k, frac)


def test_uniform_source_stochastic_jump_rate():
    # the first step from t=0 to t=1/N jumps with probability 1/N; with a posterior that never matches the
    # current token, exactly the jumped positions change.
    N, B, L = 4, 100, 500
    s = make()
    s.set_timesteps(N)
    gen = torch.Generator().manual_seed(9)
    x = torch.zeros(B, L, dtype=torch.long)
    logits = peaked_logits(torch.ones(B, L, dtype=torch.long), V)
    out = s.step(logits, s.timesteps[0], x, generator=gen)
    frac = (out.prev_sample != x).double().mean().item()
    assert abs(frac - 1 / N) < 5.0 * math.sqrt((1 / N) * (1 - 1 / N) / (B * L))
    assert set(out.prev_sample.unique().tolist()) <= {0, 1}


@pytest.mark.parametrize("source", ["uniform", "mask"])
@pytest.mark.parametrize("commit_strategy", ["stochastic", "confidence"])
def test_generator_determinism(source, commit_strategy):
    s = make(source=source, commit_strategy=commit_strategy)
    random_logits = torch.randn(2, 12, V, generator=torch.Generator().manual_seed(10))

    def fn(x, ts):
        return random_logits

    a = run_sampling(s, fn, (2, 12), seed=11, num_steps=6)
    b = run_sampling(s, fn, (2, 12), seed=11, num_steps=6)
    c = run_sampling(s, fn, (2, 12), seed=12, num_steps=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)

    clean = torch.randint(0, V, (4, 50), generator=torch.Generator().manual_seed(13))
    ts = torch.full((4,), 500.0)
    n1 = s.add_noise(clean, ts, generator=torch.Generator().manual_seed(14))
    n2 = s.add_noise(clean, ts, generator=torch.Generator().manual_seed(14))
    n3 = s.add_noise(clean, ts, generator=torch.Generator().manual_seed(15))
    assert torch.equal(n1, n2) and not torch.equal(n1, n3)


def test_temperature_zero_is_argmax():
    s = make()
    s.set_timesteps(2)
    logits = torch.randn(3, 7, V, generator=torch.Generator().manual_seed(16))
    out = s.step(logits, s.timesteps[0], torch.zeros(3, 7, dtype=torch.long), temperature=0.0)
    assert torch.equal(out.pred_original_sample, logits.argmax(-1))


@pytest.mark.parametrize("source", ["uniform", "mask"])
@pytest.mark.parametrize("commit_strategy", ["stochastic", "confidence"])
def test_padded_positions_untouched(source, commit_strategy):
    s = make(source=source, commit_strategy=commit_strategy)
    B, L = 3, 10
    target = torch.randint(0, V, (B, L), generator=torch.Generator().manual_seed(17))
    lengths = torch.tensor([10, 6, 1])
    mask = torch.arange(L)[None] < lengths[:, None]
    pad_id = 5
    gen = torch.Generator().manual_seed(18)
    s.set_timesteps(4)
    x = s.sample_source((B, L), generator=gen)
    x = torch.where(mask, x, torch.full_like(x, pad_id))
    logits = peaked_logits(target, V)
    for ts in s.timesteps:
        out = s.step(logits, ts, x, generator=gen, attention_mask=mask)
        assert (out.prev_sample[~mask] == pad_id).all()
        assert (out.pred_original_sample[~mask] == pad_id).all()
        x = out.prev_sample
    assert torch.equal(x[mask], target[mask])


@pytest.mark.parametrize("source", ["uniform", "mask"])
def test_confidence_commits_most_confident_first(source):
    L = 6
    s = make(source=source, commit_strategy="confidence")
    s.set_timesteps(L)  # kappa = t on the grid k/L: exactly one commit per step
    target = torch.tensor([[1, 2, 3, 4, 5, 6]])
    strength = torch.tensor([2.0, 6.0, 1.0, 4.0, 5.0, 3.0])  # confidence order: 1, 4, 3, 5, 0, 2
    logits = torch.zeros(1, L, V)
    logits[0, torch.arange(L), target[0]] = strength
    expected_order = strength.argsort(descending=True).tolist()

    x = s.sample_source((1, L)) if source == "mask" else torch.zeros(1, L, dtype=torch.long)
    committed_order = []
    for ts in s.timesteps:
        before = s.committed.clone() if s.committed is not None else torch.zeros(1, L, dtype=torch.bool)
        out = s.step(logits, ts, x, temperature=0.0)
        newly = (s.committed & ~before)[0].nonzero().flatten().tolist()
        assert len(newly) == 1
        committed_order += newly
        changed = (out.prev_sample != x)[0].nonzero().flatten().tolist()
        assert changed == newly  # only the committed position changes
        x = out.prev_sample
    assert committed_order == expected_order
    assert torch.equal(x, target)


def test_confidence_commit_counts_follow_kappa():
    # ceil(kappa(t') * L_valid) committed after each step, and at least one more per step.
    s = make(commit_strategy="confidence", kappa_exponent=2.0)
    L, N = 20, 5
    s.set_timesteps(N)
    gen = torch.Generator().manual_seed(19)
    x = torch.zeros(2, L, dtype=torch.long)
    logits = torch.randn(2, L, V, generator=gen)
    counts = []
    for ts in s.timesteps:
        x = s.step(logits, ts, x, generator=gen).prev_sample
        counts.append(s.committed.sum(-1).tolist())
    # t' = 0.2, 0.4, 0.6, 0.8, 1.0 -> kappa = .04, .16, .36, .64, 1 -> ceil(20 * kappa) = 1, 4, 8, 13, 20
    assert counts == [[1, 1], [4, 4], [8, 8], [13, 13], [20, 20]]


def test_return_tuple():
    s = make()
    s.set_timesteps(2)
    out = s.step(torch.randn(1, 3, V), s.timesteps[0], torch.zeros(1, 3, dtype=torch.long), return_dict=False)
    assert isinstance(out, tuple) and len(out) == 2


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"source": "mask", "kappa_exponent": 2.0, "sampling_dtype": "float32", "commit_strategy": "confidence"},
        {"source": "mask", "mask_token_id": V + 3},
    ],
)
def test_config_round_trip(tmp_path, kwargs):
    s = make(**kwargs)
    s.save_pretrained(tmp_path)
    assert (tmp_path / "scheduler_config.json").is_file()
    loaded = DiscreteFlowScheduler.from_pretrained(tmp_path)
    for key in ["vocab_size", "source", "mask_token_id", "kappa_exponent", "num_train_timesteps",
                "sampling_dtype", "commit_strategy"]:
        assert loaded.config[key] == s.config[key], key
    assert loaded.mask_token_id == s.mask_token_id
    if kwargs.get("source") == "mask":
        assert loaded.mask_token_id == kwargs.get("mask_token_id", V)

    clean = torch.randint(0, V, (2, 30), generator=torch.Generator().manual_seed(20))
    a = s.add_noise(clean, torch.tensor([300.0, 700.0]), generator=torch.Generator().manual_seed(21))
    b = loaded.add_noise(clean, torch.tensor([300.0, 700.0]), generator=torch.Generator().manual_seed(21))
    assert torch.equal(a, b)


# ---------------------------------------------------------------- errors


def test_error_step_before_set_timesteps():
    s = make()
    with pytest.raises(ValueError, match="set_timesteps"):
        s.step(torch.randn(1, 4, V), 1000.0, torch.zeros(1, 4, dtype=torch.long))


def test_error_mask_token_is_real_token():
    with pytest.raises(ValueError, match="mask_token_id"):
        make(source="mask", mask_token_id=V - 1)


def test_error_wrong_vocab_dimension():
    s = make()
    s.set_timesteps(2)
    with pytest.raises(ValueError, match="vocab_size"):
        s.step(torch.randn(1, 4, V + 2), s.timesteps[0], torch.zeros(1, 4, dtype=torch.long))


def test_error_timesteps_not_descending():
    s = make()
    with pytest.raises(ValueError, match="descending"):
        s.set_timesteps(timesteps=[500.0, 800.0, 100.0])
    with pytest.raises(ValueError, match="descending"):
        s.set_timesteps(timesteps=[800.0, 800.0])
    with pytest.raises(ValueError, match=r"\[0, 1000\]"):
        s.set_timesteps(timesteps=[1200.0, 500.0])


def test_error_invalid_config_values():
    with pytest.raises(ValueError, match="source"):
        make(source="absorbing")
    with pytest.raises(ValueError, match="commit_strategy"):
        make(commit_strategy="greedy")
    with pytest.raises(ValueError, match="sampling_dtype"):
        make(sampling_dtype="bfloat16")
    with pytest.raises(ValueError, match="kappa_exponent"):
        make(kappa_exponent=0.0)


def test_error_stepping_past_the_schedule():
    s = make()
    s.set_timesteps(1)
    x = torch.zeros(1, 3, dtype=torch.long)
    s.step(torch.randn(1, 3, V), s.timesteps[0], x)
    with pytest.raises(ValueError, match="set_timesteps"):
        s.step(torch.randn(1, 3, V), s.timesteps[0], x)


# ---------------------------------------------------------------- per-sample generators, the reference update


def _gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("rule", ["stochastic", "confidence", "reference"])
@pytest.mark.parametrize("source", ["uniform", "mask"])
def test_a_list_of_generators_gives_each_row_what_it_gives_alone(rule, source):
    """One generator per row: the batch equals the single-row runs (each with a scheduler of its own), for the
    source draw and every update rule, whatever the other rows hold."""
    strategy = "stochastic" if rule == "reference" else rule
    logits = torch.randn(5, 3, 10, V + 1, generator=torch.Generator().manual_seed(30))  # step x batch x L x (V + 1)

    def run(rows, seeds):
        s = make(source=source, commit_strategy=strategy)
        s.set_timesteps(5)
        gens = _gens(*seeds)
        x = s.sample_source((len(rows), 10), generator=gens if len(rows) > 1 else gens[0])
        step = s.reference_step if rule == "reference" else s.step
        for i, t in enumerate(s.timesteps):
            x = step(logits[i][rows], t, x, generator=gens if len(rows) > 1 else gens[0], temperature=0.7).prev_sample
        return x

    batch = run([0, 1, 2], (1, 2, 3))
    singles = torch.cat([run([i], (seed,)) for i, seed in enumerate((1, 2, 3))])
    assert torch.equal(batch, singles)


def test_a_list_of_generators_must_match_the_batch():
    s = make()
    s.set_timesteps(2)
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        s.sample_source((3, 4), generator=_gens(0, 1))
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        s.step(torch.zeros(3, 4, V), s.timesteps[0], torch.zeros(3, 4, dtype=torch.long), generator=_gens(0, 1))


def test_sample_tokens_draws_x1_then_the_uniform_from_each_generator():
    s = make(sampling_dtype="float64")
    logits = torch.randn(2, 6, V, generator=torch.Generator().manual_seed(31))
    x1, confidence, u = s.sample_tokens(logits, _gens(4, 5), temperature=1.0, draw_uniform=True)
    for row, seed in enumerate((4, 5)):
        g = torch.Generator().manual_seed(seed)
        probs = torch.softmax(logits[row].double(), dim=-1)
        expected = torch.multinomial(probs, 1, generator=g).squeeze(-1)
        assert torch.equal(x1[row], expected)
        assert torch.equal(u[row], torch.rand(6, generator=g, dtype=torch.float64))
        assert torch.equal(confidence[row], probs.gather(-1, expected[:, None]).squeeze(-1))
    x1, _, u = s.sample_tokens(logits, temperature=0.0)
    assert torch.equal(x1, logits.argmax(-1)) and u is None


def test_reference_step_resamples_with_probability_step_over_n_minus_1():
    """The reference's heuristic: step i of N resamples each position with probability i / (N - 1), whatever kappa
    and the source (with the mask source, clean positions may change too)."""
    n, length = 5, 4000
    s = make(source="mask", kappa_exponent=3.0)
    s.set_timesteps(n)
    sample = torch.randint(0, V, (1, length), generator=torch.Generator().manual_seed(32))  # no mask token
    target = (sample + 1) % V
    gen = torch.Generator().manual_seed(33)
    for i, t in enumerate(s.timesteps):
        out = s.reference_step(peaked_logits(target, V + 1), t, sample, generator=gen)
        changed = (out.prev_sample != sample).double().mean().item()
        assert torch.equal(out.pred_original_sample, target)
        assert abs(changed - i / (n - 1)) < 0.03, (i, changed)
    with pytest.raises(ValueError, match="steps of the schedule have been taken"):
        s.reference_step(peaked_logits(target, V + 1), 0.0, sample)
    one = make()
    one.set_timesteps(1)
    assert torch.equal(one.reference_step(peaked_logits(target, V), 1000.0, sample).prev_sample, target)


def test_commit_argmax_takes_the_argmax_of_the_real_tokens():
    s = make(source="mask")
    logits = torch.randn(2, 6, V + 1, generator=torch.Generator().manual_seed(34))
    logits[..., V] = 100.0  # the mask row is never predicted
    sample = torch.full((2, 6), V)
    assert torch.equal(s.commit_argmax(logits, sample), logits[..., :V].argmax(-1))
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[:, -2:] = False
    out = s.commit_argmax(logits, sample, attention_mask=mask)
    assert torch.equal(out[:, :-2], logits[:, :-2, :V].argmax(-1)) and bool((out[:, -2:] == V).all())


def test_inverse_cdf_draws_follow_the_posterior_and_never_pick_impossible_tokens():
    """The sampler used when the generator sits on another device than the logits (a CPU generator for a GPU model):
    one uniform per position, x1 read off the cumulative distribution. Checked here on one device by calling it
    directly; tests/test_memory_switches_cuda.py checks the device split on a GPU."""
    scheduler = DiscreteFlowScheduler(vocab_size=5)
    probs = torch.tensor([0.0, 0.5, 0.0, 0.2, 0.3], dtype=torch.float64)
    logits = probs.clamp_min(1e-300).log().expand(1, 40000, 5).clone()
    logits[..., [0, 2]] = -float("inf")
    x1, confidence = scheduler._sample_x1(logits, 1.0, torch.Generator().manual_seed(0), draw="inverse_cdf")
    freq = torch.bincount(x1.flatten(), minlength=5).double() / x1.numel()
    assert freq[0] == 0 and freq[2] == 0
    torch.testing.assert_close(freq, probs, atol=0.01, rtol=0)  # 40,000 draws: standard error < 0.0025
    torch.testing.assert_close(confidence, probs[x1])
    again, _ = scheduler._sample_x1(logits, 1.0, torch.Generator().manual_seed(0), draw="inverse_cdf")
    assert torch.equal(again, x1)
    # a zero draw picks the first token with probability > 0, not token 0 (the searchsorted side used above)
    assert torch.searchsorted(probs.cumsum(-1), torch.zeros(1, dtype=torch.float64), right=True).item() == 1
