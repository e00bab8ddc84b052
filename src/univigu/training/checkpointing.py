# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Atomic accelerate checkpoints.

`accelerator.save_state` writes into `output_dir/.tmp-checkpoint-N/`; only when every file (model, optimizer,
scheduler, RNG states, our `univigu_state.json`) is written does the main process rename it to
`output_dir/checkpoint-N/`. A rename within one folder is atomic on POSIX file systems, so a run killed mid-write
leaves a `.tmp-*` folder that is never taken for a checkpoint (and is removed at the next start), and "latest" is
always a complete checkpoint.

The state file also records the size and sha256 of every file of the checkpoint. A resume (`resolve_checkpoint`)
checks them, and that the weights are finite: a checkpoint with a truncated or corrupt file, or NaN/inf weights, is
named (file and tensor) and refused; with `latest` the run falls back to the previous complete checkpoint, saying so.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path


logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TMP_PREFIX = ".tmp-checkpoint-"
STATE_FILENAME = "univigu_state.json"
# Test hook: make the process stop for good inside the write of checkpoint N (after the state is on disk, before the
# rename), so a test can SIGKILL it mid-write deterministically.
DEBUG_HANG_ENV = "UNIVIGU_DEBUG_HANG_IN_CHECKPOINT"


def list_checkpoints(output_dir) -> list[Path]:
    """Complete checkpoints (`checkpoint-N` folders holding our state file), oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for entry in output_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(entry.name)
        if match and entry.is_dir() and (entry / STATE_FILENAME).exists():
            found.append((int(match.group(1)), entry))
    return [path for _, path in sorted(found)]


def latest_checkpoint(output_dir) -> Path | None:
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_checkpoint(output_dir, resume_from_checkpoint: str) -> Path | None:
    """`"latest"` -> the newest complete checkpoint (None if there is none); a name -> `output_dir/name`; a path.

    Each is checked (`checkpoint_problem`): with `latest`, a damaged checkpoint is named in a warning and the previous
    one is taken; a damaged checkpoint named explicitly, or every checkpoint damaged, raises a `ValueError` naming
    the files."""
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        damaged = []
        for path in reversed(checkpoints):
            problem = checkpoint_problem(path)
            if problem is None:
                if damaged:
                    logger.warning("Not resuming from %s: %s. Falling back to the previous complete checkpoint, %s.",
                                   damaged[-1][0].name if len(damaged) == 1 else ", ".join(d[0].name for d in damaged),
                                   "; ".join(d[1] for d in damaged), path)
                return path
            damaged.append((path, problem))
        if damaged:
            raise ValueError(
                f"No checkpoint in {output_dir} can be resumed from: " + "; ".join(d[1] for d in damaged)
                + ". Restore the files, or start a new run in another --output_dir."
            )
        return None
    path = Path(resume_from_checkpoint)
    if not path.is_absolute() and not path.exists():
        path = Path(output_dir) / resume_from_checkpoint
    if not (path / STATE_FILENAME).exists():
        raise FileNotFoundError(
            f"{path} is not a complete univigu checkpoint (no {STATE_FILENAME}); pass `latest` or one of "
            f"{[p.name for p in list_checkpoints(output_dir)]}."
        )
    problem = checkpoint_problem(path)
    if problem is not None:
        others = [p.name for p in list_checkpoints(output_dir) if p.resolve() != path.resolve()]
        raise ValueError(f"Cannot resume from {path}: {problem}. Restore the file, or pass `latest` (which falls "
                         f"back to the newest sound checkpoint) or another checkpoint ({others}).")
    return path


def read_checkpoint_state(path) -> dict:
    return json.loads((Path(path) / STATE_FILENAME).read_text())


def _sha256(path: Path) -> str:
    from ..pipelines.serialization import _sha256 as sha256  # the pipeline folder's checksums hash the same way

    return sha256(path)


def file_manifest(folder) -> dict:
    """`{relative path: {"bytes", "sha256"}}` of every file under `folder` but the state file."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != STATE_FILENAME}


def _non_finite_tensor(path: Path) -> str | None:
    """The first tensor of a safetensors file holding NaN or inf, or None."""
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            tensor = f.get_tensor(key)
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                return key
    return None


def checkpoint_problem(path) -> str | None:
    """Why the checkpoint folder `path` cannot be resumed from, naming the file (and tensor), or None: an unreadable
    state file, a file missing, truncated or changed since it was written (the sizes and sha256 the state file
    records; checkpoints written before it recorded them are checked by reading their safetensors files), or weights
    holding NaN or inf."""
    path = Path(path)
    try:
        state = read_checkpoint_state(path)
        if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
            return f"{path / STATE_FILENAME} has no integer global_step"
    except (OSError, ValueError) as error:
        return f"{path / STATE_FILENAME} is unreadable ({type(error).__name__}: {error})"
    recorded = state.get("files")
    if isinstance(recorded, dict):
        for rel, expected in recorded.items():
            file = path / rel
            if not file.is_file():
                return f"{file} is missing"
            size = file.stat().st_size
            if size != expected.get("bytes"):
                return f"{file} is truncated or damaged ({size} bytes, {expected.get('bytes')} when written)"
            if _sha256(file) != expected.get("sha256"):
                return f"{file} is corrupt (its content differs from the sha256 recorded when it was written)"
    for file in sorted(path.rglob("*.safetensors")):
        try:
            bad = _non_finite_tensor(file)
        except Exception as error:  # safetensors raises its own error types for a truncated header or data
            return f"{file} is unreadable ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        if bad is not None:
            return f"{file}: tensor {bad!r} holds NaN or inf values (the run had diverged when it was saved)"
    return None


def remove_incomplete_checkpoints(output_dir):
    """Deletes the `.tmp-checkpoint-*` folders of runs killed while saving."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return
    for entry in output_dir.iterdir():
        if entry.name.startswith(TMP_PREFIX) and entry.is_dir():
            logger.warning("Removing %s, a checkpoint whose write never finished.", entry)
            shutil.rmtree(entry, ignore_errors=True)


def _fsync_tree(path: Path):
    for root, _, files in os.walk(path):
        for name in files:
            try:
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)


def save_checkpoint(accelerator, output_dir, global_step: int, state: dict, total_limit: int | None = None) -> Path:
    """Saves the accelerate state of every prepared object atomically as `output_dir/checkpoint-{global_step}`.

    Every process must call it (FSDP/DeepSpeed shard their state). `state` (JSON) is stored in `univigu_state.json`.
    With `total_limit`, only the newest `total_limit` checkpoints are kept (older ones are deleted after the new one
    is complete, so there is never a moment without a complete checkpoint).
    """
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{global_step}"
    tmp = output_dir / f"{TMP_PREFIX}{global_step}"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = dict(state, global_step=global_step, files=file_manifest(tmp))
        (tmp / STATE_FILENAME).write_text(json.dumps(state, indent=2))
        _fsync_tree(tmp)
        hang = os.environ.get(DEBUG_HANG_ENV)
        if hang is not None and int(hang) == global_step:
            print(f"UNIVIGU_DEBUG: checkpoint-{global_step} is half-written in {tmp}", flush=True)
            sys.stdout.flush()
            time.sleep(3600)
        if final.exists():  # re-saving the same step (e.g. after a resume): replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
        if total_limit is not None and total_limit > 0:
            checkpoints = list_checkpoints(output_dir)
            for old in checkpoints[: max(0, len(checkpoints) - total_limit)]:
                logger.info("Removing %s (checkpoints_total_limit=%d).", old, total_limit)
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


__all__ = [
    "checkpoint_problem",
    "file_manifest",
    "list_checkpoints",
    "latest_checkpoint",
    "resolve_checkpoint",
    "read_checkpoint_state",
    "remove_incomplete_checkpoints",
    "save_checkpoint",
]
