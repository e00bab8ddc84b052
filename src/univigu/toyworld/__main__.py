# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Write a ShapesWorld dataset folder: `python -m univigu.toyworld --out DIR --num-samples N --split train`."""

import argparse
import time

from .dataset import make_dataset
from .world import DEFAULT_FPS, DEFAULT_NUM_FRAMES, SPLITS, WORLDS


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m univigu.toyworld", description=__doc__)
    parser.add_argument("--out", required=True, help="output folder (videos + metadata.jsonl)")
    parser.add_argument("--num-samples", type=int, required=True)
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-frames", type=int, default=DEFAULT_NUM_FRAMES)
    parser.add_argument("--fps", type=int, default=DEFAULT_FPS)
    parser.add_argument("--world", choices=tuple(WORLDS), default="shapesworld-v1", help="the ShapesWorld version")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = make_dataset(
        args.out, args.num_samples, split=args.split, seed=args.seed, num_frames=args.num_frames, fps=args.fps,
        version=args.world,
    )
    print(f"Wrote {args.num_samples} {args.split} samples to {out} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
