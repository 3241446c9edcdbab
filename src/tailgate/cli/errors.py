"""What every ``tailgate`` command shares: exit codes and the one error formatter.

Every user error (a bad argument, a graph that does not connect, a capture that is not one) is one
line ``error: ...`` on stderr and exit code 2, never a traceback; :func:`fail` prints it and
returns the ``typer.Exit`` to raise.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import typer
from rich.console import Console

from tailgate.core.errors import TailgateError

EXIT_USER_ERROR = 2
EXIT_DAMAGED_INPUT = 1  # the input was damaged part-way; results hold what came before
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    """Print ``error: message`` on stderr; returns the Exit to raise."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {message}", markup=False)
    return typer.Exit(code)


def call_or_fail(where: str, fn: Callable, as_json: bool = False):
    """Run ``fn`` and return its result: a user error (TailgateError) or an OS error ("``where``:
    reason") becomes one line and exit 2, Ctrl-C exit 130; with ``as_json`` the result is printed
    as JSON."""
    try:
        result = fn()
    except TailgateError as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"{where}: {e.strerror or e}") from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        typer.echo(json.dumps(result, indent=1))
    return result
