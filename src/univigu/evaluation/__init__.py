# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Caption metrics (BLEU-4, ROUGE-L, CIDEr-D, ShapesWorld attribute accuracy) as local 🤗 evaluate modules.

`evaluate.load("bleu")` downloads its module from the Hub; training and tests must run offline, so the modules ship
inside the package (`metrics/<name>/<name>.py`) and are loaded by path. Each one also works on its own:
`evaluate.load("<checkout>/src/univigu/evaluation/metrics/cider")`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path


METRICS_DIR = Path(__file__).resolve().parent / "metrics"
#: Names of the bundled metric modules.
AVAILABLE_METRICS = ("bleu", "rouge", "cider", "shapesworld")

References = Sequence[str] | Sequence[Sequence[str]]


def metric_path(name: str) -> str:
    """Folder of a bundled metric module, for `evaluate.load(metric_path(name))`."""
    if name not in AVAILABLE_METRICS:
        raise ValueError(f"Unknown metric {name!r}; bundled metrics are {AVAILABLE_METRICS}.")
    return str(METRICS_DIR / name)


@functools.lru_cache(maxsize=None)
def load_metric(name: str):
    """Load a bundled metric with `evaluate.load` from its local folder (no network).

    `keep_in_memory=True` keeps evaluate from writing its temporary Arrow files to the cache directory. Loaded
    modules are cached per process, since evaluate re-hashes and copies the script on every load.
    """
    import evaluate

    return evaluate.load(metric_path(name), keep_in_memory=True)


def compute_caption_metrics(
    predictions: Sequence[str], references: References, shapesworld: bool = False, detailed: bool = False
) -> dict[str, float]:
    """BLEU-4 (0-100), ROUGE-L (0-1) and CIDEr-D (0-10) of predicted captions, optionally with ShapesWorld scores.

    Args:
        predictions: one generated text per sample.
        references: one reference text, or a list of them, per sample. CIDEr's idf is computed over this batch,
            so pass the whole evaluation set at once.
        shapesworld: also parse the texts and add ShapesWorld attribute scores under `shapesworld/...`; uses the
            first reference of each sample (a prompt, a caption, or a scene as JSON).
        detailed: with `shapesworld`, also score size and regions (detailed captions).

    Returns:
        A flat dict: `bleu`, `rougeL`, `cider`, and the `shapesworld/...` keys if asked.
    """
    predictions = list(predictions)
    references = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references.")
    if not predictions:
        raise ValueError("No predictions to score.")
    scores = {
        "bleu": load_metric("bleu").compute(predictions=predictions, references=references)["bleu"],
        "rougeL": load_metric("rouge").compute(predictions=predictions, references=references)["rougeL"],
        "cider": load_metric("cider").compute(predictions=predictions, references=references)["cider"],
    }
    if shapesworld:
        first_references = [refs[0] for refs in references]
        world = load_metric("shapesworld").compute(
            predictions=predictions, references=first_references, detailed=detailed
        )
        scores.update({f"shapesworld/{key}": value for key, value in world.items()})
    return scores


__all__ = ["AVAILABLE_METRICS", "METRICS_DIR", "compute_caption_metrics", "load_metric", "metric_path"]
