from .transformer_univigu import (
    UniViGUTransformer3DModel,
    UniViGUTransformerOutput,
    wan_state_dict_to_univigu,
)

__all__ = ["UniViGUTransformer3DModel", "UniViGUTransformerOutput", "wan_state_dict_to_univigu"]
