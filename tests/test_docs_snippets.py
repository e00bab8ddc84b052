"""Every Python snippet in README.md and docs/*.md runs as written (on the bundled ShapesWorld checkpoint), except
those explicitly marked `<!-- snippet not run by the tests: why -->` on the line before (they need a full-size
checkpoint and a GPU)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_MARK = "snippet not run by the tests"


def python_snippets():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        lines = path.read_text(encoding="utf-8").split("\n")
        i = 0
        while i < len(lines):
            if lines[i].strip() == "```python":
                indent = len(lines[i]) - len(lines[i].lstrip())
                start = i
                i += 1
                body = []
                while i < len(lines) and lines[i].strip() != "```":
                    body.append(lines[i][indent:])
                    i += 1
                skipped = start > 0 and SKIP_MARK in lines[start - 1]
                if not skipped:
                    yield pytest.param("\n".join(body), id=f"{path.name}:{start + 1}")
            i += 1


SNIPPETS = list(python_snippets())


def test_the_docs_have_snippets():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("code", SNIPPETS)
def test_snippet_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<snippet>", "exec"), {"__name__": "__snippet__"})


def test_readme_training_commands_are_the_scripts_flags():
    """The README's training block only uses flags the training scripts accept."""
    from univigu.training.arguments import build_parser

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    accepted = {a for action in build_parser("recall")._actions for a in action.option_strings}
    used = set(re.findall(r"(--[a-z_]+)", readme.split("Train (see")[1].split("## Layout")[0]))
    script_flags = {f for f in used if "_" in f or f in ("--trainable",)}
    assert script_flags and script_flags <= accepted, script_flags - accepted


def test_readme_training_commands_run(tmp_path):
    """The README's 'try the scripts' block, as written: make ShapesWorld data, Recall then Refine for 20 steps."""
    import os
    import subprocess

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("Train (see")[1].split("## Layout")[0]
    block = section.split("```bash\n")[1].split("```")[0]
    (tmp_path / "training").symlink_to(ROOT / "training")
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    from univigu import UniViGUPipeline

    pipe = UniViGUPipeline.from_pretrained(str(tmp_path / "refine"))
    assert pipe.config.call_defaults["video_latents_mode"] == "argmax"
