"""The gateway's own overhead: a no-op function at a fixed rate through ``faasbatch``, nothing lost.

Manual
------
``tailgate faas overhead [--rate 2000] [--duration-s 30] [--interval 0.2] [--out DIR] [--json]``
(:func:`run_overhead`) checks issue 14's must-show "a no-op function at 2,000 invocations/s for
30 s (open loop) through ``faasbatch`` adds ≤ dispatch interval + 2 ms at p50 and loses nothing":

1. It writes ``manifest.yaml`` into the results directory: one function, ``noop``
   (``examples/faas/handlers.py:noop``, kind ``io``: it returns its event; the invocations of a batch
   run in threads of one sandbox), and starts ``tailgate faas serve --strategy faasbatch
   --dispatch-interval-s INTERVAL --s3 none`` on a free port as a subprocess
   (:func:`tailgate.bench.faas_report.serve_gateway`).
2. It replays Poisson arrivals at ``rate_per_s`` for ``duration_s``
   (:func:`tailgate.faas.io.load.poisson_trace`) in open loop (:func:`tailgate.faas.io.load.replay`,
   with enough connections for every invocation held over a few dispatch intervals
   (:func:`connections_for`), all opened before the schedule starts, and each invocation timing
   out after :data:`TIMEOUT_S`), then stops the gateway with SIGINT and reads the ``summary.json``
   it writes.
3. **Accounting.** The client's invocations: sent = ok + failed + timeout + error, and unsent (never
   left). The gateway's: accepted = completed + failed + abandoned (+ in flight, 0 after a stop).
   *Nothing lost* when every invocation left and was answered (no timeout, no connection error),
   the gateway accepted exactly the invocations sent and accounted every one, and it completed
   as many as the client got ``ok``.
4. **Overhead** per ``ok`` invocation = the client's latency (request sent → answer read) − the
   ``exec_ms`` the sandbox measured around the handler: the tick wait, the batch's hand-over, the
   sandbox's framing and both HTTP legs. Its p50 and p98 (ms) are set against the bound
   ``interval_s`` + :data:`SLACK_MS`; the must-show holds when the p50 is within the bound and nothing
   was lost. The tick wait alone is uniform over the interval, so the p50 holds about half an
   interval and the p98 nearly a whole one.
5. **The client.** Its send lag (actual − scheduled send, p50/p99 in ms) and its verdict: a client
   that falls behind sends later and in bursts, so a run whose verdict is not ``ok`` measured a
   burstier load than the schedule; ``trustworthy`` says so and the printed line repeats it.
   Achieved rate = invocations sent / the span of their actual sends; answered rate = answers /
   (last answer − first send).

``quick`` (for tests) caps the run at 200 invocations/s for 2 s. It writes ``overhead.json`` (the
returned dict), the gateway's results (``serve/``: ``invocations.csv``, ``summary.json``) and the
client's (``load/``) into ``out_dir``. Progress goes to ``say``. A bad argument is one
:class:`tailgate.core.errors.ArgError` line; a gateway that does not start, or a load that gets
no answer at all, one :class:`tailgate.bench.faas_report.ReportError` line.

Arguments:

{args}
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tailgate.bench.faas_report import (
    EXAMPLES,
    ReportError,
    serve_gateway,
    stop_gateway,
)
from tailgate.core.args import Arg, bind_args, render_args
from tailgate.faas.io.load import (
    STATUSES,
    LoadConfig,
    NoAnswer,
    poisson_trace,
    replay,
    write_results,
)
from tailgate.measure.percentile import percentiles

#: What the overhead may exceed the dispatch interval by at p50 (the issue's bound).
SLACK_MS = 2.0
#: An invocation unanswered this long after its send is a timeout (the noop's own limit in the manifest).
TIMEOUT_S = 10.0
FUNCTION = "noop"
QUICK_RATE_PER_S = 200.0
QUICK_DURATION_S = 2.0

OVERHEAD_ARGS = (
    Arg("rate_per_s", float, 2000.0, unit="invocations/s", min=1e-3, help="Poisson arrival rate of the no-op"),
    Arg("duration_s", float, 30.0, unit="s", min=1e-3, help="how long invocations are sent"),
    Arg("interval_s", float, 0.2, unit="s", min=1e-4, help="faasbatch's dispatch interval"),
)
__doc__ = __doc__.replace("{args}", render_args(OVERHEAD_ARGS))


def write_manifest(path: Path, timeout_s: float = TIMEOUT_S) -> None:
    """A manifest holding only the ``noop`` function (an ``io`` function: threads of one sandbox)."""
    path.write_text("\n".join([
        f"path: [{EXAMPLES}]",
        "pool: {max_per_function: 50, max_total: 200, idle_lifetime_s: 600}",
        "functions:",
        f"  - {{name: {FUNCTION}, handler: 'handlers:noop', kind: io, "
        f"limits: {{memory_mb: 256, cpu_share: 1.0, timeout_s: {timeout_s:g}}}}}",
    ]) + "\n")


def connections_for(rate_per_s: float, interval_s: float) -> int:
    """Connections enough for every invocation in flight: each is held about a dispatch interval
    (three times that, and 0.3 s, for a gateway that falls behind), so a send does not wait for a
    free connection."""
    return int(math.ceil(rate_per_s * (3 * interval_s + 0.3))) + 64


def _pcts(v: np.ndarray, qs: tuple[int, ...]) -> dict:
    v = v[np.isfinite(v)]
    if not len(v):
        return {f"p{q}": None for q in qs}
    return {f"p{q}": float(x) for q, x in zip(qs, percentiles(v, list(qs)))}


def analyse(load: dict, rec, gateway: dict, interval_s: float) -> dict:
    """The overhead result (manual, points 3-5) from the client's summary and records and the
    gateway's ``summary.json``."""
    sent = load["invocations"] - load["unsent"]
    answered = load["ok"] + load["failed"]
    g = {k: int(gateway.get(k, 0) or 0) for k in ("accepted", "completed", "failed", "abandoned", "in_flight")}
    g_counted = g["completed"] + g["failed"] + g["abandoned"]
    problems = []
    if load["unsent"]:
        problems.append(f"{load['unsent']} invocations never left the client")
    if load["timeout"] or load["error"]:
        problems.append(f"{load['timeout']} timed out and {load['error']} hit a connection error at the client")
    if g["accepted"] != sent:
        problems.append(f"the gateway accepted {g['accepted']} of {sent} sent")
    if g_counted + g["in_flight"] != g["accepted"] or g["in_flight"]:
        problems.append(f"the gateway accounted {g_counted} of {g['accepted']} accepted ({g['in_flight']} in flight)")
    if g["completed"] != load["ok"]:
        problems.append(f"the gateway completed {g['completed']}, the client got {load['ok']} ok")
    ok = rec.status == STATUSES.index("ok")
    lat_ms = rec.latency_ms()
    over_ms = (lat_ms - rec.timing["exec_ms"])[ok]
    over = _pcts(over_ms, (50, 98))
    bound_ms = interval_s * 1e3 + SLACK_MS
    sent_s = rec.sent_s[np.isfinite(rec.sent_s)]
    span_s = float(sent_s.max() - sent_s.min()) if len(sent_s) > 1 else 0.0
    done_s = rec.done_s[np.isfinite(rec.done_s)]
    ans_span_s = float(done_s.max() - sent_s.min()) if len(done_s) and len(sent_s) else 0.0
    lag = load["send_lag_us"]
    within = over["p50"] is not None and over["p50"] <= bound_ms
    return {
        "function": FUNCTION, "strategy": "faasbatch", "interval_s": interval_s,
        "client": {"invocations": load["invocations"], "sent": sent, "ok": load["ok"], "failed": load["failed"],
                   "timeout": load["timeout"], "error": load["error"], "unsent": load["unsent"], "answered": answered},
        "gateway": {**g, "counted": g_counted, "batches": gateway.get("batches"),
                    "sandboxes_created": (gateway.get("sandboxes") or {}).get("created")},
        "nothing_lost": not problems, "lost_reasons": problems,
        "overhead_ms": over, "bound_ms": bound_ms, "p50_within_bound": within,
        "holds": within and not problems,
        "client_latency_ms": _pcts(lat_ms[ok], (50, 98)),
        "exec_ms": _pcts(rec.timing["exec_ms"][ok], (50, 98)),
        "send_lag_ms": {"p50": None if lag["p50"] is None else lag["p50"] / 1e3,
                        "p99": None if lag["p99"] is None else lag["p99"] / 1e3,
                        "max": None if lag["max"] is None else lag["max"] / 1e3},
        "client_trustworthy": bool(load["trustworthy"]), "client_verdict": load["verdict"],
        "scheduled_rate_per_s": load["scheduled_rate_per_s"],
        "achieved_rate_per_s": (len(sent_s) - 1) / span_s if span_s > 0 else None,
        "answered_rate_per_s": answered / ans_span_s if ans_span_s > 0 else None,
    }


def run_overhead(rate_per_s: float = 2000.0, duration_s: float = 30.0, interval_s: float = 0.2,
                 out_dir: Path | str | None = None, say: Callable[[str], None] = print,
                 quick: bool = False) -> dict:
    """Measure the gateway's overhead (module manual); returns what ``overhead.json`` holds."""
    a = bind_args("faas overhead", OVERHEAD_ARGS,
                  {"rate_per_s": rate_per_s, "duration_s": duration_s, "interval_s": interval_s})
    rate_per_s, duration_s, interval_s = a["rate_per_s"], a["duration_s"], a["interval_s"]
    if quick:
        rate_per_s, duration_s = min(rate_per_s, QUICK_RATE_PER_S), min(duration_s, QUICK_DURATION_S)
    if out_dir is None:
        raise ReportError("faas overhead: an output directory is needed")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out / "manifest.yaml")
    tr = poisson_trace(rate_per_s, duration_s, names=[FUNCTION], kind="io")
    cfg = LoadConfig(port=1, functions=[FUNCTION], timeout_s=TIMEOUT_S,
                     connections=connections_for(rate_per_s, interval_s))
    cfg.preconnect = cfg.connections
    say(f"starting the gateway (faasbatch, dispatch interval {interval_s:g} s)")
    proc, cfg.port = serve_gateway(out / "manifest.yaml", "faasbatch", out / "serve", interval_s=interval_s,
                                   s3="none", who="faas overhead")
    t0 = time.perf_counter()
    try:
        say(f"sending {len(tr):,} no-op invocations at {rate_per_s:g}/s for {duration_s:g} s (open loop)")
        load, rec = replay(tr, cfg)
    except NoAnswer as e:
        raise ReportError(f"faas overhead: {e}") from None
    finally:
        stop_gateway(proc, signal.SIGINT)
    wall_s = time.perf_counter() - t0
    summary_path = out / "serve" / "summary.json"
    try:
        gateway = json.loads(summary_path.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"faas overhead: the gateway left no readable {summary_path} ({e})") from None
    write_results(out / "load", load, rec, {"rate_per_s": rate_per_s, "duration_s": duration_s,
                                            "interval_s": interval_s, "connections": cfg.connections})
    result = {"rate_per_s": rate_per_s, "duration_s": duration_s, **analyse(load, rec, gateway, interval_s),
              "wall_s": wall_s, "connections": cfg.connections, "out_dir": str(out)}
    (out / "overhead.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def describe(r: dict) -> list[str]:
    """The result in a few lines (what ``tailgate faas overhead`` prints)."""
    c, g, o = r["client"], r["gateway"], r["overhead_ms"]

    def ms(v) -> str:
        return "-" if v is None else f"{v:.2f}"

    def rate(v) -> str:
        return "-" if v is None else f"{v:,.0f}/s"

    return [
        f"no-op through faasbatch, dispatch interval {r['interval_s']:g} s, {r['rate_per_s']:g}/s for "
        f"{r['duration_s']:g} s: {'HOLDS' if r['holds'] else 'DOES NOT HOLD'}",
        f"client: sent {c['sent']:,} of {c['invocations']:,} = ok {c['ok']:,} + failed {c['failed']:,} + timeout "
        f"{c['timeout']:,} + error {c['error']:,} (unsent {c['unsent']:,})",
        f"gateway: accepted {g['accepted']:,} = completed {g['completed']:,} + failed {g['failed']:,} + abandoned "
        f"{g['abandoned']:,} (in flight {g['in_flight']}); batches {g['batches']}, sandboxes {g['sandboxes_created']}",
        "nothing lost" if r["nothing_lost"] else "LOST: " + "; ".join(r["lost_reasons"]),
        f"overhead (client latency - exec): p50 {ms(o['p50'])} ms, p98 {ms(o['p98'])} ms; bound at p50 "
        f"{r['bound_ms']:g} ms ({'within' if r['p50_within_bound'] else 'OVER'})",
        f"rate: scheduled {rate(r['scheduled_rate_per_s'])}, sent {rate(r['achieved_rate_per_s'])}, answered "
        f"{rate(r['answered_rate_per_s'])}; client send lag p50 {ms(r['send_lag_ms']['p50'])} ms, p99 "
        f"{ms(r['send_lag_ms']['p99'])} ms: "
        + ("trustworthy" if r["client_trustworthy"] else f"NOT trustworthy ({r['client_verdict']})"),
    ]
