# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Conversion to UniViGU pipeline folders.

- `convert_wan(wan_path, out_dir)`: an untrained UniViGU pipeline from a Wan2.1 T2V diffusers folder
  (`univigu convert wan --wan PATH --out DIR`).
- `convert_reference_checkpoint(checkpoint, wan_path, out_dir)`: the reference Uni-ViGU `.pth`, plus the Wan2.1 folder
  it was built on (`univigu convert reference --checkpoint FILE.pth --wan PATH --out DIR`).
- `load_reference_checkpoint` / `convert_reference_state_dict`: the state-dict level of the latter.

See docs/from_reference.md.
"""

from ..utils.lazy import lazy_exports

# Imported on first use, so that `univigu.conversion.cli` (the `univigu convert` parser) loads without torch.
_LAZY = {
    "ReferenceConversionError": ".reference",
    "convert_reference_checkpoint": ".reference",
    "convert_reference_state_dict": ".reference",
    "infer_text_vocab": ".reference",
    "load_reference_checkpoint": ".reference",
    "reference_pipeline_kwargs": ".reference",
    "convert_wan": ".wan",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY)
