"""Uni-ViGU pipelines."""

from ..utils.lazy import lazy_exports

# Imported on first use, so that `univigu.pipelines.cli` (the `univigu` command's parsers) loads without torch.
_LAZY = {
    "UniViGUPipeline": ".pipeline_univigu",
    "UniViGUPipelineOutput": ".pipeline_output",
    "export_for_hub": ".hub",
}

__all__ = list(_LAZY)


# The model and scheduler modules first, so that `UniViGUPipeline.from_pretrained` can resolve the `model_index.json`
# entries `univigu.models.transformer_univigu` / `univigu.schedulers.scheduling_discrete_flow` (diffusers only
# resolves custom libraries that are already imported).
__getattr__ = lazy_exports(__name__, _LAZY, first=("univigu.models.transformer_univigu",
                                                   "univigu.schedulers.scheduling_discrete_flow"))
