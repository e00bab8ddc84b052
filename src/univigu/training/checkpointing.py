# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Atomic accelerate checkpoints.

`accelerator.save_state` writes into `output_dir/.tmp-checkpoint-N/`; only when every file (model, optimizer,
scheduler, RNG states, our `univigu_state.json`) is written does the main process rename it to
`output_dir/checkpoint-N/`. A rename within one folder is atomic on POSIX file systems, so a run killed mid-write
leaves a `.tmp-*` folder that is never taken for a checkpoint (and is removed at the next start), and "latest" is
always a complete checkpoint.
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
from typing import List, Optional


logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TMP_PREFIX = ".tmp-checkpoint-"
STATE_FILENAME = "univigu_state.json"
# Test hook: make the process stop for good inside the write of checkpoint N (after the state is on disk, before the
# rename), so a test can SIGKILL it mid-write deterministically.
DEBUG_HANG_ENV = "UNIVIGU_DEBUG_HANG_IN_CHECKPOINT"


def list_checkpoints(output_dir) -> List[Path]:
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


def latest_checkpoint(output_dir) -> Optional[Path]:
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_checkpoint(output_dir, resume_from_checkpoint: str) -> Optional[Path]:
    """`"latest"` -> the newest complete checkpoint (None if there is none); a name -> `output_dir/name`; a path."""
    if resume_from_checkpoint == "latest":
        return latest_checkpoint(output_dir)
    path = Path(resume_from_checkpoint)
    if not path.is_absolute() and not path.exists():
        path = Path(output_dir) / resume_from_checkpoint
    if not (path / STATE_FILENAME).exists():
        raise FileNotFoundError(
            f"{path} is not a complete univigu checkpoint (no {STATE_FILENAME}); pass `latest` or one of "
            f"{[p.name for p in list_checkpoints(output_dir)]}."
        )
    return path


def read_checkpoint_state(path) -> dict:
    return json.loads((Path(path) / STATE_FILENAME).read_text())


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


def save_checkpoint(accelerator, output_dir, global_step: int, state: dict, total_limit: Optional[int] = None) -> Path:
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
        (tmp / STATE_FILENAME).write_text(json.dumps(dict(state, global_step=global_step), indent=2))
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
    "list_checkpoints",
    "latest_checkpoint",
    "resolve_checkpoint",
    "read_checkpoint_state",
    "remove_incomplete_checkpoints",
    "save_checkpoint",
]
