"""``tailgate batchy ...``: the Batchy reproduction report.

    tailgate batchy report [--out docs/batchy.md] [--quick] [--clock virtual|wall|both]
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tailgate.bench.batchy_report import build_report

batchy_app = typer.Typer(no_args_is_help=True, help="SLO-driven batch scheduling (Batchy): the reproduction report.")


@batchy_app.command("report")
def report_cmd(
    out: Path = typer.Option(Path("docs/batchy.md"), "--out", help="the report (plots and CSVs go beside it)"),
    quick: bool = typer.Option(False, "--quick", help="fewer rounds, virtual clock only"),
    clock: str = typer.Option("both", "--clock", help="virtual, wall or both"),
) -> None:
    """Run every example with null, max, onoff and projgrad and write docs/batchy.md."""

    if clock not in ("virtual", "wall", "both"):
        raise typer.BadParameter(f"--clock must be virtual, wall or both, got {clock!r}")
    clocks = ("virtual", "wall") if clock == "both" else (clock,)
    console = Console(stderr=True)
    # Redrawn between runs only: an auto-refreshing bar redraws from a thread ten times a
    # second, and on the wall clock every redraw takes the interpreter from the pipeline being
    # measured (l3vrf: 1-4 late flow-rounds in the report against none in nine runs without it).
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True, auto_refresh=False) as prog:
        task = prog.add_task("batchy report", total=1)

        def tick(i, n, what):
            prog.update(task, total=n, completed=i, description=what, refresh=True)

        build_report(out, quick=quick, clocks=clocks, progress=tick)
    Console().print(f"report: {out}")
