# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Loading and saving a [`UniViGUPipeline`] folder. `from_pretrained` checks the folder first and the loaded models
after, each check naming what is wrong and the fix: the `checksums.json` manifest (`write_checksums` /
`verify_checksums`), component subfolders that `model_index.json` lists, weights that match their configs, finite
weights. `save_pretrained(..., hub_export=True)` and `push_to_hub` write the self-contained Hub folder (`hub.py`).

Part of the pipeline's module files: like `pipeline_univigu.py` it imports diffusers, transformers, torch, numpy,
PIL and its sibling modules only (never `univigu`), so that `export_for_hub` can ship it with the weights.
"""

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import huggingface_hub
import torch
from safetensors import SafetensorError, safe_open

from diffusers.models.modeling_utils import ModelMixin
from diffusers.pipelines.pipeline_utils import DiffusionPipeline

from .call_arguments import check_call_defaults, is_int
from .hub import _CARD_KWARGS, export_for_hub


CHECKSUMS_FILENAME = "checksums.json"
#: Layout version of folders this file writes; a folder from a newer layout is refused with the fix.
CHECKPOINT_FORMAT = 1


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json_file(path: str | os.PathLike) -> Any:
    """The JSON in `path`; a file that is not JSON (or not UTF-8 text) raises a `ValueError` naming it, the line and
    the column."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}): fix "
                         "the file or restore it from the original checkpoint.") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}): restore it.") from None


def check_local_or_hub(path: Any) -> str:
    """The `from_pretrained` argument as a string. A path that names a local file or folder (a `Path`, or a string
    that is absolute, starts with `.` or `~`, or has more than one `/`) must be an existing folder: an `OSError`
    naming it otherwise, rather than diffusers' `AttributeError` for a `Path` or a Hub lookup for a local typo (found
    by benchmarks/probe_bad_inputs.py). A Hub id (`owner/name`) passes through."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"pretrained_model_name_or_path must be a folder or a Hub id (a string), got "
                        f"{type(path).__name__}.")
    local = isinstance(path, os.PathLike)
    path = os.fspath(path)
    if not path.strip():
        raise OSError("pretrained_model_name_or_path is empty: pass a pipeline folder or a Hub id.")
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise OSError(f"{path} is a file, not a pipeline folder: pass the folder that holds model_index.json.")
    if local or os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") > 1:
        raise OSError(f"{path}: no such folder (a pipeline folder holds model_index.json; a Hub id is owner/name).")
    return path


def _unreadable_safetensors(folder: str) -> str | None:
    """The first `.safetensors` file under a local `folder` whose header cannot be read, or None."""
    if not os.path.isdir(folder):
        return None
    for file in sorted(Path(folder).rglob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except Exception:  # noqa: BLE001 - any failure to open names the file
            return str(file)
    return None


#: Config keys that are sizes or counts (whole numbers >= 1, or lists of them), in any component's config.json.
_SIZE_KEY = re.compile(
    r"^(num_\w+|\w+_dim|dim|d_model|d_kv|d_ff|\w+_channels|vocab_size|patch_size|\w+_heads|\w+_layers|"
    r"\w+_seq_len|\w+_num_buckets|\w+_max_distance|num_train_timesteps)$"
)
#: Size keys that may be 0 (an encoder-only model's decoder layers).
_ZERO_OK = {"num_decoder_layers"}


def check_config_values(path: str, config: Any) -> None:
    """A component's `config.json` (or `scheduler_config.json`): a JSON object whose sizes and counts (`_SIZE_KEY`:
    heads, layers, dims, channels, vocab, patch size, ...) are whole numbers >= 1 (or null); a `ValueError` naming
    the file and key otherwise, before the model is built from it (negative heads, fractional sizes, strings)."""
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object of settings, not a {type(config).__name__}: restore it.")
    for key, value in config.items():
        if not isinstance(key, str) or not _SIZE_KEY.match(key) or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        minimum = 0 if key in _ZERO_OK else 1
        if not values or not all(is_int(v) and v >= minimum for v in values):
            raise ValueError(
                f"{path}: `{key}` is {json.dumps(value)}, but it is a size or count: it must be a whole number >= "
                f"{minimum}{' (or a list of them)' if isinstance(value, list) else ''}. Fix it to the value the "
                "weights were saved with, or restore the file."
            )


def check_folder_configs(folder: str | os.PathLike, passed: tuple[str, ...] = (),
                         components: tuple[str, ...] = ()) -> None:
    """Before loading a local pipeline folder: `model_index.json` and every listed component's config are JSON
    objects, the component entries (lists, and every name in `components`) are `[library, class]` pairs, `call_defaults` are valid (`check_call_defaults`)
    and the configs' sizes are whole numbers >= 1 (`check_config_values`); each error names the file and key."""
    index_path = os.path.join(folder, "model_index.json")
    if not os.path.isfile(index_path):
        return  # diffusers' own error names the missing model_index.json
    index = read_json_file(index_path)
    if not isinstance(index, dict):
        raise ValueError(f"{index_path} must hold a JSON object (components and settings), not a "
                         f"{type(index).__name__}: restore it.")
    if index.get("_class_name") == "WanPipeline" and "transformer" not in passed:
        # found by benchmarks/probe_bad_inputs.py: a Wan folder loaded "fine" as a UniViGUPipeline with a
        # WanTransformer3DModel and no text stream, and failed only when called
        raise ValueError(f"{index_path} describes a WanPipeline, not a UniViGUPipeline: convert the folder first, "
                         f"`univigu convert wan --wan {folder} --out OUT`, and load OUT.")
    try:
        check_call_defaults(index.get("call_defaults"))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{index_path}: {error}") from None
    for name, entry in index.items():
        if name.startswith("_") or not (isinstance(entry, (list, tuple)) or name in components):
            continue
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2
                and all(part is None or isinstance(part, str) for part in entry)):
            raise ValueError(f"{index_path}: `{name}` is {json.dumps(entry)}, but a component entry must be a pair "
                             '[library, class] (e.g. ["diffusers", "AutoencoderKLWan"]): restore the file.')
        if name in passed or None in entry:
            continue
        for config_name in ("config.json", "scheduler_config.json"):
            config_path = os.path.join(folder, name, config_name)
            if os.path.isfile(config_path):
                check_config_values(config_path, read_json_file(config_path))


def write_checksums(folder: str | os.PathLike, **info: Any) -> str:
    """Record the size and sha256 of every file under `folder` (plus `info`, e.g. a version) in `checksums.json`,
    which `UniViGUPipeline.from_pretrained` then checks before loading."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            if rel == CHECKSUMS_FILENAME:
                continue
            files[rel] = {"bytes": os.path.getsize(path), "sha256": _sha256(path)}
    path = os.path.join(folder, CHECKSUMS_FILENAME)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"checkpoint_format": CHECKPOINT_FORMAT, **info, "files": dict(sorted(files.items()))}, f, indent=2)
        f.write("\n")
    return path


def verify_checksums(folder: str | os.PathLike) -> dict | None:
    """If `folder` has a `checksums.json`, check that every file it lists is present, of the right size and hash;
    raise an error naming the damaged files and the fix otherwise. Returns the manifest (None when there is none)."""
    path = os.path.join(folder, CHECKSUMS_FILENAME)
    if not os.path.isfile(path):
        return None
    manifest = read_json_file(path)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
        raise ValueError(f"{path} must hold a JSON object with a `files` object: restore it, or delete it to load "
                         "the folder unchecked.")
    if int(manifest.get("checkpoint_format", 1)) > CHECKPOINT_FORMAT:
        raise OSError(
            f"The pipeline folder {folder} has checkpoint format {manifest['checkpoint_format']}, newer than this "
            f"univigu reads ({CHECKPOINT_FORMAT}): upgrade univigu (`pip install -U univigu`)."
        )
    problems = []
    for rel, expected in manifest.get("files", {}).items():
        file = os.path.join(folder, rel)
        if not os.path.isfile(file):
            problems.append(f"{rel}: missing")
        elif os.path.getsize(file) != expected["bytes"]:
            problems.append(f"{rel}: {os.path.getsize(file)} bytes, expected {expected['bytes']} (truncated?)")
        elif _sha256(file) != expected["sha256"]:
            problems.append(f"{rel}: content differs from the checkpoint's recorded sha256")
    if problems:
        raise OSError(
            f"The pipeline folder {folder} is damaged: " + "; ".join(problems) + ". Restore the folder (for the "
            "bundled ShapesWorld checkpoint, reinstall univigu, or rebuild it from a univigu source checkout with "
            "`python training/shapesworld/build.py --out DIR --install`)."
        )
    return manifest


def check_component_folders(folder: str | os.PathLike, passed: tuple[str, ...] = ()) -> None:
    """Every component that a local pipeline folder's `model_index.json` lists (and that the caller does not pass
    itself, `passed`) must have its subfolder: otherwise diffusers looks for it at the folder's root and fails with
    an error that does not name the component. Raises an `OSError` naming the missing subfolders."""
    index_path = os.path.join(folder, "model_index.json")
    if not os.path.isfile(index_path):
        return  # diffusers' own error names the missing model_index.json
    index = read_json_file(index_path)
    missing = []
    for name, entry in index.items():
        if name.startswith("_") or name in passed:
            continue
        is_component = isinstance(entry, (list, tuple)) and len(entry) == 2 and None not in entry
        if is_component and not os.path.isdir(os.path.join(folder, name)):
            missing.append(f"`{name}/` ({entry[1]})")
    if missing:
        names = [m.split("/")[0].strip("`") for m in missing]
        raise OSError(
            f"The pipeline folder {folder} lacks the component subfolder{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} that its model_index.json lists: restore {'them' if len(missing) > 1 else 'it'} "
            "(copy the whole folder again, or re-save it with `pipe.save_pretrained`), or pass the component "
            f"yourself: `UniViGUPipeline.from_pretrained(folder, {names[0]}=...)`."
        )


def _weight_file_keys(folder: str, variant: str | None) -> set | None:
    """The tensor names a component folder's safetensors weights hold (a single file or a sharded index), read from
    the file headers only; `None` when there is no safetensors file to read (e.g. `.bin` weights)."""
    for suffix in ([f".{variant}"] if variant else []) + [""]:
        for prefix in ("diffusion_pytorch_model", "model"):
            name = f"{prefix}{suffix}.safetensors"
            index = os.path.join(folder, name + ".index.json")
            if os.path.isfile(index):
                with open(index, encoding="utf-8") as f:
                    return set(json.load(f).get("weight_map", {}))
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with safe_open(path, framework="pt") as f:
                    return set(f.keys())
    return None


def _summarize_keys(keys) -> str:
    """`blocks.4.*, blocks.5.*` for whole blocks, else the first few names."""
    blocks: dict[str, set] = {}
    others = []
    for key in sorted(keys):
        match = re.match(r"^(.*?\b(?:blocks|block|layers|layer|h))\.(\d+)\.", key)
        if match:
            blocks.setdefault(match.group(1), set()).add(int(match.group(2)))
        else:
            others.append(key)
    parts = [f"{prefix}.{i}.*" for prefix, ids in sorted(blocks.items()) for i in sorted(ids)]
    parts += others
    shown = ", ".join(parts[:8])
    return shown + (f", ... ({len(parts) - 8} more)" if len(parts) > 8 else "")


def check_finite_weights(pipeline: DiffusionPipeline, passed: tuple[str, ...] = ()):
    """After loading: NaN or inf in a model's weights (a broken conversion or fine-tune) would turn every output into
    NaN far from its cause; name the tensors instead. One reduction per tensor: cheap next to loading."""
    for name, component in pipeline.components.items():
        if name in passed or not isinstance(component, torch.nn.Module):
            continue
        bad = [key for key, tensor in component.state_dict().items()
               if tensor.is_floating_point() and tensor.device.type != "meta" and not bool(torch.isfinite(tensor).all())]
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            folder = getattr(component, "name_or_path", None) or getattr(getattr(component, "config", None),
                                                                         "_name_or_path", None)
            where = f" ({folder})" if folder else ""
            raise ValueError(
                f"The weights of `{name}` hold NaN or inf values ({shown}): the checkpoint{where} is broken. Convert or "
                "train it again (`univigu convert ...` reports non-finite weights), or pass a healthy component "
                f"as `{name}=...`."
            )


def check_component_weights(pipeline: DiffusionPipeline, passed: tuple[str, ...] = (), variant: str | None = None):
    """After loading: the weights file of every model component loaded from a folder must hold exactly the tensors
    its config builds. diffusers and transformers only warn when they differ, then run with randomly initialised
    layers (config builds more blocks than the weights have) or silently drop layers (fewer); this raises a
    `ValueError` naming the component, the disagreeing tensors and the fix instead."""
    for name, component in pipeline.components.items():
        if name in passed or not isinstance(component, torch.nn.Module):
            continue
        config = getattr(component, "config", None)
        folder = getattr(component, "name_or_path", None) or getattr(config, "_name_or_path", None)
        if not folder or not os.path.isdir(folder):
            continue
        if getattr(component, "hf_quantizer", None) is not None or getattr(config, "quantization_config", None):
            continue  # quantized weights store extra tensors (scales, ...) under other names
        file_keys = _weight_file_keys(folder, variant)
        if file_keys is None:
            continue
        state = component.state_dict()
        model_keys = set(state)
        is_transformers_model = not isinstance(component, ModelMixin)
        if is_transformers_model:
            prefix = getattr(component, "base_model_prefix", "") or ""
            if prefix and file_keys and all(k.startswith(prefix + ".") for k in file_keys) and not any(
                k.startswith(prefix + ".") for k in model_keys
            ):
                file_keys = {k[len(prefix) + 1 :] for k in file_keys}
        ignore_missing = list(getattr(component, "_keys_to_ignore_on_load_missing", None) or [])
        ignore_unexpected = list(getattr(component, "_keys_to_ignore_on_load_unexpected", None) or [])
        tied = list(getattr(component, "_tied_weights_keys", None) or [])  # a list, or a dict keyed by the tied names
        present = {state[k].data_ptr() for k in model_keys & file_keys if state[k].device.type != "meta"}
        missing = sorted(
            k
            for k in model_keys - file_keys
            if not any(re.search(p, k) for p in ignore_missing)
            and k not in tied
            # not tied to a tensor the file has (a missing tensor left on the meta device is never tied)
            and (state[k].device.type == "meta" or state[k].data_ptr() not in present)
        )
        unexpected = [k for k in file_keys - model_keys if not any(re.search(p, k) for p in ignore_unexpected)]
        if is_transformers_model:
            # transformers ignores whole modules the class does not have (a decoder, a head); extra tensors under a
            # module it does have (more blocks) are a real mismatch
            tops = {k.split(".", 1)[0] for k in model_keys}
            unexpected = [k for k in unexpected if k.split(".", 1)[0] in tops]
        unexpected = sorted(unexpected)
        if not missing and not unexpected:
            continue
        sub = os.path.basename(os.path.normpath(folder))
        details = []
        if missing:
            details.append(f"the config builds {len(missing)} tensors the weights lack ({_summarize_keys(missing)}), "
                           "which would be left uninitialised or random")
        if unexpected:
            details.append(f"the weights hold {len(unexpected)} tensors the config does not build "
                           f"({_summarize_keys(unexpected)}), which would be dropped")
        counts = ", ".join(
            f"{k}={getattr(config, k)}" for k in ("num_layers", "num_hidden_layers") if getattr(config, k, None)
        )
        raise ValueError(
            f"The `{name}` of {os.path.dirname(os.path.normpath(folder))} does not match its weights: "
            + "; ".join(details)
            + f". Make `{sub}/config.json`"
            + (f" ({counts})" if counts else "")
            + " describe the model the weights file was saved from (e.g. the number of layers), or restore the "
            "weights that belong to this config."
        )


class UniViGUSerializationMixin:
    """Loading and saving of [`UniViGUPipeline`] (it comes before `DiffusionPipeline` among the pipeline's bases):
    `from_pretrained` with the checks of this module, `save_pretrained(..., hub_export=True)` and `push_to_hub`, which
    write the folder [`export_for_hub`] writes (module files included) so that it loads with
    `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)` without univigu."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """`DiffusionPipeline.from_pretrained`, with checks that name what is wrong with a damaged folder:

        - a local folder that carries a `checksums.json` (the bundled ShapesWorld checkpoint does) is checked first,
          so that a missing or truncated file is named clearly;
        - `model_index.json` and each component's config must be JSON objects with valid `call_defaults`, component
          entries and sizes (`check_folder_configs`: a `ValueError` naming the file and key);
        - a component subfolder that `model_index.json` lists but the local folder lacks is named (`OSError`);
        - after loading, each model's weights must hold exactly the tensors its config builds (`ValueError`
          otherwise): a config with more blocks than the weights would run with randomly initialised layers, one
          with fewer would drop layers, where diffusers and transformers only warn;
        - no model weight may be NaN or inf (`ValueError` naming the tensors)."""
        passed = tuple(k for k in kwargs if not k.startswith("_"))
        pretrained_model_name_or_path = check_local_or_hub(pretrained_model_name_or_path)
        for key in ("torch_dtype", "dtype"):  # diffusers warns about a string and loads float32 (found by the probe)
            value = kwargs.get(key)
            if value is not None and value != "auto" and not isinstance(value, (torch.dtype, dict)):
                raise TypeError(f"`{key}` must be a torch.dtype (e.g. torch.bfloat16) or a dict of them per "
                                f"component, got {value!r}.")
        if os.path.isdir(pretrained_model_name_or_path):
            verify_checksums(pretrained_model_name_or_path)
            check_folder_configs(pretrained_model_name_or_path, passed, tuple(cls._get_signature_keys(cls)[0]))
            check_component_folders(pretrained_model_name_or_path, passed)
        try:
            pipeline = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except SafetensorError as error:  # transformers' loaders let a truncated file's header error through
            raise OSError(f"A weights file of {pretrained_model_name_or_path} cannot be read "
                          f"({_unreadable_safetensors(pretrained_model_name_or_path) or 'a .safetensors file'}: "
                          f"{error}): it is truncated or damaged; re-download or re-save the pipeline.") from None
        if kwargs.get("quantization_config") is None:
            check_component_weights(pipeline, passed, kwargs.get("variant"))
            check_finite_weights(pipeline, passed)
        return pipeline

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        hub_export: bool = False,
        **kwargs,
    ):
        """`DiffusionPipeline.save_pretrained`. With `hub_export=True` (or `push_to_hub=True`) the folder is written
        by [`export_for_hub`] instead: self-contained, loadable with `trust_remote_code=True` without univigu. With
        `push_to_hub=True` it is then uploaded (`repo_id`, `token`, `private`, `commit_message`, `create_pr` as in
        diffusers). Model-card arguments: `license`, `base_model`, `model_description`, `tags`."""
        if not (hub_export or push_to_hub):
            return super().save_pretrained(
                save_directory, safe_serialization=safe_serialization, variant=variant, max_shard_size=max_shard_size
            )
        card_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _CARD_KWARGS}
        export_kwargs = dict(safe_serialization=safe_serialization, variant=variant, max_shard_size=max_shard_size)
        if not push_to_hub:
            export_for_hub(self, save_directory, **export_kwargs, **card_kwargs)
            return None
        token = kwargs.pop("token", None)
        repo_id = kwargs.pop("repo_id", os.path.basename(os.path.normpath(os.fspath(save_directory))))
        private = kwargs.pop("private", None)
        repo_id = huggingface_hub.create_repo(repo_id, exist_ok=True, private=private, token=token).repo_id
        export_for_hub(self, save_directory, **export_kwargs, repo_id=repo_id, **card_kwargs)
        return self._upload_folder(
            save_directory,
            repo_id,
            token=token,
            commit_message=kwargs.pop("commit_message", None),
            create_pr=kwargs.pop("create_pr", False),
        )

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        variant: str | None = None,
        **card_kwargs,
    ) -> str:
        """Uploads the pipeline to the Hub as the folder [`export_for_hub`] writes (module files included, so the
        repository loads with `DiffusionPipeline.from_pretrained(repo_id, trust_remote_code=True)`)."""
        repo_id = huggingface_hub.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmpdir:
            export_for_hub(
                self, tmpdir, safe_serialization=safe_serialization, variant=variant, repo_id=repo_id, **card_kwargs
            )
            return self._upload_folder(tmpdir, repo_id, token=token, commit_message=commit_message, create_pr=create_pr)


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKSUMS_FILENAME",
    "UniViGUSerializationMixin",
    "check_component_folders",
    "check_component_weights",
    "check_config_values",
    "check_folder_configs",
    "check_finite_weights",
    "read_json_file",
    "verify_checksums",
    "write_checksums",
]
