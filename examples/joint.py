"""Text -> video + detailed caption with UniViGUPipeline (task "t2vt").

    python examples/joint.py --prompt "a red circle moving left" --out joint.mp4 --history
    python examples/joint.py --model path/to/univigu --text-update reference --num-inference-steps 50

Video and caption both start from noise and are denoised together, the text timestep equal to the video timestep at
every step. `--text-update scheduler` uses the discrete-flow Euler step; `reference` is the reference
implementation's heuristic (resample each position with probability i/(N-1), then a final argmax pass).
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
    parser.add_argument("--prompt", default="a red circle moving left")
    add_argument(parser, "--num-frames", old=("--frames",), type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    add_argument(parser, "--num-inference-steps", old=("--steps",), type=int, default=None)
    add_argument(parser, "--guidance-scale", old=("--guidance",), type=float, default=5.0,
                 help="applies to the video only")
    parser.add_argument("--max-text-length", type=int, default=None, help="caption tokens (default 32 tiny, 128)")
    parser.add_argument("--text-update", default="scheduler", choices=["scheduler", "reference"])
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--history", action="store_true", help="print the caption at every step")
    parser.add_argument("--fps", type=int, default=8)
    add_argument(parser, "--out", old=("--output",), default="joint.mp4")
    args = size_defaults(parser.parse_args())
    max_text_length = args.max_text_length or (32 if args.model is None else 128)

    pipe = load_pipeline(args)
    start = time.perf_counter()
    out = pipe(
        prompt=args.prompt,
        task="t2vt",
        num_frames=args.num_frames,
        height=args.height,
        width=args.width,
        num_inference_steps=args.num_inference_steps,
        guidance_scale=args.guidance_scale,
        max_text_length=max_text_length,
        text_update=args.text_update,
        temperature=args.temperature,
        return_text_history=args.history,
        generator=torch.Generator().manual_seed(args.seed),
    )
    if args.history:
        for step, texts in enumerate(out.text_history):
            print(f"step {step + 1:3d}: {texts[0]}")
    print(f"done in {time.perf_counter() - start:.1f}s")
    print(f"caption: {out.text[0]}")
    export_to_video(list(out.frames[0]), args.out, fps=args.fps)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
