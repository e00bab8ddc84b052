"""Every failure exits non-zero (issue #29, item 4): each `univigu` subcommand and both training scripts, run as
commands, end a printed error with a non-zero exit status and a message that names the file or flag, without a
traceback; every flag a message names exists.

The commands are run in-process the way their console entry points run them (`sys.exit(main())` with `sys.argv`
set), so the tests take seconds; only the `caption` test loads a model (the bundled ShapesWorld checkpoint, ~1 s).
"""

import re
import runpy
import sys
from pathlib import Path

import pytest

from test_reliability_io import tree_hashes, write_run
from univigu.cli import build_parser
from univigu.cli import main as cli_main


REPO = Path(__file__).resolve().parents[1]


def console(monkeypatch, capsys, argv, run=lambda: sys.exit(cli_main())):
    """`(status, stdout, stderr)` of a command run as its console script does (`sys.exit(main())`): an exception
    escaping it would fail the test (a traceback is not a message); `SystemExit("text")` prints the text and
    exits 1, as Python does."""
    monkeypatch.setattr(sys, "argv", argv)
    capsys.readouterr()
    try:
        run()
        status = 0
    except SystemExit as exit:
        status = exit.code
        if isinstance(status, str):
            print(status, file=sys.stderr)
            status = 1
        status = status or 0
    out, err = capsys.readouterr()
    return status, out, err


def univigu(monkeypatch, capsys, *argv):
    return console(monkeypatch, capsys, ["univigu", *argv])


def subcommand_flags(name: str) -> set:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    sub = subparsers.choices[name]
    flags = set(sub._option_string_actions)
    for action in sub._actions:  # `convert wan|reference`
        if getattr(action, "choices", None) and isinstance(action.choices, dict):
            for child in action.choices.values():
                flags |= set(child._option_string_actions)
    return flags


def assert_named_flags_exist(message: str, flags: set) -> None:
    named = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", message))
    assert named <= flags, f"the message names flags that do not exist: {named - flags}\n{message}"


# ---------------------------------------------------------------------------------------------------- caption


@pytest.fixture
def bad_videos(tmp_path):
    from univigu.toyworld import render_scene, sample_scene, scene_rng, write_video

    good = tmp_path / "good.mp4"
    write_video(good, render_scene(sample_scene(scene_rng(0, "train", 0))))
    data = good.read_bytes()
    (tmp_path / "notes.txt").write_text("not a video\n")
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    good.unlink()
    return [tmp_path / "notes.txt", tmp_path / "empty.mp4", tmp_path / "truncated.mp4"]


def test_caption_of_files_that_are_not_whole_videos_exits_1(monkeypatch, capsys, bad_videos, tmp_path):
    before = tree_hashes(tmp_path)
    status, out, err = univigu(monkeypatch, capsys, "caption", *map(str, bad_videos), "--device", "cpu")
    assert status == 1, err
    for path in bad_videos:
        assert f"{path}: error:" in err
    assert "3 of 3 video(s) could not be captioned" in err and "Traceback" not in err
    assert out == ""
    assert_named_flags_exist(err, subcommand_flags("caption"))
    assert tree_hashes(tmp_path) == before


@pytest.mark.parametrize("what", ["missing", "folder"])
def test_caption_of_a_missing_file_or_a_folder_exits_1(monkeypatch, capsys, tmp_path, what):
    path = tmp_path / ("nope.mp4" if what == "missing" else "clips")
    if what == "folder":
        path.mkdir()
    status, _, err = univigu(monkeypatch, capsys, "caption", str(path))
    assert status == 1 and str(path) in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------------- generate, ...


def test_generate_over_an_existing_clip_exits_1_naming_it_and_the_flag(monkeypatch, capsys, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"mine")
    status, _, err = univigu(monkeypatch, capsys, "generate", "--prompt", "a red circle", "--out", str(clip))
    assert status == 1 and str(clip) in err and "--overwrite" in err
    assert_named_flags_exist(err, subcommand_flags("generate"))
    assert clip.read_bytes() == b"mine"


def test_generate_with_a_lora_output_as_model_points_to_flags_it_has(monkeypatch, capsys, tmp_path):
    """A LoRA training output passed as --model: the fix names --model and --lora, which generate and caption have."""
    from univigu.training.arguments import build_parser as training_parser

    lora = tmp_path / "lora-run"
    lora.mkdir()
    (lora / "base_model.json").write_text("{}")
    (tmp_path / "x.mp4").write_bytes(b"x")
    for command in (["generate", "--prompt", "x", "--out", str(tmp_path / "clip.mp4")],
                    ["caption", str(tmp_path / "x.mp4")]):
        status, _, err = univigu(monkeypatch, capsys, *command, "--model", str(lora))
        assert status == 1 and str(lora) in err and "--lora" in err
        assert_named_flags_exist(err, subcommand_flags(command[0]))
    status, _, err = univigu(monkeypatch, capsys, "generate", "--prompt", "x", "--out", str(tmp_path / "clip.mp4"),
                             "--lora", str(tmp_path / "no-lora"))
    assert status == 1 and str(tmp_path / "no-lora") in err and "pytorch_lora_weights.safetensors" in err
    assert_named_flags_exist(err, subcommand_flags("generate") | set(training_parser("recall")._option_string_actions))


def test_generate_with_a_wrong_suffix_exits_1(monkeypatch, capsys, tmp_path):
    status, _, err = univigu(monkeypatch, capsys, "generate", "--prompt", "x", "--out", str(tmp_path / "clip.gif"))
    assert status == 1 and "--out must end in .mp4" in err


def test_evaluate_errors_exit_1_without_a_traceback(monkeypatch, capsys, tmp_path):
    pytest.importorskip("evaluate")
    pipeline = tmp_path / "pipeline"
    pipeline.mkdir()
    (pipeline / "model_index.json").write_text('{"_class_name": "UniViGUPipeline"}')
    status, _, err = univigu(monkeypatch, capsys, "evaluate", "--model", str(pipeline),
                             "--data-dir", str(tmp_path / "missing"))
    assert status == 1 and err.startswith("univigu evaluate: error:") and "--data-dir" in err
    assert "Traceback" not in err
    assert_named_flags_exist(err, subcommand_flags("evaluate"))


def test_convert_and_params_errors_exit_1(monkeypatch, capsys, tmp_path):
    status, _, err = univigu(monkeypatch, capsys, "convert", "wan", "--wan", str(tmp_path / "no-wan"),
                             "--out", str(tmp_path / "out"))
    assert status == 1 and str(tmp_path / "no-wan") in err and not (tmp_path / "out").exists()
    assert_named_flags_exist(err, subcommand_flags("convert"))
    status, _, err = univigu(monkeypatch, capsys, "params", "--config", str(tmp_path / "config.json"))
    assert status == 1 and err.startswith("univigu params: error:") and str(tmp_path / "config.json") in err


def test_a_bad_flag_exits_2(monkeypatch, capsys):
    status, _, err = univigu(monkeypatch, capsys, "generate", "--prompt", "x", "--num-frames", "0")
    assert status == 2 and "--num-frames" in err
    status, _, err = univigu(monkeypatch, capsys, "caption")
    assert status == 2


def test_called_from_python_errors_are_raised(tmp_path):
    """`main(argv)` from Python raises, for the caller to handle (the exit-status handling is the command's)."""
    with pytest.raises(FileNotFoundError):
        cli_main(["params", "--config", str(tmp_path / "config.json")])


# ---------------------------------------------------------------------------------------------------- training


def training_script(stage):
    return lambda: runpy.run_path(str(REPO / "training" / f"train_{stage}.py"), run_name="__main__")


@pytest.mark.parametrize("stage", ["recall", "refine"])
def test_training_scripts_exit_1_on_a_refused_output_dir(monkeypatch, capsys, tmp_path, stage):
    from univigu.training.arguments import build_parser as training_parser

    out = tmp_path / "run"
    write_run(out)
    before = tree_hashes(tmp_path)
    argv = [f"train_{stage}.py", "--pretrained_model_name_or_path", str(tmp_path / "model"),
            "--train_data_dir", str(tmp_path / "data"), "--output_dir", str(out), "--report_to", "none"]
    status, _, err = console(monkeypatch, capsys, argv, training_script(stage))
    assert status == 1, err
    assert f"train_{stage}.py: error: --output_dir {out} already holds a training run" in err
    assert "Traceback" not in err
    assert_named_flags_exist(err, set(training_parser(stage)._option_string_actions))
    assert tree_hashes(tmp_path) == before

    status, _, err = console(monkeypatch, capsys, argv[:-4] + ["--num_frames", "10"], training_script(stage))
    assert status == 1 and "--num_frames must be 4k+1" in err
