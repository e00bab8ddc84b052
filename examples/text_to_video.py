"""Text -> video with UniViGUPipeline (task "t2v").

    python examples/text_to_video.py --prompt "a red circle moving left" --out t2v.mp4
    python examples/text_to_video.py --model path/to/univigu --num-frames 81 --height 480 --width 832 \\
        --num-inference-steps 50

`--no-text-stream` runs exactly WanPipeline's computation (the prompt only through umT5 cross-attention); by default
the prompt's own tokens also enter the text stream, clean, as in the reference implementation.
"""

import argparse
import time

import torch
from diffusers.utils import export_to_video

from univigu.utils.cli_flags import add_argument

from common import add_model_arguments, load_pipeline, size_defaults


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--prompt", default="a red circle moving left and a blue square staying still")
    parser.add_argument("--negative-prompt", default=None)
    add_argument(parser, "--num-frames", old=("--frames",), type=int, default=None, help="4k+1")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    add_argument(parser, "--num-inference-steps", old=("--steps",), type=int, default=None)
    add_argument(parser, "--guidance-scale", old=("--guidance",), type=float, default=5.0)
    parser.add_argument("--no-text-stream", action="store_true")
    parser.add_argument("--fps", type=int, default=8)
    add_argument(parser, "--out", old=("--output",), default="t2v.mp4")
    args = size_defaults(parser.parse_args())

    pipe = load_pipeline(args)
    start = time.perf_counter()
    frames = pipe(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        num_frames=args.num_frames,
        height=args.height,
        width=args.width,
        num_inference_steps=args.num_inference_steps,
        guidance_scale=args.guidance_scale,
        text_stream=not args.no_text_stream,
        generator=torch.Generator().manual_seed(args.seed),
    ).frames[0]
    print(f"generated {len(frames)} frames of {args.height}x{args.width} in {time.perf_counter() - start:.1f}s")
    export_to_video(list(frames), args.out, fps=args.fps)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
