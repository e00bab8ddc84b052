"""Fast understanding: the video key/value cache of `UniViGUTransformer3DModel` and `video_cache_interval` of the
pipeline's video -> text sampler."""

import pytest
import torch

from univigu.models.transformer_univigu import UniViGUVideoKVCache

from test_transformer import TINY, tiny_inputs, tiny_model


def _text_only(inputs, text_ids, text_timestep):
    return dict(encoder_hidden_states=inputs["encoder_hidden_states"], text_ids=text_ids, text_timestep=text_timestep)


@torch.no_grad()
def test_refresh_step_is_the_full_forward():
    model, inputs = tiny_model(), tiny_inputs()
    full = model(**inputs).text_logits
    cache = UniViGUVideoKVCache()
    cached = model(**inputs, attention_kwargs={"video_kv_cache": cache}).text_logits
    assert torch.equal(full, cached)
    assert len(cache.keys) == TINY["num_layers"] and cache.num_video_tokens == 3 * 4 * 4


@torch.no_grad()
def test_with_video_prefix_attention_a_cached_step_is_exact():
    """The video tokens never see the text, so their keys/values stored at step 0 are those of any later step."""
    model, inputs = tiny_model(), tiny_inputs()
    prefix = {"understanding_attention": "video_prefix"}
    cache = UniViGUVideoKVCache()
    model(**inputs, attention_kwargs={**prefix, "video_kv_cache": cache})
    new_ids = torch.randint(0, 50, inputs["text_ids"].shape, generator=torch.Generator().manual_seed(1))
    new_t = torch.tensor([300.0, 40.0])
    exact = model(**{**inputs, "text_ids": new_ids, "text_timestep": new_t}, attention_kwargs=prefix).text_logits
    cache.refresh = False
    fast = model(**_text_only(inputs, new_ids, new_t), attention_kwargs={**prefix, "video_kv_cache": cache}).text_logits
    torch.testing.assert_close(fast, exact, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_with_full_attention_a_cached_step_approximates():
    model, inputs = tiny_model(), tiny_inputs()
    cache = UniViGUVideoKVCache()
    model(**inputs, attention_kwargs={"video_kv_cache": cache})
    new_ids = torch.randint(0, 50, inputs["text_ids"].shape, generator=torch.Generator().manual_seed(1))
    t = inputs["text_timestep"]
    exact = model(**{**inputs, "text_ids": new_ids}).text_logits
    cache.refresh = False
    fast = model(**_text_only(inputs, new_ids, t), attention_kwargs={"video_kv_cache": cache}).text_logits
    error = (fast - exact).abs().max().item()
    assert 0 < error < exact.abs().max().item()  # the stored video features belong to the old text


@torch.no_grad()
def test_video_prefix_keeps_video_features_independent_of_text():
    model, inputs = tiny_model(), tiny_inputs()
    prefix = {"understanding_attention": "video_prefix"}
    a = model(**inputs, attention_kwargs=prefix).sample
    b = model(**{**inputs, "text_ids": (inputs["text_ids"] + 1) % 50}, attention_kwargs=prefix).sample
    assert torch.equal(a, b)
    per_sample = model(**inputs, attention_kwargs={"understanding_attention": torch.tensor([True, False])}).sample
    full = model(**inputs).sample
    torch.testing.assert_close(per_sample[0], a[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(per_sample[1], full[1], rtol=1e-6, atol=1e-6)


@torch.no_grad()
def test_cache_with_padding_mask():
    model, inputs = tiny_model(), tiny_inputs()
    mask = torch.ones_like(inputs["text_ids"])
    mask[:, -2:] = 0
    prefix = {"understanding_attention": "video_prefix"}
    cache = UniViGUVideoKVCache()
    model(**inputs, text_attention_mask=mask, attention_kwargs={**prefix, "video_kv_cache": cache})
    exact = model(**inputs, text_attention_mask=mask, attention_kwargs=prefix).text_logits
    cache.refresh = False
    fast = model(**_text_only(inputs, inputs["text_ids"], inputs["text_timestep"]), text_attention_mask=mask,
                 attention_kwargs={**prefix, "video_kv_cache": cache}).text_logits
    torch.testing.assert_close(fast, exact, rtol=1e-5, atol=1e-5)


def test_cache_misuse_is_named():
    model, inputs = tiny_model(), tiny_inputs()
    cache = UniViGUVideoKVCache()
    cache.refresh = False
    with pytest.raises(ValueError, match="cached step takes none"):
        model(**inputs, attention_kwargs={"video_kv_cache": cache})
    with pytest.raises(RuntimeError, match="run a refresh step"):
        model(**_text_only(inputs, inputs["text_ids"], inputs["text_timestep"]), attention_kwargs={"video_kv_cache": cache})
    with pytest.raises(ValueError, match="Unknown attention_kwargs"):
        model(**inputs, attention_kwargs={"video_cache": cache})
    with pytest.raises(ValueError, match="'full' or 'video_prefix'"):
        model(**inputs, attention_kwargs={"understanding_attention": "prefix"})


@pytest.fixture(scope="module")
def shapes_pipe():
    from univigu import UniViGUPipeline
    from univigu.toyworld import DEFAULT_CHECKPOINT

    return UniViGUPipeline.from_pretrained(DEFAULT_CHECKPOINT)


def _clips(count=4):
    import numpy as np

    from univigu.toyworld import render_scene
    from univigu.toyworld.evaluate import held_out_test_scenes

    return np.stack([render_scene(scene) for scene in held_out_test_scenes(count, num_objects=1, seed=5)])


def _caption(pipe, videos, **kwargs):
    generators = [torch.Generator().manual_seed(i) for i in range(len(videos))]
    return pipe(video=videos, task="v2t", generator=generators, **kwargs)


@torch.no_grad()
def test_interval_one_is_the_exact_sampler(shapes_pipe):
    videos = _clips()
    exact = _caption(shapes_pipe, videos)
    cached = _caption(shapes_pipe, videos, video_cache_interval=1)
    assert cached.text == exact.text and torch.equal(cached.text_ids, exact.text_ids)


@torch.no_grad()
def test_never_refreshing_equals_exact_with_video_prefix_attention(shapes_pipe):
    """By construction: with video_prefix attention the video keys/values never depend on the text."""
    videos = _clips()
    exact = _caption(shapes_pipe, videos, understanding_attention="video_prefix")
    never = _caption(shapes_pipe, videos, understanding_attention="video_prefix", video_cache_interval=10_000)
    assert never.text == exact.text


@torch.no_grad()
def test_cached_captions_stream_and_batch(shapes_pipe):
    videos = _clips()
    seen = []
    out = _caption(shapes_pipe, videos, video_cache_interval=4, return_text_history=True,
                   callback_on_step_end=lambda pipe, i, t, kw: seen.append(kw["text_ids"].shape) or {},
                   callback_on_step_end_tensor_inputs=["text_ids"])
    steps = shapes_pipe.call_default("num_inference_steps", "v2t")
    assert len(seen) == len(out.text_history) == steps and len(out.text) == len(videos)
    # per-sample generators: the batch gives what the single calls give
    single = shapes_pipe(video=videos[1:2], task="v2t", generator=[torch.Generator().manual_seed(1)],
                         video_cache_interval=4)
    assert single.text[0] == out.text[1]


@pytest.mark.parametrize("value,message", [(0, "positive integer"), (1.5, "positive integer"), (True, "positive integer")])
def test_bad_interval_is_named(shapes_pipe, value, message):
    with pytest.raises(ValueError, match=message):
        _caption(shapes_pipe, _clips(1), video_cache_interval=value)


def test_interval_is_for_captioning_only(shapes_pipe):
    with pytest.raises(ValueError, match="video -> text"):
        shapes_pipe(prompt="a red circle moving left", video_cache_interval=2, num_inference_steps=1)


def test_understanding_views_train_with_video_prefix_attention():
    """The loss gives the model a per-sample mask: video_prefix for understanding views, full attention otherwise."""
    from univigu.schedulers import DiscreteFlowScheduler
    from univigu.training.losses import UNDERSTANDING, UnifiedLoss, UnifiedLossConfig

    model, inputs = tiny_model(), tiny_inputs(batch=2)
    seen = {}
    forward = model.forward

    def spy(*args, **kwargs):
        seen.update(kwargs.get("attention_kwargs") or {})
        return forward(*args, **kwargs)

    model.forward = spy
    loss_fn = UnifiedLoss(DiscreteFlowScheduler(vocab_size=50), UnifiedLossConfig(understanding_attention="video_prefix"))
    views = torch.tensor([UNDERSTANDING, 1])
    out = loss_fn(model, inputs["hidden_states"], inputs["text_ids"], None, inputs["encoder_hidden_states"], views=views,
                  generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)
    assert torch.equal(seen["understanding_attention"], torch.tensor([True, False]))
    with pytest.raises(ValueError, match="'full' or 'video_prefix'"):
        UnifiedLossConfig(understanding_attention="prefix")


def test_a_video_prefix_run_records_its_attention_for_captioning(tmp_path):
    from test_training import common_args, parse_args, train_main

    from univigu.pipelines import UniViGUPipeline
    from univigu.toyworld import make_dataset
    from univigu.toyworld.components import build_tiny_components
    from diffusers import WanPipeline

    WanPipeline(**build_tiny_components(seed=0)).save_pretrained(tmp_path / "wan")
    make_dataset(tmp_path / "data", 8, split="train", seed=0)
    out = tmp_path / "recall"
    train_main(parse_args("recall", [
        "--pretrained_model_name_or_path", str(tmp_path / "wan"), *common_args(tmp_path, out),
        "--train_batch_size", "2", "--max_train_steps", "2", "--checkpointing_steps", "0", "--no_loss_plot",
        "--trainable", "all", "--understanding_attention", "video_prefix",
    ]))
    pipe = UniViGUPipeline.from_pretrained(out)
    assert pipe.call_default("understanding_attention", "v2t") == "video_prefix"
    assert pipe.call_default("understanding_attention", "t2vt") == "full"


@torch.no_grad()
def test_flops_of_a_cached_step_are_pinned_at_a_tiny_config():
    """What benchmarks/bench_caption.py counts at full size, at a tiny config: a cached step runs the text tokens
    only, so its FLOPs fall with the video's share of the sequence."""
    from torch.utils.flop_counter import FlopCounterMode

    model, inputs = tiny_model(), tiny_inputs(batch=1, length=8)
    inputs = {k: v[:1] for k, v in inputs.items()}

    def flops(**kwargs):
        with FlopCounterMode(display=False) as counter:
            model(**kwargs)
        return counter.get_total_flops()

    cache = UniViGUVideoKVCache()
    full = flops(**inputs, attention_kwargs={"video_kv_cache": cache})
    cache.refresh = False
    cached = flops(**_text_only(inputs, inputs["text_ids"], inputs["text_timestep"]),
                   attention_kwargs={"video_kv_cache": cache})
    assert (full, cached) == (FULL_STEP_FLOPS, CACHED_STEP_FLOPS), (full, cached)


# 48 video tokens + 8 text tokens, 2 blocks of width 24 (TINY), counted with torch 2.13: a cached step costs 6.6x less
FULL_STEP_FLOPS, CACHED_STEP_FLOPS = 1_486_464, 224_256
