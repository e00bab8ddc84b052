"""diffusers' memory switches, applied the same way to WanPipeline and to the converted UniViGUPipeline, give the
same video with the text stream off (the prior is kept), and captioning / joint generation run under them.

Run here on CPU: fp8 layerwise casting, group offloading (block and leaf level, no streams), VAE tiling and slicing,
torch.compile of the repeated blocks is left to a GPU run (see docs/memory.md)."""

import copy

import pytest
import torch
from diffusers import WanPipeline

from test_pipeline import PROMPT, SMALL, gen, make_pipeline


def _apply(switch, pipe):
    transformer = pipe.transformer
    if switch == "fp8_layerwise_casting":
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    elif switch == "group_offload_block":
        transformer.enable_group_offload(torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1)
    elif switch == "group_offload_leaf":
        transformer.enable_group_offload(torch.device("cpu"), offload_type="leaf_level")
    elif switch == "vae_tiling":
        pipe.vae.enable_tiling(tile_sample_min_height=16, tile_sample_min_width=16, tile_sample_stride_height=8,
                               tile_sample_stride_width=8)
    elif switch == "vae_slicing":
        pipe.vae.enable_slicing()
    elif switch == "sequential_offload_hooks":
        # what `enable_sequential_cpu_offload` does, with the CPU as the execution device: every weight waits on the
        # meta device and each module's hook brings its own in for its forward. Code that reads a submodule's weight
        # without calling the submodule breaks here (as it did on a GPU before the text head's norm became a module).
        from accelerate import cpu_offload

        cpu_offload(transformer, execution_device=torch.device("cpu"))
    else:
        raise ValueError(switch)


SWITCHES = ["fp8_layerwise_casting", "group_offload_block", "group_offload_leaf", "vae_tiling", "vae_slicing",
            "sequential_offload_hooks"]


@pytest.mark.parametrize("switch", SWITCHES)
def test_switch_keeps_the_prior_and_all_tasks_run(switch):
    pipe, components = make_pipeline()
    wan = WanPipeline(**{k: copy.deepcopy(v) for k, v in components.items()})
    wan.set_progress_bar_config(disable=True)
    _apply(switch, wan)
    _apply(switch, pipe)
    kwargs = dict(SMALL, output_type="pt")
    expected = wan(PROMPT, generator=gen(3), **kwargs).frames
    got = pipe(PROMPT, generator=gen(3), text_stream=False, **kwargs).frames
    assert torch.equal(got, expected), (got - expected).abs().max()
    joint = pipe(PROMPT, task="t2vt", generator=gen(1), max_text_length=8, **kwargs)
    assert joint.frames.shape == expected.shape and len(joint.text) == 1
    caption = pipe(video=joint.frames[0], task="v2t", generator=gen(2), max_text_length=8,
                   num_inference_steps=2).text
    assert len(caption) == 1


def test_attention_backend_applies_to_both_streams():
    pipe, components = make_pipeline()
    wan = WanPipeline(**{k: copy.deepcopy(v) for k, v in components.items()})
    wan.set_progress_bar_config(disable=True)
    for p in (wan, pipe):
        p.transformer.set_attention_backend("_native_math")
    backends = {getattr(m.processor._attention_backend, "value", None) for m in pipe.transformer.modules()
                if hasattr(m, "processor")}
    assert backends == {"_native_math"}  # the joint self-attention and the cross-attention alike
    kwargs = dict(SMALL, output_type="pt")
    assert torch.equal(pipe(PROMPT, generator=gen(3), text_stream=False, **kwargs).frames,
                       wan(PROMPT, generator=gen(3), **kwargs).frames)


def test_compiled_repeated_blocks_keep_the_prior_and_the_cache_works():
    """`compile_repeated_blocks` compiles one UniViGUTransformerBlock (regional compilation, as for Wan's blocks)."""
    pipe, components = make_pipeline()
    wan = WanPipeline(**{k: copy.deepcopy(v) for k, v in components.items()})
    wan.set_progress_bar_config(disable=True)
    kwargs = dict(SMALL, output_type="pt")
    video = wan(PROMPT, generator=gen(3), **kwargs).frames
    eager_caption = pipe(video=video[0], task="v2t", generator=gen(2), max_text_length=8, num_inference_steps=3,
                         video_cache_interval=2).text
    for p in (wan, pipe):
        p.transformer.compile_repeated_blocks(fullgraph=True)
    torch.testing.assert_close(pipe(PROMPT, generator=gen(3), text_stream=False, **kwargs).frames, video,
                               rtol=0, atol=1e-5)
    caption = pipe(video=video[0], task="v2t", generator=gen(2), max_text_length=8, num_inference_steps=3,
                   video_cache_interval=2).text
    assert caption == eager_caption
