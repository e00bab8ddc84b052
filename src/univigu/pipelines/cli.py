# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""`univigu generate` (text -> video, optionally + caption) and `univigu caption` (video -> text).

Both default to the bundled ShapesWorld checkpoint (`univigu.toyworld.DEFAULT_CHECKPOINT`, no download); `--model`
takes any UniViGU pipeline folder or Hub id. Size and step arguments left out use the checkpoint's stored defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="UniViGU pipeline folder or Hub id (default: the bundled ShapesWorld checkpoint)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps, ... (default: cuda when available)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the checkpoint's)")


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def add_generate_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("generate", help="text -> video (and, with --caption, its detailed caption)",
                              description="Generate a video from a prompt; writes an mp4 and a frame-grid PNG.")
    p.add_argument("--prompt", required=True, help='e.g. "a red circle moving left"')
    p.add_argument("--out", default="clip.mp4", help="output mp4 (the frame grid goes next to it as .png)")
    p.add_argument("--caption", action="store_true", help="joint task t2vt: also write the model's caption")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--frames", type=_positive, default=None, help="4k+1 frames")
    p.add_argument("--height", type=_positive, default=None)
    p.add_argument("--width", type=_positive, default=None)
    p.add_argument("--fps", type=_positive, default=8)
    _add_common(p)
    p.set_defaults(func=run_generate)
    return p


def add_caption_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("caption", help="video -> text", description="Caption one or more videos.")
    p.add_argument("videos", nargs="+", help="video files (mp4, gif, ...)")
    p.add_argument("--max-text-length", type=_positive, default=None, help="caption length in tokens")
    _add_common(p)
    p.set_defaults(func=run_caption)
    return p


def check_pipeline_folder(path: str, flag: str = "--model") -> None:
    """Say what to do when a local `path` given as `flag` is not a UniViGUPipeline folder (a Wan2.1 folder, a LoRA
    training output, any other folder), instead of the loader's error about missing components. A path that does not
    exist locally is left to `from_pretrained` (a Hub id)."""
    import json

    folder = Path(path)
    if not folder.is_dir():
        return
    index = folder / "model_index.json"
    if not index.is_file():
        if (folder / "base_model.json").is_file():
            raise ValueError(
                f"{flag} {path} is a LoRA training output (LoRA weights only): pass its base pipeline as {flag} and "
                "this folder as --lora (see its base_model.json)."
            )
        raise ValueError(f"{flag} {path} is not a diffusers pipeline folder (no model_index.json).")
    class_name = json.loads(index.read_text()).get("_class_name")
    if class_name == "UniViGUPipeline":
        return
    if class_name == "WanPipeline":
        raise ValueError(
            f"{flag} {path} is a Wan2.1 pipeline (WanPipeline), not a UniViGUPipeline. Run `univigu convert wan "
            f"--wan {path} --out <new folder>` first and pass that folder (an untrained UniViGU model: train it with "
            "training/train_recall.py to caption videos)."
        )
    raise ValueError(f"{flag} {path} is a {class_name} folder, not a UniViGUPipeline.")


def load_pipeline(model: str | None, device: str | None = None, dtype: str = "float32"):
    import torch

    from . import UniViGUPipeline

    if model is None:
        from ..toyworld import DEFAULT_CHECKPOINT

        model = DEFAULT_CHECKPOINT
        if not os.path.isdir(model):
            raise SystemExit(f"The bundled ShapesWorld checkpoint is missing ({model}): reinstall univigu.")
    try:
        check_pipeline_folder(model, "--model")
    except ValueError as error:
        raise SystemExit(f"error: {error}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = UniViGUPipeline.from_pretrained(model, dtype=getattr(torch, dtype))
    if dtype != "float32":
        pipe.vae.to(torch.float32)  # Wan's VAE is run in fp32
    return pipe.to(device)


def _check_writable(path: Path) -> None:
    folder = path.resolve().parent
    if not folder.exists():
        raise SystemExit(f"Cannot write {path}: the folder {folder} does not exist (create it first).")
    if not os.access(folder, os.W_OK):
        raise SystemExit(f"Cannot write {path}: {folder} is not writable (choose another --out).")


def run_generate(args) -> int:
    import torch
    from diffusers.utils import export_to_video

    from ..utils.visualization import save_video_grid

    if not args.prompt.strip():
        raise SystemExit('The prompt is empty: pass --prompt "a red circle moving left".')
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise SystemExit(f"--out must end in .mp4, got {args.out}.")
    _check_writable(out)
    pipe = load_pipeline(args.model, args.device, args.dtype)
    kwargs = {k: v for k, v in dict(num_inference_steps=args.steps, guidance_scale=args.guidance,
                                    num_frames=args.frames, height=args.height, width=args.width).items()
              if v is not None}
    try:
        result = pipe(prompt=args.prompt, generate_caption=args.caption,
                      generator=torch.Generator().manual_seed(args.seed), **kwargs)
    except ValueError as error:  # the pipeline's input checks: say what to change, no traceback
        raise SystemExit(f"error: {error}")
    frames = result.frames[0]
    export_to_video(list(frames), str(out), fps=args.fps)
    grid = out.with_suffix(".png")
    save_video_grid(grid, [frames], labels=[args.prompt])
    print(f"video: {out}")
    print(f"frame grid: {grid}")
    if args.caption:
        print(f"caption: {result.text[0]}")
    return 0


def run_caption(args) -> int:
    import torch

    missing = [v for v in args.videos if not os.path.isfile(v)]
    if missing:
        raise SystemExit(f"No such video file: {', '.join(missing)}.")
    pipe = load_pipeline(args.model, args.device, args.dtype)
    kwargs = {k: v for k, v in dict(num_inference_steps=args.steps, max_text_length=args.max_text_length).items()
              if v is not None}
    for path in args.videos:
        try:
            text = pipe(video=path, task="v2t", generator=torch.Generator().manual_seed(args.seed), **kwargs).text[0]
        except ValueError as error:
            print(f"{path}: error: {error}", file=sys.stderr)
            continue
        print(f"{path}: {text}" if len(args.videos) > 1 else text)
    return 0
