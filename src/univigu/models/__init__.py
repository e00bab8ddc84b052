# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
from .transformer_univigu import UniViGUTransformer3DModel, UniViGUTransformerOutput
from .wan_weights import wan_state_dict_to_univigu

__all__ = ["UniViGUTransformer3DModel", "UniViGUTransformerOutput", "wan_state_dict_to_univigu"]
