"""diffusers' step caches on UniViGUTransformer3DModel (issue #30, item 1): `enable_cache` takes every config Wan takes,
with the text stream on (the joint sequence) and off; off, each config gives exactly what it gives on
`WanTransformer3DModel` with the same weights (converted by `from_wan`), on a sampling loop like WanPipeline's."""

import pytest
import torch
from diffusers import WanTransformer3DModel
from diffusers.hooks import (
    FasterCacheConfig,
    FirstBlockCacheConfig,
    MagCacheConfig,
    PyramidAttentionBroadcastConfig,
    SeaCacheConfig,
    TaylorSeerCacheConfig,
)

from univigu import UniViGUTransformer3DModel


CONFIG = dict(num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16, text_dim=32, freq_dim=16,
              ffn_dim=32, num_layers=3, rope_max_seq_len=32)
STEPS, GUIDANCE, VOCAB = 8, 5.0, 30


class Clock:
    """The sampling loop's current timestep, for the configs that ask for a `current_timestep_callback`."""

    timestep = 1000.0

    def __call__(self):
        return self.timestep


#: name -> (config factory, whether it changes the output of this loop, whether its CFG is batched)
CACHES = {
    "first_block": (lambda clock: FirstBlockCacheConfig(threshold=0.3), True, False),
    "mag": (lambda clock: MagCacheConfig(threshold=0.5, num_inference_steps=STEPS, mag_ratios=[1.0] * STEPS,
                                         retention_ratio=0.25, max_skip_steps=2), True, False),
    "sea": (lambda clock: SeaCacheConfig(threshold=10.0), True, False),
    "taylorseer": (lambda clock: TaylorSeerCacheConfig(
        cache_interval=2, disable_cache_before_step=2, taylor_factors_dtype=torch.float32,
        cache_identifiers=[r"blocks\.\d+\.(attn1|attn2|ffn)"]), True, False),
    "taylorseer_lite": (lambda clock: TaylorSeerCacheConfig(
        cache_interval=2, disable_cache_before_step=2, taylor_factors_dtype=torch.float32, use_lite_mode=True),
        True, False),
    # diffusers' default patterns match no Wan module: a no-op on both
    "taylorseer_default": (lambda clock: TaylorSeerCacheConfig(taylor_factors_dtype=torch.float32), False, False),
    "pyramid_attention_broadcast": (lambda clock: PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=2, cross_attention_block_skip_range=3,
        spatial_attention_timestep_skip_range=(-1, 1001), cross_attention_timestep_skip_range=(-1, 1001),
        current_timestep_callback=clock), True, False),
    # FasterCache approximates the unconditional half of a batched cond/uncond call
    "faster": (lambda clock: FasterCacheConfig(
        spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(-1, 1001),
        unconditional_batch_skip_range=2, unconditional_batch_timestep_skip_range=(-1, 1001),
        attention_weight_callback=lambda _: 0.5, current_timestep_callback=clock), True, True),
}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    wan = WanTransformer3DModel(**CONFIG).eval()
    model = UniViGUTransformer3DModel.from_wan(wan, vocab_size=VOCAB, seed=0).eval()
    with torch.no_grad():  # a trained-looking text head, so that the text stream's outputs are not trivial
        model.text_head.linear.weight.normal_(std=0.5)
    return wan, model


def inputs(batch=1):
    g = torch.Generator().manual_seed(3)
    return dict(
        latents=torch.randn(batch, 16, 3, 8, 8, generator=g),
        cond=torch.randn(batch, 5, 32, generator=g),
        uncond=torch.randn(batch, 5, 32, generator=g),
        text_ids=torch.randint(0, VOCAB, (batch, 6), generator=g),
    )


@torch.no_grad()
def sample(model, config=None, clock=None, text=False, batched_cfg=False):
    """A WanPipeline-like loop (flow Euler steps, classifier-free guidance, one cache context per branch); with `text`
    the t2v text stream rides along (the prompt's tokens, clean). Returns the final latents."""
    data = inputs()
    latents = data["latents"]
    clock = clock or Clock()
    if config is not None:
        model.enable_cache(config)
    sigmas = torch.linspace(1.0, 0.0, STEPS + 1)
    try:
        for i in range(STEPS):
            clock.timestep = float(sigmas[i] * 1000)
            timestep = torch.full((latents.shape[0],), clock.timestep)
            context = dict(step_index=i, num_inference_steps=STEPS, sigma=float(sigmas[i]))

            def call(name, embeds, batch=1):
                kwargs = dict(hidden_states=latents.repeat(batch, 1, 1, 1, 1), timestep=timestep.repeat(batch),
                              encoder_hidden_states=embeds, return_dict=False)
                if text and isinstance(model, UniViGUTransformer3DModel):
                    kwargs.update(text_ids=data["text_ids"].repeat(batch, 1), text_timestep=torch.zeros(batch))
                with model.cache_context(name, **context):
                    return model(**kwargs)[0]

            if batched_cfg:  # [uncond ; cond] in one call, as FasterCache expects
                uncond, cond = call("cfg", torch.cat([data["uncond"], data["cond"]]), batch=2).chunk(2)
            else:
                cond, uncond = call("cond", data["cond"]), call("uncond", data["uncond"])
            velocity = uncond + GUIDANCE * (cond - uncond)
            latents = latents + (sigmas[i + 1] - sigmas[i]) * velocity
    finally:
        if config is not None:
            model._reset_stateful_cache()
            model.disable_cache()
    return latents


@pytest.mark.parametrize("name", sorted(CACHES))
def test_text_stream_off_gives_wans_output(models, name):
    wan, model = models
    make, changes_output, batched = CACHES[name]
    expected = sample(wan, make(Clock()), batched_cfg=batched)
    got = sample(model, make(Clock()), batched_cfg=batched)
    assert torch.equal(got, expected)
    if changes_output:  # the cache did skip work on this loop (the comparison above is not between two no-ops)
        assert not torch.equal(got, sample(model, batched_cfg=batched))


@pytest.mark.parametrize("name", sorted(CACHES))
def test_text_stream_on(models, name):
    """With the text stream on, the caches act on the joint `[video ; text]` sequence; disabling the cache gives back
    the uncached output bit for bit."""
    _, model = models
    make, changes_output, batched = CACHES[name]
    plain = sample(model, text=True, batched_cfg=batched)
    cached = sample(model, make(Clock()), text=True, batched_cfg=batched)
    assert cached.shape == plain.shape and torch.isfinite(cached).all()
    if changes_output:
        assert not torch.equal(cached, plain)
    assert not model.is_cache_enabled
    assert torch.equal(sample(model, text=True, batched_cfg=batched), plain)


def test_first_block_cache_skips_steps_on_the_joint_sequence(models):
    """The head block's hook sees the joint sequence (video and text tokens), and the cache skips the other blocks."""
    _, model = models
    head_lengths, tail_calls = [], []
    head = model.blocks[0].register_forward_hook(lambda module, args, output: head_lengths.append(output.shape[1]))
    tail = model.blocks[-1].ffn.register_forward_pre_hook(lambda module, args: tail_calls.append(1))
    try:
        sample(model, FirstBlockCacheConfig(threshold=0.3), text=True)
    finally:
        head.remove()
        tail.remove()
    assert head_lengths == [3 * 4 * 4 + 6] * (2 * STEPS)  # the head block runs at every call, on video + text
    assert 0 < len(tail_calls) < 2 * STEPS


def test_taylorseer_lite_predicts_our_output_layers(models):
    _, model = models
    model.enable_cache(TaylorSeerCacheConfig(use_lite_mode=True))
    try:
        hooked = {name for name, module in model.named_modules()
                  if "taylorseer_cache" in getattr(getattr(module, "_diffusers_hook", None), "hooks", {})}
        assert hooked == {"video_head.proj_out", "text_head.linear"} | {f"blocks.{i}" for i in range(3)}
        assert model._cache_config.use_lite_mode is False  # the adapted copy; the caller's config is kept
    finally:
        model.disable_cache()


def test_video_kv_cache_and_step_cache_exclude_each_other(models):
    _, model = models
    model.enable_cache(FirstBlockCacheConfig())
    try:
        cache = model.video_kv_cache()
        with pytest.raises(ValueError, match="one of the two"):
            model(hidden_states=inputs()["latents"], timestep=torch.ones(1), text_ids=inputs()["text_ids"],
                  text_timestep=torch.ones(1), attention_kwargs={"video_kv_cache": cache})
    finally:
        model.disable_cache()
