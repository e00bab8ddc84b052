"""Step caching (diffusers' `enable_cache`) on the bundled ShapesWorld checkpoint: t2v wall time and analyzer scores
for each cache config at two settings, against no cache (issue #30, item 1; table in docs/benchmarks.md).

Each config runs `evaluate_pipeline(tasks=("t2v",))` on the same held-out prompts (`--num-samples` one-object plus as
many two-object prompts) with the checkpoint's defaults (24 steps, guidance 5, the text stream on: the joint
sequence), seeded identically. Reported per config: wall time of the t2v calls, its ratio to no cache, the analyzer's
accuracies (colour, shape, motion, exact objects; one- and two-object prompts pooled) and the mean absolute pixel
difference to the uncached videos (0-255 scale).

UniViGUPipeline enters `transformer.cache_context("cond" / "uncond", step_index=..., sigma=...,
num_inference_steps=...)` around its two guidance calls, as WanPipeline does, so every config runs on the pipeline
as it is.

    nice -n 10 python benchmarks/bench_step_cache.py                  # 8 prompts
    python benchmarks/bench_step_cache.py --num-samples 24 --json out.json
"""

import argparse
import ast
import contextlib
import io
import json
import time

import numpy as np
import torch
from diffusers import hooks

from univigu import UniViGUPipeline
from univigu.toyworld import DEFAULT_CHECKPOINT
from univigu.toyworld.evaluate import evaluate_pipeline


SCORES = ("colour_accuracy", "shape_accuracy", "motion_accuracy", "object_exact_match")


def calibrate_mag_ratios(pipe, steps, **run_kwargs):
    """MagCache's ratios for this checkpoint: a calibration run (diffusers prints them; the first list is kept)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run(pipe, hooks.MagCacheConfig(calibrate=True, num_inference_steps=steps), **run_kwargs)
    lists = [ast.literal_eval(line) for line in printed.getvalue().splitlines() if line.startswith("[") and
             not line.startswith("[MagCache]")]
    return lists[0]


def cache_configs(pipe, steps, mag_ratios):
    """(name, setting, factory) for every config, two settings each: the milder one first."""
    clock = lambda: pipe.current_timestep  # noqa: E731
    rows = []
    for threshold in (0.05, 0.1):
        rows.append(("FirstBlockCache", f"threshold={threshold}", lambda t=threshold: hooks.FirstBlockCacheConfig(t)))
    for threshold in (0.06, 0.12):
        rows.append(("MagCache", f"threshold={threshold}", lambda t=threshold: hooks.MagCacheConfig(
            threshold=t, num_inference_steps=steps, mag_ratios=list(mag_ratios))))
    for threshold in (0.25, 0.5):
        rows.append(("SeaCache", f"threshold={threshold}", lambda t=threshold: hooks.SeaCacheConfig(threshold=t)))
    for interval in (2, 4):
        rows.append(("TaylorSeer (lite)", f"cache_interval={interval}", lambda n=interval: hooks.TaylorSeerCacheConfig(
            cache_interval=n, disable_cache_before_step=3, taylor_factors_dtype=torch.float32, use_lite_mode=True)))
    for skip in (2, 4):
        rows.append(("PyramidAttentionBroadcast", f"skip={skip}", lambda n=skip: hooks.PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=n, cross_attention_block_skip_range=2 * n,
            spatial_attention_timestep_skip_range=(100, 900), cross_attention_timestep_skip_range=(100, 900),
            current_timestep_callback=clock)))
    # FasterCache approximates the uncond half of a batched cond/uncond call, which neither WanPipeline nor
    # UniViGUPipeline makes: its attention reuse only (`is_guidance_distilled=True`) is what runs here
    for skip in (2, 4):
        rows.append(("FasterCache (attention)", f"skip={skip}", lambda n=skip: hooks.FasterCacheConfig(
            spatial_attention_block_skip_range=n, spatial_attention_timestep_skip_range=(-1, 900),
            is_guidance_distilled=True, attention_weight_callback=lambda _: 0.5, current_timestep_callback=clock)))
    return rows


def run(pipe, config, num_samples, seed, text_stream):
    """One t2v evaluation with `config` (None: no cache); returns the wall time, the pooled scores and the videos."""
    if config is not None:
        pipe.transformer.enable_cache(config)
    try:
        start = time.perf_counter()
        results = evaluate_pipeline(pipe, num_samples, tasks=("t2v",), seed=seed, text_stream=text_stream)
        seconds = time.perf_counter() - start
    finally:
        if config is not None:
            pipe.transformer.disable_cache()
    parts = [results[f"t2v/{n}obj"] for n in (1, 2)]
    objects = sum(p["scores"]["num_objects"] for p in parts)
    scores = {k: sum(p["scores"][k] * p["scores"]["num_objects"] for p in parts) / objects for k in SCORES}
    videos = np.concatenate([np.stack(p["videos"]) for p in parts])
    return seconds, scores, videos


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=4, help="prompts per object count (one and two objects)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--text-stream", choices=("on", "off"), default="on")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    pipe = UniViGUPipeline.from_pretrained(DEFAULT_CHECKPOINT)
    pipe.set_progress_bar_config(disable=True)
    steps = pipe.config.call_defaults["t2v"]["num_inference_steps"]
    run_kwargs = dict(num_samples=args.num_samples, seed=args.seed, text_stream=args.text_stream == "on")

    pipe("a red circle moving left", num_inference_steps=2, output_type="latent")  # warm-up
    base_seconds, base_scores, base_videos = run(pipe, None, **run_kwargs)
    rows = [dict(cache="none", setting="", seconds=base_seconds, speedup=1.0, pixel_diff=0.0, **base_scores)]
    mag_ratios = calibrate_mag_ratios(pipe, steps, **{**run_kwargs, "num_samples": 1})
    for name, setting, make in cache_configs(pipe, steps, mag_ratios):
        seconds, scores, videos = run(pipe, make(), **run_kwargs)
        diff = float(np.abs(videos.astype(np.float32) - base_videos.astype(np.float32)).mean())
        rows.append(dict(cache=name, setting=setting, seconds=seconds, speedup=base_seconds / seconds,
                         pixel_diff=diff, **scores))
        print(f"{name} {setting}: {seconds:.1f} s", flush=True)

    prompts = 2 * args.num_samples
    print(f"\nt2v, {prompts} prompts, {steps} steps, text stream {args.text_stream}, "
          f"{torch.get_num_threads()} threads\n")
    print("| cache | setting | t2v wall time (s) | speed-up | colour | shape | motion | exact | pixel diff |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['cache']} | {r['setting']} | {r['seconds']:.1f} | {r['speedup']:.2f}x | "
              f"{r['colour_accuracy']:.2f} | {r['shape_accuracy']:.2f} | {r['motion_accuracy']:.2f} | "
              f"{r['object_exact_match']:.2f} | {r['pixel_diff']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "steps": steps, "mag_ratios": mag_ratios, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
