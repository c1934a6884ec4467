"""The README's quick start, run the way a user runs it.

`make demo` itself is not called from here: it would create or re-check the virtual environment.
Instead the test checks that the README still says exactly `make demo` and `make test`, that the
Makefile's demo recipe is the `rawback sample` + `rawback convert` pair, that CI runs the README's
test command, and then runs that pair as subprocesses with this interpreter.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import rawpy

from tests.conftest import REPO

QUICK_START = ["make demo", "make test"]


def section(markdown: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, flags=re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match[1]


def code_blocks(markdown: str) -> list[list[str]]:
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.M | re.S)
    return [[line.strip() for line in block.splitlines() if line.strip()] for block in blocks]


def recipe(makefile: str, target: str) -> list[str]:
    """The command lines of a Makefile target (tab-indented lines after `target:`)."""
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, flags=re.M)
    assert match, f"Makefile has no '{target}' target"
    return [line.strip().lstrip("@") for line in match[1].splitlines()]


def test_readme_quick_start_is_exactly_two_commands() -> None:
    quick = section((REPO / "README.md").read_text(), "Quick start")
    assert code_blocks(quick) == [QUICK_START]


def test_ci_runs_the_readme_test_command() -> None:
    script = (REPO / ".ci" / "run").read_text()
    commands = [line.strip() for line in script.splitlines() if line.strip() and not line.startswith("#")]
    assert commands[0] == "set -euo pipefail"
    assert commands[-1] == QUICK_START[1]


def test_make_test_runs_pytest_and_ruff() -> None:
    lines = recipe((REPO / "Makefile").read_text(), "test")
    assert any("-m pytest" in line and "||" not in line for line in lines)  # no status swallowed
    assert any("ruff check" in line for line in lines)


def test_demo_commands_run(tmp_path: Path) -> None:
    lines = recipe((REPO / "Makefile").read_text(), "demo")
    demo = [line.split("/rawback ", 1)[1] for line in lines if "/rawback " in line]
    assert [line.split()[0] for line in demo] == ["sample", "convert"]
    (tmp_path / "demo").mkdir()
    for line in demo:
        result = subprocess.run(
            [sys.executable, "-m", "rawback", *line.split()],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        assert "Traceback" not in result.stdout
    dng = tmp_path / "demo" / "sample.dng"
    assert "converted demo/sample.jpg -> demo/sample.dng" in result.stdout
    with rawpy.imread(str(dng)) as raw:
        rendered = raw.postprocess(use_camera_wb=True)
    assert rendered.shape[2] == 3 and rendered.mean() > 10  # not black
