# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""Training data: 🤗 datasets of (video, text) pairs, frame sampling, bad-sample filtering, and the one-off cache of
VAE latents and umT5 embeddings.

Sources
    * a folder of videos with a ``metadata.jsonl`` or ``metadata.csv`` (a "videofolder": ``file_name`` + text
      columns such as ``prompt`` / ``caption``), or
    * a dataset name (Hub, or a local ``save_to_disk`` folder) whose video column holds paths (or a ``Video``
      feature, read undecoded).

Videos are kept as path strings and decoded with imageio's ffmpeg reader (datasets 5's ``Video()`` feature needs
torchcodec, which we do not depend on). Frames are sampled to ``num_frames = 4k + 1`` (evenly over the clip, or the
first ones), resized so the frame covers ``height x width`` and center-cropped, and scaled to [-1, 1].

Bad samples (an unreadable or too short video, a missing text) are skipped with a warning and counted in a
:class:`DataSummary`; a dataset with no usable sample raises :class:`NoUsableSamplesError`.

Cache: :func:`prepare_latent_cache` encodes every usable video with the (frozen) VAE and every conditioning prompt
with the (frozen) umT5 encoder once, into Arrow files (memory-mapped by 🤗 datasets). The cache folder records a key:
a hash of the encoders' configs, a fingerprint of their weights, the tokenizer, the preprocessing settings and the
data. A cache whose key differs from the current one is refused with a message naming what changed.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F


logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
CACHE_INFO_FILENAME = "univigu_latent_cache.json"
METADATA_FILENAMES = ("metadata.jsonl", "metadata.csv")


class NoUsableSamplesError(ValueError):
    """The dataset has no sample that can be trained on."""


class StaleCacheError(RuntimeError):
    """A latent cache exists but was built with other encoders, settings or data."""


class BadSample(Exception):
    """Raised while reading one sample; the message is the reason it is skipped."""


# --------------------------------------------------------------------------------------------------------- loading


def _read_metadata_file(path: Path) -> List[Tuple[int, Dict[str, Any]]]:
    """`(line number, row)` of every row of a metadata.jsonl/csv (line numbers for error messages)."""
    if path.suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{line_number} is not valid JSON: {error}") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{line_number} is a JSON {type(row).__name__}, not an object of columns.")
                rows.append((line_number, row))
        return rows
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return [(reader.line_num, dict(row)) for row in reader]


def _escapes_folder(file_name: str) -> bool:
    """Whether a metadata file name points outside its data folder: an absolute path, or one that climbs out with
    `..`. (Decided on the name, so that symlinked videos inside the folder stay usable.)"""
    return os.path.isabs(file_name) or os.path.normpath(file_name).split(os.sep)[0] == ".."


def _check_metadata_rows(metadata: Path, rows, video_column: str, text_columns: Sequence[str],
                         allow_external_video_paths: bool) -> None:
    """Refuse what would otherwise fail obscurely (a pyarrow type error) or silently read files elsewhere: a text
    column holding a non-string, and video file names outside the data folder. The message names file, line and
    column of each problem."""
    wrong_type, external = [], []
    for line_number, row in rows:
        for column in text_columns:
            value = row.get(column)
            # None (and NaN, as pandas writes a missing value) is a missing text: that row is skipped and counted.
            if value is None or isinstance(value, str) or (isinstance(value, float) and math.isnan(value)):
                continue
            wrong_type.append(f"line {line_number}, column {column!r}: {type(value).__name__} {value!r:.60}")
        file_name = row.get(video_column)
        if not allow_external_video_paths and isinstance(file_name, str) and file_name and _escapes_folder(file_name):
            external.append(f"line {line_number}: {file_name!r}")
    if wrong_type:
        raise ValueError(
            f"{metadata}: text columns must hold strings (or null for a missing text); found "
            f"{len(wrong_type)} other value(s): {'; '.join(wrong_type[:5])}{' ...' if len(wrong_type) > 5 else ''}. "
            "Fix these rows (e.g. quote the text)."
        )
    if external:
        raise ValueError(
            f"{metadata}: {len(external)} {video_column!r} value(s) point outside the data folder {metadata.parent}: "
            f"{'; '.join(external[:5])}{' ...' if len(external) > 5 else ''}. File names are relative to the folder; "
            "pass --allow_external_video_paths to read videos from elsewhere."
        )


def _type_conflict(metadata: Path, rows) -> Optional[str]:
    """The first row whose value in some column has a type Arrow cannot put in one column with the rows before it
    (e.g. a number after strings), as `file:line: column ...`; None if there is none."""
    def kind(value):
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, (int, float)):
            return "number"
        return type(value).__name__

    first_kind: Dict[str, Tuple[str, int]] = {}
    for line_number, row in rows:
        for column, value in row.items():
            if value is None:
                continue
            if column not in first_kind:
                first_kind[column] = (kind(value), line_number)
            elif kind(value) != first_kind[column][0]:
                expected, first_line = first_kind[column]
                return (f"{metadata}:{line_number}: column {column!r} holds {type(value).__name__} {value!r:.60}, "
                        f"but line {first_line} (and the rows up to here) hold {expected} values")
    return None


def load_video_text_dataset(
    train_data_dir: Optional[str] = None,
    dataset_name: Optional[str] = None,
    dataset_config_name: Optional[str] = None,
    split: str = "train",
    video_column: str = "file_name",
    cache_dir: Optional[str] = None,
    text_columns: Sequence[str] = (),
    allow_external_video_paths: bool = False,
    flag: str = "--train_data_dir",
):
    """A `datasets.Dataset` whose `video_column` holds absolute video paths (strings) plus the text columns.

    `train_data_dir`: a folder with `metadata.jsonl` (or `.csv`) and the videos (paths relative to it).
    `dataset_name`: a local `save_to_disk` folder, a local folder with a metadata file, or a Hub dataset name.
    `text_columns`: columns of a metadata file that must hold strings (or null); anything else is an error naming
    the file, line and column.
    `allow_external_video_paths`: accept metadata file names that point outside the folder (absolute, `../`).
    `flag`: the calling command's option for the folder, named in error messages.
    """
    import datasets

    if (train_data_dir is None) == (dataset_name is None):
        raise ValueError("Pass exactly one of `--train_data_dir` (a folder with metadata.jsonl/csv) and `--dataset_name`.")
    if dataset_name is not None and os.path.isdir(dataset_name):
        if any(os.path.exists(os.path.join(dataset_name, name))
               for name in ("state.json", "dataset_info.json", "dataset_dict.json")):
            dataset = datasets.load_from_disk(dataset_name)
            if isinstance(dataset, datasets.DatasetDict):
                dataset = dataset[split]
            return _normalise_video_column(dataset, video_column, base_dir=dataset_name)
        train_data_dir, dataset_name = dataset_name, None

    if train_data_dir is not None:
        root = Path(train_data_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"{flag} {train_data_dir!r} is not a folder.")
        metadata = next((root / name for name in METADATA_FILENAMES if (root / name).exists()), None)
        if metadata is None:
            raise FileNotFoundError(
                f"{root} has no metadata.jsonl or metadata.csv: write one row per video with its "
                f"{video_column!r} (path relative to the folder) and text columns (e.g. prompt, caption)."
            )
        rows = _read_metadata_file(metadata)
        if not rows:
            raise NoUsableSamplesError(f"{metadata} has no rows.")
        if not any(video_column in row for _, row in rows):
            raise ValueError(
                f"{metadata} has no column {video_column!r} (columns: {sorted(rows[0][1])}); pass --video_column."
            )
        _check_metadata_rows(metadata, rows, video_column, text_columns, allow_external_video_paths)
        # Keep string columns (and ids) as they are; nested values (e.g. a scene dict) become JSON strings so that
        # Arrow infers one schema whatever the rows hold.
        clean_rows = []
        for _, row in rows:
            out = {}
            for key, value in row.items():
                if isinstance(value, (dict, list)):
                    value = json.dumps(value, sort_keys=True)
                elif key in text_columns and isinstance(value, float):  # NaN: a missing text (checked above)
                    value = None
                out[key] = value
            file_name = out.get(video_column)
            out[video_column] = str(root / file_name) if isinstance(file_name, str) and file_name else None
            clean_rows.append(out)
        columns = sorted({key for row in clean_rows for key in row})
        try:
            return datasets.Dataset.from_dict({key: [row.get(key) for row in clean_rows] for key in columns})
        except (TypeError, ValueError) as error:  # pyarrow's ArrowInvalid / ArrowTypeError: name the row instead
            conflict = _type_conflict(metadata, [(n, r) for (n, _), r in zip(rows, clean_rows)])
            if conflict is None:
                raise
            raise ValueError(f"{conflict}: one column must hold one type. Fix that row.") from error

    dataset = datasets.load_dataset(dataset_name, dataset_config_name, split=split, cache_dir=cache_dir)
    return _normalise_video_column(dataset, video_column)


def _normalise_video_column(dataset, video_column: str, base_dir: Optional[str] = None):
    import datasets

    if video_column not in dataset.column_names:
        raise ValueError(f"The dataset has no column {video_column!r} (columns: {dataset.column_names}).")
    feature = dataset.features[video_column]
    if type(feature).__name__ == "Video":
        # Read the undecoded {path, bytes} instead of decoding through torchcodec.
        dataset = dataset.cast_column(video_column, datasets.Video(decode=False))

    def to_path(example):
        value = example[video_column]
        if isinstance(value, dict):
            value = value.get("path") or value.get("bytes")
        if isinstance(value, str) and base_dir is not None and not os.path.isabs(value):
            value = os.path.join(base_dir, value)
        example[video_column] = value if isinstance(value, (str, bytes)) else None
        return example

    # keep_in_memory: never write cache files next to the user's dataset
    return dataset.map(to_path, desc="video paths", keep_in_memory=True)


# ------------------------------------------------------------------------------------------------------- decoding


def read_video(source) -> np.ndarray:
    """All frames of a video (a path, or encoded bytes) as uint8 `(F, H, W, 3)` RGB, through imageio's ffmpeg."""
    import imageio

    if isinstance(source, (bytes, bytearray)):
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
            tmp.write(source)
            tmp.flush()
            return read_video(tmp.name)
    reader = imageio.get_reader(os.fspath(source), format="FFMPEG")
    try:
        frames = [np.asarray(frame) for frame in reader]
    finally:
        reader.close()
    if not frames:
        raise ValueError("no frames")
    frames = np.stack(frames)
    if frames.ndim == 3:  # grey
        frames = np.repeat(frames[..., None], 3, axis=-1)
    return frames[..., :3].astype(np.uint8, copy=False)


def sample_frame_indices(num_available: int, num_frames: int, mode: str = "uniform", stride: int = 1) -> List[int]:
    """Indices of `num_frames` frames out of `num_available`: evenly spread over the whole clip ("uniform") or the
    first ones at `stride` ("first"). Raises `BadSample` when the clip is too short."""
    needed = 1 + (num_frames - 1) * (stride if mode == "first" else 1)
    if num_available < needed:
        raise BadSample(f"too short: {num_available} frames, need {needed}")
    if mode == "first":
        return list(range(0, needed, stride))
    if mode != "uniform":
        raise ValueError(f"Unknown frame sampling mode {mode!r} (use 'uniform' or 'first').")
    return np.linspace(0, num_available - 1, num_frames).round().astype(int).tolist()


def resize_center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`(F, 3, H, W)` float frames -> `(F, 3, height, width)`: scale so the frame covers the target, crop the center."""
    h, w = frames.shape[-2:]
    if (h, w) != (height, width):
        scale = max(height / h, width / w)
        new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
        if (new_h, new_w) != (h, w):
            frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        top, left = (new_h - height) // 2, (new_w - width) // 2
        frames = frames[..., top : top + height, left : left + width]
    return frames


@dataclasses.dataclass
class VideoPreprocessing:
    """How a video becomes model input: `num_frames` (4k+1) sampled frames, resized/cropped to height x width."""

    num_frames: int = 9
    height: int = 64
    width: int = 64
    frame_sampling: str = "uniform"
    frame_stride: int = 1

    def __post_init__(self):
        if self.num_frames < 1 or (self.num_frames - 1) % 4 != 0:
            raise ValueError(f"num_frames must be 4k + 1 (1, 5, 9, ..., 81), got {self.num_frames}.")
        if self.height % 16 or self.width % 16:
            raise ValueError(f"height and width must be multiples of 16, got {self.height} x {self.width}.")

    def __call__(self, source) -> torch.Tensor:
        """Decoded, sampled, resized video as `(3, num_frames, height, width)` floats in [-1, 1]."""
        if source is None or (isinstance(source, str) and not source):
            raise BadSample("missing video path")
        try:
            frames = read_video(source)
        except BadSample:
            raise
        except Exception as error:  # imageio/ffmpeg raise many kinds of errors on broken files
            raise BadSample(f"unreadable video ({type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''})")
        indices = sample_frame_indices(len(frames), self.num_frames, self.frame_sampling, self.frame_stride)
        video = torch.from_numpy(np.ascontiguousarray(frames[indices])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        video = resize_center_crop(video, self.height, self.width)
        return video.permute(1, 0, 2, 3).contiguous()


# -------------------------------------------------------------------------------------------------- bad samples


@dataclasses.dataclass
class DataSummary:
    """What was kept and what was skipped, and why (`skipped`: reason kind -> count)."""

    total: int = 0
    usable: int = 0
    skipped: Dict[str, int] = dataclasses.field(default_factory=dict)
    examples: List[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_problems(cls, total: int, problems: Dict[int, str], labels: Optional[Dict[int, str]] = None,
                      max_examples: int = 20) -> "DataSummary":
        summary = cls(total=total, usable=total - len(problems))
        for index in sorted(problems):
            reason = problems[index]
            kind = reason.split(":")[0].split(" (")[0]
            summary.skipped[kind] = summary.skipped.get(kind, 0) + 1
            if len(summary.examples) < max_examples:
                label = (labels or {}).get(index, f"sample {index}")
                summary.examples.append(f"{label}: {reason}")
        return summary

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def describe(self) -> str:
        if not self.num_skipped:
            return f"{self.usable}/{self.total} samples usable"
        reasons = ", ".join(f"{n} {kind}" for kind, n in sorted(self.skipped.items()))
        return f"{self.usable}/{self.total} samples usable, {self.num_skipped} skipped ({reasons})"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"num_skipped": self.num_skipped}


def text_problem(value) -> Optional[str]:
    """Why a text value cannot be trained on, or None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing text"
    if not isinstance(value, str) or not value.strip():
        return "missing text"
    return None


def check_columns(dataset, columns: Sequence[str],
                  flags: Sequence[str] = ("--caption_column", "--condition_column", "--video_column")):
    """Raise if a column is missing; the message names `flags`, the options of the calling command that choose the
    columns (the training scripts' by default)."""
    missing = [c for c in dict.fromkeys(columns) if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"The dataset has no column(s) {missing} (columns: {dataset.column_names}). Pass {' / '.join(flags)} "
            f"to name the right ones."
        )


def row_label(value, index: int) -> str:
    return f"sample {index} ({os.path.basename(value)})" if isinstance(value, str) else f"sample {index}"


def _shard(indices: Sequence[int], accelerator) -> List[int]:
    if accelerator is None or accelerator.num_processes == 1:
        return list(indices)
    return list(indices)[accelerator.process_index :: accelerator.num_processes]


def _gather_dict(local: Dict[int, str], accelerator) -> Dict[int, str]:
    if accelerator is None or accelerator.num_processes == 1:
        return dict(local)
    from accelerate.utils import gather_object

    merged = {}
    for part in gather_object([local]):
        merged.update(part)
    return merged


def find_bad_samples(
    dataset,
    video_column: str,
    text_columns: Sequence[str],
    preprocessing: Optional[VideoPreprocessing] = None,
    skip: Optional[Dict[int, str]] = None,
    accelerator=None,
    warn: bool = True,
) -> Dict[int, str]:
    """`{row index: reason}` for the rows that cannot be trained on: a missing/empty text in one of `text_columns`,
    and (when `preprocessing` is given) a video that does not decode to enough frames. Rows already in `skip` are
    not checked again. With an `accelerator`, the videos are probed by all processes, each a share. Every problem
    is logged as a warning (by the main process)."""
    check_columns(dataset, [video_column, *text_columns])
    problems: Dict[int, str] = dict(skip or {})
    labels = {}
    texts = dataset.select_columns([video_column, *dict.fromkeys(text_columns)])
    for index, row in enumerate(texts):
        if index in problems:
            continue
        for column in text_columns:
            problem = text_problem(row[column])
            if problem:
                problems[index] = f"{problem} (column {column!r})"
                labels[index] = row_label(row[video_column], index)
                break
    if preprocessing is not None:
        local = {}
        todo = [i for i in range(len(dataset)) if i not in problems]
        for index in _shard(todo, accelerator):
            value = texts[index][video_column]
            try:
                preprocessing(value)
            except BadSample as error:
                local[index] = str(error)
        problems.update(_gather_dict(local, accelerator))
    if warn and (accelerator is None or accelerator.is_main_process):
        paths = texts[video_column]
        for index in sorted(set(problems) - set(skip or {})):
            logger.warning("Skipping %s: %s", row_label(paths[index], index), problems[index])
    return problems


def select_usable(dataset, problems: Dict[int, str], video_column: str):
    """`(usable rows with a source_index column, DataSummary)`; raises `NoUsableSamplesError` if none is left."""
    paths = dataset[video_column]
    labels = {i: row_label(paths[i], i) for i in problems}
    summary = DataSummary.from_problems(len(dataset), problems, labels)
    keep = [i for i in range(len(dataset)) if i not in problems]
    if not keep:
        raise NoUsableSamplesError(
            f"The dataset has no usable sample: {summary.describe()}. First problems: {summary.examples[:5]}"
        )
    rows = dataset.select(keep)
    if "source_index" in rows.column_names:
        rows = rows.remove_columns("source_index")
    return rows.add_column("source_index", keep), summary


# ------------------------------------------------------------------------------------------------------ encoders


def latent_normalization_stats(vae, device, dtype=torch.float32):
    """(mean, inv_std) of the VAE's latent channels, shaped to broadcast over `(B, C, F, H, W)`."""
    z_dim = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean, device=device, dtype=dtype).view(1, z_dim, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std, device=device, dtype=dtype).view(1, z_dim, 1, 1, 1)
    return mean, inv_std


@torch.no_grad()
def encode_videos(vae, videos: torch.Tensor, latent_normalization: str = "diffusers") -> torch.Tensor:
    """`(B, 3, F, H, W)` videos in [-1, 1] -> latents (the mode of the VAE posterior), normalised like diffusers'
    WanPipeline (`(z - latents_mean) / latents_std`) or left raw (the reference's convention)."""
    videos = videos.to(device=vae.device, dtype=vae.dtype)
    z = vae.encode(videos).latent_dist.mode().float()
    if latent_normalization == "diffusers":
        mean, inv_std = latent_normalization_stats(vae, z.device)
        z = (z - mean) * inv_std
    elif latent_normalization != "raw":
        raise ValueError(f"latent_normalization must be 'diffusers' or 'raw', got {latent_normalization!r}.")
    return z


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder, prompts: Sequence[str], max_sequence_length: int = 512) -> List[torch.Tensor]:
    """umT5 embeddings of `prompts`, as WanPipeline computes them, each trimmed to its own length `(n_i, text_dim)`
    (pad them back with zeros to `max_sequence_length` with :func:`pad_prompt_embeds`)."""
    inputs = tokenizer(
        [clean_text(p) for p in prompts],
        padding="max_length",
        max_length=max_sequence_length,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    ids = inputs.input_ids.to(text_encoder.device)
    mask = inputs.attention_mask.to(text_encoder.device)
    hidden = text_encoder(ids, mask).last_hidden_state.float()
    lengths = mask.gt(0).sum(dim=1).tolist()
    return [h[:n].cpu() for h, n in zip(hidden, lengths)]


def clean_text(text: str) -> str:
    """The prompt cleaning of WanPipeline / UniViGUPipeline (html unescape, ftfy if installed, whitespace), so that
    training sees texts tokenized exactly as the pipeline tokenizes them."""
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    return prompt_clean(text)


def pad_prompt_embeds(embeds: Sequence[torch.Tensor], max_sequence_length: int) -> torch.Tensor:
    """Zero-pads trimmed umT5 embeddings to `(B, max_sequence_length, text_dim)` (WanPipeline's layout)."""
    text_dim = embeds[0].shape[-1]
    out = torch.zeros(len(embeds), max_sequence_length, text_dim, dtype=torch.float32)
    for i, e in enumerate(embeds):
        n = min(e.shape[0], max_sequence_length)
        out[i, :n] = e[:n].float()
    return out


def tokenize_text_stream(tokenizer, texts: Sequence[str], max_text_length: int, text_padding: str = "learn"):
    """Token ids of the text stream, padded to `max_text_length`.

    `text_padding="learn"` (default): every position is trained and attended, so the model learns to end a text
    with EOS and padding, which is what the v2t sampler needs (it denoises `max_text_length` positions and decodes
    with `skip_special_tokens`, as the reference does). `"mask"`: padding is excluded from attention and loss.
    Returns `(ids, mask, real_token_mask)`; the last one marks the text's own tokens (incl. EOS), which is what a
    generation view attends to (text-to-video puts the prompt's own tokens in the text stream, padding masked).
    """
    enc = tokenizer(
        [clean_text(t) for t in texts],
        padding="max_length",
        max_length=max_text_length,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    ids = enc.input_ids.long()
    real = enc.attention_mask.bool()
    if text_padding == "learn":
        mask = torch.ones_like(ids, dtype=torch.bool)
    elif text_padding == "mask":
        mask = real
    else:
        raise ValueError(f"text_padding must be 'learn' or 'mask', got {text_padding!r}.")
    return ids, mask, real


# -------------------------------------------------------------------------------------------------------- cache


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


def cache_key_components(
    vae, text_encoder, tokenizer, preprocessing: VideoPreprocessing, latent_normalization: str,
    max_sequence_length: int, data_fingerprint: str,
) -> Dict[str, str]:
    def digest(obj):
        return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]

    return {
        "format_version": str(CACHE_FORMAT_VERSION),
        "vae_config": digest([type(vae).__name__, _config_dict(vae)]),
        "vae_weights": weights_fingerprint(vae),
        "text_encoder_config": digest([type(text_encoder).__name__, _config_dict(text_encoder)]),
        "text_encoder_weights": weights_fingerprint(text_encoder),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "preprocessing": digest(dataclasses.asdict(preprocessing)),
        "latent_normalization": latent_normalization,
        "max_sequence_length": str(max_sequence_length),
        "data": data_fingerprint,
    }


def cache_key(components: Dict[str, str]) -> str:
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
    local_problems: Dict[int, str] = {}
    shard_name = f"shard-{rank:05d}-of-{num_processes:05d}.arrow"
    writer = None
    start = time.time()
    indices = _shard(range(len(dataset)), accelerator)
    iterator = indices
    if progress and is_main:
        from tqdm.auto import tqdm

        iterator = tqdm(indices, desc="Caching latents")
    pending: List[tuple] = []
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

    for index in iterator:
        row = rows[index]
        problem = text_problem(row[condition_column])
        if problem:
            local_problems[index] = f"{problem} (column {condition_column!r})"
            continue
        try:
            video = preprocessing(row[video_column])
        except BadSample as error:
            local_problems[index] = str(error)
            continue
        pending.append((index, video, row[condition_column]))
        if len(pending) >= batch_size:
            flush()
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


# ---------------------------------------------------------------------------------------------- torch datasets


class VideoTextTrainDataset(torch.utils.data.Dataset):
    """What the training loop iterates over: per item the text-stream text and either cached latents + prompt
    embeddings, or the preprocessed video + the conditioning text (encoded on the fly in the loop)."""

    def __init__(
        self,
        rows,
        text_column: str,
        condition_column: str,
        video_column: str,
        preprocessing: Optional[VideoPreprocessing] = None,
        cache=None,
    ):
        self.rows = rows
        self.text_column = text_column
        self.condition_column = condition_column
        self.video_column = video_column
        self.preprocessing = preprocessing
        self.cache = cache
        if cache is not None:
            by_source = {int(s): i for i, s in enumerate(cache["source_index"])}
            self._cache_rows = []
            keep = []
            for i, s in enumerate(rows["source_index"]):
                if int(s) in by_source:
                    keep.append(i)
                    self._cache_rows.append(by_source[int(s)])
            if len(keep) != len(rows):
                self.rows = rows.select(keep)
            self.cache = cache.with_format("torch", columns=["latents", "prompt_embeds"])
        self._texts = list(self.rows[text_column])
        self._conditions = list(self.rows[condition_column])

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        item = {"text": self._texts[index], "index": index}
        if self.cache is not None:
            cached = self.cache[self._cache_rows[index]]
            item["latents"] = cached["latents"]
            item["prompt_embeds"] = cached["prompt_embeds"]
        else:
            item["video"] = self.preprocessing(self.rows[index][self.video_column])
            item["condition"] = self._conditions[index]
        return item


class EpochSampler(torch.utils.data.Sampler):
    """A seeded shuffle whose order depends only on (seed, epoch): the same on every process and after a resume."""

    def __init__(self, num_samples: int, seed: int, shuffle: bool = True):
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = int(epoch)

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.num_samples))
        generator = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self):
        return self.num_samples


def make_collate_fn(tokenizer, max_text_length: int, max_sequence_length: int, text_padding: str = "learn"):
    def collate(items: List[dict]) -> dict:
        ids, mask, real = tokenize_text_stream(tokenizer, [it["text"] for it in items], max_text_length, text_padding)
        batch = {
            "text_ids": ids,
            "text_attention_mask": mask,
            "text_token_mask": real,
            "index": torch.tensor([it["index"] for it in items]),
        }
        if "latents" in items[0]:
            batch["latents"] = torch.stack([it["latents"] for it in items]).float()
            batch["prompt_embeds"] = pad_prompt_embeds([it["prompt_embeds"] for it in items], max_sequence_length)
        else:
            batch["video"] = torch.stack([it["video"] for it in items])
            batch["conditions"] = [it["condition"] for it in items]
        return batch

    return collate


__all__ = [
    "BadSample",
    "DataSummary",
    "EpochSampler",
    "NoUsableSamplesError",
    "StaleCacheError",
    "VideoPreprocessing",
    "VideoTextTrainDataset",
    "encode_prompts",
    "encode_videos",
    "find_bad_samples",
    "select_usable",
    "load_video_text_dataset",
    "make_collate_fn",
    "pad_prompt_embeds",
    "prepare_latent_cache",
    "read_video",
    "resize_center_crop",
    "sample_frame_indices",
    "tokenize_text_stream",
    "weights_fingerprint",
]
