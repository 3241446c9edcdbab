"""The open-loop load client: Poisson requests on a schedule, every answer recorded, send lag judged.

Manual
------
``load(LoadConfig(workload, load_frac, n_workers, port=...))`` plays the artifact's client
(reference sheet §11) against a server speaking the PSP wire format
(:mod:`tailgate.dispatch.live.wire`) — tailgate's own (:mod:`tailgate.dispatch.live.process`) or
another — and returns a JSON-able summary:

1. **Plan.** ``round(rate × duration_s)`` requests at ``rate = workload.rate_rps(load_frac,
   n_workers) / run_scale`` (or ``rate_rps`` given directly), drawn by
   :func:`tailgate.dispatch.requests.generate`: Poisson arrivals, types i.i.d. by share, and
   each request's ``run_ns`` = its drawn service time × ``run_scale`` (0 with ``zero_work``). The
   request id on the wire is the request's index.
2. **Play.** One loop sends and receives (as the artifact's client polls RX between sends; two
   threads would fight over the GIL, two processes over a small machine's cores): a request goes
   out as soon as its scheduled time has come, all requests due in one ``sendmmsg``
   (:class:`~tailgate.dispatch.live.sender.Sender`). The loop spins on the clock when the next
   send is near and blocks in ``select`` (still receiving; timer slack 1 ns) when it is more
   than ``spin_ns`` away — a client that always spins takes a whole core, which on a small machine
   is the server's. With ``adaptive_wake`` it wakes early by what ``select`` has been
   overshooting (the p98 of its last 128 waits, at most ``max_early_us``). After the last send
   it waits for the answers still in flight, up to the larger of ``timeout_s`` and the *grace*
   (``grace_ns``: the larger of 10 × the longest service time as run and 100 ms).
3. **Records** per request: id, type, scheduled send, actual send, completion (``-1``: none),
   status (``answered``, ``dropped`` — the server answered ``size = SIZE_DROPPED`` —, ``lost`` —
   no answer within that wait —, ``unsent``). ``csv_path`` writes them.
4. **Metrics** are the simulator's (:func:`tailgate.dispatch.metrics.summarize`): latency from the
   actual send to the response (as the artifact measures it), slowdown against each type's
   nominal service time × ``run_scale``, the first ``warmup_frac`` discarded; dropped and lost
   requests count as drops. **Saturation** is judged over the same measured requests, with the
   answers in flight at the end allowed for: ``goodput_ratio`` = the measured requests answered
   no later than the grace after the last send ÷ the measured requests, and ``saturated =
   goodput_ratio < 0.999`` (:data:`tailgate.dispatch.metrics.SATURATION_GOODPUT`);
   ``metrics["saturation_grace_ns"]`` says which grace. (The simulator's test, completions by the
   last arrival, would count every request still in flight then as unanswered: a short stable run
   of fewer than 1 000 measured requests could never pass it.) A stable server answers within its
   tail latency, far inside the grace; an overloaded one holds a backlog that grows with the run,
   so the flag needs a run much longer than the grace to see an overload smaller than what the
   workers clear in one grace.
5. **Send lag** = actual − scheduled send: p50/p99/p99.9/max (nearest rank,
   :func:`tailgate.measure.percentile.percentiles`). The run is called *trustworthy* when the
   p99 lag is at most ``lag_budget_frac`` of the shortest type's service time as run, every
   request left, and the sender kept up (sent rate ≥ 99 % of the schedule's); otherwise
   ``verdict`` says which test failed. A lagging client sends late, in bursts, and so measures a
   different (burstier, lighter) load than the one it names.

Ctrl-C stops sending and reports what was measured (``interrupted``). Bad configuration is an
ArgError when the :class:`LoadConfig` is built. A run in which requests left but nothing at all
came back (no answer, no refusal) raises :class:`NoAnswer` — one line, ``no answer from
HOST:PORT ...``, its ``summary`` attribute holding the records' summary (the CSV is written) —
rather than report every request lost: no server listens there, or it cannot answer.

**Hello.** Before it plans, the client asks the server for its configuration (:func:`hello`:
``HELLO_TRIES`` tries of ``HELLO_TIMEOUT_S``; the wire extension is in
:mod:`tailgate.dispatch.live.wire`) and refuses to load a server it is not sized for
(:func:`server_mismatches`): another workload (name or types), other ``n_workers`` (when
``load_frac`` sets the rate), or a server that multiplies run times itself (``run_scale`` ≠ 1,
when ``load_frac`` sets the rate: the load would be that many times what ``load_frac`` names).
That is a :class:`ServerMismatch`, one line naming both values, unless ``force=True``. A server
that does not answer the hello (the artifact's, an older tailgate) is loaded unchecked; if it
answers nothing at all, that is the :class:`NoAnswer` above. The summary's ``server`` holds the
configuration the server gave (None: no hello answer).

Example::

    cfg = LoadConfig("disp2", 0.5, n_workers=4, port=9100, duration_s=5, run_scale=100)
    s = load(cfg, quiet=True)
    s["answered"], s["send_lag_ns"]["p99"], s["verdict"], s["metrics"]["slowdown"]["p99.9"]
"""

from __future__ import annotations

import csv
import os
import select
import time
from dataclasses import KW_ONLY, dataclass, field

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from tailgate.core.errors import ArgError, TailgateError
from tailgate.dispatch.live.console import make_console, print_client_summary
from tailgate.dispatch.live.sender import (
    ANSWERED,
    N_DUPLICATE,
    N_FOREIGN,
    N_MALFORMED,
    N_SETTLED,
    STATUS_NAMES,
    UNSENT,
    Sender,
)
from tailgate.dispatch.live.wire import (
    HELLO_REPLY_MAX_BYTES,
    decode_hello_reply,
    encode_hello,
    encode_requests,
    ip_to_int,
    set_timer_slack_ns,
    udp_socket,
)
from tailgate.dispatch.metrics import SATURATION_GOODPUT, summarize
from tailgate.dispatch.requests import generate
from tailgate.dispatch.workloads import Workload, get_workload
from tailgate.measure.percentile import percentiles

MAX_LOAD_FRAC = 1.5
U32_MAX = 0xFFFFFFFF
# the client learns how late select wakes it: the p98 of its last OVER_WINDOW waits
OVER_WINDOW = 128
OVER_RANK = int(0.98 * OVER_WINDOW)
UI_PERIOD_NS = 100_000_000     # progress bar refresh
# answers in flight at the last send are awaited, and counted for saturation, this long after it:
# GRACE_SERVICE_MULT x the longest service time as run, at least GRACE_MIN_NS
GRACE_SERVICE_MULT = 10
GRACE_MIN_NS = 100_000_000


HELLO_TRIES = 2                # hellos sent before the client goes on unchecked
HELLO_TIMEOUT_S = 0.2          # each waits this long for the answer


class ServerMismatch(TailgateError):
    """The server's configuration is not the one this client was sized for (see the manual)."""


class NoAnswer(TailgateError):
    """Requests left and nothing came back; ``summary`` is the run's summary dict."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class LoadConfig:
    """One run of the load client (see the module manual); checked once, when built.

    ``workload`` may be a name or YAML file: it is resolved to a :class:`Workload` here."""
    workload: Workload | str
    load_frac: float                     # offered load, a fraction of the workers' capacity, in (0, 1.5]
    n_workers: int                       # the server's workers (with load_frac, sets the rate)
    host: str = "127.0.0.1"
    port: int = 0
    duration_s: float = 1.0              # of sending
    seed: int = 1                        # of the schedule
    _: KW_ONLY
    rate_rps: float | None = None        # the rate, instead of load_frac's
    run_scale: float = 1.0               # multiplies every request's run time (and divides the rate)
    zero_work: bool = False              # requests that ask for no work (a dispatch benchmark)
    timeout_s: float = 1.0               # wait for answers after the last send (at least the grace)
    warmup_frac: float = 0.1             # of the requests, not measured
    lag_budget_frac: float = 0.1         # of the shortest service time: the p99 send lag allowed
    csv_path: str | None = None          # every request's record
    burst: int = 64                      # requests per sendmmsg/recvmmsg at most
    spin_ns: int = 30_000                # spin (not select) when the next send is this near
    lead_ns: int = 5_000_000             # the schedule starts this long after the setup
    adaptive_wake: bool = True           # wake early by select's recent overshoot
    max_early_us: int = 2_000            # at most this early
    max_requests: int = 50_000_000
    hello: bool = True                   # ask the server for its configuration first, and check it
    force: bool = False                  # load a server whose configuration differs anyway
    dst_ip: int = field(init=False, repr=False)
    paced_rate_rps: float | None = field(init=False, repr=False)   # the schedule's rate (None: load_frac's)
    n_requests: int = field(init=False, repr=False)
    grace_ns: int = field(init=False, repr=False)                  # see the module manual, step 4

    def __post_init__(self) -> None:
        wl = get_workload(self.workload) if isinstance(self.workload, str) else self.workload
        object.__setattr__(self, "workload", wl)
        if not 0 < self.load_frac <= MAX_LOAD_FRAC:
            raise ArgError(f"load {self.load_frac!r} is outside (0, {MAX_LOAD_FRAC:g}]")
        if not isinstance(self.n_workers, (int, np.integer)) or self.n_workers < 1:
            raise ArgError(f"load: n_workers must be a positive integer, got {self.n_workers!r}")
        for name in ("duration_s", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ArgError(f"load: {name} must be > 0, got {getattr(self, name)!r}")
        if self.rate_rps is not None and not self.rate_rps > 0:
            raise ArgError(f"load: rate_rps must be > 0, got {self.rate_rps!r}")
        if not self.run_scale >= 0:
            raise ArgError(f"load: run_scale must be >= 0, got {self.run_scale!r}")
        if not 0 < self.port < 65536:
            raise ArgError(f"load: port {self.port!r} is outside 1..65535")
        for name in ("spin_ns", "lead_ns", "max_early_us", "lag_budget_frac"):
            if not getattr(self, name) >= 0:
                raise ArgError(f"load: {name} must be >= 0, got {getattr(self, name)!r}")
        if not 1 <= self.burst <= 1024:
            raise ArgError(f"load: burst must be in 1..1024, got {self.burst!r}")
        if not 0 <= self.warmup_frac < 1:
            raise ArgError(f"load: warmup_frac must be in [0, 1), got {self.warmup_frac!r}")
        try:
            object.__setattr__(self, "dst_ip", ip_to_int(self.host))
        except OSError:
            raise ArgError(f"load: host {self.host!r} is not an IPv4 address") from None
        rate = self.rate_rps
        if rate is None and not self.zero_work and self.run_scale > 0 and self.run_scale != 1.0:
            # ``load_frac`` is a fraction of what the workers can do at the service times as run.
            rate = wl.rate_rps(self.load_frac, self.n_workers) / self.run_scale
        object.__setattr__(self, "paced_rate_rps", rate)
        offered = rate if rate is not None else wl.rate_rps(self.load_frac, self.n_workers)
        n = round(offered * self.duration_s)
        if n < 1:
            raise ArgError(f"load: {self.duration_s:g} s at {offered:,.1f} req/s is no request at all")
        if n > self.max_requests:
            raise ArgError(f"load: {n:,} requests is more than max_requests={self.max_requests:,}; "
                           "shorten duration_s")
        object.__setattr__(self, "n_requests", n)
        longest_ns = max(t.service_ns for t in wl.types) * _run_factor(self)
        object.__setattr__(self, "grace_ns", int(max(GRACE_SERVICE_MULT * longest_ns, GRACE_MIN_NS)))


def _run_factor(cfg: LoadConfig) -> float:
    """What the nominal service times are multiplied by as run (``run_scale``; 1 with zero_work)."""
    return cfg.run_scale if cfg.run_scale > 0 and not cfg.zero_work else 1.0


@dataclass
class _Plan:
    """The requests of one run, before they are sent."""
    arrival_ns: np.ndarray       # from 0
    type_idx: np.ndarray
    service_ns: np.ndarray
    offered_rps: float
    types: tuple
    type_ids: np.ndarray         # wire type id per type index
    rows: np.ndarray             # (n, REQ_BYTES) payloads


@dataclass
class _Records:
    """What happened to each request (``sched``/``sent_ns``/``done_ns`` on perf_counter_ns)."""
    sched: np.ndarray
    sent_ns: np.ndarray
    done_ns: np.ndarray
    status: np.ndarray
    counts: np.ndarray           # odd responses and settled requests (sender's N_*)
    t0: int = 0                  # when the schedule starts
    send_stalls: int = 0         # rounds the socket buffer was full
    interrupted: bool = False


def _bind_host(host: str) -> str:
    return "0.0.0.0" if host not in ("127.0.0.1", "localhost") else "127.0.0.1"


def hello(host: str, port: int, *, timeout_s: float = HELLO_TIMEOUT_S, tries: int = HELLO_TRIES) -> dict | None:
    """The configuration the tailgate server at ``host:port`` answers a hello with (policy,
    n_workers, workload, types, run_scale, worker_kind, ...); None if nothing answers one."""
    sock = udp_socket(_bind_host(host), 0)
    nonce = int.from_bytes(os.urandom(4), "little")
    try:
        for _ in range(tries):
            try:
                sock.sendto(encode_hello(nonce), (host, port))
            except OSError:
                return None
            deadline = time.monotonic() + timeout_s
            while (left := deadline - time.monotonic()) > 0:
                if not select.select((sock,), (), (), left)[0]:
                    break
                try:
                    payload = sock.recv(HELLO_REPLY_MAX_BYTES)
                except OSError:
                    continue
                config = decode_hello_reply(payload, nonce)
                if config is not None:
                    return config
    finally:
        sock.close()
    return None


def _types_text(types) -> str:
    return ", ".join(f"{name} (id {tid}) {ns / 1e3:g} µs" for tid, name, ns in types)


def server_mismatches(cfg: LoadConfig, server: dict) -> list[str]:
    """What in the server's hello configuration differs from what ``cfg`` was sized for, one
    phrase each, naming both values (empty: nothing)."""
    wl = cfg.workload
    mine = [[t.type_id, t.name, float(t.service_ns)] for t in wl.types]
    theirs = [[int(t[0]), str(t[1]), float(t[2])] for t in server.get("types", [])]
    out = []
    if server.get("workload") != wl.name or theirs != mine:
        out.append(f"the server's workload is {server.get('workload')!r} ({_types_text(theirs)}), this client's "
                   f"{wl.name!r} ({_types_text(mine)})")
    rate_from_load = cfg.rate_rps is None
    if rate_from_load and server.get("n_workers") != cfg.n_workers:
        out.append(f"the server has {server.get('n_workers')} workers, this client was told --workers "
                   f"{cfg.n_workers}")
    scale = server.get("run_scale", 1.0)
    if rate_from_load and not cfg.zero_work and scale != 1.0:
        out.append(f"the server multiplies run times by its --run-scale {scale:g}, this client assumes 1 "
                   f"(its load would be {scale:g}x --load; scale on the client instead)")
    return out


def check_server(cfg: LoadConfig) -> dict | None:
    """Hello the server and refuse a mismatch (:class:`ServerMismatch`) unless ``cfg.force``;
    returns its configuration (None: no hello answer, or ``cfg.hello`` off)."""
    if not cfg.hello:
        return None
    server = hello(cfg.host, cfg.port)
    if server is None:
        return None
    diffs = server_mismatches(cfg, server)
    if diffs and not cfg.force:
        raise ServerMismatch(f"load: not sized for the server at {cfg.host}:{cfg.port}: " + "; ".join(diffs)
                             + " (--force loads it anyway)")
    return server


def load(cfg: LoadConfig, *, quiet: bool = False, console=None) -> dict:
    """Run the open-loop client; returns its summary dict (see the module manual)."""
    console = console if console is not None else make_console(quiet)
    server = check_server(cfg)
    plan = _plan(cfg)
    n = cfg.n_requests
    rec = _Records(sched=np.empty(n, np.int64), sent_ns=np.full(n, -1, np.int64), done_ns=np.full(n, -1, np.int64),
                   status=np.full(n, UNSENT, np.int8), counts=np.zeros(4, np.int64))
    sock = udp_socket(_bind_host(cfg.host), 0)
    sender = Sender(sock, plan.rows, rec.sched, rec.sent_ns, rec.done_ns, rec.status, rec.counts, cfg.dst_ip,
                    cfg.port, burst=cfg.burst)
    set_timer_slack_ns(1)        # the select() between sends must wake on time
    progress = None if quiet else _progress_bar(console, f"{cfg.workload.name} {plan.offered_rps:,.0f} req/s", n)
    try:
        _play(cfg, plan, rec, sender, progress)
    finally:
        if progress is not None:
            progress[0].stop()
        sender.close()
    out = _summarize(cfg, plan, rec)
    out["server"] = server
    n_sent = n - out["unsent"]
    if n_sent and out["answered"] == out["dropped"] == 0 and not rec.interrupted:
        odd = out["malformed_responses"] + out["foreign_responses"]
        wait_s = max(cfg.timeout_s, cfg.grace_ns / 1e9)
        raise NoAnswer(f"no answer from {cfg.host}:{cfg.port}: {n_sent:,} requests sent, none answered "
                       f"within {wait_s:g} s of the last"
                       + (f" ({odd:,} responses that were not answers to them)" if odd else "")
                       + "; is the server running there?", out)
    print_client_summary(out, console)
    return out


def _plan(cfg: LoadConfig) -> _Plan:
    """The schedule (arrival times from 0), types and payloads of ``cfg.n_requests`` requests."""
    reqs = generate(cfg.workload, cfg.load_frac, cfg.n_workers, cfg.n_requests, cfg.seed)
    arrival, offered = reqs.arrival_ns, reqs.offered_rps
    if cfg.paced_rate_rps is not None:
        # Same draws, time axis stretched to the asked rate (a Poisson process scaled is one).
        arrival = np.floor(arrival * (offered / cfg.paced_rate_rps)).astype(np.int64)
        offered = float(cfg.paced_rate_rps)
    types = tuple(reqs.types)
    type_ids = np.array([t.type_id for t in types], np.int64)
    n = cfg.n_requests
    run_ns = (np.zeros(n, np.int64) if cfg.zero_work
              else np.minimum((reqs.service_ns * cfg.run_scale).astype(np.int64), U32_MAX))
    rows = encode_requests(np.arange(n, dtype=np.int64), type_ids[reqs.type_idx], run_ns)
    return _Plan(arrival, reqs.type_idx, reqs.service_ns, float(offered), types, type_ids, rows)


def _progress_bar(console, description: str, total: int):
    """A transient progress bar on ``console``: ``(progress, task)``."""
    progress = Progress(TextColumn("load {task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                        TimeRemainingColumn(), console=console, transient=True)
    task = progress.add_task(description, total=total)
    progress.start()
    return progress, task


def _play(cfg: LoadConfig, plan: _Plan, rec: _Records, sender: Sender, progress) -> None:
    """Send every request on schedule (receiving meanwhile), then wait for the last answers."""
    pc = time.perf_counter_ns
    n = cfg.n_requests
    fd = sender.bs.fd
    send_due, receive = sender.send_due, sender.receive
    sched, counts = rec.sched, rec.counts
    spin_ns = cfg.spin_ns
    rec.t0 = t0 = pc() + cfg.lead_ns
    sched[:] = t0 + plan.arrival_ns
    i = 0
    over_ring = np.zeros(OVER_WINDOW, dtype=np.int64)     # select's recent overshoots (ns)
    n_over = 0
    early_ns = 0
    max_early_ns = cfg.max_early_us * 1000 if cfg.adaptive_wake else 0
    try:
        next_ui = t0
        while i < n:
            now = pc()
            got, k = send_due(i, now)
            i += got
            if got < k:
                rec.send_stalls += 1         # the socket buffer is full: retry, lag grows
                select.select((fd,), (fd,), (), 0.0005)
            if i < n:
                gap = sched[i] - pc()
                if gap > spin_ns + early_ns:
                    # wake early by what select has been overshooting here (its recent p98),
                    # then spin the rest
                    want = gap - spin_ns // 2 - early_ns
                    t_sel = pc()
                    select.select((fd,), (), (), want / 1e9)
                    over_ring[n_over % OVER_WINDOW] = pc() - t_sel - want
                    n_over += 1
                    if n_over % OVER_WINDOW == 0:
                        early_ns = min(max_early_ns, max(0, int(np.partition(over_ring, OVER_RANK)[OVER_RANK])))
            if progress is not None and now >= next_ui:
                progress[0].update(progress[1], completed=i)
                next_ui = now + UI_PERIOD_NS
        deadline = pc() + max(int(cfg.timeout_s * 1e9), cfg.grace_ns)
        while counts[N_SETTLED] < i:         # some sent request is still unanswered
            now = pc()
            if now >= deadline:
                break
            if receive() == 0:
                select.select((fd,), (), (), min(0.01, (deadline - now) / 1e9))
    except KeyboardInterrupt:
        rec.interrupted = True               # Ctrl-C: report what was measured so far


def _lag_stats(lag_ns: np.ndarray) -> dict:
    if len(lag_ns) == 0:
        return {"p50": None, "p99": None, "p99.9": None, "max": None, "mean": None}
    q = percentiles(lag_ns, [50, 99, 99.9])
    return {"p50": int(q[0]), "p99": int(q[1]), "p99.9": int(q[2]), "max": int(lag_ns.max()),
            "mean": float(lag_ns.mean())}


def _verdict(cfg: LoadConfig, lag: dict, run_nominal: np.ndarray, send_rate: float,
             sched_rate: float, n_unsent: int) -> list[str]:
    """Why the run is not trustworthy (empty: it is)."""
    budget_ns = cfg.lag_budget_frac * (float(run_nominal.min()) if not cfg.zero_work else 1_000.0)
    reasons = []
    if n_unsent:
        reasons.append(f"{n_unsent:,} requests never left")
    if lag["p99"] is not None and lag["p99"] > budget_ns:
        reasons.append(f"p99 send lag {lag['p99'] / 1e3:,.1f} us > {budget_ns / 1e3:,.2f} us "
                       f"({cfg.lag_budget_frac:.0%} of the shortest service time)")
    if send_rate < 0.99 * sched_rate:
        reasons.append(f"sent at {send_rate:,.0f} req/s, below the schedule's {sched_rate:,.0f}")
    return reasons


def _summarize(cfg: LoadConfig, plan: _Plan, rec: _Records) -> dict:
    """The run's summary dict (see the module manual), from its records."""
    n, t0 = cfg.n_requests, rec.t0
    sched, sent_ns, done_ns, status = rec.sched, rec.sent_ns, rec.done_ns, rec.status
    was_sent = sent_ns >= 0
    lag = _lag_stats((sent_ns - sched)[was_sent])
    nominal = np.array([t.service_ns for t in plan.types], np.float64)
    run_nominal = nominal * _run_factor(cfg)
    send_span_ns = int(sent_ns[was_sent].max() - sent_ns[was_sent].min()) if was_sent.sum() > 1 else 0
    send_rate = (int(was_sent.sum()) - 1) / (send_span_ns / 1e9) if send_span_ns > 0 else 0.0
    sched_span = int(sched[-1] - sched[0]) if n > 1 else 0
    sched_rate = (n - 1) / (sched_span / 1e9) if sched_span > 0 else plan.offered_rps
    answered = int((status == ANSWERED).sum())
    by_status = {name: int((status == k).sum()) for k, name in enumerate(STATUS_NAMES)}
    reasons = _verdict(cfg, lag, run_nominal, send_rate, sched_rate, by_status["unsent"])
    completion = np.where(status == ANSWERED, done_ns - t0, -1)
    # Metrics over the requests that left (all of them unless the run was interrupted).
    metrics = summarize(plan.type_idx[was_sent], sent_ns[was_sent] - t0, completion[was_sent], run_nominal,
                        [t.name for t in plan.types], plan.offered_rps,
                        warmup_frac=cfg.warmup_frac) if was_sent.any() else None
    if metrics is not None:
        ratio = goodput_within_grace(sent_ns, np.where(status == ANSWERED, done_ns, -1), cfg.warmup_frac,
                                     cfg.grace_ns)
        metrics.update(goodput_ratio=ratio, saturated=bool(ratio < SATURATION_GOODPUT),
                       saturation_grace_ns=cfg.grace_ns)
    if cfg.csv_path:
        _write_csv(cfg.csv_path, plan.type_ids[plan.type_idx], [t.name for t in plan.types], plan.type_idx,
                   sched - t0, np.where(was_sent, sent_ns - t0, -1), completion, status)
    lat = (done_ns - sent_ns)[status == ANSWERED]
    lat_q = percentiles(lat, [50, 99]) if len(lat) else (None, None)
    c = rec.counts
    out = {
        "workload": cfg.workload.name, "load": cfg.load_frac, "offered_rps": round(plan.offered_rps, 3),
        "n_requests": n, "host": cfg.host, "port": cfg.port, "duration_s": cfg.duration_s, "seed": cfg.seed,
        "run_scale": 0.0 if cfg.zero_work else cfg.run_scale,
        **by_status,
        "send_stalls": rec.send_stalls, "malformed_responses": int(c[N_MALFORMED]),
        "foreign_responses": int(c[N_FOREIGN]), "duplicates": int(c[N_DUPLICATE]),
        "send_rate_rps": round(send_rate, 1),
        "answer_rate_rps": round(answered / ((done_ns.max() - sent_ns[was_sent].min()) / 1e9), 1)
        if answered and was_sent.any() else 0.0,
        "send_lag_ns": lag,
        "latency_ns": {"p50": None if lat_q[0] is None else int(lat_q[0]),
                       "p99": None if lat_q[1] is None else int(lat_q[1])},
        "interrupted": rec.interrupted,
        "trustworthy": not reasons and not rec.interrupted,
        "verdict": "trustworthy" if not reasons else "not trustworthy: " + "; ".join(reasons),
        "metrics": metrics,
    }
    if cfg.csv_path:
        out["csv"] = str(cfg.csv_path)
    return out


def goodput_within_grace(sent_ns: np.ndarray, done_ns: np.ndarray, warmup_frac: float, grace_ns: int) -> float:
    """The client's goodput ratio (module manual, step 4): of the requests sent (``sent_ns >= 0``)
    after the first ``warmup_frac`` of them in send order, the fraction answered (``done_ns >= 0``)
    no later than ``grace_ns`` after the last of them was sent. 0 when none was sent."""
    was_sent = sent_ns >= 0
    sent, done = sent_ns[was_sent], done_ns[was_sent]
    order = np.argsort(sent, kind="stable")
    skip = int(len(sent) * warmup_frac)
    sent, done = sent[order][skip:], done[order][skip:]
    if len(sent) == 0:
        return 0.0
    last_ns = int(sent.max())
    return int(np.count_nonzero((done >= 0) & (done <= last_ns + grace_ns))) / len(sent)


def _write_csv(path, wire_type, names, type_idx, sched, sent, completion, status) -> None:
    try:
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["req_id", "type", "type_name", "scheduled_ns", "sent_ns", "completed_ns", "latency_ns", "status"])
            lat = np.where(completion >= 0, completion - sent, -1)
            name_col = np.array(names, dtype=object)[type_idx]
            status_col = np.array(STATUS_NAMES, dtype=object)[status]
            w.writerows(zip(range(len(sched)), wire_type.tolist(), name_col.tolist(), sched.tolist(), sent.tolist(),
                            completion.tolist(), lat.tolist(), status_col.tolist()))
    except OSError as e:
        raise ArgError(f"load: cannot write {path}: {e.strerror or e}") from None
