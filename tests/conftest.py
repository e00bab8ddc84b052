import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
# A copy of the reference-tiny fixture (the reference code's own outputs), vendored so CI never skips parity.
REFERENCE_FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "reference-tiny"

# Tiny models run many times faster on one thread than on two on this class of machine (measured
# 10-30x in tests/test_pipeline.py); the suite is all tiny models.
torch.set_num_threads(1)


@pytest.fixture
def reference_fixture_dir() -> Path:
    return REFERENCE_FIXTURE_DIR
