"""``tailgate sched``: request scheduling (Perséphone's DARC and its rivals), simulated and live.

Manual
------
::

    tailgate sched sim --workload disp2 --policy darc,cfcfs,dfcfs,ts --workers 14 \\
                       --load 0.05:1.0:0.05 [--requests N] [--seed S] [--overhead-ns NS] \\
                       [--slowdown-target X] [--param POLICY.KEY=VALUE ...] [--jobs J] [--out DIR]
    tailgate sched sim --workload disp2 --policy darc --load 0.8 --json
    tailgate sched policies          (each policy's parameters)
    tailgate sched workloads         (the named workloads: types, service times, shares)
    tailgate sched report [--out DIR] [--quick] [--no-live] [--live-runs N] [--no-reuse]
    tailgate sched serve --policy darc --workload disp2 --workers 4 --port 9100 [--kind spin|sleep|rocksdb]
                         [--max-queue-delay-us US | TYPE=US,...] [--duration S] [--json]
    tailgate sched load --workload disp2 --load 0.5 --workers 4 --port 9100 [--duration S] [--csv FILE] [--force]

``serve`` sheds a request that has waited in its queue longer than ``--max-queue-delay-us``
(answered as dropped, counted as ``shed``): default ``auto``, 20 × the longest mean run time per
type received, at least 1 s; a number of µs for every type, ``TYPE=US,...`` per type, or 0 for
no limit. Whatever stops it (Ctrl-C, SIGTERM, ``--duration``), its final counters show
``accepted = completed + dropped + abandoned``; a worker that dies is restarted (said on the
console) and the request it held counted abandoned.

``load`` first asks the server for its configuration (a hello) and refuses, in one line (exit
2), a ``--workload``, ``--workers`` or run scale that differ from the server's, unless
``--force``; a server that does not answer the hello (not tailgate's) is loaded unchecked. With
no answer at all (no server at ``--host:--port``) it fails with one line ``no answer from
HOST:PORT`` (exit 2) (:mod:`tailgate.dispatch.live.loadgen`).

A sweep runs its points in parallel (one process per core) with a progress bar, and writes
``points.csv``, ``summary.json``, ``slowdown.png`` and ``types.png`` into ``--out`` (default
``results/sched-WORKLOAD-YYYYmmdd-HHMMSS``), then prints the highest load each policy sustains
with a p99.9 slowdown under the target. ``--json`` prints the summaries instead (one object for
one point, else a list), DARC's reservation table included. ``--workload`` takes a name
(``disp2 sbim2 disp3 tpcc rocksdb``) or a YAML file. ``--policy`` is a comma-separated list
without empty or repeated names; ``--jobs`` is at least 1.

``report`` writes ``persephone.md`` and ``persephone/`` into ``--out`` (default
``results/sched-report-YYYYmmdd-HHMMSS``; ``--out docs/`` updates the committed report), then
prints where, the date and machine, and which simulations it reused from an earlier run in that
same directory (:mod:`tailgate.bench.sched_report`). Its live part runs ``--live-runs`` times
(default 3), and the report gives the median and range over them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

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

from tailgate.bench.provenance import describe, report_dir
from tailgate.bench.sched_report import make_report
from tailgate.cli.errors import call_or_fail, fail
from tailgate.cli.params import parse_params
from tailgate.core.args import render_args
from tailgate.core.errors import ArgError, TailgateError
from tailgate.dispatch.live.loadgen import LoadConfig
from tailgate.dispatch.live.loadgen import load as run_client
from tailgate.dispatch.live.process import serve
from tailgate.dispatch.policy import POLICIES, bind_policy_params, policy_args
from tailgate.dispatch.sweep import parse_loads, sustainable, sweep, write_results
from tailgate.dispatch.workloads import WORKLOADS, get_workload

sched_app = typer.Typer(no_args_is_help=True, help="Schedule typed requests: simulate policies, serve, load.")


def parse_policies(text: str) -> list[str]:
    """``--policy darc,cfcfs`` → ``["darc", "cfcfs"]``; an empty or repeated name is an error."""

    names = [p.strip().lower() for p in text.split(",")]
    if not any(names):
        raise ArgError(f"--policy {text!r}: give at least one policy, e.g. --policy darc,cfcfs")
    for k, name in enumerate(names):
        if not name:
            raise ArgError(f"--policy {text!r}: policy {k + 1} of {len(names)} is empty (a stray comma?)")
        if name in names[:k]:
            raise ArgError(f"--policy {text!r}: {name!r} is named twice")
    return names


def parse_queue_delay(text: str):
    """``--max-queue-delay-us``: ``auto`` → None, ``US`` → a number, ``TYPE=US,...`` → a dict."""

    text = text.strip()
    if text.lower() == "auto":
        return None
    if "=" not in text:
        try:
            return float(text)
        except ValueError:
            raise ArgError(f"--max-queue-delay-us {text!r}: expected auto, a number of µs, or TYPE=US,...") from None
    out = {}
    for item in text.split(","):
        name, sep, raw = item.partition("=")
        try:
            out[name.strip()] = float(raw)
        except ValueError:
            raise ArgError(f"--max-queue-delay-us {text!r}: {item!r} is not TYPE=US") from None
        if not sep or not name.strip():
            raise ArgError(f"--max-queue-delay-us {text!r}: {item!r} is not TYPE=US")
    return out


def check_jobs(jobs: int | None) -> None:
    """``--jobs`` is a number of processes: None (every core) or at least 1."""

    if jobs is not None and jobs < 1:
        raise ArgError(f"--jobs {jobs}: must be >= 1 (leave it out to use every core)")


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

    try:
        wl = get_workload(workload)
        pols = parse_policies(policy)
        check_jobs(jobs)
        loads = parse_loads(load)
        if requests < 100:
            raise ArgError(f"--requests {requests}: need at least 100 requests per point")
        if overhead_ns < 0:
            raise ArgError(f"--overhead-ns {overhead_ns}: must be >= 0")
        if not slowdown_target > 0:
            raise ArgError(f"--slowdown-target {slowdown_target:g}: must be > 0")
        params = parse_params(param, pols, policy_args, "policy")
        n_points = len(pols) * len(loads)
        console = Console(stderr=True, highlight=False)
        note = _profiling_note(params.get("darc"), requests) if "darc" in pols else None
        if note:
            console.print(f"note: {note}", markup=False)
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
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(points[0] if len(points) == 1 else points, indent=1))
        return
    _print_table(points, sustainable(points, slowdown_target), slowdown_target)
    Console(highlight=False).print(f"results: {out_dir}/ (points.csv, summary.json, slowdown.png, types.png)")


def _profiling_note(darc_params: dict | None, n_requests: int) -> str | None:
    """Warn when DARC's c-FCFS profiling phase reaches past the 10 % warm-up into the measurement."""

    p = bind_policy_params("darc", darc_params or {})
    warmup = n_requests // 10
    if p["profile"] != "online" or p["n_resas"] is not None or p["resa_samples"] <= warmup:
        return None
    return (f"darc runs c-FCFS for its first {p['resa_samples']:,} completions while it profiles, beyond the "
            f"{warmup:,}-request warm-up, so its numbers include that phase; use more --requests, "
            "--param darc.resa_samples=N or --param darc.profile=oracle")


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
    """List the scheduling policies and their arguments (from their declarations)."""

    for name in POLICIES:
        typer.echo(f"{name}\n{render_args(policy_args(name))}\n")


@sched_app.command("workloads")
def workloads_cmd() -> None:
    """List the named workloads: each request type's mean service time and share, and the mean S."""

    t = Table(box=None, pad_edge=False, header_style="bold")
    for c in ("workload", "types (mean service time, share)", "S µs"):
        t.add_column(c, justify="right" if c == "S µs" else "left")
    for name, wl in WORKLOADS.items():
        types = ", ".join(f"{ty.name} {ty.service_ns / 1e3:g} µs {ty.ratio * 100:g} %" for ty in wl.types)
        t.add_row(name, types, f"{wl.mean_service_ns / 1e3:g}")
    c = Console(highlight=False)
    c.print(t)
    c.print("--workload NAME, or --workload FILE.yaml (format: tailgate.dispatch.workloads)")


@sched_app.command("report")
def report_cmd(
    out: Optional[Path] = typer.Option(None, "--out",
                                       help="directory for persephone.md and persephone/ (default: "
                                            "results/sched-report-YYYYmmdd-HHMMSS; --out docs/ updates the "
                                            "committed report)"),
    quick: bool = typer.Option(False, "--quick", help="small runs (a minute; noisy numbers)"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="parallel processes (default: every core)"),
    live: bool = typer.Option(True, "--live/--no-live", help="include the live run on this machine"),
    slowdown_target: float = typer.Option(10.0, "--slowdown-target", help="p99.9 slowdown a load must meet"),
    reuse: bool = typer.Option(True, "--reuse/--no-reuse",
                               help="keep the simulated points of an identical earlier run in the same --out "
                                    "directory (the report says which)"),
    live_runs: int = typer.Option(3, "--live-runs", help="how many times the live run is made (the report gives "
                                                         "the median and range over them)"),
) -> None:
    """Run every experiment of the Perséphone reproduction and write persephone.md into a results directory."""

    console = Console(stderr=True, highlight=False)

    def go():
        check_jobs(jobs)
        if not slowdown_target > 0:
            raise ArgError(f"--slowdown-target {slowdown_target:g}: must be > 0")
        if out is not None and out.exists() and not out.is_dir():
            raise ArgError(f"--out {out}: exists and is not a directory")
        if live_runs < 1:
            raise ArgError(f"--live-runs {live_runs}: must be at least 1 (or --no-live)")
        return make_report(out if out is not None else report_dir("sched-report"), quick=quick, jobs=jobs,
                           slowdown_target=slowdown_target, live=live,
                           say=lambda m: console.print(m, markup=False), reuse=reuse, live_runs=live_runs)

    report = call_or_fail(f"sched report into {out or 'results/'}", go, as_json=False)
    c = Console(highlight=False, soft_wrap=True)
    c.print(f"report: {report.path} (figures and data: {report.path.parent / 'persephone'}/)", markup=False)
    c.print(f"ran: {describe(report.ran)}", markup=False)
    for line in report.reuse_lines():
        c.print(line, markup=False)


@sched_app.command("serve")
def serve_cmd(
    policy: str = typer.Option("darc", "--policy", "-p", help="scheduling policy"),
    workload: str = typer.Option("disp2", "--workload", "-w", help="the request types to expect (name or YAML)"),
    workers: int = typer.Option(4, "--workers", "-n", help="worker processes"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(9100, "--port", help="UDP port (0: any free port)"),
    kind: str = typer.Option("spin", "--kind", help="worker kind: spin, sleep or rocksdb"),
    duration_s: Optional[float] = typer.Option(None, "--duration", help="stop after this many seconds"),
    run_scale: float = typer.Option(1.0, "--run-scale", help="multiply every request's run time"),
    pin: bool = typer.Option(False, "--pin", help="pin the dispatcher to CPU 0, workers to the others"),
    param: Optional[list[str]] = typer.Option(None, "--param", help="policy parameter KEY=VALUE (repeatable)"),
    max_queue_delay_us: str = typer.Option(
        "auto", "--max-queue-delay-us",
        help="shed a request that waited longer than this in its queue (µs): a number for every type, "
             "TYPE=US,... per type, 0 for no limit, auto: 20 x the longest mean run time per type, at least 1 s"),
    as_json: bool = typer.Option(False, "--json", help="print the final stats as JSON"),
) -> None:
    """Serve typed requests over UDP (PSP wire format) with a dispatcher and worker processes.

    Requests that waited longer than --max-queue-delay-us are shed (answered as dropped). The final
    counters show accepted = completed + dropped + abandoned whatever stopped the server; a worker
    that dies is restarted."""

    def go() -> dict:
        params = parse_params(param, [policy.lower()], policy_args, "policy").get(policy.lower(), {}) if param else {}
        return serve(policy.lower(), get_workload(workload), workers, host=host, port=port, worker_kind=kind,
                     duration_s=duration_s, run_scale=run_scale, policy_params=params, pin=pin, quiet=as_json,
                     max_queue_delay_us=parse_queue_delay(max_queue_delay_us))

    call_or_fail(f"serve on {host}:{port}", go, as_json)


@sched_app.command("load")
def load_cmd(
    workload: str = typer.Option("disp2", "--workload", "-w", help="workload name or YAML file"),
    load: float = typer.Option(0.5, "--load", "-l", help="offered load (fraction of the workers' capacity)"),
    workers: int = typer.Option(4, "--workers", "-n",
                                help="the server's workers, as it was started with (sets the rate with --load)"),
    host: str = typer.Option("127.0.0.1", "--host", help="server address"),
    port: int = typer.Option(9100, "--port", help="server UDP port"),
    duration_s: float = typer.Option(5.0, "--duration", help="seconds of sending"),
    seed: int = typer.Option(1, "--seed", help="random seed of the schedule"),
    rate_rps: Optional[float] = typer.Option(None, "--rate", help="requests/s (instead of --load)"),
    run_scale: float = typer.Option(1.0, "--run-scale", help="multiply every request's run time"),
    zero_work: bool = typer.Option(False, "--zero-work", help="requests that ask for no work (dispatch benchmark)"),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="write every request's record here"),
    force: bool = typer.Option(False, "--force",
                               help="load the server even if its workload, workers or run scale differ from this "
                                    "client's"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Open-loop Poisson client: send on schedule, record every answer, report latency and send lag.

    It first asks the server for its configuration and refuses one whose workload, workers or run
    scale differ from this client's (exit 2) unless --force; a server that does not answer that
    hello is loaded unchecked. Nothing answered at all is an error (no answer from HOST:PORT, exit 2)."""

    def go() -> dict:
        # --load is a fraction of what the workers can do with the run times as run (the client
        # divides the rate by --run-scale).
        cfg = LoadConfig(get_workload(workload), load, workers, host=host, port=port, duration_s=duration_s,
                         seed=seed, rate_rps=rate_rps, run_scale=run_scale, zero_work=zero_work,
                         csv_path=str(csv_path) if csv_path else None, force=force)
        return run_client(cfg, quiet=as_json)

    call_or_fail(f"load against {host}:{port}", go, as_json)

