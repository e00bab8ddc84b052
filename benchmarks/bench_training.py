#!/usr/bin/env python
# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Training throughput with precomputed latents (`--latents_cache_dir`) vs decoding + encoding every clip on the fly,
in one run, on ShapesWorld-sized clips (9 frames, 64 x 64). Goal: the cache makes steps >= 3x faster.

Both variants run the real training loop (`univigu.training.trainer.main`, Knowledge Recall, text experts
trainable) on the same data, model, batch size and seed, one after the other in this process; steps/s is measured
over the training loop only (the one-off cache build is reported separately, as is its break-even step count).

Two VAEs stand in for Wan2.1's (random weights: speed does not depend on them):
    tiny         base_dim 3, Wan's 8x spatial / 4x temporal compression -> latents 16x3x8x8, 48 video tokens
    shapesworld  base_dim 16, dim_mult [1, 2, 2], 4x spatial / 2x temporal (docs/toyworld.md's VAE for the toy world)
                 -> latents 16x5x16x16, 320 video tokens

    python benchmarks/bench_training.py                     # both VAEs, 30 steps of batch 4
    python benchmarks/bench_training.py --vae shapesworld --steps 50 --json out.json
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def build_vae(kind: str):
    import torch
    from diffusers import AutoencoderKLWan

    from univigu.toyworld.components import build_tiny_vae

    if kind == "tiny":
        return build_tiny_vae(seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return AutoencoderKLWan(
            base_dim=16, z_dim=16, dim_mult=[1, 2, 2], num_res_blocks=1, temperal_downsample=[False, True],
            scale_factor_spatial=4, scale_factor_temporal=2,
        ).eval()


def run_variant(workdir: Path, vae_kind: str, cached: bool, args) -> dict:
    from univigu.training.trainer import main as train_main
    from univigu.training.arguments import parse_args

    out = workdir / f"out-{vae_kind}-{'cached' if cached else 'on-the-fly'}"
    argv = [
        "--pretrained_model_name_or_path", str(workdir / f"wan-{vae_kind}"),
        "--train_data_dir", str(workdir / "data"),
        "--output_dir", str(out),
        "--num_frames", "9", "--height", "64", "--width", "64",
        "--max_text_length", "16", "--max_sequence_length", "32",
        "--train_batch_size", str(args.batch_size), "--max_train_steps", str(args.steps),
        "--learning_rate", "1e-3", "--checkpointing_steps", "0", "--report_to", "none", "--no_loss_plot",
        "--dataloader_num_workers", str(args.num_workers), "--seed", "0",
    ]
    cache_seconds = None
    if cached:
        cache_dir = workdir / f"cache-{vae_kind}"
        argv += ["--latents_cache_dir", str(cache_dir)]
        if not cache_dir.exists():
            # Build the cache once, outside the timed run (it is a one-off): a 1-step run creates it.
            start = time.time()
            warm = list(argv)
            warm[warm.index("--max_train_steps") + 1] = "1"
            warm[warm.index("--output_dir") + 1] = str(out) + "-warm"
            train_main(parse_args("recall", warm))
            info = json.loads((cache_dir / "univigu_latent_cache.json").read_text())
            cache_seconds = info["seconds"]
            print(f"  cache built: {info['num_rows']} clips in {cache_seconds:.1f} s "
                  f"(run incl. startup {time.time() - start:.1f} s)", file=sys.stderr)
    summary = train_main(parse_args("recall", argv))
    return {
        "steps": summary["steps_this_run"],
        "train_seconds": summary["train_seconds"],
        "steps_per_second": summary["steps_per_second"],
        "cache_build_seconds": cache_seconds,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", choices=("tiny", "shapesworld", "both"), default="both")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=4)
    parser.add_argument("--num-samples", dest="num_samples", type=int, default=32)
    parser.add_argument("--num-workers", dest="num_workers", type=int, default=0,
                        help="DataLoader workers (on-the-fly decoding overlaps with compute when > 0).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids oversubscription).")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import logging

    import torch
    from diffusers import WanPipeline

    from univigu.toyworld import make_dataset
    from univigu.toyworld.components import build_tiny_components

    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    kinds = ["tiny", "shapesworld"] if args.vae == "both" else [args.vae]
    results = {"steps": args.steps, "batch_size": args.batch_size, "num_samples": args.num_samples,
               "threads": args.threads, "num_workers": args.num_workers, "load_average_before": os.getloadavg(),
               "clip": "9 frames, 64x64 (ShapesWorld)", "vaes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        make_dataset(workdir / "data", args.num_samples, split="train", seed=0)
        for kind in kinds:
            components = build_tiny_components(seed=0)
            components["vae"] = build_vae(kind)
            WanPipeline(**components).save_pretrained(workdir / f"wan-{kind}")
            vae_params = sum(p.numel() for p in components["vae"].parameters())
            print(f"VAE {kind} ({vae_params / 1e6:.2f} M params)", file=sys.stderr)
            cached = run_variant(workdir, kind, True, args)
            print(f"  cached latents: {cached['steps_per_second']:.2f} steps/s", file=sys.stderr)
            fly = run_variant(workdir, kind, False, args)
            print(f"  on the fly:     {fly['steps_per_second']:.2f} steps/s", file=sys.stderr)
            ratio = cached["steps_per_second"] / fly["steps_per_second"]
            per_step_saving = 1 / fly["steps_per_second"] - 1 / cached["steps_per_second"]
            break_even = (cached["cache_build_seconds"] / per_step_saving) if per_step_saving > 0 else None
            results["vaes"][kind] = {
                "vae_parameters": vae_params,
                "cached": cached,
                "on_the_fly": fly,
                "speedup": round(ratio, 2),
                "goal_3x_met": ratio >= 3.0,
                "cache_pays_off_after_steps": round(break_even, 1) if break_even else None,
            }
            print(f"  speedup {ratio:.2f}x (goal >= 3x); the cache pays for itself after "
                  f"{break_even:.0f} steps" if break_even else f"  speedup {ratio:.2f}x", file=sys.stderr)
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
