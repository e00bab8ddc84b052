"""The install pins what the pinned outputs need (issue #31): one `constraints.txt`, used by `scripts/install.sh`
(so by `scripts/demo.sh`, `scripts/test.sh` and CI) and by the README's install lines; the pinned tests compare the
installed versions with it. The demo installs only the `inference` extra; the tests the `dev` extra."""

import re
from pathlib import Path

from test_pinned_training import CONSTRAINTS, version_mismatches

ROOT = Path(__file__).resolve().parents[1]


def test_constraints_are_exact_pins_of_what_the_pinned_outputs_use():
    names = []
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*( *;.*)?", line), line
            names.append(line.split("==")[0])
    assert {"torch", "diffusers", "transformers", "tokenizers", "accelerate", "peft"} <= set(names)


def test_version_mismatches_reads_markers_and_local_versions(tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(
        "# a comment\n"
        "pytest==0.0.1  # installed, another version\n"
        "not-a-package-univigu==1.0\n"
        'pytest==0.0.2; python_version < "3"\n'  # a marker that does not apply: ignored
    )
    found = version_mismatches(constraints)
    assert len(found) == 2
    assert found[0].startswith("pytest ") and "==0.0.1" in found[0]
    assert found[1] == "not-a-package-univigu not installed (constraints.txt: ==1.0)"


def test_every_install_goes_through_constraints_txt():
    install = (ROOT / "scripts" / "install.sh").read_text()
    pip_lines = [line for line in install.splitlines() if "pip install" in line and not line.lstrip().startswith("#")]
    assert pip_lines and all(" -c " in line for line in pip_lines), pip_lines
    readme_pip = [line for line in (ROOT / "README.md").read_text().splitlines()
                  if line.startswith("pip install") and "-e " in line]
    assert readme_pip and all("-c constraints.txt" in line for line in readme_pip), readme_pip
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/install.sh dev" in (ROOT / "scripts" / "test.sh").read_text()


def test_the_demo_installs_only_the_inference_extra():
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    assert "bash scripts/install.sh inference" in demo and "install.sh dev" not in demo
    assert "echo" in demo
