# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
from ..utils.lazy import lazy_exports

# Imported on first use, so that `univigu.models.parameter_report`'s parser loads without torch.
_LAZY = {
    "UniViGUTransformer3DModel": ".transformer_univigu",
    "UniViGUTransformerOutput": ".transformer_univigu",
    "wan_state_dict_to_univigu": ".wan_weights",
}

__all__ = list(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY)
