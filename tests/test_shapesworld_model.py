"""The bundled ShapesWorld checkpoint: it loads with no download, samples with its stored defaults, reads videos the
way training did, and has learned its world (thresholds a little below what the build measured, docs/toyworld_model.md),
so that a regression anywhere in the stack (model, schedulers, pipeline, VAE handling) shows up here."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from univigu import UniViGUPipeline
from univigu.toyworld import DEFAULT_CHECKPOINT, render_scene, score_generation, score_understanding, world_of_folder
from univigu.toyworld.evaluate import caption_videos, generate_videos, held_out_test_scenes
from univigu.toyworld.text import scene_to_prompt

WORLD = world_of_folder(DEFAULT_CHECKPOINT).version  # the world the checkpoint was trained on


@pytest.fixture(scope="module")
def pipe():
    pipe = UniViGUPipeline.from_pretrained(DEFAULT_CHECKPOINT)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_bundled_checkpoint_is_small_safetensors_with_a_card():
    from pathlib import Path

    folder = Path(DEFAULT_CHECKPOINT)
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: diffusers" in card and "| stage |" in card


def test_bundled_checkpoint_carries_no_code_and_loads_through_the_package(pipe):
    """The model code is written once (issue #31): the folder holds weights and configs, the classes are univigu's.
    Exported, the folder gets the module files from the package (tests/test_transformer.py)."""
    from pathlib import Path

    from univigu.models.transformer_univigu import UniViGUTransformer3DModel

    assert not list(Path(DEFAULT_CHECKPOINT).rglob("*.py"))
    assert type(pipe.transformer) is UniViGUTransformer3DModel


def test_installing_a_checkpoint_leaves_its_module_files_behind(tmp_path):
    """The build installs a `save_pretrained` folder, which carries `transformer_univigu.py`: the copy stays out."""
    from package import install_folder

    from univigu.models.transformer_univigu import UniViGUTransformer3DModel
    from univigu.pipelines.serialization import verify_checksums

    model = UniViGUTransformer3DModel(num_attention_heads=2, attention_head_dim=8, text_dim=8, freq_dim=8, ffn_dim=16,
                                      num_layers=1, rope_max_seq_len=16, vocab_size=10)
    model.save_pretrained(tmp_path / "built" / "transformer")
    assert (tmp_path / "built" / "transformer" / "transformer_univigu.py").is_file()
    config = tmp_path / "built" / "transformer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "_name_or_path": "/home/someone/run"}))
    target = install_folder(tmp_path / "built", tmp_path / "installed", world="test")
    assert not list(target.rglob("*.py")) and (target / "transformer" / "config.json").is_file()
    assert "_name_or_path" not in json.loads((target / "transformer" / "config.json").read_text())
    assert not [name for name in verify_checksums(target)["files"] if name.endswith(".py")]


def test_bundled_folders_name_no_folder_of_the_machine_that_built_them():
    """`save_pretrained` records where a model was loaded from (`_name_or_path`); the build drops it on install."""
    from univigu.toyworld import DEFAULT_BASE_MODEL, DEFAULT_VAE

    for folder in (Path(DEFAULT_CHECKPOINT), Path(DEFAULT_BASE_MODEL), Path(DEFAULT_VAE)):
        for config in [folder / "model_index.json", folder / "config.json", *folder.glob("*/config.json")]:
            if config.is_file():
                recorded = json.loads(config.read_text()).get("_name_or_path", "")
                assert "/" not in recorded and "\\" not in recorded, config


def test_default_call_uses_the_checkpoint_defaults(pipe):
    defaults = pipe.config.call_defaults
    assert defaults["height"] == 64 and defaults["width"] == 64 and defaults["num_frames"] == 9
    assert defaults["video_latents_mode"] == "argmax"
    frames = pipe(prompt="a red circle moving left", generator=torch.Generator().manual_seed(0)).frames
    assert frames.shape == (1, 9, 64, 64, 3)


def test_default_v2t_matches_training_time_validation(pipe):
    """The trainer validates with `video_latents_mode="argmax"` and the trained text length; the default call must
    read a video exactly that way (the checkpoint records the rule)."""
    video = render_scene(held_out_test_scenes(1, 1, seed=5, version=WORLD)[0])
    default = pipe(video=video, task="v2t", generator=torch.Generator().manual_seed(0)).text
    as_trained = pipe(video=video, task="v2t", generator=torch.Generator().manual_seed(0), video_latents_mode="argmax",
                      max_text_length=pipe.config.call_defaults["v2t"]["max_text_length"]).text
    assert default == as_trained


def test_captions_of_unseen_one_object_videos(pipe):
    scenes = held_out_test_scenes(20, 1, seed=31, version=WORLD)
    texts = caption_videos(pipe, [render_scene(s) for s in scenes])
    scores = score_understanding(texts, scenes)
    assert scores["object_exact_match"] >= UNDERSTANDING_EXACT_MIN, (scores, texts)
    assert scores["colour_accuracy"] >= UNDERSTANDING_COLOUR_MIN, scores
    assert scores["motion_accuracy"] >= UNDERSTANDING_MOTION_MIN, scores


def test_captions_of_unseen_two_object_videos(pipe):
    scenes = held_out_test_scenes(12, 2, seed=32, version=WORLD)
    texts = caption_videos(pipe, [render_scene(s) for s in scenes])
    scores = score_understanding(texts, scenes)
    assert scores["attribute_accuracy"] >= UNDERSTANDING_TWO_OBJECT_ATTRIBUTE_MIN, (scores, texts)


def test_generated_videos_show_the_prompted_colour_and_motion(pipe):
    """Shape is not asserted: the stand-in draws the prompted shape in about half the clips, and a quarter of them
    come out empty (docs/toyworld_model.md), so a 16-prompt shape score is too noisy to guard."""
    scenes = held_out_test_scenes(16, 1, seed=33, version=WORLD)
    videos = generate_videos(pipe, [scene_to_prompt(s) for s in scenes])
    scores = score_generation(videos, scenes)
    assert scores["colour_accuracy"] >= GENERATION_COLOUR_MIN, scores
    assert scores["motion_accuracy"] >= GENERATION_MOTION_MIN, scores


def test_joint_returns_a_video_and_a_caption(pipe):
    out = pipe(prompt="a blue circle moving up", generate_caption=True, generator=torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 9, 64, 64, 3)
    assert isinstance(out.text[0], str) and out.text[0].strip()


@pytest.fixture
def damaged_copy(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(DEFAULT_CHECKPOINT, folder)
    return folder


def test_truncated_weights_fail_with_a_clear_message(damaged_copy):
    weights = damaged_copy / "transformer" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match=r"transformer/diffusion_pytorch_model.safetensors: .*truncated.*reinstall"):
        UniViGUPipeline.from_pretrained(str(damaged_copy))


def test_missing_file_fails_with_a_clear_message(damaged_copy):
    (damaged_copy / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(OSError, match=r"vae/diffusion_pytorch_model.safetensors: missing"):
        UniViGUPipeline.from_pretrained(str(damaged_copy))


def test_checkpoint_from_a_newer_version_is_refused(damaged_copy):
    manifest_path = damaged_copy / "checksums.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["checkpoint_format"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(OSError, match="upgrade univigu"):
        UniViGUPipeline.from_pretrained(str(damaged_copy))


def test_cli_generate_then_caption(tmp_path, capsys):
    from univigu.cli import main

    clip = tmp_path / "clip.mp4"
    assert main(["generate", "--prompt", "a green square moving right", "--out", str(clip),
                 "--num-inference-steps", "8"]) == 0
    assert clip.exists() and clip.with_suffix(".png").exists()
    printed = capsys.readouterr().out
    assert str(clip) in printed
    assert main(["caption", str(clip)]) == 0
    caption = capsys.readouterr().out.strip()
    assert caption and all(word.isalpha() or word == "." for word in caption.replace(".", " . ").split())


def test_cli_refuses_an_empty_prompt(tmp_path):
    from univigu.cli import main

    with pytest.raises(SystemExit, match="prompt is empty"):
        main(["generate", "--prompt", "  ", "--out", str(tmp_path / "x.mp4")])


# Measured on the shipped checkpoint (shapesworld-v2, the recipe from the bundled stand-in, session 16) with these
# tests' own seeded sets: one-object v2t colour 1.00, motion 0.95, exact 0.45 (20 clips; 0.40 on the build's 48);
# two-object attributes 0.43 (12 clips); t2v colour 0.75, motion 0.75 (16 prompts; 0.81 / 0.75 on the build's 48).
# Set a little below, so that a regression anywhere in the stack shows up (an untrained or broken model scores ~0.17
# colour and 0 exact on v2t, and ~0.0-0.17 colour and motion on t2v).
UNDERSTANDING_EXACT_MIN = 0.3
UNDERSTANDING_COLOUR_MIN = 0.9
UNDERSTANDING_MOTION_MIN = 0.85
UNDERSTANDING_TWO_OBJECT_ATTRIBUTE_MIN = 0.35
GENERATION_COLOUR_MIN = 0.6
GENERATION_MOTION_MIN = 0.6


def test_cli_evaluate_captions_at_the_checkpoint_s_own_settings(tmp_path, pipe, caplog):
    """`univigu evaluate` without length or step flags captions as the checkpoint was trained and tuned (its
    call_defaults: 40 tokens, 16 steps), so it neither warns about the length nor scores another setting."""
    from univigu.cli import main
    from univigu.toyworld import make_dataset

    data = make_dataset(tmp_path / "data", num_samples=2, split="test", seed=3, version=WORLD)
    assert main(["evaluate", "--model", DEFAULT_CHECKPOINT, "--data-dir", str(data), "--out",
                 str(tmp_path / "eval.json")]) == 0
    settings = json.loads((tmp_path / "eval.json").read_text())["settings"]
    v2t = pipe.config.call_defaults["v2t"]
    assert (settings["max_text_length"], settings["num_inference_steps"]) == (v2t["max_text_length"],
                                                                              v2t["num_inference_steps"])
    assert settings["video_latents_mode"] == "argmax"
    assert "max_text_length" not in caplog.text
