"""The bundled ShapesWorld stand-in (`DEFAULT_BASE_MODEL`): a released base model, as Wan2.1-T2V is for the real
recipe. It is a stock `WanPipeline` folder with its world, scores, card and checksums, and it has learned the world
(16 seeded unseen prompts drawn with the right colour and motion; thresholds a little below what this exact call
measured: colour 0.69, motion 0.62. Its shape, 0.19 here and 0.52 on the 48-clip ladder, is not asserted: it is
the rung the stand-in does not yet reach, docs/toyworld_model.md)."""

import json
from pathlib import Path

import pytest
import torch

from univigu.toyworld import DEFAULT_BASE_MODEL, score_generation, world_of_folder
from univigu.toyworld.evaluate import held_out_test_scenes
from univigu.toyworld.text import scene_to_prompt

ASSETS = Path(DEFAULT_BASE_MODEL).parent
GENERATION_COLOUR_MIN = 0.55
GENERATION_MOTION_MIN = 0.45


def test_the_stand_in_is_a_release():
    from univigu.pipelines.serialization import verify_checksums

    folder = Path(DEFAULT_BASE_MODEL)
    manifest = verify_checksums(folder)
    assert manifest is not None and manifest["world"] == "shapesworld-v2"
    assert {"model_index.json", "README.md", "shapesworld.json", "transformer/config.json"} <= set(manifest["files"])
    weights = [p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)
    assert world_of_folder(folder).version == "shapesworld-v2"
    record = json.loads((folder / "shapesworld.json").read_text())
    assert record["world"]["sizes"] == {"small": 20, "large": 28} and record["world"]["speed"] == 2
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: diffusers" in card and "pipeline_tag: text-to-video" in card
    # the whole package's assets stay small enough to ship inside it
    assert sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file()) < 40 * 2**20


@pytest.fixture(scope="module")
def wan():
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(DEFAULT_BASE_MODEL)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_stand_in_draws_what_it_is_asked(wan):
    scenes = held_out_test_scenes(16, 1, seed=41, version="shapesworld-v2")
    frames = wan([scene_to_prompt(s) for s in scenes], height=64, width=64, num_frames=9, num_inference_steps=24,
                 guidance_scale=5.0, max_sequence_length=32, generator=torch.Generator().manual_seed(0),
                 output_type="np").frames
    scores = score_generation(list(frames), scenes)
    assert scores["colour_accuracy"] >= GENERATION_COLOUR_MIN, scores
    assert scores["motion_accuracy"] >= GENERATION_MOTION_MIN, scores
