# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The overwrite rule every command that writes follows (docs/pipeline.md, "What a command writes"):

* an existing file, or a folder holding anything, is replaced only when the user says so (`--overwrite`; the training
  scripts: `--overwrite_output_dir`);
* an output is never one of the command's inputs, nor inside or around one, even with `--overwrite`;
* what is written goes to a temporary sibling first and is renamed into place when complete, so an interrupted
  command leaves the old output as it was; the staging left by a command that was killed is removed by the next one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path


logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


def overlap(a: PathLike, b: PathLike) -> str | None:
    """How path `a` relates to path `b` on disk ("is", "contains", "is inside"), or None. Real locations are compared,
    so `..`, symlinks and relative paths cannot hide an overlap."""
    a, b = Path(a).resolve(), Path(b).resolve()
    if a == b:
        return "is"
    if a in b.parents:
        return "contains"
    if b in a.parents:
        return "is inside"
    return None


def check_not_an_input(output: PathLike, inputs: Iterable[PathLike | None], flag: str,
                       allow_contains: bool = False) -> None:
    """Refuse an output (`flag`, e.g. `--out`) that is, lies inside or (unless `allow_contains`) contains one of the
    command's `inputs` (paths that do not exist locally, e.g. Hub ids, are skipped). No flag lifts this."""
    for item in inputs:
        if item is None or not os.path.exists(item):
            continue
        relation = overlap(output, item)
        if relation is None or (relation == "contains" and allow_contains):
            continue
        harm = {"is": "overwrite", "contains": "delete or change", "is inside": "write into"}[relation]
        raise ValueError(
            f"{flag} {output} {relation} the input {item}: writing there would {harm} the input, and --overwrite "
            f"does not allow that. Choose another {flag} (outside the inputs)."
        )


def check_new_file(path: PathLike, flag: str, overwrite: bool = False, overwrite_flag: str = "--overwrite") -> None:
    """Refuse to replace an existing `path` (the output given as `flag`, or a file derived from it) without
    `overwrite`; a folder is refused always (it is not a file)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{flag}: {path} is a folder, not a file. Choose another {flag}.")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(
            f"{path} exists. Pass {overwrite_flag} to replace it, or choose another {flag}."
        )


def check_writable_parent(path: PathLike, flag: str) -> None:
    """The folder that will hold file `path` exists and can be written (checked before any long work)."""
    folder = Path(path).absolute().parent
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot write {flag} {path}: the folder {folder} does not exist (create it first).")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"Cannot write {flag} {path}: {folder} is not writable. Choose another {flag}.")


def _staging_name(path: Path, kind: str) -> Path:
    """A hidden sibling of `path` that says what it is and which process made it: `.clip.mp4.tmp-<pid>-<hex>.mp4`
    (the same suffix, for writers that choose the format by it)."""
    return path.absolute().parent / f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (another user's), or we cannot tell: keep its files
    return True


def _staged_pid(entry: Path, name: str, kind: str) -> int | None:
    prefix = f".{name}.{kind}-"
    if not entry.name.startswith(prefix):
        return None
    pid = entry.name[len(prefix):].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_staging(path: PathLike) -> None:
    """Clean up after a command that was killed while writing `path` (a file or folder staged by
    :func:`staged_output`): its temporary copy is removed; an old output it had moved aside is put back if `path` is
    missing (the kill came between the two renames), else removed (the replacement was complete). Staging of a
    process that still runs is left alone."""
    path = Path(path).absolute()
    parent = path.parent
    if not parent.is_dir():
        return
    for entry in sorted(parent.iterdir()):
        for kind in ("tmp", "old"):
            pid = _staged_pid(entry, path.name, kind)
            if pid is None or pid == os.getpid() or _process_alive(pid):
                continue
            if kind == "old" and not (path.exists() or path.is_symlink()):
                logger.warning("Restoring %s from %s, left by an interrupted command.", path, entry)
                os.rename(entry, path)
            else:
                logger.warning("Removing %s, left by an interrupted command.", entry)
                _remove(entry)


@contextlib.contextmanager
def staged_output(path: PathLike, folder: bool = False, flag: str = "output"):
    """Write `path` (a file, or with `folder=True` a folder) through a temporary sibling: yields the temporary path;
    when the block finishes it replaces `path`. If the block fails, the temporary path is removed and `path` is left
    as it was. Whether `path` may be replaced is the caller's check (:func:`check_new_file`, ...); `flag` is the
    option that named it (for messages)."""
    path = Path(path)
    remove_stale_staging(path)
    tmp = _staging_name(path, "tmp")
    if folder:
        # mkdir (not mkdtemp, whose 0700 mode the output would keep)
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
        except OSError as error:
            raise PermissionError(f"Cannot write {flag} {path} ({error}); choose another {flag}.") from None
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not folder:
        os.replace(tmp, path)  # atomic for a file
        return
    old = None
    if path.is_symlink() or path.exists():
        # Move the old output aside first (a rename), so that there is no moment without one of the two folders.
        old = _staging_name(path, "old")
        os.rename(path, old)
    os.rename(tmp, path)
    if old is not None:
        _remove(old)


__all__ = ["check_new_file", "check_not_an_input", "check_writable_parent", "overlap", "remove_stale_staging",
           "staged_output"]
