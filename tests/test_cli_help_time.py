"""`univigu --help` and each subcommand's `--help` answer without importing torch, diffusers or transformers (issue
#31: `univigu --help` took 5-8 s, nearly all of it importing torch and the pipeline). Checked through `sys.modules`
in a fresh interpreter rather than with a clock, so a loaded machine cannot make it flaky.

`univigu.pipelines`, `univigu.models` and `univigu.conversion` import their contents on first use (a module
`__getattr__`, as `univigu/__init__.py` does), so the subcommands' parsers load without the model."""

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "diffusers", "transformers")
SUBCOMMANDS = ("generate", "caption", "evaluate", "convert", "params")

#: Runs `univigu.cli.main(argv)` as the console script does and prints the heavy modules it imported.
WRAPPER = """
import json, sys
from univigu.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.flush()
print("\\nIMPORTED " + json.dumps(sorted(m for m in %r if m in sys.modules)))
""" % (HEAVY,)


def imported_by(*argv: str) -> list[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "usage: univigu" in result.stdout, result.stdout
    line = [line for line in result.stdout.splitlines() if line.startswith("IMPORTED ")][-1]
    return json.loads(line[len("IMPORTED "):])


def test_univigu_help_imports_no_torch():
    assert imported_by("--help") == []


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help_imports_no_torch(command):
    assert imported_by(command, "--help") == []


def test_the_help_lists_every_subcommand():
    """Whatever the CLI imports lazily, the top-level help still names every subcommand."""
    result = subprocess.run([sys.executable, "-c", WRAPPER, "--help"], capture_output=True, text=True, timeout=300)
    for command in SUBCOMMANDS:
        assert command in result.stdout, result.stdout
