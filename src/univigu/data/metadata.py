# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Video-text datasets: a 🤗 `datasets.Dataset` whose video column holds paths, from

    * a folder of videos with a ``metadata.jsonl`` or ``metadata.csv`` (a "videofolder": ``file_name`` + text
      columns such as ``prompt`` / ``caption``), or
    * a dataset name (Hub, or a local ``save_to_disk`` folder) whose video column holds paths (or a ``Video``
      feature, read undecoded).

Videos are kept as path strings and decoded later (:mod:`univigu.data.video`): datasets 5's ``Video()`` feature needs
torchcodec, which we do not depend on. Metadata rows are checked first: a text column holding a non-string, or a file
name pointing outside the folder, is refused with the file, line and column.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .samples import NoUsableSamplesError


METADATA_FILENAMES = ("metadata.jsonl", "metadata.csv")


def _read_metadata_file(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """`(line number, row)` of every row of a metadata.jsonl/csv (line numbers for error messages)."""
    if path.suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{line_number} is not valid JSON: {error}") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{line_number} is a JSON {type(row).__name__}, not an object of columns.")
                rows.append((line_number, row))
        return rows
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return [(reader.line_num, dict(row)) for row in reader]


def _escapes_folder(file_name: str) -> bool:
    """Whether a metadata file name points outside its data folder: an absolute path, or one that climbs out with
    `..`. (Decided on the name, so that symlinked videos inside the folder stay usable.)"""
    return os.path.isabs(file_name) or os.path.normpath(file_name).split(os.sep)[0] == ".."


def _spelled_like(name: str, flag: str) -> str:
    """The option `name` (e.g. `--video_column`) spelled as the calling command spells `flag`: kebab-case for the
    `univigu` subcommands (`--data-dir`), underscores for the training scripts (`--train_data_dir`)."""
    return name if "_" in flag else name.replace("_", "-")


def _check_metadata_rows(metadata: Path, rows, video_column: str, text_columns: Sequence[str],
                         allow_external_video_paths: bool, flag: str = "--train_data_dir") -> None:
    """Refuse what would otherwise fail obscurely (a pyarrow type error) or silently read files elsewhere: a text
    column holding a non-string, and video file names outside the data folder. The message names file, line and
    column of each problem (and the calling command's options as it spells `flag`)."""
    wrong_type, external = [], []
    for line_number, row in rows:
        for column in text_columns:
            value = row.get(column)
            # None (and NaN, as pandas writes a missing value) is a missing text: that row is skipped and counted.
            if value is None or isinstance(value, str) or (isinstance(value, float) and math.isnan(value)):
                continue
            wrong_type.append(f"line {line_number}, column {column!r}: {type(value).__name__} {value!r:.60}")
        file_name = row.get(video_column)
        if not allow_external_video_paths and isinstance(file_name, str) and file_name and _escapes_folder(file_name):
            external.append(f"line {line_number}: {file_name!r}")
    if wrong_type:
        raise ValueError(
            f"{metadata}: text columns must hold strings (or null for a missing text); found "
            f"{len(wrong_type)} other value(s): {'; '.join(wrong_type[:5])}{' ...' if len(wrong_type) > 5 else ''}. "
            "Fix these rows (e.g. quote the text)."
        )
    if external:
        raise ValueError(
            f"{metadata}: {len(external)} {video_column!r} value(s) point outside the data folder {metadata.parent}: "
            f"{'; '.join(external[:5])}{' ...' if len(external) > 5 else ''}. File names are relative to the folder; "
            f"pass {_spelled_like('--allow_external_video_paths', flag)} to read videos from elsewhere."
        )


def _type_conflict(metadata: Path, rows) -> str | None:
    """The first row whose value in some column has a type Arrow cannot put in one column with the rows before it
    (e.g. a number after strings), as `file:line: column ...`; None if there is none."""
    def kind(value):
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, (int, float)):
            return "number"
        return type(value).__name__

    first_kind: dict[str, tuple[str, int]] = {}
    for line_number, row in rows:
        for column, value in row.items():
            if value is None:
                continue
            if column not in first_kind:
                first_kind[column] = (kind(value), line_number)
            elif kind(value) != first_kind[column][0]:
                expected, first_line = first_kind[column]
                return (f"{metadata}:{line_number}: column {column!r} holds {type(value).__name__} {value!r:.60}, "
                        f"but line {first_line} (and the rows up to here) hold {expected} values")
    return None


def load_video_text_dataset(
    train_data_dir: str | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    split: str = "train",
    video_column: str = "file_name",
    cache_dir: str | None = None,
    text_columns: Sequence[str] = (),
    allow_external_video_paths: bool = False,
    flag: str = "--train_data_dir",
):
    """A `datasets.Dataset` whose `video_column` holds absolute video paths (strings) plus the text columns.

    `train_data_dir`: a folder with `metadata.jsonl` (or `.csv`) and the videos (paths relative to it).
    `dataset_name`: a local `save_to_disk` folder, a local folder with a metadata file, or a Hub dataset name.
    `text_columns`: columns of a metadata file that must hold strings (or null); anything else is an error naming
    the file, line and column.
    `allow_external_video_paths`: accept metadata file names that point outside the folder (absolute, `../`).
    `flag`: the calling command's option for the folder, named in error messages.
    """
    import datasets

    if (train_data_dir is None) == (dataset_name is None):
        raise ValueError("Pass exactly one of `--train_data_dir` (a folder with metadata.jsonl/csv) and `--dataset_name`.")
    if dataset_name is not None and os.path.isdir(dataset_name):
        if any(os.path.exists(os.path.join(dataset_name, name))
               for name in ("state.json", "dataset_info.json", "dataset_dict.json")):
            dataset = datasets.load_from_disk(dataset_name)
            if isinstance(dataset, datasets.DatasetDict):
                dataset = dataset[split]
            return _normalise_video_column(dataset, video_column, base_dir=dataset_name)
        train_data_dir, dataset_name = dataset_name, None

    if train_data_dir is not None:
        root = Path(train_data_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"{flag} {train_data_dir!r} is not a folder.")
        metadata = next((root / name for name in METADATA_FILENAMES if (root / name).exists()), None)
        if metadata is None:
            raise FileNotFoundError(
                f"{root} has no metadata.jsonl or metadata.csv: write one row per video with its "
                f"{video_column!r} (path relative to the folder) and text columns (e.g. prompt, caption)."
            )
        rows = _read_metadata_file(metadata)
        if not rows:
            raise NoUsableSamplesError(f"{metadata} has no rows.")
        if not any(video_column in row for _, row in rows):
            raise ValueError(
                f"{metadata} has no column {video_column!r} (columns: {sorted(rows[0][1])}); "
                f"pass {_spelled_like('--video_column', flag)}."
            )
        _check_metadata_rows(metadata, rows, video_column, text_columns, allow_external_video_paths, flag)
        # Keep string columns (and ids) as they are; nested values (e.g. a scene dict) become JSON strings so that
        # Arrow infers one schema whatever the rows hold.
        clean_rows = []
        for _, row in rows:
            out = {}
            for key, value in row.items():
                if isinstance(value, (dict, list)):
                    value = json.dumps(value, sort_keys=True)
                elif key in text_columns and isinstance(value, float):  # NaN: a missing text (checked above)
                    value = None
                out[key] = value
            file_name = out.get(video_column)
            out[video_column] = str(root / file_name) if isinstance(file_name, str) and file_name else None
            clean_rows.append(out)
        columns = sorted({key for row in clean_rows for key in row})
        try:
            return datasets.Dataset.from_dict({key: [row.get(key) for row in clean_rows] for key in columns})
        except (TypeError, ValueError) as error:  # pyarrow's ArrowInvalid / ArrowTypeError: name the row instead
            conflict = _type_conflict(metadata, [(n, r) for (n, _), r in zip(rows, clean_rows)])
            if conflict is None:
                raise
            raise ValueError(f"{conflict}: one column must hold one type. Fix that row.") from error

    dataset = datasets.load_dataset(dataset_name, dataset_config_name, split=split, cache_dir=cache_dir)
    return _normalise_video_column(dataset, video_column)


def _normalise_video_column(dataset, video_column: str, base_dir: str | None = None):
    import datasets

    if video_column not in dataset.column_names:
        raise ValueError(f"The dataset has no column {video_column!r} (columns: {dataset.column_names}).")
    feature = dataset.features[video_column]
    if type(feature).__name__ == "Video":
        # Read the undecoded {path, bytes} instead of decoding through torchcodec.
        dataset = dataset.cast_column(video_column, datasets.Video(decode=False))

    def to_path(example):
        value = example[video_column]
        if isinstance(value, dict):
            value = value.get("path") or value.get("bytes")
        if isinstance(value, str) and base_dir is not None and not os.path.isabs(value):
            value = os.path.join(base_dir, value)
        example[video_column] = value if isinstance(value, (str, bytes)) else None
        return example

    # keep_in_memory: never write cache files next to the user's dataset
    return dataset.map(to_path, desc="video paths", keep_in_memory=True)


__all__ = ["METADATA_FILENAMES", "load_video_text_dataset"]
