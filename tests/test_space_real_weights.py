"""The Space on real weights (issue #30, item 5): `spaces_demo/app.py` loads a converted Uni-ViGU folder named by
`UNIVIGU_MODEL` at that checkpoint's sizes, wraps its inference functions in `spaces.GPU` when the `spaces` package is
there (ZeroGPU), and converts the authors' release (`Fr0zencr4nE/Uni-ViGU`, a raw training checkpoint) on its first
start, reusing the converted folder on every later one. Offline: the reference-tiny fixture stands in for the
release, converted in the test, and a prepared Hub cache holds it and the Wan folder it was built on."""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch


gradio = pytest.importorskip("gradio", reason="the Space tests need gradio: pip install -e '.[dev]'")

from huggingface_hub import constants  # noqa: E402

from test_conversion import _save_wan_folder  # noqa: E402
from test_convert_from_hub import COMMIT, assert_same_weights, hub_cache  # noqa: E402


ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "spaces_demo"
FIXTURE = ROOT / "tests" / "fixtures" / "reference-tiny"
WAN_COMMIT = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#: what `UniViGUPipeline.__call__` uses for a checkpoint that stores no defaults: the reference's 81 x 480 x 832
REFERENCE_SIZES = {"Height": 480, "Width": 832, "Frames (4k+1)": 81}


def load_app(monkeypatch, spaces_module=None):
    """A fresh import of spaces_demo/app.py, with `spaces_module` as the `spaces` package (None: not installed)."""
    monkeypatch.setitem(sys.modules, "spaces", spaces_module)  # None in sys.modules makes `import spaces` fail
    spec = importlib.util.spec_from_file_location("space_app_real_weights", SPACE / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stub_spaces():
    """A stand-in for the `spaces` package: `spaces.GPU(duration=...)` records the functions it wraps and the calls."""
    stub = types.ModuleType("spaces")
    stub.decorated, stub.calls = [], []

    def GPU(task=None, *, duration=None, size=None):
        def decorate(fn):
            stub.decorated.append((fn, duration))

            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                stub.calls.append(fn.__name__)
                return fn(*args, **kwargs)

            return wrapper

        return decorate if task is None else decorate(task)

    stub.GPU = GPU
    return stub


def sliders(blocks) -> dict:
    return {c.label: c.value for c in blocks.blocks.values() if isinstance(c, gradio.Slider)}


def markdown(blocks) -> str:
    return " ".join(str(c.value) for c in blocks.blocks.values() if isinstance(c, gradio.Markdown))


def event(blocks, api_name):
    return next(f.fn for f in blocks.fns.values() if f.api_name == api_name)


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory):
    """The Wan folder the reference-tiny fixture was built on (its config, a 40-token tokenizer, a tiny VAE)."""
    io = torch.load(FIXTURE / "reference_io.pt", weights_only=True)
    return _save_wan_folder(tmp_path_factory.mktemp("wan"), io["config"], vocab_size=io["vocab"])


@pytest.fixture(scope="module")
def converted(wan_folder, tmp_path_factory):
    """The reference-tiny checkpoint converted as a user converts the release: `univigu convert reference`."""
    from univigu.cli import main

    out = tmp_path_factory.mktemp("converted") / "univigu-tiny"
    assert main(["convert", "reference", "--checkpoint", str(FIXTURE / "reference_tiny.pth"), "--wan", str(wan_folder),
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(autouse=True)
def no_space_settings(monkeypatch, tmp_path):
    for name in ("UNIVIGU_MODEL", "UNIVIGU_MAX_WORK", "UNIVIGU_CACHE", "UNIVIGU_WAN", "UNIVIGU_REFERENCE",
                 "UNIVIGU_REVISION", "UNIVIGU_FILENAME", "UNIVIGU_GPU_DURATION", "SPACE_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf_home"))  # never the user's cache


def test_a_converted_folder_from_the_environment_runs_at_its_own_sizes(monkeypatch, converted, tmp_path):
    """UNIVIGU_MODEL names a converted folder: it is loaded as is (no conversion), the sliders start at its sizes (the
    reference's 81 x 480 x 832, 50 steps), the work bound admits its default request, and a request runs."""
    import imageio.v3 as iio

    app = load_app(monkeypatch)
    assert app.spaces is None  # no `spaces` package: the functions run as they are
    monkeypatch.setenv("UNIVIGU_MODEL", str(converted))
    args = app.parse_args([])
    assert not app.is_reference_checkpoint(args.model, args.reference)
    assert app.prepare_model(args.model, args.reference, args.wan, args.cache_dir) == str(converted)
    blocks = app.create_demo(args)
    found = sliders(blocks)
    assert {k: found[k] for k in REFERENCE_SIZES} == REFERENCE_SIZES
    assert found["Steps"] == 50
    text = markdown(blocks)
    assert str(converted) in text and "832x480, 81 frames" in text and "ShapesWorld" not in text
    t2v = event(blocks, "t2v")
    assert t2v.__self__.max_work == 81 * 480 * 832 * (50 + app.VAE_STEP_EQUIVALENT)  # the default request fits
    path = t2v("A cat walks on the grass, realistic style.", 0, 2, 1.0, 32, 48, 5)
    assert iio.imread(path).shape == (5, 32, 48, 3)


def test_spaces_gpu_wraps_the_three_inference_functions(monkeypatch, converted):
    """With `spaces` importable (a ZeroGPU Space), text_to_video, video_to_text and joint are registered through
    `spaces.GPU(duration=--gpu-duration)`, and a request goes through the wrapper."""
    stub = stub_spaces()
    app = load_app(monkeypatch, stub)
    assert app.spaces is stub
    blocks = app.create_demo(app.parse_args(["--model", str(converted), "--gpu-duration", "77"]))
    assert sorted(fn.__name__ for fn, _ in stub.decorated) == ["joint", "text_to_video", "video_to_text"]
    assert {duration for _, duration in stub.decorated} == {77}
    wrapped = {name: event(blocks, name) for name in ("t2v", "v2t", "t2vt")}
    assert {name: fn.__wrapped__.__name__ for name, fn in wrapped.items()} == {
        "t2v": "text_to_video", "v2t": "video_to_text", "t2vt": "joint"}
    assert wrapped["t2v"]("a prompt", 0, 1, 1.0, 16, 16, 1).endswith(".mp4")
    assert stub.calls == ["text_to_video"]
    # the default duration, from the environment
    monkeypatch.setenv("UNIVIGU_GPU_DURATION", "45")
    assert app.parse_args([]).gpu_duration == 45 and app.GPU_DURATION == 180


def test_the_bundled_checkpoint_stays_the_default(monkeypatch):
    from univigu.toyworld import DEFAULT_CHECKPOINT

    app = load_app(monkeypatch)
    args = app.parse_args([])
    assert args.model is None and args.wan == app.WAN_REPO and args.max_work is None
    assert app.prepare_model(args.model) == DEFAULT_CHECKPOINT


def test_which_models_are_converted(monkeypatch, converted, tmp_path):
    app = load_app(monkeypatch)
    assert app.is_reference_checkpoint("Fr0zencr4nE/Uni-ViGU") and app.is_reference_checkpoint("fr0zencr4ne/uni-vigu")
    assert not app.is_reference_checkpoint("someone/univigu-1.3b-diffusers")  # a converted folder on the Hub
    assert app.is_reference_checkpoint("someone/univigu-mirror", reference=True)
    assert app.is_reference_checkpoint(str(FIXTURE / "reference_tiny.pth"))  # a checkpoint file
    assert app.is_reference_checkpoint(str(FIXTURE))  # a folder without model_index.json
    assert not app.is_reference_checkpoint(str(converted))
    # the cache: $HF_HOME/univigu/converted unless UNIVIGU_CACHE / --cache-dir says otherwise
    assert app.converted_folder("Fr0zencr4nE/Uni-ViGU") == tmp_path / "hf_home" / "univigu" / "converted" / \
        "Fr0zencr4nE--Uni-ViGU"
    assert app.converted_folder("Fr0zencr4nE/Uni-ViGU", tmp_path, "v1", "ckpt/a.pth").name == \
        "Fr0zencr4nE--Uni-ViGU--v1--ckpt_a.pth"
    monkeypatch.setenv("UNIVIGU_CACHE", str(tmp_path / "c"))
    assert app.parse_args([]).cache_dir == str(tmp_path / "c")
    # a local checkpoint is keyed by its path, size and time: a new checkpoint there is converted anew
    local = tmp_path / "ckpt.pth"
    shutil.copy(FIXTURE / "reference_tiny.pth", local)
    first = app.converted_folder(str(local), tmp_path)
    assert first.name.startswith("local--ckpt.pth--") and app.converted_folder(str(local), tmp_path) == first
    local.write_bytes(local.read_bytes() + b"\0")
    assert app.converted_folder(str(local), tmp_path) != first


@pytest.fixture
def offline_hub(tmp_path, monkeypatch, wan_folder):
    """HF_HUB_OFFLINE with a Hub cache that holds the authors' repo (the reference-tiny checkpoint under the release's
    file name) and Wan-AI/Wan2.1-T2V-1.3B-Diffusers (the tiny Wan folder it was built on)."""
    app_wan_repo = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    copy = lambda source: (lambda target: shutil.copy(source, target))  # noqa: E731
    wan_files = {p.relative_to(wan_folder).as_posix(): copy(p) for p in wan_folder.rglob("*") if p.is_file()}
    cache = tmp_path / "hub"
    hub_cache(cache, "Fr0zencr4nE/Uni-ViGU", {COMMIT: {"README.md": lambda t: t.write_text("# Uni-ViGU\n"),
                                                       "Uni-ViGU-CKPT.pth": copy(FIXTURE / "reference_tiny.pth")}},
              {"main": COMMIT})
    hub_cache(cache, app_wan_repo, {WAN_COMMIT: wan_files}, {"main": WAN_COMMIT})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_the_authors_repo_is_converted_on_the_first_start_and_reused_after(monkeypatch, offline_hub, tmp_path,
                                                                          capsys):
    from univigu.conversion import reference

    cache = tmp_path / "univigu-cache"
    monkeypatch.setenv("UNIVIGU_MODEL", "Fr0zencr4nE/Uni-ViGU")
    monkeypatch.setenv("UNIVIGU_CACHE", str(cache))
    app = load_app(monkeypatch)
    folder = cache / "Fr0zencr4nE--Uni-ViGU"

    # first start: converted (with the default Wan id, from the Hub cache) into the cache
    blocks = app.create_demo(app.parse_args([]))
    assert "Converting the reference checkpoint Fr0zencr4nE/Uni-ViGU with Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in \
        capsys.readouterr().out
    info = json.loads((folder / "univigu_conversion.json").read_text())
    assert (info["hub_repo"], info["hub_filename"], info["hub_commit"]) == ("Fr0zencr4nE/Uni-ViGU",
                                                                         "Uni-ViGU-CKPT.pth", COMMIT)
    assert_same_weights(folder, torch.load(FIXTURE / "reference_tiny.pth", weights_only=True)["model"])
    assert {k: sliders(blocks)[k] for k in REFERENCE_SIZES} == REFERENCE_SIZES
    assert event(blocks, "t2v").__self__.pipe.name_or_path == str(folder)
    written = (folder / "transformer" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns

    # second start: the converted folder is loaded, nothing is converted
    def no_conversion(*args, **kwargs):
        raise AssertionError("the second start must not convert again")

    monkeypatch.setattr(reference, "convert_reference_checkpoint", no_conversion)
    blocks = app.create_demo(app.parse_args([]))
    assert f"Using the converted reference checkpoint Fr0zencr4nE/Uni-ViGU from {folder}" in capsys.readouterr().out
    assert (folder / "transformer" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == written
    assert event(blocks, "t2v")("a cat", 0, 1, 1.0, 16, 16, 1).endswith(".mp4")


def test_an_unfinished_conversion_is_done_again(monkeypatch, offline_hub, tmp_path, capsys):
    """A cache folder without its provenance record (a start that stopped while writing) is converted anew."""
    app = load_app(monkeypatch)
    folder = app.prepare_model("Fr0zencr4nE/Uni-ViGU", cache_dir=tmp_path / "c")
    (Path(folder) / "univigu_conversion.json").unlink()
    capsys.readouterr()
    assert app.prepare_model("Fr0zencr4nE/Uni-ViGU", cache_dir=tmp_path / "c") == folder
    assert "Converting" in capsys.readouterr().out and (Path(folder) / "univigu_conversion.json").is_file()
