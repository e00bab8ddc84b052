"""What the bad-input probe (benchmarks/probe_bad_inputs.py, issue #29) found mishandled, each now refused with a
clear error naming the argument, flag or file; user files are hashed before and after where a run could write."""

import math

import pytest
import torch

from test_pipeline_validation import SMALL, make_pipeline
from test_reliability_io import tree_hashes
from univigu import UniViGUPipeline
from univigu.training.arguments import parse_args


BASE = ["--pretrained_model_name_or_path", "base", "--train_data_dir", "data", "--num_frames", "9",
        "--height", "32", "--width", "32"]


@pytest.mark.parametrize("flag,value", [
    ("--num_frames", "-3"), ("--num_frames", "-7"), ("--height", "0"), ("--height", "-16"), ("--width", "0"),
    ("--learning_rate", "-1"), ("--learning_rate", "nan"), ("--train_batch_size", "0"), ("--max_train_steps", "0"),
    ("--max_train_steps", "-5"), ("--gradient_accumulation_steps", "0"), ("--checkpointing_steps", "-1"),
    ("--dataloader_num_workers", "-1"), ("--validation_steps", "-2"), ("--checkpoints_total_limit", "0"),
    ("--lr_warmup_steps", "-1"), ("--max_grad_norm", "nan"), ("--max_text_length", "0"), ("--max_text_length", "-3"),
])
def test_training_flags_out_of_range_are_refused_naming_the_flag(flag, value):
    argv = list(BASE)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    with pytest.raises(ValueError) as info:
        parse_args("recall", argv)
    assert flag in str(info.value) or (flag in ("--height", "--width") and "--height/--width" in str(info.value))


def test_training_zero_still_turns_checkpointing_validation_and_clipping_off():
    args = parse_args("recall", [*BASE, "--checkpointing_steps", "0", "--validation_steps", "0", "--max_grad_norm",
                                 "0", "--num_validation_videos", "0"])
    assert args.checkpointing_steps == 0 and args.validation_steps == 0 and args.max_grad_norm == 0


@pytest.mark.parametrize("device", ["gpu7", "cuda:x", "banana"])
def test_cli_device_that_torch_does_not_know_is_named(device):
    from univigu.pipelines.cli import check_device

    with pytest.raises(SystemExit) as info:
        check_device(device)
    assert "--device" in str(info.value.code) and device in str(info.value.code)
    assert check_device("cpu") == "cpu"


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)
    return make_pipeline()


@pytest.mark.parametrize("name,value", [("num_inference_steps", 10**9), ("num_videos_per_prompt", 10**9)])
def test_huge_counts_are_refused_before_any_work(pipe, name, value):
    with pytest.raises(ValueError, match=name):
        pipe("a red circle", **{**SMALL, name: value})


def test_from_pretrained_names_a_missing_folder_or_a_file(tmp_path):
    with pytest.raises(OSError, match="nope"):
        UniViGUPipeline.from_pretrained(tmp_path / "nope")
    with pytest.raises(OSError, match="nope"):
        UniViGUPipeline.from_pretrained(str(tmp_path / "a" / "nope"))
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(OSError, match="is a file"):
        UniViGUPipeline.from_pretrained(tmp_path / "model_index.json")
    with pytest.raises(OSError, match="empty"):
        UniViGUPipeline.from_pretrained("  ")


def test_a_truncated_text_encoder_is_named_at_load(pipe, tmp_path):
    folder = tmp_path / "pipe"
    pipe.save_pretrained(folder)
    weights = sorted((folder / "text_encoder").glob("*.safetensors"))[0]
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    before = tree_hashes(folder)
    with pytest.raises(OSError) as info:
        UniViGUPipeline.from_pretrained(folder)
    assert str(weights) in str(info.value) and "truncated" in str(info.value)
    assert tree_hashes(folder) == before


@pytest.fixture(scope="module")
def pipe_folder(pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe") / "pipe"
    pipe.save_pretrained(folder)
    return folder


def test_a_wan_folder_is_refused_with_the_conversion_command(tmp_path):
    from diffusers import WanPipeline

    from univigu.toyworld.components import build_tiny_components

    folder = tmp_path / "wan"
    WanPipeline(**build_tiny_components(0)).save_pretrained(folder)
    before = tree_hashes(folder)
    with pytest.raises(ValueError, match="univigu convert wan") as info:
        UniViGUPipeline.from_pretrained(folder)
    assert "WanPipeline" in str(info.value) and str(folder) in str(info.value)
    assert tree_hashes(folder) == before


@pytest.mark.parametrize("value", ["0", "-1"])
def test_evaluate_num_samples_below_one_is_named(pipe_folder, tmp_path, value):
    from univigu.cli import main

    with pytest.raises(ValueError, match="--num-samples"):
        main(["evaluate", "--model", str(pipe_folder), "--data-dir", str(tmp_path), "--num-samples", value])


def test_space_checks_a_zero_instead_of_taking_the_default(pipe, tmp_path):
    gr = pytest.importorskip("gradio")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spaces_demo"))
    import app

    demo = app.UniViGUDemo(pipe, output_dir=str(tmp_path), max_work=1e18)  # the tiny pipe has no call_defaults
    for call, match in [(lambda: demo.text_to_video("a red circle", steps=0), "steps"),
                        (lambda: demo.text_to_video("a red circle", frames=0), "frames"),
                        (lambda: demo.text_to_video("a red circle", steps=math.inf), "steps"),
                        (lambda: demo.video_to_text(None, steps=0), "steps"),
                        (lambda: demo.joint("a red circle", text_length=0), "text_length")]:
        with pytest.raises(gr.Error, match=match):
            call()
    assert not list(tmp_path.glob("*.mp4"))  # nothing was generated


@pytest.mark.parametrize("key", ["torch_dtype", "dtype"])
def test_a_dtype_that_is_not_a_torch_dtype_is_refused(pipe_folder, key):
    with pytest.raises(TypeError, match=key):
        UniViGUPipeline.from_pretrained(pipe_folder, **{key: "float33"})


@pytest.mark.parametrize("key,value", [("num_attention_heads", None), ("patch_size", [1, 2]), ("num_layers", True)])
def test_a_transformer_config_with_null_heads_or_a_short_patch_size_is_named(pipe_folder, tmp_path, key, value):
    import json
    import shutil

    folder = tmp_path / "pipe"
    shutil.copytree(pipe_folder, folder)
    config = folder / "transformer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), key: value}))
    before = tree_hashes(folder)
    with pytest.raises(ValueError, match=key):
        UniViGUPipeline.from_pretrained(folder)
    assert tree_hashes(folder) == before
