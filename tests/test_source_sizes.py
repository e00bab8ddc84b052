"""Size limits of the package's code (issue #31): no source file over 800 lines, no function longer than diffusers'
`WanPipeline.__call__` (224 lines from the `def` line to its end, docstring aside), and at most 4 duplicated blocks
in src/ outside generated and metric code. Every `.py` under src/univigu is read with `ast`, except the bundled
checkpoint's copied files (toyworld/assets). The duplicate count uses the `duplicates` command where the machine has
it (it is a local tool, not a Python package; the test is skipped, saying so, where it is absent)."""

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest


SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "univigu"
#: Not the package's own code: the bundled checkpoint's copied files.
EXCLUDED = (PACKAGE / "toyworld" / "assets",)

MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 224
MAX_DUPLICATES = 4
#: Where duplicates are not counted (paths relative to src/): generated code and the metric implementations, which
#: follow their reference implementations (pycocoevalcap) one metric per file.
DUPLICATES_EXEMPT = ("univigu/toyworld/assets/", "univigu/evaluation/metrics/")


def package_files():
    return sorted(p for p in PACKAGE.rglob("*.py") if not any(ex in p.parents for ex in EXCLUDED))


def docstring_lines(node) -> int:
    first = node.body[0] if node.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno - first.lineno + 1
    return 0


def function_lengths(path: Path):
    """`(qualified name, line, length)` of every function and method in `path`: the lines from `def` to the
    function's last line (nested functions included), minus its docstring."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((name, child.lineno, child.end_lineno - child.lineno + 1 - docstring_lines(child)))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "")
    return found


def test_the_function_count_reads_def_to_end_minus_the_docstring(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text('def f(x):\n    """One\n    two."""\n\n    return x\n\n\nclass A:\n    def g(self):\n        pass\n')
    assert function_lengths(path) == [("f", 1, 3), ("A.g", 9, 2)]


def test_no_source_file_is_over_800_lines():
    too_long = {str(p.relative_to(SRC)): n for p in package_files()
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES}
    assert not too_long, f"source files over {MAX_FILE_LINES} lines (split them by what they do): {too_long}"


def test_no_function_is_longer_than_wan_pipelines_call():
    too_long = [f"{p.relative_to(SRC)}:{line} {name} ({length} lines)"
                for p in package_files() for name, line, length in function_lengths(p) if length > MAX_FUNCTION_LINES]
    assert not too_long, (f"functions over {MAX_FUNCTION_LINES} lines, docstring aside (WanPipeline.__call__'s size; "
                          f"split them into named steps): {too_long}")


PAIR = re.compile(r"^D\d+ (\S+):\d+-\d+ ~ (\S+):\d+-\d+")


def test_at_most_4_duplicated_blocks_outside_generated_and_metric_code():
    command = shutil.which("duplicates")
    if command is None:
        pytest.skip("the `duplicates` command is not on PATH (a local tool; the file and function sizes are still "
                    "checked)")
    result = subprocess.run([command, "--repo", str(SRC), "--most", "200", "--seconds", "120"],
                            capture_output=True, text=True, timeout=300)
    lines = result.stdout.splitlines()
    incomplete = [line for line in lines if line.startswith("incomplete:")]
    assert not incomplete, f"`duplicates` did not read all of src/: {incomplete}"
    pairs = [line for line in lines if (m := PAIR.match(line))
             and not all(side.startswith(DUPLICATES_EXEMPT) for side in m.groups())]
    assert len(pairs) <= MAX_DUPLICATES, (
        f"{len(pairs)} duplicated blocks in src/ outside generated and metric code (at most {MAX_DUPLICATES}); "
        "let one piece of code serve where the logic is the same:\n" + "\n".join(pairs)
    )


#: The old spellings of annotations (issue #31: one typing style, PEP 604 unions and builtin generics, Python >= 3.10).
OLD_TYPING = {"Optional", "Union", "List", "Dict", "Tuple", "Set", "FrozenSet", "Type"}


def test_one_typing_style():
    """`str | None`, `list[int]`, `dict[str, Any]` everywhere in the package: no `typing.Optional` / `List` / ..."""
    found = []
    for path in package_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "typing":
                found += [f"{path.relative_to(SRC)}:{node.lineno} {a.name}" for a in node.names if a.name in OLD_TYPING]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "typing":
                if node.attr in OLD_TYPING:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} typing.{node.attr}")
    assert not found, f"old typing spellings: {found}"
