"""Backbones other than Wan2.1-T2V-1.3B (issue #11, "Scale"): tiny folders with the layout of Wan2.1-T2V-14B and of
Wan2.2-TI2V-5B are converted with `univigu convert wan`, keep Wan's prior exactly (t2v with the text stream off equals
`WanPipeline` on the same weights and seed, bit for bit, as tests/test_conversion.py checks for the 1.3B layout), and
run v2t and t2vt; `univigu params` reports both at full size. A Wan2.2-A14B folder (two transformers split by
`boundary_ratio`) is refused before anything is written. See docs/backbones.md.

The tiny configs keep each layout's structure, scaled down:

- 14B: model dim > umT5 dim (5120 > 4096 there, 40 > 32 here), ffn ~2.7 x dim, more layers than the 1.3B, 16 latent
  channels, Wan2.1's 8x VAE, a UniPC flow scheduler and a sharded transformer;
- TI2V-5B: model dim < umT5 dim (3072 < 4096; 24 < 32), ffn ~4.7 x dim, 48 latent channels from a residual
  `AutoencoderKLWan` (is_residual, patch_size 2, 12 pixel channels in, 16x spatial and 4x temporal compression, 48
  latents_mean/std) and `expand_timesteps=True` in its model_index.json (one video timestep per latent token).
"""

import json

import pytest
import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

from univigu import UniViGUPipeline, UniViGUTransformer3DModel
from univigu.conversion.wan import convert_wan
from univigu.toyworld.components import build_tiny_text_encoder, build_tiny_vae, build_tokenizer


TEXT_DIM = 32
COMMON = dict(
    patch_size=(1, 2, 2), text_dim=TEXT_DIM, freq_dim=16, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, rope_max_seq_len=32,
)
LAYOUTS = {
    # Wan2.1-T2V-14B: 40 heads x 128, ffn 13824, 40 layers, 16 channels -> 5 x 8, 108, 4, 16
    "wan2.1-t2v-14b": dict(
        transformer=dict(COMMON, num_attention_heads=5, attention_head_dim=8, ffn_dim=108, num_layers=4,
                         in_channels=16, out_channels=16),
        expand_timesteps=False, flow_shift=3.0, size=32,
    ),
    # Wan2.2-TI2V-5B: 24 heads x 128, ffn 14336, 30 layers, 48 channels -> 3 x 8, 112, 3, 48
    "wan2.2-ti2v-5b": dict(
        transformer=dict(COMMON, num_attention_heads=3, attention_head_dim=8, ffn_dim=112, num_layers=3,
                         in_channels=48, out_channels=48),
        expand_timesteps=True, flow_shift=5.0, size=64,
    ),
}
PROMPT = "a red circle moving left"
PROMPTS = ["a red circle moving left", "a blue square staying still"]


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build_wan22_vae(seed=0):
    """A tiny Wan2.2 VAE (the TI2V-5B one's structure: base_dim 160 / decoder_base_dim 256 -> 4 / 6)."""
    g = torch.Generator().manual_seed(seed + 100)
    mean = (torch.randn(48, generator=g) * 0.5).tolist()
    std = (torch.rand(48, generator=g) + 0.5).tolist()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKLWan(
            base_dim=4, decoder_base_dim=6, z_dim=48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
            temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12,
            patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4, latents_mean=mean, latents_std=std,
        )
    return vae.eval()


def save_wan_folder(path, layout, seed=0, **pipeline_kwargs):
    spec = LAYOUTS[layout]
    tokenizer = build_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = WanTransformer3DModel(**spec["transformer"]).eval()
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=build_tiny_text_encoder(vocab_size=len(tokenizer), d_model=TEXT_DIM, seed=seed),
        vae=build_wan22_vae(seed) if spec["transformer"]["in_channels"] == 48 else build_tiny_vae(seed=seed),
        transformer=transformer,
        scheduler=UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=spec["flow_shift"]
        ),
        expand_timesteps=spec["expand_timesteps"],
        **pipeline_kwargs,
    )
    # sharded, as the large checkpoints are
    pipe.save_pretrained(path, max_shard_size="100KB")
    return path


def realign(pipe):
    """Fresh (aligned) weight storage, so that CPU kernels round the same in both pipelines (tests/test_conversion)."""
    for param in pipe.transformer.parameters():
        param.data = param.data.clone()
    return pipe


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def converted(request, tmp_path_factory):
    """(layout, Wan folder, converted UniViGU folder)."""
    root = tmp_path_factory.mktemp(request.param)
    wan = save_wan_folder(root / "wan", request.param)
    out = convert_wan(wan, root / "univigu", seed=0)
    return request.param, wan, out


@pytest.fixture(scope="module")
def pipes(converted):
    layout, wan_path, out = converted
    wan = realign(WanPipeline.from_pretrained(wan_path))
    pipe = realign(UniViGUPipeline.from_pretrained(out))
    for p in (wan, pipe):
        p.set_progress_bar_config(disable=True)
    return layout, wan, pipe


def gen(seed):
    return torch.Generator().manual_seed(seed)


def small(layout, **kwargs):
    size = LAYOUTS[layout]["size"]
    return dict(height=size, width=size, num_frames=5, num_inference_steps=2, max_sequence_length=16, **kwargs)


# ------------------------------------------------------------------------------------------------ conversion


def test_conversion_keeps_the_layout(converted):
    layout, wan, out = converted
    spec = LAYOUTS[layout]
    assert (wan / "transformer" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "UniViGUPipeline"
    assert index["expand_timesteps"] is spec["expand_timesteps"]
    assert index["scheduler"] == ["diffusers", "UniPCMultistepScheduler"]
    config = json.loads((out / "transformer" / "config.json").read_text())
    for key, value in spec["transformer"].items():
        assert config[key] == (list(value) if isinstance(value, tuple) else value), key
    # the VAE is the Wan folder's, byte for byte
    assert (out / "vae" / "config.json").read_bytes() == (wan / "vae" / "config.json").read_bytes()
    vae = json.loads((out / "vae" / "config.json").read_text())
    if layout == "wan2.2-ti2v-5b":
        assert (vae["z_dim"], vae["is_residual"], vae["patch_size"], vae["scale_factor_spatial"]) == (48, True, 2, 16)
        assert len(vae["latents_mean"]) == len(vae["latents_std"]) == 48
    else:
        assert (vae["z_dim"], vae["is_residual"], vae["scale_factor_spatial"]) == (16, False, 8)


def test_streamed_conversion_equals_from_wan(pipes):
    _, wan, pipe = pipes
    reference = UniViGUTransformer3DModel.from_wan(wan.transformer, vocab_size=len(wan.tokenizer), seed=0).state_dict()
    ours = pipe.transformer.state_dict()
    assert ours.keys() == reference.keys()
    assert all(torch.equal(v, ours[k]) for k, v in reference.items())


# ------------------------------------------------------------------------------------------------ the prior


@pytest.mark.parametrize("guidance_scale", [4.0, 1.0])
def test_t2v_without_text_stream_equals_wan_pipeline(pipes, guidance_scale):
    layout, wan, pipe = pipes
    kwargs = small(layout, guidance_scale=guidance_scale, negative_prompt="blurry")
    expected = wan(PROMPTS, generator=gen(7), output_type="pt", **kwargs).frames
    got = pipe(PROMPTS, generator=gen(7), output_type="pt", text_stream=False, **kwargs).frames
    assert got.shape == (2, 5, 3, kwargs["height"], kwargs["width"]) and torch.equal(got, expected)
    expected = wan(PROMPT, generator=gen(8), output_type="latent", **kwargs).frames
    got = pipe(PROMPT, generator=gen(8), output_type="latent", text_stream=False, **kwargs).frames
    channels = LAYOUTS[layout]["transformer"]["in_channels"]
    assert got.shape[1] == channels and torch.equal(got, expected)


def test_video_timestep_follows_expand_timesteps(pipes):
    """TI2V-5B: the transformer gets one video timestep per latent token, all equal to the step's, as WanPipeline
    gives it; the text stream (t2v: the prompt's clean tokens at 0; t2vt: the caption at the video's time) keeps one
    per sample. 14B: one per sample."""
    layout, _, pipe = pipes
    calls = []
    original = pipe.transformer.forward

    def record(*args, **kwargs):
        calls.append({k: v for k, v in kwargs.items() if k in ("timestep", "text_timestep", "hidden_states")})
        return original(*args, **kwargs)

    pipe.transformer.forward = record
    try:
        pipe(PROMPT, generator=gen(0), guidance_scale=1.0, **small(layout))
        pipe(PROMPT, generator=gen(0), guidance_scale=1.0, generate_caption=True, max_text_length=4, **small(layout))
    finally:
        del pipe.transformer.forward
    assert len(calls) == 4
    for call in calls:
        batch, _, frames, height, width = call["hidden_states"].shape
        timestep, text_timestep = call["timestep"], call["text_timestep"]
        assert text_timestep.shape == (batch,)
        if LAYOUTS[layout]["expand_timesteps"]:
            assert timestep.shape == (batch, frames * (height // 2) * (width // 2))
            assert bool((timestep == timestep[:, :1]).all())
        else:
            assert timestep.shape == (batch,)
    assert not calls[0]["text_timestep"].any()  # t2v: clean prompt tokens
    assert float(calls[2]["text_timestep"][0]) == float(calls[2]["timestep"].flatten()[0])  # t2vt: text time = t


# ------------------------------------------------------------------------------------------------ text tasks


def test_v2t_and_t2vt_run_with_the_right_shapes(pipes):
    layout, _, pipe = pipes
    size = LAYOUTS[layout]["size"]
    video = torch.rand(2, 5, 3, size, size)
    out = pipe(video=video, generator=gen(0), num_inference_steps=2, max_text_length=6, output_type="pt")
    assert out.frames is None and len(out.text) == 2 and out.text_ids.shape == (2, 6)

    out = pipe(PROMPT, generate_caption=True, generator=gen(1), max_text_length=5, output_type="pt",
               return_text_history=True, **small(layout))
    assert out.frames.shape == (1, 5, 3, size, size)
    assert out.text_ids.shape == (1, 5) and len(out.text) == 1 and len(out.text_history) == 2

    # the video key/value cache of v2t and the reference text update of t2vt run on this layout too
    cached = pipe(video=video[:1], generator=gen(0), num_inference_steps=3, max_text_length=6,
                  video_cache_interval=2, understanding_attention="video_prefix")
    assert cached.text_ids.shape == (1, 6)
    ref = pipe(PROMPT, generate_caption=True, text_update="reference", generator=gen(1), max_text_length=5,
               output_type="latent", **small(layout))
    assert ref.text_ids.shape == (1, 5) and ref.frames.shape[1] == LAYOUTS[layout]["transformer"]["in_channels"]


# ------------------------------------------------------------------------------------------------ transformer


def test_per_token_timesteps_match_wan_transformer():
    """The transformer's per-token video timesteps (Wan2.2 TI2V; here also non-uniform, as TI2V's image
    conditioning gives the first latent frame t=0) compute what WanTransformer3DModel computes; uniform ones equal
    the per-sample timestep up to rounding; the text stream runs alongside; wrong shapes are named."""
    torch.manual_seed(0)
    wan = WanTransformer3DModel(**LAYOUTS["wan2.2-ti2v-5b"]["transformer"]).eval()
    model = UniViGUTransformer3DModel.from_wan(wan, vocab_size=20, seed=0).eval()
    latents = torch.randn(2, 48, 2, 4, 4)
    prompt = torch.randn(2, 6, TEXT_DIM)
    per_token = torch.full((2, 2 * 2 * 2), 700.0)
    per_token[:, :4] = 0.0  # the first latent frame's 4 tokens are clean
    with torch.no_grad():
        expected = wan(latents, per_token, prompt, return_dict=False)[0]
        got = model(latents, per_token, prompt).sample
        assert torch.equal(got, expected)

        uniform = model(latents, torch.full((2, 8), 700.0), prompt).sample
        scalar = model(latents, torch.full((2,), 700.0), prompt).sample
        torch.testing.assert_close(uniform, scalar, rtol=1e-5, atol=1e-5)

        out = model(latents, per_token, prompt, text_ids=torch.randint(0, 20, (2, 3)),
                    text_timestep=torch.tensor([0.0, 500.0]))
        assert out.sample.shape == latents.shape and out.text_logits.shape == (2, 3, 20)
        with pytest.raises(ValueError, match=r"\(2,\) \(one per sample\) or \(2, 8\)"):
            model(latents, torch.zeros(2, 7), prompt)


# ------------------------------------------------------------------------------------------------ univigu params


def test_params_reports_both_layouts(converted, capsys):
    from univigu.cli import main
    from univigu.models.parameter_report import parameter_report

    layout, wan, out = converted
    # full size, from the built-in backbone configs
    assert main(["params", "--backbone", layout, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected_base = {"wan2.1-t2v-14b": 14_288_491_584, "wan2.2-ti2v-5b": 4_999_787_712}[layout]
    assert report["base"] == expected_base and report["total"] == report["base"] + report["text_experts"]

    # the tiny folder's Wan config, as UniViGU builds it: base = the Wan transformer's own parameter count
    assert main(["params", "--config", str(wan / "transformer" / "config.json"), "--json",
                 "--vocab-size", str(len(build_tokenizer()))]) == 0
    report = json.loads(capsys.readouterr().out)
    with torch.device("meta"):
        wan_params = sum(p.numel() for p in WanTransformer3DModel(**LAYOUTS[layout]["transformer"]).parameters())
    assert report["base"] == wan_params
    assert report == parameter_report(UniViGUTransformer3DModel.from_pretrained(out / "transformer"))
    # and the converted folder's own config reports the same
    assert main(["params", "--config", str(out / "transformer" / "config.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == report


# ------------------------------------------------------------------------------------------------ Wan2.2-A14B


@pytest.fixture(scope="module")
def a14b_folder(tmp_path_factory):
    """A tiny Wan2.2-A14B-layout folder: transformer (high noise) + transformer_2 (low noise), boundary_ratio 0.875."""
    path = tmp_path_factory.mktemp("a14b") / "wan"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        transformer_2 = WanTransformer3DModel(**LAYOUTS["wan2.1-t2v-14b"]["transformer"]).eval()
    save_wan_folder(path, "wan2.1-t2v-14b", transformer_2=transformer_2, boundary_ratio=0.875)
    index = json.loads((path / "model_index.json").read_text())
    assert index["boundary_ratio"] == 0.875 and index["transformer_2"] == ["diffusers", "WanTransformer3DModel"]
    return path


def test_convert_refuses_a14b_before_writing(a14b_folder, tmp_path, capsys):
    from univigu.cli import main

    out = tmp_path / "out"
    assert main(["convert", "wan", "--wan", str(a14b_folder), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Wan2.2-A14B" in err and "transformer_2" in err and "boundary_ratio=0.875" in err
    assert "Wan2.2-TI2V-5B" in err and "Nothing was written" in err
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())

    # boundary_ratio alone (a folder whose transformer_2 entry was dropped) is refused too
    index = json.loads((a14b_folder / "model_index.json").read_text())
    index["transformer_2"] = [None, None]
    only_ratio = tmp_path / "only_ratio"
    only_ratio.mkdir()
    (only_ratio / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="Wan2.2-A14B"):
        convert_wan(only_ratio, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_a14b_hub_id_is_refused_from_its_model_index_alone(a14b_folder, tmp_path, monkeypatch):
    """A Hub id is checked on its model_index.json before the (57 GB) transformers are fetched."""
    import huggingface_hub

    from univigu.conversion.common import resolve_wan_path

    head = tmp_path / "head"
    head.mkdir()
    (head / "model_index.json").write_bytes((a14b_folder / "model_index.json").read_bytes())
    asked = []

    def fake_snapshot_download(repo_id, allow_patterns=None, **kwargs):
        asked.append(allow_patterns)
        return str(head)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    with pytest.raises(ValueError, match="Wan2.2-A14B"):
        resolve_wan_path("Wan-AI/Wan2.2-T2V-A14B-Diffusers")
    assert asked == [["model_index.json"]]


def test_training_refuses_a14b(a14b_folder):
    from univigu.training.components import load_components

    with pytest.raises(ValueError, match="Wan2.2-A14B"):
        load_components(str(a14b_folder))


def test_training_starts_from_both_layouts(converted):
    """Training from the Wan folder (or the converted one) keeps the pipeline's `expand_timesteps` for inference."""
    from univigu.training.components import build_pipeline, load_components

    layout, wan, out = converted
    for path in (wan, out):
        components = load_components(str(path))
        assert components.expand_timesteps is LAYOUTS[layout]["expand_timesteps"]
        assert components.transformer.config.in_channels == LAYOUTS[layout]["transformer"]["in_channels"]
        assert build_pipeline(components).config.expand_timesteps is LAYOUTS[layout]["expand_timesteps"]
