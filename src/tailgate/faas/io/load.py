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
2. **Play.** One asyncio loop starts each invocation as soon as it is due, without waiting for
   earlier answers (open loop), all those due at one wake-up together. Its HTTP/1.1 client is a
   small one of its own on asyncio protocols (one invocation at a time per connection, up to
   ``connections`` connections, opened on demand and kept alive; no task per invocation), so that
   a client on the gateway's machine sends a few thousand invocations/s on a fraction of a core.
   An answer is read by its ``Content-Length``, chunked, or up to the connection's close, and its
   JSON parsed after the run (a batch's answers arrive together; parsing them then would hold
   up the sends due meanwhile). The loop sleeps until ``spin_us`` before the next due time and
   spins from there (yielding to the answers in flight, and napping :data:`SPIN_NAP_S` between
   turns): asyncio's sleeps wake up to a millisecond late, and a client that always spins takes
   a core the gateway may need. The actual send is stamped when the request has been written to
   its connection, so a wait for a free connection counts as send lag, not as latency; the
   timeout counts from the hand-over. With ``preconnect`` the client opens that many connections
   before the schedule starts (a burst of connects at a high rate would otherwise be part of
   the measurement).
3. **Records** per invocation (``write_csv``): id, function, scheduled, sent and answered times
   (s from the start; NaN: none), ``status`` — ``ok`` (HTTP 200), ``failed`` (another HTTP status:
   the gateway's 4xx/5xx, its error text in ``error``), ``timeout`` (no answer within ``timeout_s``),
   ``error`` (connection refused or reset, or an answer that is not HTTP), ``unsent`` (interrupted first) —, the HTTP status, the
   client's latency (request written → answer read) and the gateway's own timing columns when it
   gives them in ``{"result": ..., "timing": {...}}``: ``schedule_ms``, ``cold_start_ms``,
   ``exec_ms``, ``queue_ms``, ``e2e_ms``, ``mem_used_mb`` (read from keys of those names, or from
   ``schedule_s`` ... ``e2e_s`` and ``mem_mb`` as :mod:`tailgate.faas.live.gateway` gives them).
4. **Summary**: counts by status; per function and over all, p50/p98 of the client latency and
   the mean and p98 (p50 too for ``e2e`` and memory) of each gateway column and of ``answer``
   (e2e less the other components: exec's end until the gateway had the answer) (nearest rank,
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
import collections
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
    Arg("preconnect", int, 0, unit="connections", min=0,
        help="connections opened before the first send (at most connections; 0: each opened when first needed)"),
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
    preconnect: int = 0
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

    def answer_ms(self) -> np.ndarray:
        """The hand-over per invocation: exec's end until the gateway had the answer (e2e less its
        other components, at least 0; NaN where the gateway gave no timing)."""
        t = self.timing
        return np.maximum(t["e2e_ms"] - t["schedule_ms"] - t["cold_start_ms"] - t["queue_ms"] - t["exec_ms"], 0.0)


def _requests(p: Plan, cfg: LoadConfig) -> list[bytes]:
    """Each invocation's whole HTTP request (head and JSON event), encoded before the run starts (the
    send loop only writes bytes)."""
    heads = [f"POST /invoke/{name} HTTP/1.1\r\nHost: {cfg.address}\r\nContent-Type: application/json\r\n"
             f"Content-Length: " for name in p.names]
    cache: dict[tuple[int, int], bytes] = {}
    out = []
    for f, n in zip(p.func.tolist(), p.input_n.tolist()):
        req = cache.get((f, n))
        if req is None:
            body = json.dumps({"n": n, "input_n": n, **cfg.event}).encode()
            req = cache[f, n] = f"{heads[f]}{len(body)}\r\n\r\n".encode() + body
        out.append(req)
    return out


#: While it spins before a send, the client naps this long between its turns of the event loop (an
#: answer read then waits at most this long; asyncio's own sleeps are a millisecond coarse).
SPIN_NAP_S = 50e-6
#: Connects in progress at once while the client opens its ``preconnect`` connections.
PRECONNECT_AT_ONCE = 64
#: A response head longer than this is a protocol error (the gateway's are a few hundred bytes).
MAX_HEAD_BYTES = 64 << 10


class _Conn(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection carrying one invocation at a time; parses the answer
    (Content-Length, chunked, or delimited by the close) and hands it to its :class:`_Client`."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport = None
        self.buf = bytearray()
        self.i = -1                  # the invocation in flight (-1: idle)
        self.head: tuple | None = None  # (status, content length or -1, chunked, close) once parsed
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, i: int, req: bytes) -> None:
        self.i = i
        self.buf.clear()
        self.head = None
        self.transport.write(req)

    def data_received(self, data: bytes) -> None:
        if self.i < 0:
            self.client.drop(self, "an answer nobody asked for")
            return
        self.buf += data
        try:
            body = self._parse()
        except ValueError as e:
            self.client.failed(self, f"bad HTTP answer ({e})")
            return
        if body is not None:
            self.client.answered(self, self.head[0], body, self.head[3])

    def _parse(self) -> bytes | None:
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD_BYTES:
                    raise ValueError(f"head over {MAX_HEAD_BYTES} bytes")
                return None
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise ValueError(f"status line {lines[0][:60]!r}")
            length, chunked, close = -1, False, parts[0] == "HTTP/1.0"
            for line in lines[1:]:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "content-length":
                    length = int(value)
                elif key == "transfer-encoding":
                    chunked = "chunked" in value.lower()
                elif key == "connection":
                    close = value.strip().lower() == "close"
            self.head = (int(parts[1]), length, chunked, close or (length < 0 and not chunked))
            del self.buf[:end + 4]
        _, length, chunked, _ = self.head
        if chunked:
            return self._dechunk()
        if length >= 0 and len(self.buf) >= length:
            return bytes(self.buf[:length])
        return None  # more to come (or, without a length, the close ends it)

    def _dechunk(self) -> bytes | None:
        out, pos = bytearray(), 0
        while True:
            eol = self.buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                return bytes(out) if self.buf.find(b"\r\n\r\n", eol) >= 0 or self.buf.endswith(b"0\r\n\r\n") \
                    else None
            if len(self.buf) < eol + 2 + size + 2:
                return None
            out += self.buf[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.i >= 0 and self.head is not None and self.head[1] < 0 and not self.head[2]:
            self.client.answered(self, self.head[0], bytes(self.buf), True)  # delimited by the close
            return
        self.client.lost(self, exc)


class _Client:
    """The connections to the gateway (at most ``cfg.connections``, reused, opened on demand) and
    what each invocation became. Callback-driven: no task per invocation."""

    def __init__(self, cfg: LoadConfig, rec: Records, reqs: list[bytes], t0: float) -> None:
        self.cfg = cfg
        self.rec = rec
        self.reqs = reqs
        self.t0 = t0
        self.loop = asyncio.get_running_loop()
        self.idle: list[_Conn] = []
        self.waiting: collections.deque[int] = collections.deque()
        self.n_conns = 0                 # open or opening
        self.conns: set[_Conn] = set()
        self.timers: dict[int, asyncio.TimerHandle] = {}
        self.on: dict[int, _Conn] = {}   # the connection each sent, unanswered invocation is on
        self.raw: dict[int, bytes] = {}  # each answer's body, until :meth:`parse_answers`
        self.called = np.zeros(len(reqs))  # perf_counter of the hand-over (the timeout counts from it)
        self.outstanding = 0
        self.all_done = self.loop.create_future()
        self.sending = True
        self.opening: set[asyncio.Task] = set()

    # --- hand-over ---------------------------------------------------------------------------

    def invoke(self, i: int) -> None:
        now = time.perf_counter()
        self.called[i] = now
        self.outstanding += 1
        self.timers[i] = self.loop.call_later(self.cfg.timeout_s, self.timed_out, i)
        if self.idle:
            self._send(self.idle.pop(), i)
        elif self.n_conns < self.cfg.connections:
            self.n_conns += 1
            self.waiting.append(i)
            task = self.loop.create_task(self._open())
            self.opening.add(task)
            task.add_done_callback(self.opening.discard)
        else:
            self.waiting.append(i)

    def _send(self, conn: _Conn, i: int) -> None:
        conn.send(i, self.reqs[i])
        self.rec.sent_s[i] = time.perf_counter() - self.t0
        self.on[i] = conn

    def _next(self, conn: _Conn) -> None:
        """``conn`` is free: it takes the next waiting invocation, or idles."""
        while self.waiting:
            i = self.waiting.popleft()
            if i in self.timers:  # not timed out while it waited
                self._send(conn, i)
                return
        self.idle.append(conn)

    async def preconnect(self, n: int) -> None:
        """Open ``n`` connections (at most :data:`PRECONNECT_AT_ONCE` connects at a time), idle."""
        sem = asyncio.Semaphore(PRECONNECT_AT_ONCE)

        async def one() -> None:
            async with sem:
                try:
                    _, conn = await self.loop.create_connection(lambda: _Conn(self), self.cfg.host, self.cfg.port)
                except OSError:
                    self.n_conns -= 1  # opened on demand later, if needed
                    return
                self.conns.add(conn)
                self.idle.append(conn)

        n = min(n, self.cfg.connections)
        self.n_conns += n
        await asyncio.gather(*(one() for _ in range(n)))

    async def _open(self) -> None:
        try:
            _, conn = await self.loop.create_connection(lambda: _Conn(self), self.cfg.host, self.cfg.port)
        except OSError as e:
            self.n_conns -= 1
            while self.waiting:  # the invocation this connection was opened for (the first still waiting)
                i = self.waiting.popleft()
                if i in self.timers:
                    self._end(i, "error", error=f"{type(e).__name__}: {e.strerror or e}")
                    break
            return
        self.conns.add(conn)
        self._next(conn)

    # --- outcomes ----------------------------------------------------------------------------

    def _end(self, i: int, status: str, error: str | None = None) -> None:
        timer = self.timers.pop(i, None)
        if timer is None:
            return  # already ended
        timer.cancel()
        self.on.pop(i, None)
        rec = self.rec
        if not np.isfinite(rec.sent_s[i]):
            rec.sent_s[i] = self.called[i] - self.t0
        rec.status[i] = STATUSES.index(status)
        if error is not None:
            rec.errors[i] = error[:200]
        self.outstanding -= 1
        if not self.sending and self.outstanding == 0 and not self.all_done.done():
            self.all_done.set_result(None)

    def answered(self, conn: _Conn, http: int, raw: bytes, close: bool) -> None:
        i, conn.i = conn.i, -1
        t_done = time.perf_counter()
        if i in self.timers:
            self.rec.done_s[i] = t_done - self.t0
            self.rec.http[i] = http
            self.raw[i] = raw  # parsed after the run: the send loop stays free when a batch's answers come
            self._end(i, "ok" if http == 200 else "failed")
        if close or conn.closed:
            self.drop(conn, None)
        else:
            self._next(conn)

    def failed(self, conn: _Conn, why: str) -> None:
        i, conn.i = conn.i, -1
        if i >= 0:
            self._end(i, "error", error=why)
        self.drop(conn, None)

    def timed_out(self, i: int) -> None:
        if i not in self.timers:
            return
        conn = self.on.get(i)
        self._end(i, "timeout")
        if conn is not None and conn.i == i:  # it may still answer: close it
            conn.i = -1
            self.drop(conn, None)

    def lost(self, conn: _Conn, exc) -> None:
        i, conn.i = conn.i, -1
        if i >= 0:
            why = f"{type(exc).__name__}: {exc}" if exc else "ServerDisconnectedError: the gateway closed the connection"
            self._end(i, "error", error=why)
        self.drop(conn, None)

    def drop(self, conn: _Conn, why: str | None) -> None:
        """Close ``conn`` for good; a waiting invocation gets a new connection."""
        if conn not in self.conns:
            return
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.i >= 0:
            i, conn.i = conn.i, -1
            self._end(i, "error", error=why or "the connection closed")
        if not conn.closed:
            conn.transport.close()
        self.n_conns -= 1
        while self.waiting and self.waiting[0] not in self.timers:
            self.waiting.popleft()
        if self.waiting and self.n_conns < self.cfg.connections:
            self.n_conns += 1
            task = self.loop.create_task(self._open())
            self.opening.add(task)
            task.add_done_callback(self.opening.discard)

    def parse_answers(self) -> None:
        """The answers' JSON into the records (timing columns, error texts; a 200 that is not a
        JSON object becomes ``failed``)."""
        rec = self.rec
        for i, raw in self.raw.items():
            _record_answer(rec, i, int(rec.http[i]), raw)
            if rec.http[i] == 200 and i in rec.errors:
                rec.status[i] = STATUSES.index("failed")
        self.raw.clear()

    async def finish(self) -> None:
        """Wait for every answer still out (each bounded by its timeout), then close the connections."""
        self.sending = False
        if self.outstanding and not self.all_done.done():
            await self.all_done
        for conn in list(self.conns):
            if not conn.closed:
                conn.transport.close()
        for task in list(self.opening):
            task.cancel()


def _record_answer(rec: Records, i: int, http: int, raw: bytes) -> None:
    """The gateway's JSON answer into the records: its timing columns, and an error's text."""
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        rec.errors[i] = f"HTTP {http}: answer is not a JSON object: {raw[:120]!r}"
        return
    timing = doc.get("timing")
    if isinstance(timing, dict):
        for c in TIMING_COLUMNS:
            for key, scale in _TIMING_KEYS[c]:
                v = timing.get(key)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    rec.timing[c][i] = float(v) * scale
                    break
    if http != 200:
        rec.errors[i] = f"HTTP {http}: {str(doc.get('error', doc))[:200]}"


async def _play(p: Plan, cfg: LoadConfig, rec: Records, progress=None) -> dict | None:
    reqs = _requests(p, cfg)
    spin_s = cfg.spin_us * 1e-6
    client = _Client(cfg, rec, reqs, 0.0)
    if cfg.preconnect:
        await client.preconnect(cfg.preconnect)
    t0 = client.t0 = time.perf_counter() + 0.05  # a little time to get going
    try:
        i, n = 0, len(p)
        due_s = p.due_s
        while i < n:
            now = time.perf_counter()
            wait = t0 + due_s[i] - now
            if wait > spin_s:
                await asyncio.sleep(wait - spin_s)
                continue
            if wait > 0:
                await asyncio.sleep(0)  # spin, still serving the answers,
                if wait > 2 * SPIN_NAP_S:
                    time.sleep(SPIN_NAP_S)  # napping in between: a spin that leaves the cores to the gateway
                continue
            late = now - t0
            while i < n and due_s[i] <= late:  # every invocation due by now, together
                client.invoke(i)
                i += 1
            if progress is not None:
                progress(i)
            await asyncio.sleep(0)
        await client.finish()
    finally:
        client.sending = False
        client.parse_answers()
    if not np.isin(rec.status, _ANSWERED).any():
        return None  # nothing answered: /metrics would not either
    return await _metrics(cfg)


async def _metrics(cfg: LoadConfig) -> dict | None:
    """The gateway's ``/metrics`` (None when it does not answer with a JSON object)."""
    import aiohttp  # deferred: the client needs aiohttp only for this one request

    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{cfg.address}/metrics",
                                   timeout=aiohttp.ClientTimeout(total=min(2.0, cfg.timeout_s))) as r:
                metrics = await r.json(content_type=None) if r.status == 200 else None
    except (TimeoutError, aiohttp.ClientError, ValueError):
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
    ans = rec.answer_ms()[ok]
    ans = ans[np.isfinite(ans)]
    out["answer_mean_ms"] = float(ans.mean()) if len(ans) else None
    out["answer_p98_ms"] = _pcts(ans)[1]
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
