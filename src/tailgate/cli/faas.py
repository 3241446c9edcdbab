"""``tailgate faas``: function batching (FaaSBatch and its baselines), simulated.

Manual
------
::

    tailgate faas sim [--strategy faasbatch,vanilla,kraken,sfs,faasbatch-slo] [--interval 0.01,0.05,0.2,0.5]
                      [--trace gen|FILE] [--kind cpu|io] [--invocations N] [--functions N] [--minutes M]
                      [--window reference] [--app APP] [--profile FILE.json] [--cores N] [--ps-passes K] [--io-thread-cores C]
                      [--max-per-function N] [--max-total N] [--idle-lifetime-s S]
                      [--param STRATEGY.KEY=VALUE ...] [--seed S] [--per-invocation] [--out DIR] [--json]
    tailgate faas profile [--manifest FILE] [--repeats N] [--fib-n 20,30,34,35] [--io-function s3io]
                          [--size-bytes B] [--cpu-sandbox process|bwrap|docker] [--out DIR]
    tailgate faas report [--out DIR] [--live/--no-live] [--quick]
    tailgate faas strategies         (each strategy's arguments, the pool's and the simulator's)
    tailgate faas serve --manifest FILE [--strategy S] [--dispatch-interval-s X] [--sandbox process|bwrap|docker]
                        [--port P] [--duration S] [--param KEY=VALUE ...] [--s3 none|local]
                        [--reuse/--no-reuse] [--out DIR]
    tailgate faas serve --manifest FILE --strategy kraken --calibrate-from DIR [--param predictor=perfect|ewma] ...
    tailgate faas load [--host H] [--port P] [--trace gen|FILE | --rate R --duration-s S] [--kind cpu|io]
                       [--function NAME,...] [--event JSON] [--speed X] [--max-invocations N]
                       [--timeout-s S] [--out DIR] [--json]
    tailgate faas overhead [--rate 2000] [--duration-s 30] [--interval 0.2] [--out DIR] [--json]

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

``serve`` runs the live gateway (:mod:`tailgate.faas.live.gateway`: ``POST /invoke/{function}``,
``GET /functions``, ``GET /metrics``) over the manifest's functions (:mod:`tailgate.faas.live.registry`)
in sandboxes of the chosen kind (:mod:`tailgate.faas.live.sandbox`) until SIGINT/SIGTERM or
``--duration``, then writes ``invocations.csv``, ``batches.csv`` (one row per dispatch: its tick,
invocations, sandboxes planned and got) and ``summary.json`` into ``--out`` (default
``results/faas-serve-YYYYmmdd-HHMMSS``). ``--s3 local`` starts a local S3 server
(:mod:`tailgate.faas.io.s3server`) before the gateway and stops it after, hands its endpoint and
test credentials to every sandbox (``S3_ENDPOINT_URL``, ``AWS_*``) and keeps the sandboxes in the
host's network namespace so they reach it; the manifest's ``s3io`` function then does real put/get.
``--reuse`` turns the boto3 client-reuse hook (:mod:`tailgate.faas.io.reuse`, LRU of 10) on inside
the ``io`` sandboxes; by default it is on for ``faasbatch`` and ``faasbatch-slo`` and off for
``vanilla``, ``kraken`` and ``sfs``, as in the paper (its baselines build a client per invocation).

``--strategy kraken`` is calibrated from a live Vanilla run: ``--calibrate-from DIR`` names the
``--out`` of ``tailgate faas serve --strategy vanilla`` over the same functions (matched by name;
:mod:`tailgate.faas.live.calibrate`). Per function its SLO is the ``slo_quantile`` (0.98) of
Vanilla's schedule + cold start + exec over the completed invocations, its batch size ⌊SLO / mean
exec⌋, and each dispatch plans ⌈predicted load / batch size⌉ sandboxes that run their share
serially. ``--param predictor=perfect`` (default) replays Vanilla's logged loads (its
``batches.csv``) by position: the k-th dispatch of a function under Kraken is predicted to carry
the k-th load Vanilla logged for it (then, past the log's end, its own size), whatever its tick —
when a replay's ticks drift from Vanilla's, that positional replay is what "perfect" means live.
``--param predictor=ewma`` predicts online and needs only the SLO and mean exec. The start-up line
and ``summary.json`` (``strategy.predictor``, ``strategy.calibrated_from``) say which predictor ran
and where the calibration came from. Without ``--calibrate-from`` Kraken is refused; a run
directory that is missing a file, is not a vanilla run, lacks a completed invocation of a served
function or holds a malformed row is refused in one line naming the file (and line).

``profile`` measures this machine's ``process`` sandboxes (:mod:`tailgate.faas.live.profile`):
cold start (create → first reply) of CPU and I/O sandboxes, exec of ``fib(n)`` at each ``--fib-n``,
of the I/O function (real put/get against a local S3 server it starts) built and cached, of
``s3construct`` and ``noop``, ``--repeats`` times each, and writes ``profile.json`` (the
simulator's format: ``tailgate faas sim --profile DIR/profile.json``) and ``samples.json`` into
``--out`` (default ``results/faas-profile-YYYYmmdd-HHMMSS``); it prints the medians (ms, MB).
``--cpu-sandbox bwrap|docker`` runs the CPU part (cold start, fib, capacity) in sandboxes of that
kind (the I/O part stays in ``process`` sandboxes); with ``docker`` it uses the daemon that
answers or starts a private one for the measurement and stops it after
(:func:`tailgate.faas.live.docker.daemon`), saying so on stderr.

``report`` writes FaaSBatch's reproduction, ``faasbatch.md`` and ``faasbatch/``
(:mod:`tailgate.bench.faas_report`), into ``--out`` (default ``results/faasbatch-YYYYmmdd-HHMMSS``;
``--out docs/`` for the committed one): every strategy × dispatch interval of the paper's experiment
simulated, beside the artifact's table, and with ``--live`` (default) traces of the reference's
shape replayed through the live gateway (``--s3 local``) at di = 0.2 s — I/O 400 invocations over
2 minutes, CPU 200 over 1 minute — with vanilla, kraken (perfect predictor, ``--calibrate-from``
the vanilla run), faasbatch, sfs and faasbatch-slo, each compared with the simulator on the same
trace; the issue's live criteria computed from them (FaaSBatch's p98 against each baseline,
sandboxes, memory per invocation; the latency breakdown under any not met); and the gateway's
overhead (``overhead``'s run: a no-op at 2,000/s for 30 s). ``--quick`` is a small run for tests
(I/O only, a few invocations, a tiny overhead run).

``overhead`` measures the gateway's own overhead (:mod:`tailgate.bench.faas_overhead`): it starts
``tailgate faas serve --strategy faasbatch`` with one no-op function at ``--interval`` (the dispatch
interval, default 0.2 s), sends it Poisson arrivals at ``--rate`` invocations/s (default 2000) for
``--duration-s`` (default 30) in open loop, stops it and prints whether the issue's bound holds:
overhead (client latency − exec) at p50 within the interval + 2 ms, and nothing lost (every
invocation sent was answered, and the gateway accepted and accounted each one), with the p98, the
client's send lag and its verdict (a client that lagged measured a burstier load: said, not
hidden) and the achieved rate. It writes ``overhead.json``, ``manifest.yaml``, ``serve/`` and
``load/`` into ``--out`` (default ``results/faas-overhead-YYYYmmdd-HHMMSS``); ``--json`` prints
``overhead.json`` instead. Exit status 0 whether or not the bound holds; a bad argument, or a
gateway that does not start, is one line ``error: ...`` (exit 2).

``load`` replays a trace (the same ``--trace``/``--window`` choices as ``sim``, or ``--rate R``:
Poisson arrivals at R invocations/s for ``--duration-s``, default 10) against
``http://HOST:PORT/invoke/{function}`` in open loop (:mod:`tailgate.faas.io.load`): trace function
k goes to the k-th of ``--function`` (modulo), each event is ``{"n": input_n}`` plus ``--event``.
It writes ``invocations.csv`` and ``summary.json`` into ``--out`` (default
``results/faas-load-YYYYmmdd-HHMMSS``) and prints per function the client's and the gateway's
latencies (p50/p98) and its own send lag; ``--json`` prints a list with one object holding the
fields of ``sim --json`` (``strategy``, ``interval_s`` and ``sandboxes`` from the gateway's
``/metrics``). Nothing listening at HOST:PORT is one line ``error: no answer from HOST:PORT``
(exit 2).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from tailgate.bench.faas_overhead import describe as describe_overhead
from tailgate.bench.faas_overhead import run_overhead
from tailgate.bench.faas_report import CPU_SANDBOXES, LIVE_RUNS, run_report
from tailgate.bench.provenance import report_dir
from tailgate.cli.errors import call_or_fail, fail
from tailgate.cli.params import parse_params, parse_value
from tailgate.core.args import render_args
from tailgate.core.errors import ArgError, TailgateError
from tailgate.faas.live.calibrate import calibrate_from_run
from tailgate.faas.live.docker import daemon as docker_daemon
from tailgate.faas.live.gateway import Gateway, serve
from tailgate.faas.live.profile import measure, write_profile
from tailgate.faas.live.registry import load_manifest
from tailgate.faas.live.sandbox import SANDBOXES
from tailgate.faas.io.load import LoadConfig, NoAnswer, poisson_trace, replay
from tailgate.faas.io.load import write_results as write_load_results
from tailgate.faas.io.s3server import S3Server
from tailgate.faas.sim import SIM_ARGS, run_strategies, write_results
from tailgate.faas.strategies import POOL_ARGS, STRATEGIES, Kraken, Pool, make_strategy, strategy_args
from tailgate.faas.trace import KINDS, generate, load_reference_window, load_trace

S3_MODES = ("none", "local")
#: Strategies whose sandboxes reuse constructed clients by default (the paper's FaaSBatch; not its baselines).
REUSE_STRATEGIES = ("faasbatch", "faasbatch-slo")

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
    ps_passes: int = typer.Option(3, "--ps-passes", help="passes of the processor-sharing fixed point (0: each job's "
                                                          "slowdown estimated when it starts)"),
    io_thread_cores: float = typer.Option(1.0, "--io-thread-cores", help="most cores an I/O sandbox's threads use "
                                          "together (one interpreter lock; 0: no cap)"),
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
        params = parse_params(param, names, strategy_args, "strategy")
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
                                 pool_args=pool_args, params=params, cores=cores, seed=seed, ps_passes=ps_passes,
                                 io_thread_cores=io_thread_cores)
        wall_s = time.perf_counter() - t0
        config = {"trace": tr.source, "kind": kind, "invocations": len(tr), "functions": tr.n_functions,
                  "bad_rows": tr.bad_rows, "strategies": names, "intervals_s": intervals, "params": params,
                  "pool": pool_args, "cores": cores, "ps_passes": ps_passes,
                  "io_thread_cores": io_thread_cores, "seed": seed, "profile": str(profile) if profile else "reference"}
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
    hand = any(p["answer_p98_ms"] > 0 for p in points)  # the profile has a hand-over
    cols = ("strategy", "interval s", "sandboxes", "e2e p50 ms", "e2e p98 ms", "sched p98", "cold p98",
            "queue p98", "exec p98", *(("answer p98",) if hand else ()), "MB/inv")
    for c in cols:
        t.add_column(c, justify="left" if c == "strategy" else "right", no_wrap=c == "strategy")
    for p in points:
        mem = p["mem_per_invocation_mb"]
        name = p["strategy"] + (f" ({p['predictor']})" if "predictor" in p else "")
        t.add_row(name, f"{p['interval_s']:g}", str(p["sandboxes"]), f"{p['e2e_p50_ms']:,.0f}",
                  f"{p['e2e_p98_ms']:,.0f}", f"{p['schedule_p98_ms']:,.0f}", f"{p['cold_start_p98_ms']:,.0f}",
                  f"{p['queue_p98_ms']:,.0f}", f"{p['exec_p98_ms']:,.0f}",
                  *((f"{p['answer_p98_ms']:,.1f}",) if hand else ()), "-" if mem is None else f"{mem:.1f}")
    c = Console(highlight=False, soft_wrap=True)
    c.print(t)
    n_inv = sum(p["invocations"] for p in points)
    c.print(f"simulated {n_inv:,} invocations in {wall_s:.2f} s; results: {out_dir}/ (points.csv, summary.json)",
            markup=False)


@faas_app.command("serve")
def serve_cmd(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="the functions' YAML manifest"),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s",
                                           help="faasbatch, vanilla, kraken (with --calibrate-from), sfs or "
                                                "faasbatch-slo (default: the manifest's, else faasbatch)"),
    calibrate_from: Optional[Path] = typer.Option(None, "--calibrate-from",
                                                  help="kraken: the --out of a `faas serve --strategy vanilla` run "
                                                       "of the same functions (SLOs, mean exec, logged loads)"),
    dispatch_interval_s: Optional[float] = typer.Option(None, "--dispatch-interval-s", "--interval", "-i",
                                                        help="dispatch tick in s (default: the manifest's, else 0.2)"),
    sandbox: str = typer.Option("process", "--sandbox", help="process, bwrap or docker"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8080, "--port", "-p", help="TCP port (0: any free one)"),
    duration: Optional[float] = typer.Option(None, "--duration", help="stop after this many s (default: at SIGINT/SIGTERM)"),
    param: Optional[list[str]] = typer.Option(None, "--param", help="strategy argument KEY=VALUE (repeatable)"),
    max_body_bytes: int = typer.Option(1 << 20, "--max-body-bytes", help="larger request bodies get 413"),
    grace_s: float = typer.Option(10.0, "--grace-s", help="at stop, time in-flight invocations get to finish (s)"),
    out: Optional[Path] = typer.Option(None, "--out", help="results directory (invocations.csv, batches.csv, "
                                                           "summary.json)"),
    s3: str = typer.Option("none", "--s3", help="local: start a local S3 server for the gateway's lifetime; none"),
    reuse: Optional[bool] = typer.Option(None, "--reuse/--no-reuse",
                                         help="boto3 client reuse in io sandboxes (default: on for faasbatch and "
                                              "faasbatch-slo, off for the baselines, as in the paper)"),
) -> None:
    """Serve the manifest's functions over HTTP, batching invocations into sandboxes (tailgate.faas.live)."""

    try:
        man = load_manifest(manifest)
        name = (strategy or man.strategy.get("name") or "faasbatch").lower()
        if name == "kraken" and calibrate_from is None:
            raise ArgError("--strategy kraken: needs a calibration from a Vanilla run: --calibrate-from DIR, the "
                           "--out of `tailgate faas serve --strategy vanilla` over the same functions")
        if calibrate_from is not None and name != "kraken":
            raise ArgError(f"--calibrate-from {calibrate_from}: only for --strategy kraken (the strategy is {name})")
        sparams = {k: v for k, v in man.strategy.items() if k != "name"} if name == man.strategy.get("name") else {}
        for item in param or []:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise ArgError(f"--param {item!r}: expected KEY=VALUE")
            sparams[key] = parse_value(raw)
        if dispatch_interval_s is not None:
            sparams["dispatch_interval_s"] = dispatch_interval_s
        strat = make_strategy(name, **sparams)
        kraken_text = ""
        if isinstance(strat, Kraken):
            predictor = strat.params["predictor"]
            cal = calibrate_from_run(calibrate_from, {s.name: s.index for s in man.functions.values()},
                                     quantile=strat.params["slo_quantile"], need_loads=predictor == "perfect")
            strat.calibrate(*cal.args(), source=cal.source)
            kraken_text = f", predictor {predictor}, calibrated from {cal.source}"
            van_di = cal.interval_s
            if predictor == "perfect" and van_di is not None and van_di != strat.dispatch_interval_s:
                typer.echo(f"warning: --calibrate-from {cal.source}: Vanilla ran at dispatch interval "
                           f"{cal.interval_s:g} s, Kraken serves at {strat.dispatch_interval_s:g} s (its logged "
                           f"loads are per Vanilla's tick)", err=True)
        if sandbox not in SANDBOXES:
            raise ArgError(f"--sandbox {sandbox!r}: must be one of {', '.join(SANDBOXES)}")
        if not 0 <= port <= 65535:
            raise ArgError(f"--port {port}: must be in 0..65535")
        if duration is not None and not duration > 0:
            raise ArgError(f"--duration {duration:g}: must be > 0 s")
        if s3 not in S3_MODES:
            raise ArgError(f"--s3 {s3!r}: must be one of {', '.join(S3_MODES)}")
        use_reuse = (name in REUSE_STRATEGIES) if reuse is None else reuse
        s3server = S3Server() if s3 == "local" else None
        options = {"reuse": {} if use_reuse else None, "keep_net": s3server is not None}
        out_dir = out or Path("results") / f"faas-serve-{time.strftime('%Y%m%d-%H%M%S')}"

        async def main() -> dict:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)

            def ready(p: int) -> None:
                s3_text = f", s3 {s3server.endpoint_url}" if s3server is not None else ""
                typer.echo(f"faas serve: listening on http://{host}:{p} (strategy {name}, sandbox {sandbox}, "
                           f"dispatch interval {strat.dispatch_interval_s:g} s{kraken_text}, reuse "
                           f"{'on' if use_reuse else 'off'}{s3_text})", err=True)
                sys.stderr.flush()

            return await serve(gw, host, port, duration, stop, ready)

        try:
            if s3server is not None:
                s3server.start()
                options["env"] = s3server.endpoint_env()
            gw = Gateway(man, strat, sandbox=sandbox, pool=Pool(**man.pool), max_body_bytes=max_body_bytes,
                         grace_s=grace_s, backend_options=options)
            summary = asyncio.run(main())
        finally:
            if s3server is not None:
                s3server.stop()
        gw.write(out_dir)
    except TailgateError as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"faas serve: {e.strerror or e} (port {port}?)") from None
    typer.echo(f"results: {out_dir}/ (invocations.csv, batches.csv, summary.json)", err=True)
    if summary["in_flight"]:
        raise typer.Exit(1)


@faas_app.command("load")
def load_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="the gateway's address"),
    port: int = typer.Option(8080, "--port", "-p", help="the gateway's port"),
    trace: str = typer.Option("gen", "--trace", "-t", help="gen (an Azure-like trace) or an Azure 2019/2021 file"),
    kind: str = typer.Option("cpu", "--kind", help="cpu or io functions (a generated trace's)"),
    invocations: Optional[int] = typer.Option(None, "--invocations", "-n",
                                              help="invocations of a generated trace (default 800 cpu, 400 io)"),
    functions: Optional[int] = typer.Option(None, "--functions", help="functions of a generated trace (7 cpu, 5 io)"),
    minutes: float = typer.Option(5.0, "--minutes", help="length of a generated trace in minutes"),
    window: Optional[str] = typer.Option(None, "--window", help="'reference': the reference's 5 minutes of a 2021 file"),
    app: Optional[str] = typer.Option(None, "--app", help="the app of --window reference (default: the busiest)"),
    rate: Optional[float] = typer.Option(None, "--rate", help="instead of a trace: Poisson arrivals at this many invocations/s"),
    function: Optional[str] = typer.Option(None, "--function", "-f",
                                           help="gateway function(s), comma-separated: trace function k goes to the "
                                                "k-th modulo their number (default: the trace's names)"),
    event: str = typer.Option("{}", "--event", help="JSON object merged into every event (e.g. '{\"size_bytes\": 65536}')"),
    speed: float = typer.Option(1.0, "--speed", help="time scale of the trace (2: twice as fast)"),
    max_invocations: int = typer.Option(0, "--max-invocations", help="send at most this many (0: all)"),
    duration_s: float = typer.Option(0.0, "--duration-s", help="send only invocations due within (s; 0: all; "
                                                               "with --rate: the length, default 10)"),
    timeout_s: float = typer.Option(30.0, "--timeout-s", help="an invocation unanswered this long is a timeout (s)"),
    connections: int = typer.Option(256, "--connections", help="HTTP connections kept open at most"),
    seed: int = typer.Option(5432, "--seed", help="random seed of a generated trace"),
    out: Optional[Path] = typer.Option(None, "--out", help="results directory (invocations.csv, summary.json)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON (no files unless --out)"),
) -> None:
    """Replay a trace against a gateway's /invoke/{function} in open loop; report latencies and send lag."""

    try:
        if kind not in KINDS:
            raise ArgError(f"--kind {kind!r}: must be one of {', '.join(KINDS)}")
        try:
            extra = json.loads(event)
        except ValueError as e:
            raise ArgError(f"--event {event!r}: not JSON ({e})") from None
        if not isinstance(extra, dict):
            raise ArgError(f"--event {event!r}: must be a JSON object")
        names = [p.strip() for p in function.split(",")] if function is not None else None
        if names is not None and not all(names):
            raise ArgError(f"--function {function!r}: a name is empty (a stray comma?)")
        cfg = LoadConfig(host=host, port=port, functions=names, event=extra, speed=speed,
                         max_invocations=max_invocations, duration_s=0.0 if rate is not None else duration_s,
                         timeout_s=timeout_s, connections=connections)
        if rate is not None:
            tr = poisson_trace(rate, duration_s or 10.0, names=names or ["noop"], kind=kind, seed=seed)
        elif trace == "gen":
            if window is not None:
                raise ArgError("--window: only for a trace file (--trace FILE)")
            n_inv = invocations if invocations is not None else (800 if kind == "cpu" else 400)
            n_fn = functions if functions is not None else (7 if kind == "cpu" else 5)
            tr = generate(invocations=n_inv, kind=kind, functions=n_fn, minutes=minutes, seed=seed)
        else:
            if window not in (None, "reference"):
                raise ArgError(f"--window {window!r}: the one preset is 'reference'")
            tr = (load_reference_window(trace, kind=kind, app=app, seed=seed) if window
                  else load_trace(trace, kind=kind, seed=seed))
        summary, rec = replay(tr, cfg)
        out_dir = None
        if out is not None or not as_json:
            out_dir = out or Path("results") / f"faas-load-{time.strftime('%Y%m%d-%H%M%S')}"
            config = {"target": cfg.address, "trace": tr.source, "kind": kind, "rate_per_s": rate,
                      "functions": names, "event": extra, "speed": speed, "max_invocations": max_invocations,
                      "duration_s": duration_s, "timeout_s": timeout_s, "seed": seed}
            write_load_results(out_dir, summary, rec, config)
    except NoAnswer as e:
        raise fail(str(e)) from None
    except TailgateError as e:
        raise fail(str(e)) from None
    except OSError as e:
        raise fail(f"faas load: {e.strerror or e}") from None
    if as_json:
        typer.echo(json.dumps([summary], indent=1, default=str))
        return
    c = Console(highlight=False, soft_wrap=True)
    c.width = max(c.width, 132)  # the table's eleven columns, also when stdout is not a terminal
    t = Table(box=None, pad_edge=False, header_style="bold", title="latencies in ms (client: as the load client saw them)",
              title_justify="left")
    for col in ("function", "sent", "ok", "client p50", "client p98", "e2e p50", "e2e p98",
                "sched p98", "cold p98", "queue p98", "exec p98"):
        t.add_column(col, justify="left" if col == "function" else "right", no_wrap=col == "function")

    def ms(v) -> str:
        return "-" if v is None else f"{v:.1f}"

    for name, f in [*summary["functions"].items(), ("all", summary)]:
        t.add_row(name, str(f["invocations"]), str(f["ok"]), ms(f["client_p50_ms"]), ms(f["client_p98_ms"]),
                  ms(f["e2e_p50_ms"]), ms(f["e2e_p98_ms"]), ms(f["schedule_p98_ms"]), ms(f["cold_start_p98_ms"]),
                  ms(f["queue_p98_ms"]), ms(f["exec_p98_ms"]))
    c.print(t)
    lag = summary["send_lag_us"]
    c.print(f"sent {summary['invocations'] - summary['unsent']:,} of {summary['invocations']:,} to {cfg.address}: "
            f"ok {summary['ok']:,}, failed {summary['failed']:,}, timeout {summary['timeout']:,}, error "
            f"{summary['error']:,}; send lag p50 {lag['p50'] / 1e3:.3f} ms, p99 {lag['p99'] / 1e3:.3f} ms "
            f"({summary['verdict']}); results: {out_dir}/", markup=False)
    for line in summary["first_errors"][:3]:
        c.print(f"  {line}", markup=False)


@faas_app.command("profile")
def profile_cmd(
    manifest: Path = typer.Option(Path("examples/faas/manifest.yaml"), "--manifest", "-m",
                                  help="the manifest holding the functions profiled"),
    repeats: int = typer.Option(10, "--repeats", "-n", help="samples of every measurement"),
    fib_n: str = typer.Option("20,30,34,35", "--fib-n", help="fib inputs whose exec time is measured, comma-separated"),
    cpu_function: str = typer.Option("fib", "--cpu-function", help="the CPU function (event {'n': N})"),
    io_function: str = typer.Option("s3io", "--io-function", help="the I/O function the io profile is made of"),
    construct_function: str = typer.Option("s3construct", "--construct-function",
                                           help="the client-construction-only function ('' to skip)"),
    noop_function: str = typer.Option("noop", "--noop-function", help="the no-op function ('' to skip)"),
    size_bytes: int = typer.Option(65536, "--size-bytes", help="object size of the I/O function's put and get"),
    cpu_sandbox: str = typer.Option("process", "--cpu-sandbox",
                                    help="the CPU part's sandbox kind: process, bwrap or docker (a daemon is "
                                         "started when none answers)"),
    out: Optional[Path] = typer.Option(None, "--out", help="results directory (profile.json, samples.json)"),
) -> None:
    """Measure this machine's sandboxes (cold start, exec) into a profile for `faas sim --profile`."""

    try:
        ns = []
        for part in fib_n.split(","):
            try:
                ns.append(int(part))
            except ValueError:
                raise ArgError(f"--fib-n {fib_n!r}: {part.strip()!r} is not a whole number") from None
        man = load_manifest(manifest)
        out_dir = out or Path("results") / f"faas-profile-{time.strftime('%Y%m%d-%H%M%S')}"

        def progress(text: str) -> None:
            typer.echo(f"faas profile: {text}", err=True)

        kw = {"progress": progress, "repeats": repeats, "fib_n": tuple(ns), "cpu_function": cpu_function,
              "io_function": io_function, "construct_function": construct_function, "noop_function": noop_function,
              "size_bytes": size_bytes, "cpu_sandbox": cpu_sandbox}
        if cpu_sandbox == "docker":  # the daemon that answers, or one started for the measurement
            with docker_daemon(start=True, say=progress) as env:
                progress(f"cpu part in docker sandboxes, daemon at {env.get('DOCKER_HOST', 'the one that answers')}")
                result = asyncio.run(measure(man, **kw))
        else:
            result = asyncio.run(measure(man, **kw))
        path = write_profile(out_dir, result)
    except TailgateError as e:
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    med = result["profile"]["io"]["measured"]["medians"]
    for key in sorted(med):
        typer.echo(f"{key:<32} {med[key]:10.2f}")
    typer.echo(f"profile: {path} (tailgate faas sim --profile {path})")


@faas_app.command("report")
def report_cmd(
    out: Optional[Path] = typer.Option(None, "--out", help="directory for faasbatch.md and faasbatch/ (default: "
                                                           "results/faasbatch-YYYYmmdd-HHMMSS; docs/ for the committed one)"),
    live: bool = typer.Option(True, "--live/--no-live", help="also replay reduced traces through the live gateway "
                                                              "and compare with the simulator"),
    quick: bool = typer.Option(False, "--quick", help="a small run (for tests): a tenth of the invocations, one interval"),
    live_runs: Optional[int] = typer.Option(None, "--live-runs", help="times each live strategy runs (default 3; "
                                                                       "1 with --quick); live values are their medians"),
    cpu_sandbox: str = typer.Option("auto", "--cpu-sandbox", help="the live CPU part's sandboxes: auto (docker when "
                                                                 "a daemon answers or can be started, else process), "
                                                                 "process, bwrap or docker"),
) -> None:
    """FaaSBatch's reproduction: the paper's experiment simulated beside the artifact's table, and a live check."""

    out_dir = out or report_dir("faasbatch")
    runs = live_runs if live_runs is not None else (1 if quick else LIVE_RUNS)
    if not 1 <= runs <= 20:
        raise fail(f"--live-runs {runs}: give 1 to 20")
    if cpu_sandbox not in CPU_SANDBOXES:
        raise fail(f"--cpu-sandbox {cpu_sandbox!r}: must be one of {', '.join(CPU_SANDBOXES)}")
    words = ["tailgate", "faas", "report"] + ([] if live else ["--no-live"]) + (["--quick"] if quick else [])
    words += (["--live-runs", str(live_runs)] if live_runs is not None else []) + (
        ["--cpu-sandbox", cpu_sandbox] if cpu_sandbox != "auto" else [])
    if out is not None:
        words += ["--out", str(out)]
    if out_dir.exists() and not out_dir.is_dir():
        raise fail(f"--out {out_dir}: exists and is not a directory")

    def say(text: str) -> None:
        typer.echo(f"faas report: {text}", err=True)

    md = call_or_fail(f"faas report into {out_dir}", lambda: run_report(
        out_dir, with_live=live, quick=quick, command=" ".join(words), say=say, overhead=run_overhead,
        live_runs=runs, cpu_sandbox=cpu_sandbox))
    typer.echo(f"wrote: {md} and {md.with_suffix('')}/")


@faas_app.command("overhead")
def overhead_cmd(
    rate: float = typer.Option(2000.0, "--rate", help="no-op invocations per s (Poisson, open loop)"),
    duration_s: float = typer.Option(30.0, "--duration-s", help="how long invocations are sent (s)"),
    interval: float = typer.Option(0.2, "--interval", "--dispatch-interval-s", help="faasbatch's dispatch interval (s)"),
    out: Optional[Path] = typer.Option(None, "--out", help="results directory (default: "
                                                           "results/faas-overhead-YYYYmmdd-HHMMSS)"),
    as_json: bool = typer.Option(False, "--json", help="print overhead.json instead of the summary lines"),
) -> None:
    """The gateway's overhead: a no-op at a fixed rate through faasbatch, p50 against interval + 2 ms, nothing lost."""

    out_dir = out or report_dir("faas-overhead")
    if out_dir.exists() and not out_dir.is_dir():
        raise fail(f"--out {out_dir}: exists and is not a directory")

    def say(text: str) -> None:
        typer.echo(f"faas overhead: {text}", err=True)

    result = call_or_fail(f"faas overhead into {out_dir}",
                          lambda: run_overhead(rate, duration_s, interval, out_dir, say=say), as_json)
    if as_json:
        return
    for line in describe_overhead(result):
        typer.echo(line)
    typer.echo(f"results: {out_dir}/ (overhead.json, serve/, load/)")


@faas_app.command("strategies")
def strategies_cmd() -> None:
    """List the strategies and their arguments, the pool's and the simulator's (from their declarations)."""

    for name in STRATEGIES:
        typer.echo(f"{name}\n{render_args(strategy_args(name))}\n")
    typer.echo(f"pool (--max-per-function, --max-total, --idle-lifetime-s)\n{render_args(POOL_ARGS)}\n")
    typer.echo(f"simulator\n{render_args(SIM_ARGS)}")
    sys.stdout.flush()
