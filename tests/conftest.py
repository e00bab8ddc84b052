import os
import sys
from pathlib import Path

import pytest
import torch

try:  # diffusers' attention backends (the registry is private and may move)
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry
except ImportError:
    _AttentionBackendRegistry = None

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The scripts that build the bundled ShapesWorld model (build.py, package.py, pretrain_vae.py, ...). They are not
#: part of the package; the tests import them as the scripts import each other, as top-level modules.
SHAPESWORLD_SCRIPTS = REPO_ROOT / "training" / "shapesworld"
if str(SHAPESWORLD_SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SHAPESWORLD_SCRIPTS))
# A copy of the reference-tiny fixture (the reference code's own outputs), vendored so CI never skips parity.
REFERENCE_FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "reference-tiny"

# Tiny models run many times faster on one thread than on two on this class of machine (measured
# 10-30x in tests/test_pipeline.py); the suite is all tiny models.
torch.set_num_threads(1)


def pytest_configure(config):
    from diffusers_peer import DIFFUSERS_MARKS  # the marks of diffusers' own test mixins (tests/test_diffusers_mixins.py)

    for mark in DIFFUSERS_MARKS:
        config.addinivalue_line("markers", f"{mark}: a diffusers test-mixin mark (diffusers' tests/testing_utils.py)")


@pytest.fixture
def one_thread():
    """One torch thread for the test, restored after it. The training tests use it (`pytest.mark.usefixtures`): two
    threads on a 2-core machine shared with other jobs oversubscribe badly (the tiny VAE runs 10x slower), and one
    thread is what their subprocess runs use (OMP_NUM_THREADS=1), so in-process and subprocess runs compute bit for
    bit the same."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def reference_fixture_dir() -> Path:
    return REFERENCE_FIXTURE_DIR


@pytest.fixture(autouse=True)
def restore_diffusers_attention_backend():
    """`ModelMixin.set_attention_backend` also sets diffusers' process-wide active backend, which every model built
    afterwards uses (`reset_attention_backend` does not undo it): without this, a test that picks a backend
    (tests/test_memory_switches.py) changes the numerics of every later test in the session."""
    active = getattr(_AttentionBackendRegistry, "_active_backend", None)
    yield
    if _AttentionBackendRegistry is not None:
        _AttentionBackendRegistry._active_backend = active
