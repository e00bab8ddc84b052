# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""`univigu evaluate`: caption every video of a dataset folder with a UniViGU pipeline and score the captions.

    univigu evaluate --model univigu-refine --data-dir shapesworld/test --reference-column caption \\
        --num-inference-steps 32 --max-text-length 64 --out results.json

Scores are BLEU-4, ROUGE-L and CIDEr-D (local 🤗 evaluate modules, no network) and, for a ShapesWorld folder, the
world's exact attribute accuracies (colour, shape, motion; size and regions for detailed captions).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from pathlib import Path

from ..data import check_columns, find_bad_samples, load_video_text_dataset, select_usable
from ..utils.cli_flags import add_argument
from ..utils.json_io import dumps_json
from ..utils.output_paths import check_new_file, check_not_an_input, staged_output
from . import compute_caption_metrics


logger = logging.getLogger(__name__)

#: Captioning settings for a checkpoint that stores none of its own (`call_defaults`).
EVALUATION_DEFAULTS = {"num_inference_steps": 32, "max_text_length": 64, "video_latents_mode": "argmax"}


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate",
        help="Caption a dataset folder with a UniViGU pipeline and score the captions.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # earlier spellings (`--pipeline`, `--data_dir`, ...) still parse, hidden from --help, for one release
    add_argument(p, "--model", old=("--pipeline",), required=True, help="A UniViGUPipeline folder (or Hub id).")
    add_argument(p, "--data-dir", old=("--data_dir",), required=True,
                 help="A folder of videos with metadata.jsonl/csv.")
    p.add_argument("--lora", default=None, help="Optional LoRA weights (a folder written by --trainable lora).")
    add_argument(p, "--reference-column", old=("--reference_column",), default="caption",
                 help="Reference texts (e.g. caption or prompt).")
    add_argument(p, "--video-column", old=("--video_column",), default="file_name")
    add_argument(p, "--num-samples", old=("--num_samples",), type=int, default=None,
                 help="Only the first N usable videos.")
    add_argument(p, "--num-inference-steps", old=("--num_inference_steps",), type=int, default=None,
                 help="Default: the pipeline's own for captioning (its call_defaults), else 32.")
    add_argument(p, "--max-text-length", old=("--max_text_length",), type=int, default=None,
                 help="Caption length in tokens. Default: the length the pipeline was trained at (its call_defaults), "
                      "else 64.")
    add_argument(p, "--num-frames", old=("--num_frames",), type=int, default=None,
                 help="Frames sampled per video, of the form Tk+1, T the VAE's time compression (4k+1 for Wan: 1, "
                      "5, 9, 13, ...; 2k+1 for the bundled ShapesWorld model). Default: the pipeline's trained count "
                      "(its call_defaults), else the largest such count the video has.")
    p.add_argument("--height", type=int, default=None, help="Default: the pipeline's trained height.")
    p.add_argument("--width", type=int, default=None, help="Default: the pipeline's trained width.")
    p.add_argument("--fps", type=float, default=None,
                   help="Frames per second each video is sampled at. Default: the pipeline's stored rate, else the "
                        "frames are spread over the whole video.")
    p.add_argument("--crop", choices=("center", "pad"), default=None,
                   help="Another aspect is centre-cropped (default) or padded with black.")
    p.add_argument("--start", type=float, default=None, help="Seconds into each video to start sampling (default 0).")
    p.add_argument("--duration", type=float, default=None, help="Seconds of each video to sample within.")
    p.add_argument("--temperature", type=float, default=1.0)
    add_argument(p, "--commit-strategy", old=("--commit_strategy",), choices=("stochastic", "confidence"),
                 default=None)
    add_argument(p, "--video-latents-mode", old=("--video_latents_mode",), choices=("sample", "argmax"),
                 default=None, help="Default: the pipeline's call_defaults, else argmax.")
    p.add_argument("--seed", type=int, default=0, help="Video i is captioned with a generator seeded seed + i.")
    add_argument(p, "--shapesworld-metrics", old=("--shapesworld",), choices=("auto", "yes", "no"), default="auto",
                 help="ShapesWorld attribute scores (auto: when the folder is a ShapesWorld dataset).")
    p.add_argument("--detailed", choices=("auto", "yes", "no"), default="auto",
                   help="Also score size/regions (auto: when the references are detailed captions).")
    p.add_argument("--device", default=None, help="Default: cuda if available, else cpu.")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    add_argument(p, "--allow-external-video-paths", old=("--allow_external_video_paths",), action="store_true",
                 help="Accept metadata file names that point outside --data-dir (absolute paths, `../`).")
    add_argument(p, "--out", old=("--output",), default=None,
                 help="Write scores and per-video captions to this JSON file. Each caption is also appended, as it "
                      "is made, to the JSON Lines file next to it (results.json -> results.samples.jsonl), so an "
                      "interrupted run keeps what was done. Neither may exist (unless --overwrite) nor be inside "
                      "--data-dir, --model or --lora.")
    p.add_argument("--overwrite", action="store_true",
                   help="Replace --out and its .samples.jsonl if they exist (never an input or a file inside one).")
    p.set_defaults(func=run_evaluate)
    return p


#: The options of `univigu evaluate` that choose the dataset's columns (named when a column is missing).
COLUMN_FLAGS = ("--reference-column", "--video-column")


def load_evaluation_data(data_dir: str, reference_column: str = "caption", video_column: str = "file_name",
                         allow_external_video_paths: bool = False):
    """The dataset of `data_dir` (a folder with metadata.jsonl/csv), its columns checked; errors name `evaluate`'s
    options."""
    raw = load_video_text_dataset(train_data_dir=data_dir, video_column=video_column, text_columns=[reference_column],
                                  allow_external_video_paths=allow_external_video_paths, flag="--data-dir")
    check_columns(raw, [video_column, reference_column], flags=COLUMN_FLAGS)
    return raw


def evaluate_folder(pipe, data_dir: str, reference_column: str = "caption", video_column: str = "file_name",
                    num_samples=None, seed: int = 0, shapesworld="auto", detailed="auto", progress: bool = True,
                    on_sample=None, allow_external_video_paths: bool = False, **call_kwargs) -> dict:
    """Captions the usable videos of `data_dir` with `pipe` (task v2t) and scores them. Returns a dict with
    `scores`, `samples` (video, reference, prediction), `data` (usable/skipped counts) and `seconds`.
    `on_sample(sample)` is called with each sample as soon as it is captioned (e.g. to save it)."""
    import torch

    raw = load_evaluation_data(data_dir, reference_column, video_column, allow_external_video_paths)
    problems = find_bad_samples(raw, video_column, [reference_column])
    rows, summary = select_usable(raw, problems, video_column)
    if num_samples is not None:
        rows = rows.select(range(min(num_samples, len(rows))))
    is_shapesworld = (Path(data_dir) / "shapesworld.json").exists()
    use_world = shapesworld == "yes" or (shapesworld == "auto" and is_shapesworld)
    references = list(rows[reference_column])
    use_detailed = detailed == "yes" or (
        detailed == "auto" and use_world and any(ref.strip().endswith(".") for ref in references)
    )
    pipe.set_progress_bar_config(disable=True)
    predictions, samples = [], []
    start = time.time()
    iterator = range(len(rows))
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="Captioning")
    for i in iterator:
        row = rows[i]
        text = pipe(video=row[video_column], task="v2t", generator=torch.Generator().manual_seed(seed + i),
                    **call_kwargs).text[0]
        predictions.append(text)
        samples.append({"video": row[video_column], "reference": row[reference_column], "prediction": text})
        if on_sample is not None:
            on_sample(samples[-1])
    seconds = time.time() - start
    scores = compute_caption_metrics(predictions, references, shapesworld=use_world, detailed=use_detailed)
    return {
        "scores": scores,
        "data": summary.to_dict() | {"evaluated": len(rows)},
        "seconds": round(seconds, 3),
        "seconds_per_video": round(seconds / max(1, len(rows)), 4),
        "samples": samples,
    }


def samples_path(output) -> Path:
    """The JSON Lines file that receives each caption as it is made: `results.json` -> `results.samples.jsonl`."""
    output = Path(output)
    return output.with_name(output.stem + ".samples.jsonl")


def _check_output(output: str, overwrite: bool = False, inputs=()) -> None:
    """Fail now, not after captioning every video: `--out` (and the .samples.jsonl next to it) must be a new file
    (or, with `--overwrite`, an old one) outside the inputs (`--data-dir`, `--model`, `--lora`, the videos), in a
    folder that can be written."""
    path = Path(output)
    if path.is_dir():
        raise IsADirectoryError(f"--out {output} is a folder; pass a file path such as {path / 'results.json'}.")
    for target in (path, samples_path(path)):
        check_not_an_input(target, inputs, "--out")
        check_new_file(target, "--out", overwrite)
        existed = target.exists()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a"):
                pass
        except OSError as error:
            raise PermissionError(
                f"Cannot write --out {output} ({type(error).__name__}: {error}). Choose another --out."
            ) from None
        if not existed:
            target.unlink()


def _write_json(path: Path, value) -> None:
    """Write JSON through a temporary file and a rename, so an interruption never leaves a truncated file. Non-finite
    numbers are written as null (bare NaN is not JSON)."""
    with staged_output(path, flag="--out") as tmp:
        tmp.write_text(dumps_json(value, indent=2))


def run_evaluate(args) -> int:
    import torch

    from ..pipelines import UniViGUPipeline
    from ..pipelines.cli import check_pipeline_folder

    logging.basicConfig(format="%(levelname)s - %(message)s", level=logging.INFO)
    # Everything that can be checked cheaply is checked before the pipeline loads and the captioning starts.
    check_pipeline_folder(args.model, "--model")
    if args.num_samples is not None and args.num_samples < 1:  # found by benchmarks/probe_bad_inputs.py
        raise ValueError(f"--num-samples must be at least 1 (or left out: every video), got {args.num_samples}.")
    raw = load_evaluation_data(args.data_dir, args.reference_column, args.video_column,
                               args.allow_external_video_paths)
    if args.out:  # the inputs include the videos (with --allow-external-video-paths, outside --data-dir too)
        videos = [v for v in raw[args.video_column] if isinstance(v, str)]
        _check_output(args.out, args.overwrite, [args.data_dir, args.model, args.lora, *videos])

    from ..pipelines.cli import check_device

    device = check_device(args.device)
    dtype = getattr(torch, args.dtype)
    import diffusers
    from packaging import version

    # diffusers 0.42 renamed `torch_dtype` to `dtype` (the old name still works, with a warning)
    dtype_key = "dtype" if version.parse(diffusers.__version__) >= version.parse("0.42.0") else "torch_dtype"
    pipe = UniViGUPipeline.from_pretrained(args.model, **{dtype_key: dtype}).to(device)
    if args.lora:
        pipe.load_lora_weights(args.lora)  # UniViGUPipeline carries UniViGULoraLoaderMixin
    def setting(name):  # left out: the checkpoint's own captioning default (what it was trained at), else ours
        given = getattr(args, name)
        stored = pipe.stored_call_default(name, "v2t")
        return given if given is not None else stored if stored is not None else EVALUATION_DEFAULTS[name]

    call_kwargs = {name: setting(name) for name in EVALUATION_DEFAULTS} | {"temperature": args.temperature}
    for key in ("num_frames", "height", "width", "fps", "crop", "start", "duration", "commit_strategy"):
        if getattr(args, key) is not None:
            call_kwargs[key] = getattr(args, key)
    with contextlib.ExitStack() as stack:
        on_sample = None
        if args.out:
            # One line per captioned video, flushed at once: an interrupted run keeps every caption made so far.
            lines = stack.enter_context(open(samples_path(args.out), "w", encoding="utf-8"))

            def on_sample(sample):
                lines.write(dumps_json(sample) + "\n")
                lines.flush()

        result = evaluate_folder(
            pipe, args.data_dir, args.reference_column, args.video_column, args.num_samples, args.seed,
            args.shapesworld_metrics, args.detailed, progress=sys.stderr.isatty(), on_sample=on_sample,
            allow_external_video_paths=args.allow_external_video_paths, **call_kwargs,
        )
    result["pipeline"] = args.model
    result["lora"] = args.lora
    result["data_dir"] = args.data_dir
    result["settings"] = call_kwargs | {"seed": args.seed}
    print(json.dumps(result["scores"], indent=2))
    print(f"{result['data']['evaluated']} videos in {result['seconds']:.1f} s "
          f"({result['data']['num_skipped']} skipped)", file=sys.stderr)
    if args.out:
        _write_json(Path(args.out), result)
    return 0


__all__ = ["add_evaluate_parser", "evaluate_folder", "load_evaluation_data", "run_evaluate", "samples_path"]
