# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""What a training run writes besides checkpoints and the model: the output folder's checks (a folder holding
another run is refused, `--overwrite_output_dir` clears what a run wrote there but never an input of the run nor
anyone else's files), the per-step loss log that survives resumes, and the loss plot."""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from pathlib import Path

from ..utils.json_io import dumps_json
from ..utils.output_paths import overlap
from . import checkpointing
from .checkpointing import CHECKPOINT_PATTERN, TMP_PREFIX


class LossHistory:
    """Per-step losses in `output_dir/logs/losses.jsonl` (survives resumes: steps past the resumed one are dropped)."""

    def __init__(self, path: Path, enabled: bool):
        self.path = path
        self.enabled = enabled

    def truncate(self, global_step: int):
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= global_step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def reset(self):
        if self.enabled and self.path.exists():
            self.path.unlink()

    def append(self, record: dict):
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(dumps_json(record) + "\n")  # a non-finite loss is written as null

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def plot_losses(history: list[dict], path: Path, title: str = "") -> Path | None:
    """A PNG with the total, video and text losses per step (raw and smoothed)."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [r["step"] for r in history]
    for ax, key in zip(axes, ("loss", "video_loss", "text_loss")):
        values = [float("nan") if r.get(key) is None else r[key] for r in history]  # null: a non-finite loss
        ax.plot(steps, values, alpha=0.35, label="per step")
        smooth, ema = [], None
        for v in values:
            if v is not None and not math.isnan(v):
                ema = v if ema is None else 0.9 * ema + 0.1 * v
            smooth.append(ema if ema is not None else float("nan"))
        ax.plot(steps, smooth, label="EMA 0.9")
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path



#: What a training run writes at the top of `--output_dir`, besides `checkpoint-N/`, `.tmp-checkpoint-N/` and
#: `--logging_dir`: the final pipeline (model_index.json and its component folders) or LoRA (with base_model.json and,
#: from Wan, base_pipeline/), the summary, the loss plot, the validation captions.
_PIPELINE_OUTPUTS = ("model_index.json", "transformer", "vae", "text_encoder", "tokenizer", "scheduler",
                     "text_scheduler")
RUN_OUTPUTS = _PIPELINE_OUTPUTS + ("pytorch_lora_weights.safetensors", "base_model.json", "base_pipeline",
                                   "training_summary.json", "loss.png", "validation")
_PROBE_PREFIX = ".univigu-write-test-"


def _is_univigu_pipeline(output_dir: Path) -> bool:
    """Whether `output_dir/model_index.json` is a UniViGUPipeline's (what a run saves); absent counts as yes."""
    index = output_dir / "model_index.json"
    if not index.exists():
        return True
    try:
        return json.loads(index.read_text()).get("_class_name") == "UniViGUPipeline"
    except (OSError, ValueError, AttributeError):
        return False


def classify_output_dir(output_dir, logging_dir: str = "logs", keep=()):
    """`(run, other)`: the entries at the top of `output_dir` that a training run writes (see `RUN_OUTPUTS`), and
    the others (a user's files, another kind of model folder), as sorted lists of names (folders end in "/"). The
    paths in `keep` (a latent cache) and the folders holding them, empty folders and write probes are in neither."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return [], []
    # a pipeline folder of another kind (a Wan model) is not a run's: none of it is deleted
    names = set(RUN_OUTPUTS) - (set() if _is_univigu_pipeline(output_dir) else set(_PIPELINE_OUTPUTS))
    logging_top = Path(logging_dir).parts[0] if logging_dir and not Path(logging_dir).is_absolute() else None
    kept = [Path(k).resolve() for k in keep if k]
    run, other = [], []
    for entry in sorted(output_dir.iterdir()):
        real = entry.resolve()
        if entry.name.startswith(_PROBE_PREFIX) or any(real == k or real in k.parents for k in kept):
            continue
        is_dir = entry.is_dir()
        if is_dir and not entry.is_symlink() and not any(entry.iterdir()):
            continue  # an empty folder: nothing in it to lose
        shown = entry.name + ("/" if is_dir else "")
        ours = entry.name in names or entry.name == logging_top or (
            is_dir and (CHECKPOINT_PATTERN.match(entry.name) or entry.name.startswith(TMP_PREFIX)))
        (run if ours else other).append(shown)
    return run, other


def previous_run_files(output_dir, logging_dir: str = "logs", keep=()) -> list[str]:
    """What in `output_dir` a training run wrote (names relative to it, folders ending in "/"): checkpoints (also
    half-written ones), a final pipeline or LoRA, the summary, the logs."""
    return classify_output_dir(output_dir, logging_dir, keep)[0]


def _run_inputs(args) -> list[tuple]:
    """`(flag, path)` of the local paths a run reads (which it must never write into, nor delete)."""
    flags = ("--pretrained_model_name_or_path", "--train_data_dir", "--validation_data_dir", "--dataset_name",
             "--fuse_lora_weights")
    return [(flag, getattr(args, flag[2:])) for flag in flags
            if getattr(args, flag[2:]) and os.path.exists(getattr(args, flag[2:]))]


def _shown(names: list[str]) -> str:
    return ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")


def check_output_dir(args) -> list[str]:
    """Checks, before anything is loaded, that `--output_dir` can take this run; returns the files of a previous run
    found there (to be cleared with `--overwrite_output_dir`).

    Taken: a new or empty folder (a `--latents_cache_dir` inside it is fine); a previous run's folder with
    `--resume_from_checkpoint` (a complete checkpoint must be there) or `--overwrite_output_dir` (which deletes only
    what a run wrote). Refused, whatever the flags: a folder that is, lies inside or holds an input of the run (the
    base model, the data); a folder holding files that no run wrote; `--resume_from_checkpoint latest` on a folder
    holding a finished run or a base model but no checkpoint (it would start a new run over it). Also refused: a
    previous run without either flag, both flags together, a folder that cannot be written.
    """
    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir} is a file, not a folder. Choose another --output_dir.")
    if args.overwrite_output_dir and args.resume_from_checkpoint:
        raise ValueError(
            "--overwrite_output_dir deletes the checkpoints that --resume_from_checkpoint would resume from: pass "
            "one of the two."
        )
    for flag, item in _run_inputs(args):
        relation = overlap(output_dir, item)
        if relation:
            raise ValueError(
                f"--output_dir {output_dir} {relation} {flag} {item}: a run there would write into or delete an "
                "input of this run (with or without --overwrite_output_dir). Choose another --output_dir."
            )
    found, other = classify_output_dir(output_dir, args.logging_dir, keep=[args.latents_cache_dir])
    checkpoint = None
    if args.resume_from_checkpoint:
        checkpoint = checkpointing.resolve_checkpoint(output_dir, args.resume_from_checkpoint)  # a bad name: now
    if other and checkpoint is None:
        raise FileExistsError(
            f"--output_dir {output_dir} holds files that no training run wrote ({_shown(other)}). A run starts only "
            "in a new or empty folder (--overwrite_output_dir removes an earlier run's files, never others). Choose "
            "another --output_dir, or move those files away."
        )
    if found and args.resume_from_checkpoint and checkpoint is None:
        raise FileExistsError(
            f"--output_dir {output_dir} holds a training run ({_shown(found)}) but no complete checkpoint: "
            f"--resume_from_checkpoint {args.resume_from_checkpoint} would start a new run over it. Pass "
            "--overwrite_output_dir instead to delete it and start again, or choose another --output_dir."
        )
    if found and not args.resume_from_checkpoint and not args.overwrite_output_dir:
        raise FileExistsError(
            f"--output_dir {output_dir} already holds a training run ({_shown(found)}). Pass --resume_from_checkpoint "
            "latest to continue it, --overwrite_output_dir to delete it and start again, or choose another "
            "--output_dir."
        )
    _check_writable_dir(output_dir)
    return found


def _check_writable_dir(folder: Path) -> None:
    """Create `folder` (with its parents) and write a probe file in it; a clear error now instead of a lost run."""
    probe = folder / f"{_PROBE_PREFIX}{uuid.uuid4().hex}"  # unique across processes and machines
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(
            f"--output_dir {folder} is not writable ({type(error).__name__}: {error}). Choose another --output_dir."
        ) from None


def clear_output_dir(output_dir: Path, keep=(), logging_dir: str = "logs") -> None:
    """Delete what a previous training run wrote in `output_dir` (the folder itself stays): only the entries
    :func:`classify_output_dir` counts as a run's; the paths in `keep` and the folders that contain them (e.g. a
    latent cache kept inside the run folder: it is reusable), and anything else, stay."""
    for name in previous_run_files(output_dir, logging_dir, keep):
        entry = Path(output_dir) / name.rstrip("/")
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


__all__ = ["LossHistory", "RUN_OUTPUTS", "check_output_dir", "classify_output_dir", "clear_output_dir", "plot_losses",
           "previous_run_files"]
