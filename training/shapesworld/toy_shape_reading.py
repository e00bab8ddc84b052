"""Can a captioner learn to read shape from this starting point? The shape-reading protocol of docs/research_log.md.

    python training/shapesworld/toy_shape_reading.py --build build --out runs/shape_stage0
    python training/shapesworld/toy_shape_reading.py --build build --out runs/shape_late_attn1 \\
        --reinit-modules blocks.2.attn1 blocks.3.attn1
    python training/shapesworld/toy_shape_reading.py --build build --out runs/shape_prompts --captions prompt

Understanding views only (`train_recall.py --view_ratios 1 0 0`), everything training, from the build's converted
stage 0 (or `--start`), on the build's training clips and latent cache, with captions that are the object's shape
word(s) alone (`--captions shape`: the whole text loss is on shape), the prompts (`prompt`: the recipe's Recall text)
or either at random per clip (`mix`). Then the trained model captions one-object clips it never saw (test split,
half of them held-out colour-shape pairs) and clips of the train split, and the first shape word of each caption is
scored against the truth. Chance is 1/3; with 48 clips one standard error is ~0.07.
"""

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHAPES = ("circle", "square", "triangle")


def caption_columns(build_data: Path, out: Path, seed: int) -> None:
    """`out/{train,val}/metadata.jsonl` with caption columns for the protocol, videos linked from the build.

    `shape_text`: the shape words alone; `colour_shape` / `shape_motion`: the prompt without its motion / colour;
    `mix`: the shape words or the prompt, at random per clip.
    """
    rng = random.Random(seed)
    for split in ("train", "val"):
        (out / split).mkdir(parents=True, exist_ok=True)
        with open(out / split / "metadata.jsonl", "w") as f:
            for line in open(build_data / split / "metadata.jsonl"):
                row = json.loads(line)
                objects = json.loads(row["scene"])["objects"]
                row["shape_text"] = " ".join(o["shape"] for o in objects)
                # the prompt without one attribute: does a colour word in the caption stop shape being read?
                row["colour_shape"] = " and ".join(f"a {o['colour']} {o['shape']}" for o in objects)
                row["shape_motion"] = " and ".join(
                    f"a {o['shape']} " + ("staying still" if o["motion"] == "still" else f"moving {o['motion']}")
                    for o in objects
                )
                row["mix"] = row["shape_text"] if rng.random() < 0.5 else row["prompt"]
                f.write(json.dumps(row) + "\n")
                link = out / split / row["file_name"]
                if not link.exists():
                    os.symlink((build_data / split / row["file_name"]).resolve(), link)


def shape_accuracy(folder: Path, text_length: int, num_samples: int) -> dict:
    from univigu.toyworld.evaluate import caption_videos, held_out_test_scenes
    from univigu.toyworld.world import render_scene

    from package import load_univigu, stage_call_defaults

    pipe = load_univigu(folder, stage_call_defaults(text_length))
    scores = {}
    for split in ("test", "train"):
        scenes = held_out_test_scenes(num_samples, 1, split=split)
        texts = caption_videos(pipe, [render_scene(s) for s in scenes])
        read = [next((w for w in t.split() if w in SHAPES), None) for t in texts]
        scores[split] = sum(r == s.objects[0].shape for r, s in zip(read, scenes)) / len(scenes)
        scores[f"{split}_examples"] = [(s.objects[0].shape, t) for s, t in zip(scenes[:4], texts[:4])]
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", type=Path, required=True, help="a `python training/shapesworld/build.py` folder")
    parser.add_argument("--out", type=Path, required=True, help="where the run and its data columns go")
    parser.add_argument("--start", type=Path, default=None, help="starting pipeline (default: BUILD/convert)")
    parser.add_argument("--captions", choices=("shape", "prompt", "mix", "colour_shape", "shape_motion"), default="shape")
    parser.add_argument("--reinit-modules", nargs="*", default=[], help="train_recall's --reinit_modules")
    parser.add_argument("--text-length", type=int, default=None,
                        help="caption length in tokens (default: 4 for shape words, 16 for the others)")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--num-processes", type=int, default=2, help="CPU processes (one per core)")
    parser.add_argument("--num-samples", type=int, default=48, help="clips scored per split")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train_recall flags, verbatim")
    args = parser.parse_args(argv)

    from build import ACCELERATE_CPU_CONFIG

    args.out.mkdir(parents=True, exist_ok=True)
    caption_columns(args.build / "data", args.out / "data", seed=0)
    column, text_length = {"shape": ("shape_text", 4), "prompt": ("prompt", 16), "mix": ("mix", 16),
                           "colour_shape": ("colour_shape", 16), "shape_motion": ("shape_motion", 16)}[args.captions]
    text_length = args.text_length or text_length
    config = args.out / "accelerate_cpu.yaml"
    config.write_text(ACCELERATE_CPU_CONFIG.format(num_processes=args.num_processes))
    run = args.out / "run"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
        str(REPO / "training" / "train_recall.py"),
        "--pretrained_model_name_or_path", str(args.start or args.build / "convert"),
        "--train_data_dir", str(args.out / "data" / "train"), "--validation_data_dir", str(args.out / "data" / "val"),
        "--caption_column", column, "--max_text_length", str(text_length),
        "--output_dir", str(run), "--overwrite_output_dir",
        # the build's cache: its key depends on the files and the prompts (the generation condition), not the captions
        "--latents_cache_dir", str(args.build / "latents_cache"), "--cache_batch_size", "32",
        "--num_frames", "9", "--height", "64", "--width", "64", "--max_sequence_length", "32",
        "--train_batch_size", "8", "--max_train_steps", str(args.steps),
        "--lr_scheduler", "cosine", "--lr_warmup_steps", str(max(1, args.steps // 20)), "--adam_weight_decay", "0.0",
        "--seed", "0", "--checkpointing_steps", str(args.steps), "--validation_steps", str(args.steps),
        "--num_validation_videos", "16", "--validation_num_inference_steps", "8", "--report_to", "none",
        "--mixed_precision", "no", "--view_ratios", "1", "0", "0", "--trainable", "all",
        "--learning_rate", "5e-4", "--text_experts_learning_rate", "2e-3",
        *(["--reinit_modules", *args.reinit_modules] if args.reinit_modules else []),
        *args.extra,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(args.out / "train.log", "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    scores = shape_accuracy(run, text_length, args.num_samples)
    (args.out / "shape_reading.json").write_text(json.dumps(scores, indent=2))
    print(f"shape read from captions ({args.captions}, {args.steps} steps, start {args.start or 'build/convert'}, "
          f"re-initialised: {' '.join(args.reinit_modules) or 'nothing'}): test clips {scores['test']:.2f}, "
          f"train-split clips {scores['train']:.2f} (chance 0.33)")


if __name__ == "__main__":
    main()
