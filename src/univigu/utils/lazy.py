# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Lazy package exports: `import univigu` and the `univigu` command's parsers load without torch or diffusers."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str], first: tuple[str, ...] = ()) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports `exports[name]` (a module, absolute or relative to
    `package`) on first use, after the modules in `first`."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for module in first:
            importlib.import_module(module)
        return getattr(importlib.import_module(exports[name], package), name)

    return __getattr__
