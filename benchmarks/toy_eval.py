"""ShapesWorld evaluation of Uni-ViGU checkpoints: understanding (v2t), generation (t2v) and joint (t2vt) on fresh
seeded test sets (one- and two-object, held-out colour-shape pairs scored apart), with each checkpoint's default call.

    python benchmarks/toy_eval.py                                  # the bundled checkpoint
    python benchmarks/toy_eval.py --model DIR [--model DIR2 ...]   # any UniViGU pipeline folders
    python benchmarks/toy_eval.py --build BUILD_DIR                # stage 0 (WanPipeline), Recall and Refine of a build
    python benchmarks/toy_eval.py --num-samples 0 --figure docs/images/shapesworld_v2.png   # the picture

Prints a markdown table (the one in docs/toyworld_model.md) and writes JSON with `--json`.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

#: The ShapesWorld build's scripts (`package.py` scores a build's stages), in this checkout.
SHAPESWORLD_SCRIPTS = Path(__file__).resolve().parents[1] / "training" / "shapesworld"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None, help="UniViGU pipeline folder (repeatable)")
    parser.add_argument("--build", default=None, help="a `python training/shapesworld/build.py` output folder")
    parser.add_argument("--num-samples", type=int, default=48,
                        help="clips per test set (one- and two-object); 0: no evaluation (e.g. with --figure)")
    parser.add_argument("--tasks", nargs="+", default=["v2t", "t2v", "t2vt"], choices=["v2t", "t2v", "t2vt"])
    parser.add_argument("--seed", type=int, default=2026, help="test-set seed")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the scores here")
    parser.add_argument("--figure", default=None,
                        help="PNG: six held-out test scenes, each as t2v of its prompt, then the clip and its caption")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from univigu.toyworld import DEFAULT_CHECKPOINT, world_of_folder
    from univigu.toyworld.evaluate import evaluate_pipeline, scores_only

    sys.path.insert(0, str(SHAPESWORLD_SCRIPTS))
    from package import evaluate_stages, load_univigu, results_table

    t0 = time.time()
    results = {}
    if args.num_samples <= 0:
        pass  # the figure alone
    elif args.build:
        build = Path(args.build)
        # the world the build recorded (its final folder, or the stand-in it started from)
        world = world_of_folder(str(build / ("final" if (build / "final").is_dir() else "stage0"))).version
        results = evaluate_stages(build / "stage0", build / "recall", build / "refine", num_samples=args.num_samples,
                                  seed=args.seed, tasks=args.tasks, version=world)
        print(results_table(results))
    else:
        for folder in args.model or [DEFAULT_CHECKPOINT]:
            pipe = load_univigu(folder)
            results[str(folder)] = scores_only(
                evaluate_pipeline(pipe, args.num_samples, tasks=args.tasks, seed=args.seed,
                                  version=world_of_folder(str(folder)).version)
            )
            print(f"\n{folder}")
            print(results_table({"refine": results[str(folder)]}).replace("| refine |", "| model |"))
    print(f"\n({time.time() - t0:.0f}s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if args.figure:
        model = (args.model or [DEFAULT_CHECKPOINT])[0] if not args.build else Path(args.build) / "final"
        print(f"figure: {save_figure(load_univigu(model), args.figure, world=world_of_folder(str(model)).version)}")


def save_figure(pipe, path, num_scenes: int = 6, seed: int = 7, world: str | None = None) -> str:
    """Held-out scenes of `world` (`held_out_test_scenes(6, 1, seed=7)`): the video generated from each prompt, then
    the rendered clip with the caption the model writes for it, each call with the checkpoint's defaults."""
    from univigu.toyworld import render_scene
    from univigu.toyworld.evaluate import caption_videos, generate_videos, held_out_test_scenes
    from univigu.toyworld.text import scene_to_prompt
    from univigu.utils import save_video_grid

    scenes = held_out_test_scenes(num_scenes, 1, seed=seed, version=world)
    prompts = [scene_to_prompt(s) for s in scenes]
    clips = [render_scene(s) for s in scenes]
    generated = generate_videos(pipe, prompts)
    captions = caption_videos(pipe, clips)
    videos, labels = [], []
    for prompt, video, clip, caption in zip(prompts, generated, clips, captions):
        videos += [video, clip]
        labels += [f"t2v: {prompt}", f"v2t: {caption}"]
    return save_video_grid(path, videos, labels)


if __name__ == "__main__":
    main()
