"""No silent overwrite, anywhere (issue #29, item 3): every command that writes refuses to replace an existing file or
a folder holding anything unless told to (`--overwrite`; the training scripts: `--overwrite_output_dir`), never writes
onto one of its own inputs even when told to, and leaves no staging behind after an interruption.

Each refusal hashes every file of the user's tree before and after (byte-identical) and checks that the message names
the path and the flag that lifts it. Nothing here loads a real model: tiny stand-ins, seconds in all.
"""

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from test_reliability_io import (  # noqa: F401  (fixtures)
    GOOD,
    convert_args,
    evaluation,
    no_loading,
    train,
    tree_hashes,
    wan_template,
    workspace,
    write_metadata,
    write_run,
)
from univigu.cli import main as cli_main


def dead_pid() -> int:
    """The id of a process that has ended (what a killed command's staging names)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------------------------- generate


class FramesPipe:
    """Stands in for a UniViGUPipeline in `univigu generate`: 5 frames of 16x16 noise, at once."""

    def __init__(self):
        self.calls = 0

    def __call__(self, prompt, generate_caption=False, generator=None, **kwargs):
        self.calls += 1
        frames = np.random.default_rng(self.calls).random((1, 5, 16, 16, 3), dtype=np.float32)
        return SimpleNamespace(frames=frames, text=["a red circle moving left"])


@pytest.fixture
def generate(tmp_path, monkeypatch):
    """`univigu generate` with the stand-in pipeline; `state.loads` counts model loads."""
    state = SimpleNamespace(pipe=FramesPipe(), loads=0, model=tmp_path / "model")
    state.model.mkdir()
    (state.model / "model_index.json").write_text('{"_class_name": "UniViGUPipeline"}')

    def load_pipeline(model, device=None, dtype="float32", lora=None):
        state.loads += 1
        return state.pipe

    monkeypatch.setattr("univigu.pipelines.cli.load_pipeline", load_pipeline)

    def run(out, *extra):
        return cli_main(["generate", "--prompt", "a red circle", "--out", str(out), "--model", str(state.model),
                         *extra])

    state.run = run
    return state


@pytest.mark.parametrize("existing", ["clip.mp4", "clip.png"])
def test_generate_refuses_an_existing_mp4_or_its_png(generate, tmp_path, existing):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / existing).write_bytes(b"the user's file")
    before = tree_hashes(tmp_path)
    with pytest.raises(SystemExit) as info:
        generate.run(tmp_path / "mine" / "clip.mp4")
    message = str(info.value.code)
    assert str(tmp_path / "mine" / existing) in message and "--overwrite" in message
    assert tree_hashes(tmp_path) == before and generate.loads == 0  # refused before the model loads


def test_generate_overwrite_replaces_both_files_and_leaves_no_staging(generate, tmp_path):
    out = tmp_path / "mine" / "clip.mp4"
    out.parent.mkdir()
    assert generate.run(out) == 0
    first = tree_hashes(out.parent)
    assert sorted(first) == ["clip.mp4", "clip.png"]
    assert generate.run(out, "--overwrite", "--seed", "1") == 0
    second = tree_hashes(out.parent)
    assert sorted(second) == ["clip.mp4", "clip.png"] and second != first


def test_generate_interrupted_while_writing_keeps_the_old_files(generate, tmp_path, monkeypatch):
    out = tmp_path / "clip.mp4"
    assert generate.run(out) == 0
    before = tree_hashes(tmp_path)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("diffusers.utils.export_to_video", fail)
    with pytest.raises(OSError, match="No space left"):
        generate.run(out, "--overwrite")
    assert tree_hashes(tmp_path) == before  # the old clip as it was, no temporary file left


def test_a_killed_generate_leaves_no_partial_file_after_the_next_run(generate, tmp_path):
    out = tmp_path / "clip.mp4"
    left = tmp_path / f".clip.mp4.tmp-{dead_pid()}-0123abcd.mp4"  # what a SIGKILL mid-write leaves
    left.write_bytes(b"half a clip")
    assert generate.run(out) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip.png", "model"]


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "overwrite"])
@pytest.mark.parametrize("into", ["model", "lora"])
def test_generate_never_writes_into_its_model_or_lora(generate, tmp_path, overwrite, into):
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "pytorch_lora_weights.safetensors").write_bytes(b"lora")
    folder = generate.model if into == "model" else lora
    (folder / "clip.mp4").write_bytes(b"the user's clip")
    before = tree_hashes(tmp_path)
    with pytest.raises(SystemExit) as info:
        generate.run(folder / "clip.mp4", "--lora", str(lora), *overwrite)
    message = str(info.value.code)
    assert str(folder) in message and "the input" in message and "Choose another --out" in message
    assert tree_hashes(tmp_path) == before and generate.loads == 0


# ---------------------------------------------------------------------------------------------------- evaluate


def test_evaluate_refuses_an_existing_output_or_samples_file(evaluation, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for name in ("eval.json", "eval.samples.jsonl"):
        (results / name).write_text("the user's results")
        before = tree_hashes(tmp_path)
        with pytest.raises(FileExistsError) as info:
            cli_main(evaluation.args + ["--out", str(results / "eval.json")])
        assert str(results / name) in str(info.value) and "--overwrite" in str(info.value)
        assert tree_hashes(tmp_path) == before
        (results / name).unlink()
    assert evaluation.loads == 0 and evaluation.pipe.calls == 0
    (results / "eval.json").write_text("old")
    assert cli_main(evaluation.args + ["--out", str(results / "eval.json"), "--overwrite"]) == 0
    assert (results / "eval.json").read_text().startswith("{")
    assert sorted(p.name for p in results.iterdir()) == ["eval.json", "eval.samples.jsonl"]


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "overwrite"])
@pytest.mark.parametrize("where", ["data/metadata.jsonl", "data/results.json", "pipeline/results.json",
                                   "data/0.mp4", "elsewhere.mp4"])
def test_evaluate_never_writes_onto_or_into_an_input(evaluation, tmp_path, where, overwrite):
    args = list(evaluation.args)
    if where == "elsewhere.mp4":  # a video outside --data-dir, allowed by its flag
        write_metadata(tmp_path / "data", [GOOD, dict(GOOD, file_name="../elsewhere.mp4")])
        (tmp_path / "elsewhere.mp4").write_bytes(b"a video")
        args.append("--allow-external-video-paths")
    elif where == "data/0.mp4":
        (tmp_path / "data" / "0.mp4").write_bytes(b"a video")
    before = tree_hashes(tmp_path)
    with pytest.raises(ValueError) as info:
        cli_main(args + ["--out", str(tmp_path / where), *overwrite])
    message = str(info.value)
    assert str(tmp_path / where) in message and "the input" in message and "Choose another --out" in message
    assert tree_hashes(tmp_path) == before
    assert evaluation.loads == 0 and evaluation.pipe.calls == 0


# ---------------------------------------------------------------------------------------------------- convert


@pytest.mark.parametrize("had_output", [False, True], ids=["new", "replacing"])
def test_a_killed_conversion_leaves_no_staging_after_the_next_run(workspace, capsys, had_output):
    """A conversion killed (SIGKILL: no cleanup ran) left its staging folder, and when it was replacing an output
    and was killed between its two renames, the old output moved aside: the next conversion to that output removes
    the staging and puts the old output back (and then, without --overwrite, keeps it)."""
    pid = dead_pid()
    out = workspace / "out"
    staging = workspace / f".out.tmp-{pid}-0123abcd"
    staging.mkdir()
    (staging / "model_index.json").write_text("{}")
    inputs = {"wan": tree_hashes(workspace / "wan"), "ckpts": tree_hashes(workspace / "ckpts")}
    if had_output:
        moved_aside = workspace / f".out.old-{pid}-4567cdef"
        moved_aside.mkdir()
        (moved_aside / "model_index.json").write_text('{"old": true}')
        old = tree_hashes(moved_aside)
        assert cli_main(convert_args("wan", workspace, out)) == 1
        assert "--overwrite" in capsys.readouterr().err
        assert tree_hashes(out) == old
    else:
        assert cli_main(convert_args("wan", workspace, out)) == 0
        assert (out / "model_index.json").is_file()
    assert sorted(p.name for p in workspace.iterdir()) == ["ckpts", "out", "wan"]
    assert {"wan": tree_hashes(workspace / "wan"), "ckpts": tree_hashes(workspace / "ckpts")} == inputs


def test_staging_of_a_running_process_is_left_alone(tmp_path):
    from univigu.utils.output_paths import remove_stale_staging

    mine = tmp_path / f".out.tmp-{os.getpid()}-0123abcd"
    mine.mkdir()
    remove_stale_staging(tmp_path / "out")
    assert mine.exists()


# ---------------------------------------------------------------------------------------------------- training


def _wan_folder(folder):
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "WanPipeline", "transformer": ["diffusers", "X"]}')
    (folder / "transformer").mkdir()
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"weights")
    return folder


@pytest.mark.parametrize("flags", [["--resume_from_checkpoint", "latest"], ["--overwrite_output_dir"], []],
                         ids=["resume", "overwrite", "plain"])
def test_training_never_writes_into_its_base_model(tmp_path, no_loading, flags):
    base = _wan_folder(tmp_path / "wan")
    before = tree_hashes(tmp_path)
    with pytest.raises(ValueError) as info:
        train(tmp_path, base, *flags, model=base)
    message = str(info.value)
    assert str(base) in message and "--pretrained_model_name_or_path" in message
    assert "Choose another --output_dir" in message
    assert tree_hashes(tmp_path) == before


@pytest.mark.parametrize("what", ["finished run", "LoRA run", "univigu pipeline"])
def test_resume_latest_without_a_checkpoint_does_not_start_over_a_finished_run(tmp_path, no_loading, what):
    out = tmp_path / "run"
    write_run(out, *{"finished run": ["final pipeline", "summary", "loss log"], "LoRA run": ["final LoRA", "summary"],
                     "univigu pipeline": ["final pipeline"]}[what])
    before = tree_hashes(tmp_path)
    with pytest.raises(FileExistsError) as info:
        train(tmp_path, out, "--resume_from_checkpoint", "latest")
    message = str(info.value)
    assert str(out) in message and "no complete checkpoint" in message and "--overwrite_output_dir" in message
    assert tree_hashes(tmp_path) == before


def test_a_bad_checkpoint_name_is_refused_before_loading(tmp_path, no_loading):
    write_run(tmp_path / "run")
    before = tree_hashes(tmp_path)
    with pytest.raises(FileNotFoundError, match="checkpoint-99.*checkpoint-4"):
        train(tmp_path, tmp_path / "run", "--resume_from_checkpoint", "checkpoint-99")
    assert tree_hashes(tmp_path) == before


@pytest.mark.parametrize("flags", [["--overwrite_output_dir"], [], ["--resume_from_checkpoint", "latest"]],
                         ids=["overwrite", "plain", "resume"])
def test_a_model_folder_no_run_wrote_is_never_cleared(tmp_path, no_loading, flags):
    """A Wan folder (not this run's input) as --output_dir: its model_index.json and transformer/ are not a run's."""
    out = _wan_folder(tmp_path / "other-model")
    before = tree_hashes(tmp_path)
    with pytest.raises(FileExistsError) as info:
        train(tmp_path, out, *flags)
    message = str(info.value)
    assert str(out) in message and "no training run wrote" in message and "model_index.json" in message
    assert tree_hashes(tmp_path) == before


def test_overwrite_output_dir_refuses_a_run_folder_holding_other_files(tmp_path, no_loading):
    out = tmp_path / "run"
    write_run(out)
    (out / "notes.md").write_text("my notes on this run")
    before = tree_hashes(tmp_path)
    with pytest.raises(FileExistsError) as info:
        train(tmp_path, out, "--overwrite_output_dir")
    message = str(info.value)
    assert str(out) in message and "notes.md" in message and "never others" in message
    assert tree_hashes(tmp_path) == before


def test_overwrite_output_dir_removes_only_what_a_run_wrote(tmp_path):
    from univigu.training.outputs import classify_output_dir, clear_output_dir

    out = tmp_path / "run"
    write_run(out)
    (out / "loss.png").write_bytes(b"png")
    (out / "tb").mkdir()
    (out / "tb" / "events").write_bytes(b"e")
    (out / "notes.md").write_text("mine")
    (out / "cache").mkdir()
    (out / "cache" / "shard.safetensors").write_bytes(b"c")
    run, other = classify_output_dir(out, logging_dir="tb", keep=[out / "cache"])
    assert "notes.md" in other and "logs/" in other  # not this run's logging folder
    assert {"tb/", "loss.png", "checkpoint-4/", ".tmp-checkpoint-6/", "model_index.json"} <= set(run)
    kept = {k: v for k, v in tree_hashes(out).items() if k.split("/")[0] in ("notes.md", "cache", "logs")}
    clear_output_dir(out, keep=[out / "cache"], logging_dir="tb")
    assert tree_hashes(out) == kept
