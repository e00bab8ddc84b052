# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Bad samples: which rows of a video-text dataset cannot be used (a missing text, an unreadable or too short video),
why, and what is left.

Bad samples are skipped with a warning and counted in a :class:`DataSummary`; a dataset with no usable sample raises
:class:`NoUsableSamplesError`. With an accelerate `Accelerator`, each process probes a share of the videos.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .video import BadSample


if TYPE_CHECKING:
    from .preprocessing import VideoPreprocessing


logger = logging.getLogger(__name__)


class NoUsableSamplesError(ValueError):
    """The dataset has no sample that can be trained on."""


@dataclasses.dataclass
class DataSummary:
    """What was kept and what was skipped, and why (`skipped`: reason kind -> count)."""

    total: int = 0
    usable: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    examples: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_problems(cls, total: int, problems: dict[int, str], labels: dict[int, str] | None = None,
                      max_examples: int = 20) -> DataSummary:
        summary = cls(total=total, usable=total - len(problems))
        for index in sorted(problems):
            reason = problems[index]
            kind = reason.split(":")[0].split(" (")[0]
            summary.skipped[kind] = summary.skipped.get(kind, 0) + 1
            if len(summary.examples) < max_examples:
                label = (labels or {}).get(index, f"sample {index}")
                summary.examples.append(f"{label}: {reason}")
        return summary

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def describe(self) -> str:
        if not self.num_skipped:
            return f"{self.usable}/{self.total} samples usable"
        reasons = ", ".join(f"{n} {kind}" for kind, n in sorted(self.skipped.items()))
        return f"{self.usable}/{self.total} samples usable, {self.num_skipped} skipped ({reasons})"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"num_skipped": self.num_skipped}


def text_problem(value) -> str | None:
    """Why a text value cannot be trained on, or None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing text"
    if not isinstance(value, str) or not value.strip():
        return "missing text"
    return None


def check_columns(dataset, columns: Sequence[str],
                  flags: Sequence[str] = ("--caption_column", "--condition_column", "--video_column")):
    """Raise if a column is missing; the message names `flags`, the options of the calling command that choose the
    columns (the training scripts' by default)."""
    missing = [c for c in dict.fromkeys(columns) if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"The dataset has no column(s) {missing} (columns: {dataset.column_names}). Pass {' / '.join(flags)} "
            f"to name the right ones."
        )


def row_label(value, index: int) -> str:
    return f"sample {index} ({os.path.basename(value)})" if isinstance(value, str) else f"sample {index}"


def process_share(indices: Sequence[int], accelerator) -> list[int]:
    """This process's share of `indices` (every `num_processes`-th one) under an accelerate `Accelerator`."""
    if accelerator is None or accelerator.num_processes == 1:
        return list(indices)
    return list(indices)[accelerator.process_index :: accelerator.num_processes]


def gather_dicts(local: dict[int, str], accelerator) -> dict[int, str]:
    """The union of every process's `local` dict."""
    if accelerator is None or accelerator.num_processes == 1:
        return dict(local)
    from accelerate.utils import gather_object

    merged = {}
    for part in gather_object([local]):
        merged.update(part)
    return merged


def find_bad_samples(
    dataset,
    video_column: str,
    text_columns: Sequence[str],
    preprocessing: VideoPreprocessing | None = None,
    skip: dict[int, str] | None = None,
    accelerator=None,
    warn: bool = True,
) -> dict[int, str]:
    """`{row index: reason}` for the rows that cannot be trained on: a missing/empty text in one of `text_columns`,
    and (when `preprocessing` is given) a video that does not decode to enough frames. Rows already in `skip` are
    not checked again. With an `accelerator`, the videos are probed by all processes, each a share. Every problem
    is logged as a warning (by the main process)."""
    check_columns(dataset, [video_column, *text_columns])
    problems: dict[int, str] = dict(skip or {})
    labels = {}
    texts = dataset.select_columns([video_column, *dict.fromkeys(text_columns)])
    for index, row in enumerate(texts):
        if index in problems:
            continue
        for column in text_columns:
            problem = text_problem(row[column])
            if problem:
                problems[index] = f"{problem} (column {column!r})"
                labels[index] = row_label(row[video_column], index)
                break
    if preprocessing is not None:
        local = {}
        todo = [i for i in range(len(dataset)) if i not in problems]
        for index in process_share(todo, accelerator):
            value = texts[index][video_column]
            try:
                preprocessing(value)
            except BadSample as error:
                local[index] = str(error)
        problems.update(gather_dicts(local, accelerator))
    if warn and (accelerator is None or accelerator.is_main_process):
        paths = texts[video_column]
        for index in sorted(set(problems) - set(skip or {})):
            logger.warning("Skipping %s: %s", row_label(paths[index], index), problems[index])
    return problems


def select_usable(dataset, problems: dict[int, str], video_column: str):
    """`(usable rows with a source_index column, DataSummary)`; raises `NoUsableSamplesError` if none is left."""
    paths = dataset[video_column]
    labels = {i: row_label(paths[i], i) for i in problems}
    summary = DataSummary.from_problems(len(dataset), problems, labels)
    keep = [i for i in range(len(dataset)) if i not in problems]
    if not keep:
        raise NoUsableSamplesError(
            f"The dataset has no usable sample: {summary.describe()}. First problems: {summary.examples[:5]}"
        )
    rows = dataset.select(keep)
    if "source_index" in rows.column_names:
        rows = rows.remove_columns("source_index")
    return rows.add_column("source_index", keep), summary


__all__ = ["DataSummary", "NoUsableSamplesError", "check_columns", "find_bad_samples", "gather_dicts",
           "process_share", "row_label", "select_usable", "text_problem"]
