# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""`univigu generate` (text -> video, optionally + caption) and `univigu caption` (video -> text).

Both default to the bundled ShapesWorld checkpoint (`univigu.toyworld.DEFAULT_CHECKPOINT`, no download); `--model`
takes any UniViGU pipeline folder or Hub id. Size and step arguments left out use the checkpoint's stored defaults.
Flags are named as the pipeline's call arguments (`--num-inference-steps`, `--num-frames`, `--guidance-scale`,
`--max-text-length`); the earlier `--steps`, `--frames`, `--guidance` still parse (hidden, for one release).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from ..utils.cli_flags import add_argument


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="UniViGU pipeline folder or Hub id (default: the bundled ShapesWorld checkpoint)")
    parser.add_argument("--lora", default=None,
                        help="LoRA weights to apply to --model (a folder written by training with --trainable lora)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps, ... (default: cuda when available)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    parser.add_argument("--seed", type=int, default=0)
    add_argument(parser, "--num-inference-steps", old=("--steps",), type=int, default=None,
                 help="denoising steps (default: the checkpoint's)")


#: How a frame count is stated in help (errors state it for the model at hand: `UniViGUPipeline.frame_rule`).
FRAME_RULE = ("of the form Tk+1, T the VAE's time compression (4k+1 for Wan: 1, 5, 9, 13, ...; 2k+1 for the bundled "
              "ShapesWorld model)")


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _number(value: str, what: str, allow_zero: bool) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise argparse.ArgumentTypeError(f"must be {what} {'>= 0' if allow_zero else '> 0'}, got {value}")
    return number


def _start(value: str) -> float:
    return _number(value, "a number of seconds", allow_zero=True)


def _duration(value: str) -> float:
    return _number(value, "a number of seconds", allow_zero=False)


def _rate(value: str) -> float:
    return _number(value, "a frame rate (frames per second)", allow_zero=False)


def add_generate_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("generate", help="text -> video (and, with --caption, its detailed caption)",
                              description="Generate a video from a prompt; writes an mp4 and a frame-grid PNG.")
    p.add_argument("--prompt", required=True, help='e.g. "a red circle moving left"')
    p.add_argument("--out", default="clip.mp4", help="output mp4 (the frame grid goes next to it as .png)")
    p.add_argument("--caption", action="store_true",
                   help="joint task t2vt: also write the model's caption next to the video (clip.mp4 -> clip.txt)")
    add_argument(p, "--guidance-scale", old=("--guidance",), type=float, default=None,
                 help="classifier-free guidance scale")
    add_argument(p, "--num-frames", old=("--frames",), type=_positive, default=None,
                 help=f"number of frames, {FRAME_RULE}")
    p.add_argument("--height", type=_positive, default=None)
    p.add_argument("--width", type=_positive, default=None)
    p.add_argument("--fps", type=_positive, default=8)
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out and its .png (and .txt) if they exist (never a file inside --model)")
    _add_common(p)
    p.set_defaults(func=run_generate)
    return p


def add_caption_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "caption", help="video -> text",
        description="Caption one or more videos of any size, aspect, frame rate and length. By default each is brought "
                    "to what the checkpoint was trained on (its size, frame count and frame rate): resized, "
                    "centre-cropped, and sampled from its start, decoding only what is needed. Other values run, "
                    "with a warning.")
    p.add_argument("videos", nargs="+", help="video files (mp4, gif, ...)")
    p.add_argument("--max-text-length", type=_positive, default=None,
                   help="caption length in tokens (default: the checkpoint's)")
    p.add_argument("--height", type=_positive, default=None,
                   help="frame height the video is brought to (with --width; default: the checkpoint's)")
    p.add_argument("--width", type=_positive, default=None,
                   help="frame width the video is brought to (with --height; default: the checkpoint's)")
    p.add_argument("--num-frames", type=_positive, default=None,
                   help=f"frames to sample, {FRAME_RULE} (default: the checkpoint's)")
    p.add_argument("--fps", type=_rate, default=None,
                   help="frames per second to sample at (default: the checkpoint's; without one, frames are spread "
                        "over the whole video)")
    p.add_argument("--crop", choices=("center", "pad"), default=None,
                   help="another aspect is resized to cover the frame and centre-cropped (center, the default) or "
                        "fitted inside and padded with black (pad)")
    p.add_argument("--start", type=_start, default=None, help="seconds into the video to start sampling (default 0)")
    p.add_argument("--duration", type=_duration, default=None,
                   help="seconds of video to sample within (default: as many as the frames need)")
    p.add_argument("--caption", action="store_true",
                   help="also write each caption next to its video (clip.mp4 -> clip.txt), as generate --caption does")
    p.add_argument("--overwrite", action="store_true", help="with --caption: replace an existing .txt")
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


def check_device(device: str | None) -> str:
    """`--device`: a device torch knows and this machine has (default: cuda when available, else cpu); otherwise
    `SystemExit` naming the flag (found by the bad-input probe, benchmarks/probe_bad_inputs.py: `--device gpu7` was a
    RuntimeError traceback after the model had loaded)."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as error:
        raise SystemExit(f"error: --device {device!r} is not a device torch knows ({error}); use cpu, cuda, cuda:0, "
                         "mps, ...")
    if kind == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {device}: no CUDA device is available here; use --device cpu.")
    return device


def load_pipeline(model: str | None, device: str | None = None, dtype: str = "float32", lora: str | None = None):
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
    if lora is not None and not (Path(lora) / "pytorch_lora_weights.safetensors").is_file():
        raise SystemExit(f"error: --lora {lora} holds no pytorch_lora_weights.safetensors: pass the folder that "
                         "training/train_recall.py or train_refine.py with --trainable lora wrote.")
    device = check_device(device)
    pipe = UniViGUPipeline.from_pretrained(model, dtype=getattr(torch, dtype))
    if lora is not None:
        pipe.load_lora_weights(lora)
    if dtype != "float32":
        pipe.vae.to(torch.float32)  # Wan's VAE is run in fp32
    return pipe.to(device)


def caption_path(out: Path) -> Path:
    """Where `--caption` (of `univigu generate` and `univigu caption`) writes the caption: next to the video,
    `clip.mp4` -> `clip.txt`."""
    return Path(out).with_suffix(".txt")


def check_new_outputs(paths: list[Path], model: str | None, lora: str | None, flag: str, overwrite: bool) -> None:
    """Before the model loads: each of `paths` (the outputs of `flag`) may be written. Refused: an existing file without
    `--overwrite`, a path inside the model (the bundled checkpoint when `model` is None) or LoRA folder, a folder that
    does not exist or cannot be written."""
    from ..utils.output_paths import check_new_file, check_not_an_input, check_writable_parent

    if model is None:
        from ..toyworld import DEFAULT_CHECKPOINT

        model = DEFAULT_CHECKPOINT
    for path in paths:
        check_not_an_input(path, [model, lora], flag)
        check_new_file(path, flag, overwrite)
        check_writable_parent(path, flag)


def check_generate_outputs(out: Path, model: str | None, overwrite: bool = False, lora: str | None = None,
                           caption: bool = False) -> Path:
    """Before the model loads: `--out` (an .mp4), the frame grid next to it (.png) and, with `caption`, the caption
    next to it (.txt) may be written. Returns the grid's path. Refused: an existing file without `--overwrite`, a
    path inside the model or LoRA folder (with or without), a folder that does not exist or cannot be written."""
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"--out must end in .mp4, got {out}.")
    grid = out.with_suffix(".png")
    check_new_outputs([out, grid, *([caption_path(out)] if caption else [])], model, lora, "--out", overwrite)
    return grid


def run_generate(args) -> int:
    import torch
    from diffusers.utils import export_to_video

    from ..utils.output_paths import staged_output
    from ..utils.visualization import save_video_grid

    if not args.prompt.strip():
        raise SystemExit('The prompt is empty: pass --prompt "a red circle moving left".')
    out = Path(args.out)
    try:
        grid = check_generate_outputs(out, args.model, args.overwrite, args.lora, args.caption)
    except (ValueError, OSError) as error:
        raise SystemExit(f"error: {error}")
    pipe = load_pipeline(args.model, args.device, args.dtype, args.lora)
    kwargs = {k: v for k, v in dict(num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale,
                                    num_frames=args.num_frames, height=args.height, width=args.width).items()
              if v is not None}
    try:
        result = pipe(prompt=args.prompt, generate_caption=args.caption,
                      generator=torch.Generator().manual_seed(args.seed), **kwargs)
    except ValueError as error:  # the pipeline's input checks: say what to change, no traceback
        raise SystemExit(f"error: {error}")
    frames = result.frames[0]
    # each file is written under a temporary name and renamed into place: an interruption leaves no partial file
    with staged_output(out, flag="--out") as tmp:
        export_to_video(list(frames), str(tmp), fps=args.fps)
    with staged_output(grid, flag="--out") as tmp:
        save_video_grid(tmp, [frames], labels=[args.prompt])
    if args.caption:
        with staged_output(caption_path(out), flag="--out") as tmp:
            tmp.write_text(result.text[0] + "\n", encoding="utf-8")
    print(f"video: {out}")
    print(f"frame grid: {grid}")
    if args.caption:
        print(f"caption ({caption_path(out)}): {result.text[0]}")
    return 0


def run_caption(args) -> int:
    """Captions each video; one that cannot be captioned (not a video, empty, truncated) is reported on stderr with
    its path, the others are still captioned, and the exit status is 1."""
    import torch

    folders = [v for v in args.videos if os.path.isdir(v)]
    if folders:
        example = Path(folders[0]) / "*.mp4"
        raise SystemExit(f"error: {', '.join(folders)} is a folder; pass video files (e.g. {example}).")
    missing = [v for v in args.videos if not os.path.isfile(v)]
    if missing:
        raise SystemExit(f"error: no such video file: {', '.join(missing)}.")
    if args.caption:  # every .txt is checked before the model loads, so a refusal costs nothing
        try:
            check_new_outputs([caption_path(v) for v in args.videos], args.model, args.lora, "--caption",
                              args.overwrite)
        except (ValueError, OSError) as error:
            raise SystemExit(f"error: {error}")
    pipe = load_pipeline(args.model, args.device, args.dtype, args.lora)
    if (args.height is None) != (args.width is None):
        raise SystemExit("error: pass --height and --width together (or neither, for the checkpoint's size).")
    kwargs = {k: v for k, v in dict(num_inference_steps=args.num_inference_steps, max_text_length=args.max_text_length,
                                    height=args.height, width=args.width, num_frames=args.num_frames, fps=args.fps,
                                    crop=args.crop, start=args.start, duration=args.duration).items()
              if v is not None}
    failed = []
    for path in args.videos:
        try:
            text = pipe(video=path, task="v2t", generator=torch.Generator().manual_seed(args.seed), **kwargs).text[0]
        except (ValueError, OSError, RuntimeError) as error:  # a file that is not a (whole) video: say which
            print(f"{path}: error: {error}", file=sys.stderr)
            failed.append(path)
            continue
        print(f"{path}: {text}" if len(args.videos) > 1 else text)
        if args.caption:
            from ..utils.output_paths import staged_output

            with staged_output(caption_path(path), flag="--caption") as tmp:
                tmp.write_text(text + "\n", encoding="utf-8")
    if failed:
        print(f"univigu caption: {len(failed)} of {len(args.videos)} video(s) could not be captioned: "
              f"{', '.join(failed)}.", file=sys.stderr)
        return 1
    return 0
