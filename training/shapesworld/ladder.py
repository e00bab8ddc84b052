# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The stand-in's ladder, scored by the project's analyzer on fresh seeded test clips (48 one-object + 48 two-object
by default; in the test split every other clip holds a held-out colour-shape pair).

    python training/shapesworld/ladder.py L1 --vae VAE_DIR --world shapesworld-v2      # VAE reconstructions
    python training/shapesworld/ladder.py L2 --base BASE_DIR                           # the stand-in's t2v
    python training/shapesworld/ladder.py L3 --checkpoint DIR --base BASE_DIR          # UniViGU: rungs L3-L6

L1: encode (posterior mode, as every stage trains on) and decode; goal colour / shape / motion >= 0.99 / 0.97 / 0.99
for one and two objects. L2: stock `WanPipeline` text -> video (24 Euler steps, guidance 5, the umT5 length the
stand-in was trained at); goal one object >= 0.95 / 0.90 / 0.90, two objects exact >= 0.60.
L3-L6 score a UniViGU checkpoint with its default calls: L3 captions (v2t exact >= 0.90 one object, >= 0.70 two,
invented objects <= 0.1 per clip); L4 the prior kept (its t2v against the stand-in's, same clips and noise, every
attribute within 0.05); L5 held-out colour-shape pairs against the other objects (v2t exact within 0.10); L6
captions that are sentences of the template's grammar, one object (>= 0.90).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from diffusers import AutoencoderKLWan, WanPipeline

from univigu.toyworld.evaluate import CHECKPOINT_GOALS, evaluate_pipeline, held_out_test_scenes, scores_only
from univigu.toyworld.scoring import score_generation
from univigu.toyworld.text import scene_to_prompt
from univigu.toyworld.world import WORLDS, render_scene

from package import evaluate_stage, load_univigu
from pretrain_generator import SHAPESWORLD_SEQUENCE_LENGTH, evaluate_generator
from pretrain_vae import reconstruct

GOALS = {
    "L1": {n: {"colour_accuracy": 0.99, "shape_accuracy": 0.97, "motion_accuracy": 0.99} for n in (1, 2)},
    # the stand-in's text -> video is held to the same goals as the checkpoint's
    "L2": {n: {score: goal for key, score, goal in CHECKPOINT_GOALS if key == f"t2v/{n}obj"} for n in (1, 2)},
}
KEYS = ("colour_accuracy", "shape_accuracy", "motion_accuracy", "object_exact_match", "held_out/object_exact_match",
        "extra_objects_per_sample")


def test_scenes(num_samples: int, num_objects: int, world: str, seed: int):
    """The evaluation's test clips (`univigu.toyworld.evaluate`, as `benchmarks/toy_eval.py` scores them)."""
    return held_out_test_scenes(num_samples, num_objects, seed=seed, version=world)


def score_l1(vae_dir: str, world: str, num_samples: int, seed: int) -> dict:
    vae = AutoencoderKLWan.from_pretrained(vae_dir).eval()
    rows = {}
    for n in (1, 2):
        scenes = test_scenes(num_samples, n, world, seed)
        videos = np.stack([render_scene(s) for s in scenes])
        recons, _ = reconstruct(vae, videos)
        rows[n] = score_generation(list(recons), scenes)
    return rows


def score_l2(base_dir: str, world: str, num_samples: int, seed: int, steps: int, guidance: float) -> dict:
    pipe = WanPipeline.from_pretrained(base_dir)
    pipe.set_progress_bar_config(disable=True)
    rows = {}
    for n in (1, 2):
        scenes = test_scenes(num_samples, n, world, seed)
        rows[n] = evaluate_generator(pipe, [scene_to_prompt(s) for s in scenes], scenes, steps, guidance,
                                     max_sequence_length=SHAPESWORLD_SEQUENCE_LENGTH)
    return rows


ATTRIBUTES = ("colour_accuracy", "shape_accuracy", "motion_accuracy")


def score_upper_rungs(checkpoint: str, base_dir: str, world: str, num_samples: int, seed: int) -> dict:
    """L3-L6 of a UniViGU checkpoint: its captions (detailed) and videos, and the stand-in's videos on the same
    clips with the same noise (`evaluate_pipeline` seeds both alike), each with its default call."""
    pipe = load_univigu(checkpoint)
    ours = scores_only(evaluate_pipeline(pipe, num_samples, tasks=("v2t", "t2v"), detailed=True, seed=seed,
                                         version=world))
    base, _ = evaluate_stage("stage0", base_dir, num_samples, seed, ("t2v",), world)  # as the build scores it
    return {**ours, **{f"stand-in/{key}": value for key, value in base.items()}}


def upper_rung_checks(scores: dict) -> list[tuple[str, str, float, str, bool]]:
    """(rung, what, value, goal, met) for L3-L6."""
    checks = []
    for n, goal in ((1, 0.90), (2, 0.70)):
        exact = scores[f"v2t/{n}obj"]["object_exact_match"]
        checks.append(("L3", f"v2t exact, {n} object(s)", exact, f">= {goal}", exact >= goal))
        invented = scores[f"v2t/{n}obj"]["hallucinations_per_sample"]
        checks.append(("L3", f"invented objects per clip, {n} object(s)", invented, "<= 0.1", invented <= 0.1))
    for n in (1, 2):
        for key in ATTRIBUTES + ("object_exact_match",):
            gap = scores[f"t2v/{n}obj"][key] - scores[f"stand-in/t2v/{n}obj"][key]
            name = "exact" if key == "object_exact_match" else key.split("_")[0]
            checks.append(("L4", f"t2v {name} - stand-in's, {n} object(s)", gap, "within 0.05",
                           abs(gap) <= 0.05))
    for n in (1, 2):
        v2t = scores[f"v2t/{n}obj"]
        gap = v2t.get("held_out/object_exact_match", float("nan")) - v2t.get("seen/object_exact_match", float("nan"))
        checks.append(("L5", f"v2t exact, held-out pairs - others, {n} object(s)", gap, "within 0.10",
                       abs(gap) <= 0.10))
    rate = scores["v2t/1obj"]["template_rate"]
    checks.append(("L6", "captions in the template's grammar, 1 object", rate, ">= 0.90", rate >= 0.90))
    return checks


def report_upper(scores: dict) -> str:
    lines = ["rung | what | value | goal | met"]
    lines += [f"{rung} | {what} | {value:{'+' if goal.startswith('within') else ''}.2f} | {goal} | "
              f"{'met' if met else 'NOT met'}"
              for rung, what, value, goal, met in upper_rung_checks(scores)]
    return "\n".join(lines)


def report(rung: str, rows: dict) -> str:
    lines = [f"{rung}: objects | colour | shape | motion | exact | held-out exact | invented/clip | goal"]
    for n, scores in rows.items():
        goal = GOALS[rung][n]
        met = all(scores[k] >= v for k, v in goal.items())
        goal_text = ", ".join(f"{k.split('_')[0]} >= {v}" for k, v in goal.items())
        values = " | ".join(f"{scores.get(k, float('nan')):.2f}" for k in KEYS)
        lines.append(f"{n} | {values} | {goal_text}: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rung", choices=("L1", "L2", "L3"), help="L1, L2, or L3 for the checkpoint's rungs L3-L6")
    p.add_argument("--vae", help="L1: the VAE folder")
    p.add_argument("--base", help="L2, L3: the stand-in WanPipeline folder")
    p.add_argument("--checkpoint", help="L3: the UniViGU folder built from --base")
    p.add_argument("--world", default="shapesworld-v2", choices=tuple(WORLDS))
    p.add_argument("--num-samples", type=int, default=48, help="clips per object count")
    p.add_argument("--seed", type=int, default=2026, help="the test clips' seed (fresh: not the probes' or train's)")
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="append the scores here (JSON lines)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    if args.rung == "L1":
        if not args.vae:
            p.error("L1 needs --vae")
        rows = score_l1(args.vae, args.world, args.num_samples, args.seed)
    elif args.rung == "L2":
        if not args.base:
            p.error("L2 needs --base")
        rows = score_l2(args.base, args.world, args.num_samples, args.seed, args.steps, args.guidance)
    else:
        if not (args.base and args.checkpoint):
            p.error("L3 needs --checkpoint and --base")
        rows = score_upper_rungs(args.checkpoint, args.base, args.world, args.num_samples, args.seed)
    print(report_upper(rows) if args.rung == "L3" else report(args.rung, rows))
    print(f"({time.time() - t0:.0f} s)")
    if args.json:
        record = {"rung": args.rung, "world": args.world, "model": args.checkpoint or args.vae or args.base,
                  "seed": args.seed,
                  "num_samples": args.num_samples, "scores": {str(n): r for n, r in rows.items()}}
        with open(args.json, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
