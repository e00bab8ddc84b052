# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The last build stage: score stage 0 / Recall / Refine on fresh test sets, store the tuned call defaults with the
Refine pipeline and write it, with a model card and its evaluation, as the shippable folder."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import WanPipeline

from univigu.toyworld.evaluate import evaluate_pipeline, scores_only
from univigu.toyworld.world import DEFAULT_FPS, WORLD_FILENAME, get_world


#: How the shipped checkpoint samples when called with no arguments (stored as its `call_defaults`).
CALL_DEFAULTS = {
    "height": 64,
    "width": 64,
    "num_frames": 9,
    "fps": DEFAULT_FPS,  # the world's clips' rate: videos to caption are sampled at it (issue #29)
    "max_sequence_length": 32,
    "video_latents_mode": "argmax",  # the training-time rule: the VAE posterior's mode (see docs/toyworld_model.md)
    "t2v": {"num_inference_steps": 24, "guidance_scale": 5.0},
    "t2vt": {"num_inference_steps": 24, "guidance_scale": 5.0, "max_text_length": 40},
    "v2t": {"num_inference_steps": 16, "max_text_length": 40},
}
#: What the stage-0 `WanPipeline` is sampled with (it has no stored defaults).
WAN_CALL = {"height": 64, "width": 64, "num_frames": 9, "max_sequence_length": 32, "num_inference_steps": 24,
            "guidance_scale": 5.0}

SUMMARY_KEYS = ("colour_accuracy", "shape_accuracy", "motion_accuracy", "object_exact_match",
                "hallucinations_per_sample", "held_out/object_exact_match", "held_out/colour_accuracy",
                "held_out/shape_accuracy", "held_out/motion_accuracy")


def drop_config_keys(folder: Path, *keys: str) -> None:
    """Remove `keys` from a model folder's `model_index.json` and its components' `config.json`."""
    for config in [folder / "model_index.json", *folder.glob("*/config.json")]:
        if config.is_file():
            record = json.loads(config.read_text())
            if [record.pop(key) for key in keys if key in record]:
                config.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def install_folder(folder: Path, target: Path, ignore: tuple[str, ...] = (), **checksum_info) -> Path:
    """Copy a model folder into the package at `target` (a staging copy replaces the old folder only once complete),
    with a fresh `checksums.json` carrying `checksum_info`; files matching `ignore` stay behind, and so do module files
    (`save_pretrained` writes `transformer_univigu.py`) and the configs' `auto_map` naming them: the installed folder
    loads through the package."""
    from univigu.pipelines.serialization import write_checksums

    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(*ignore, "*.py", "__pycache__"))
    # `auto_map` names the module files that stay behind; `_name_or_path`, a folder of the machine that built it
    drop_config_keys(staging, "auto_map", "_name_or_path")
    write_checksums(staging, **checksum_info)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    print(f"installed {folder} into {target}")
    return target


def load_univigu(folder, call_defaults: dict | None = None):
    """A stage's pipeline; a LoRA stage (`--trainable lora` writes adapter weights and `base_model.json`, not a
    pipeline folder) is loaded onto its base model and fused, so that it is scored and shipped like the others."""
    from univigu.pipelines import UniViGUPipeline

    folder = Path(folder)
    lora_info = folder / "base_model.json"
    if not (folder / "model_index.json").exists() and lora_info.exists():
        pipe = UniViGUPipeline.from_pretrained(json.loads(lora_info.read_text())["base_model"])
        pipe.load_lora_weights(str(folder))
        pipe.fuse_lora(lora_scale=1.0)
        pipe.unload_lora_weights()  # the fused weights stay; the adapter layers go, so the folder saves as plain weights
    else:
        pipe = UniViGUPipeline.from_pretrained(str(folder))
    if call_defaults:
        pipe.set_call_defaults(**call_defaults)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def stage_call_defaults(max_text_length: int) -> dict:
    """CALL_DEFAULTS with the caption length a stage was trained at (16 for Recall's prompts, 40 for captions)."""
    defaults = json.loads(json.dumps(CALL_DEFAULTS))
    for task in ("t2vt", "v2t"):
        defaults[task]["max_text_length"] = max_text_length
    return defaults


def _trained_text_length(folder, fallback: int) -> int:
    """The caption length a trainer's output folder stores as its v2t default (the length it trained at)."""
    index = Path(folder) / "model_index.json"
    if not index.exists():
        return fallback
    v2t = (json.loads(index.read_text()).get("call_defaults") or {}).get("v2t") or {}
    return int(v2t.get("max_text_length", fallback))


def evaluate_stage(name: str, folder, num_samples: int, seed: int, tasks: tuple[str, ...],
                    version: str | None = None) -> tuple[dict, float]:
    """Scores of one stage (`stage0`: the stock WanPipeline, t2v only) and the seconds it took."""
    t0 = time.time()
    if name == "stage0":
        wan = WanPipeline.from_pretrained(str(folder))
        wan.set_progress_bar_config(disable=True)
        scores = evaluate_pipeline(wan, num_samples, tasks=("t2v",), seed=seed, version=version, **WAN_CALL)
    else:
        pipe = load_univigu(folder, stage_call_defaults(_trained_text_length(folder, 16 if name == "recall" else 40)))
        scores = evaluate_pipeline(pipe, num_samples, tasks=tasks, detailed=name == "refine", seed=seed,
                                   version=version)
    return scores_only(scores), time.time() - t0


def evaluate_stages(stage0_dir, recall_dir, refine_dir, num_samples: int = 48, seed: int = 2026,
                    tasks: Sequence[str] = ("v2t", "t2v", "t2vt"), version: str | None = None) -> dict[str, Any]:
    """Scores of stage 0 (t2v only: it is a text-to-video model) / Recall / Refine on the same fresh test sets; a
    folder given as None is skipped. (Scoring the stages side by side in two one-thread processes was tried: on 2
    cores it took 540 s, against 534 s for one process on both, with the same scores; docs/research_log.md,
    session 12.)"""
    tasks = tuple(tasks)
    results: dict[str, Any] = {"eval_seconds": {}}
    for name, folder in (("stage0", stage0_dir), ("recall", recall_dir), ("refine", refine_dir)):
        if folder is None or (name == "stage0" and "t2v" not in tasks):
            continue
        results[name], results["eval_seconds"][name] = evaluate_stage(name, folder, num_samples, seed, tasks,
                                                                       version)
    return results


def results_table(results: dict[str, Any]) -> str:
    """A markdown table of the headline scores per stage, task and object count."""
    rows = ["| stage | task | objects | colour | shape | motion | exact | held-out exact | halluc./sample |",
            "|---|---|---|---|---|---|---|---|---|"]
    for stage in ("stage0", "recall", "refine"):
        for key, scores in (results.get(stage) or {}).items():
            task, objects = key.split("/")
            if task == "t2vt":
                gen = {k.split("/", 1)[1]: v for k, v in scores.items() if k.startswith("generation/")}
                und = {k.split("/", 1)[1]: v for k, v in scores.items() if k.startswith("understanding/")}
                for label, s in (("t2vt video", gen), ("t2vt caption", und)):
                    rows.append(_row(stage, label, objects, s))
            else:
                rows.append(_row(stage, task, objects, scores))
    return "\n".join(rows)


def _row(stage, task, objects, s) -> str:
    def f(key):
        return f"{s[key]:.2f}" if key in s else "-"

    halluc = f("hallucinations_per_sample") if task != "t2v" else f("extra_objects_per_sample")
    return (f"| {stage} | {task} | {objects[0]} | {f('colour_accuracy')} | {f('shape_accuracy')} | "
            f"{f('motion_accuracy')} | {f('object_exact_match')} | {f('held_out/object_exact_match')} | {halluc} |")


MODEL_CARD = """---
library_name: diffusers
license: apache-2.0
pipeline_tag: text-to-video
tags:
- univigu
- uni-vigu
- shapesworld
- video-to-text
- text-to-video
---

# univigu ShapesWorld ({version})

A tiny but genuinely trained Uni-ViGU model of **ShapesWorld** ({version}; every constant in `shapesworld.json`),
the synthetic world of coloured shapes that univigu ships as its embedded default: one Wan-style diffusion
transformer that generates 9-frame 64x64 clips from a prompt, captions clips (video -> text) and does both at once.
It runs on a laptop CPU in seconds.

```python
from univigu import UniViGUPipeline
from univigu.toyworld import DEFAULT_CHECKPOINT

pipe = UniViGUPipeline.from_pretrained(DEFAULT_CHECKPOINT)
video = pipe(prompt="a red circle moving left").frames[0]           # (9, 64, 64, 3) in [0, 1]
caption = pipe(video=video, task="v2t").text[0]
```

Called with no size or step arguments it uses the defaults stored with it (`call_defaults` in model_index.json):
{defaults}

## How it was built

`python training/shapesworld/build.py --out DIR` ({build_line}), all with univigu's public code paths:

1. the stand-in for Wan2.1-T2V, a stock `WanPipeline`: the ShapesWorld VAE (`AutoencoderKLWan`, 4x spatial / 2x
   temporal), a word-level tokenizer, a 2-layer `UMT5EncoderModel` (d_model 64; {stage0_text_encoder}) and a flow-matching
   `WanTransformer3DModel` trained on {stage0_clips} cached clips ({stage0_line});
2. `univigu convert wan`, then Knowledge Recall (`train_recall.py`, text = prompt) and Capability Refinement
   (`train_refine.py`, text = detailed caption) with accelerate: {train_line}.

## Evaluation

Fresh seeded test sets ({num_samples} one-object and {num_samples} two-object clips from the `test` split; half of
them hold a colour-shape pair never seen in training, scored apart as "held-out"). Understanding is scored per
ground-truth object (colour, shape, motion, all three = exact); generation by the ShapesWorld analyzer. Every
number comes from the default call.

{table}

The recipe and the ablations: docs/toyworld_model.md in the univigu repository; the training logs and what did not
work: docs/research_log.md.
"""


def write_model_card(folder: Path, results: dict, build: dict, num_samples: int,
                     version: str = "shapesworld-v1") -> None:
    card = MODEL_CARD.format(
        version=version,
        defaults="`" + json.dumps(CALL_DEFAULTS) + "`",
        build_line=build.get("build_line", ""),
        stage0_clips=build.get("stage0_clips", "?"),
        stage0_line=build.get("stage0_line", ""),
        stage0_text_encoder=build.get("stage0_text_encoder", "randomly initialised, frozen"),
        train_line=build.get("train_line", ""),
        num_samples=num_samples,
        table=results_table(results),
    )
    (folder / "README.md").write_text(card)


def finalize(out: Path, stage0_dir: Path, recall_dir: Path, refine_dir: Path, final_dir: Path,
             num_samples: int = 48, seed: int = 0, build: dict | None = None,
             version: str | None = None, save_dtype: str = "float32") -> dict[str, Any]:
    if final_dir.exists():
        shutil.rmtree(final_dir)
    pipe = load_univigu(refine_dir, CALL_DEFAULTS)
    pipe.transformer.to(getattr(torch, save_dtype))
    pipe.save_pretrained(str(final_dir))
    # the Refine row scores the folder that ships (its weights as stored, its call defaults)
    results = evaluate_stages(stage0_dir, recall_dir, final_dir, num_samples=num_samples, version=version)
    (out / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    print(results_table(results))
    (final_dir / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    world = get_world(version)
    (final_dir / WORLD_FILENAME).write_text(json.dumps({"world": world.to_dict()}, indent=1) + "\n")
    write_model_card(final_dir, results, build or {}, num_samples, version=world.version)
    return results
