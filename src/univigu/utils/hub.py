# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Telling a Hub repo id from a local path, so that a mistyped folder is reported as missing instead of being
looked up on the Hub (which fails offline with a connection traceback); finding one checkpoint file in a local
folder or a Hub repo and downloading only that file."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def looks_like_hub_id(text: str) -> bool:
    """`owner/name` (e.g. `Wan-AI/Wan2.1-T2V-1.3B-Diffusers`); absolute, relative or nested paths are not."""
    return _HUB_ID.fullmatch(text) is not None


#: File name endings of a checkpoint (what `univigu convert reference --checkpoint` reads).
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


@dataclass
class ResolvedCheckpoint:
    """Where a checkpoint was found: the local file, and for one from the Hub its repo id, path in the repo and the
    commit it was downloaded at (`None` for a local file or folder)."""

    path: Path
    repo_id: str | None = None
    filename: str | None = None
    commit: str | None = None


def _checkpoint_files(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if n.lower().endswith(CHECKPOINT_SUFFIXES))


def _pick_one(where: str, candidates: list[str], filename: str | None) -> str:
    """The checkpoint to use among `candidates` (paths inside `where`): `filename` if given, else the only one."""
    if filename is not None:
        if filename not in candidates:
            listed = ", ".join(candidates) if candidates else "none"
            raise FileNotFoundError(f"{where} has no checkpoint file {filename!r} (its checkpoint files: {listed}).")
        return filename
    if not candidates:
        raise FileNotFoundError(
            f"{where} holds no checkpoint file (looked for {', '.join('*' + s for s in CHECKPOINT_SUFFIXES)})."
        )
    if len(candidates) > 1:
        raise ValueError(
            f"{where} holds {len(candidates)} checkpoint files: {', '.join(candidates)}. Choose one with --filename "
            "(filename=...)."
        )
    return candidates[0]


def resolve_checkpoint(
    source: str | os.PathLike,
    filename: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> ResolvedCheckpoint:
    """Find one checkpoint file: `source` is a file, a local folder holding one checkpoint file (`filename` picks one
    of several), or a Hub repo id (e.g. `Fr0zencr4nE/Uni-ViGU`; `revision` a branch, tag or commit). From the Hub only
    that file is downloaded (`hf_hub_download`, into the Hub cache or `cache_dir`); the repo's files are listed with
    `HfApi().list_repo_files`, or, offline (`HF_HUB_OFFLINE=1`), from the cached snapshot.

    Raises:
        FileNotFoundError: no such file, folder or repo; a folder or repo without a checkpoint file; a `filename` that
            is not there.
        ValueError: several checkpoint files and no `filename` (the message lists them).
    """
    path = Path(source)
    if path.is_file():
        if filename is not None:
            raise ValueError(f"--filename picks a file inside a folder or Hub repo; {path} is already a file.")
        return ResolvedCheckpoint(path=path)
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        return ResolvedCheckpoint(path=path / _pick_one(os.fspath(path), _checkpoint_files(names), filename))
    text = os.fspath(source)
    if not looks_like_hub_id(text):
        raise FileNotFoundError(
            f"Checkpoint not found: {path} is neither a file, a folder nor a Hub repo id like Fr0zencr4nE/Uni-ViGU."
        )

    import huggingface_hub

    cache_dir = os.fspath(cache_dir) if cache_dir is not None else None
    where = f"Hub repo {text}" + (f" at revision {revision}" if revision else "")
    try:
        names = huggingface_hub.HfApi().list_repo_files(text, revision=revision)
    except Exception as online_error:  # offline, no connection: the files of the cached snapshot, if any
        try:
            snapshot = Path(huggingface_hub.snapshot_download(
                text, revision=revision, cache_dir=cache_dir, local_files_only=True,
                allow_patterns=["*" + s for s in CHECKPOINT_SUFFIXES],
            ))
        except Exception:
            reason = (str(online_error).strip().splitlines() or [""])[0]
            raise FileNotFoundError(
                f"{text} is not a local file or folder, and its files could not be listed on the Hub "
                f"({type(online_error).__name__}: {reason}) nor found in the Hub cache. Check the id and your "
                f"connection, or download the checkpoint first: `hf download {text} --local-dir Uni-ViGU` and pass "
                "--checkpoint Uni-ViGU."
            ) from online_error
        names = [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()]
    chosen = _pick_one(where, _checkpoint_files(names), filename)
    local = Path(huggingface_hub.hf_hub_download(text, chosen, revision=revision, cache_dir=cache_dir))
    # The cache layout is .../snapshots/<commit>/<filename>: the commit the file was downloaded at.
    parts = local.parts
    commit = parts[-len(Path(chosen).parts) - 1] if "snapshots" in parts else None
    return ResolvedCheckpoint(path=local, repo_id=text, filename=chosen, commit=commit)
