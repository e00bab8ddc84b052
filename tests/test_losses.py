"""Unit tests of the unified loss and of the task views (src/univigu/training/losses.py)."""

import math

import pytest
import torch



from univigu.schedulers import DiscreteFlowScheduler
from univigu.training.losses import (
    GENERATION,
    JOINT,
    UNDERSTANDING,
    UnifiedLoss,
    UnifiedLossConfig,
    build_training_inputs,
    compute_unified_loss,
    sample_task_views,
)


V = 50


def make_batch(batch_size=6, length=7, seed=0, pad_from=None):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch_size, 4, 3, 4, 4, generator=g)
    ids = torch.randint(3, V, (batch_size, length), generator=g)
    mask = torch.ones(batch_size, length, dtype=torch.bool)
    if pad_from is not None:
        mask[:, pad_from:] = False
        ids[:, pad_from:] = 0
    prompt = torch.randn(batch_size, 5, 8, generator=g) + 3.0  # no zero entry by chance
    return latents, ids, mask, prompt


def build(views, config=None, seed=1, **batch_kwargs):
    latents, ids, mask, prompt = make_batch(batch_size=len(views), **batch_kwargs)
    config = config or UnifiedLossConfig()
    inputs = build_training_inputs(
        latents, ids, mask, prompt, DiscreteFlowScheduler(vocab_size=V), config,
        views=torch.tensor(views), generator=torch.Generator().manual_seed(seed),
    )
    return latents, ids, mask, prompt, inputs


def perfect_logits(ids, margin=60.0):
    logits = torch.zeros(*ids.shape, V)
    logits.scatter_(-1, ids.unsqueeze(-1), margin)
    return logits


def test_understanding_view_null_condition_clean_video_noised_text():
    latents, ids, mask, prompt, inputs = build([UNDERSTANDING] * 4, length=64)
    assert torch.all(inputs.encoder_hidden_states == 0), "understanding views must not see the prompt"
    assert torch.equal(inputs.hidden_states, latents), "video must be clean"
    assert torch.all(inputs.timestep == 0) and torch.all(inputs.sigmas == 0)
    assert torch.all(inputs.text_timestep > 0)
    assert not torch.equal(inputs.text_ids, ids), "text must be noised"
    assert inputs.text_loss_mask.all() and not inputs.video_loss_mask.any()


def test_understanding_view_light_video_noise_flag():
    config = UnifiedLossConfig(understanding_video_noise=0.1)
    latents, _, _, _, inputs = build([UNDERSTANDING] * 64, config=config)
    assert torch.all(inputs.sigmas <= 0.1) and inputs.sigmas.max() > 0
    assert torch.allclose(inputs.timestep, inputs.sigmas * 1000)
    assert not torch.equal(inputs.hidden_states, latents)
    assert torch.all(inputs.encoder_hidden_states == 0)


def test_text_time_power_draws_noisier_captions_from_the_same_uniform_draw():
    _, ids, _, _, uniform = build([UNDERSTANDING] * 256, length=32)
    _, _, _, _, skewed = build([UNDERSTANDING] * 256, length=32, config=UnifiedLossConfig(text_time_power=3.0))
    t_uniform = 1.0 - uniform.text_timestep / 1000
    t_skewed = 1.0 - skewed.text_timestep / 1000
    # same seed, same u: t ** 3, so every caption is at least as noised and the kept fraction falls (kappa(t) = t)
    assert torch.allclose(t_skewed, t_uniform.pow(3.0), atol=1e-6)
    kept = lambda inputs: (inputs.text_ids == ids).float().mean().item()
    assert kept(skewed) < kept(uniform) - 0.2
    _, _, _, _, default = build([UNDERSTANDING] * 256, length=32, config=UnifiedLossConfig(text_time_power=1.0))
    assert torch.equal(default.text_ids, uniform.text_ids)
    with pytest.raises(ValueError, match="text_time_power"):
        UnifiedLossConfig(text_time_power=0.0)


def test_generation_view_clean_text_at_timestep_zero_prompt_condition():
    latents, ids, mask, prompt, inputs = build([GENERATION] * 4)
    assert torch.all(inputs.text_timestep == 0)
    assert torch.equal(inputs.text_ids, ids)
    assert torch.equal(inputs.encoder_hidden_states, prompt)
    assert torch.all(inputs.sigmas > 0)
    assert torch.allclose(inputs.timestep, inputs.sigmas * 1000)
    assert inputs.video_loss_mask.all() and not inputs.text_loss_mask.any()


def test_joint_view_noises_both_streams_with_prompt():
    latents, ids, mask, prompt, inputs = build([JOINT] * 4, length=64)
    assert torch.all(inputs.sigmas > 0) and torch.all(inputs.text_timestep > 0)
    assert not torch.equal(inputs.text_ids, ids)
    assert torch.equal(inputs.encoder_hidden_states, prompt)
    assert inputs.video_loss_mask.all() and inputs.text_loss_mask.all()


def test_flow_matching_convention_and_perfect_predictor_gives_zero_loss():
    """x_s = (1 - s) x0 + s * noise and target = noise - x0: a predictor that knows x0 recovers the target exactly
    from (x_s, s), and the loss of a perfect video + text predictor is (numerically) zero."""
    views = [UNDERSTANDING, GENERATION, JOINT] * 3
    latents, ids, mask, prompt, inputs = build(views)
    sig = inputs.sigmas.view(-1, 1, 1, 1, 1)
    safe = torch.where(sig > 0, sig, torch.ones_like(sig))
    pred = (inputs.hidden_states - latents) / safe  # = noise - x0 wherever sigma > 0
    config = UnifiedLossConfig()
    out = compute_unified_loss(pred, perfect_logits(ids), inputs, config)
    assert out.loss.item() < 1e-8
    assert out.video_loss.item() < 1e-8 and out.text_loss.item() < 1e-8
    # and a wrong predictor is penalised on both streams
    wrong = compute_unified_loss(pred + 0.5, perfect_logits((ids + 1) % V), inputs, config)
    assert wrong.video_loss.item() == pytest.approx(0.25, rel=1e-4)
    assert wrong.text_loss.item() > 50


def test_timestep_is_sigma_times_1000_and_noise_level_matches():
    views = [JOINT] * 512
    latents, ids, mask, prompt, inputs = build(views)
    assert torch.allclose(inputs.timestep, inputs.sigmas * 1000)
    # recover sigma from the data itself: x_s - x0 = s * (noise - x0) = s * target
    residual = (inputs.hidden_states - latents).flatten(1)
    est = (residual * inputs.video_target.flatten(1)).sum(1) / (inputs.video_target.flatten(1) ** 2).sum(1)
    assert torch.allclose(est, inputs.sigmas, atol=1e-5)


def test_text_cross_entropy_masked_mean_over_real_tokens():
    views = [UNDERSTANDING, JOINT, GENERATION]
    latents, ids, mask, prompt, inputs = build(views, length=6, pad_from=4)
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 6, V, generator=g)
    out = compute_unified_loss(None, logits, inputs, UnifiedLossConfig())
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten(), reduction="none").view(3, 6)
    expected = ce[:2, :4].mean()  # samples 0, 1 (text noised), real tokens 0..3 only
    assert out.text_loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.num_text_tokens == 8
    # logits at padded positions and in the generation view do not matter
    logits2 = logits.clone()
    logits2[:, 4:] = 100 * torch.randn(3, 2, V, generator=g)
    logits2[2] = 0.0
    assert compute_unified_loss(None, logits2, inputs, UnifiedLossConfig()).text_loss.item() == pytest.approx(
        expected.item(), rel=1e-6
    )
    # padded positions are not noised either
    assert torch.equal(inputs.text_ids[:, 4:], ids[:, 4:])


def test_video_loss_ignores_understanding_samples_and_lambda_weights_text():
    views = [UNDERSTANDING, GENERATION, JOINT, UNDERSTANDING]
    latents, ids, mask, prompt, inputs = build(views)
    pred = inputs.video_target.clone()
    pred[0] += 10.0
    pred[3] -= 7.0
    logits = torch.zeros(4, ids.shape[1], V)
    config = UnifiedLossConfig(text_loss_weight=0.25, video_loss_weight=2.0)
    out = compute_unified_loss(pred, logits, inputs, config)
    assert out.video_loss.item() == pytest.approx(0.0, abs=1e-10)
    assert out.text_loss.item() == pytest.approx(math.log(V), rel=1e-6)
    assert out.loss.item() == pytest.approx(0.25 * math.log(V), rel=1e-6)
    pred[1] += 1.0
    out = compute_unified_loss(pred, logits, inputs, config)
    assert out.video_loss.item() == pytest.approx(0.5, rel=1e-5)  # (1 + 0) / 2 contributing samples
    assert out.loss.item() == pytest.approx(2.0 * 0.5 + 0.25 * math.log(V), rel=1e-5)


def test_empty_stream_terms_are_zero_but_differentiable():
    latents, ids, mask, prompt, inputs = build([GENERATION] * 2)
    logits = torch.randn(2, ids.shape[1], V, requires_grad=True)
    pred = torch.randn_like(latents, requires_grad=True)
    out = compute_unified_loss(pred, logits, inputs, UnifiedLossConfig())
    assert math.isnan(out.text_loss.item())
    out.loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_view_ratios_respected_statistically():
    n = 30000
    ratios = (3.0, 1.0, 2.0)
    views = sample_task_views(n, ratios, generator=torch.Generator().manual_seed(0))
    for i, r in enumerate(ratios):
        p = r / sum(ratios)
        freq = (views == i).float().mean().item()
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / n), (i, freq, p)
    only_understanding = sample_task_views(1000, (1, 0, 0), generator=torch.Generator().manual_seed(1))
    assert torch.all(only_understanding == UNDERSTANDING)
    with pytest.raises(ValueError):
        UnifiedLossConfig(view_ratios=(0, 0, 0))


def test_per_stream_timesteps_are_independent():
    n = 20000
    latents = torch.zeros(n, 1, 1, 2, 2)
    ids = torch.zeros(n, 1, dtype=torch.long)
    prompt = torch.ones(n, 1, 2)
    inputs = build_training_inputs(
        latents, ids, None, prompt, DiscreteFlowScheduler(vocab_size=V), UnifiedLossConfig(),
        views=torch.full((n,), JOINT), generator=torch.Generator().manual_seed(0),
    )
    s = inputs.sigmas.double()
    t = inputs.text_timestep.double() / 1000
    corr = torch.corrcoef(torch.stack([s, t]))[0, 1].item()
    assert abs(corr) < 4 / math.sqrt(n), corr
    assert (s != t).float().mean() > 0.999
    # both uniform on [0, 1] (default density "none")
    for x in (s, t):
        assert abs(x.mean().item() - 0.5) < 0.01 and abs(x.var().item() - 1 / 12) < 0.005


def test_text_noise_follows_the_mixture_path():
    n, length = 4000, 16
    ids = torch.randint(0, V, (n, length), generator=torch.Generator().manual_seed(5))
    inputs = build_training_inputs(
        torch.zeros(n, 1, 1, 2, 2), ids, None, torch.ones(n, 1, 2), DiscreteFlowScheduler(vocab_size=V),
        UnifiedLossConfig(), views=torch.full((n,), UNDERSTANDING), generator=torch.Generator().manual_seed(0),
    )
    kappa = 1 - inputs.text_timestep / 1000  # t (kappa(t) = t)
    changed = (inputs.text_ids != ids).float().mean(1)
    expected = ((1 - kappa) * (1 - 1 / V)).mean()
    assert abs(changed.mean() - expected) < 0.01


def test_logit_normal_density_and_weighting():
    config = UnifiedLossConfig(weighting_scheme="logit_normal", logit_mean=0.0, logit_std=1.0)
    _, _, _, _, inputs = build([JOINT] * 2000, config=config)
    s = inputs.sigmas
    assert abs(s.mean().item() - 0.5) < 0.02 and s.std().item() < 0.25  # U(0,1) has std 0.289
    assert torch.all(inputs.video_weighting == 1)
    config = UnifiedLossConfig(weighting_scheme="sigma_sqrt", flow_shift=3.0)
    _, _, _, _, inputs = build([GENERATION] * 100, config=config)
    assert torch.allclose(inputs.video_weighting, inputs.sigmas.clamp_min(1e-4) ** -2)


def test_same_generator_seed_same_views_and_noise():
    a = build([UNDERSTANDING, GENERATION, JOINT], seed=7)[-1]
    b = build([UNDERSTANDING, GENERATION, JOINT], seed=7)[-1]
    c = build([UNDERSTANDING, GENERATION, JOINT], seed=8)[-1]
    for name in ("hidden_states", "timestep", "text_ids", "text_timestep", "sigmas"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.hidden_states, c.hidden_states)


def test_unified_loss_on_a_tiny_univigu_model():
    """End to end with the real transformer: a fresh model (zero text head) scores exactly ln(V) on text, and the
    loss back-propagates into the text experts."""
    from univigu.models import UniViGUTransformer3DModel
    from univigu.toyworld.components import build_tiny_wan_transformer

    wan = build_tiny_wan_transformer(seed=0, text_dim=8, in_channels=4)
    model = UniViGUTransformer3DModel.from_wan(wan, vocab_size=V, seed=0)
    latents, ids, mask, prompt = make_batch(batch_size=4, length=5, pad_from=4)
    latents = torch.randn(4, 4, 2, 4, 4)
    loss_fn = UnifiedLoss(DiscreteFlowScheduler(vocab_size=V), UnifiedLossConfig(view_ratios=(1, 1, 1)))
    out = loss_fn(
        model, latents, ids, mask, prompt, views=torch.tensor([0, 1, 2, 0]),
        generator=torch.Generator().manual_seed(0),
    )
    assert out.text_loss.item() == pytest.approx(math.log(V), rel=1e-5)
    assert out.view_counts == {"understanding": 2, "generation": 1, "joint": 1}
    out.loss.backward()
    assert model.text_head.linear.weight.grad.abs().sum() > 0
    assert model.blocks[0].ffn_t.net[0].proj.weight.grad is not None


def test_generation_views_can_attend_to_real_tokens_only():
    """`generation_attention_mask` replaces the text mask of generation views (text-to-video attends only to the
    prompt's own tokens) and leaves the other views' masks alone."""
    latents, ids, mask, prompt = make_batch(batch_size=3, length=6)
    real = torch.ones(3, 6, dtype=torch.bool)
    real[:, 4:] = False
    inputs = build_training_inputs(
        latents, ids, mask, prompt, DiscreteFlowScheduler(vocab_size=V), UnifiedLossConfig(),
        views=torch.tensor([UNDERSTANDING, GENERATION, JOINT]), generator=torch.Generator().manual_seed(0),
        generation_attention_mask=real,
    )
    assert torch.equal(inputs.text_attention_mask[1], real[1])
    assert inputs.text_attention_mask[0].all() and inputs.text_attention_mask[2].all()
