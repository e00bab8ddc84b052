"""A non-editable install carries the bundled checkpoint: every file of it is in the wheel (and not the scripts that
build it)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_the_bundled_checkpoint(tmp_path):
    from univigu.toyworld import DEFAULT_BASE_MODEL, DEFAULT_CHECKPOINT, DEFAULT_VAE

    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("univigu-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in (DEFAULT_CHECKPOINT, DEFAULT_VAE, DEFAULT_BASE_MODEL):
        base = Path(folder)
        files = [p for p in base.rglob("*") if p.is_file()]
        assert files
        for p in files:
            assert f"univigu/toyworld/assets/{base.name}/{p.relative_to(base).as_posix()}" in names
    # the build's scripts are not part of the package (training/shapesworld/)
    scripts = {"build", "package", "pretrain_generator", "pretrain_vae", "pretrain_base", "ladder"}
    assert not [n for n in names if n.startswith("univigu/") and n.endswith(".py") and Path(n).stem in scripts]
