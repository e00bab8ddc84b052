"""The main job (`bash scripts/demo.sh`): the bundled, trained ShapesWorld Uni-ViGU model in all three directions,
on a CPU, with no download and no training.

1. text -> video: a prompt becomes a 9-frame 64x64 clip (mp4 + frame-grid PNG), scored by the ShapesWorld analyzer;
2. video -> text: a ShapesWorld clip rendered here (held-out colour-shape pair included) is captioned; the caption is
   printed next to the truth with its score;
3. text -> video + caption (joint): both streams denoised together.

    python examples/shapesworld_demo.py --out outputs/demo [--model PATH] [--prompt "..."]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/demo", help="where the videos and pictures are written")
    parser.add_argument("--model", default=None, help="a UniViGU pipeline folder (default: the bundled checkpoint)")
    parser.add_argument("--prompt", default="a red circle moving left and a yellow square staying still")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from diffusers.utils import export_to_video

    from univigu import UniViGUPipeline
    from univigu.toyworld import (
        DEFAULT_CHECKPOINT, render_scene, sample_scene, scene_rng, scene_to_caption,
        score_generation, score_joint, score_understanding, summarize, world_of_folder, write_video,
    )
    from univigu.utils.visualization import save_video_grid

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    pipe = UniViGUPipeline.from_pretrained(args.model or DEFAULT_CHECKPOINT)
    pipe.set_progress_bar_config(leave=False)
    folder = Path(args.model or DEFAULT_CHECKPOINT)
    # the clips rendered below come from the world the checkpoint was trained on (its shapesworld.json)
    world = world_of_folder(str(folder)).version if folder.is_dir() else "shapesworld-v1"
    print(f"model: {args.model or DEFAULT_CHECKPOINT} ({world})")
    report = {}

    # 1. text -> video
    print(f"\n[1] text -> video: {args.prompt!r}")
    video = pipe(prompt=args.prompt, generator=torch.Generator().manual_seed(args.seed)).frames[0]
    video_u8 = (video * 255).round().clip(0, 255).astype(np.uint8)
    export_to_video(list(video), str(out / "t2v.mp4"), fps=8)
    save_video_grid(out / "t2v.png", [video_u8], labels=[args.prompt])
    report["t2v"] = score_generation([video_u8], [args.prompt])
    print(f"    wrote {out / 't2v.mp4'} and {out / 't2v.png'}")
    print(f"    analyzer: {summarize(report['t2v'], ['colour_accuracy', 'shape_accuracy', 'motion_accuracy'])}")

    # 2. video -> text, on clips the model has never seen (index 0 holds a held-out colour-shape pair)
    print("\n[2] video -> text on fresh ShapesWorld clips")
    clips, truths, captions = [], [], []
    for index in range(3):
        scene = sample_scene(scene_rng(args.seed + 99, "test", index), split="test",
                             require_held_out=index == 0, version=world)
        frames = render_scene(scene)
        write_video(out / f"clip{index}.mp4", frames)
        caption = pipe(video=str(out / f"clip{index}.mp4"), task="v2t",
                       generator=torch.Generator().manual_seed(args.seed)).text[0]
        clips.append(frames)
        truths.append(scene)
        captions.append(caption)
        scores = score_understanding([caption], [scene], detailed=True)
        print(f"    {out / f'clip{index}.mp4'}")
        print(f"      truth:   {scene_to_caption(scene)}")
        print(f"      caption: {caption}")
        print(f"      score:   {summarize(scores, ['colour_accuracy', 'shape_accuracy', 'motion_accuracy', 'object_exact_match'])}")
    save_video_grid(out / "v2t.png", clips, labels=captions)
    report["v2t"] = score_understanding(captions, truths, detailed=True)

    # 3. text -> video + caption, denoised together
    print(f"\n[3] text -> video + caption (joint): {args.prompt!r}")
    joint = pipe(prompt=args.prompt, generate_caption=True, generator=torch.Generator().manual_seed(args.seed))
    joint_u8 = (joint.frames[0] * 255).round().clip(0, 255).astype(np.uint8)
    export_to_video(list(joint.frames[0]), str(out / "t2vt.mp4"), fps=8)
    save_video_grid(out / "t2vt.png", [joint_u8], labels=[joint.text[0]])
    report["t2vt"] = score_joint([joint_u8], [joint.text[0]], [args.prompt])
    print(f"    wrote {out / 't2vt.mp4'} and {out / 't2vt.png'}")
    print(f"    caption: {joint.text[0]}")

    print_goals(folder)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(f"\ndone in {time.time() - t_start:.1f}s; everything is in {out}/")


def print_goals(folder: Path) -> None:
    """The checkpoint's own evaluation (48 + 48 test clips, stored as eval.json by the build) next to its goals."""
    from univigu.toyworld.evaluate import CHECKPOINT_GOALS, goal_met

    path = folder / "eval.json"
    if not path.is_file():
        return
    scores = json.loads(path.read_text()).get("refine", {})
    print("\nthe checkpoint's evaluation (48 one-object + 48 two-object test clips) against its goals:")
    for key, score, goal in CHECKPOINT_GOALS:
        if score not in scores.get(key, {}):
            continue
        value = scores[key][score]
        sign = "<=" if "hallucination" in score else ">="
        verdict = "met" if goal_met(score, value, goal) else "NOT met"
        print(f"    {key:9s} {score:26s} {value:5.2f}   goal {sign} {goal:.2f}   {verdict}")


if __name__ == "__main__":
    main()
