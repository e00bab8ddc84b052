"""diffusers' own model test mixins (`tests/models/testing_utils/` of the diffusers source: the cache, compile and
quantization mixins), imported at test time so that tests/test_diffusers_mixins.py can run them on
UniViGUTransformer3DModel as diffusers runs them on WanTransformer3DModel. Nothing of diffusers' test code is kept in
this repository.

Where they come from, first found wins:

1. `DIFFUSERS_TESTS_DIR`: a diffusers source checkout (the folder holding `tests/`), or its `tests/` folder, best at
   the installed version's tag (a clone of huggingface/diffusers at `v0.42.1`);
2. a copy unpacked earlier from diffusers' source distribution, under `UNIVIGU_DIFFUSERS_TESTS_CACHE` (default
   `~/.cache/univigu/diffusers-tests/<version>`);
3. the source distribution of the installed version, fetched with `pip download diffusers==<version> --no-deps
   --no-binary :all:` (PyPI is the one place CI can reach) and unpacked into that cache, if it holds the mixins.

diffusers' source distributions ship only `tests/testing_utils.py`, not `tests/models/` (checked for 0.42.1: its
sdist holds `src/`, `tests/testing_utils.py` and the packaging files), so with the released versions only (1) finds
them; the versions known to lack them are not downloaded again (`SDISTS_WITHOUT_MIXINS`). Without them the tests skip,
saying so.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

#: The package name diffusers' `tests/` folder is imported under (its modules import each other relatively: the
#: mixins in `tests/models/testing_utils/` use `tests/testing_utils.py` as `...testing_utils`).
PACKAGE = "diffusers_tests"
#: diffusers versions whose source distribution was checked and holds no `tests/models/testing_utils/`.
SDISTS_WITHOUT_MIXINS = {"0.42.1"}
MIXINS = Path("models") / "testing_utils" / "__init__.py"
#: The pytest marks diffusers' test utilities put on their mixins (registered by tests/conftest.py, so that pytest
#: does not warn about unknown marks).
DIFFUSERS_MARKS = ("attention", "autoround", "big_accelerator", "bitsandbytes", "cache", "compile", "context_parallel",
                   "cpu_offload", "gguf", "group_offload", "ip_adapter", "lora", "memory", "modelopt", "quantization",
                   "quanto", "sdnq", "single_file", "tensor_parallel", "torchao", "training")


def diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


def cache_dir(version: str | None = None) -> Path:
    root = os.environ.get("UNIVIGU_DIFFUSERS_TESTS_CACHE") or Path.home() / ".cache" / "univigu" / "diffusers-tests"
    return Path(root) / (version or diffusers_version())


def _tests_folder(path: Path) -> Path | None:
    """`path` itself or its `tests/` when it holds diffusers' model test mixins."""
    for candidate in (path / "tests", path):
        if (candidate / MIXINS).is_file() and (candidate / "testing_utils.py").is_file():
            return candidate
    return None


def unpack_sdist_tests(archive: Path, target: Path) -> Path | None:
    """The `tests/` folder of a diffusers sdist (`diffusers-X.tar.gz`), unpacked into `target`, if it holds the model
    test mixins; None when it does not (only regular files under `<top>/tests/` are taken)."""
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) > 2 and parts[1] == "tests" and member.isfile() and ".." not in parts:
                member.name = str(Path(*parts[1:]))
                members.append(member)
        if not any(Path(m.name) == Path("tests") / MIXINS for m in members):
            return None
        target.mkdir(parents=True, exist_ok=True)
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: refuse links and special files
            tar.extractall(target, members=members, filter="data")
        else:
            tar.extractall(target, members=members)
    return target / "tests"


def download_sdist(version: str, timeout: float = 300) -> Path:
    """diffusers' source distribution of `version`, through pip (the ordinary client of the package index)."""
    folder = Path(tempfile.mkdtemp(prefix="diffusers-sdist-"))
    subprocess.run([sys.executable, "-m", "pip", "download", f"diffusers=={version}", "--no-deps", "--no-binary",
                    ":all:", "-d", str(folder), "-q"], check=True, timeout=timeout, capture_output=True)
    return next(folder.glob("diffusers-*.tar.gz"))


def find_diffusers_tests() -> tuple[Path | None, str]:
    """(diffusers' `tests/` folder with the model test mixins, or None; why not)."""
    version = diffusers_version()
    given = os.environ.get("DIFFUSERS_TESTS_DIR")
    if given:
        found = _tests_folder(Path(given))
        if found is None:
            return None, f"DIFFUSERS_TESTS_DIR={given} holds no tests/{MIXINS.as_posix()} (a diffusers source checkout)"
        return found, ""
    cached = _tests_folder(cache_dir(version))
    if cached is not None:
        return cached, ""
    how = ("set DIFFUSERS_TESTS_DIR to a diffusers source checkout "
           f"(huggingface/diffusers at tag v{version})")
    if version in SDISTS_WITHOUT_MIXINS:
        return None, (f"diffusers {version}'s source distribution ships only tests/testing_utils.py, not its model "
                      f"test mixins (tests/models/testing_utils/): {how}")
    try:
        archive = download_sdist(version)
    except (subprocess.SubprocessError, OSError, StopIteration) as error:
        return None, f"diffusers {version}'s source distribution could not be downloaded ({type(error).__name__}): {how}"
    found = unpack_sdist_tests(archive, cache_dir(version))
    if found is None:
        return None, f"diffusers {version}'s source distribution holds no tests/{MIXINS.as_posix()}: {how}"
    return found, ""


def import_testing_utils(tests: Path):
    """Import diffusers' `tests/` as the package `diffusers_tests` and return `diffusers_tests.models.testing_utils`
    (the module holding the mixins)."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACKAGE, tests / "__init__.py",
                                                      submodule_search_locations=[str(tests)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"{PACKAGE}.models.testing_utils")


def load_mixins():
    """(`diffusers_tests.models.testing_utils`, "") or (None, why they are not available)."""
    tests, reason = find_diffusers_tests()
    if tests is None:
        return None, reason
    try:
        return import_testing_utils(tests), ""
    except Exception as error:  # a checkout of another version may import names this diffusers lacks
        return None, f"diffusers' test mixins in {tests} do not import with diffusers {diffusers_version()}: {error!r}"


def without_marks(mixin: type, name: str | None = None) -> type:
    """A copy of `mixin` without its class-level pytest marks (e.g. TorchCompileTesterMixin's `require_accelerator`),
    to run it where diffusers would skip it (on CPU); its base classes' marks are dropped too."""
    namespace = {}
    for klass in reversed([k for k in mixin.__mro__ if k is not object]):
        namespace.update({k: v for k, v in vars(klass).items() if k not in ("pytestmark", "__dict__", "__weakref__")})
    return type(name or f"{mixin.__name__}OnCPU", (), namespace)
