"""The open-loop replayer: a trace's invocations sent to a gateway on their schedule, every answer kept.

Manual
------
``replay(trace, LoadConfig(port=8080, functions=["fib"]))`` plays a :class:`tailgate.faas.trace.Trace`
(the generator's, a loaded Azure file's, or :func:`poisson_trace`'s fixed rate) against a
gateway's ``POST http://HOST:PORT/invoke/{function}`` and returns a JSON-able summary:

1. **Plan.** Invocation ``i`` is due at ``arrival_s[i] / speed`` after the start (``speed`` 2 plays
   the trace twice as fast). Trace function ``k`` is sent to ``functions[k % len(functions)]``
   (default: the trace's own names). The event is ``{"n": input_n, "input_n": input_n}`` merged
   with ``event`` (a dict given by the caller: ``size_bytes`` of the I/O function, an endpoint).
   The run is bounded: at most ``max_invocations`` invocations and only those due within
   ``duration_s`` (0: no limit); after the last send it waits for the answers still out, each at
   most ``timeout_s`` from its send.
2. **Play.** One asyncio loop (aiohttp's client; up to ``connections`` connections, kept alive)
   starts each invocation as soon as it is due, without waiting for earlier answers (open loop),
   all those due at one wake-up together. The loop sleeps until ``spin_us`` before the next due
   time and spins from there (yielding to the answers in flight): asyncio's sleeps wake up to a
   millisecond late, and a client that always spins takes a core the gateway may need. The actual send is stamped when the request's headers
   have left (aiohttp's ``on_request_headers_sent``), so a wait for a free connection counts as
   send lag, not as latency.
3. **Records** per invocation (``write_csv``): id, function, scheduled, sent and answered times
   (s from the start; NaN: none), ``status`` — ``ok`` (HTTP 200), ``failed`` (another HTTP status:
   the gateway's 4xx/5xx, its error text in ``error``), ``timeout`` (no answer within ``timeout_s``),
   ``error`` (connection refused or reset), ``unsent`` (interrupted first) —, the HTTP status, the
   client's latency (headers sent → answer read) and the gateway's own timing columns when it
   gives them in ``{"result": ..., "timing": {...}}``: ``schedule_ms``, ``cold_start_ms``,
   ``exec_ms``, ``queue_ms``, ``e2e_ms``, ``mem_used_mb`` (read from keys of those names, or from
   ``schedule_s`` ... ``e2e_s`` and ``mem_mb`` as :mod:`tailgate.faas.live.gateway` gives them).
4. **Summary**: counts by status; per function and over all, p50/p98 of the client latency and
   the mean and p98 (p50 too for ``e2e`` and memory) of each gateway column (nearest rank,
   :func:`tailgate.measure.percentile.percentiles`), over the ``ok`` invocations; the gateway's
   ``/metrics`` after the run when it answers (its ``strategy``, ``interval_s``, ``sandboxes``
   (created), ``sandboxes_used``, ``sandboxes_peak`` and ``batches`` then fill the fields
   ``tailgate faas sim --json`` prints, so a live point and a simulated one line up).
5. **Send lag** = actual − scheduled send: p50/p99/max in µs. The run is *trustworthy* when the
   p99 lag is at most ``lag_budget_ms`` and every invocation left; otherwise ``verdict`` says which
   test failed. A lagging client sends late and in bursts, so it measures a burstier, later load
   than the trace.

Before it plans, the client opens one TCP connection to HOST:PORT (``connect_timeout_s``); none →
:class:`NoAnswer`, one line ``no answer from HOST:PORT (...)``. A run in which invocations left but
not one HTTP answer came back raises :class:`NoAnswer` too, its ``summary`` holding the records'.
A bad configuration is an ArgError when the :class:`LoadConfig` is built.

Arguments of :class:`LoadConfig`:

{args}

Example::

    tr = poisson_trace(rate_per_s=500, duration_s=5, names=["noop"])
    s = replay(tr, LoadConfig(port=8080))
    s["ok"], s["send_lag_us"]["p99"], s["functions"]["noop"]["e2e_p98_ms"], s["verdict"]
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tailgate.core.args import Arg, bind_args, render_args
from tailgate.core.errors import ArgError, TailgateError
from tailgate.faas.trace import Trace, draw_fib_n
from tailgate.measure.percentile import percentiles

#: The gateway's timing columns the client records (ms, except memory in MB).
TIMING_COLUMNS = ("schedule_ms", "cold_start_ms", "exec_ms", "queue_ms", "e2e_ms", "mem_used_mb")
STATUSES = ("ok", "failed", "timeout", "error", "unsent")
_ANSWERED = [STATUSES.index("ok"), STATUSES.index("failed")]
#: Where each column may be in the answer's ``timing``: (key, factor to the column's unit).
_TIMING_KEYS = {c: ((c, 1.0), (c[:-3] + "_s", 1e3)) for c in TIMING_COLUMNS if c.endswith("_ms")}
_TIMING_KEYS["mem_used_mb"] = (("mem_used_mb", 1.0), ("mem_mb", 1.0))

LOAD_ARGS = (
    Arg("host", str, "127.0.0.1", unit="-", help="the gateway's address"),
    Arg("port", int, 8080, unit="port", min=1, max=65535, help="the gateway's port"),
    Arg("speed", float, 1.0, unit="x", min=1e-6, help="time scale of the trace (2: twice as fast)"),
    Arg("max_invocations", int, 0, unit="invocations", min=0, help="send at most this many (0: all)"),
    Arg("duration_s", float, 0.0, unit="s", min=0.0, help="send only invocations due within (0: all)"),
    Arg("timeout_s", float, 30.0, unit="s", min=0.001, help="an invocation without answer this long after its send is a timeout"),
    Arg("connect_timeout_s", float, 3.0, unit="s", min=0.001, help="the first TCP connection waits this long"),
    Arg("connections", int, 256, unit="connections", min=1, help="HTTP connections kept open at most"),
    Arg("lag_budget_ms", float, 1.0, unit="ms", min=0.0, help="p99 send lag a trustworthy run stays under"),
    Arg("spin_us", float, 1500.0, unit="us", min=0.0,
        help="the client spins (yielding to the answers) this long before a send instead of sleeping"),
)
__doc__ = __doc__.replace("{args}", render_args(LOAD_ARGS))


class NoAnswer(TailgateError):
    """Nothing answered at HOST:PORT; ``summary`` holds what was recorded (None: nothing was sent)."""

    def __init__(self, message: str, summary: dict | None = None) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class LoadConfig:
    """The replayer's settings (module manual); ``functions`` maps trace functions to gateway names,
    ``event`` is merged into every invocation's event."""

    host: str = "127.0.0.1"
    port: int = 8080
    functions: list[str] | None = None
    event: dict = field(default_factory=dict)
    speed: float = 1.0
    max_invocations: int = 0
    duration_s: float = 0.0
    timeout_s: float = 30.0
    connect_timeout_s: float = 3.0
    connections: int = 256
    lag_budget_ms: float = 1.0
    spin_us: float = 1500.0

    def __post_init__(self) -> None:
        given = {a.name: getattr(self, a.name) for a in LOAD_ARGS}
        for k, v in bind_args("faas load", LOAD_ARGS, given).items():
            setattr(self, k, v)
        if self.functions is not None:
            if not self.functions or any(not isinstance(f, str) or not f or "/" in f for f in self.functions):
                raise ArgError(f"faas load: functions {self.functions!r}: each must be a non-empty name without '/'")
        if not isinstance(self.event, dict):
            raise ArgError(f"faas load: event must be a JSON object, got {type(self.event).__name__}")
        try:
            json.dumps(self.event)
        except (TypeError, ValueError) as e:
            raise ArgError(f"faas load: event is not JSON-able ({e})") from None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def poisson_trace(rate_per_s: float, duration_s: float, names: list[str] | tuple[str, ...] = ("noop",),
                  kind: str = "cpu", seed: int = 5432) -> Trace:
    """Poisson arrivals at ``rate_per_s`` for ``duration_s``, functions drawn uniformly from ``names``
    (``input_n`` from the reference's fib histogram): a fixed-rate load for the send-lag check."""
    if not rate_per_s > 0 or not duration_s > 0:
        raise ArgError(f"faas load: rate ({rate_per_s!r}/s) and duration ({duration_s!r} s) must be > 0")
    if not names:
        raise ArgError("faas load: at least one function name is needed")
    rng = np.random.default_rng(seed)
    n = int(rng.poisson(rate_per_s * duration_s))
    arrival = np.sort(rng.uniform(0.0, duration_s, n))
    return Trace(arrival_s=arrival, func=rng.integers(0, len(names), n).astype(np.int32),
                 input_n=draw_fib_n(rng, n), names=list(names), kinds=[kind] * len(names),
                 source=f"poisson {rate_per_s:g}/s for {duration_s:g} s")


@dataclass
class Plan:
    """What will be sent: due times (s from the start), gateway function names, events."""

    due_s: np.ndarray
    func: np.ndarray
    names: list[str]
    input_n: np.ndarray

    def __len__(self) -> int:
        return len(self.due_s)


def plan(trace: Trace, cfg: LoadConfig) -> Plan:
    """The invocations to send and when (bounded by ``max_invocations`` and ``duration_s``)."""
    due = trace.arrival_s / cfg.speed
    keep = np.ones(len(due), dtype=bool)
    if cfg.duration_s > 0:
        keep &= due < cfg.duration_s
    idx = np.flatnonzero(keep)
    if cfg.max_invocations:
        idx = idx[: cfg.max_invocations]
    if len(idx):
        due = due[idx] - min(0.0, float(due[idx].min()))
    else:
        due = due[idx]
    names = cfg.functions or list(trace.names)
    func_names = [names[k % len(names)] for k in range(trace.n_functions)]
    uniq = sorted(set(func_names))
    remap = np.array([uniq.index(f) for f in func_names], dtype=np.int32)
    return Plan(due_s=np.ascontiguousarray(due), func=remap[trace.func[idx]], names=uniq,
                input_n=trace.input_n[idx].astype(np.int64))


def check_listening(cfg: LoadConfig) -> None:
    """One TCP connection to HOST:PORT, or :class:`NoAnswer`."""
    try:
        with socket.create_connection((cfg.host, cfg.port), timeout=cfg.connect_timeout_s):
            pass
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise NoAnswer(f"no answer from {cfg.address} ({why}): is the gateway running (tailgate faas serve)?") from None


class Records:
    """Per-invocation columns (module manual, point 3)."""

    def __init__(self, p: Plan) -> None:
        n = len(p)
        self.plan = p
        self.sent_s = np.full(n, np.nan)
        self.done_s = np.full(n, np.nan)
        self.status = np.full(n, STATUSES.index("unsent"), dtype=np.int8)
        self.http = np.zeros(n, dtype=np.int16)
        self.timing = {c: np.full(n, np.nan) for c in TIMING_COLUMNS}
        self.errors: dict[int, str] = {}

    def latency_ms(self) -> np.ndarray:
        return (self.done_s - self.sent_s) * 1e3


def _bodies(p: Plan, event: dict) -> list[bytes]:
    """Each invocation's JSON event, encoded before the run starts (the send loop only sends)."""
    cache: dict[int, bytes] = {}
    out = []
    for n in p.input_n.tolist():
        body = cache.get(n)
        if body is None:
            body = cache[n] = json.dumps({"n": n, "input_n": n, **event}).encode()
        out.append(body)
    return out


_HEADERS = {"Content-Type": "application/json"}


async def _one(session, url: str, body: bytes, i: int, t0: float, rec: Records, timeout) -> None:
    import aiohttp

    stamp: dict = {}
    t_call = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=_HEADERS, timeout=timeout, trace_request_ctx=stamp) as r:
            raw = await r.read()
            t_done = time.perf_counter()
            rec.http[i] = r.status
            rec.status[i] = STATUSES.index("ok" if r.status == 200 else "failed")
    except asyncio.TimeoutError:
        rec.sent_s[i] = stamp.get("sent", t_call) - t0
        rec.status[i] = STATUSES.index("timeout")
        return
    except aiohttp.ClientError as e:
        rec.sent_s[i] = stamp.get("sent", t_call) - t0
        rec.status[i] = STATUSES.index("error")
        rec.errors[i] = f"{type(e).__name__}: {e}"[:200]
        return
    rec.sent_s[i] = stamp.get("sent", t_call) - t0
    rec.done_s[i] = t_done - t0
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        if r.status == 200:
            rec.status[i] = STATUSES.index("failed")
        rec.errors[i] = f"HTTP {r.status}: answer is not a JSON object: {raw[:120]!r}"
        return
    timing = doc.get("timing")
    if isinstance(timing, dict):
        for c in TIMING_COLUMNS:
            for key, scale in _TIMING_KEYS[c]:
                v = timing.get(key)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    rec.timing[c][i] = float(v) * scale
                    break
    if r.status != 200:
        rec.errors[i] = f"HTTP {r.status}: {str(doc.get('error', doc))[:200]}"


async def _headers_sent(session, ctx, params) -> None:
    if isinstance(ctx.trace_request_ctx, dict):  # None for the /metrics request
        ctx.trace_request_ctx["sent"] = time.perf_counter()


async def _play(p: Plan, cfg: LoadConfig, rec: Records, progress=None) -> dict | None:
    import aiohttp

    trace_cfg = aiohttp.TraceConfig()
    trace_cfg.on_request_headers_sent.append(_headers_sent)
    conn = aiohttp.TCPConnector(limit=cfg.connections, force_close=False)
    base = f"http://{cfg.address}"
    urls = [f"{base}/invoke/{name}" for name in p.names]
    tasks: list[asyncio.Task] = []
    bodies = _bodies(p, cfg.event)
    timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
    async with aiohttp.ClientSession(connector=conn, trace_configs=[trace_cfg]) as session:
        loop = asyncio.get_running_loop()
        spin_s = cfg.spin_us * 1e-6
        t0 = time.perf_counter() + 0.05  # a little time to get going
        for i in range(len(p)):
            due = t0 + p.due_s[i]
            wait = due - time.perf_counter()
            if wait > spin_s:
                await asyncio.sleep(wait - spin_s)
            while time.perf_counter() < due:
                await asyncio.sleep(0)  # spin, still serving the answers
            tasks.append(loop.create_task(_one(session, urls[p.func[i]], bodies[i], i, t0, rec, timeout)))
            if progress is not None:
                progress(i + 1)
        if tasks:
            await asyncio.wait(tasks)
        metrics = None
        if not np.isin(rec.status, _ANSWERED).any():
            return None  # nothing answered: /metrics would not either
        try:
            async with session.get(f"{base}/metrics", timeout=aiohttp.ClientTimeout(total=min(2.0, cfg.timeout_s))) as r:
                if r.status == 200:
                    metrics = await r.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            metrics = None
    return metrics if isinstance(metrics, dict) else None


def _pcts(values: np.ndarray) -> tuple[float | None, float | None]:
    v = values[np.isfinite(values)]
    if not len(v):
        return None, None
    q = percentiles(v, [50, 98])
    return float(q[0]), float(q[1])


def _columns_summary(rec: Records, mask: np.ndarray) -> dict:
    out: dict[str, Any] = {"invocations": int(mask.sum())}
    ok = mask & (rec.status == STATUSES.index("ok"))
    out["ok"] = int(ok.sum())
    p50, p98 = _pcts(rec.latency_ms()[ok])
    out["client_p50_ms"], out["client_p98_ms"] = p50, p98
    for c in TIMING_COLUMNS:
        stem = c.rsplit("_", 1)[0]
        unit = c.rsplit("_", 1)[1]
        v = rec.timing[c][ok]
        v = v[np.isfinite(v)]
        p50, p98 = _pcts(v)
        out[f"{stem}_mean_{unit}"] = float(v.mean()) if len(v) else None
        if c in ("e2e_ms", "mem_used_mb"):
            out[f"{stem}_p50_{unit}"] = p50
        out[f"{stem}_p98_{unit}"] = p98
    out["mem_per_invocation_mb"] = out["mem_used_mean_mb"]
    return out


def _gateway_fields(m: dict) -> tuple:
    """(strategy, dispatch interval in s, sandboxes created, used, peak, batches) from the gateway's
    ``/metrics``, None where absent."""
    strat = m.get("strategy")
    interval = m.get("interval_s", m.get("dispatch_interval_s"))
    if isinstance(strat, dict):
        interval = strat.get("dispatch_interval_s", strat.get("interval_s", interval))
        strat = strat.get("strategy", strat.get("name"))
    boxes = m.get("sandboxes")
    used = peak = None
    if isinstance(boxes, dict):
        boxes, used, peak = boxes.get("created"), boxes.get("used"), boxes.get("peak")
    return strat, interval, boxes, used, peak, m.get("batches")


def summarize(rec: Records, cfg: LoadConfig, metrics: dict | None, wall_s: float) -> dict:
    """The JSON-able summary of a run (module manual, points 4 and 5)."""
    p = rec.plan
    counts = {s: int((rec.status == k).sum()) for k, s in enumerate(STATUSES)}
    was_sent = np.isfinite(rec.sent_s)
    lag_us = (rec.sent_s[was_sent] - p.due_s[was_sent]) * 1e6
    if len(lag_us):
        q = percentiles(lag_us, [50, 99])
        lag = {"p50": float(q[0]), "p99": float(q[1]), "max": float(lag_us.max()), "mean": float(lag_us.mean())}
    else:
        lag = {"p50": None, "p99": None, "max": None, "mean": None}
    span_s = float(p.due_s[-1] - p.due_s[0]) if len(p) > 1 else 0.0
    reasons = []
    if lag["p99"] is not None and lag["p99"] > cfg.lag_budget_ms * 1e3:
        reasons.append(f"p99 send lag {lag['p99'] / 1e3:.3f} ms > {cfg.lag_budget_ms:g} ms")
    if counts["unsent"]:
        reasons.append(f"{counts['unsent']} invocations never left")
    overall = _columns_summary(rec, np.ones(len(p), dtype=bool))
    strategy, interval_s, sandboxes, used, peak, batches = _gateway_fields(metrics or {})
    out: dict[str, Any] = {
        "strategy": strategy, "interval_s": interval_s, "sandboxes": sandboxes, "sandboxes_used": used,
        "sandboxes_peak": peak, "batches": batches,
        **overall,
        "target": cfg.address, "speed": cfg.speed, "wall_s": wall_s,
        "scheduled_rate_per_s": (len(p) - 1) / span_s if span_s > 0 else None,
        **counts,
        "send_lag_us": lag, "trustworthy": not reasons, "verdict": "; ".join(reasons) or "ok",
        "functions": {name: _columns_summary(rec, p.func == k) for k, name in enumerate(p.names)},
        "first_errors": [f"invocation {i}: {rec.errors[i]}" for i in sorted(rec.errors)[:5]],
        "gateway_metrics": metrics,
    }
    return out


def replay(trace: Trace, cfg: LoadConfig, *, progress=None) -> tuple[dict, Records]:
    """Play ``trace`` against the gateway; returns (summary, records). Raises :class:`NoAnswer`."""
    check_listening(cfg)
    p = plan(trace, cfg)
    if not len(p):
        raise ArgError("faas load: no invocation to send (an empty trace, or --duration-s/--max-invocations cut all)")
    rec = Records(p)
    t0 = time.perf_counter()
    metrics = None
    try:
        metrics = asyncio.run(_play(p, cfg, rec, progress))
    except KeyboardInterrupt:
        pass
    wall_s = time.perf_counter() - t0
    summary = summarize(rec, cfg, metrics, wall_s)
    answered = int(np.isin(rec.status, _ANSWERED).sum())
    if answered == 0 and len(p):
        first = summary["first_errors"][0] if summary["first_errors"] else f"{summary['timeout']} timed out"
        raise NoAnswer(f"no answer from {cfg.address}: {len(p) - summary['unsent']} invocations sent, not one "
                       f"answered ({first})", summary)
    return summary, rec


def write_csv(path: str | Path, rec: Records) -> None:
    """One row per invocation (module manual, point 3)."""
    p = rec.plan
    lat = rec.latency_ms()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "function", "scheduled_s", "sent_s", "done_s", "status", "http_status", "client_ms",
                    *TIMING_COLUMNS, "error"])
        for i in range(len(p)):
            row = [i, p.names[p.func[i]], f"{p.due_s[i]:.6f}", _num(rec.sent_s[i]), _num(rec.done_s[i]),
                   STATUSES[rec.status[i]], int(rec.http[i]), _num(lat[i], 3)]
            row += [_num(rec.timing[c][i], 3) for c in TIMING_COLUMNS]
            row.append(rec.errors.get(i, ""))
            w.writerow(row)


def _num(v: float, digits: int = 6) -> str:
    return "" if not math.isfinite(v) else f"{v:.{digits}f}"


def write_results(out_dir: str | Path, summary: dict, rec: Records, config: dict) -> Path:
    """``invocations.csv`` and ``summary.json`` (with the configuration) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "invocations.csv", rec)
    (out / "summary.json").write_text(json.dumps({"config": config, "summary": summary}, indent=1, default=str) + "\n")
    return out
