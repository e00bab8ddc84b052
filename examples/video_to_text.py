"""Video -> caption with UniViGUPipeline (task "v2t").

    python examples/video_to_text.py                       # captions a rendered ShapesWorld clip (tiny random model)
    python examples/video_to_text.py --video clip.mp4 --model path/to/univigu --num-inference-steps 50 --history

The video is VAE-encoded and kept clean; the caption starts from the text scheduler's source distribution and is
denoised by discrete flow matching. `--history` prints the caption after every step.
"""

import argparse
import time

import torch

from univigu.utils.cli_flags import add_argument

from common import add_model_arguments, load_pipeline


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--video", default=None, help="a video file (default: a rendered ShapesWorld scene)")
    add_argument(parser, "--num-frames", old=("--frames",), type=int, default=None,
                 help="4k+1 frames sampled from the video")
    add_argument(parser, "--num-inference-steps", old=("--steps",), type=int, default=None,
                 help="text denoising steps (default 16 tiny, 50 real)")
    parser.add_argument("--max-text-length", type=int, default=None, help="caption tokens (default 32 tiny, 128)")
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = argmax")
    parser.add_argument("--commit-strategy", default=None, choices=["stochastic", "confidence"])
    parser.add_argument("--conditioning-text", default=None, help="optional text given through umT5")
    parser.add_argument("--history", action="store_true", help="print the caption at every step")
    args = parser.parse_args()
    tiny = args.model is None
    steps = args.num_inference_steps or (16 if tiny else 50)
    max_text_length = args.max_text_length or (32 if tiny else 128)

    video = args.video
    if video is None:
        import numpy as np

        from univigu.toyworld import render_scene, sample_scene, scene_to_caption

        scene = sample_scene(np.random.default_rng(args.seed))
        video = render_scene(scene)  # (9, 64, 64, 3) uint8
        print(f"true caption: {scene_to_caption(scene)}")

    pipe = load_pipeline(args)
    start = time.perf_counter()
    out = pipe(
        video=video,
        num_frames=args.num_frames,
        num_inference_steps=steps,
        max_text_length=max_text_length,
        temperature=args.temperature,
        commit_strategy=args.commit_strategy,
        conditioning_text=args.conditioning_text,
        return_text_history=args.history,
        generator=torch.Generator().manual_seed(args.seed),
    )
    if args.history:
        for step, texts in enumerate(out.text_history):
            print(f"step {step + 1:3d}: {texts[0]}")
    print(f"caption ({time.perf_counter() - start:.1f}s): {out.text[0]}")


if __name__ == "__main__":
    main()
