"""``tailgate profile``: measure each network function's batch cost ``T_0 + T_1·b`` on this machine.

Manual
------
::

    tailgate profile [MODULE ...] [--max-batch 32] [--out PATH] [--seconds S] [--json]

Profiles the named classes (every class with a fixture when none is named; see
:mod:`tailgate.batchy.profiler` for what is measured and how), merges the results into the
profile file — ``--out``, else ``$TAILGATE_PROFILE``, else ``~/.cache/tailgate/profile.json`` —
and prints a table: T_0 and T_1 in ns, the batchiness β = T_1/(T_0+T_1), the fit's R², and
whether Batchy would control the module (β ≤ 0.5). ``--json`` prints the new entries as a JSON
object on stdout instead. A progress bar goes to stderr. ``--seconds`` is the time budget per
module (default 2.5; most modules reach their sample cap sooner). A Batchy run on the wall
clock reads the file for every module whose costs its script does not give.

An unknown module, a ``--max-batch`` outside 2..1024 or a damaged profile file is one line
``error: ...`` and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tailgate.batchy.model import batchiness, is_controllable
from tailgate.batchy.profiler.fixtures import resolve_modules
from tailgate.batchy.profiler.harness import MAX_BATCH_LIMIT, profile
from tailgate.batchy.profiler.store import load_profile, profile_path
from tailgate.cli.errors import fail
from tailgate.core.errors import TailgateError


def profile_cmd(
    modules: Optional[List[str]] = typer.Argument(
        None, metavar="[MODULE]...", help="class names to profile (default: every class with a fixture)", show_default=False
    ),
    max_batch: int = typer.Option(32, "--max-batch", help="largest batch size profiled (2..1024)"),
    out: Optional[Path] = typer.Option(None, "--out", help="profile file (default $TAILGATE_PROFILE or ~/.cache/tailgate/profile.json)"),
    seconds: float = typer.Option(2.5, "--seconds", help="time budget per module, seconds"),
    as_json: bool = typer.Option(False, "--json", help="print the new entries as JSON"),
) -> None:
    """Measure modules' batch costs T_0 + T_1·b on this machine and save them for Batchy runs."""

    if not 2 <= max_batch <= MAX_BATCH_LIMIT:
        raise fail(f"--max-batch must be in 2..{MAX_BATCH_LIMIT}, got {max_batch}")
    if not seconds > 0:
        raise fail(f"--seconds must be positive, got {seconds}")
    path = out if out is not None else profile_path()
    err_console = Console(stderr=True)
    try:
        names = resolve_modules(modules)
        load_profile(path)  # a damaged file: say so before measuring anything
        with Progress(
            TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err_console, transient=False,
        ) as bar:
            task = bar.add_task("profiling", total=len(names))

            def progress(i: int, n: int, name: str, fraction: float) -> None:
                bar.update(task, completed=i + fraction, description=name)

            new = profile(names, max_batch=max_batch, out=path, progress=progress, budget_s=seconds)
            bar.update(task, completed=len(names), description="done")
    except TailgateError as e:
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        err_console.print("interrupted: nothing written", style="yellow")
        raise typer.Exit(130) from None
    except OSError as e:
        raise fail(f"{path}: cannot write the profile: {e.strerror or e}") from None

    if as_json:
        typer.echo(json.dumps(new, indent=1))
        err_console.print(f"profile: {path}", markup=False, highlight=False)
        return
    t = Table(box=None, pad_edge=False, header_style="bold")
    for c in ("module", "T_0 ns", "T_1 ns", "β", "R²", "controllable"):
        t.add_column(c, justify="left" if c in ("module", "controllable") else "right")
    for name, e in new.items():
        t0, t1 = e["T_0"], e["T_1"]
        t.add_row(name, f"{t0:,.1f}", f"{t1:,.2f}", f"{batchiness(t0, t1):.3f}", f"{e['r2']:.3f}",
                  "yes" if is_controllable(t0, t1) else "no")
    out_console = Console(highlight=False)
    out_console.print(t)
    out_console.print(f"profile: {path} ({len(new)} module{'s' if len(new) != 1 else ''} written)", markup=False)

