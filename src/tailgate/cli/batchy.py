"""``tailgate batchy ...``: the Batchy reproduction report.

    tailgate batchy report [--out DIR] [--quick] [--clock virtual|wall|both] [--wall-runs N]
    tailgate batchy controllers      (the controllers a script may name)

The report is ``DIR/batchy.md`` with its plots, CSVs and ``results.json`` in ``DIR/batchy/``
(default ``DIR``: ``results/batchy-report-YYYYmmdd-HHMMSS``; ``--out docs/`` updates the committed
report; a ``--out`` ending in ``.md`` names the report file itself). It prints where it wrote and
the date and machine it ran on; nothing is reused from earlier runs. The wall-clock part runs
``--wall-runs`` times (default 3, at least 1), and its tables give the median and range over the
runs; the virtual clock is deterministic and runs once. On a terminal it shows a
progress bar; otherwise (a log, CI) one plain line per finished run on stderr, e.g.
``[12/56] l2l3 virtual projgrad: 2.17x null, 0 late``. Flows a controller declared infeasible
are listed once, in a table at the end (not as a warning per round).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tailgate.bench.batchy_report import (
    INFEASIBLE_COLUMNS,
    build_report,
    infeasible_rows,
)
from tailgate.bench.provenance import describe, provenance, report_dir
from tailgate.cli.errors import fail
from tailgate.packet.pool import MAX_TRIGGER

batchy_app = typer.Typer(no_args_is_help=True,
                         help="SLO-driven batch scheduling (Batchy): its controllers and the reproduction report.")


def report_path(out: Path | None) -> Path:
    """The report file for ``--out``: DIR/batchy.md, the .md file itself, or a fresh results dir's."""

    if out is None:
        return report_dir("batchy-report") / "batchy.md"
    return out if out.suffix == ".md" else out / "batchy.md"


#: The built-in controllers a script may name (``batchy.set_controller(NAME)``; the examples take
#: ``controller=NAME``), each with what it does.
CONTROLLERS = (
    ("null", "no buffering: every trigger 0, each module runs on the batches it gets"),
    ("max", "every trigger at the largest a round allows"),
    ("fixedN", f"every trigger N packets, N = 1..{MAX_TRIGGER} (also fixN)"),
    ("onoff", "triggers in {0, max}: push, recover, pull; no gradient step"),
    ("feasdir", "method of feasible directions on one module per round, round-robin"),
    ("projgrad", "Batchy's projected-gradient controller (the default)"),
)


@batchy_app.command("controllers")
def controllers_cmd() -> None:
    """List the built-in Batchy controllers a script may name."""

    t = Table(box=None, pad_edge=False, header_style="bold")
    t.add_column("controller")
    t.add_column("what it does")
    for name, what in CONTROLLERS:
        t.add_row(name, what)
    c = Console(highlight=False)
    c.print(t, markup=False)
    c.print("a script picks one with batchy.set_controller(NAME); the examples take controller=NAME", markup=False)


@batchy_app.command("report")
def report_cmd(
    out: Optional[Path] = typer.Option(None, "--out",
                                       help="directory for batchy.md and batchy/ (default: "
                                            "results/batchy-report-YYYYmmdd-HHMMSS; --out docs/ updates the "
                                            "committed report)"),
    quick: bool = typer.Option(False, "--quick", help="fewer rounds, virtual clock only"),
    clock: str = typer.Option("both", "--clock", help="virtual, wall or both"),
    wall_runs: int = typer.Option(3, "--wall-runs", help="how many times the wall-clock part runs (its tables: "
                                                        "median and range over the runs)"),
) -> None:
    """Run every example with null, max, onoff and projgrad and write batchy.md into a results directory."""

    if clock not in ("virtual", "wall", "both"):
        raise typer.BadParameter(f"--clock must be virtual, wall or both, got {clock!r}")
    clocks = ("virtual", "wall") if clock == "both" else (clock,)
    if wall_runs < 1:
        raise fail(f"--wall-runs {wall_runs}: must be at least 1 (the wall clock's tables give the range over "
                   "the runs)")
    md = report_path(out)
    if md.parent.exists() and not md.parent.is_dir():
        raise fail(f"--out {out}: {md.parent} exists and is not a directory")
    ran = provenance()
    console = Console(stderr=True)
    try:
        if not console.is_terminal:
            results = build_report(md, quick=quick, clocks=clocks, wall_runs=wall_runs,
                                   finished=lambda line: console.print(line, markup=False, highlight=False,
                                                                       soft_wrap=True))
        else:
            results = _with_bar(console, md, quick, clocks, wall_runs)
    except OSError as e:
        raise fail(f"batchy report into {md.parent}: {e.strerror or e}") from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    c = Console(highlight=False, soft_wrap=True)
    inf = infeasible_rows(results)
    if inf:
        t = Table(title="infeasible objectives (declared by the controller)", box=None, pad_edge=False,
                  header_style="bold")
        for col in INFEASIBLE_COLUMNS:
            t.add_column(col, justify="right" if col.endswith(("ns", "flagged")) else "left")
        for case, clk, ctrl, f, obj, best, rounds in inf:
            t.add_row(case, clk, ctrl, f, f"{obj:.0f}", f"{best:.0f}", str(rounds))
        c.print(t, markup=False)
    c.print(f"report: {md} (plots, CSVs and results.json: {md.parent / 'batchy'}/)", markup=False)
    c.print(f"ran: {describe(ran)}", markup=False)
    c.print("reused: nothing; every run was made now", markup=False)


def _with_bar(console: Console, md: Path, quick: bool, clocks, wall_runs: int = 3) -> dict:
    """build_report under a progress bar on ``console`` (a terminal).

    Redrawn between runs only: an auto-refreshing bar redraws from a thread ten times a second,
    and on the wall clock every redraw takes the interpreter from the pipeline being measured."""

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True, auto_refresh=False) as prog:
        task = prog.add_task("batchy report", total=1)

        def tick(i, n, what):
            prog.update(task, total=n, completed=i, description=what, refresh=True)

        return build_report(md, quick=quick, clocks=clocks, progress=tick, wall_runs=wall_runs)
