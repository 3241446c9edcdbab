"""``tailgate run SCRIPT [k=v ...]``: run a pipeline script and write its results directory.

Ctrl-C stops a run, still writes its results directory, and exits with 130; SIGTERM does the same
(``stop_reason`` "terminated") and exits with 143. A capture damaged
part-way is used up to the damage and reported as a warning, with exit code 1.
"""

from __future__ import annotations

import logging
import signal
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from tailgate.cli.errors import (
    EXIT_DAMAGED_INPUT,
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    fail,
)
from tailgate.core.errors import TailgateError
from tailgate.run.progress import LiveView, final_table
from tailgate.run.results import write_plot
from tailgate.run.script import ScriptRun, Terminated, sigterm_stops_run

#: The exit code of a run stopped by SIGTERM (128 + the signal's number, as a shell reports it).
EXIT_TERMINATED = 128 + signal.SIGTERM


class ClockName(str, Enum):
    wall = "wall"
    virtual = "virtual"




def _setup_logging(quiet: bool, console: Console) -> None:
    from rich.logging import RichHandler

    logger = logging.getLogger("tailgate")
    for h in list(logger.handlers):
        if getattr(h, "_tailgate_cli", False):
            logger.removeHandler(h)
    handler = RichHandler(console=console, show_path=False, show_time=False, markup=False)
    handler._tailgate_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False




def run(
    script: Path = typer.Argument(..., help="the pipeline script (Python)", show_default=False),
    args: Optional[list[str]] = typer.Argument(None, help="script arguments: k=v words or 'a=1,b=2'"),
    clock: ClockName = typer.Option(ClockName.wall, "--clock", help="wall time, or virtual time (modeled costs)"),
    out: Optional[Path] = typer.Option(None, "--out", help="results directory (default: results/SCRIPT-YYYYmmdd-HHMMSS)"),
    burst: int = typer.Option(32, "--burst", help="packets a task root produces per round"),
    seconds: Optional[float] = typer.Option(None, "--seconds", help="stop after this much clock time"),
    packets: Optional[int] = typer.Option(None, "--packets", help="stop after this many packets"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no live view, no final table"),
    plot: bool = typer.Option(False, "--plot", help="also write plot.png: time share, batch sizes, delays"),
    loglevel: Optional[str] = typer.Option(None, "--loglevel", help="DEBUG, INFO (default) or WARNING"),
) -> None:
    """Run a pipeline script and write its results directory.

    A script is Python that gets these names (manual: docs/scripts.md):

    every network function class  (tailgate modules lists them)
    get_arg(name, default, type)  a k=v argument of the command line
    run(seconds, packets)         run the pipeline (else it runs at the end)
    add_worker(name, policy)      a worker; w.add_task(root, share)
    results_dir                   this run's directory (a pathlib.Path)
    log                           a logging.Logger
    pipeline, clock               the modules' pipeline, the run's clock
    FlowTemplate, batchy          hand-made flows; SLO-driven batching

    Or import them, for editors and linters:
    from tailgate.run.script import get_arg, results_dir, PcapSource

    Ctrl-C exits with 130, SIGTERM with 143; both write the results.
    """
    err_console = Console(stderr=True)
    _setup_logging(quiet, err_console)
    if loglevel is not None:
        level = logging.getLevelName(loglevel.upper())
        if not isinstance(level, int):
            raise fail(f"--loglevel must be DEBUG, INFO or WARNING, got {loglevel!r}")
        logging.getLogger("tailgate").setLevel(level)
    view = LiveView(err_console, enabled=(not quiet) and err_console.is_terminal)
    try:
        sr = ScriptRun(
            script,
            list(args or []),
            clock=clock.value,
            burst=burst,
            seconds=seconds,
            packets=packets,
            out_dir=out,
            view=view,
        )
    except TailgateError as e:
        raise fail(str(e)) from None
    code, error = 0, None
    try:
        with sigterm_stops_run():
            sr.execute()
    except Terminated:
        code = EXIT_TERMINATED
        err_console.print("terminated", style="yellow")
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        err_console.print("interrupted", style="yellow")
    except TailgateError as e:
        code, error = EXIT_USER_ERROR, str(e)
    if sr.runtime is not None and sr.results_written:
        out_console = Console(highlight=False)
        if not quiet:
            out_console.print(final_table(sr.runtime, sr.stop_reason))
        # Warnings show even with --quiet; damaged input (a capture cut short) makes the exit code
        # 1 as `pcap info` does: the results hold what came before the damage.
        warnings = (sr.summary or {}).get("warnings", [])
        for w in warnings:
            err_console.print(f"warning: {w}", style="yellow", markup=False, highlight=False, soft_wrap=True)
        if (sr.summary or {}).get("damaged_input") and not code:
            code = EXIT_DAMAGED_INPUT
        if plot:
            try:
                plot_path = write_plot(sr.out_dir, sr.pipeline, sr.summary)
                out_console.print(f"plot: {plot_path}", markup=False, soft_wrap=True)
            except (ImportError, OSError) as e:
                err_console.print(f"warning: no plot: {e}", style="yellow", markup=False, highlight=False)
        out_console.print(f"results: {sr.out_dir}", markup=False)
    if error is not None:
        raise fail(error)  # last, so that it is the line a reader sees
    if code:
        raise typer.Exit(code)

