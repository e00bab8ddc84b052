"""One CLI convention (issue #31, item 3). The `univigu` subcommands' flags are kebab-case; one concept has one flag
name across the subcommands (the table below), and where the training scripts name the same thing they use the same
words in diffusers' examples' underscore style; the earlier spellings still parse, as hidden aliases for one release;
`univigu generate --caption` and `univigu caption --caption` write the caption next to the clip.

The parsers are walked as `univigu.cli.build_parser` builds them (no model is loaded, except by the last test)."""

import argparse
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from univigu.cli import build_parser
from univigu.cli import main as cli_main
from univigu.training.arguments import build_parser as training_parser


KEBAB = re.compile(r"^--[a-z0-9]+(-[a-z0-9]+)*$")


def subcommands() -> dict:
    """`{"generate": parser, ..., "convert wan": parser, "convert reference": parser}`: every leaf subcommand."""
    found = {}

    def walk(parser, prefix):
        children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not children:
            found[prefix] = parser
        for action in children:
            for name, child in action.choices.items():
                walk(child, f"{prefix} {name}".strip())

    walk(build_parser(), "")
    return found


SUBCOMMANDS = subcommands()


def visible_flags(parser) -> set:
    """The option strings `--help` shows."""
    return {s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}


def test_the_walk_finds_every_subcommand():
    assert set(SUBCOMMANDS) == {"generate", "caption", "evaluate", "convert wan", "convert reference", "params"}


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_flag_is_kebab_case(name):
    flags = visible_flags(SUBCOMMANDS[name]) - {"-h", "--help"}
    assert flags
    assert sorted(f for f in flags if not KEBAB.match(f)) == []


#: concept -> (its one flag, the subcommands that have it). Every subcommand that takes the concept spells it so.
CONCEPTS = {
    "the UniViGU pipeline to run": ("--model", {"generate", "caption", "evaluate"}),
    "LoRA weights on it": ("--lora", {"generate", "caption", "evaluate"}),
    "denoising steps": ("--num-inference-steps", {"generate", "caption", "evaluate"}),
    "frame count": ("--num-frames", {"generate", "caption", "evaluate"}),
    "caption length in tokens": ("--max-text-length", {"caption", "evaluate"}),
    "where the output goes": ("--out", {"generate", "evaluate", "convert wan", "convert reference"}),
    "replace an existing output": ("--overwrite", {"generate", "evaluate", "convert wan", "convert reference"}),
    "the text stream's noise source": ("--text-source", {"convert wan", "convert reference", "params"}),
    "seed": ("--seed", {"generate", "caption", "evaluate", "convert wan"}),
    "device": ("--device", {"generate", "caption", "evaluate"}),
    "dtype": ("--dtype", {"generate", "caption", "evaluate", "convert wan", "convert reference"}),
    "frame size": ("--height", {"generate", "caption", "evaluate"}),
    "sampling of a video": ("--start", {"caption", "evaluate"}),
    "ShapesWorld attribute scores": ("--shapesworld-metrics", {"evaluate"}),
}

#: Other spellings of the concepts above: no subcommand shows them (old ones still parse, hidden: see below).
SYNONYMS = ("--pipeline", "--steps", "--frames", "--num_frames", "--max_text_length", "--output", "--text-mask-token",
            "--no-text-mask-token", "--mask-token", "--source", "--checkpoint-dir", "--guidance", "--shapesworld",
            "--data_dir", "--num_inference_steps")


@pytest.mark.parametrize("concept", sorted(CONCEPTS))
def test_one_concept_one_flag(concept):
    flag, where = CONCEPTS[concept]
    have = {name for name, parser in SUBCOMMANDS.items() if flag in visible_flags(parser)}
    assert where <= have, f"{concept}: {flag} missing from {sorted(where - have)}"


def test_no_subcommand_shows_another_name_for_a_concept():
    shown = {(name, flag) for name, parser in SUBCOMMANDS.items() for flag in visible_flags(parser)
             if flag in SYNONYMS}
    assert shown == set()


#: The training scripts keep diffusers' underscore style; where they name what a `univigu` flag names, the words are
#: the same (`--num-frames` -> `--num_frames`), or the flag's words end theirs (`--validation_num_inference_steps`).
TRAINING_NAMES = {
    "--num-frames": "--num_frames",
    "--max-text-length": "--max_text_length",
    "--text-source": "--text_source",
    "--video-column": "--video_column",
    "--allow-external-video-paths": "--allow_external_video_paths",
    "--shapesworld-metrics": "--shapesworld_metrics",
    "--num-inference-steps": "--validation_num_inference_steps",
    "--seed": "--seed",
    "--height": "--height",
    "--width": "--width",
    "--lora": None,  # training's LoRA flags are --lora_rank, ... (what LoRA to train, not which to load)
}


@pytest.mark.parametrize("stage", ["recall", "refine"])
def test_training_scripts_use_the_same_words(stage):
    flags = visible_flags(training_parser(stage))
    cli_flags = set().union(*(visible_flags(p) for p in SUBCOMMANDS.values()))
    for cli_flag, training_flag in TRAINING_NAMES.items():
        assert cli_flag in cli_flags
        if training_flag is None:
            continue
        assert training_flag in flags
        assert training_flag.replace("_", "-").endswith(cli_flag[2:])
    assert all(f.startswith("--") and "-" not in f[2:] for f in flags - {"-h", "--help"})


#: (subcommand argv, old spelling, its value or None for a switch, the attribute, the value parsed).
REQUIRED = {
    "generate": ["generate", "--prompt", "x"],
    "caption": ["caption", "clip.mp4"],
    "evaluate": ["evaluate", "--model", "m", "--data-dir", "d"],
    "convert wan": ["convert", "wan", "--wan", "w", "--out", "o"],
    "convert reference": ["convert", "reference", "--checkpoint", "c", "--wan", "w", "--out", "o"],
    "params": ["params"],
}
ALIASES = [
    ("generate", "--steps", "3", "num_inference_steps", 3),
    ("generate", "--frames", "9", "num_frames", 9),
    ("generate", "--guidance", "2.5", "guidance_scale", 2.5),
    ("caption", "--steps", "3", "num_inference_steps", 3),
    ("evaluate", "--pipeline", "p", "model", "p"),
    ("evaluate", "--data_dir", "data", "data_dir", "data"),
    ("evaluate", "--reference_column", "prompt", "reference_column", "prompt"),
    ("evaluate", "--video_column", "v", "video_column", "v"),
    ("evaluate", "--num_samples", "2", "num_samples", 2),
    ("evaluate", "--num_inference_steps", "4", "num_inference_steps", 4),
    ("evaluate", "--max_text_length", "16", "max_text_length", 16),
    ("evaluate", "--num_frames", "9", "num_frames", 9),
    ("evaluate", "--commit_strategy", "confidence", "commit_strategy", "confidence"),
    ("evaluate", "--video_latents_mode", "sample", "video_latents_mode", "sample"),
    ("evaluate", "--shapesworld", "yes", "shapesworld_metrics", "yes"),
    ("evaluate", "--allow_external_video_paths", None, "allow_external_video_paths", True),
    ("evaluate", "--output", "r.json", "out", "r.json"),
    ("convert wan", "--text-mask-token", None, "text_source", "mask"),
    ("convert reference", "--text-mask-token", None, "text_source", "mask"),
    ("convert reference", "--no-text-mask-token", None, "text_source", "uniform"),
    ("params", "--text-mask-token", None, "text_source", "mask"),
]


def shows(flag: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


@pytest.mark.parametrize("name,old,value,dest,expected", ALIASES, ids=[f"{a[0]} {a[1]}" for a in ALIASES])
def test_old_spellings_still_parse_and_are_hidden(name, old, value, dest, expected):
    argv = REQUIRED[name] + [old] + ([value] if value is not None else [])
    if name == "evaluate" and old in ("--pipeline", "--data_dir"):  # a required flag given by its old name only
        new = {"--pipeline": "--model", "--data_dir": "--data-dir"}[old]
        at = argv.index(new)
        del argv[at:at + 2]
    assert getattr(build_parser().parse_args(argv), dest) == expected
    assert not shows(old, SUBCOMMANDS[name].format_help())


def test_the_text_source_defaults():
    parser = build_parser()
    assert parser.parse_args(REQUIRED["convert wan"]).text_source == "uniform"
    assert parser.parse_args(REQUIRED["convert reference"]).text_source is None  # inferred from the checkpoint
    assert parser.parse_args(REQUIRED["params"]).text_source == "uniform"
    assert parser.parse_args(REQUIRED["convert wan"] + ["--text-source", "mask"]).text_source == "mask"


def test_a_missing_required_flag_is_named_by_its_new_spelling(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--data-dir", "d"])
    err = capsys.readouterr().err
    assert "--model" in err and "--pipeline" not in err


# ---------------------------------------------------------------------------------------------------- --caption


class CaptionPipe:
    """Stands in for a UniViGUPipeline in `univigu generate` and `univigu caption`: 5 frames of 16x16 noise and a
    caption, at once."""

    def __call__(self, prompt=None, generate_caption=False, generator=None, task=None, **kwargs):
        frames = np.random.default_rng(0).random((1, 5, 16, 16, 3), dtype=np.float32)
        captioned = generate_caption or task == "v2t"
        return SimpleNamespace(frames=frames, text=["a red circle moving left" if captioned else ""])


@pytest.fixture
def fake_generate(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text('{"_class_name": "UniViGUPipeline"}')
    loads = []
    monkeypatch.setattr("univigu.pipelines.cli.load_pipeline", lambda *a, **k: loads.append(1) or CaptionPipe())
    return lambda out, *extra: cli_main(["generate", "--prompt", "a red circle", "--out", str(out),
                                         "--model", str(model), *extra]), loads


def test_caption_is_written_next_to_the_clip(fake_generate, tmp_path, capsys):
    run, _ = fake_generate
    out = tmp_path / "clips" / "clip.mp4"
    out.parent.mkdir()
    assert run(out) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["clip.mp4", "clip.png"]  # no --caption: no .txt
    assert run(out, "--caption", "--overwrite") == 0
    assert (out.parent / "clip.txt").read_text() == "a red circle moving left\n"
    assert str(out.parent / "clip.txt") in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["clip.mp4", "clip.png", "clip.txt"]


def test_caption_refuses_an_existing_txt_without_overwrite(fake_generate, tmp_path):
    run, loads = fake_generate
    out = tmp_path / "clip.mp4"
    (tmp_path / "clip.txt").write_text("the user's notes")
    with pytest.raises(SystemExit) as info:
        run(out, "--caption")
    assert str(tmp_path / "clip.txt") in str(info.value.code) and "--overwrite" in str(info.value.code)
    assert (tmp_path / "clip.txt").read_text() == "the user's notes" and not out.exists() and not loads
    assert run(out) == 0  # without --caption the .txt is not an output: left alone
    assert (tmp_path / "clip.txt").read_text() == "the user's notes"
    assert run(out, "--caption", "--overwrite") == 0
    assert (tmp_path / "clip.txt").read_text() == "a red circle moving left\n"


def test_caption_with_the_bundled_checkpoint(tmp_path):
    """End to end on the bundled ShapesWorld checkpoint (CPU, a few seconds): the joint task's caption is a file."""
    out = tmp_path / "clip.mp4"
    assert cli_main(["generate", "--prompt", "a green square moving right", "--out", str(out),
                     "--num-inference-steps", "2", "--caption", "--device", "cpu"]) == 0
    text = Path(out.with_suffix(".txt")).read_text()
    assert text.endswith("\n") and text.strip()


def test_caption_command_writes_each_caption_next_to_its_video(tmp_path, monkeypatch, capsys):
    """`univigu caption --caption`: one .txt per video, checked before the model loads (an existing one is refused
    without --overwrite and nothing is captioned), written after."""
    loads = []
    monkeypatch.setattr("univigu.pipelines.cli.load_pipeline", lambda *a, **k: loads.append(1) or CaptionPipe())
    videos = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    for video in videos:
        video.write_bytes(b"not decoded: the pipeline is a stand-in")
    (tmp_path / "b.txt").write_text("the user's notes")
    with pytest.raises(SystemExit) as info:
        cli_main(["caption", *map(str, videos), "--caption"])
    assert str(tmp_path / "b.txt") in str(info.value.code) and "--overwrite" in str(info.value.code)
    assert not loads and not (tmp_path / "a.txt").exists() and (tmp_path / "b.txt").read_text() == "the user's notes"
    assert cli_main(["caption", str(videos[0])]) == 0 and not (tmp_path / "a.txt").exists()  # printed only
    assert cli_main(["caption", *map(str, videos), "--caption", "--overwrite"]) == 0
    for video in videos:
        assert video.with_suffix(".txt").read_text() == "a red circle moving left\n"
