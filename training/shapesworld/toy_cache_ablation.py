"""The exact variant of fast captioning, as an ablation on ShapesWorld: fine-tune the same model for the same budget
with the reference's full attention and with `--understanding_attention video_prefix` (video tokens do not attend to
the text in understanding views), then caption fresh test clips with the exact sampler and with the video cache.

    python training/shapesworld/toy_cache_ablation.py --data BUILD/data --out runs/cache_ablation --steps 600 \\
        [--start PATH]

Each run is a real `accelerate launch training/train_refine.py` (the build's flags: 2 CPU processes, latents cached
once), starting from `--start` (default: the bundled checkpoint). Prints the table of docs/benchmarks.md and writes
OUT/cache_ablation.json.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


SAMPLERS = {"exact": {}, "cache k=4": {"video_cache_interval": 4}, "cache never": {"video_cache_interval": 10_000}}


def caption_scores(pipe, scenes, **kwargs):
    from univigu.toyworld import render_scene, score_understanding

    videos = np.stack([render_scene(s) for s in scenes])
    captions = []
    for start in range(0, len(videos), 16):
        chunk = videos[start:start + 16]
        generators = [torch.Generator().manual_seed(start + i) for i in range(len(chunk))]
        captions += pipe(video=chunk, task="v2t", generator=generators, **kwargs).text
    score = score_understanding(captions, scenes)
    return {k: score[k] for k in ("object_exact_match", "colour_accuracy", "shape_accuracy", "motion_accuracy",
                                  "held_out/object_exact_match")}


def main(argv=None):
    from univigu import UniViGUPipeline
    from univigu.toyworld import DEFAULT_CHECKPOINT
    from univigu.toyworld.evaluate import held_out_test_scenes

    import build
    from toy_ablations import override

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a build's data folder (train/ and val/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--start", type=Path, default=Path(DEFAULT_CHECKPOINT))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--samples", type=int, default=48)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "cache_ablation.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    bargs = build.parse_args(["--out", str(args.out), "--text-experts-learning-rate", "2e-3"])
    sets = {n: held_out_test_scenes(args.samples, n, seed=2026) for n in (1, 2)}

    for attention in ("full", "video_prefix"):
        if attention in results:
            continue
        folder = args.out / attention
        flags = build._train_args(bargs, "refine", args.start, args.data, folder)
        flags = override(flags, ["--max_train_steps", str(args.steps), "--validation_steps", str(args.steps),
                                 "--lr_warmup_steps", str(max(1, args.steps // 20)),
                                 "--understanding_attention", attention])
        start = time.time()
        if not (folder / "model_index.json").exists():
            build._run(build._training_script("refine", bargs.num_processes, args.out) + flags,
                       args.out / f"{attention}.log", threads=1)
        pipe = UniViGUPipeline.from_pretrained(str(folder))
        pipe.set_progress_bar_config(disable=True)
        row = {"train_seconds": round(time.time() - start)}
        for name, kwargs in SAMPLERS.items():
            for n, scenes in sets.items():
                row[f"{name} {n}obj"] = caption_scores(pipe, scenes, **kwargs)
        results[attention] = row
        results_path.write_text(json.dumps(results, indent=2))

    print(f"| trained with ({args.steps} refine steps) | sampler | 1-obj exact | held-out exact | colour / shape / "
          "motion | 2-obj exact |\n|---|---|---|---|---|---|")
    for attention, row in results.items():
        for name in SAMPLERS:
            one, two = row[f"{name} 1obj"], row[f"{name} 2obj"]
            print(f"| {attention} | {name} | {one['object_exact_match']:.3f} | "
                  f"{one['held_out/object_exact_match']:.3f} | {one['colour_accuracy']:.2f} / "
                  f"{one['shape_accuracy']:.2f} / {one['motion_accuracy']:.2f} | {two['object_exact_match']:.3f} |")


if __name__ == "__main__":
    main()
