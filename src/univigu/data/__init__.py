# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The data path shared by training, evaluation and ShapesWorld: video-text datasets from a metadata folder or the
Hub (`metadata`), video decoding and frame sampling (`video`), bad-sample handling (`samples`), and resizing into
model input (`preprocessing`: `VideoPreprocessing`, `resize_center_crop`).

It imports nothing of univigu, so every layer may use it. The modules imported here need numpy only, so that
ShapesWorld's rendering and scoring read videos without torch; `univigu.data.preprocessing` imports torch.
"""

from .metadata import METADATA_FILENAMES, load_video_text_dataset
from .samples import (
    DataSummary,
    NoUsableSamplesError,
    check_columns,
    find_bad_samples,
    row_label,
    select_usable,
    text_problem,
)
from .video import BadSample, NoFramesError, read_video, sample_frame_indices


__all__ = [
    "METADATA_FILENAMES",
    "BadSample",
    "DataSummary",
    "NoFramesError",
    "NoUsableSamplesError",
    "check_columns",
    "find_bad_samples",
    "load_video_text_dataset",
    "read_video",
    "row_label",
    "sample_frame_indices",
    "select_usable",
    "text_problem",
]
