# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""JSON that is JSON: `json.dumps` writes NaN and infinities as bare `NaN` / `Infinity`, which strict parsers (jq,
JavaScript, most other languages) reject. The records of training runs and evaluations (loss logs, summaries,
validation and evaluation results) go through `dumps_json`, which writes them as `null`."""

from __future__ import annotations

import json
import math


def json_safe(value):
    """`value` with every non-finite float (NaN, inf) replaced by None, in nested dicts, lists and tuples too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps_json(value, **kwargs) -> str:
    """`json.dumps(value)` with non-finite numbers written as `null` (and never as bare NaN)."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)


__all__ = ["dumps_json", "json_safe"]
