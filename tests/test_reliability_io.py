"""Reliability of what univigu reads and writes (issue #8): no command destroys or silently mixes with the user's
files, bad inputs fail early with a message that names the fix, and every JSON file written is valid JSON.

Data-loss cases hash every file of the user's tree before and after: it must be byte-identical. Everything here runs
on tiny inputs (a tiny Wan folder, fake run folders, a stand-in pipeline) and takes seconds; nothing trains.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from test_conversion import SMALL_CONFIG, _save_wan_folder, reference_layout_state
from univigu.cli import main as cli_main


# ---------------------------------------------------------------------------------------------------- helpers


def tree_hashes(root) -> dict:
    """Every file (sha256) and folder under `root`: equal before and after means nothing was changed, removed or
    added (stray temporary folders included)."""
    root = Path(root)
    found = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[key] = "link -> " + os.readlink(path)
        elif path.is_dir():
            found[key] = "dir"
        else:
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def strict_json(text: str):
    """json.loads that rejects the bare NaN / Infinity that json.dumps writes by default."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def wan_template(tmp_path_factory):
    """A tiny Wan2.1 T2V folder (SMALL_CONFIG, 30 tokens) and a reference checkpoint that fits it."""
    root = tmp_path_factory.mktemp("reliability")
    _save_wan_folder(root / "wan", SMALL_CONFIG, vocab_size=30)
    torch.save({"model": reference_layout_state(), "step": 1}, root / "ckpt.pth")
    return root


@pytest.fixture
def workspace(wan_template, tmp_path):
    """The user's files: `work/wan/` (the Wan folder) and `work/ckpts/ckpt.pth` (the checkpoint)."""
    root = tmp_path / "work"
    shutil.copytree(wan_template / "wan", root / "wan")
    (root / "ckpts").mkdir()
    shutil.copyfile(wan_template / "ckpt.pth", root / "ckpts" / "ckpt.pth")
    return root


def convert_args(source, root, out, *extra):
    args = ["convert", source]
    if source == "reference":
        args += ["--checkpoint", str(root / "ckpts" / "ckpt.pth")]
    return args + ["--wan", str(root / "wan"), "--out", str(out), *extra]


# ---------------------------------------------------------------------------------------------------- 1. convert


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize(
    "source, out",
    [
        ("wan", "wan"),  # the output is the input
        ("wan", "."),  # the output contains the input (W's parent)
        ("wan", "wan/.."),  # the same, spelled with ..
        ("wan", "wan/transformer"),  # the output lies inside the input
        ("wan", "link"),  # a symlink to the input
        ("reference", "wan"),
        ("reference", "."),
        ("reference", "ckpts"),  # contains the checkpoint
        ("reference", "ckpts/ckpt.pth"),  # is the checkpoint
    ],
)
def test_convert_refuses_an_output_that_is_contains_or_is_inside_an_input(workspace, capsys, source, out, overwrite):
    (workspace / "link").symlink_to(workspace / "wan", target_is_directory=True)
    before = tree_hashes(workspace)
    extra = ["--overwrite"] if overwrite else []
    assert cli_main(convert_args(source, workspace, workspace / out, *extra)) == 1
    err = capsys.readouterr().err
    assert "the input" in err and "Choose another --out" in err, err
    assert tree_hashes(workspace) == before


def test_convert_library_call_raises_value_error_for_an_overlapping_output(workspace):
    from univigu.conversion import convert_reference_checkpoint, convert_wan

    before = tree_hashes(workspace)
    with pytest.raises(ValueError, match="Choose another --out"):
        convert_wan(workspace / "wan", workspace, overwrite=True)
    with pytest.raises(ValueError, match="Choose another --out"):
        convert_reference_checkpoint(workspace / "ckpts" / "ckpt.pth", workspace / "wan", workspace / "ckpts",
                                     overwrite=True)
    assert tree_hashes(workspace) == before


@pytest.mark.parametrize("source", ["wan", "reference"])
def test_convert_into_a_non_empty_folder_needs_overwrite(workspace, capsys, source):
    (workspace / "out").mkdir()
    (workspace / "out" / "notes.txt").write_text("mine")
    before = tree_hashes(workspace)
    assert cli_main(convert_args(source, workspace, workspace / "out")) == 1
    err = capsys.readouterr().err
    assert "--overwrite" in err and "choose another --out" in err
    assert tree_hashes(workspace) == before


@pytest.mark.parametrize("source, patch", [
    ("wan", "univigu.conversion.common.write_provenance"),
    ("reference", "univigu.conversion.common.write_provenance"),
])
def test_a_failed_overwrite_leaves_the_old_output_intact(workspace, monkeypatch, capsys, source, patch):
    """The new folder is built next to the old one and moved into place only when complete."""
    assert cli_main(convert_args(source, workspace, workspace / "out")) == 0
    before = tree_hashes(workspace)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(patch, fail)
    with pytest.raises(OSError, match="No space left"):
        cli_main(convert_args(source, workspace, workspace / "out", "--overwrite"))
    assert tree_hashes(workspace) == before  # old output as it was, no temporary folder left behind

    monkeypatch.undo()
    (workspace / "out" / "stale.txt").write_text("from the old output")
    assert cli_main(convert_args(source, workspace, workspace / "out", "--overwrite")) == 0
    assert not (workspace / "out" / "stale.txt").exists()  # replaced as a whole
    assert (workspace / "out" / "model_index.json").is_file()
    assert sorted(p.name for p in workspace.iterdir()) == ["ckpts", "out", "wan"]


def _random_bytes(path):
    data = bytearray(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                   dtype=torch.uint8).numpy().tobytes())
    data[0] = 0x5F  # not the pickle PROTO opcode, whatever the seed gives
    path.write_bytes(bytes(data))


def _html_page(path):
    path.write_text("<!DOCTYPE html><html><body>Rate limit exceeded</body></html>")


def _truncated_torch_zip(path):
    torch.save({"model": reference_layout_state()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # an interrupted download: no zip directory


@pytest.mark.parametrize("make", [_random_bytes, _html_page, _truncated_torch_zip])
def test_a_file_that_is_not_a_checkpoint_is_refused_without_unpickling(workspace, monkeypatch, capsys, make):
    ckpt = workspace / "ckpts" / "ckpt.pth"
    make(ckpt)
    before = tree_hashes(workspace)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load was called on a file that is not a checkpoint")

    monkeypatch.setattr(torch, "load", no_unpickling)
    assert cli_main(convert_args("reference", workspace, workspace / "out")) == 1
    err = capsys.readouterr().err
    assert "could not be read as a PyTorch checkpoint" in err
    assert "zip format" in err and "safetensors" in err
    assert tree_hashes(workspace) == before


def _poison_reference(root, value, key="blocks.1.attn1.to_q.weight"):
    state = reference_layout_state()
    state[key][0, 0] = value
    torch.save({"model": state}, root / "ckpts" / "ckpt.pth")
    return key


def _poison_wan(root, value):
    from safetensors.torch import load_file, save_file

    file = root / "wan" / "transformer" / "diffusion_pytorch_model.safetensors"
    state = load_file(file)
    state["blocks.1.attn1.to_q.weight"][0, 0] = value  # shared by both streams: one tensor in the result
    save_file(state, file, metadata={"format": "pt"})
    return "blocks.1.attn1.to_q.weight"


@pytest.mark.parametrize("source, value, extra", [
    ("reference", float("nan"), []),
    ("reference", float("inf"), []),
    ("reference", 1e6, ["--dtype", "float16"]),  # finite in the checkpoint, inf once cast
    ("wan", float("nan"), []),
])
def test_non_finite_weights_are_reported_by_name(workspace, capsys, source, value, extra):
    key = (_poison_reference if source == "reference" else _poison_wan)(workspace, value)
    before = tree_hashes(workspace)
    assert cli_main(convert_args(source, workspace, workspace / "out", *extra)) == 1
    err = capsys.readouterr().err
    assert key in err and "NaN or inf" in err and "--allow-non-finite" in err
    assert tree_hashes(workspace) == before

    # asked for explicitly, the folder is written and records the tensors
    assert cli_main(convert_args(source, workspace, workspace / "out", *extra, "--allow-non-finite")) == 0
    info = strict_json((workspace / "out" / "univigu_conversion.json").read_text())
    assert info["non_finite_tensors"] == [key]


# ---------------------------------------------------------------------------------------------------- 2. training


@pytest.fixture
def no_loading(monkeypatch):
    """Training stops with this marker where it would load the model: whatever is checked must be checked before."""

    class Loaded(Exception):
        pass

    def load_components(*args, **kwargs):
        raise Loaded

    monkeypatch.setattr("univigu.training.trainer.load_components", load_components)
    return Loaded


def train(tmp_path, output_dir, *extra, model=None):
    from univigu.training.arguments import parse_args
    from univigu.training.trainer import main

    return main(parse_args("recall", [
        "--pretrained_model_name_or_path", str(model or tmp_path / "no-model"),
        "--train_data_dir", str(tmp_path / "no-data"),  # never read: the refusals come first
        "--output_dir", str(output_dir), "--report_to", "none", *extra,
    ]))


RUN_FILES = {
    "checkpoint": ("checkpoint-4/univigu_state.json", '{"global_step": 4}'),
    "half-written checkpoint": (".tmp-checkpoint-6/model.safetensors", "x"),
    "final pipeline": ("model_index.json", '{"_class_name": "UniViGUPipeline"}'),
    "final LoRA": ("pytorch_lora_weights.safetensors", "x"),
    "summary": ("training_summary.json", "{}"),
    "loss log": ("logs/losses.jsonl", '{"step": 1, "loss": 1.0}\n'),
}


def write_run(folder, *names):
    for name in names or RUN_FILES:
        relative, content = RUN_FILES[name]
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(content)


@pytest.mark.parametrize("marker", list(RUN_FILES))
def test_training_refuses_an_output_dir_holding_a_run(tmp_path, no_loading, marker):
    out = tmp_path / "run"
    write_run(out, marker)
    before = tree_hashes(tmp_path)
    with pytest.raises(FileExistsError) as info:
        train(tmp_path, out)
    message = str(info.value)
    assert "--resume_from_checkpoint latest" in message and "--overwrite_output_dir" in message
    assert RUN_FILES[marker][0].split("/")[0] in message
    assert tree_hashes(tmp_path) == before


def test_training_into_an_empty_folder_goes_ahead_and_an_unrelated_one_is_refused(tmp_path, no_loading):
    (tmp_path / "run").mkdir()
    with pytest.raises(no_loading):
        train(tmp_path, tmp_path / "run")
    (tmp_path / "run" / "README.md").write_text("notes")  # issue #29: a folder holding anything is refused
    before = tree_hashes(tmp_path)
    with pytest.raises(FileExistsError, match="no training run wrote.*README.md"):
        train(tmp_path, tmp_path / "run")
    assert tree_hashes(tmp_path) == before
    with pytest.raises(no_loading):  # with --resume_from_checkpoint, a run folder is what is expected
        write_run(tmp_path / "run")
        train(tmp_path, tmp_path / "run", "--resume_from_checkpoint", "latest")


def test_overwrite_output_dir_clears_the_old_run_first_but_keeps_a_latent_cache(tmp_path, no_loading):
    out = tmp_path / "run"
    write_run(out)
    (out / "validation").mkdir()
    (out / "validation" / "step-000004.json").write_text("{}")
    (out / "cache").mkdir()
    (out / "cache" / "univigu_latent_cache.json").write_text("{}")
    cache = tree_hashes(out / "cache")
    with pytest.raises(no_loading):
        train(tmp_path, out, "--overwrite_output_dir", "--latents_cache_dir", str(out / "cache"))
    assert sorted(p.name for p in out.iterdir()) == ["cache"]
    assert tree_hashes(out / "cache") == cache


@pytest.mark.parametrize("where", ["model is the output_dir", "data inside the output_dir"])
def test_overwrite_output_dir_never_deletes_an_input(tmp_path, no_loading, where):
    out = tmp_path / "run"
    write_run(out)
    extra = []
    if where == "model is the output_dir":
        model = out
    else:
        model = None
        (out / "data").mkdir()
        (out / "data" / "metadata.jsonl").write_text('{"file_name": "a.mp4", "prompt": "a red circle"}\n')
        extra = ["--train_data_dir", str(out / "data")]
    before = tree_hashes(tmp_path)
    with pytest.raises(ValueError, match="an input of this run.*Choose another --output_dir"):
        train(tmp_path, out, "--overwrite_output_dir", *extra, model=model)
    assert tree_hashes(tmp_path) == before


def test_overwrite_and_resume_together_are_refused(tmp_path, no_loading):
    write_run(tmp_path / "run")
    before = tree_hashes(tmp_path)
    with pytest.raises(ValueError, match="pass one of the two"):
        train(tmp_path, tmp_path / "run", "--overwrite_output_dir", "--resume_from_checkpoint", "latest")
    assert tree_hashes(tmp_path) == before


def test_an_unwritable_output_dir_is_refused_before_loading(tmp_path, no_loading):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(PermissionError, match="not writable.*Choose another --output_dir"):
        train(tmp_path, tmp_path / "a_file" / "run")  # cannot be created (works as root too)
    with pytest.raises(ValueError, match="is a file.*Choose another --output_dir"):
        train(tmp_path, tmp_path / "a_file")
    assert (tmp_path / "a_file").read_text() == "x"


# ---------------------------------------------------------------------------------------------------- 7. losses.jsonl


def test_loss_log_and_summaries_write_null_for_non_finite_values(tmp_path):
    from univigu.training.outputs import LossHistory, plot_losses
    from univigu.utils.json_io import dumps_json

    history = LossHistory(tmp_path / "logs" / "losses.jsonl", enabled=True)
    history.append({"step": 1, "loss": 1.5, "video_loss": float("nan"), "text_loss": 2.0, "lr": 1e-4})
    history.append({"step": 2, "loss": float("inf"), "video_loss": 0.5, "text_loss": float("-inf"), "lr": 1e-4})
    lines = (tmp_path / "logs" / "losses.jsonl").read_text().splitlines()
    records = [strict_json(line) for line in lines]
    assert records[0]["video_loss"] is None and records[1]["loss"] is None and records[1]["text_loss"] is None
    assert records[0]["loss"] == 1.5
    history.truncate(1)  # resuming reads the log back
    assert [r["step"] for r in history.read()] == [1]
    assert plot_losses(history.read(), tmp_path / "loss.png") is not None
    # the same for every JSON file the trainer writes (training_summary.json, validation/step-*.json)
    summary = strict_json(dumps_json({"losses_after": {"text": float("nan")}, "scores": [1.0, float("inf")]}))
    assert summary == {"losses_after": {"text": None}, "scores": [1.0, None]}


# ---------------------------------------------------------------------------------------------------- 4. metadata


def write_metadata(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


GOOD = {"file_name": "a.mp4", "prompt": "a red circle moving left", "caption": "A red circle moves left."}


@pytest.mark.parametrize("bad, line, column", [
    ({"prompt": 5}, 2, "prompt"),
    ({"prompt": True}, 2, "prompt"),
    ({"caption": ["a red circle"]}, 3, "caption"),  # was silently trained on as the JSON text '["a red circle"]'
    ({"caption": {"text": "a red circle"}}, 2, "caption"),
])
def test_non_string_text_names_file_line_and_column(tmp_path, bad, line, column):
    from univigu.data import load_video_text_dataset

    rows = [GOOD, GOOD, GOOD]
    rows[line - 1] = dict(GOOD, **bad)
    data = write_metadata(tmp_path / "data", rows)
    with pytest.raises(ValueError) as info:
        load_video_text_dataset(str(data), text_columns=["caption", "prompt"])
    message = str(info.value)
    assert "metadata.jsonl" in message and f"line {line}" in message and repr(column) in message
    assert "must hold strings" in message


def test_mixed_types_in_another_column_name_file_line_and_column(tmp_path):
    from univigu.data import load_video_text_dataset

    data = write_metadata(tmp_path / "data", [dict(GOOD, id="x1"), dict(GOOD, id="x2"), dict(GOOD, id=3)])
    with pytest.raises(ValueError, match=r"metadata\.jsonl:3: column 'id' holds int 3.*Fix that row"):
        load_video_text_dataset(str(data))


def test_null_and_nan_texts_are_missing_texts_not_errors(tmp_path):
    from univigu.data import find_bad_samples, load_video_text_dataset

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "metadata.jsonl").write_text(
        json.dumps(GOOD) + "\n" + '{"file_name": "b.mp4", "prompt": NaN, "caption": null}\n'
    )
    raw = load_video_text_dataset(str(tmp_path / "data"), text_columns=["caption", "prompt"])
    assert find_bad_samples(raw, "file_name", ["prompt"], warn=False) == {1: "missing text (column 'prompt')"}


@pytest.mark.parametrize("name", ["../x.mp4", "sub/../../x.mp4", "/etc/passwd"])
def test_video_paths_outside_the_data_folder_need_a_flag(tmp_path, name):
    from univigu.data import load_video_text_dataset
    from univigu.training.arguments import parse_args

    data = write_metadata(tmp_path / "data", [GOOD, dict(GOOD, file_name=name)])
    with pytest.raises(ValueError) as info:
        load_video_text_dataset(str(data))
    message = str(info.value)
    assert "line 2" in message and name in message and "--allow_external_video_paths" in message
    raw = load_video_text_dataset(str(data), allow_external_video_paths=True)
    assert raw["file_name"][1] == str(data / name)
    # inside the folder is fine, however spelt
    write_metadata(data, [GOOD, dict(GOOD, file_name="./sub/x.mp4"), dict(GOOD, file_name="sub/../y.mp4")])
    assert len(load_video_text_dataset(str(data))) == 3
    # the training scripts have the flag
    args = parse_args("recall", ["--pretrained_model_name_or_path", "m", "--train_data_dir", str(data),
                                 "--allow_external_video_paths"])
    assert args.allow_external_video_paths


# ---------------------------------------------------------------------------------------------------- 3, 5. evaluate


class FakePipe:
    """Stands in for a UniViGUPipeline: captions are instant, and the call can be made to fail at call `fail_at`."""

    def __init__(self, fail_at=None):
        self.calls = 0
        self.fail_at = fail_at

    def to(self, device):
        return self

    def set_progress_bar_config(self, **kwargs):
        pass

    def stored_call_default(self, name, task):
        return None  # a checkpoint that stores no call_defaults

    def __call__(self, video, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return SimpleNamespace(text=[f"a red circle moving left {self.calls}"])


@pytest.fixture
def evaluation(tmp_path, monkeypatch):
    """A UniViGUPipeline folder (only its model_index.json is read: loading returns `state.pipe`) and a data folder
    of 3 rows (the videos are never decoded by the stand-in pipeline)."""
    pytest.importorskip("evaluate")
    from univigu.pipelines import UniViGUPipeline

    pipeline = tmp_path / "pipeline"
    pipeline.mkdir()
    (pipeline / "model_index.json").write_text(json.dumps({"_class_name": "UniViGUPipeline"}))
    rows = [dict(GOOD, file_name=f"{i}.mp4") for i in range(3)]
    data = write_metadata(tmp_path / "data", rows)
    state = SimpleNamespace(pipe=FakePipe(), loads=0)

    def from_pretrained(*args, **kwargs):
        state.loads += 1
        return state.pipe

    monkeypatch.setattr(UniViGUPipeline, "from_pretrained", from_pretrained)
    state.args = ["evaluate", "--model", str(pipeline), "--data-dir", str(data), "--num-inference-steps", "2"]
    return state


def test_evaluate_checks_the_output_before_captioning(evaluation, tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(PermissionError, match="Choose another --out"):
        cli_main(evaluation.args + ["--out", str(tmp_path / "a_file" / "results.json")])
    with pytest.raises(IsADirectoryError, match="is a folder"):
        cli_main(evaluation.args + ["--out", str(tmp_path / "data")])
    assert evaluation.loads == 0 and evaluation.pipe.calls == 0  # nothing was loaded or captioned


def test_evaluate_writes_each_caption_as_it_is_made(evaluation, tmp_path):
    from univigu.evaluation.cli import samples_path

    output = tmp_path / "results" / "eval.json"
    evaluation.pipe.fail_at = 3
    with pytest.raises(KeyboardInterrupt):  # interrupted while captioning the third video
        cli_main(evaluation.args + ["--out", str(output)])
    kept = [strict_json(line) for line in samples_path(output).read_text().splitlines()]
    assert [s["prediction"] for s in kept] == ["a red circle moving left 1", "a red circle moving left 2"]
    assert kept[0]["reference"] == GOOD["caption"] and kept[1]["video"].endswith("1.mp4")
    assert not output.exists()

    evaluation.pipe.calls, evaluation.pipe.fail_at = 0, None
    with pytest.raises(FileExistsError, match="--overwrite"):  # the interrupted run's captions are kept
        cli_main(evaluation.args + ["--out", str(output)])
    assert cli_main(evaluation.args + ["--out", str(output), "--overwrite"]) == 0
    result = strict_json(output.read_text())
    assert result["data"]["evaluated"] == 3 and len(result["samples"]) == 3
    assert len(samples_path(output).read_text().splitlines()) == 3  # rewritten, not appended to
    assert sorted(p.name for p in output.parent.iterdir()) == ["eval.json", "eval.samples.jsonl"]


def test_evaluate_names_its_own_flags_for_a_missing_column(evaluation):
    with pytest.raises(ValueError) as info:
        cli_main(evaluation.args + ["--reference-column", "nope"])
    message = str(info.value)
    assert "'nope'" in message and "--reference-column" in message
    assert "--caption_column" not in message and "--condition_column" not in message
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        cli_main(evaluation.args[:3] + ["--data-dir", str(Path(evaluation.args[4]) / "missing")])
    assert evaluation.loads == 0


def test_a_wan_folder_as_pipeline_says_to_convert_it_first(evaluation, wan_template, tmp_path):
    before = tree_hashes(wan_template / "wan")
    args = list(evaluation.args)
    args[2] = str(wan_template / "wan")
    with pytest.raises(ValueError, match="WanPipeline.*univigu convert wan --wan"):
        cli_main(args)
    # generate / caption take --model: the same message
    with pytest.raises(SystemExit, match="univigu convert wan"):
        cli_main(["generate", "--prompt", "a red circle", "--out", str(tmp_path / "clip.mp4"),
                  "--model", str(wan_template / "wan")])
    # a LoRA training output is not a pipeline either: pass its base and --lora
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "base_model.json").write_text("{}")
    args[2] = str(lora)
    with pytest.raises(ValueError, match="--lora"):
        cli_main(args)
    assert evaluation.loads == 0
    assert tree_hashes(wan_template / "wan") == before


def test_evaluate_refuses_external_video_paths_without_its_flag(evaluation, tmp_path):
    write_metadata(tmp_path / "data", [GOOD, dict(GOOD, file_name="../elsewhere.mp4")])
    with pytest.raises(ValueError, match="--allow-external-video-paths"):  # as `univigu evaluate` spells it
        cli_main(evaluation.args)
    assert evaluation.loads == 0
    assert cli_main(evaluation.args + ["--allow-external-video-paths"]) == 0


def test_a_transient_decoder_failure_is_retried_and_a_broken_file_is_not(tmp_path, monkeypatch):
    """Which samples a run keeps must not depend on the machine's load: imageio's ffmpeg reader can fail once under
    load on a good file (seen in a training run); a broken file still fails."""
    import imageio

    from univigu.data import video as video_io
    from univigu.toyworld import render_scene, sample_scene, scene_rng, write_video

    monkeypatch.setenv("UNIVIGU_VIDEO_READER", "imageio")  # the imageio path (PyAV, when installed, is the default)
    path = tmp_path / "clip.mp4"
    write_video(path, render_scene(sample_scene(scene_rng(0, "train", 0))))
    real = imageio.get_reader
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("Could not load meta information")
        return real(*args, **kwargs)

    monkeypatch.setattr(imageio, "get_reader", flaky)
    assert video_io.read_video(path).shape == (9, 64, 64, 3) and len(calls) == 2
    monkeypatch.setattr(imageio, "get_reader", real)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(OSError):
        video_io.read_video(broken)


@pytest.mark.parametrize("lossless", [True, False], ids=["lossless-rgb", "yuv420p"])
def test_pyav_and_imageio_readers_give_the_same_frames(tmp_path, monkeypatch, lossless):
    """Training caches and inference must see the same pixels whichever decoder a machine has."""
    pytest.importorskip("av")
    from univigu.data import video as video_io
    from univigu.toyworld import render_scene, sample_scene, scene_rng, write_video

    frames = render_scene(sample_scene(scene_rng(3, "train", 0)))
    path = tmp_path / "clip.mp4"
    write_video(path, frames, lossless=lossless)
    with_pyav = video_io.read_video(path)
    monkeypatch.setenv("UNIVIGU_VIDEO_READER", "imageio")
    with_imageio = video_io.read_video(path)
    assert with_pyav.dtype == np.uint8 and with_pyav.shape == (9, 64, 64, 3)
    np.testing.assert_array_equal(with_pyav, with_imageio)
    if lossless:
        np.testing.assert_array_equal(with_pyav, frames)
    monkeypatch.delenv("UNIVIGU_VIDEO_READER")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(OSError, match="could not decode"):
        video_io.read_video(broken)
