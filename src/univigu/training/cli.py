# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The entry point of `training/train_recall.py` and `training/train_refine.py`: a failure is a message and a
non-zero exit status, not a traceback."""

from __future__ import annotations

import os
import sys

from .arguments import parse_args
from .trainer import main


def script_main(stage: str, argv: list[str] | None = None) -> int:
    """Parses the arguments of `training/train_<stage>.py` and runs the stage; returns the exit status. A problem
    with the arguments, the data or the output folder (a `ValueError` or `OSError`: each names the flag or the file
    and the fix) ends the script with `train_<stage>.py: error: <message>` and exit status 1, without a traceback
    (set UNIVIGU_TRACEBACK=1 to get one); a bad flag value exits with status 2 (argparse)."""
    try:
        main(parse_args(stage, argv))
    except (ValueError, OSError) as error:
        if os.environ.get("UNIVIGU_TRACEBACK") == "1":
            raise
        print(f"train_{stage}.py: error: {error}", file=sys.stderr)
        return 1
    return 0


__all__ = ["script_main"]
