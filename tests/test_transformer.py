import json
import os
import subprocess
import sys

import pytest
import torch
from diffusers import WanTransformer3DModel

from univigu import UniViGUTransformer3DModel
from univigu.models.parameter_report import WAN21_T2V_1_3B_CONFIG, build_on_meta, parameter_report

from reference_layout import reference_layout_shapes

TINY = dict(
    num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16, text_dim=32, freq_dim=16,
    ffn_dim=32, num_layers=2, rope_max_seq_len=32,
)
WAN_CONFIGS = [
    TINY,
    dict(num_attention_heads=3, attention_head_dim=16, in_channels=4, out_channels=4, text_dim=8, freq_dim=32,
         ffn_dim=20, num_layers=3, cross_attn_norm=False, rope_max_seq_len=16),
    dict(num_attention_heads=4, attention_head_dim=8, in_channels=8, out_channels=8, text_dim=16, freq_dim=8,
         ffn_dim=48, num_layers=1, patch_size=(1, 1, 1), eps=1e-5, rope_max_seq_len=64),
]


def tiny_model(vocab_size=50, seed=0, randomize_text_head=True, **overrides):
    torch.manual_seed(seed)
    model = UniViGUTransformer3DModel(**{**TINY, **overrides}, vocab_size=vocab_size).eval()
    if randomize_text_head:  # the zero-initialised head would make every text test trivially pass
        with torch.no_grad():
            model.text_head.linear.weight.normal_(std=0.5)
            model.text_head.linear.bias.normal_(std=0.5)
    return model


def tiny_inputs(batch=2, length=7, vocab_size=50, seed=0, channels=16):
    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(batch, channels, 3, 8, 8, generator=g),
        timestep=torch.tensor([10.0, 900.0])[:batch],
        encoder_hidden_states=torch.randn(batch, 5, 32, generator=g),
        text_ids=torch.randint(0, vocab_size, (batch, length), generator=g),
        text_timestep=torch.tensor([0.0, 500.0])[:batch],
    )


def relative_error(ours, ref):
    return ((ours - ref).abs().max() / ref.abs().max()).item()


# --------------------------------------------------------------------------- reference parity


def test_reference_fixture_parity(reference_fixture_dir):
    """The reference code's own forward outputs (fp32) at a tiny config, loaded by a pure key rename."""
    io = torch.load(reference_fixture_dir / "reference_io.pt", weights_only=True)
    checkpoint = torch.load(reference_fixture_dir / "reference_tiny.pth", weights_only=True)["model"]
    state = {k.replace("_fsdp_wrapped_module.", ""): v for k, v in checkpoint.items() if not k.endswith("inv_freq")}
    model = UniViGUTransformer3DModel(**dict(io["config"]), vocab_size=io["vocab"]).eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = model(io["x_v"], io["time_v"], io["cond"], io["x_t"], io["time_t"], io["mask"])
    mask = io["mask"]
    assert relative_error(out.sample, io["out_v"]) < 1e-4
    assert relative_error(out.text_logits[mask], io["out_t"][mask]) < 1e-4


# --------------------------------------------------------------------------- the Wan prior


@pytest.mark.parametrize("config", WAN_CONFIGS)
def test_from_wan_video_output_equals_wan_exactly(config):
    torch.manual_seed(0)
    wan = WanTransformer3DModel(**config).eval()
    model = UniViGUTransformer3DModel.from_wan(wan, vocab_size=30, seed=0).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, config["in_channels"], 3, 8, 8, generator=g)
    t = torch.tensor([3.0, 999.0])
    cond = torch.randn(2, 6, config["text_dim"], generator=g)
    with torch.no_grad():
        expected = wan(x, t, cond).sample
        got = model(hidden_states=x, timestep=t, encoder_hidden_states=cond)
    assert got.text_logits is None
    assert torch.equal(got.sample, expected)


def test_from_wan_copies_experts_and_owns_its_weights():
    torch.manual_seed(0)
    wan = WanTransformer3DModel(**TINY)
    model = UniViGUTransformer3DModel.from_wan(wan, vocab_size=30, text_mask_token=True, seed=0)
    assert model.config.vocab_size == 30 and model.num_text_embeddings == 31 and model.mask_token_id == 30
    block = model.blocks[0]
    assert torch.equal(block.ffn_t.net[0].proj.weight, block.ffn.net[0].proj.weight)
    assert torch.equal(model.scale_shift_table_t, model.scale_shift_table_v)
    assert torch.equal(model.scale_shift_table_v, wan.scale_shift_table)
    assert torch.equal(model.time_embedding_t.time_proj.weight, wan.condition_embedder.time_proj.weight)
    assert torch.count_nonzero(model.text_head.linear.weight) == 0
    assert torch.count_nonzero(model.text_head.linear.bias) == 0
    # Copies, not shared storage: training a text expert never moves the video expert or Wan's weights.
    with torch.no_grad():
        block.ffn_t.net[0].proj.weight.add_(1.0)
        model.patch_embedding.weight.add_(1.0)
    assert not torch.equal(block.ffn_t.net[0].proj.weight, block.ffn.net[0].proj.weight)
    assert not torch.equal(model.patch_embedding.weight, wan.patch_embedding.weight)


def test_from_wan_rejects_image_conditioned_wan():
    wan = WanTransformer3DModel(**TINY, image_dim=8, added_kv_proj_dim=24)
    with pytest.raises(ValueError, match="text-to-video"):
        UniViGUTransformer3DModel.from_wan(wan, vocab_size=30)


# --------------------------------------------------------------------------- streams and masks


def test_padding_changes_nothing_else():
    model = tiny_model()
    inputs = tiny_inputs()
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[0, 4:] = False
    mask[1, 6:] = False
    other = dict(inputs, text_ids=inputs["text_ids"].clone())
    other["text_ids"][0, 4:] = (other["text_ids"][0, 4:] + 7) % 50
    other["text_ids"][1, 6:] = (other["text_ids"][1, 6:] + 3) % 50
    with torch.no_grad():
        a = model(**inputs, text_attention_mask=mask)
        b = model(**other, text_attention_mask=mask)
        # Padding is equivalent to not having the padded tokens at all (same positions, same keys).
        short = model(**dict(inputs, text_ids=inputs["text_ids"][:1, :4], hidden_states=inputs["hidden_states"][:1],
                             timestep=inputs["timestep"][:1], encoder_hidden_states=inputs["encoder_hidden_states"][:1],
                             text_timestep=inputs["text_timestep"][:1]))
    assert torch.allclose(a.sample, b.sample, atol=1e-6, rtol=0)
    assert torch.allclose(a.text_logits[mask], b.text_logits[mask], atol=1e-6, rtol=0)
    assert torch.allclose(a.text_logits[0, :4], short.text_logits[0], atol=1e-5, rtol=0)
    assert torch.allclose(a.sample[:1], short.sample, atol=1e-5, rtol=0)
    # ... while real tokens do matter.
    changed = dict(inputs, text_ids=inputs["text_ids"].clone())
    changed["text_ids"][0, 0] = (changed["text_ids"][0, 0] + 1) % 50
    with torch.no_grad():
        c = model(**changed, text_attention_mask=mask)
    assert not torch.allclose(a.sample[0], c.sample[0], atol=1e-6)


def test_streams_are_optional_and_timesteps_are_per_stream():
    model = tiny_model()
    inputs = tiny_inputs()
    with torch.no_grad():
        text_only = model(text_ids=inputs["text_ids"], text_timestep=inputs["text_timestep"])
        video_only = model(**{k: inputs[k] for k in ("hidden_states", "timestep", "encoder_hidden_states")})
        both = model(**inputs)
        later_text = model(**dict(inputs, text_timestep=torch.tensor([700.0, 100.0])))
    assert text_only.sample is None and text_only.text_logits.shape == (2, 7, 50)
    assert video_only.text_logits is None and video_only.sample.shape == (2, 16, 3, 8, 8)
    assert both.sample.shape == (2, 16, 3, 8, 8) and both.text_logits.shape == (2, 7, 50)
    assert not torch.allclose(both.sample, later_text.sample)  # text timestep reaches the video via attention
    sample, logits = model(**inputs, return_dict=False)
    assert torch.equal(sample, both.sample) and torch.equal(logits, both.text_logits)


def test_null_condition_is_the_same_for_one_or_512_zero_rows():
    model = tiny_model()
    inputs = tiny_inputs()
    del inputs["encoder_hidden_states"]
    with torch.no_grad():
        implicit = model(**inputs)
        explicit = model(**inputs, encoder_hidden_states=torch.zeros(2, 512, 32))
    assert torch.allclose(implicit.sample, explicit.sample, atol=1e-5)
    assert torch.allclose(implicit.text_logits, explicit.text_logits, atol=1e-5)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(hidden_states=torch.randn(2, 4, 3, 8, 8)), "in_channels=16"),
        (dict(hidden_states=torch.randn(2, 16, 3, 7, 8)), "not divisible by the patch size"),
        (dict(hidden_states=torch.randn(2, 16, 3, 8, 9)), "Latent width"),
        (dict(text_ids=torch.full((2, 7), 50)), r"\[0, 50\)"),
        (dict(text_ids=torch.full((2, 7), -1)), "tokenize with the tokenizer"),
        (dict(timestep=torch.tensor([1.0, 2.0, 3.0])), "one per sample"),
        (dict(text_timestep=torch.tensor([1.0])), r"must have shape \(2,\)"),
        (dict(text_timestep=None), "text_timestep"),
        (dict(timestep=None), "`timestep`"),
        (dict(hidden_states=None, text_ids=None), "Both streams are absent"),
        (dict(text_ids=torch.zeros(3, 7, dtype=torch.long), text_timestep=torch.zeros(3)), "batch size 3"),
    ],
)
def test_bad_input_raises_clear_errors(change, message):
    model = tiny_model()
    with pytest.raises(ValueError, match=message):
        model(**{**tiny_inputs(), **change})


# --------------------------------------------------------------------------- persistence


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = tiny_model(text_mask_token=True)
    model.save_pretrained(tmp_path)
    files = sorted(os.listdir(tmp_path))
    assert "diffusion_pytorch_model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    assert "transformer_univigu.py" in files
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {"AutoModel": "transformer_univigu.UniViGUTransformer3DModel"}
    loaded = UniViGUTransformer3DModel.from_pretrained(tmp_path).eval()
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    inputs = tiny_inputs()
    with torch.no_grad():
        assert torch.equal(model(**inputs).text_logits, loaded(**inputs).text_logits)


_AUTOMODEL_SCRIPT = r"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "univigu" or name.startswith("univigu."):
            raise ImportError("univigu is hidden in this process")
sys.meta_path.insert(0, Block())
import torch
from diffusers import AutoModel
folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
assert type(model).__name__ == "UniViGUTransformer3DModel", type(model)
assert not type(model).__module__.startswith("univigu"), type(model).__module__
inputs = torch.load(folder + "/inputs.pt", weights_only=True)
with torch.no_grad():
    out = model(**inputs)
torch.save({"sample": out.sample, "text_logits": out.text_logits, "state": model.state_dict()},
           folder + "/outputs.pt")
"""


def bundled_model_and_inputs():
    from univigu.toyworld import DEFAULT_CHECKPOINT

    model = UniViGUTransformer3DModel.from_pretrained(DEFAULT_CHECKPOINT, subfolder="transformer").eval()
    inputs = tiny_inputs(vocab_size=model.config.vocab_size)
    generator = torch.Generator().manual_seed(1)
    inputs["encoder_hidden_states"] = torch.randn(2, 5, model.config.text_dim, generator=generator)
    return model, inputs


@pytest.mark.parametrize("which", ["tiny", "bundled"])
def test_automodel_loads_saved_folder_without_univigu(tmp_path, which):
    """Saving writes the module files from the package (the bundled checkpoint carries none), and the saved folder
    loads with `AutoModel` and `trust_remote_code=True` in a process where univigu cannot be imported."""
    import univigu.models.transformer_univigu as module

    model, inputs = (tiny_model(), tiny_inputs()) if which == "tiny" else bundled_model_and_inputs()
    model.save_pretrained(tmp_path)
    for name in ("transformer_univigu.py", "wan_weights.py", "step_cache.py", "video_kv_cache.py"):
        source = os.path.join(os.path.dirname(module.__file__), name)
        assert (tmp_path / name).read_bytes() == open(source, "rb").read(), name
    torch.save(inputs, tmp_path / "inputs.pt")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run([sys.executable, "-c", _AUTOMODEL_SCRIPT, str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = torch.load(tmp_path / "outputs.pt", weights_only=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(outputs["state"][name], tensor), name
    with torch.no_grad():
        expected = model(**inputs)
    # Same weights bit for bit; the outputs may differ in the last ulp because another process can pick other
    # CPU kernels (thread count, memory alignment of mmapped safetensors).
    for key in ("sample", "text_logits"):
        scale = max(1.0, getattr(expected, key).abs().max().item())
        assert torch.allclose(outputs[key], getattr(expected, key), atol=1e-6 * scale, rtol=1e-6), key


# --------------------------------------------------------------------------- training features


def test_gradient_checkpointing_gives_the_same_gradients():
    model = tiny_model().train()
    inputs = tiny_inputs()

    def grads():
        model.zero_grad()
        out = model(**inputs)
        (out.sample.square().mean() + out.text_logits.logsumexp(-1).mean()).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.enable_gradient_checkpointing()
    assert model.gradient_checkpointing
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys() and len(plain) > 20
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6, rtol=1e-5), name


def test_lora_adapter_on_attention_and_text_ffn():
    from peft import LoraConfig

    model = tiny_model()
    inputs = tiny_inputs()
    with torch.no_grad():
        before = model(**inputs)
    targets = ["to_q", "to_k", "to_v", "to_out.0", "ffn_t.net.0.proj", "ffn_t.net.2"]
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=targets, init_lora_weights=True))
    lora_params = {n for n, _ in model.named_parameters() if "lora_" in n}
    assert any(".ffn_t." in n for n in lora_params) and any(".attn1." in n for n in lora_params)
    assert not any(".ffn.net" in n for n in lora_params)  # the video FFN stays adapter-free
    with torch.no_grad():
        assert torch.allclose(model(**inputs).text_logits, before.text_logits, atol=1e-6)  # B starts at zero
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
        adapted = model(**inputs)
        half = model(**inputs, attention_kwargs={"scale": 0.5})
        model.disable_adapters()
        disabled = model(**inputs)
    assert not torch.allclose(adapted.text_logits, before.text_logits, atol=1e-4)
    assert not torch.allclose(half.text_logits, adapted.text_logits, atol=1e-4)
    assert torch.allclose(disabled.text_logits, before.text_logits, atol=1e-6)


def test_bf16_forward_tracks_fp32():
    model = tiny_model()
    inputs = tiny_inputs()
    with torch.no_grad():
        ref = model(**inputs)
        model_bf16 = model.to(torch.bfloat16)
        out = model_bf16(**dict(inputs, hidden_states=inputs["hidden_states"].bfloat16(),
                                encoder_hidden_states=inputs["encoder_hidden_states"].bfloat16()))
    assert out.sample.dtype == torch.bfloat16
    assert relative_error(out.sample.float(), ref.sample) < 5e-2
    assert relative_error(out.text_logits.float(), ref.text_logits) < 5e-2
    # fp32-kept modules stay fp32 when loading in bf16 through from_pretrained
    assert UniViGUTransformer3DModel._keep_in_fp32_modules


def test_text_expert_parameters_are_exactly_the_new_ones():
    model = tiny_model()
    names = {n for n, _ in model.text_expert_parameters()}
    wan_names = set(WanTransformer3DModel(**TINY).state_dict())
    from univigu.models import wan_state_dict_to_univigu

    mapped = wan_state_dict_to_univigu({n: torch.zeros(1) for n in wan_names})
    video_side = {n for n in mapped if not (".ffn_t." in n or n.endswith("_t") or n.startswith("time_embedding_t"))}
    assert names.isdisjoint(video_side)
    assert names | video_side == {n for n, _ in model.named_parameters()}


# --------------------------------------------------------------------------- full-size layout


def test_full_size_model_has_the_reference_key_layout():
    model = build_on_meta(WAN21_T2V_1_3B_CONFIG)
    ours = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    # Mapping: identical names; the reference additionally stores `rotary_emb_text.inv_freq` (recomputed here)
    # and may carry `_fsdp_wrapped_module.` infixes (stripped by univigu.conversion).
    expected = reference_layout_shapes(dim=1536, head_dim=128, num_layers=30, ffn_dim=8960, text_dim=4096,
                                       freq_dim=256, vocab=256384)
    del expected["rotary_emb_text.inv_freq"]
    assert ours == expected


def test_parameter_report_at_full_size():
    report = parameter_report(WAN21_T2V_1_3B_CONFIG)
    with torch.device("meta"):
        wan = WanTransformer3DModel(**{k: v for k, v in WAN21_T2V_1_3B_CONFIG.items()
                                       if k not in ("vocab_size", "text_mask_token")})
    assert report["base"] == sum(p.numel() for p in wan.parameters())
    assert report["ffn_t (text feed-forward experts)"] == 30 * (2 * 1536 * 8960 + 8960 + 1536)
    assert report["vocab_embed + text_head"] == 256384 * 1536 * 2 + 256384 + 1536
    assert report["total"] == report["base"] + report["text_experts"]
    assert 0.80e9 < report["ffn_t (text feed-forward experts)"] < 0.85e9  # DESIGN: ~0.83B
