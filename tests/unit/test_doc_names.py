"""The docs a user gets name only documents that ship with them: every ``*.md`` the README,
CONTRIBUTING, CHANGELOG and docs/ mention exists in the repository, and none of them (nor
the shipped Prometheus rules and Grafana dashboard) points at the maintainers' own notes."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"]
DOCS += sorted((ROOT / "docs").glob("*.md"))
SHIPPED = [*DOCS, *sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file())]
MENTION = re.compile(r"[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b")
PRIVATE = re.compile(r"/work/|research/|\bBRIEF\b|\bDESIGN\.md\b|\bSTYLE\.md\b")


def test_every_document_named_exists() -> None:
    """A ``name.md`` is found next to the doc that names it, or from the repository root."""
    missing = []
    for doc in DOCS:
        for name in set(MENTION.findall(doc.read_text())):
            name = name.removeprefix("./")
            if not ((doc.parent / name).exists() or (ROOT / name).exists()):
                missing.append(f"{doc.relative_to(ROOT)} names {name}")
    assert not missing, missing


def test_shipped_files_name_no_private_notes() -> None:
    """No path or name of the maintainers' working notes in what users get."""
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in SHIPPED
        for match in PRIVATE.finditer(path.read_text(errors="replace"))
    ]
    assert not found, found
