"""``tailgate sched``: request scheduling (Perséphone's DARC and its rivals), simulated and live.

Manual
------
::

    tailgate sched sim --workload disp2 --policy darc,cfcfs,dfcfs,ts --workers 14 \\
                       --load 0.05:1.0:0.05 [--requests N] [--seed S] [--overhead-ns NS] \\
                       [--slowdown-target X] [--param POLICY.KEY=VALUE ...] [--jobs J] [--out DIR]
    tailgate sched sim --workload disp2 --policy darc --load 0.8 --json
    tailgate sched policies
    tailgate sched report [--docs DIR] [--quick] [--no-live]

A sweep runs its points in parallel (one process per core) with a progress bar, and writes
``points.csv``, ``summary.json``, ``slowdown.png`` and ``types.png`` into ``--out`` (default
``results/sched-WORKLOAD-YYYYmmdd-HHMMSS``), then prints the highest load each policy sustains
with a p99.9 slowdown under the target. ``--json`` prints the summaries instead (one object for
one point, else a list), DARC's reservation table included. ``--workload`` takes a name
(``disp2 sbim2 disp3 tpcc rocksdb``) or a YAML file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tailgate.core.errors import ArgError, TailgateError

sched_app = typer.Typer(no_args_is_help=True, help="Schedule typed requests: simulate policies, serve, load.")


def _fail(message: str) -> typer.Exit:
    from tailgate.cli import _err

    return _err(message)


def parse_params(items: list[str] | None, policies: list[str]) -> dict[str, dict]:
    """``POLICY.KEY=VALUE`` (or ``KEY=VALUE`` for every policy that takes KEY) → per-policy dicts."""
    from tailgate.dispatch.policy import COMMON, PARAMS

    out: dict[str, dict] = {p: {} for p in policies}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ArgError(f"--param {item!r}: expected POLICY.KEY=VALUE or KEY=VALUE")
        value = _value(raw)
        pol, dot, name = key.rpartition(".")
        targets = [pol] if dot else [p for p in policies if name in {**COMMON, **PARAMS[p]}]
        if dot and pol not in out:
            raise ArgError(f"--param {item!r}: policy {pol!r} is not among --policy {','.join(policies)}")
        if not targets:
            raise ArgError(f"--param {item!r}: no chosen policy takes {name!r}")
        for p in targets:
            out[p][name] = value
    return out


def _value(raw: str):
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return None if raw.lower() == "none" else raw


@sched_app.command("sim")
def sim_cmd(
    workload: str = typer.Option("disp2", "--workload", "-w", help="workload name or YAML file"),
    policy: str = typer.Option("darc,cfcfs", "--policy", "-p", help="comma-separated policies"),
    workers: int = typer.Option(14, "--workers", "-n", help="application workers"),
    load: str = typer.Option("0.05:1.0:0.05", "--load", "-l", help="a load, a list a,b,c or LO:HI:STEP"),
    requests: int = typer.Option(1_000_000, "--requests", help="requests per point (the first 10 % are warm-up)"),
    seed: int = typer.Option(1, "--seed", help="random seed (same seed, same results)"),
    overhead_ns: int = typer.Option(0, "--overhead-ns", help="dispatcher time per assignment (ns)"),
    slowdown_target: float = typer.Option(10.0, "--slowdown-target", help="p99.9 slowdown a load must meet"),
    param: Optional[list[str]] = typer.Option(None, "--param", help="policy parameter POLICY.KEY=VALUE (repeatable)"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="parallel processes (default: every core)"),
    out: Optional[Path] = typer.Option(None, "--out", help="results directory"),
    as_json: bool = typer.Option(False, "--json", help="print the summaries as JSON (no files unless --out)"),
) -> None:
    """Simulate policies over a load sweep (or one load) and report tail slowdown."""
    from tailgate.dispatch.sweep import parse_loads, sustainable, sweep, write_results
    from tailgate.dispatch.workloads import get_workload

    try:
        wl = get_workload(workload)
        pols = [p.strip().lower() for p in policy.split(",") if p.strip()]
        if not pols:
            raise ArgError("--policy: give at least one policy")
        loads = parse_loads(load)
        if requests < 100:
            raise ArgError(f"--requests {requests}: need at least 100 requests per point")
        if overhead_ns < 0:
            raise ArgError(f"--overhead-ns {overhead_ns}: must be >= 0")
        if not slowdown_target > 0:
            raise ArgError(f"--slowdown-target {slowdown_target:g}: must be > 0")
        params = parse_params(param, pols)
        n_points = len(pols) * len(loads)
        console = Console(stderr=True, highlight=False)
        progress = Progress(TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                            disable=as_json or n_points == 1, transient=False)
        with progress:
            task = progress.add_task("", total=n_points)

            def advance(s: dict) -> None:
                progress.update(task, advance=1, description=f"{s['policy']} @ {s['load']:g}")

            points = sweep(wl, pols, workers, loads, n_requests=requests, seed=seed, overhead_ns=overhead_ns,
                           params=params, jobs=jobs, on_point=advance)
        config = {"workload": wl.name, "policies": pols, "n_workers": workers, "loads": loads,
                  "requests": requests, "seed": seed, "overhead_ns": overhead_ns, "params": params}
        if out is not None or not as_json:
            out_dir = out or Path("results") / f"sched-{wl.name}-{time.strftime('%Y%m%d-%H%M%S')}"
            write_results(out_dir, points, slowdown_target, config)
    except TailgateError as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(points[0] if len(points) == 1 else points, indent=1))
        return
    _print_table(points, sustainable(points, slowdown_target), slowdown_target)
    Console(highlight=False).print(f"results: {out_dir}/ (points.csv, summary.json, slowdown.png, types.png)")


def _print_table(points: list[dict], best: dict, target: float) -> None:
    t = Table(box=None, pad_edge=False, header_style="bold")
    for c in ("policy", "load", "p99.9 slowdown", "p99.9 latency µs", "achieved krps", ""):
        t.add_column(c, justify="left" if c in ("policy", "") else "right")
    for s in points:
        sd = s["slowdown"]["p99.9"]
        lat = s["latency_ns"]["p99.9"]
        t.add_row(s["policy"], f"{s['load']:g}", "-" if sd is None else f"{sd:,.1f}",
                  "-" if lat is None else f"{lat / 1e3:,.1f}",
                  "-" if s["achieved_rps"] is None else f"{s['achieved_rps'] / 1e3:,.1f}",
                  "saturated" if s["saturated"] else "")
    c = Console(highlight=False)
    c.print(t)
    for pol, load in best.items():
        c.print(f"{pol}: sustains load {'none of the swept' if load is None else f'{load:g}'} "
                f"with p99.9 slowdown <= {target:g}")


@sched_app.command("policies")
def policies_cmd() -> None:
    """List the scheduling policies and their parameters."""
    from tailgate.dispatch.policy import COMMON, PARAMS

    t = Table(box=None, pad_edge=False, header_style="bold")
    t.add_column("policy")
    t.add_column("parameters (default)")
    for name, ps in PARAMS.items():
        t.add_row(name, ", ".join(f"{k}={v}" for k, v in {**ps, **COMMON}.items()))
    Console(highlight=False).print(t)


@sched_app.command("report")
def report_cmd(
    docs: Path = typer.Option(Path("docs"), "--docs", help="where persephone.md and its figures go"),
    quick: bool = typer.Option(False, "--quick", help="small runs (a minute; noisy numbers)"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="parallel processes (default: every core)"),
    live: bool = typer.Option(True, "--live/--no-live", help="include the live run on this machine"),
    slowdown_target: float = typer.Option(10.0, "--slowdown-target", help="p99.9 slowdown a load must meet"),
) -> None:
    """Run every experiment of the Perséphone reproduction and write docs/persephone.md."""
    from tailgate.dispatch.report import make_report

    console = Console(stderr=True, highlight=False)
    try:
        path = make_report(docs, quick=quick, jobs=jobs, slowdown_target=slowdown_target, live=live,
                           say=lambda m: console.print(m, markup=False))
    except TailgateError as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    Console(highlight=False).print(f"report: {path}")
