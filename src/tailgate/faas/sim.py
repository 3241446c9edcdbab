"""The function-batching simulator: the strategies of :mod:`tailgate.faas.strategies` in virtual time.

Manual
------
::

    res = simulate(trace, make_strategy("faasbatch", dispatch_interval_s=0.2))
    res.summary()          # sandboxes, e2e p50/p98, mean and p98 of every component, memory
    res.columns()          # per invocation, in the trace's order (below)

Per function, every dispatch tick takes the invocations queued since the last one as a batch and
asks the strategy for a :class:`~tailgate.faas.strategies.Plan`. A function's dispatches are
serialised: a tick that finds the last dispatch of that function still acquiring sandboxes waits
for it (and takes everything queued by then). Sandboxes come from the bounded LIFO
:class:`~tailgate.faas.strategies.Pool`; a new one is cold-started, and creation blocks as in the
original: the dispatch waits for each creation before the next, and the machine runs at most
``parallel_creates`` creations at once (1: one Docker daemon creating serially), so a burst of
cold starts queues. A batch of one invocation per sandbox (vanilla, sfs) hands each invocation
over as soon as its sandbox is ready, as the gateway does, so a later one of the batch takes a
sandbox that an earlier one freed meanwhile (warm) instead of creating its own. A dispatch that can get no sandbox (a bound reached, nothing idle to take or
to destroy) waits for the first in-flight sandbox to finish; a batch that gets fewer sandboxes
than its plan shares them, and a strategy of one invocation per sandbox then runs them one after
another (their wait is queue time). The idle cleaner runs every ``cleaner_period_s`` (5 s) of
virtual time.

Work inside a sandbox: ``parallel`` starts every invocation at once; ``serial`` runs them one
after another (queue time); ``single`` holds one. An I/O function in a FaaSBatch sandbox uses the
shared client cache: the threads start together, the first builds the client under the hook's lock
(its CPU work: ``exec_ms`` less ``exec_cached_ms`` of that invocation), the others block in the hook
(inside the handler, so exec, not queue) until it is built, then all run with the cached client
(``exec_cached_ms``, ``mem_cached_mb``); other strategies run the native image, where every
invocation builds its own: the first in a fresh sandbox from a cold image (``exec_ms``), later
ones in a sandbox that ran one before with the libraries' own caches warm (``exec_warm_ms``,
``mem_warm_mb``; the same as ``exec_ms`` when the profile has none). CPU contention is processor sharing: the CPU work in flight on the
machine (every invocation's CPU part, with its start and end) is tracked, and the invocations a
sandbox starts together each progress at ``min(1, cores / (k + others))`` while ``k`` of them are
left, ``others`` being the CPU work of other sandboxes (its mean over the time these would take
alone, held constant for them), and at most ``sandbox_cores / k`` in a sandbox capped by a
quota (an I/O sandbox's invocations, threads of one Python process, also by its interpreter lock:
``io_thread_cores``, 1 core together); so short invocations leave early and the rest speed up.
Only a fraction ``cpu_share`` of an I/O invocation's exec is CPU work (profile ``io.cpu_share``,
else ``io_cpu_share``); the rest is waiting, which does not contend. Of that CPU work, the
profile's ``io.server_ms`` is done last by the one server every I/O invocation calls (the local
S3 server: ``server_cores`` for all of them together). A cold start's CPU work (a fraction
``cold_start_cpu_share`` of its time; the profile's, else none) contends with the rest, and after
exec each invocation's *hand-over* (the profile's ``answer_ms``: the fork's and the child's exit,
the frames back to the gateway; else none) is CPU work slowed by the load then, kept as the
column ``answer_s``. SFS runs the first ``slice_s`` of each invocation at high priority, unshared; only the rest (the part demoted to the fair class) is shared. Each sandbox
start costs time in proportion to the CPU work in flight, so a trace that overloads ``cores``
(its backlog grows without end) simulates slower; ``cores=0`` turns contention off.

Columns per invocation (seconds unless named): ``arrival_s``, ``func``, ``input_n``,
``schedule_s`` (arrival → its sandbox is ready, less its own cold start: the tick wait and the
wait for acquisition, other creations included; the original's ``schedule_time`` is
``schedule_s + cold_start_s``), ``cold_start_s`` (0 when warm), ``queue_s`` (in-sandbox wait),
``exec_s``, ``answer_s`` (exec's end → the gateway has the answer), ``e2e_s`` (= schedule + cold
start + queue + exec + answer), ``mem_mb`` (NaN for CPU
functions, as the reference measures I/O only) and ``sandbox``.

The profile (a dict, or a JSON file of one; :data:`REFERENCE_PROFILE` by default, read off the
reference's figures §8 and §10) gives per kind ``cold_start_ms``, ``exec_ms``, for I/O
``exec_cached_ms`` and optionally ``exec_warm_ms`` and ``cold_start_native_ms`` (a sandbox without the reuse
hook, as the baselines run, starts in this instead of ``cold_start_ms``), and ``mem_mb``/``mem_cached_mb``
(optionally ``mem_warm_mb``); optionally ``answer_ms``, ``cold_start_cpu_share`` and, for I/O,
``cpu_share`` and ``server_ms`` (:mod:`tailgate.faas.live.profile` measures them all). A distribution is
``{"dist": "lognormal", "median": MS, "sigma": S}``, ``{"dist": "const", "value": MS}``,
``{"dist": "empirical", "samples": [MS, ...]}`` or, for exec of CPU functions,
``{"dist": "fib", "anchors": [[n, MS], ...], "sigma": S}`` (log-linear in ``n`` between anchors).
Exec times are drawn once per trace and seed, the same for every strategy.

Arguments (:data:`SIM_ARGS`; the pool's and the strategies' are theirs):

{args}

Example:

>>> from tailgate.faas.trace import generate
>>> from tailgate.faas.strategies import make_strategy
>>> from tailgate.faas.sim import simulate
>>> t = generate(invocations=400, kind="io", functions=5, seed=5432)
>>> fb = simulate(t, make_strategy("faasbatch")).summary()
>>> va = simulate(t, make_strategy("vanilla")).summary()
>>> fb["invocations"], fb["sandboxes"] < va["sandboxes"], fb["e2e_p98_ms"] < va["e2e_p98_ms"]
(400, True, True)
"""

from __future__ import annotations

import copy
import csv
import heapq
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from tailgate.core.args import Arg, bind_args, render_args
from tailgate.core.errors import ArgError, TailgateError
from tailgate.faas.contention import ps_exact
from tailgate.faas.strategies import SFS, FaaSBatchSLO, Kraken, Pool, Strategy, make_strategy
from tailgate.faas.trace import Trace

REFERENCE_PROFILE: dict[str, dict[str, Any]] = {
    "cpu": {
        "cold_start_ms": {"dist": "lognormal", "median": 450.0, "sigma": 0.35},
        "exec_ms": {"dist": "fib", "anchors": [[20, 3.0], [30, 381.0], [34, 1700.0], [35, 2600.0]], "sigma": 0.05},
    },
    "io": {
        "cold_start_ms": {"dist": "lognormal", "median": 350.0, "sigma": 0.35},
        "exec_ms": {"dist": "lognormal", "median": 280.0, "sigma": 0.3},
        "exec_cached_ms": {"dist": "lognormal", "median": 35.0, "sigma": 0.3},
        "mem_mb": 14.9,
        "mem_cached_mb": 0.8,
    },
}

SIM_ARGS = (
    Arg("cores", float, 32, unit="cores", min=0,
        help="worker cores the invocations share (processor sharing; fractional: a measured capacity; 0: no contention)"),
    Arg("sandbox_cores", float, 0.0, unit="cores", min=0.0,
        help="each sandbox's CPU quota (its cgroup; the manifest's cpu_share); 0: no cap"),
    Arg("io_thread_cores", float, 1.0, unit="cores", min=0.0,
        help="most cores an I/O sandbox's invocations use together, with contention on: they are threads of "
             "one Python process and share its interpreter lock (1); 0: no such cap"),
    Arg("server_cores", float, 1.0, unit="cores", min=0.0,
        help="cores of the shared server every I/O invocation calls (the local S3 server: one Python process), "
             "when the profile gives its work per invocation (io.server_ms); 0: not modelled"),
    Arg("io_cpu_share", float, 0.8, unit="fraction", min=0.0, max=1.0,
        help="part of an I/O function's exec that is CPU work and contends (the rest waits; 0.8 fits the live "
             "S3 function here: client construction and a local S3 server are CPU); a profile's io.cpu_share wins"),
    Arg("parallel_creates", int, 1, unit="sandboxes", min=1,
        help="sandbox creations the machine runs at once (1: blocking, one after another, as the original)"),
    Arg("cleaner_period_s", float, 5.0, unit="s", min=1e-3, help="how often idle sandboxes are expired"),
    Arg("seed", int, 1, unit="-", help="random seed of exec and cold-start draws"),
    Arg("ps_passes", int, 3, unit="passes", min=0, max=50,
        help="passes of the processor-sharing fixed point (0: each job's slowdown estimated when it starts)"),
)
__doc__ = __doc__.replace("{args}", render_args(SIM_ARGS))

COMPONENTS = ("schedule", "cold_start", "queue", "exec", "e2e")


class ProfileError(TailgateError):
    """A profile of distributions that cannot be used."""


def load_profile(src: dict | str | Path | None) -> dict:
    """A profile from a dict or a JSON file (None: :data:`REFERENCE_PROFILE`), checked."""
    if src is None:
        return REFERENCE_PROFILE
    if not isinstance(src, dict):
        p = Path(src)
        try:
            src = json.loads(p.read_text())
        except OSError as e:
            raise ProfileError(f"{p}: cannot read profile ({e.strerror})") from None
        except json.JSONDecodeError as e:
            raise ProfileError(f"{p}:{e.lineno}: not JSON ({e.msg})") from None
        if not isinstance(src, dict):
            raise ProfileError(f"{p}: a profile is a JSON object with keys cpu and/or io")
    for kind, spec in src.items():
        if kind not in ("cpu", "io") or not isinstance(spec, dict):
            raise ProfileError(f"profile: key {kind!r} must be cpu or io, each an object")
        for need in ("cold_start_ms", "exec_ms"):
            if need not in spec:
                raise ProfileError(f"profile {kind}: missing {need!r}")
        if "capacity_cores" in spec and not (isinstance(spec["capacity_cores"], (int, float))
                                             and float(spec["capacity_cores"]) > 0):
            raise ProfileError(f"profile {kind}.capacity_cores: must be a number of cores > 0, got {spec['capacity_cores']!r}")
        for share in ("cpu_share", "cold_start_cpu_share"):
            if share in spec and not (isinstance(spec[share], (int, float)) and 0.0 <= float(spec[share]) <= 1.0):
                raise ProfileError(f"profile {kind}.{share}: must be a fraction 0..1, got {spec[share]!r}")
        for name, d in spec.items():
            if name.endswith("_ms"):
                _check_dist(f"profile {kind}.{name}", d)
    return src


def _check_dist(where: str, d: Any) -> None:
    if not isinstance(d, dict) or d.get("dist") not in ("lognormal", "const", "empirical", "fib"):
        raise ProfileError(f"{where}: a distribution is an object with dist lognormal, const, empirical or fib")
    need = {"lognormal": ("median", "sigma"), "const": ("value",), "empirical": ("samples",),
            "fib": ("anchors",)}[d["dist"]]
    for k in need:
        if k not in d:
            raise ProfileError(f"{where}: dist {d['dist']} needs {k!r}")
    try:
        if d["dist"] == "empirical" and (not d["samples"] or min(float(v) for v in d["samples"]) < 0):
            raise ProfileError(f"{where}: samples must be a non-empty list of times >= 0 ms")
        if d["dist"] == "lognormal" and not (float(d["median"]) > 0 and float(d["sigma"]) >= 0):
            raise ProfileError(f"{where}: median must be > 0 ms and sigma >= 0")
        if d["dist"] == "const" and not float(d["value"]) >= 0:
            raise ProfileError(f"{where}: value must be a time >= 0 ms")
        if d["dist"] == "fib" and (len(d["anchors"]) < 2 or
                                   any(float(n_ms[1]) <= 0 or len(n_ms) != 2 for n_ms in d["anchors"])):
            raise ProfileError(f"{where}: fib needs at least two [n, ms] anchors with ms > 0")
    except (TypeError, ValueError, IndexError):
        raise ProfileError(f"{where}: a value is not a number (distribution {json.dumps(d)[:80]})") from None


def draw_ms(d: dict, rng: np.random.Generator, n: int, input_n: np.ndarray | None = None) -> np.ndarray:
    """``n`` draws (ms) of distribution ``d`` (see the manual)."""
    kind = d["dist"]
    if kind == "const":
        return np.full(n, float(d["value"]))
    if kind == "lognormal":
        return float(d["median"]) * np.exp(rng.normal(0.0, float(d["sigma"]), n))
    if kind == "empirical":
        return np.asarray(d["samples"], dtype=np.float64)[rng.integers(0, len(d["samples"]), n)]
    anchors = np.asarray(sorted(d["anchors"]), dtype=np.float64)
    x, y = anchors[:, 0], np.log(anchors[:, 1])
    nn = np.asarray(input_n if input_n is not None else np.full(n, x[0]), dtype=np.float64)
    logt = np.interp(nn, x, y)
    lo_slope = (y[1] - y[0]) / (x[1] - x[0])
    hi_slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
    logt = np.where(nn < x[0], y[0] + (nn - x[0]) * lo_slope, logt)
    logt = np.where(nn > x[-1], y[-1] + (nn - x[-1]) * hi_slope, logt)
    return np.exp(logt + rng.normal(0.0, float(d.get("sigma", 0.0)), n))


@dataclass
class SimResult:
    """One strategy's run: per-invocation columns (trace order) and counts."""

    strategy: Strategy
    trace: Trace
    schedule_s: np.ndarray
    cold_start_s: np.ndarray
    queue_s: np.ndarray
    exec_s: np.ndarray
    mem_mb: np.ndarray
    sandbox: np.ndarray
    sandboxes_created: int
    sandboxes_peak: int
    batches: int
    loads: dict[int, list[int]] = field(default_factory=dict)
    answer_s: np.ndarray | None = None  # exec's end → the gateway has the answer (None: all 0)

    @property
    def answer(self) -> np.ndarray:
        return self.answer_s if self.answer_s is not None else np.zeros(len(self.exec_s))

    @property
    def e2e_s(self) -> np.ndarray:
        return self.schedule_s + self.cold_start_s + self.queue_s + self.exec_s + self.answer

    def columns(self) -> dict[str, np.ndarray]:
        t = self.trace
        return {"arrival_s": t.arrival_s, "func": t.func, "input_n": t.input_n, "schedule_s": self.schedule_s,
                "cold_start_s": self.cold_start_s, "queue_s": self.queue_s, "exec_s": self.exec_s,
                "answer_s": self.answer, "e2e_s": self.e2e_s, "mem_mb": self.mem_mb, "sandbox": self.sandbox}

    def summary(self) -> dict[str, Any]:
        s = self.strategy
        out: dict[str, Any] = {"strategy": s.name, "interval_s": s.dispatch_interval_s,
                               "invocations": len(self.trace), "sandboxes": self.sandboxes_created,
                               "sandboxes_used": int(len(np.unique(self.sandbox))),
                               "sandboxes_peak": self.sandboxes_peak, "batches": self.batches}
        if isinstance(s, Kraken):
            out["predictor"] = s.params["predictor"]
        if isinstance(s, FaaSBatchSLO):
            out["chosen_interval_s"] = {self.trace.names[f]: s.interval_s(f) for f in sorted(s.t1_s)}
        cols = {"schedule": self.schedule_s, "cold_start": self.cold_start_s, "queue": self.queue_s,
                "exec": self.exec_s, "answer": self.answer, "e2e": self.e2e_s}
        for name, v in cols.items():
            ms = v * 1e3
            out[f"{name}_mean_ms"] = float(ms.mean())
            if name == "e2e":
                out["e2e_p50_ms"] = float(np.percentile(ms, 50))
            out[f"{name}_p98_ms"] = float(np.percentile(ms, 98))
        mem = self.mem_mb[np.isfinite(self.mem_mb)]
        out["mem_per_invocation_mb"] = float(mem.mean()) if len(mem) else None
        return out


def ps_finish_s(cpu_s: np.ndarray, background: float, cores: float, sandbox_cores: float = 0.0) -> np.ndarray:
    """Completion times (s after their common start) of jobs needing ``cpu_s`` seconds of CPU each,
    under processor sharing on ``cores`` with ``background`` other CPU-bound jobs (held constant):
    while ``k`` of them are left each progresses at ``min(1, cores / (k + background))``, so the
    short ones leave early and the rest speed up; a sandbox capped at ``sandbox_cores`` (its cgroup
    quota; 0: no cap) also holds each to ``sandbox_cores / k``. ``cores`` 0: no machine contention."""
    n = len(cpu_s)
    if (cores <= 0 and sandbox_cores <= 0) or n == 0:
        return np.array(cpu_s, dtype=np.float64)
    o = np.argsort(cpu_s, kind="stable")
    srt = cpu_s[o]
    k = np.arange(n, 0, -1, dtype=np.float64)
    slow = np.maximum(1.0, (k + background) / cores) if cores > 0 else np.ones(n)
    if sandbox_cores > 0:
        slow = np.maximum(slow, k / sandbox_cores)
    inc = srt.copy()
    inc[1:] -= srt[:-1]
    out = np.empty(n)
    out[o] = np.cumsum(inc * slow)
    return out


def _alone_slowdown(bg: float, cores: float, sandbox_cores: float) -> float:
    """How much slower one thread runs beside ``bg`` others, in a sandbox capped at ``sandbox_cores``."""
    slow = max(1.0, (1.0 + bg) / cores) if cores > 0 else 1.0
    return max(slow, 1.0 / sandbox_cores) if sandbox_cores > 0 else slow


@njit(cache=True)
def mean_load(buf: np.ndarray, n: int, t: float, horizon_s: float) -> float:
    """Of intervals ``buf[0:2, :n]`` (start, end) weighted ``buf[2, :n]``: the weight running at
    ``t``, or with ``horizon_s`` > 0 its mean over ``[t, t + horizon_s)`` (one pass, no temporaries)."""
    acc = 0.0
    if horizon_s <= 0:
        for i in range(n):
            if buf[0, i] <= t < buf[1, i]:
                acc += buf[2, i]
        return acc
    hi = t + horizon_s
    for i in range(n):
        over = min(buf[1, i], hi) - max(buf[0, i], t)
        if over > 0:
            acc += buf[2, i] * over
    return acc / horizon_s


class CpuLoad:
    """The CPU-bound work in flight: intervals [start, end) with a weight (1: one busy thread), in
    growing buffers (rows 0, 1, 2 of ``buf``: start, end, weight; the first ``n`` columns are live)."""

    def __init__(self) -> None:
        self.buf = np.empty((3, 64))
        self.n = 0
        self.first_end = math.inf
        self.forget_t = -math.inf

    def drop(self, t: float) -> None:
        """Forget what ended by ``t``."""
        if self.n and self.first_end <= t:
            live = self.buf[:, :self.n]
            keep = live[1] > t
            k = int(np.count_nonzero(keep))
            self.buf[:, :k] = live[:, keep]
            self.n = k
            self.first_end = float(self.buf[1, :k].min()) if k else math.inf

    def forget_until(self, t: float) -> None:
        """What ended by ``t`` may be forgotten (done at the next :meth:`at`: a query costs, a mark does not)."""
        self.forget_t = t

    def at(self, t: float, horizon_s: float = 0.0) -> float:
        """The weight running at ``t``, or with ``horizon_s`` its mean over ``[t, t + horizon_s)``."""
        self.drop(min(self.forget_t, t))
        if not self.n:
            return 0.0
        return float(mean_load(self.buf, self.n, t, horizon_s))

    def _room(self, k: int) -> None:
        if self.n + k > self.buf.shape[1]:
            grown = np.empty((3, max(2 * self.buf.shape[1], self.n + k)))
            grown[:, :self.n] = self.buf[:, :self.n]
            self.buf = grown

    def add(self, start: float, end: float, w: float) -> None:
        self._room(1)
        self.buf[:, self.n] = (start, end, w)
        self.n += 1
        self.first_end = min(self.first_end, end)

    def add_many(self, start: float | np.ndarray, ends: np.ndarray) -> None:
        """One thread each from ``start`` (one time, or one per thread) to each of ``ends``."""
        k = len(ends)
        self._room(k)
        self.buf[0, self.n:self.n + k] = start
        self.buf[1, self.n:self.n + k] = ends
        self.buf[2, self.n:self.n + k] = 1.0
        self.n += k
        self.first_end = min(self.first_end, float(ends.min()))


def simulate(trace: Trace, strategy: Strategy, pool: Pool | None = None, profile: dict | str | Path | None = None,
             **kwargs) -> SimResult:
    """Run ``strategy`` over ``trace`` in virtual time (module manual)."""
    a = bind_args("faas sim", SIM_ARGS, kwargs)
    prof = load_profile(profile)
    pool = pool if pool is not None else Pool()
    if len(trace) == 0:
        raise ArgError("faas sim: the trace has no invocation")
    slow = None
    if a["cores"] > 0 or a["sandbox_cores"] > 0:
        # the fixed point: each pass runs on copies (a strategy and a pool keep state), the last on
        # the caller's objects; a job's slowdown comes from processor sharing over the last pass
        for _ in range(a["ps_passes"]):
            _, jobs = _one_pass(trace, copy.deepcopy(strategy), copy.deepcopy(pool), prof, a, slow)
            slow = _slowdowns(jobs, len(trace), a, slow)
    return _one_pass(trace, strategy, pool, prof, a, slow)[0]


#: CPU jobs per invocation in the fixed point: exec, client build, hand-over, its requests in the shared server
ROLES = 4
#: the box of the shared server's jobs (one process for every sandbox: ``server_cores`` together)
SERVER_BOX = -2


def _slowdowns(jobs: dict[str, list], n: int, a: dict, prev: np.ndarray | None) -> np.ndarray:
    """Per invocation (column 0: its exec, 1: its client build, 2: its hand-over, 3: its server work) the slowdown of
    its CPU work under :func:`tailgate.faas.contention.ps_exact` over every job of a pass (cold
    starts' CPU, key -1, contends but is read by no one), averaged with the last pass's (damping,
    so a pass that flips a sandbox's reuse does not swing the next)."""
    out = np.full((n, ROLES), np.nan)
    if jobs["key"]:
        start, work = np.asarray(jobs["start"]), np.asarray(jobs["work"])
        key = np.asarray(jobs["key"])
        box = np.asarray(jobs["box"], dtype=np.int64)
        box[box == SERVER_BOX] = int(box.max()) + 1 if len(box) else 0
        fin = ps_exact(start, work, box, np.asarray(jobs["cap"]), a["cores"])
        mine = key >= 0
        out[key[mine] // ROLES, key[mine] % ROLES] = ((fin - start) / work)[mine]
    if prev is not None:
        both = np.isfinite(prev) & np.isfinite(out)
        out[both] = 0.5 * (out[both] + prev[both])
    return out


def _one_pass(trace: Trace, strategy: Strategy, pool: Pool, prof: dict, a: dict,
              slow_of: np.ndarray | None) -> tuple[SimResult, dict[str, list]]:
    """One simulation; ``slow_of`` (or None: each job's slowdown estimated when it starts) gives
    the slowdown of each invocation's CPU work; returns the result and the CPU jobs it started."""
    jobs: dict[str, list] = {"key": [], "start": [], "work": [], "box": [], "cap": []}
    kinds = np.array([1 if k == "io" else 0 for k in trace.kinds], dtype=np.int8)
    for k in set(trace.kinds):
        if k not in prof:
            raise ProfileError(f"profile: no entry for {k} functions")
    n = len(trace)
    rng = np.random.default_rng(a["seed"])
    exec_full = np.empty(n)
    exec_cached = np.empty(n)
    mem_full = np.full(n, np.nan)
    mem_cached = np.full(n, np.nan)
    exec_warm = np.empty(n)
    mem_warm = np.full(n, np.nan)
    for code, kname in ((0, "cpu"), (1, "io")):
        sel = np.flatnonzero(kinds[trace.func] == code)
        if not len(sel):
            continue
        p = prof[kname]
        exec_full[sel] = draw_ms(p["exec_ms"], rng, len(sel), trace.input_n[sel]) / 1e3
        exec_cached[sel] = (draw_ms(p["exec_cached_ms"], rng, len(sel)) / 1e3 if "exec_cached_ms" in p
                            else exec_full[sel])
        if p.get("mem_mb") is not None:
            mem_full[sel] = float(p["mem_mb"])
            mem_cached[sel] = float(p.get("mem_cached_mb", p["mem_mb"]))
            mem_warm[sel] = float(p.get("mem_warm_mb", p["mem_mb"]))
        if "exec_warm_ms" in p:  # its own stream: profiles without it simulate exactly as before
            exec_warm[sel] = draw_ms(p["exec_warm_ms"], np.random.default_rng(a["seed"] + 7 + code), len(sel)) / 1e3
        else:
            exec_warm[sel] = exec_full[sel]
    answer_cpu = np.zeros(n)  # each invocation's hand-over, alone (s); own streams: without it, as before
    for code, kname in ((0, "cpu"), (1, "io")):
        sel = np.flatnonzero(kinds[trace.func] == code)
        if len(sel) and "answer_ms" in prof.get(kname, {}):
            answer_cpu[sel] = draw_ms(prof[kname]["answer_ms"], np.random.default_rng(a["seed"] + 11 + code),
                                      len(sel)) / 1e3
    cold_cpu = {k: float(prof[k].get("cold_start_cpu_share", 0.0)) for k in ("cpu", "io") if k in prof}
    server_cpu = np.zeros(n)  # each I/O invocation's CPU work in the shared server (s), when modelled
    if a["server_cores"] > 0 and "server_ms" in prof.get("io", {}):
        sel = np.flatnonzero(kinds[trace.func] == 1)
        server_cpu[sel] = draw_ms(prof["io"]["server_ms"], np.random.default_rng(a["seed"] + 13), len(sel)) / 1e3
    uses_cache = strategy.name in ("faasbatch", "faasbatch-slo")
    # a sandbox without the reuse hook (the baselines') may start faster: the profile's cold_start_native_ms
    cold_key = {k: ("cold_start_native_ms" if not uses_cache and "cold_start_native_ms" in prof.get(k, {})
                    else "cold_start_ms") for k in ("cpu", "io")}
    cold_draw = {k: draw_ms(prof[k][cold_key[k]], np.random.default_rng(a["seed"] + 1 + c), max(16, n)) / 1e3
                 for c, k in enumerate(("cpu", "io")) if k in prof}
    cold_next = {k: 0 for k in cold_draw}

    order = np.lexsort((trace.arrival_s, trace.func))  # by function, then arrival
    arr = trace.arrival_s[order]
    funcs = trace.func[order]
    ef, ec, ew = exec_full[order], exec_cached[order], exec_warm[order]
    hand = answer_cpu[order]
    srv = server_cpu[order]
    answer = np.zeros(n)
    bounds = np.searchsorted(funcs, np.arange(trace.n_functions + 1))
    ready = np.empty(n)
    cold = np.zeros(n)
    queue = np.zeros(n)
    ex = np.empty(n)
    mem = np.empty(n)
    sbx = np.empty(n, dtype=np.int64)

    sfs_slice = strategy.slice_s if isinstance(strategy, SFS) else None
    cores = a["cores"]
    box = a["sandbox_cores"]  # the cap of the sandboxes of the function being dispatched (kind_cap)

    def kind_cap(kind: str) -> float:
        """A sandbox's cores: its quota, and for I/O also the interpreter lock its threads share."""
        sc, it = a["sandbox_cores"], a["io_thread_cores"]
        if kind == "io" and it > 0 and (cores > 0 or sc > 0):
            return min(sc, it) if sc > 0 else it
        return sc
    creators = [0.0] * a["parallel_creates"]  # heap of the times each creation slot frees
    inflight: list[tuple[float, int, int, int]] = []  # (end, func, sandbox, invocations)
    load = CpuLoad()
    io_share = float(prof.get("io", {}).get("cpu_share", a["io_cpu_share"]))
    cache_warm: set[int] = set()
    image_warm: set[int] = set()  # sandboxes that ran an invocation (without the reuse hook)

    def record(pos: np.ndarray, role: int, start, work: np.ndarray, sids, cap: float | None = None) -> None:
        """CPU jobs for the fixed point: key = ROLES * trace index + role (0: exec, 1: client build,
        2: hand-over, 3: server work; ``pos`` None: key -1, contending but read by no one)."""
        keep = work > 0
        if keep.any():
            keys = np.full(len(work), -1) if pos is None else ROLES * order[pos] + role
            jobs["key"].extend(keys[keep].tolist())
            jobs["start"].extend(np.broadcast_to(start, work.shape)[keep].tolist())
            jobs["work"].extend(work[keep].tolist())
            jobs["box"].extend(np.broadcast_to(sids, work.shape)[keep].tolist())
            jobs["cap"].extend([box if cap is None else cap] * int(np.count_nonzero(keep)))

    def native(sid: int, lo: np.ndarray, serial: bool) -> tuple[np.ndarray, np.ndarray]:
        """(exec, mem) of invocations ``lo`` (sorted positions) in sandbox ``sid`` without the reuse
        hook: the first in a fresh sandbox builds from a cold image (``exec_ms``); once a sandbox
        has run one, the libraries' own caches are warm (``exec_warm_ms``); run together in a
        fresh sandbox, all of them are first."""
        e, m_mb = ew[lo].copy(), mem_warm[order[lo]]
        if sid not in image_warm:
            image_warm.add(sid)
            first = lo[:1] if serial else lo
            k = len(first)
            e[:k], m_mb[:k] = ef[first], mem_full[order[first]]
        return e, m_mb
    free_at = np.zeros(trace.n_functions)
    ptr = bounds[:-1].copy()
    loads: dict[int, list[int]] = {}
    events: list[tuple[float, int]] = []
    for f in range(trace.n_functions):
        if bounds[f] < bounds[f + 1]:
            di = strategy.interval_s(f)
            a0 = arr[bounds[f]]
            heapq.heappush(events, (di * max(0.0, math.ceil(a0 / di - 1e-12)), f))
    next_clean = a["cleaner_period_s"]
    batches = 0

    def take_cold(kind: str) -> float:
        k = cold_next[kind]
        if k >= len(cold_draw[kind]):
            cold_draw[kind] = np.concatenate([cold_draw[kind], cold_draw[kind]])
        cold_next[kind] = k + 1
        return float(cold_draw[kind][k])

    def create(kind: str, at_s: float, sid: int) -> tuple[float, float]:
        """A cold start of ``sid`` asked for at ``at_s``: (its length s, when it is ready), behind the
        creations in progress (``parallel_creates`` at once); a start's own CPU contends."""
        c = take_cold(kind)
        begin = max(at_s, heapq.heappop(creators))
        heapq.heappush(creators, begin + c)
        if cold_cpu[kind] > 0 and (cores > 0 or kind_cap(kind) > 0):
            load.add(begin, begin + c, cold_cpu[kind])
            record(None, 0, begin, np.array([c * cold_cpu[kind]]), sid)
        return c, begin + c

    while events:
        t, f = heapq.heappop(events)
        if free_at[f] > t:  # the last dispatch of f is still acquiring: this one waits for it
            heapq.heappush(events, (float(free_at[f]), f))
            continue
        while inflight and inflight[0][0] <= t:
            end, g, sid, _ = heapq.heappop(inflight)
            pool.release(g, sid, end)
        load.forget_until(t)
        if next_clean <= t:  # the cleaner's last run at or before t (no acquisition in between)
            period = a["cleaner_period_s"]
            last = next_clean + period * math.floor((t - next_clean) / period)
            pool.expire(last)
            next_clean = last + period
        p0, stop = int(ptr[f]), int(bounds[f + 1])
        hi = p0 + int(np.searchsorted(arr[p0:stop], t, side="right"))
        nb = hi - p0
        if nb > 0 and not pool.can_acquire(f):  # at a bound: wait for the first sandbox to finish
            if not inflight:
                raise ArgError(f"faas sim: function {trace.names[f]} can get no sandbox "
                               f"(bounds {pool.max_per_function} per function, {pool.max_total} in total)")
            heapq.heappush(events, (max(t, inflight[0][0]), f))
            continue
        if nb > 0:
            batches += 1
            ptr[f] = hi
            loads.setdefault(f, []).append(nb)
            plan = strategy.plan(f, nb, t)
            want = max(1, min(plan.sandboxes, nb))
            kind = trace.kinds[f]
            box = kind_cap(kind)
            got: list[tuple[int, float, float]] = []  # (sandbox, ready s, cold s)
            t_acq = t
            # one invocation per sandbox with room for all: each is handed over as soon as its sandbox
            # is ready, as the gateway does, so a later one of the batch may take the sandbox an
            # earlier one freed meanwhile (warm) instead of waiting for a creation of its own
            one_each = plan.inside == "single" and want == nb > 1 and pool.available(f) >= nb
            while len(got) < want and not one_each:
                r = pool.acquire(f, t_acq)
                if r is None:  # a bound: the batch shares the sandboxes it got
                    break
                sid, is_cold = r
                if is_cold:
                    c, t_acq = create(kind, t_acq, sid)
                    got.append((sid, t_acq, c))
                else:
                    got.append((sid, t_acq, 0.0))
            free_at[f] = t_acq
            m = len(got)
            inside = "serial" if plan.inside == "single" else plan.inside  # one at a time if they share
            share_f = io_share if kind == "io" else 1.0

            def run_group(r_s: float, e: np.ndarray, serial: bool, pos: np.ndarray, sids: np.ndarray,
                          boxes: int = 1, share_f: float = share_f) -> tuple[np.ndarray, np.ndarray]:
                """(exec, queue) of the invocations at sorted positions ``pos`` that ``boxes`` sandboxes
                (``sids``, one per invocation) start at ``r_s``; their CPU load and jobs are recorded."""
                box = kind_cap(kind) * boxes
                if cores <= 0 and box <= 0:  # no contention: nothing to track
                    return (e.copy(), np.cumsum(e) - e) if serial else (e.copy(), np.zeros(len(e)))
                hp = np.minimum(e, sfs_slice) if sfs_slice is not None else np.zeros(len(e))
                rest = e - hp
                cpu = rest * share_f
                wait = rest - cpu
                sv = np.minimum(srv[pos], cpu)  # the part of the CPU work done by the shared server, after the rest
                cpu = cpu - sv
                known = slow_of[order[pos], 0] if slow_of is not None else np.full(len(e), np.nan)
                ks = slow_of[order[pos], 3] if slow_of is not None else np.full(len(e), np.nan)
                server_cap = a["server_cores"]

                def served(t0: np.ndarray) -> np.ndarray:
                    """The server phases starting at ``t0``: their length, recorded as the server's jobs."""
                    if not sv.any():
                        return np.zeros(len(e))
                    est = _alone_slowdown(load.at(float(t0.min())), cores, server_cap)
                    length = sv * np.where(np.isfinite(ks), ks, est)
                    record(pos, 3, t0, sv, SERVER_BOX, server_cap)
                    return length

                if serial or len(e) == 1:
                    own = float(e.sum())
                    slow = known if np.isfinite(known).all() else np.where(
                        np.isfinite(known), known, _alone_slowdown(load.at(r_s, own), cores, box))
                    client = hp + cpu * slow
                    if serial:  # the server phases' start times depend on the ones before: estimate in order
                        done = client + wait
                        starts = r_s + np.cumsum(done) - done + client
                        done = done + served(starts)
                        fin = np.cumsum(done)
                        load.add(r_s, r_s + float(fin[-1]), share_f)
                        record(pos, 0, r_s + fin - done + hp, cpu, sids)
                        return done, fin - done
                    done = client + served(r_s + client) + wait
                    load.add(r_s, r_s + float(done[0] - wait[0]), 1.0)
                    record(pos, 0, r_s + hp, cpu, sids)
                    return done, np.zeros(1)
                if np.isfinite(known).all():
                    fin = cpu * known
                else:
                    alone = ps_finish_s(cpu, 0.0, cores, box)
                    bg = load.at(r_s, float((hp + alone).max()))  # the others' mean load while these run alone
                    fin = ps_finish_s(cpu, bg, cores, box) if bg > 0 else alone
                    fin = np.where(np.isfinite(known), cpu * known, fin)
                fin = fin + served(r_s + hp + fin)
                load.add_many(r_s, r_s + hp + fin)
                record(pos, 0, r_s + hp, cpu, sids)
                return hp + fin + wait, np.zeros(len(e))

            def one_sandbox(sid: int, r_s: float, c_s: float, lo: int, up: int, inside: str,
                            kind: str = kind, box: float = box, f: int = f) -> None:
                """Invocations at sorted positions ``lo:up`` in sandbox ``sid``, ready at ``r_s`` after a
                cold start of ``c_s`` (0: warm); its end goes in flight."""
                cold[lo:up] = c_s
                ready[lo:up] = r_s - c_s
                sbx[lo:up] = sid
                if uses_cache and kind == "io" and inside != "serial":
                    # the threads start together; the first to reach the hook builds the client under
                    # its lock (CPU work), the others block in the hook (inside the handler: exec) until
                    # it is built, then all run with the cached client
                    if sid in cache_warm:
                        build = 0.0
                        mem[lo:up] = mem_cached[order[lo:up]]
                    else:
                        cache_warm.add(sid)
                        build_cpu = max(float(ef[lo] - ec[lo]), 0.0)
                        known = slow_of[order[lo], 1] if slow_of is not None else math.nan
                        if math.isfinite(known):
                            build = build_cpu * float(known)
                        else:
                            build = build_cpu * _alone_slowdown(load.at(r_s, build_cpu), cores, box)
                        if build > 0:
                            load.add(r_s, r_s + build, 1.0)
                            if cores > 0 or box > 0:
                                record(np.array([lo]), 1, np.array([r_s]), np.array([build_cpu]), sid)
                        mem[lo:up] = mem_cached[order[lo:up]]
                        mem[lo] = mem_full[order[lo]]
                    e, q = run_group(r_s + build, ec[lo:up], False, np.arange(lo, up), np.full(up - lo, sid))
                    ex[lo:up] = e + build
                    queue[lo:up] = q
                else:
                    e_in, mem[lo:up] = native(sid, np.arange(lo, up), inside == "serial")
                    e, q = run_group(r_s, e_in, inside == "serial", np.arange(lo, up), np.full(up - lo, sid))
                    ex[lo:up] = e
                    queue[lo:up] = q
                end = r_s + float((queue[lo:up] + ex[lo:up]).max())
                heapq.heappush(inflight, (end, f, sid, up - lo))

            if one_each:
                first_cold = None
                for p in range(p0, hi):
                    mine = [x for x in inflight if x[1] == f and x[0] <= t_acq]
                    if mine:  # this function's sandboxes that finished before now: warm again
                        inflight[:] = [x for x in inflight if not (x[1] == f and x[0] <= t_acq)]
                        heapq.heapify(inflight)
                        for end, g, sid, _ in sorted(mine):
                            pool.release(g, sid, end)
                    r = pool.acquire(f, t_acq)
                    if r is None:  # cannot happen: available() counted a sandbox for each
                        raise RuntimeError(f"faas sim: no sandbox for {trace.names[f]} after available() said {nb}")
                    sid, is_cold = r
                    c = 0.0
                    if is_cold:
                        c, t_acq = create(kind, t_acq, sid)
                    one_sandbox(sid, t_acq, c, p, p + 1, "single")
                    first_cold = c if first_cold is None else first_cold
                free_at[f] = t_acq
                strategy.observe(f, first_cold, float(ex[p0:hi].mean()))
            elif m == 1:  # one sandbox holds the whole batch
                sid, r_s, c_s = got[0]
                one_sandbox(sid, r_s, c_s, p0, hi, inside)
                strategy.observe(f, c_s, float(ex[p0:hi].mean()))
            else:  # several sandboxes: round robin over them
                share = np.arange(nb) % m
                r_of = np.array([g[1] for g in got])[share]  # each invocation's sandbox ready time
                together = inside != "serial" or nb <= m  # one each: serial and parallel are the same
                e_in = np.empty(nb)
                for j, (sid, _, _) in enumerate(got):
                    pos = p0 + np.flatnonzero(share == j)
                    e_in[pos - p0], mem[pos] = native(sid, pos, not together)
                if together:  # the sandboxes ready at one time start together: one sharing group
                    for r_s in np.unique(r_of):
                        idx = p0 + np.flatnonzero(r_of == r_s)
                        boxes = len({got[j][0] for j in share[idx - p0]})
                        ex[idx], queue[idx] = run_group(float(r_s), e_in[idx - p0], False, idx,
                                                        np.array([got[j][0] for j in share[idx - p0]]), boxes=boxes)
                for j, (sid, r_s, c_s) in enumerate(got):
                    idx = p0 + np.flatnonzero(share == j)
                    if not together:
                        ex[idx], queue[idx] = run_group(r_s, e_in[idx - p0], True, idx, np.full(len(idx), sid))
                    cold[idx] = c_s
                    ready[idx] = r_s - c_s
                    sbx[idx] = sid
                    heapq.heappush(inflight, (r_s + float((queue[idx] + ex[idx]).max()), f, sid, len(idx)))
                strategy.observe(f, got[0][2], float(ex[p0:hi].mean()))
            if (cores > 0 or box > 0) and hand[p0:hi].any():
                # the hand-over (fork, exit, frames back) after exec, slowed by the machine's load then
                pos = np.arange(p0, hi)
                end_s = ready[p0:hi] + cold[p0:hi] + queue[p0:hi] + ex[p0:hi]
                known = slow_of[order[pos], 2] if slow_of is not None else np.full(nb, np.nan)
                for i in np.flatnonzero(~np.isfinite(known)):
                    known[i] = _alone_slowdown(load.at(float(end_s[i])), cores, box)
                answer[p0:hi] = hand[p0:hi] * known
                load.add_many(end_s, end_s + answer[p0:hi])
                record(pos, 2, end_s, hand[p0:hi], sbx[p0:hi])
            else:
                answer[p0:hi] = hand[p0:hi]
        if ptr[f] < bounds[f + 1]:
            di = strategy.interval_s(f)
            gap = arr[ptr[f]] - t
            heapq.heappush(events, (t + di * max(1.0, math.ceil(gap / di - 1e-12)), f))

    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)

    def back(v: np.ndarray) -> np.ndarray:
        return v[inv]

    schedule = back(ready) - trace.arrival_s
    return SimResult(strategy, trace, np.maximum(schedule, 0.0), back(cold), back(queue), back(ex), back(mem),
                     back(sbx), pool.created, pool.peak_total, batches, loads, back(answer)), jobs


def kraken_calibration(vanilla: SimResult, quantile: float) -> tuple[dict, dict, dict]:
    """From a Vanilla run: per function the SLO (``quantile`` of schedule + cold start + exec, the
    original's schedule + exec), the mean exec, and the batch size of each dispatch."""
    tr = vanilla.trace
    total = vanilla.schedule_s + vanilla.cold_start_s + vanilla.exec_s
    slo, mean = {}, {}
    for f in range(tr.n_functions):
        sel = tr.func == f
        if sel.any():
            slo[f] = float(np.quantile(total[sel], quantile))
            mean[f] = float(vanilla.exec_s[sel].mean())
    return slo, mean, vanilla.loads


def run_strategies(trace: Trace, names: list[str], intervals_s: list[float], profile: dict | None = None,
                   pool_args: dict | None = None, params: dict[str, dict] | None = None,
                   **sim_args) -> list[SimResult]:
    """Every strategy in ``names`` at every dispatch interval; Kraken is calibrated from a Vanilla run
    at the same interval (run once and reused when Vanilla is also asked for)."""
    params = params or {}
    out: list[SimResult] = []

    def one(name: str, di: float, done: dict[str, SimResult]) -> SimResult:
        if name in done:
            return done[name]
        strat = make_strategy(name, dispatch_interval_s=di, **params.get(name, {}))
        if isinstance(strat, Kraken):
            van = one("vanilla", di, done)
            strat.calibrate(*kraken_calibration(van, strat.params["slo_quantile"]))
        done[name] = simulate(trace, strat, Pool(**(pool_args or {})), profile, **sim_args)
        return done[name]

    for di in intervals_s:
        done: dict[str, SimResult] = {}
        out.extend(one(name, di, done) for name in names)
    return out


POINT_COLUMNS = ("strategy", "interval_s", "invocations", "sandboxes", "sandboxes_used", "sandboxes_peak", "batches",
                 "e2e_p50_ms", "e2e_p98_ms", "e2e_mean_ms", "schedule_p98_ms", "cold_start_p98_ms", "queue_p98_ms",
                 "exec_p98_ms", "answer_p98_ms", "schedule_mean_ms", "cold_start_mean_ms", "queue_mean_ms", "exec_mean_ms",
                 "answer_mean_ms",
                 "mem_per_invocation_mb", "predictor")
INVOCATION_COLUMNS = ("arrival_s", "func", "input_n", "schedule_s", "cold_start_s", "queue_s", "exec_s", "answer_s",
                      "e2e_s", "mem_mb", "sandbox")


def write_results(out_dir: str | Path, results: list[SimResult], config: dict, per_invocation: bool = False) -> Path:
    """``points.csv`` (one row per strategy and interval), ``summary.json`` (config and points) and,
    with ``per_invocation``, ``invocations-STRATEGY-INTERVAL.csv`` (the columns of the manual)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ArgError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    points = [r.summary() for r in results]
    with open(out / "points.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(POINT_COLUMNS)
        for p in points:
            w.writerow(["" if p.get(c) is None else p.get(c) for c in POINT_COLUMNS])
    (out / "summary.json").write_text(json.dumps({"config": config, "points": points}, indent=1) + "\n")
    if per_invocation:
        for r in results:
            cols = r.columns()
            path = out / f"invocations-{r.strategy.name}-{r.strategy.dispatch_interval_s:g}.csv"
            data = np.column_stack([np.asarray(cols[c], dtype=np.float64) for c in INVOCATION_COLUMNS])
            np.savetxt(path, data, delimiter=",", header=",".join(INVOCATION_COLUMNS), comments="", fmt="%.9g")
    return out
