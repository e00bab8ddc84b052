# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Telling a Hub repo id from a local path, so that a mistyped folder is reported as missing instead of being
looked up on the Hub (which fails offline with a connection traceback)."""

from __future__ import annotations

import re

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def looks_like_hub_id(text: str) -> bool:
    """`owner/name` (e.g. `Wan-AI/Wan2.1-T2V-1.3B-Diffusers`); absolute, relative or nested paths are not."""
    return _HUB_ID.fullmatch(text) is not None
