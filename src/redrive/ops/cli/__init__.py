"""The ``redrive`` command line. Heavy modules load inside commands, so ``--help`` is fast."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``redrive`` script."""
    from redrive.ops.cli.app import run

    run()
