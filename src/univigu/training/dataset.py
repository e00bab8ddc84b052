# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""What the training loop iterates over: :class:`VideoTextTrainDataset` (cached latents + prompt embeddings, or
videos preprocessed on the fly), the seeded :class:`EpochSampler` and the collate function that tokenizes the text
stream.

The rest of the data path lives where every layer can use it: video-text datasets, video decoding, frame sampling and
bad samples in :mod:`univigu.data`; encoding as the pipeline encodes in :mod:`univigu.training.encoding`; the latent
cache in :mod:`univigu.training.latent_cache`.
"""

from __future__ import annotations

import torch

from ..data.preprocessing import VideoPreprocessing
from .encoding import pad_prompt_embeds, tokenize_text_stream


class VideoTextTrainDataset(torch.utils.data.Dataset):
    """What the training loop iterates over: per item the text-stream text and either cached latents + prompt
    embeddings, or the preprocessed video + the conditioning text (encoded on the fly in the loop)."""

    def __init__(
        self,
        rows,
        text_column: str,
        condition_column: str,
        video_column: str,
        preprocessing: VideoPreprocessing | None = None,
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
    def collate(items: list[dict]) -> dict:
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


__all__ = ["EpochSampler", "VideoTextTrainDataset", "make_collate_fn"]
