# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""univigu: Uni-ViGU (unified video generation and understanding) on diffusers."""

__version__ = "0.1.0.dev0"

from .utils.lazy import lazy_exports

_LAZY = {
    "UniViGUTransformer3DModel": "univigu.models",
    "UniViGUTransformerOutput": "univigu.models",
    "DiscreteFlowScheduler": "univigu.schedulers",
    "UniViGUPipeline": "univigu.pipelines",
    "UniViGUPipelineOutput": "univigu.pipelines",
}

__all__ = list(_LAZY)

# Lazy imports keep `import univigu` cheap (torch/diffusers load on first use).
__getattr__ = lazy_exports(__name__, _LAZY)
