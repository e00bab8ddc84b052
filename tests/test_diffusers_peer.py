"""tests/diffusers_peer.py, which finds diffusers' own model test mixins for tests/test_diffusers_mixins.py: where it
looks, in which order, what it takes from a source distribution, and the reason it gives when they are not there.
Offline: fake checkouts and sdists."""

from __future__ import annotations

import io
import tarfile

import pytest

import diffusers_peer


def fake_tests(root, mixins=True):
    """A diffusers-like `tests/` folder under `root`."""
    tests = root / "tests"
    (tests / "models" / "testing_utils").mkdir(parents=True)
    (tests / "__init__.py").write_text("")
    (tests / "models" / "__init__.py").write_text("")
    (tests / "testing_utils.py").write_text("torch_device = 'cpu'\n")
    if mixins:
        (tests / "models" / "testing_utils" / "__init__.py").write_text(
            "from ...testing_utils import torch_device\n\nclass CacheTesterMixin:\n    device = torch_device\n")
    return tests


def fake_sdist(path, version="9.9.9", mixins=True):
    files = {f"diffusers-{version}/src/diffusers/__init__.py": "", f"diffusers-{version}/setup.py": "",
             f"diffusers-{version}/tests/testing_utils.py": "torch_device = 'cpu'\n"}
    if mixins:
        files[f"diffusers-{version}/tests/__init__.py"] = ""
        files[f"diffusers-{version}/tests/models/__init__.py"] = ""
        files[f"diffusers-{version}/tests/models/testing_utils/__init__.py"] = "class CacheTesterMixin:\n    pass\n"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DIFFUSERS_TESTS_DIR", raising=False)
    monkeypatch.setenv("UNIVIGU_DIFFUSERS_TESTS_CACHE", str(tmp_path / "cache"))


def test_a_checkout_named_by_the_environment(monkeypatch, tmp_path):
    tests = fake_tests(tmp_path / "diffusers")
    for given in (tmp_path / "diffusers", tests):  # the checkout, or its tests/ folder
        monkeypatch.setenv("DIFFUSERS_TESTS_DIR", str(given))
        assert diffusers_peer.find_diffusers_tests() == (tests, "")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DIFFUSERS_TESTS_DIR", str(empty))
    found, reason = diffusers_peer.find_diffusers_tests()
    assert found is None and "holds no tests/models/testing_utils/__init__.py" in reason


def test_the_released_sdist_is_known_to_lack_them_and_is_not_downloaded(monkeypatch):
    def no_download(version, timeout=300):
        raise AssertionError("a version known to lack the mixins must not be downloaded")

    monkeypatch.setattr(diffusers_peer, "download_sdist", no_download)
    monkeypatch.setattr(diffusers_peer, "diffusers_version", lambda: "0.42.1")
    found, reason = diffusers_peer.find_diffusers_tests()
    assert found is None
    assert "diffusers 0.42.1's source distribution ships only tests/testing_utils.py" in reason
    assert "DIFFUSERS_TESTS_DIR" in reason and "at tag v0.42.1" in reason


def test_an_sdist_with_the_mixins_is_unpacked_once_into_the_cache(monkeypatch, tmp_path):
    downloads = []

    def download(version, timeout=300):
        downloads.append(version)
        return fake_sdist(tmp_path / f"diffusers-{version}.tar.gz", version)

    monkeypatch.setattr(diffusers_peer, "download_sdist", download)
    monkeypatch.setattr(diffusers_peer, "diffusers_version", lambda: "9.9.9")
    found, reason = diffusers_peer.find_diffusers_tests()
    assert found == tmp_path / "cache" / "9.9.9" / "tests" and reason == ""
    assert sorted(p.relative_to(found).as_posix() for p in found.rglob("*.py")) == [
        "__init__.py", "models/__init__.py", "models/testing_utils/__init__.py", "testing_utils.py"]
    assert not (found.parent / "src").exists()  # only tests/ is taken
    assert diffusers_peer.find_diffusers_tests() == (found, "") and downloads == ["9.9.9"]  # the cache, next time


def test_an_sdist_without_them_or_no_download_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(diffusers_peer, "diffusers_version", lambda: "9.9.8")
    monkeypatch.setattr(diffusers_peer, "download_sdist",
                        lambda version, timeout=300: fake_sdist(tmp_path / "d.tar.gz", version, mixins=False))
    found, reason = diffusers_peer.find_diffusers_tests()
    assert found is None and "diffusers 9.9.8's source distribution holds no tests/models/testing_utils" in reason
    assert not (tmp_path / "cache" / "9.9.8").exists()

    def offline(version, timeout=300):
        raise OSError("no network")

    monkeypatch.setattr(diffusers_peer, "download_sdist", offline)
    found, reason = diffusers_peer.find_diffusers_tests()
    assert found is None and "could not be downloaded (OSError)" in reason


def test_the_mixins_import_as_a_package_of_their_own(tmp_path):
    """diffusers' tests/ is imported as `diffusers_tests`, so its relative imports work and this repository's tests/
    (not a package) is not shadowed."""
    import sys

    ours = lambda: {n: m for n, m in sys.modules.items() if n.split(".")[0] == "diffusers_tests"}  # noqa: E731
    real = ours()  # the real ones, if tests/test_diffusers_mixins.py imported them: put back afterwards
    for name in real:
        del sys.modules[name]
    try:
        module = diffusers_peer.import_testing_utils(fake_tests(tmp_path / "diffusers"))
        assert module.__name__ == "diffusers_tests.models.testing_utils" and module.CacheTesterMixin.device == "cpu"
    finally:
        for name in ours():
            del sys.modules[name]
        sys.modules.update(real)


def test_without_marks_drops_class_marks_and_keeps_the_tests():
    @pytest.mark.skipif(True, reason="needs an accelerator")
    class Base:
        def helper(self):
            return 1

    @pytest.mark.compile
    class Mixin(Base):
        def test_it(self):
            return self.helper()

    copy = diffusers_peer.without_marks(Mixin)
    assert copy.__name__ == "MixinOnCPU" and not hasattr(copy, "pytestmark")
    assert copy().test_it() == 1
