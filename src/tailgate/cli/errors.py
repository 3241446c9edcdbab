"""What every ``tailgate`` command shares: exit codes and the one error formatter.

Every user error (a bad argument, a graph that does not connect, a capture that is not one) is one
line ``error: ...`` on stderr and exit code 2, never a traceback; :func:`fail` prints it and
returns the ``typer.Exit`` to raise.
"""

from __future__ import annotations

import typer
from rich.console import Console

EXIT_USER_ERROR = 2
EXIT_DAMAGED_INPUT = 1  # the input was damaged part-way; results hold what came before
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    """Print ``error: message`` on stderr; returns the Exit to raise."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {message}", markup=False)
    return typer.Exit(code)
