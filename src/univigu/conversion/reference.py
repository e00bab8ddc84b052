# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Convert the reference Uni-ViGU checkpoint (a `.pth` from the authors' training code) to a `UniViGUPipeline`
folder.

The reference checkpoint is a `torch.save`d dict holding the model's state dict under `"model"`; key names may
carry the `_fsdp_wrapped_module.` infix of FSDP wrappers (and `_orig_mod.` of `torch.compile`). Our
`UniViGUTransformer3DModel` uses the reference's module names, so the conversion is:

* strip `_fsdp_wrapped_module.` / `_orig_mod.` wherever they occur in a key;
* drop `rotary_emb_text.inv_freq` (a buffer of the text RoPE that we recompute);
* nothing else. Every remaining key must be one of ours, with our shape, and every one of ours must be present.

Loading never unpickles arbitrary objects: `.pth`/`.pt`/`.bin` files go through `torch.load(weights_only=True)`
(memory-mapped when the file is in the zip format), `.safetensors` files are memory-mapped directly. Building
the folder does not double memory: the transformer is created on the meta device, the (memory-mapped) checkpoint
tensors are assigned to it and written out with safetensors' zero-copy writer, and the tokenizer, text encoder
and VAE of the Wan folder are copied file by file, never loaded.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from ..models import UniViGUTransformer3DModel
from ..schedulers import DiscreteFlowScheduler
from ..utils.hub import looks_like_hub_id, resolve_checkpoint
from .common import (
    check_finite,
    check_output_dir,
    load_safetensors_mmap,
    load_tokenizer,
    read_wan_folder,
    tokenizer_vocab_sizes,
    write_converted_pipeline,
)


logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

#: Infixes that wrappers add to state-dict keys and that the conversion strips wherever they occur.
WRAPPER_INFIXES = ("_fsdp_wrapped_module.", "_orig_mod.")
#: Reference keys that are buffers we recompute; they are dropped (and not required).
DROPPED_KEYS = ("rotary_emb_text.inv_freq",)

#: The reference's sampling defaults (its `inference_unified_wan.py` flags), recorded in converted folders.
REFERENCE_SAMPLING_DEFAULTS = {
    "num_inference_steps": 50,
    "guidance_scale": 1.0,  # --cfg_scale 1.0: no guidance unless asked (its README example uses 5)
    "max_text_length": 1024,  # --max_length: text stream length (t2vt / v2t) and tokenizer max length (t2v)
    "max_sequence_length": 512,  # umT5 condition length
    "scheduler_shift": 3.0,  # --scheduler_shift
    "height": 480,
    "width": 832,
    "num_frames": 81,  # --video_frames 21 latent frames = 81 pixel frames
    "source_distribution": "uniform",
    "kappa_exponent": 1.0,
}

class ReferenceConversionError(ValueError):
    """A reference checkpoint does not match the model it should convert to."""


# ---------------------------------------------------------------------------------------------------- loading


def _describe(obj) -> str:
    """A short human description of what a checkpoint file held."""
    if isinstance(obj, torch.Tensor):
        return f"a single tensor of shape {tuple(obj.shape)} ({obj.dtype})"
    if isinstance(obj, Mapping):
        keys = list(obj.keys())
        shown = ", ".join(repr(k) for k in keys[:12]) + (f", ... ({len(keys)} keys)" if len(keys) > 12 else "")
        return f"a dict with top-level keys [{shown}]"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"an object of type {type(obj).__name__}"


def _is_tensor_mapping(obj) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _checkpoint_format(path: Path) -> str | None:
    """"zip" (torch.save's format), "legacy" (torch.save with `_use_new_zipfile_serialization=False`: a pickle
    stream), "safetensors", or None when the file is none of these (then it is never given to the unpickler)."""
    if zipfile.is_zipfile(path):
        return "zip"
    with open(path, "rb") as f:
        head = f.read(9)
    # A pickle stream starts with the PROTO opcode (0x80) and a protocol number; torch's legacy format is one.
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "legacy"
    # safetensors: an 8-byte little-endian header length, then the JSON header.
    if len(head) == 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if 0 < header_len <= os.path.getsize(path) - 8:
            return "safetensors"
    return None


def load_reference_checkpoint(path: PathLike, mmap: bool = True) -> dict[str, torch.Tensor]:
    """Load the state dict of a reference Uni-ViGU checkpoint, without ever unpickling arbitrary objects.

    Accepted files:
      * a `torch.save`d dict with the state dict under `"model"` (the reference's `.pth`; other entries such as
        `"step"` or optimizer state are ignored), or a `torch.save`d state dict itself. Read with
        `torch.load(weights_only=True)`, memory-mapped (`mmap=True`) when the file is in torch's zip format;
      * a `.safetensors` file holding the state dict (memory-mapped).

    Key names are returned as stored (with any `_fsdp_wrapped_module.` infix); see
    :func:`convert_reference_state_dict`.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not such a checkpoint; the message says what was found.
    """
    return _load_checkpoint(path, mmap)[0]


def _load_checkpoint(path: PathLike, mmap: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, the checkpoint's scalar entries such as `step`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Reference checkpoint not found: {path}")

    kind = _checkpoint_format(path)
    if path.suffix == ".safetensors" or kind == "safetensors":
        state = load_safetensors_mmap(path)
        if not state:
            raise ValueError(f"{path} holds no tensors: it is not a Uni-ViGU checkpoint.")
        return state, {}
    if kind is None:
        # Not even handed to the unpickler: only the two formats torch.save writes are read.
        with open(path, "rb") as f:
            head = f.read(16)
        raise ValueError(
            f"{path} could not be read as a PyTorch checkpoint: it is neither in torch's zip format (what torch.save "
            f"writes), nor torch's legacy format, nor a safetensors file; the file starts with {head!r}. Expected a "
            "`.pth` holding {'model': state_dict, ...} or a `.safetensors` state dict; check the file is complete "
            "(e.g. not an HTML error page or a partial download)."
        )

    use_mmap = bool(mmap) and kind == "zip"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path} is not a plain weights checkpoint: it contains Python objects other than tensors and basic "
            f"containers, which `torch.load(weights_only=True)` refuses to unpickle (univigu never runs pickle code "
            f"from a checkpoint). Details: {first}"
        ) from None
    except Exception as e:  # not a torch/pickle file at all (text, an archive of something else, truncated...)
        with open(path, "rb") as f:
            head = f.read(16)
        raise ValueError(
            f"{path} could not be read as a PyTorch checkpoint with `torch.load(weights_only=True)` "
            f"({type(e).__name__}: {e}); the file starts with {head!r}. Expected a `.pth` holding "
            f"{{'model': state_dict, ...}} or a `.safetensors` state dict."
        ) from None

    if isinstance(obj, Mapping) and "model" in obj:
        state = obj["model"]
        if not _is_tensor_mapping(state):
            raise ValueError(
                f"{path} has a 'model' entry, but it is {_describe(state)}, not a state dict of tensors "
                f"(the file holds {_describe(obj)})."
            )
        info = {k: v for k, v in obj.items() if k != "model" and isinstance(v, (int, float, str, bool))}
        return dict(state), info
    if _is_tensor_mapping(obj):
        return dict(obj), {}
    raise ValueError(
        f"{path} is not a Uni-ViGU checkpoint: expected a dict with the model state dict under 'model' "
        f"(or a state dict of tensors), found {_describe(obj)}."
    )


# ---------------------------------------------------------------------------------------------------- renaming


def reference_key_to_univigu(key: str) -> str | None:
    """Our name for one reference key, or `None` for a key that is dropped (`rotary_emb_text.inv_freq`)."""
    for infix in WRAPPER_INFIXES:
        key = key.replace(infix, "")
    if key in DROPPED_KEYS:
        return None
    return key


def _expected_shapes(config: Mapping) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every persistent tensor of a `UniViGUTransformer3DModel(**config)`, built on meta."""
    with torch.device("meta"):
        model = UniViGUTransformer3DModel(**UniViGUTransformer3DModel.init_kwargs(config))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def infer_transformer_config(state: Mapping[str, torch.Tensor]) -> dict:
    """Infer the shape-determining config of a converted (our names) state dict.

    The number of heads does not change any tensor shape, so it is set to one head of the full width; use the
    Wan backbone's `transformer/config.json` for a config to run the model with."""

    def shape(name):
        if name not in state:
            raise ReferenceConversionError(f"Cannot infer the model config: key {name!r} is missing.")
        return tuple(state[name].shape)

    inner_dim, in_channels, *patch_size = shape("patch_embedding.weight")
    rows = shape("vocab_embed.weight")[0]
    block_ids = {int(m.group(1)) for k in state for m in [re.match(r"blocks\.(\d+)\.", k)] if m}
    return {
        "patch_size": tuple(patch_size),
        "num_attention_heads": 1,
        "attention_head_dim": inner_dim,
        "in_channels": in_channels,
        "out_channels": shape("video_head.proj_out.weight")[0] // max(1, patch_size[0] * patch_size[1] * patch_size[2]),
        "text_dim": shape("cond_text_embedder.linear_1.weight")[1],
        "freq_dim": shape("time_embedding_v.time_embedder.linear_1.weight")[1],
        "ffn_dim": shape("blocks.0.ffn.net.0.proj.weight")[0],
        "num_layers": max(block_ids) + 1 if block_ids else 0,
        "cross_attn_norm": "blocks.0.norm2.weight" in state,
        "vocab_size": rows,
        "text_mask_token": False,
    }


def _listing(names: Iterable[str], limit: int = 40) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def convert_reference_state_dict(
    state: Mapping[str, torch.Tensor], config: Mapping | None = None
) -> dict[str, torch.Tensor]:
    """Rename a reference state dict to `UniViGUTransformer3DModel` names and check it is complete.

    Args:
        state: the reference state dict (the checkpoint's `"model"` entry), keys as stored.
        config: the `UniViGUTransformer3DModel` config the result must load into (the Wan backbone's config plus
            `vocab_size` / `text_mask_token`). Without it the config is inferred from the shapes
            (:func:`infer_transformer_config`), which checks the key set but cannot detect e.g. a missing last block.

    Returns:
        A new dict (same tensor objects, nothing copied) with our key names.

    Raises:
        ReferenceConversionError (a `ValueError`): keys left over (unexpected), keys missing, two reference keys
        mapping to one of ours, or shapes that disagree with `config`; the message lists them.
    """
    out: dict[str, torch.Tensor] = {}
    source_of: dict[str, str] = {}
    collisions = []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ReferenceConversionError(f"Reference key {key!r} holds {type(value).__name__}, not a tensor.")
        new = reference_key_to_univigu(key)
        if new is None:
            continue
        if new in out:
            collisions.append(f"{source_of[new]!r} and {key!r} -> {new!r}")
            continue
        out[new] = value
        source_of[new] = key
    if collisions:
        raise ReferenceConversionError(
            "Several reference keys map to the same UniViGU key: " + "; ".join(collisions)
        )

    if config is None:
        config = infer_transformer_config(out)
    expected = _expected_shapes(config)
    unexpected = set(out) - set(expected)
    missing = set(expected) - set(out)
    problems = []
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected key(s) (reference names: "
            f"{_listing(source_of[k] for k in unexpected)})"
        )
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    mismatched = [
        f"{source_of[k]}: checkpoint {tuple(out[k].shape)} vs expected {expected[k]}"
        for k in sorted(set(out) & set(expected))
        if tuple(out[k].shape) != expected[k]
    ]
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): " + "; ".join(mismatched[:40]))
    if problems:
        summary = ", ".join(f"{k}={config[k]}" for k in ("num_layers", "ffn_dim", "text_dim", "vocab_size") if k in config)
        raise ReferenceConversionError(
            f"The reference state dict does not match UniViGUTransformer3DModel({summary}, ...): "
            + "; ".join(problems)
        )
    return out


# ---------------------------------------------------------------------------------------------------- vocab


def infer_text_vocab(
    num_rows: int,
    tokenizer_sizes: Iterable[int],
    text_mask_token: bool | None = None,
) -> tuple[int, bool]:
    """Decide `(vocab_size, text_mask_token)` from the number of text embedding rows of a checkpoint.

    The reference stores no flag: its `vocab_embed` / `text_head.linear` have `V` rows with the uniform source and
    `V + 1` with a mask source, where `V` is the tokenizer's vocabulary size. `tokenizer_sizes` are the candidate
    values of `V` (e.g. `tokenizer.vocab_size`, `len(tokenizer)`, the text encoder's `vocab_size`).
    `text_mask_token` overrides the decision.
    """
    sizes = sorted({int(s) for s in tokenizer_sizes if s})
    if text_mask_token is not None:
        vocab_size = num_rows - (1 if text_mask_token else 0)
        if sizes and vocab_size < min(sizes):
            raise ReferenceConversionError(
                f"The checkpoint has {num_rows} text embedding rows; with text_mask_token={text_mask_token} that is "
                f"a vocabulary of {vocab_size}, smaller than the tokenizer's ({min(sizes)}): the tokenizer would "
                "produce ids the model cannot embed."
            )
        return vocab_size, bool(text_mask_token)
    if num_rows in sizes:
        return num_rows, False
    if num_rows - 1 in sizes:
        return num_rows - 1, True
    raise ReferenceConversionError(
        f"Cannot tell whether the checkpoint has a [MASK] token: it has {num_rows} text embedding rows, while the "
        f"tokenizer's vocabulary size is {' / '.join(map(str, sizes)) or 'unknown'} (rows == vocab means the uniform "
        "source, rows == vocab + 1 a mask token). Pass text_mask_token=True/False (--text-mask-token / "
        "--no-text-mask-token) to decide."
    )


# ---------------------------------------------------------------------------------------------------- folder


def reference_pipeline_kwargs() -> dict:
    """`UniViGUPipeline.__call__` arguments equal to the reference script's defaults."""
    d = REFERENCE_SAMPLING_DEFAULTS
    return {
        "num_inference_steps": d["num_inference_steps"],
        "guidance_scale": d["guidance_scale"],
        "max_text_length": d["max_text_length"],
        "max_sequence_length": d["max_sequence_length"],
        "height": d["height"],
        "width": d["width"],
        "num_frames": d["num_frames"],
        "text_update": "reference",
    }


def reference_schedulers(vocab_size: int, text_mask_token: bool):
    """The reference's samplers: flow-match Euler with shift 3.0 for video; the mixture-path discrete flow with
    `kappa(t) = t` and the uniform source (the mask source when the checkpoint has a mask token) for text."""
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=REFERENCE_SAMPLING_DEFAULTS["scheduler_shift"])
    text_scheduler = DiscreteFlowScheduler(
        vocab_size=vocab_size,
        source="mask" if text_mask_token else "uniform",
        mask_token_id=vocab_size if text_mask_token else None,
        kappa_exponent=REFERENCE_SAMPLING_DEFAULTS["kappa_exponent"],
        num_train_timesteps=1000,
        sampling_dtype="float64",
    )
    return scheduler, text_scheduler


def _hub_license(repo_id: str | None, revision: str | None) -> str | None:
    """The licence a Hub repo's model card states, or None (offline, no card, no licence)."""
    import huggingface_hub

    if repo_id is None or huggingface_hub.constants.HF_HUB_OFFLINE:
        return None
    try:
        card = huggingface_hub.HfApi().model_info(repo_id, revision=revision).card_data
    except Exception:  # no connection, private repo: the card says `other` and links to the source
        return None
    return card.get("license") if card is not None else None


def reference_model_card(
    repo_id: str | None,
    wan_path: PathLike,
    text_mask_token: bool,
    revision: str | None = None,
    license: str | None = None,
) -> str:
    """The `README.md` of a converted reference folder: Hub metadata (`library_name: diffusers`, `pipeline_tag`,
    `base_model` = the source repo when converted from the Hub, the licence), a usage snippet and the memory recipe
    that fits a 12 GB GPU (the numbers of docs/memory.md)."""
    from huggingface_hub import ModelCardData

    wan_id = os.fspath(wan_path) if looks_like_hub_id(os.fspath(wan_path)) else None
    base_model = repo_id or wan_id
    license = license or _hub_license(repo_id, revision)
    extra = {}
    if license is None:
        license = "other"
        extra = {"license_name": "same-as-source", "license_link": f"https://huggingface.co/{repo_id}"} if repo_id else {}
    data = ModelCardData(
        library_name="diffusers",
        pipeline_tag="text-to-video",
        base_model=base_model,
        license=license,
        tags=["univigu", "text-to-video", "video-to-text", "video-captioning", "wan"],
        **extra,
    )
    source = f"[{repo_id}](https://huggingface.co/{repo_id})" if repo_id else "a local reference checkpoint"
    licence_line = (
        f"Licence: `{license}`." if license != "other" else
        f"Licence: that of the source checkpoint ({source}); the umT5 text encoder and the VAE, copied from "
        "Wan2.1, are Apache-2.0."
    )
    return f"""---
{data.to_yaml()}
---

# Uni-ViGU, converted for diffusers

The Uni-ViGU weights of {source} converted with `univigu convert reference`
into a `UniViGUPipeline` folder (safetensors): one Wan2.1-based diffusion transformer that generates video from
text (t2v), captions video (v2t) and does both at once (t2vt). The folder keeps the reference's conventions: raw VAE
latents, flow-match Euler with shift 3.0, {"a [MASK] text source" if text_mask_token else "the uniform text source"}.
`univigu_conversion.json` records the source file and commit. {licence_line}

## Use

```python
import torch
from diffusers.utils import export_to_video
from univigu import UniViGUPipeline  # pip install univigu

pipe = UniViGUPipeline.from_pretrained("path/to/this/folder", dtype=torch.bfloat16)
pipe.enable_model_cpu_offload()  # fits a 12 GB GPU, see below
prompt = "A golden retriever runs across a sunlit grassy field"
video = pipe(prompt=prompt, num_frames=81, height=480, width=832, guidance_scale=5.0).frames[0]
export_to_video(video, "dog.mp4", fps=16)
caption = pipe(video="dog.mp4", task="v2t", max_text_length=256).text[0]
```

`univigu.conversion.reference.reference_pipeline_kwargs()` gives the reference script's defaults as arguments.

## Memory: a 12 GB GPU

Measured at 81 x 480 x 832 in bfloat16 (H100, peak allocated GPU memory, univigu's docs/memory.md):

| recipe | t2v peak | v2t peak |
|---|---|---|
| everything on the GPU | 18.7 GiB | 18.5 GiB |
| `pipe.enable_model_cpu_offload()` | 10.9 GiB | 7.9 GiB |
| fp8 transformer storage + umT5 group offload (below) | 5.9 GiB | 5.6 GiB |

```python
from diffusers.hooks import apply_group_offloading

pipe = UniViGUPipeline.from_pretrained("path/to/this/folder", dtype=torch.bfloat16)
pipe.vae.to(torch.float32)
pipe.vae.enable_tiling()
pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
apply_group_offloading(pipe.text_encoder, onload_device=torch.device("cuda"), offload_type="leaf_level",
                       use_stream=True)
pipe.transformer.to("cuda")
pipe.vae.to("cuda")
```
"""


def convert_reference_checkpoint(
    checkpoint: PathLike | Mapping[str, torch.Tensor],
    wan_path: PathLike,
    out_dir: PathLike,
    text_mask_token: bool | None = None,
    torch_dtype: torch.dtype | None = None,
    overwrite: bool = False,
    max_shard_size: int | str = "10GB",
    allow_non_finite: bool = False,
    filename: str | None = None,
    revision: str | None = None,
    cache_dir: PathLike | None = None,
    license: str | None = None,
) -> Path:
    """Convert the reference Uni-ViGU checkpoint into a `UniViGUPipeline` folder (safetensors only).

    Args:
        checkpoint: the reference `.pth` (state dict under `"model"`), a `.safetensors` state dict, an already
            loaded state dict, a local folder holding one checkpoint file, or a Hub repo id holding one
            (`Fr0zencr4nE/Uni-ViGU`, the authors' release): only that file is downloaded
            (:func:`univigu.utils.hub.resolve_checkpoint`).
        wan_path: the Wan2.1 T2V diffusers folder the checkpoint was trained from (Wan2.1-T2V-1.3B-Diffusers). Its
            `transformer/config.json` gives the architecture (the checkpoint's shapes are checked against it), and
            its tokenizer, text encoder and VAE are copied into the output.
        out_dir: the output folder.
        text_mask_token: whether the last text embedding row is a `[MASK]` token. Default: inferred, comparing the
            number of rows with the tokenizer's vocabulary size (equal: uniform source; one more: mask token).
        torch_dtype: cast the transformer weights (default: keep the checkpoint's dtype).
        overwrite: replace `out_dir` if it exists and is not empty. The folder is written next to it and moved into
            place when complete (a failed conversion leaves the old one); an `out_dir` that is, contains or lies
            inside an input (the checkpoint, the Wan folder) is refused.
        max_shard_size: shard size of the transformer's safetensors files.
        allow_non_finite: write the folder even if a weight holds NaN/inf (default: refuse, naming the tensors).
        filename: which checkpoint file of a folder or Hub repo holding several (error listing them otherwise).
        revision: branch, tag or commit of a Hub repo.
        cache_dir: the Hub cache to download into (default: huggingface_hub's, `HF_HUB_CACHE`).
        license: the licence written in the folder's model card (default: the Hub repo's, when it states one,
            otherwise `other`, linking to the source).

    The folder records the reference's conventions: `latent_normalization="raw"` (the reference feeds raw VAE
    latents to the transformer and decodes them without de-normalising), the video sampler
    `FlowMatchEulerDiscreteScheduler(shift=3.0)`, and the text sampler `DiscreteFlowScheduler` with `kappa(t) = t`
    and the uniform source.

    Memory: the checkpoint is memory-mapped, the transformer is built on the meta device and the checkpoint's own
    tensors are assigned to it, and safetensors writes them without copies; the Wan components are copied as files.
    Peak memory stays near the checkpoint's size (see `benchmarks/bench_conversion_memory.py`).

    Returns:
        The output folder (loads with `UniViGUPipeline.from_pretrained`).
    """
    source = None
    if not isinstance(checkpoint, Mapping):
        source = resolve_checkpoint(checkpoint, filename=filename, revision=revision, cache_dir=cache_dir)
        checkpoint = source.path
    wan = read_wan_folder(wan_path)
    inputs = [wan.path] + ([] if isinstance(checkpoint, Mapping) else [checkpoint])
    check_output_dir(out_dir, overwrite, inputs)  # before the (long) work
    if isinstance(checkpoint, Mapping):
        state, info = dict(checkpoint), {}
    else:
        state, info = _load_checkpoint(checkpoint)

    # Vocabulary and mask token, from the shapes of the two text tables.
    embed_key = next((k for k in state if reference_key_to_univigu(k) == "vocab_embed.weight"), None)
    head_key = next((k for k in state if reference_key_to_univigu(k) == "text_head.linear.weight"), None)
    if embed_key is None or head_key is None:
        raise ReferenceConversionError(
            "The checkpoint has no text stream tables (vocab_embed.weight / text_head.linear.weight): it is not a "
            f"Uni-ViGU checkpoint. Its keys start with: {_listing(list(state)[:10], limit=10)}"
        )
    rows, head_rows = state[embed_key].shape[0], state[head_key].shape[0]
    if rows != head_rows:
        raise ReferenceConversionError(
            f"vocab_embed.weight has {rows} rows but text_head.linear.weight has {head_rows}; they must agree."
        )
    tokenizer = load_tokenizer(wan)
    vocab_size, mask = infer_text_vocab(rows, tokenizer_vocab_sizes(tokenizer, wan), text_mask_token)
    logger.info(
        "Text vocabulary: %d tokens%s (%s).", vocab_size, " + [MASK]" if mask else "",
        "inferred from the shapes" if text_mask_token is None else "as requested",
    )

    # Architecture from the Wan folder; every checkpoint key and shape is checked against it.
    config = UniViGUTransformer3DModel.init_kwargs(
        wan.transformer_config,
        vocab_size=vocab_size,
        text_mask_token=mask,
        text_rope_max_seq_len=REFERENCE_SAMPLING_DEFAULTS["max_text_length"],  # --max_length 1024
    )
    converted = convert_reference_state_dict(state, config)
    del state
    if torch_dtype is not None:
        converted = {k: v.to(torch_dtype) if v.is_floating_point() else v for k, v in converted.items()}
    # Keys saved as views of one storage (tied weights) get their own: safetensors stores no shared tensors.
    storages = set()
    for key, value in converted.items():
        if value.numel():
            ptr = value.untyped_storage().data_ptr()
            if ptr in storages:
                converted[key] = value.clone()
            storages.add(ptr)

    transformer = UniViGUTransformer3DModel.from_state_dict(config, converted)
    del converted
    transformer.eval()
    non_finite = check_finite(transformer, allow_non_finite)

    scheduler, text_scheduler = reference_schedulers(vocab_size, mask)
    return write_converted_pipeline(
        out_dir, wan, transformer, scheduler, text_scheduler, tokenizer, latent_normalization="raw",
        provenance={
            "source": "reference",
            "checkpoint": os.fspath(checkpoint) if not isinstance(checkpoint, Mapping) else None,
            **({"hub_repo": source.repo_id, "hub_filename": source.filename, "hub_commit": source.commit}
               if source is not None and source.repo_id else {}),
            **({"step": info["step"]} if "step" in info else {}),
            "wan_path": os.fspath(wan.path),
            "vocab_size": vocab_size,
            "text_mask_token": mask,
            "text_mask_token_inferred": text_mask_token is None,
            "latent_normalization": "raw",
            "sampling_defaults": reference_pipeline_kwargs(),
            "sampling_defaults_note": (
                "UniViGUPipeline keyword arguments that reproduce the reference script's defaults "
                "(inference_unified_wan.py: --num_inference_steps 50 --cfg_scale 1.0 --max_length 1024 "
                "--scheduler_shift 3.0, 480x832, 21 latent frames); see docs/from_reference.md."
            ),
            **({"non_finite_tensors": non_finite} if non_finite else {}),
        },
        overwrite=overwrite,
        inputs=inputs,
        max_shard_size=max_shard_size,
        model_card=reference_model_card(
            source.repo_id if source is not None else None, wan_path, mask, revision=revision, license=license
        ),
    )
