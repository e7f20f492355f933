"""Every Python block of the README and docs/: complete ones run as written (their
``test_*`` functions too); ones marked ``<!-- fragment -->`` (a piece of a larger program,
or one that needs a server) at least compile."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^(<!-- fragment -->\n)?```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
RUNNER = """
import asyncio, inspect, runpy
found = runpy.run_path("block.py", run_name="__main__")
for name, value in list(found.items()):
    if name.startswith("test_") and callable(value):
        result = value()
        if inspect.iscoroutine(result):
            asyncio.run(result)
        print("passed", name)
"""


def _blocks() -> list[tuple[str, bool, str]]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for number, match in enumerate(BLOCK.finditer(text), start=1):
            name = f"{path.relative_to(ROOT)}#{number}"
            found.append((name, match.group(1) is not None, match.group(2)))
    return found


BLOCKS = _blocks()


def test_most_blocks_run() -> None:
    """Complete examples outnumber no fewer than three (the quickstarts and the test)."""
    assert sum(1 for _, fragment, _ in BLOCKS if not fragment) >= 3


@pytest.mark.parametrize(("name", "fragment", "code"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_block(name: str, fragment: bool, code: str, tmp_path: Path) -> None:
    """The block compiles; unless it is a fragment, it runs and its tests pass."""
    compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if fragment:
        return
    (tmp_path / "block.py").write_text(code)
    result = subprocess.run(
        [sys.executable, "-c", RUNNER], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for test in re.findall(r"^(?:async )?def (test_\w+)", code, re.MULTILINE):
        assert f"passed {test}" in result.stdout
