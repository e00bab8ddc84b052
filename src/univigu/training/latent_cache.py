# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The one-off cache of VAE latents and umT5 embeddings of a training set.

:func:`prepare_latent_cache` encodes every usable video with the (frozen) VAE and every conditioning prompt with the
(frozen) umT5 encoder once, into Arrow files (memory-mapped by 🤗 datasets). The cache folder records a key: a hash
of the encoders' configs, a fingerprint of their weights, the tokenizer, the preprocessing settings and the data. Of
the VAE only the part that makes latents counts (its encoder, `quant_conv` and latent statistics): a new decoder, as
the ShapesWorld build swaps in, leaves every cached latent valid. A cache whose key differs from the current one is
refused with a message naming what changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import BadSample, NoUsableSamplesError, check_columns, text_problem
from ..data.preprocessing import VideoPreprocessing
from ..data.samples import process_share
from .encoding import encode_prompts, encode_videos


logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
CACHE_INFO_FILENAME = "univigu_latent_cache.json"
#: threads that read and preprocess videos ahead of the encoder while a cache is built
READ_AHEAD_THREADS = 4


class StaleCacheError(RuntimeError):
    """A latent cache exists but was built with other encoders, settings or data."""


def weights_fingerprint(module: torch.nn.Module, samples_per_tensor: int = 4096) -> str:
    """A fast fingerprint of a module's weights: per tensor, its name, shape, dtype, an evenly strided sample of its
    values and its sum. Changes to any weight tensor (retraining, another checkpoint) change it."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        if t.device.type == "meta" or t.numel() == 0:
            continue
        flat = t.reshape(-1)
        step = max(1, flat.numel() // samples_per_tensor)
        sample = flat[::step][:samples_per_tensor].float().cpu()
        h.update(sample.numpy().tobytes())
        h.update(np.float64(flat.double().sum().item()).tobytes())
    return h.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps([type(tokenizer).__name__, vocab]).encode()).hexdigest()[:16]


def dataset_fingerprint(dataset, video_column: str, condition_column: str) -> str:
    """Hash of what the cache content depends on in the data: video file names and sizes, conditioning texts."""
    h = hashlib.sha256()
    for row in dataset.select_columns([video_column, condition_column]):
        path, text = row[video_column], row[condition_column]
        size = os.path.getsize(path) if isinstance(path, str) and os.path.exists(path) else -1
        h.update(json.dumps([os.path.basename(path) if isinstance(path, str) else None, size, text]).encode())
    return h.hexdigest()[:16]


def _config_dict(module) -> dict:
    config = getattr(module, "config", {})
    config = dict(config.to_dict() if hasattr(config, "to_dict") else config)
    return {k: v for k, v in config.items() if not k.startswith("_") and k not in ("transformers_version", "dtype", "torch_dtype")}


# VAE config entries that only shape the decoder side: they change no latent.
_DECODER_ONLY_CONFIG_KEYS = ("decoder_base_dim", "out_channels")


def _vae_encoding_side(vae) -> tuple[dict, str]:
    """Config and weight fingerprint of what turns pixels into latents. diffusers' KL autoencoders split into
    `encoder` + `quant_conv` (-> latents) and `post_quant_conv` + `decoder` (-> pixels); a VAE without that split is
    fingerprinted whole."""
    config = _config_dict(vae)
    if not isinstance(getattr(vae, "encoder", None), torch.nn.Module):
        return config, weights_fingerprint(vae)
    config = {k: v for k, v in config.items() if k not in _DECODER_ONLY_CONFIG_KEYS}
    parts = torch.nn.ModuleDict({"encoder": vae.encoder})
    if isinstance(getattr(vae, "quant_conv", None), torch.nn.Module):
        parts["quant_conv"] = vae.quant_conv
    return config, weights_fingerprint(parts)


def cache_key_components(
    vae, text_encoder, tokenizer, preprocessing: VideoPreprocessing, latent_normalization: str,
    max_sequence_length: int, data_fingerprint: str,
) -> dict[str, str]:
    def digest(obj):
        return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]

    vae_config, vae_weights = _vae_encoding_side(vae)
    return {
        "format_version": str(CACHE_FORMAT_VERSION),
        "vae_config": digest([type(vae).__name__, vae_config]),
        "vae_weights": vae_weights,
        "text_encoder_config": digest([type(text_encoder).__name__, _config_dict(text_encoder)]),
        "text_encoder_weights": weights_fingerprint(text_encoder),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "preprocessing": digest(dataclasses.asdict(preprocessing)),
        "latent_normalization": latent_normalization,
        "max_sequence_length": str(max_sequence_length),
        "data": data_fingerprint,
    }


def cache_key(components: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(components, sort_keys=True).encode()).hexdigest()[:24]


def _load_cache(cache_dir: Path, info: dict):
    import datasets

    shards = [datasets.Dataset.from_file(str(cache_dir / name)) for name in info["shards"]]
    shards = [s for s in shards if len(s)]
    # Rows are looked up by `source_index` (shards of several processes interleave), so no sort is needed.
    return datasets.concatenate_datasets(shards) if len(shards) > 1 else shards[0]


def prepare_latent_cache(
    dataset,
    cache_dir: str,
    vae,
    text_encoder,
    tokenizer,
    preprocessing: VideoPreprocessing,
    video_column: str,
    condition_column: str,
    latent_normalization: str = "diffusers",
    max_sequence_length: int = 512,
    overwrite: bool = False,
    accelerator=None,
    batch_size: int = 1,
    progress: bool = True,
):
    """Builds (once) or loads the cache of VAE latents and umT5 embeddings of `dataset` (the raw rows).

    The cache holds one row per usable video: `source_index` (row index in `dataset`), `latents` `(C, f, h, w)`
    (float32, normalised per `latent_normalization`) and `prompt_embeds` `(n, text_dim)` (float32, the
    `condition_column` text's umT5 embedding trimmed to its tokens). Rows whose video is unusable or whose
    conditioning text is missing are left out; their reasons are stored with the cache.

    With an `accelerator` of several processes, each process encodes its share into its own Arrow shard; the main
    process writes the cache's key file last, so an interrupted build is never taken for a finished one.

    Raises `StaleCacheError` when `cache_dir` holds a cache built with different encoders/settings/data (pass
    `overwrite=True` to rebuild it). Returns `(cache_dataset, problems {row index: reason}, info)`.
    """
    import datasets
    from datasets.arrow_writer import ArrowWriter

    check_columns(dataset, [video_column, condition_column])
    cache_dir = Path(cache_dir)
    components = cache_key_components(
        vae, text_encoder, tokenizer, preprocessing, latent_normalization, max_sequence_length,
        dataset_fingerprint(dataset, video_column, condition_column),
    )
    key = cache_key(components)
    info_path = cache_dir / CACHE_INFO_FILENAME
    is_main = accelerator is None or accelerator.is_main_process
    num_processes = 1 if accelerator is None else accelerator.num_processes
    rank = 0 if accelerator is None else accelerator.process_index

    def wait():
        if accelerator is not None:
            accelerator.wait_for_everyone()

    def loaded(info):
        problems = {int(k): v for k, v in info["problems"].items()}
        if not info["shards"]:
            raise NoUsableSamplesError(
                f"The dataset has no usable sample: all {len(problems)} rows were skipped while caching latents in "
                f"{cache_dir}. First problems: {[f'sample {k}: {v}' for k, v in sorted(problems.items())[:5]]}"
            )
        return _load_cache(cache_dir, info), problems, info

    if info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("key") == key:
            logger.info("Using the latent cache at %s (key %s).", cache_dir, key)
            return loaded(info)
        if not overwrite:
            old = info.get("components", {})
            changed = sorted(k for k in set(old) | set(components) if old.get(k) != components.get(k))
            raise StaleCacheError(
                f"The latent cache at {cache_dir} is stale: it was built with a different {', '.join(changed)} "
                f"(cached key {info.get('key')}, current key {key}), so its latents/embeddings do not match the "
                f"current encoders and data. Delete the folder, pass --overwrite_latents_cache to rebuild it, or "
                f"point --latents_cache_dir at another folder."
            )
    wait()
    if is_main:
        if cache_dir.exists():
            logger.warning("Building the latent cache at %s anew (removing what was there).", cache_dir)
            shutil.rmtree(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
    wait()

    # Each process encodes rows rank, rank + P, ... into its own Arrow shard.
    local_problems: dict[int, str] = {}
    shard_name = f"shard-{rank:05d}-of-{num_processes:05d}.arrow"
    writer = None
    start = time.time()
    indices = list(process_share(range(len(dataset)), accelerator))
    progress_bar = tqdm(total=len(indices), desc="Caching latents") if progress and is_main else None
    pending: list[tuple] = []
    rows = dataset.select_columns([video_column, condition_column])

    def flush():
        nonlocal writer
        if not pending:
            return
        videos = torch.stack([p[1] for p in pending])
        latents = encode_videos(vae, videos, latent_normalization).cpu()
        embeds = encode_prompts(tokenizer, text_encoder, [p[2] for p in pending], max_sequence_length)
        if writer is None:
            features = datasets.Features(
                {
                    "source_index": datasets.Value("int64"),
                    "latents": datasets.Array4D(shape=tuple(latents.shape[1:]), dtype="float32"),
                    "prompt_embeds": datasets.Array2D(shape=(None, embeds[0].shape[-1]), dtype="float32"),
                }
            )
            writer = ArrowWriter(features=features, path=str(cache_dir / shard_name))
        for (index, _, _), lat, emb in zip(pending, latents, embeds):
            writer.write({"source_index": index, "latents": lat.numpy(), "prompt_embeds": emb.numpy()})
        pending.clear()

    def load(row):
        """(text, video) of a row, or (problem, None) when it is unusable."""
        problem = text_problem(row[condition_column])
        if problem:
            return f"{problem} (column {condition_column!r})", None
        try:
            return row[condition_column], preprocessing(row[video_column])
        except BadSample as error:
            return str(error), None

    # A few threads read and preprocess clips ahead of the encoder (imageio's reader mostly waits on an ffmpeg
    # subprocess; PyAV decodes in the process), at most two batches ahead; rows are taken in order, so what is
    # cached does not depend on the threads.
    def take(index, future):
        text, video = future.result()
        if progress_bar is not None:
            progress_bar.update(1)
        if video is None:
            local_problems[index] = text
            return
        pending.append((index, video, text))
        if len(pending) >= batch_size:
            flush()

    ahead = max(batch_size, 1) * 2
    with ThreadPoolExecutor(max_workers=READ_AHEAD_THREADS) as pool:
        reads = deque()
        for index in indices:
            reads.append((index, pool.submit(load, rows[index])))
            if len(reads) >= ahead:
                take(*reads.popleft())
        while reads:
            take(*reads.popleft())
    if progress_bar is not None:
        progress_bar.close()
    flush()
    if writer is not None:
        writer.finalize()
        writer.close()
    (cache_dir / f"{shard_name}.problems.json").write_text(json.dumps(local_problems))
    wait()

    if is_main:
        shards, problems = [], {}
        for r in range(num_processes):
            name = f"shard-{r:05d}-of-{num_processes:05d}.arrow"
            problems.update(json.loads((cache_dir / f"{name}.problems.json").read_text()))
            if (cache_dir / name).exists():
                shards.append(name)
        info = {
            "key": key,
            "components": components,
            "shards": shards,
            "num_rows": len(dataset) - len(problems),
            "problems": {str(k): v for k, v in sorted(problems.items(), key=lambda kv: int(kv[0]))},
            "seconds": round(time.time() - start, 2),
            "note": "univigu latent cache: VAE latents + umT5 prompt embeddings. Delete the folder to rebuild it.",
        }
        tmp = info_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, info_path)  # written last: the cache is complete once its key file exists
    wait()
    return loaded(json.loads(info_path.read_text()))


__all__ = ["CACHE_FORMAT_VERSION", "CACHE_INFO_FILENAME", "StaleCacheError", "cache_key", "cache_key_components",
           "dataset_fingerprint", "prepare_latent_cache", "tokenizer_fingerprint", "weights_fingerprint"]
