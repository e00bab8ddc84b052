# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Exporting a [`UniViGUPipeline`] for the Hub: a self-contained folder (weights, configs, the module files, a model
card) that `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` loads without univigu installed.

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

import inspect
import json
import os
import shutil

from huggingface_hub import ModelCardData

import diffusers.pipelines as diffusers_pipelines
from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils.dynamic_modules_utils import get_relative_import_files


_CARD_KWARGS = ("license", "base_model", "model_description", "tags")


def _is_library_module(library: str) -> bool:
    return library in LOADABLE_CLASSES or hasattr(diffusers_pipelines, library)


def _model_card(pipeline, repo_id, license, base_model, model_description, tags) -> str:
    card_tags = ["univigu", "text-to-video", "video-to-text", "video-captioning", "wan", "custom-pipeline"]
    card_tags += [tag for tag in (tags or []) if tag not in card_tags]
    data = ModelCardData(
        library_name="diffusers",
        pipeline_tag="text-to-video",
        tags=card_tags,
        license=license,
        base_model=base_model,
    )
    name = repo_id or "path/to/this/folder"
    convention = pipeline.config.latent_normalization
    description = model_description or (
        "A Uni-ViGU model: one Wan2.1-based diffusion transformer that generates video from text and captions video "
        "(discrete flow matching on text tokens), with a modality-routed feed-forward network per block."
    )
    return f"""---
{data.to_yaml()}
---

# Uni-ViGU ({type(pipeline.transformer).__name__})

{description}

The pipeline code ships with the weights (`pipeline_univigu.py` and the modules next to it that it imports,
`transformer/transformer_univigu.py`, `text_scheduler/scheduling_discrete_flow.py`), so diffusers loads it without any
other package:

```python
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import export_to_video

pipe = DiffusionPipeline.from_pretrained("{name}", trust_remote_code=True)

# text -> video
frames = pipe(prompt="a red circle moving left", num_frames=81, height=480, width=832).frames[0]
export_to_video(frames, "video.mp4", fps=16)

# video -> caption
print(pipe(video="video.mp4").text[0])

# text -> video + caption
out = pipe(prompt="a red circle moving left", task="t2vt")
```

- Tasks: `t2v` (prompt), `v2t` (video), `t2vt` (prompt + `generate_caption=True` or `task="t2vt"`).
- Latent convention: `{convention}` (`diffusers` = normalised with the VAE's latents_mean/latents_std as in
  WanPipeline; `raw` = the reference implementation's unnormalised latents).
- Components: {", ".join(f"`{k}` ({type(v).__name__})" for k, v in pipeline.components.items())}.
"""


def export_for_hub(
    pipeline: DiffusionPipeline,
    save_directory: str | os.PathLike,
    safe_serialization: bool = True,
    variant: str | None = None,
    max_shard_size: int | str | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    base_model: str | None = None,
    model_description: str | None = None,
    tags: list[str] | None = None,
) -> str:
    """
    Writes `pipeline` to `save_directory` as a self-contained folder for the Hub:

    - the `save_pretrained` output (safetensors weights and configs);
    - the pipeline's module file at the root (`pipeline_univigu.py`, with the sibling modules it imports:
      `pipeline_output.py`, `video_input.py`, ...) and, for each component whose class is not from
      diffusers/transformers (the transformer, the text scheduler), its module file inside the component's folder
      (`transformer/transformer_univigu.py`, `text_scheduler/scheduling_discrete_flow.py`);
    - `model_index.json` rewritten so that those entries name the module files (`"_class_name": ["pipeline_univigu",
      "UniViGUPipeline"]`, `"transformer": ["transformer_univigu", "UniViGUTransformer3DModel"]`, ...), which is how
      diffusers resolves custom code with `trust_remote_code=True`;
    - a model card `README.md` with YAML metadata (library_name: diffusers, pipeline_tag: text-to-video, tags).

    `DiffusionPipeline.from_pretrained(save_directory, trust_remote_code=True)` then loads it with no univigu
    installed. Returns `save_directory`.
    """
    save_directory = os.fspath(save_directory)
    os.makedirs(save_directory, exist_ok=True)
    DiffusionPipeline.save_pretrained(
        pipeline,
        save_directory,
        safe_serialization=safe_serialization,
        variant=variant,
        max_shard_size=max_shard_size,
    )
    index_path = os.path.join(save_directory, "model_index.json")
    with open(index_path, encoding="utf-8") as f:
        index = json.load(f)

    def copy_module(cls, folder) -> str:
        """Copies the module file of `cls` into `folder`, with the sibling modules it imports relatively (such as
        `pipeline_output`): diffusers' dynamic module loading copies those next to it on load."""
        source = inspect.getsourcefile(cls)
        if source is None or not os.path.isfile(source):
            raise ValueError(f"Cannot find the source file of {cls.__name__} to export it.")
        for file in [source, *get_relative_import_files(source)]:
            if not os.path.isfile(file):
                raise ValueError(f"Cannot find {file}, which {os.path.basename(source)} imports, to export it.")
            target = os.path.join(folder, os.path.basename(file))
            if os.path.abspath(file) != os.path.abspath(target):
                shutil.copyfile(file, target)
        return os.path.splitext(os.path.basename(source))[0]

    pipeline_cls = type(pipeline)
    index["_class_name"] = [copy_module(pipeline_cls, save_directory), pipeline_cls.__name__]
    for name, component in pipeline.components.items():
        entry = index.get(name)
        if component is None or not isinstance(entry, list) or entry[0] is None or _is_library_module(entry[0]):
            continue
        folder = os.path.join(save_directory, name)
        os.makedirs(folder, exist_ok=True)
        index[name] = [copy_module(type(component), folder), type(component).__name__]
    with open(index_path, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")

    with open(os.path.join(save_directory, "README.md"), "w", encoding="utf-8") as f:
        f.write(_model_card(pipeline, repo_id, license, base_model, model_description, tags))
    return save_directory


__all__ = ["export_for_hub"]
