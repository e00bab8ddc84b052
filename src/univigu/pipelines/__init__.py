"""Uni-ViGU pipelines."""

# The model and scheduler modules are imported here so that `UniViGUPipeline.from_pretrained` can resolve the
# `model_index.json` entries `univigu.models.transformer_univigu` / `univigu.schedulers.scheduling_discrete_flow`
# (diffusers only resolves custom libraries that are already imported).
from ..models import transformer_univigu as _transformer_univigu  # noqa: F401
from ..schedulers import scheduling_discrete_flow as _scheduling_discrete_flow  # noqa: F401
from .hub import export_for_hub
from .pipeline_output import UniViGUPipelineOutput
from .pipeline_univigu import UniViGUPipeline


__all__ = ["UniViGUPipeline", "UniViGUPipelineOutput", "export_for_hub"]
