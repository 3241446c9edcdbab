"""``tailgate faas``: function batching (FaaSBatch and its baselines), simulated.

Manual
------
::

    tailgate faas sim [--strategy faasbatch,vanilla,kraken,sfs,faasbatch-slo] [--interval 0.01,0.05,0.2,0.5]
                      [--trace gen|FILE] [--kind cpu|io] [--invocations N] [--functions N] [--minutes M]
                      [--window reference] [--app APP] [--profile FILE.json] [--cores N]
                      [--max-per-function N] [--max-total N] [--idle-lifetime-s S]
                      [--param STRATEGY.KEY=VALUE ...] [--seed S] [--per-invocation] [--out DIR] [--json]
    tailgate faas strategies         (each strategy's arguments, the pool's and the simulator's)

``sim`` runs every strategy at every dispatch interval (``--dispatch-interval-s`` is the same
option as ``--interval``) over one trace: ``--trace gen`` (default) generates an Azure-like one
(:mod:`tailgate.faas.trace`: ``--invocations``, default 800 for CPU and 400 for I/O as the
paper's experiment, ``--functions``, ``--minutes``), ``--trace FILE`` loads an Azure Functions 2019
or 2021 file (told apart by its header); ``--window reference`` picks the reference's five
minutes of a 2021 file (one app: ``--app``, or the busiest). A loader's refused rows are counted
and the first ones named (file:line) on stderr. Kraken is calibrated from a Vanilla run at the
same interval, and its ``predictor`` (perfect: the original's replay; ewma: online) is in every
result.

It writes ``points.csv`` and ``summary.json`` (and with ``--per-invocation`` one CSV of
per-invocation columns per strategy and interval) into ``--out`` (default
``results/faas-TRACE-YYYYmmdd-HHMMSS``), and prints a table. ``--json`` prints a list with one
object per strategy and interval instead (``strategy``, ``interval_s``, ``invocations``,
``sandboxes``, ``e2e_p50_ms``, ``e2e_p98_ms``, the mean and p98 of each component) and writes
files only with ``--out``. A bad argument or file is one line ``error: ...`` (exit 2).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from tailgate.cli.errors import fail
from tailgate.core.args import render_args
from tailgate.core.errors import ArgError, TailgateError
from tailgate.faas.sim import SIM_ARGS, run_strategies, write_results
from tailgate.faas.strategies import POOL_ARGS, STRATEGIES, make_strategy, strategy_args
from tailgate.faas.trace import KINDS, generate, load_reference_window, load_trace

faas_app = typer.Typer(no_args_is_help=True, help="Batch function invocations into sandboxes: simulate strategies.")


def parse_names(text: str) -> list[str]:
    """``--strategy a,b`` → ``["a", "b"]``; an empty, repeated or unknown name is an error."""
    names = [p.strip().lower() for p in text.split(",")]
    for k, name in enumerate(names):
        if not name:
            raise ArgError(f"--strategy {text!r}: name {k + 1} of {len(names)} is empty (a stray comma?)")
        if name in names[:k]:
            raise ArgError(f"--strategy {text!r}: {name!r} is named twice")
        if name not in STRATEGIES:
            raise ArgError(f"--strategy {text!r}: unknown {name!r} (strategies: {', '.join(STRATEGIES)})")
    return names


def parse_intervals(text: str) -> list[float]:
    """``--interval 0.01,0.2`` → seconds; each must be a number > 0."""
    out = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            raise ArgError(f"--interval {text!r}: {part.strip()!r} is not a number of seconds") from None
        if not v > 0:
            raise ArgError(f"--interval {text!r}: each dispatch interval must be > 0 s, got {v:g}")
        out.append(v)
    return out


def _value(raw: str):
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def parse_params(items: list[str] | None, names: list[str]) -> dict[str, dict]:
    """``STRATEGY.KEY=VALUE`` (or ``KEY=VALUE`` for every chosen strategy that takes KEY)."""
    out: dict[str, dict] = {n: {} for n in names}
    for item in items or []:
        key, sep, raw = item.partition("=")
        strat, dot, name = key.rpartition(".")
        if not sep or not name:
            raise ArgError(f"--param {item!r}: expected STRATEGY.KEY=VALUE or KEY=VALUE")
        if dot and strat not in out:
            raise ArgError(f"--param {item!r}: strategy {strat!r} is not among --strategy {','.join(names)}")
        targets = [strat] if dot else [n for n in names if name in {a.name for a in strategy_args(n)}]
        if not targets:
            raise ArgError(f"--param {item!r}: no chosen strategy takes {name!r}")
        for t in targets:
            out[t][name] = _value(raw)
    return out


@faas_app.command("sim")
def sim_cmd(
    strategy: str = typer.Option("faasbatch,vanilla,kraken,sfs", "--strategy", "-s", help="comma-separated strategies"),
    interval: str = typer.Option("0.2", "--interval", "--dispatch-interval-s", "-i",
                                 help="dispatch interval(s) in s, comma-separated"),
    trace: str = typer.Option("gen", "--trace", "-t", help="gen (an Azure-like trace) or an Azure 2019/2021 file"),
    kind: str = typer.Option("cpu", "--kind", help="cpu (fib) or io functions"),
    invocations: Optional[int] = typer.Option(None, "--invocations", "-n",
                                              help="invocations of a generated trace (default 800 cpu, 400 io)"),
    functions: Optional[int] = typer.Option(None, "--functions", help="functions of a generated trace (7 cpu, 5 io)"),
    minutes: float = typer.Option(5.0, "--minutes", help="length of a generated trace in minutes"),
    window: Optional[str] = typer.Option(None, "--window", help="'reference': the reference's 5 minutes of a 2021 file"),
    app: Optional[str] = typer.Option(None, "--app", help="the app of --window reference (default: the busiest)"),
    profile: Optional[Path] = typer.Option(None, "--profile", help="JSON file of cold-start/exec distributions"),
    cores: int = typer.Option(32, "--cores", help="worker cores for CPU contention (0: none)"),
    max_per_function: int = typer.Option(1000, "--max-per-function", help="live sandboxes per function at most"),
    max_total: int = typer.Option(4000, "--max-total", help="live sandboxes in total at most"),
    idle_lifetime_s: float = typer.Option(600.0, "--idle-lifetime-s", help="idle sandboxes are destroyed after (s)"),
    param: Optional[list[str]] = typer.Option(None, "--param", help="strategy argument STRATEGY.KEY=VALUE (repeatable)"),
    seed: int = typer.Option(5432, "--seed", help="random seed (trace and draws)"),
    per_invocation: bool = typer.Option(False, "--per-invocation", help="also write per-invocation CSVs"),
    out: Optional[Path] = typer.Option(None, "--out", help="results directory"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON (no files unless --out)"),
) -> None:
    """Simulate strategies over a trace at one or more dispatch intervals."""

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        names = parse_names(strategy)
        intervals = parse_intervals(interval)
        params = parse_params(param, names)
        for name in names:  # refuse a bad argument before anything runs
            make_strategy(name, **params[name])
        if kind not in KINDS:
            raise ArgError(f"--kind {kind!r}: must be one of {', '.join(KINDS)}")
        if trace == "gen":
            if window is not None:
                raise ArgError("--window: only for a trace file (--trace FILE)")
            n_inv = invocations if invocations is not None else (800 if kind == "cpu" else 400)
            n_fn = functions if functions is not None else (7 if kind == "cpu" else 5)
            tr = generate(invocations=n_inv, kind=kind, functions=n_fn, minutes=minutes, seed=seed)
            label = f"gen-{kind}"
        else:
            if window not in (None, "reference"):
                raise ArgError(f"--window {window!r}: the one preset is 'reference'")
            tr = (load_reference_window(trace, kind=kind, app=app, seed=seed) if window
                  else load_trace(trace, kind=kind, seed=seed))
            label = Path(trace).stem
            if tr.bad_rows:
                console.print(f"warning: {tr.bad_rows} bad rows skipped in {trace}; first: {tr.problems[0]}",
                              markup=False)
        pool_args = {"max_per_function": max_per_function, "max_total": max_total, "idle_lifetime_s": idle_lifetime_s}
        t0 = time.perf_counter()
        results = run_strategies(tr, names, intervals, profile=str(profile) if profile else None,
                                 pool_args=pool_args, params=params, cores=cores, seed=seed)
        wall_s = time.perf_counter() - t0
        config = {"trace": tr.source, "kind": kind, "invocations": len(tr), "functions": tr.n_functions,
                  "bad_rows": tr.bad_rows, "strategies": names, "intervals_s": intervals, "params": params,
                  "pool": pool_args, "cores": cores, "seed": seed, "profile": str(profile) if profile else "reference"}
        out_dir = None
        if out is not None or not as_json:
            out_dir = out or Path("results") / f"faas-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
            write_results(out_dir, results, config, per_invocation=per_invocation)
    except TailgateError as e:
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    points = [r.summary() for r in results]
    if as_json:
        typer.echo(json.dumps(points, indent=1))
        return
    t = Table(box=None, pad_edge=False, header_style="bold")
    cols = ("strategy", "interval s", "sandboxes", "e2e p50 ms", "e2e p98 ms", "sched p98", "cold p98",
            "queue p98", "exec p98", "MB/inv")
    for c in cols:
        t.add_column(c, justify="left" if c == "strategy" else "right", no_wrap=c == "strategy")
    for p in points:
        mem = p["mem_per_invocation_mb"]
        name = p["strategy"] + (f" ({p['predictor']})" if "predictor" in p else "")
        t.add_row(name, f"{p['interval_s']:g}", str(p["sandboxes"]), f"{p['e2e_p50_ms']:,.0f}",
                  f"{p['e2e_p98_ms']:,.0f}", f"{p['schedule_p98_ms']:,.0f}", f"{p['cold_start_p98_ms']:,.0f}",
                  f"{p['queue_p98_ms']:,.0f}", f"{p['exec_p98_ms']:,.0f}", "-" if mem is None else f"{mem:.1f}")
    c = Console(highlight=False, soft_wrap=True)
    c.print(t)
    n_inv = sum(p["invocations"] for p in points)
    c.print(f"simulated {n_inv:,} invocations in {wall_s:.2f} s; results: {out_dir}/ (points.csv, summary.json)",
            markup=False)


@faas_app.command("strategies")
def strategies_cmd() -> None:
    """List the strategies and their arguments, the pool's and the simulator's (from their declarations)."""

    for name in STRATEGIES:
        typer.echo(f"{name}\n{render_args(strategy_args(name))}\n")
    typer.echo(f"pool (--max-per-function, --max-total, --idle-lifetime-s)\n{render_args(POOL_ARGS)}\n")
    typer.echo(f"simulator\n{render_args(SIM_ARGS)}")
    sys.stdout.flush()
