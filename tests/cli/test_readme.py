"""The README's quickstart runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_runs(tmp_path: Path) -> None:
    """The first Python example of the README runs and its handler sees the event."""
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert code is not None
    script = tmp_path / "quickstart.py"
    script.write_text(code.group(1))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "receipt for order 42" in result.stdout
    assert (tmp_path / "redrive.db").exists()


def test_second_example_leaves_a_dead_letter(tmp_path: Path) -> None:
    """The README's failing example leaves one dead letter for ``redrive list`` to show."""
    from redrive import DeadLetterQueue, open_store

    readme = (ROOT / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)[1]
    (tmp_path / "failing.py").write_text(code)
    result = subprocess.run(
        [sys.executable, "failing.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    store = open_store(f"sqlite:///{tmp_path / 'redrive.db'}")
    try:
        [dead] = DeadLetterQueue(store).list().items
    finally:
        store.close()
    assert dead.error_type == "KeyError"
