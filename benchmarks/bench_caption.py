"""Fast understanding: FLOPs, wall-clock and accuracy of video -> text with the video key/value cache.

    python benchmarks/bench_caption.py                      # full-config FLOPs + the bundled ShapesWorld checkpoint
    python benchmarks/bench_caption.py --samples 48 --json out.json

1. FLOPs per caption (`torch.utils.flop_counter.FlopCounterMode`) of the transformer at the full Wan2.1-T2V-1.3B
   config on the meta device (81 x 480 x 832 -> 32,760 video tokens; the reference's 128 text tokens and 50 steps):
   one full joint step and one cached (text-only) step are counted, and every setting's total follows from its
   number of refresh steps. The VAE encode (the same for every setting) is left out.
2. On the bundled ShapesWorld checkpoint: FLOPs per caption counted on real runs, wall-clock per caption (side by
   side in this one run, same thread count), and accuracy (object exact-match and attributes, one- and two-object
   test clips, held-out colour-shape pairs apart) for each setting.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def full_config_step_flops(text_length: int = 128, num_frames: int = 81, height: int = 480, width: int = 832):
    """FLOPs of one exact (full joint) v2t step and of one cached text-only step, Wan2.1-1.3B config, meta device."""
    from univigu.models.parameter_report import build_on_meta

    model = build_on_meta().eval()
    cfg = model.config
    latent = (cfg.in_channels, (num_frames - 1) // 4 + 1, height // 8, width // 8)
    with torch.device("meta"):
        video = torch.empty(1, *latent)
        text = torch.zeros(1, text_length, dtype=torch.long)
        t = torch.zeros(1)
    # (The meta tensors hold no values, so the range checks on text ids are skipped by building them on meta.)
    cache = model.video_kv_cache()
    with torch.no_grad():
        full = count_flops(lambda: model(hidden_states=video, timestep=t, text_ids=text, text_timestep=t,
                                         attention_kwargs={"video_kv_cache": cache}))
        cache.refresh = False
        cached = count_flops(lambda: model(text_ids=text, text_timestep=t, attention_kwargs={"video_kv_cache": cache}))
    num_video_tokens = latent[1] * (latent[2] // 2) * (latent[3] // 2)
    return {"full_step": full, "cached_step": cached, "video_tokens": num_video_tokens, "text_tokens": text_length}


def refreshes(num_steps: int, interval: int | None) -> int:
    if interval is None:
        return num_steps
    return len(range(0, num_steps, interval))


def caption_flops(step: dict[str, int], num_steps: int, interval: int | None) -> int:
    r = refreshes(num_steps, interval)
    return r * step["full_step"] + (num_steps - r) * step["cached_step"]


SETTINGS: list[dict[str, Any]] = [
    {"name": "exact", "kwargs": {}},
    {"name": "cache k=2", "kwargs": {"video_cache_interval": 2}},
    {"name": "cache k=4", "kwargs": {"video_cache_interval": 4}},
    {"name": "cache k=8", "kwargs": {"video_cache_interval": 8}},
    {"name": "cache never", "kwargs": {"video_cache_interval": 10_000}},
    {"name": "confidence", "kwargs": {"commit_strategy": "confidence"}},
    {"name": "confidence, half steps", "kwargs": {"commit_strategy": "confidence"}, "step_factor": 0.5},
    {"name": "half steps", "kwargs": {}, "step_factor": 0.5},
    {"name": "half steps, cache never", "kwargs": {"video_cache_interval": 10_000}, "step_factor": 0.5},
    {"name": "fast preset", "kwargs": "FAST"},
    {"name": "video_prefix (untrained for it)", "kwargs": {"understanding_attention": "video_prefix"}},
]


def setting_kwargs(setting, pipe, fast_preset):
    kwargs = dict(fast_preset(pipe) if setting["kwargs"] == "FAST" else setting["kwargs"])
    steps = pipe.call_default("num_inference_steps", "v2t")
    if "step_factor" in setting:
        kwargs["num_inference_steps"] = max(1, int(round(steps * setting["step_factor"])))
    kwargs.setdefault("num_inference_steps", steps)
    return kwargs


def shapesworld(samples: int, batch_size: int, settings=SETTINGS, repeats: int = 5):
    from univigu import UniViGUPipeline
    from univigu.pipelines.presets import fast_caption_kwargs
    from univigu.toyworld import DEFAULT_CHECKPOINT, render_scene, score_understanding
    from univigu.toyworld.evaluate import held_out_test_scenes

    pipe = UniViGUPipeline.from_pretrained(DEFAULT_CHECKPOINT)
    pipe.set_progress_bar_config(disable=True)
    sets = {n: held_out_test_scenes(samples, num_objects=n, seed=2026) for n in (1, 2)}
    videos = {n: np.stack([render_scene(s) for s in scenes]) for n, scenes in sets.items()}
    rows = []
    for setting in settings:
        kwargs = setting_kwargs(setting, pipe, fast_caption_kwargs)
        # FLOPs of one caption (one video), counted on a real run
        flops = count_flops(lambda: pipe(video=videos[1][:1], task="v2t", generator=torch.Generator().manual_seed(0),
                                          **kwargs))
        row = {"setting": setting["name"], "kwargs": kwargs, "flops": flops}
        for n, scenes in sets.items():
            captions = []
            for start in range(0, samples, batch_size):
                chunk = videos[n][start:start + batch_size]
                generators = [torch.Generator().manual_seed(start + i) for i in range(len(chunk))]
                captions += pipe(video=chunk, task="v2t", generator=generators, **kwargs).text
            score = score_understanding(captions, scenes)
            row[f"{n}obj"] = {k: score[k] for k in ("object_exact_match", "colour_accuracy", "shape_accuracy",
                                                     "motion_accuracy", "hallucinations_per_sample",
                                                     "held_out/object_exact_match")}
        rows.append(row)
        print(f"{row['setting']:<34} {row['flops'] / 1e9:8.3f} GFLOP  "
              f"exact 1-obj {row['1obj']['object_exact_match']:.3f} 2-obj {row['2obj']['object_exact_match']:.3f}",
              flush=True)
    # Wall-clock: the settings take turns on the same batch, `repeats` rounds, and each keeps its fastest round, so
    # that load from other processes on the machine hits every setting alike.
    batch = videos[1][:batch_size]
    times = {row["setting"]: [] for row in rows}
    for _ in range(repeats):
        for row in rows:
            generators = [torch.Generator().manual_seed(i) for i in range(len(batch))]
            start = time.perf_counter()
            pipe(video=batch, task="v2t", generator=generators, **row["kwargs"])
            times[row["setting"]].append((time.perf_counter() - start) / len(batch))
    for row in rows:
        row["seconds_per_caption"] = min(times[row["setting"]])
    base = rows[0]
    for row in rows:
        row["flops_ratio"] = base["flops"] / row["flops"]
        row["speedup"] = base["seconds_per_caption"] / row["seconds_per_caption"]
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=48, help="test clips per object count")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="timing rounds (each setting keeps its fastest)")
    parser.add_argument("--skip-shapesworld", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from univigu.pipelines.presets import fast_caption_kwargs

    report: dict[str, Any] = {}
    step = full_config_step_flops()
    report["full_config"] = {"step": step, "settings": []}
    print(f"Wan2.1-1.3B config, 81x480x832 ({step['video_tokens']} video tokens) + {step['text_tokens']} text tokens: "
          f"full step {step['full_step'] / 1e12:.2f} TFLOP, cached text-only step {step['cached_step'] / 1e12:.4f} "
          f"TFLOP ({step['full_step'] / step['cached_step']:.0f}x less)")

    class _Reference:  # the reference's v2t call: 50 steps
        @staticmethod
        def call_default(name, task):
            return {"num_inference_steps": 50}[name]

    exact = caption_flops(step, 50, None)
    print(f"\n{'setting (50 reference steps)':<34} {'TFLOP/caption':>14} {'ratio':>7}")
    for setting in SETTINGS:
        if "understanding_attention" in str(setting["kwargs"]):
            continue
        kwargs = setting_kwargs(setting, _Reference, fast_caption_kwargs)
        flops = caption_flops(step, kwargs["num_inference_steps"], kwargs.get("video_cache_interval"))
        report["full_config"]["settings"].append({"setting": setting["name"], "kwargs": kwargs, "flops": flops,
                                                  "flops_ratio": exact / flops})
        print(f"{setting['name']:<34} {flops / 1e12:14.1f} {exact / flops:7.1f}x")

    if not args.skip_shapesworld:
        print(f"\nbundled ShapesWorld checkpoint, {args.samples} + {args.samples} test clips, "
              f"{args.threads} thread(s), batch {args.batch_size}:")
        report["shapesworld"] = shapesworld(args.samples, args.batch_size, repeats=args.repeats)
        print(f"\n{'setting':<34} {'GFLOP':>8} {'ratio':>6} {'speed':>6} {'1-obj exact':>11} {'held-out':>8} "
              f"{'2-obj exact':>11}")
        for row in report["shapesworld"]:
            print(f"{row['setting']:<34} {row['flops'] / 1e9:8.3f} {row['flops_ratio']:5.1f}x {row['speedup']:5.1f}x "
                  f"{row['1obj']['object_exact_match']:11.3f} {row['1obj']['held_out/object_exact_match']:8.3f} "
                  f"{row['2obj']['object_exact_match']:11.3f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
