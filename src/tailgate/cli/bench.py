"""``tailgate bench``: tailgate's own speed against baselines run beside it."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tailgate.bench.live import bench_live_records
from tailgate.bench.packet import run_bench
from tailgate.bench.sched import bench_sim
from tailgate.cli.errors import fail
from tailgate.core.errors import TailgateError
from tailgate.run.results import jsonable


def bench_cmd(
    as_json: bool = typer.Option(False, "--json", help="print a JSON list"),
    quick: bool = typer.Option(False, "--quick", help="a short run (seconds, not minutes)"),
    suite: str = typer.Option("all", "--suite", help="packet (data plane), sched (simulator), live (server) or all"),
) -> None:
    """Measure tailgate's own speed against baselines run beside it (dpkt, scapy, SimPy)."""
    if suite not in ("packet", "sched", "live", "all"):
        raise fail(f"--suite {suite!r}: expected packet, sched, live or all")
    try:
        records = run_bench(quick=quick) if suite in ("packet", "all") else []
        records += bench_sim(quick=quick) if suite in ("sched", "all") else []
        records += bench_live_records(quick=quick) if suite in ("live", "all") else []
    except TailgateError as e:
        raise fail(str(e)) from None
    if as_json:
        typer.echo(json.dumps(jsonable(list(records)), indent=2))
        return
    cols: list[str] = []
    for r in records:
        for k in r:
            if k not in cols:
                cols.append(k)
    t = Table(box=None, pad_edge=False, header_style="bold")
    for c in cols:
        t.add_column(c, justify="left" if c in ("name", "bench", "case", "what", "unit") else "right")
    for r in records:
        t.add_row(*(_fmt_cell(r.get(c)) for c in cols))
    Console(highlight=False).print(t)


def _fmt_cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)

