# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Pieces shared by both conversions: reading a Wan2.1 diffusers folder and writing a UniViGU pipeline folder.

The pipeline folder is written through `UniViGUPipeline.save_pretrained` (so `model_index.json`, and whatever else
the pipeline writes with itself, is exactly what the pipeline produces), but the large components taken unchanged
from the Wan folder (text encoder, VAE, tokenizer) are *copied file by file*: they are never loaded. In their place
the pipeline object holds stand-ins of the right classes built on the meta device (no memory), whose
`save_pretrained` is the file copy.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import mmap as _mmap
import os
import shutil
import struct
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import huggingface_hub
import torch
from transformers import AutoConfig

from .. import __version__
from ..pipelines import UniViGUPipeline
from ..utils.hub import looks_like_hub_id
from ..utils.output_paths import check_not_an_input, remove_stale_staging, staged_output


logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

#: Components of a Wan2.1 T2V diffusers folder that a UniViGU pipeline takes over unchanged.
COPIED_COMPONENTS = ("tokenizer", "text_encoder", "vae")
_PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass
class WanFolder:
    path: Path
    model_index: dict[str, Any]
    transformer_config: dict[str, Any]

    def component_class(self, name: str):
        """`(library, class_name)` of a component, from the Wan folder's `model_index.json`."""
        entry = self.model_index.get(name)
        if not entry or entry[0] is None:
            raise ValueError(f"{self.path}/model_index.json has no {name!r} component.")
        return entry[0], entry[1]


#: What conversion reads from a Wan2.1 repository on the Hub (diffusers layout); the rest of the repo is not fetched.
WAN_HUB_PATTERNS = ["model_index.json", "transformer/*", "vae/*", "text_encoder/*", "tokenizer/*", "scheduler/*"]


def resolve_wan_path(wan_path: PathLike) -> Path:
    """A local folder as is; otherwise a Hub repo id (`Wan-AI/Wan2.1-T2V-1.3B-Diffusers`), downloaded to the Hub
    cache with only the files a diffusers Wan pipeline needs (no original-format weights, no images)."""
    path = Path(wan_path)
    if path.is_dir():
        return path
    text = os.fspath(wan_path)
    if not looks_like_hub_id(text):
        raise FileNotFoundError(f"Wan folder not found: {path} (pass a local folder or a Hub id like "
                                "Wan-AI/Wan2.1-T2V-1.3B-Diffusers)")

    def download(patterns):
        try:
            return Path(huggingface_hub.snapshot_download(text, allow_patterns=patterns))
        except Exception as error:  # offline, unknown repo, gated: say what to do
            reason = (str(error).strip().splitlines() or [""])[0]
            raise FileNotFoundError(
                f"{text} is not a local folder and could not be downloaded from the Hub ({type(error).__name__}: "
                f"{reason}). Check the id and your connection, or download it first: "
                f"`huggingface-cli download {text} --local-dir Wan2.1-T2V-1.3B-Diffusers`."
            ) from error

    # model_index.json first: a layout that is refused (Wan2.2-A14B) is refused before gigabytes are fetched
    index_file = download(["model_index.json"]) / "model_index.json"
    if index_file.is_file():
        check_single_transformer(text, json.loads(index_file.read_text()))
    return download(WAN_HUB_PATTERNS)


def read_wan_folder(wan_path: PathLike) -> WanFolder:
    """Check that `wan_path` is a Wan2.1 text-to-video diffusers folder (or a Hub id of one, downloaded on demand)
    and read its index and transformer config."""
    path = resolve_wan_path(wan_path)
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ValueError(
            f"{path} is not a diffusers pipeline folder (no model_index.json). Expected a Wan2.1 T2V folder such as "
            "Wan2.1-T2V-1.3B-Diffusers with model_index.json, transformer/, vae/, text_encoder/, tokenizer/."
        )
    model_index = json.loads(index_file.read_text())
    check_single_transformer(path, model_index)
    missing = [name for name in ("transformer",) + COPIED_COMPONENTS + ("scheduler",) if not (path / name).is_dir()]
    if missing:
        raise ValueError(f"{path} lacks the component folder(s) {missing} of a Wan2.1 T2V pipeline.")
    config_file = path / "transformer" / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{path}/transformer has no config.json.")
    config = json.loads(config_file.read_text())
    if config.get("_class_name") not in (None, "WanTransformer3DModel"):
        raise ValueError(
            f"{path}/transformer is a {config.get('_class_name')}, not a WanTransformer3DModel (Wan2.1 T2V)."
        )
    if config.get("image_dim") is not None or config.get("added_kv_proj_dim") is not None:
        raise ValueError(
            f"{path} is an image-conditioned Wan model (image_dim/added_kv_proj_dim set); UniViGU builds on Wan2.1 "
            "text-to-video."
        )
    return WanFolder(path=path, model_index=model_index, transformer_config=config)


def check_single_transformer(path: PathLike, model_index: dict[str, Any]) -> None:
    """Refuse a Wan2.2-A14B folder: two transformers (`transformer` for high noise, `transformer_2` for low noise)
    switched at `boundary_ratio`. A UniViGU model is one transformer that holds video *and* text: its text stream
    (captioning at video time 0, and joint generation with the caption at the video's time) would need text experts
    in both, trained jointly across the switch; that is not implemented (docs/backbones.md). Neither expert alone
    keeps the prior: each was trained on its part of the noise range only."""
    second = model_index.get("transformer_2")
    has_second = (isinstance(second, (list, tuple)) and any(second)) or (Path(path) / "transformer_2").is_dir()
    if has_second or model_index.get("boundary_ratio") is not None:
        raise ValueError(
            f"{path} is a two-expert Wan2.2 pipeline (Wan2.2-A14B layout: transformer + transformer_2, "
            f"boundary_ratio={model_index.get('boundary_ratio')}). UniViGU builds on one transformer, and this "
            "layout is not supported: its text stream would need text experts in both transformers, trained "
            "across the high/low-noise switch, and neither expert alone keeps Wan's prior over the whole "
            "schedule. Convert a single-transformer Wan folder instead: Wan2.1-T2V-1.3B or -14B, or "
            "Wan2.2-TI2V-5B (see docs/backbones.md). Nothing was written."
        )


def check_output_dir(out_dir: PathLike, overwrite: bool = False, inputs=()) -> Path:
    """Refuse an output folder that would destroy or mix with the user's files, before any work is done.

    `inputs` are the paths the conversion reads (the Wan folder, the checkpoint file). The output may neither be,
    contain nor lie inside one of them: replacing it would delete the input (`--out` = the Wan folder or its
    parent), and writing into an input folder would change it. A non-empty output needs `overwrite`. What a killed
    conversion to the same output left (its staging folder) is cleaned up first, so that an old output it had moved
    aside is back in place before it is checked.
    """
    out = Path(out_dir)
    check_not_an_input(out, inputs, "--out")
    remove_stale_staging(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(
            f"{out} exists and is not empty; pass --overwrite (overwrite=True) to replace it, or choose another --out."
        )
    return out


@contextlib.contextmanager
def staged_output_dir(out_dir: PathLike, overwrite: bool = False, inputs=()):
    """Write an output folder atomically: yields a fresh temporary sibling folder to write into; when the block
    finishes, the old output (if any, with `overwrite`) is replaced by it. If the block fails, the temporary folder is
    removed and the old output is left as it was; a conversion that was killed leaves its temporary folder, which the
    next conversion to the same output removes (:func:`univigu.utils.output_paths.remove_stale_staging`).

    The output is checked with :func:`check_output_dir` first (never replace an input or a folder around one).
    """
    out = check_output_dir(out_dir, overwrite, inputs)
    with staged_output(out, folder=True, flag="--out") as tmp:
        yield tmp


def non_finite_tensors(state: dict[str, torch.Tensor], chunk: int = 1 << 24) -> list[str]:
    """Names of the floating-point tensors of `state` holding a NaN or an infinity (read in chunks: the tensors
    may be memory-mapped and large; a full-size boolean mask would cost memory)."""
    bad = []
    for name, value in state.items():
        if not value.is_floating_point() or value.device.type == "meta":
            continue
        flat = value.detach().reshape(-1)
        if any(not bool(torch.isfinite(part).all()) for part in flat.split(chunk)):
            bad.append(name)
    return bad


def check_finite(transformer, allow_non_finite: bool = False) -> list[str]:
    """Refuse (or, with `allow_non_finite`, warn about) a converted transformer whose weights hold NaN/inf: such a
    model outputs NaN, and the cause (a broken checkpoint, a cast to float16 that overflowed) is best seen here.
    Returns the offending tensor names."""
    bad = non_finite_tensors(transformer.state_dict())
    if bad:
        shown = ", ".join(bad[:20]) + (f", ... ({len(bad)} in all)" if len(bad) > 20 else "")
        message = (
            f"{len(bad)} tensor(s) of the converted transformer hold NaN or inf values: {shown}. The pipeline "
            "would output NaN. Check the source checkpoint (or a --dtype that overflows)"
        )
        if not allow_non_finite:
            raise ValueError(message + "; pass --allow-non-finite (allow_non_finite=True) to write it anyway.")
        logger.warning("%s; writing it anyway (allow_non_finite=True).", message)
    return bad


def copy_component_folder(src: Path, dst: PathLike) -> None:
    """Copy a component folder file by file. Pickled weight files are refused (safetensors only)."""
    files = [p for p in src.rglob("*") if p.is_file()]
    pickled = [p for p in files if p.suffix in _PICKLED_WEIGHTS]
    has_safetensors = any(p.suffix == ".safetensors" for p in files)
    if pickled and not has_safetensors:
        raise ValueError(
            f"{src} holds its weights only as pickle files ({', '.join(p.name for p in pickled)}); univigu writes and "
            "reads safetensors only. Re-save that component with `save_pretrained(..., safe_serialization=True)` first."
        )
    dst = Path(dst)
    for file in files:
        if file.suffix in _PICKLED_WEIGHTS:
            continue  # a safetensors copy of the same weights is there
        target = dst / file.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)


def _copying_save(src: Path):
    def save_pretrained(self, save_directory, *args, **kwargs):
        copy_component_folder(src, save_directory)

    return save_pretrained


def _import_class(library: str, class_name: str):
    return getattr(importlib.import_module(library), class_name)


def component_standin(wan: WanFolder, name: str):
    """An object of the component's class that costs no memory (meta device), whose `save_pretrained` copies the
    component's folder from the Wan folder."""
    library, class_name = wan.component_class(name)
    cls = _import_class(library, class_name)
    src = wan.path / name
    if library == "transformers":
        config = AutoConfig.from_pretrained(src)
        with torch.device("meta"):
            obj = cls(config)
    else:
        config = cls.load_config(src)
        with torch.device("meta"):
            obj = cls.from_config(config)
    object.__setattr__(obj, "save_pretrained", types.MethodType(_copying_save(src), obj))
    return obj


def write_pipeline_folder(
    out_dir: Path,
    wan: WanFolder,
    transformer,
    scheduler,
    text_scheduler,
    tokenizer=None,
    pipeline_config: dict[str, Any] | None = None,
    max_shard_size: int | str = "10GB",
) -> Path:
    """Write a `UniViGUPipeline` folder: `transformer`, `scheduler`, `text_scheduler` are saved; `tokenizer`,
    `text_encoder` and `vae` are copied from the Wan folder. `pipeline_config` are the pipeline's own config
    arguments (e.g. `latent_normalization`)."""
    if tokenizer is None:
        tokenizer = load_tokenizer(wan)
    # the tokenizer is written as the Wan folder has it (byte copy), not re-serialised
    object.__setattr__(tokenizer, "save_pretrained", types.MethodType(_copying_save(wan.path / "tokenizer"), tokenizer))
    components = {
        "tokenizer": tokenizer,
        "text_encoder": component_standin(wan, "text_encoder"),
        "vae": component_standin(wan, "vae"),
    }
    pipe = UniViGUPipeline(
        transformer=transformer,
        scheduler=scheduler,
        text_scheduler=text_scheduler,
        **components,
        **(pipeline_config or {}),
    )
    pipe.save_pretrained(out_dir, safe_serialization=True, max_shard_size=max_shard_size)
    return out_dir


def load_tokenizer(wan: WanFolder):
    library, class_name = wan.component_class("tokenizer")
    return _import_class(library, class_name).from_pretrained(wan.path / "tokenizer")


def tokenizer_vocab_sizes(tokenizer, wan: WanFolder | None = None):
    """Candidate text vocabulary sizes: `tokenizer.vocab_size`, `len(tokenizer)`, and the text encoder's."""
    sizes = {int(tokenizer.vocab_size), len(tokenizer)}
    if wan is not None:
        config_file = wan.path / "text_encoder" / "config.json"
        if config_file.is_file():
            size = json.loads(config_file.read_text()).get("vocab_size")
            if size:
                sizes.add(int(size))
    return sorted(sizes)


def write_converted_pipeline(
    out_dir: PathLike,
    wan: WanFolder,
    transformer,
    scheduler,
    text_scheduler,
    tokenizer,
    latent_normalization: str,
    provenance: dict[str, Any],
    overwrite: bool = False,
    inputs=(),
    max_shard_size: int | str = "10GB",
    pipeline_config: dict[str, Any] | None = None,
    model_card: str | None = None,
) -> Path:
    """The end of both conversions: the pipeline folder (:func:`write_pipeline_folder`) and its provenance record,
    written into a staged folder that replaces `out_dir` only when complete (:func:`staged_output_dir`).
    `pipeline_config`: further pipeline config arguments (e.g. `expand_timesteps`); `model_card`: the text of the
    folder's `README.md`."""
    with staged_output_dir(out_dir, overwrite, inputs) as staging:
        write_pipeline_folder(
            staging,
            wan,
            transformer=transformer,
            scheduler=scheduler,
            text_scheduler=text_scheduler,
            tokenizer=tokenizer,
            pipeline_config={"latent_normalization": latent_normalization, **(pipeline_config or {})},
            max_shard_size=max_shard_size,
        )
        write_provenance(staging, provenance)
        if model_card is not None:
            (Path(staging) / "README.md").write_text(model_card, encoding="utf-8")
    return Path(out_dir)


#: A small record of where a converted folder came from (diffusers ignores unknown files in a pipeline folder).
PROVENANCE_FILE = "univigu_conversion.json"


def write_provenance(out: Path, info: dict[str, Any]) -> None:
    info = {"univigu_version": __version__, **info}
    (Path(out) / PROVENANCE_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
if hasattr(torch, "float8_e4m3fn"):
    _SAFETENSORS_DTYPES.update({"F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2})


def load_safetensors_mmap(path: Path) -> dict[str, torch.Tensor]:
    """Memory-map a `.safetensors` file: tensors are views of the file (copy-on-write), nothing is read up front."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path} is not a safetensors file: it is only {len(head)} bytes long.")
        (header_len,) = struct.unpack("<Q", head)
        size = os.fstat(f.fileno()).st_size
        if header_len > min(size - 8, 100_000_000):
            raise ValueError(f"{path} is not a safetensors file: its header length field ({header_len}) is invalid.")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a safetensors file: its header is not JSON ({e}).") from None
        header.pop("__metadata__", None)
        data_start = 8 + header_len
        # ACCESS_COPY: a private, writable mapping, so torch.frombuffer does not complain; pages are only read on use.
        buffer = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_COPY) if size > data_start else None
    state = {}
    for name, info in header.items():
        dtype = _SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}.")
        begin, end = info["data_offsets"]
        shape = info["shape"]
        numel = 1
        for s in shape:
            numel *= s
        if numel == 0:
            state[name] = torch.empty(shape, dtype=dtype)
            continue
        tensor = torch.frombuffer(buffer, dtype=torch.uint8, count=end - begin, offset=data_start + begin)
        state[name] = tensor.view(dtype).reshape(shape)
    return state


def load_safetensors_folder(folder: PathLike) -> dict[str, torch.Tensor]:
    """Memory-map the weights of a diffusers model folder (one `*.safetensors` file, or shards with an
    `*.safetensors.index.json`). Pickled weights are refused."""
    folder = Path(folder)
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        weight_map = json.loads(indexes[0].read_text())["weight_map"]
        files = sorted(set(weight_map.values()))
    else:
        files = [p.name for p in sorted(folder.glob("*.safetensors"))]
        if len(files) > 1:
            preferred = [f for f in files if f == "diffusion_pytorch_model.safetensors"]
            if not preferred:
                raise ValueError(f"{folder} holds several safetensors files ({files}) and no index: which one?")
            files = preferred
    if not files:
        found = sorted(p.name for p in folder.iterdir() if p.is_file())
        raise ValueError(
            f"{folder} has no safetensors weights (found: {found}); univigu reads safetensors only. Re-save the model "
            "with `save_pretrained(..., safe_serialization=True)`."
        )
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_safetensors_mmap(folder / name))
    return state
