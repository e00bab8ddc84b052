# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""What a training run writes besides checkpoints and the model: the output folder's checks (a folder holding
another run is refused, `--overwrite_output_dir` clears it but never an input of the run), the per-step loss log
that survives resumes, and the loss plot."""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import List, Optional

from ..utils.json_io import dumps_json
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

    def read(self) -> List[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def plot_losses(history: List[dict], path: Path, title: str = "") -> Optional[Path]:
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



def previous_run_files(output_dir, logging_dir: str = "logs") -> List[str]:
    """What in `output_dir` shows that a training run already wrote there (names relative to it): checkpoints (also
    half-written ones), a final pipeline or LoRA, the summary, the loss log."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = sorted(p.name + "/" for p in output_dir.iterdir()
                   if p.is_dir() and (CHECKPOINT_PATTERN.match(p.name) or p.name.startswith(TMP_PREFIX)))
    for name in ("model_index.json", "pytorch_lora_weights.safetensors", "training_summary.json",
                 f"{logging_dir}/losses.jsonl"):
        if (output_dir / name).exists():
            found.append(name)
    return found


def _run_inputs(args) -> List[Path]:
    """The local paths a run reads (which --overwrite_output_dir must never delete)."""
    candidates = [args.pretrained_model_name_or_path, args.train_data_dir, args.validation_data_dir,
                  args.dataset_name, args.fuse_lora_weights]
    return [Path(c) for c in candidates if c and os.path.exists(c)]


def check_output_dir(args) -> List[str]:
    """Checks, before anything is loaded, that `--output_dir` can take this run; returns the files of a previous run
    found there (to be cleared with `--overwrite_output_dir`).

    Refused: a folder holding a previous run without `--resume_from_checkpoint` or `--overwrite_output_dir` (its final
    model, checkpoints and logs would be overwritten piecemeal, and `latest` would point at the old run's
    checkpoints); `--overwrite_output_dir` when the folder holds an input of the run; a folder that cannot be written.
    """
    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output_dir {output_dir} is a file, not a folder. Choose another --output_dir.")
    if args.overwrite_output_dir and args.resume_from_checkpoint:
        raise ValueError(
            "--overwrite_output_dir deletes the checkpoints that --resume_from_checkpoint would resume from: pass "
            "one of the two."
        )
    found = previous_run_files(output_dir, args.logging_dir)
    if found and not args.resume_from_checkpoint and not args.overwrite_output_dir:
        shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "")
        raise FileExistsError(
            f"--output_dir {output_dir} already holds a training run ({shown}). Pass --resume_from_checkpoint latest "
            "to continue it, --overwrite_output_dir to delete it and start again, or choose another --output_dir."
        )
    if found and args.overwrite_output_dir:
        real = output_dir.resolve()
        inside = [p for p in _run_inputs(args) if p.resolve() == real or real in p.resolve().parents]
        if inside:
            raise ValueError(
                f"--overwrite_output_dir would delete {output_dir}, which holds an input of this run "
                f"({', '.join(map(str, inside))}). Choose another --output_dir."
            )
    _check_writable_dir(output_dir)
    return found


def _check_writable_dir(folder: Path) -> None:
    """Create `folder` (with its parents) and write a probe file in it; a clear error now instead of a lost run."""
    probe = folder / f".univigu-write-test-{uuid.uuid4().hex}"  # unique across processes and machines
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(
            f"--output_dir {folder} is not writable ({type(error).__name__}: {error}). Choose another --output_dir."
        ) from None


def clear_output_dir(output_dir: Path, keep=()) -> None:
    """Delete the contents of a previous run's `output_dir` (the folder itself stays), except the paths in `keep`
    and the folders that contain them (e.g. a latent cache kept inside the run folder: it is reusable)."""
    kept = [Path(k).resolve() for k in keep if k]
    for entry in Path(output_dir).iterdir():
        real = entry.resolve()
        if any(real == k or real in k.parents for k in kept):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


__all__ = ["LossHistory", "check_output_dir", "clear_output_dir", "plot_losses", "previous_run_files"]
