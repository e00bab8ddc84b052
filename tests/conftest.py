import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
# A copy of shared/fixtures/reference-tiny (the reference code's own outputs), vendored so CI never skips parity.
REFERENCE_FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "reference-tiny"

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def reference_fixture_dir() -> Path:
    return REFERENCE_FIXTURE_DIR
