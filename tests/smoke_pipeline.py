"""A smoke run of the whole Uni-ViGU system, end to end, on tiny
components built here (CPU, no download, about a minute).

1. ShapesWorld: render training and test clips (videos + prompts + detailed captions, `metadata.jsonl`).
2. A tiny Wan2.1-style text-to-video pipeline saved as a diffusers folder, the stand-in for
   Wan2.1-T2V-1.3B-Diffusers: the bundled ShapesWorld VAE (pretrained here, docs/toyworld_vae.md) with a tiny
   umT5 encoder and a tiny Wan transformer (random weights).
3. Knowledge Recall with the real training script (`univigu.training`, accelerate, cached latents): the text
   stream learns to write prompts; the loss curve is saved as a PNG.
4. The trained UniViGUPipeline, all three directions: text -> video (a video grid PNG), video -> text (captions of
   the held-out test clips, scored against ShapesWorld's truth), text -> video + caption.

Until a pretrained ShapesWorld generator is bundled, the generated videos are noise; captions are read off the
pretrained VAE's latents, but a minute of Recall on 64 clips fits the training prompts without generalising to the
test clips yet (see docs/training.md, "What we measured"), so the test scores measure the plumbing, not the method.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/smoke", help="where everything is written")
    parser.add_argument("--num-train", type=int, default=64, help="ShapesWorld training clips")
    parser.add_argument("--num-test", type=int, default=4, help="ShapesWorld test clips (held-out pairs included)")
    parser.add_argument("--train-steps", type=int, default=200, help="Knowledge Recall steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vae", choices=["shapesworld", "random"], default="shapesworld",
                        help="the bundled ShapesWorld VAE (docs/toyworld_vae.md) or a random tiny one")
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    args = parser.parse_args(argv)

    from diffusers import WanPipeline
    from diffusers.utils import export_to_video

    from univigu import UniViGUPipeline
    from univigu.toyworld import load_video_frames, make_dataset, read_metadata, score_understanding, summarize
    from univigu.toyworld.components import build_tiny_components
    from univigu.training.trainer import main as train_main
    from univigu.training.arguments import parse_args as train_args
    from univigu.utils import save_video_grid

    torch.set_num_threads(1)  # tiny models: one thread is much faster than two on small CPUs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()

    def say(message):
        print(f"[{time.time() - start:6.1f}s] {message}", flush=True)

    # 1. Data
    train_dir = make_dataset(out / "data" / "train", args.num_train, split="train", seed=args.seed)
    test_dir = make_dataset(out / "data" / "test", args.num_test, split="test", seed=args.seed + 1)
    say(f"ShapesWorld: {args.num_train} training clips in {train_dir}, {args.num_test} test clips in {test_dir}")

    # 2. The stand-in for Wan2.1: a tiny text-to-video pipeline folder
    wan_dir = out / "tiny-wan"
    components = build_tiny_components(seed=args.seed)
    if args.vae == "shapesworld":
        from diffusers import AutoencoderKLWan

        import univigu.toyworld

        asset = Path(univigu.toyworld.__file__).resolve().parent / "assets" / "shapesworld_vae"
        components["vae"] = AutoencoderKLWan.from_pretrained(asset)
    WanPipeline(**components).save_pretrained(wan_dir)
    say(f"tiny Wan2.1-style pipeline saved to {wan_dir}")

    # 3. Knowledge Recall (the same code `accelerate launch training/train_recall.py` runs)
    recall_dir = out / "recall"
    summary = train_main(train_args("recall", [
        "--pretrained_model_name_or_path", str(wan_dir),
        "--train_data_dir", str(train_dir),
        "--output_dir", str(recall_dir),
        "--overwrite_output_dir",  # the script's own folder: a re-run with the same --out starts it afresh
        "--num_frames", "9", "--height", "64", "--width", "64",
        "--max_text_length", "16", "--max_sequence_length", "16",
        "--latents_cache_dir", str(out / "cache"),
        "--train_batch_size", "4", "--max_train_steps", str(args.train_steps), "--learning_rate", str(args.learning_rate),
        "--validation_steps", str(max(args.train_steps // 2, 1)), "--num_validation_videos", "2",
        "--validation_num_inference_steps", "4",
        "--report_to", "none", "--seed", str(args.seed),
    ]))
    before = summary["losses_before"]["text_loss_understanding"]
    after = summary["losses_after"]["text_loss_understanding"]
    say(f"Knowledge Recall: text loss {before:.3f} -> {after:.3f} in {args.train_steps} steps "
        f"(uniform guessing = ln V = {math.log(summary.get('vocab_size', 38)):.3f}); plot: {recall_dir / 'loss.png'}")

    # 4. The trained pipeline, both directions
    pipe = UniViGUPipeline.from_pretrained(recall_dir)
    pipe.set_progress_bar_config(disable=True)
    rows = read_metadata(test_dir)
    videos = [load_video_frames(Path(test_dir) / row["file_name"]) for row in rows]
    generator = [torch.Generator().manual_seed(args.seed + i) for i in range(len(rows))]

    captions = pipe(video=videos, task="v2t", num_inference_steps=16, max_text_length=16, generator=generator).text
    scores = score_understanding(captions, [row["prompt"] for row in rows])
    for row, caption in zip(rows, captions):
        say(f"v2t  truth: {row['prompt']!r}\n{'':10}model: {caption!r}")
    say("understanding scores (ShapesWorld): " + summarize(scores))

    prompts = [row["prompt"] for row in rows]
    generated = pipe(prompt=prompts, num_frames=9, height=64, width=64, num_inference_steps=8, guidance_scale=5.0,
                     generator=[torch.Generator().manual_seed(args.seed + i) for i in range(len(rows))]).frames
    grid = save_video_grid(out / "t2v_grid.png", list(videos) + list(generated),
                           [f"truth: {p}" for p in prompts] + [f"generated: {p}" for p in prompts])
    export_to_video(list(generated[0]), str(out / "t2v_0.mp4"), fps=8)
    say(f"t2v: {len(prompts)} videos; grid (truth rows, then generated rows): {grid}")

    joint = pipe(prompt=prompts[0], task="t2vt", num_frames=9, height=64, width=64, num_inference_steps=8,
                 max_text_length=16, generator=torch.Generator().manual_seed(args.seed), return_text_history=True)
    say(f"t2vt: prompt {prompts[0]!r} -> caption {joint.text[0]!r} ({len(joint.text_history)} steps of history)")

    report = {
        "text_loss_before": before,
        "text_loss_after": after,
        "captions": [{"truth": r["prompt"], "model": c} for r, c in zip(rows, captions)],
        "understanding_scores": scores,
        "joint_caption": joint.text[0],
        "seconds": round(time.time() - start, 1),
    }
    (out / "smoke_report.json").write_text(json.dumps(report, indent=2))
    say(f"done: {out / 'smoke_report.json'}")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
