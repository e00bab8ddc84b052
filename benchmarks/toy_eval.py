"""ShapesWorld evaluation of Uni-ViGU checkpoints: understanding (v2t), generation (t2v) and joint (t2vt) on fresh
seeded test sets (one- and two-object, held-out colour-shape pairs scored apart), with each checkpoint's default call.

    python benchmarks/toy_eval.py                                  # the bundled checkpoint
    python benchmarks/toy_eval.py --model DIR [--model DIR2 ...]   # any UniViGU pipeline folders
    python benchmarks/toy_eval.py --build BUILD_DIR                # stage 0 (WanPipeline), Recall and Refine of a build

Prints a markdown table (the one in docs/toyworld_model.md) and writes JSON with `--json`.
"""

import argparse
import json
import time
from pathlib import Path

import torch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None, help="UniViGU pipeline folder (repeatable)")
    parser.add_argument("--build", default=None, help="a `python -m univigu.toyworld.build` output folder")
    parser.add_argument("--num-samples", type=int, default=48, help="clips per test set (one- and two-object)")
    parser.add_argument("--tasks", nargs="+", default=["v2t", "t2v", "t2vt"], choices=["v2t", "t2v", "t2vt"])
    parser.add_argument("--seed", type=int, default=2026, help="test-set seed")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the scores here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from univigu.toyworld import DEFAULT_CHECKPOINT
    from univigu.toyworld.evaluate import evaluate_pipeline, scores_only
    from univigu.toyworld.package import evaluate_stages, load_univigu, results_table

    t0 = time.time()
    if args.build:
        build = Path(args.build)
        results = evaluate_stages(build / "stage0", build / "recall", build / "refine", num_samples=args.num_samples,
                                  seed=args.seed)
        print(results_table(results))
    else:
        results = {}
        for folder in args.model or [DEFAULT_CHECKPOINT]:
            pipe = load_univigu(folder)
            results[str(folder)] = scores_only(
                evaluate_pipeline(pipe, args.num_samples, tasks=args.tasks, seed=args.seed)
            )
            print(f"\n{folder}")
            print(results_table({"refine": results[str(folder)]}).replace("| refine |", "| model |"))
    print(f"\n({time.time() - t0:.0f}s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
