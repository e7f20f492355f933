"""Prints the fault suite's table (runs x faults x outcomes) at the end of the session."""

from __future__ import annotations

import pytest

from tests.faults.runner import TABLE, table_markdown


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The table of the runs of this session, as docs/reliability.md shows it."""
    if TABLE:
        terminalreporter.section("fault suite: runs x faults x outcomes")
        terminalreporter.write_line(table_markdown())
