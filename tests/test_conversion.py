"""Conversion: the reference checkpoint and Wan2.1 folders -> UniViGU (univigu.conversion)."""

import pickle
from pathlib import Path

import pytest
import torch

from univigu.conversion.reference import (
    ReferenceConversionError,
    convert_reference_state_dict,
    infer_text_vocab,
    load_reference_checkpoint,
)
from univigu.models import UniViGUTransformer3DModel

from reference_layout import reference_layout_shapes


# ---------------------------------------------------------------------------------------------------- helpers


def reference_layout_state(fsdp_blocks=(0,), seed=0, **kwargs):
    """A random reference-layout state dict; keys of `fsdp_blocks` carry the FSDP infix as in real checkpoints."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in reference_layout_shapes(**kwargs).items():
        if any(key.startswith(f"blocks.{i}.") for i in fsdp_blocks):
            key = "_fsdp_wrapped_module." + key
        state[key] = torch.randn(shape, generator=g)
    return state


SMALL_CONFIG = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
    text_dim=20, freq_dim=16, ffn_dim=32, num_layers=2, cross_attn_norm=True, vocab_size=30,
)


# ---------------------------------------------------------------------------------------------------- state dict


def test_layout_builder_matches_the_real_reference_fixture(reference_fixture_dir):
    """Our reference-layout builder is right: at the fixture's config it gives the fixture's keys and shapes."""
    state = load_reference_checkpoint(reference_fixture_dir / "reference_tiny.pth")
    io = torch.load(reference_fixture_dir / "reference_io.pt", weights_only=True)
    c = io["config"]
    expected = reference_layout_shapes(
        dim=c["num_attention_heads"] * c["attention_head_dim"], head_dim=c["attention_head_dim"],
        num_layers=c["num_layers"], ffn_dim=c["ffn_dim"], text_dim=c["text_dim"], freq_dim=c["freq_dim"],
        in_channels=c["in_channels"], patch=tuple(c["patch_size"]), vocab=io["vocab"],
    )
    found = {k.replace("_fsdp_wrapped_module.", ""): tuple(v.shape) for k, v in state.items()}
    assert found == expected
    assert any(k.startswith("_fsdp_wrapped_module.") for k in state)


def test_fixture_parity(reference_fixture_dir):
    """The converted fixture checkpoint computes what the reference computed (fp32, criterion 1e-4)."""
    state = load_reference_checkpoint(reference_fixture_dir / "reference_tiny.pth")
    io = torch.load(reference_fixture_dir / "reference_io.pt", weights_only=True)
    config = dict(io["config"], vocab_size=io["vocab"])
    model = UniViGUTransformer3DModel(**config).eval()
    model.load_state_dict(convert_reference_state_dict(state, config), strict=True)
    with torch.no_grad():
        out = model(
            hidden_states=io["x_v"], timestep=io["time_v"], encoder_hidden_states=io["cond"], text_ids=io["x_t"],
            text_timestep=io["time_t"], text_attention_mask=io["mask"],
        )
    video_err = (out.sample - io["out_v"]).abs().max() / io["out_v"].abs().max()
    mask = io["mask"]
    text_err = (out.text_logits[mask] - io["out_t"][mask]).abs().max() / io["out_t"][mask].abs().max()
    assert video_err < 1e-4, video_err
    assert text_err < 1e-4, text_err


def test_reference_layout_maps_completely_and_one_to_one():
    state = reference_layout_state(fsdp_blocks=(0, 1))
    converted = convert_reference_state_dict(state, SMALL_CONFIG)
    assert "rotary_emb_text.inv_freq" not in converted
    assert len(converted) == len(state) - 1
    assert not any("_fsdp_wrapped_module" in k for k in converted)
    # tensors are passed through, not copied
    assert converted["blocks.0.ffn_t.net.2.weight"] is state["_fsdp_wrapped_module.blocks.0.ffn_t.net.2.weight"]
    with torch.device("meta"):
        model = UniViGUTransformer3DModel(**SMALL_CONFIG)
    assert set(converted) == set(model.state_dict())
    model.load_state_dict(converted, strict=True, assign=True)
    # without a config, the structure is inferred from the shapes
    assert set(convert_reference_state_dict(state)) == set(converted)


def test_inv_freq_is_optional_and_compile_prefix_stripped():
    state = reference_layout_state(fsdp_blocks=())
    del state["rotary_emb_text.inv_freq"]
    state = {("_orig_mod." + k if k.startswith("blocks.1.") else k): v for k, v in state.items()}
    converted = convert_reference_state_dict(state, SMALL_CONFIG)
    assert "blocks.1.attn1.to_q.weight" in converted


def test_extra_and_missing_keys_raise_with_their_names():
    state = reference_layout_state()
    state["blocks.0.ffn_v.net.0.proj.weight"] = torch.zeros(3)
    state["extra_head.weight"] = torch.zeros(3)
    del state["_fsdp_wrapped_module.blocks.0.attn2.to_k.bias"]
    del state["text_head.norm_final.weight"]
    with pytest.raises(ReferenceConversionError) as info:
        convert_reference_state_dict(state, SMALL_CONFIG)
    message = str(info.value)
    for name in ("blocks.0.ffn_v.net.0.proj.weight", "extra_head.weight", "blocks.0.attn2.to_k.bias",
                 "text_head.norm_final.weight"):
        assert name in message
    assert "unexpected" in message and "missing" in message


def test_missing_last_block_and_shape_mismatch_are_reported_against_the_config():
    state = reference_layout_state(num_layers=1)
    with pytest.raises(ReferenceConversionError, match=r"blocks\.1\.attn1\.to_q\.weight"):
        convert_reference_state_dict(state, SMALL_CONFIG)
    state = reference_layout_state(ffn_dim=40)
    with pytest.raises(ReferenceConversionError, match=r"shape mismatch.*ffn\.net\.0\.proj\.weight.*\(40, 24\)"):
        convert_reference_state_dict(state, SMALL_CONFIG)


def test_keys_colliding_after_renaming_raise():
    state = reference_layout_state(fsdp_blocks=(0,))
    state["blocks.0.attn1.to_q.weight"] = state["_fsdp_wrapped_module.blocks.0.attn1.to_q.weight"].clone()
    with pytest.raises(ReferenceConversionError, match="same UniViGU key"):
        convert_reference_state_dict(state, SMALL_CONFIG)


def test_infer_text_vocab():
    assert infer_text_vocab(30, [30]) == (30, False)
    assert infer_text_vocab(31, [30]) == (30, True)
    # len(tokenizer) and tokenizer.vocab_size may differ; either may be the reference's V
    assert infer_text_vocab(256384, [256300, 256384]) == (256384, False)
    assert infer_text_vocab(31, [30], text_mask_token=False) == (31, False)
    with pytest.raises(ValueError, match="--text-mask-token"):
        infer_text_vocab(40, [30])
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        infer_text_vocab(30, [30], text_mask_token=True)


# ---------------------------------------------------------------------------------------------------- loading


def test_load_pth_with_model_key_and_bare_state_dict(tmp_path):
    state = reference_layout_state()
    torch.save({"model": state, "step": 3, "optimizer": {"lr": 1e-4}}, tmp_path / "ckpt.pth")
    loaded = load_reference_checkpoint(tmp_path / "ckpt.pth")
    assert set(loaded) == set(state)
    assert torch.equal(loaded["vocab_embed.weight"], state["vocab_embed.weight"])
    torch.save(state, tmp_path / "bare.pt")
    assert set(load_reference_checkpoint(tmp_path / "bare.pt")) == set(state)
    # legacy (non-zip) torch.save format: no mmap, still weights_only
    torch.save({"model": state}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert set(load_reference_checkpoint(tmp_path / "legacy.pth")) == set(state)


def test_load_safetensors(tmp_path):
    from safetensors.torch import save_file

    state = reference_layout_state()
    state["vocab_embed.weight"] = state["vocab_embed.weight"].to(torch.bfloat16)
    save_file(state, tmp_path / "ckpt.safetensors")
    loaded = load_reference_checkpoint(tmp_path / "ckpt.safetensors")
    assert set(loaded) == set(state)
    for k in state:
        assert loaded[k].dtype == state[k].dtype and torch.equal(loaded[k], state[k])


@pytest.mark.parametrize(
    "content, expected",
    [
        ([1, 2, 3], "a list of 3 items"),
        (torch.randn(4, 5), r"a single tensor of shape \(4, 5\)"),
        ({"state_dict": {"w": torch.zeros(1)}, "epoch": 1}, r"top-level keys \['state_dict', 'epoch'\]"),
        ({"model": [torch.zeros(1)]}, "'model' entry, but it is a list"),
    ],
)
def test_non_checkpoint_files_get_a_clear_error(tmp_path, content, expected):
    path = tmp_path / "not_a_checkpoint.pth"
    torch.save(content, path)
    with pytest.raises(ValueError, match=expected):
        load_reference_checkpoint(path)


class _Payload:
    """Unpickling this runs code (it would create the marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("zip_format", [True, False])
def test_pickle_code_never_runs(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    if zip_format:
        torch.save({"model": {"w": torch.zeros(1)}, "hook": _Payload(marker)}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"model": _Payload(marker)}, f)
    with pytest.raises(ValueError, match="weights_only"):
        load_reference_checkpoint(path)
    assert not marker.exists()


def test_other_files_get_a_clear_error(tmp_path):
    (tmp_path / "notes.pth").write_text("hello, not a checkpoint")
    with pytest.raises(ValueError, match="could not be read as a PyTorch checkpoint.*starts with b'hello"):
        load_reference_checkpoint(tmp_path / "notes.pth")
    (tmp_path / "bad.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_reference_checkpoint(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError):
        load_reference_checkpoint(tmp_path / "missing.pth")


# ---------------------------------------------------------------------------------------------------- folders


def _word_tokenizer(num_tokens):
    """A word-level tokenizer with exactly `num_tokens` ids (<pad> 0, </s> 1, <unk> 2, then w0, w1, ...), like
    umT5's in what matters here: </s> appended, pad id 0."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for i in range(num_tokens - 3):
        vocab[f"w{i}"] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=64
    )


def _save_wan_folder(path, transformer_config, vocab_size, seed=0, scheduler=None):
    """A tiny Wan2.1 T2V diffusers folder (WanPipeline.save_pretrained) with the given transformer config."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    from univigu.toyworld.components import build_tiny_text_encoder, build_tiny_vae

    torch.manual_seed(seed)
    config = {k: v for k, v in transformer_config.items() if k not in ("vocab_size", "text_mask_token")}
    pipe = WanPipeline(
        tokenizer=_word_tokenizer(vocab_size),
        text_encoder=build_tiny_text_encoder(vocab_size=vocab_size, d_model=config["text_dim"], seed=seed),
        vae=build_tiny_vae(seed=seed),
        transformer=WanTransformer3DModel(**config).eval(),
        scheduler=scheduler or FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    pipe.save_pretrained(path)
    return Path(path)


def _realign(pipe):
    """Give the transformer's weights fresh (aligned) storage. Weights read from a safetensors file sit at arbitrary
    offsets, and CPU BLAS kernels may round differently for unaligned operands (a few ulp): comparing two pipelines
    bit for bit needs both in the same memory layout."""
    for param in pipe.transformer.parameters():
        param.data = param.data.clone()
    return pipe


@pytest.fixture(scope="module")
def fixture_wan_folder(tmp_path_factory):
    """The Wan folder the reference fixture 'was built on': its config, a 40-token tokenizer, a tiny VAE."""
    io = torch.load(REFERENCE_FIXTURE / "reference_io.pt", weights_only=True)
    return _save_wan_folder(tmp_path_factory.mktemp("wan_fixture"), io["config"], vocab_size=io["vocab"])


REFERENCE_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "reference-tiny"


@pytest.fixture(scope="module")
def converted_fixture(fixture_wan_folder, tmp_path_factory):
    from univigu.conversion.reference import convert_reference_checkpoint

    out = tmp_path_factory.mktemp("converted") / "pipe"
    convert_reference_checkpoint(REFERENCE_FIXTURE / "reference_tiny.pth", fixture_wan_folder, out)
    return out


def test_converted_reference_folder_records_the_reference_conventions(converted_fixture):
    import json

    from safetensors import safe_open

    index = json.loads((converted_fixture / "model_index.json").read_text())
    assert index["_class_name"] == "UniViGUPipeline"
    assert index["latent_normalization"] == "raw"
    video = json.loads((converted_fixture / "scheduler" / "scheduler_config.json").read_text())
    assert video["_class_name"] == "FlowMatchEulerDiscreteScheduler" and video["shift"] == 3.0
    assert not video["use_dynamic_shifting"]
    text = json.loads((converted_fixture / "text_scheduler" / "scheduler_config.json").read_text())
    assert (text["_class_name"], text["source"], text["kappa_exponent"], text["vocab_size"]) == (
        "DiscreteFlowScheduler", "uniform", 1.0, 40
    )
    config = json.loads((converted_fixture / "transformer" / "config.json").read_text())
    assert (config["vocab_size"], config["text_mask_token"], config["num_layers"]) == (40, False, 3)
    info = json.loads((converted_fixture / "univigu_conversion.json").read_text())
    assert info["source"] == "reference" and info["step"] == 10
    assert info["sampling_defaults"]["num_inference_steps"] == 50
    # safetensors only, everywhere
    files = [p for p in converted_fixture.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert {p.parent.name for p in weights} == {"transformer", "text_encoder", "vae"}
    with safe_open(converted_fixture / "transformer" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert "rotary_emb_text.inv_freq" not in f.keys()
        assert not any("_fsdp" in k for k in f.keys())


def test_converted_reference_folder_matches_the_reference_and_runs_all_tasks(converted_fixture):
    import numpy as np

    from univigu.pipelines import UniViGUPipeline

    pipe = UniViGUPipeline.from_pretrained(converted_fixture)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.latent_normalization == "raw"

    # 1. Parity of the loaded transformer with the reference's own outputs
    io = torch.load(REFERENCE_FIXTURE / "reference_io.pt", weights_only=True)
    with torch.no_grad():
        out = pipe.transformer(
            hidden_states=io["x_v"], timestep=io["time_v"], encoder_hidden_states=io["cond"], text_ids=io["x_t"],
            text_timestep=io["time_t"], text_attention_mask=io["mask"],
        )
    mask = io["mask"]
    assert (out.sample - io["out_v"]).abs().max() / io["out_v"].abs().max() < 1e-4
    assert (out.text_logits[mask] - io["out_t"][mask]).abs().max() / io["out_t"][mask].abs().max() < 1e-4

    # 2. The three tasks, tiny, on CPU
    size = dict(height=32, width=32, num_frames=5)
    g = torch.Generator().manual_seed(0)
    t2v = pipe(prompt="w1 w2 w3", num_inference_steps=2, guidance_scale=2.0, generator=g, output_type="np", **size)
    assert t2v.frames.shape == (1, 5, 32, 32, 3) and np.isfinite(t2v.frames).all() and t2v.text is None
    video = np.random.default_rng(0).random((5, 32, 32, 3)).astype(np.float32)
    v2t = pipe(video=video, num_inference_steps=3, max_text_length=8, generator=g)
    assert v2t.frames is None and isinstance(v2t.text[0], str) and v2t.text_ids.shape == (1, 8)
    t2vt = pipe(prompt="w4 w5", task="t2vt", num_inference_steps=2, max_text_length=6, generator=g, **size)
    assert t2vt.frames.shape == (1, 5, 32, 32, 3) and isinstance(t2vt.text[0], str)
    assert int(t2vt.text_ids.max()) < 40


def test_convert_reference_infers_a_mask_token_and_checks_against_the_wan_config(tmp_path):
    from univigu.conversion.reference import convert_reference_checkpoint

    config = dict(SMALL_CONFIG)
    wan = _save_wan_folder(tmp_path / "wan", config, vocab_size=30)
    state = reference_layout_state(mask_token=True)  # 31 rows = 30 + [MASK]
    torch.save({"model": state, "step": 1}, tmp_path / "ckpt.pth")
    out = convert_reference_checkpoint(tmp_path / "ckpt.pth", wan, tmp_path / "out")
    from univigu.pipelines import UniViGUPipeline

    pipe = UniViGUPipeline.from_pretrained(out)
    assert pipe.transformer.config.vocab_size == 30 and pipe.transformer.config.text_mask_token
    assert pipe.text_scheduler.config.source == "mask" and pipe.text_scheduler.mask_token_id == 30
    for key, value in state.items():
        ours = key.replace("_fsdp_wrapped_module.", "")
        if ours != "rotary_emb_text.inv_freq":
            assert torch.equal(pipe.transformer.state_dict()[ours], value), key

    # the override wins over the inference: 31 rows as a uniform-source vocabulary of 31
    out2 = convert_reference_checkpoint(tmp_path / "ckpt.pth", wan, tmp_path / "out2", text_mask_token=False)
    assert UniViGUPipeline.from_pretrained(out2).transformer.config.vocab_size == 31

    # tied tensors (one storage under two keys) are written as two tensors
    tied = reference_layout_state()
    tied["blocks.1.ffn_t.net.2.weight"] = tied["blocks.1.ffn.net.2.weight"]
    torch.save({"model": tied}, tmp_path / "tied.pth")
    out3 = convert_reference_checkpoint(tmp_path / "tied.pth", wan, tmp_path / "tied")
    loaded = UniViGUPipeline.from_pretrained(out3).transformer
    assert torch.equal(loaded.blocks[1].ffn_t.net[2].weight, tied["blocks.1.ffn.net.2.weight"])

    # the output folder is not silently overwritten
    with pytest.raises(FileExistsError):
        convert_reference_checkpoint(tmp_path / "ckpt.pth", wan, tmp_path / "out")

    # a checkpoint whose shapes disagree with the Wan folder's config: every mismatch is listed
    bad = reference_layout_state(ffn_dim=40, text_dim=24)
    with pytest.raises(ValueError) as info:
        convert_reference_checkpoint(bad, wan, tmp_path / "out3")
    assert "ffn.net.0.proj.weight" in str(info.value) and "cond_text_embedder.linear_1.weight" in str(info.value)
    # text tables that disagree
    bad = reference_layout_state()
    bad["text_head.linear.weight"] = torch.zeros(29, 24)
    with pytest.raises(ValueError, match="30 rows but text_head.linear.weight has 29"):
        convert_reference_checkpoint(bad, wan, tmp_path / "out4")


def test_convert_wan_video_equals_wan_pipeline(tmp_path):
    from diffusers import WanPipeline

    from univigu.conversion.wan import convert_wan
    from univigu.pipelines import UniViGUPipeline
    from univigu.toyworld.components import build_tiny_components

    # sharded weights (as the larger Wan2.1 checkpoints are) are read through their index
    WanPipeline(**build_tiny_components(seed=0)).save_pretrained(tmp_path / "wan", max_shard_size="40KB")
    assert (tmp_path / "wan" / "transformer" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    out = convert_wan(tmp_path / "wan", tmp_path / "univigu", seed=0)

    wan = _realign(WanPipeline.from_pretrained(tmp_path / "wan"))
    pipe = _realign(UniViGUPipeline.from_pretrained(out))
    for p in (wan, pipe):
        p.set_progress_bar_config(disable=True)
    assert pipe.config.latent_normalization == "diffusers"
    assert pipe.transformer.config.vocab_size == len(wan.tokenizer)
    assert type(pipe.scheduler) is type(wan.scheduler)
    # the streamed conversion writes exactly what from_wan builds
    from univigu.models import UniViGUTransformer3DModel

    reference = UniViGUTransformer3DModel.from_wan(wan.transformer, vocab_size=len(wan.tokenizer), seed=0)
    ours = pipe.transformer.state_dict()
    assert ours.keys() == reference.state_dict().keys()
    assert all(torch.equal(v, ours[k]) and v.dtype == ours[k].dtype for k, v in reference.state_dict().items())
    # every Wan weight is in the UniViGU transformer, the text experts start as copies of the video ones
    wan_state = wan.transformer.state_dict()
    assert torch.equal(ours["blocks.1.ffn_t.net.2.weight"], wan_state["blocks.1.ffn.net.2.weight"])
    assert torch.equal(ours["cond_text_embedder.linear_1.weight"], wan_state["condition_embedder.text_embedder.linear_1.weight"])
    assert not ours["text_head.linear.weight"].any()

    kwargs = dict(prompt="a red circle moves left", height=32, width=32, num_frames=5, num_inference_steps=3,
                  guidance_scale=4.0, output_type="pt")
    expected = wan(generator=torch.Generator().manual_seed(7), **kwargs).frames
    got = pipe(generator=torch.Generator().manual_seed(7), text_stream=False, **kwargs).frames
    assert torch.equal(got, expected)


def test_bf16_from_pretrained_keeps_the_prior(tmp_path):
    """`from_pretrained(dtype=torch.bfloat16)` keeps a model's `_keep_in_fp32_modules` in float32. Wan keeps its
    output modulation table there; UniViGU's is `scale_shift_table_v`, so it must be kept too, or bf16 t2v drifts
    from WanPipeline's (0.07 max on the latents of a tiny model, found on the way to the GPU memory table)."""
    from diffusers import WanPipeline

    from univigu.conversion.wan import convert_wan
    from univigu.pipelines import UniViGUPipeline
    from univigu.toyworld.components import build_tiny_components

    WanPipeline(**build_tiny_components(seed=0)).save_pretrained(tmp_path / "wan")
    out = convert_wan(tmp_path / "wan", tmp_path / "univigu", seed=0)
    wan = _realign(WanPipeline.from_pretrained(tmp_path / "wan", dtype=torch.bfloat16))
    pipe = _realign(UniViGUPipeline.from_pretrained(out, dtype=torch.bfloat16))
    fp32 = lambda model: {n for n, p in model.named_parameters() if p.dtype == torch.float32}  # noqa: E731
    assert "scale_shift_table" in fp32(wan.transformer)
    assert {"scale_shift_table_v", "scale_shift_table_t"} <= fp32(pipe.transformer)
    for p in (wan, pipe):
        p.set_progress_bar_config(disable=True)
    kwargs = dict(prompt="a red circle moves left", height=32, width=32, num_frames=5, num_inference_steps=3,
                  guidance_scale=4.0, output_type="latent")
    expected = wan(generator=torch.Generator().manual_seed(7), **kwargs).frames
    got = pipe(generator=torch.Generator().manual_seed(7), text_stream=False, **kwargs).frames
    assert torch.equal(got, expected), (got.float() - expected.float()).abs().max()
    assert pipe(generator=torch.Generator().manual_seed(7), task="t2vt", max_text_length=8, **kwargs).text


def test_cli_convert_in_process(tmp_path, converted_fixture, fixture_wan_folder, capsys):
    import json

    from univigu.cli import main

    assert main(["convert", "wan", "--wan", str(fixture_wan_folder), "--out", str(tmp_path / "a"), "--seed", "3"]) == 0
    assert (tmp_path / "a" / "model_index.json").is_file()
    assert main([
        "convert", "reference", "--checkpoint", str(REFERENCE_FIXTURE / "reference_tiny.pth"),
        "--wan", str(fixture_wan_folder), "--out", str(tmp_path / "b"), "--text-source", "uniform",
    ]) == 0
    assert "Wrote" in capsys.readouterr().out
    from safetensors.torch import load_file

    a = load_file(tmp_path / "b" / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(converted_fixture / "transformer" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "b" / "model_index.json").read_text())["latent_normalization"] == "raw"
    with pytest.raises(SystemExit):
        main(["convert", "reference", "--wan", str(fixture_wan_folder), "--out", str(tmp_path / "c")])
    # a file that is not a checkpoint: the message, exit status 1, no traceback
    torch.save([1, 2, 3], tmp_path / "list.pth")
    capsys.readouterr()
    code = main(["convert", "reference", "--checkpoint", str(tmp_path / "list.pth"), "--wan", str(fixture_wan_folder),
                 "--out", str(tmp_path / "d")])
    assert code == 1 and "found a list of 3 items" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
