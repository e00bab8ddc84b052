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


# ---------------------------------------------------------------------------------------------------- the pipeline
# UniViGUPipeline enters `transformer.cache_context("cond" / "uncond", step_index=..., sigma=...,
# num_inference_steps=...)` around its two guidance calls, as WanPipeline does: the caches that need a context
# (FirstBlockCache, SeaCache, TaylorSeer) run through it, and MagCache keeps one state per branch.

#: FasterCache's unconditional-batch reuse needs one batched cond/uncond call, which neither pipeline makes: through
#: the pipelines, its attention reuse only (`is_guidance_distilled=True`; the first step, at timestep 1000, must
#: compute: it is outside the skip range).
PIPELINE_CACHES = dict(CACHES, faster=(lambda clock: FasterCacheConfig(
    spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(-1, 900), is_guidance_distilled=True,
    attention_weight_callback=lambda _: 0.5, current_timestep_callback=clock), True, False))
PIPELINE_CALL = dict(num_frames=9, height=32, width=32, num_inference_steps=STEPS, max_sequence_length=16,
                     guidance_scale=GUIDANCE, negative_prompt="blurry", output_type="latent")


@pytest.fixture(scope="module")
def pipelines():
    """A tiny UniViGUPipeline and the WanPipeline of the same components, its transformer converted by `from_wan`."""
    from diffusers import WanPipeline

    from test_pipeline import make_pipeline

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny models run much faster on one thread than on two contended ones
    pipe, components = make_pipeline()
    wan = WanPipeline(**components)
    wan.set_progress_bar_config(disable=True)
    yield pipe, wan
    torch.set_num_threads(threads)


@torch.no_grad()
def run_pipeline(pipe, name=None, **kwargs):
    """The final latents of a seeded t2v call of `pipe` with the cache `name` (None: no cache)."""
    if name is not None:
        pipe.transformer.enable_cache(PIPELINE_CACHES[name][0](lambda: pipe.current_timestep))
    try:
        return pipe("a red circle moving left", generator=torch.Generator().manual_seed(5),
                    **PIPELINE_CALL, **kwargs).frames
    finally:
        if name is not None:
            pipe.transformer._reset_stateful_cache()
            pipe.transformer.disable_cache()


@pytest.mark.parametrize("name", sorted(PIPELINE_CACHES))
def test_pipeline_t2v_runs_with_each_cache(pipelines, name):
    pipe, _ = pipelines
    plain = run_pipeline(pipe)
    cached = run_pipeline(pipe, name)  # the text stream on: the joint sequence
    assert cached.shape == plain.shape and torch.isfinite(cached).all()
    assert not pipe.transformer.is_cache_enabled
    assert torch.equal(run_pipeline(pipe), plain)  # disabled, the cache leaves nothing behind


@pytest.mark.parametrize("name", sorted(PIPELINE_CACHES))
def test_pipeline_t2v_without_text_stream_matches_wan_pipeline(pipelines, name):
    pipe, wan = pipelines
    expected = run_pipeline(wan, name)
    got = run_pipeline(pipe, name, text_stream=False)
    assert torch.equal(got, expected)
    if PIPELINE_CACHES[name][1]:  # the cache did skip work (the comparison above is not between two no-ops)
        assert not torch.equal(got, run_pipeline(pipe, text_stream=False))


@pytest.mark.parametrize("task", ["v2t", "t2vt"])
def test_pipeline_captions_with_a_cache(pipelines, task):
    """v2t runs each step in a `cond` context, and t2vt's final reference pass in a `caption` context of its own."""
    pipe, _ = pipelines
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.3))
    try:
        g = torch.Generator().manual_seed(0)
        if task == "v2t":
            video = torch.rand(9, 32, 32, 3, generator=g).numpy()
            out = pipe(video=video, task="v2t", num_inference_steps=4, max_text_length=6, height=32, width=32,
                       generator=g)
        else:
            out = pipe("a red circle", task="t2vt", text_update="reference", max_text_length=6, generator=g,
                       **dict(PIPELINE_CALL, num_inference_steps=4))
    finally:
        pipe.transformer._reset_stateful_cache()
        pipe.transformer.disable_cache()
    assert len(out.text) == 1 and isinstance(out.text[0], str)
