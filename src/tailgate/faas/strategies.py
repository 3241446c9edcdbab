"""Function-batching strategies as pure policy objects, and the bounded warm pool they share.

Manual
------
Invocations of a function queue at the gateway; every dispatch interval (a *tick*) the gateway
takes each function's queued invocations as one *batch* and asks the strategy how to place it::

    strat = make_strategy("faasbatch", dispatch_interval_s=0.2)
    plan = strat.plan(func, n_invocations, now_s)    # -> Plan(sandboxes, inside)
    ...                                              # acquire plan.sandboxes from the Pool, run
    strat.observe(func, cold_start_s, exec_s)        # what the batch cost (a strategy may adapt)

``inside`` says how a sandbox runs what it was given: ``"parallel"`` (all at once, FaaSBatch's
in-sandbox expansion), ``"serial"`` (one after another, which makes queue time: Kraken) or
``"single"`` (one invocation per sandbox). The strategies hold no clock and do no I/O: they get
``now`` and what happened, so one implementation drives the simulator (:mod:`tailgate.faas.sim`)
and, later, the live gateway.

Strategies (``STRATEGIES``), from the FaaSBatch reference sheet (§3, §6):

=============  ===========================================================================
faasbatch      the batch → one sandbox, run in parallel inside it. Dispatch is serialised per
               function and in-flight sandboxes are accounted in the pool (the original started a
               new dispatch every tick while the last one still ran: overlapping batches each
               cold-started a sandbox; reference §12)
vanilla        one sandbox per invocation, warm ones reused LIFO, the rest cold-started one after
               another (blocking): the OpenWhisk model (the original's BaseBatching)
kraken         per function, SLO = the ``slo_quantile`` (0.98) of Vanilla's schedule + exec; batch
               size ⌊SLO / mean exec⌋; sandboxes ⌈predicted load / batch size⌉, each running its
               share serially. ``predictor="perfect"`` replays Vanilla's per-dispatch loads (the
               original's), ``"ewma"`` predicts online from the loads seen so far (``alpha``).
               :meth:`Kraken.calibrate` takes Vanilla's numbers: the simulator's from a simulated
               run, the live gateway's from a live run's directory (``faas serve
               --calibrate-from DIR``, :mod:`tailgate.faas.live.calibrate`)
sfs            one sandbox per invocation, as Vanilla; inside the worker a new invocation runs at
               high priority, first in first out, for ``slice_s``, then is demoted to the fair
               class (a model of SFS's user-level scheduler: the simulator stretches only the
               demoted part by the CPU contention). Live (process sandbox), each invocation is
               SCHED_FIFO (RT priority 1) for ``slice_s`` of its own CPU time, then SCHED_OTHER
               nice 0, with all sandboxes' SCHED_FIFO time capped together at half of each CPU;
               where SCHED_FIFO cannot be had, nice -10 → 0, else nothing, and the gateway says
               which (``sfs_means``). Unlike SFS, no preemption among the new ones beyond the
               FIFO class's, and a demotion can come late (a signal or a thread does it;
               :mod:`tailgate.faas.live.zygote`)
faasbatch-slo  beyond the paper: FaaSBatch whose dispatch interval is chosen per function from its
               latency objective ``slo_s`` and measured T0 (cold start) and T1 (its work):
               interval = clamp(slo_s − T0 − T1, min_interval_s, max_interval_s), with T0 and T1
               EWMAs (``alpha``) of what each batch cost, so it adapts as they change; until a
               function's first batch is measured, its interval is ``dispatch_interval_s``
=============  ===========================================================================

:class:`Pool` is the per-function warm pool: LIFO reuse, idle sandboxes destroyed after
``idle_lifetime_s`` (600 s), and a bound on live sandboxes per function and in total (the
original's ``max_containers`` was commented out). When the total bound is reached, an idle
sandbox of another function is destroyed to make room; when nothing can be made room for,
:meth:`Pool.acquire` returns None and the caller waits for a sandbox to finish.

Arguments, every strategy's (:data:`COMMON_ARGS`) and the pool's (:data:`POOL_ARGS`):

{common}

Each strategy's own (:data:`STRATEGY_ARGS`):

{own}

Example:

>>> from tailgate.faas.strategies import make_strategy, Pool
>>> make_strategy("faasbatch").plan(func=0, n=5, now_s=0.2)
Plan(sandboxes=1, inside='parallel')
>>> make_strategy("vanilla").plan(func=0, n=5, now_s=0.2)
Plan(sandboxes=5, inside='single')
>>> pool = Pool(max_per_function=2, max_total=3)
>>> [pool.acquire(0, now_s=0.0) for _ in range(3)]
[(0, True), (1, True), None]
>>> pool.release(0, 1, now_s=1.0); pool.acquire(0, now_s=2.0)
(1, False)
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import Mapping, NamedTuple, Sequence

from tailgate.core.args import Arg, bind_args, render_args
from tailgate.core.errors import ArgError

INSIDE = ("parallel", "serial", "single")


class Plan(NamedTuple):
    """How one batch is placed: how many sandboxes, and how each runs its share."""

    sandboxes: int
    inside: str


COMMON_ARGS = (
    Arg("dispatch_interval_s", float, 0.2, unit="s", min=1e-4,
        help="the dispatch tick: a function's invocations queued since the last tick form one batch"),
)

STRATEGY_ARGS: dict[str, tuple[Arg, ...]] = {
    "faasbatch": (),
    "vanilla": (),
    "kraken": (
        Arg("predictor", str, "perfect", unit="-", choices=("perfect", "ewma"),
            help="load predictor: replay of Vanilla's per-dispatch loads (the original) or an online EWMA"),
        Arg("slo_quantile", float, 0.98, unit="quantile", min=0.01, max=1.0,
            help="the SLO is this quantile of Vanilla's schedule + exec per function"),
        Arg("alpha", float, 0.5, unit="-", min=0.0, max=1.0, help="weight of the newest load in the EWMA"),
    ),
    "sfs": (
        Arg("slice_s", float, 0.1, unit="s", min=0.0,
            help="time a new invocation runs first in first out at high priority before it is demoted"),
    ),
    "faasbatch-slo": (
        Arg("slo_s", float, 1.0, unit="s", min=1e-3, help="each function's latency objective (end to end)"),
        Arg("min_interval_s", float, 0.01, unit="s", min=1e-4, help="shortest dispatch interval chosen"),
        Arg("max_interval_s", float, 0.5, unit="s", min=1e-4, help="longest dispatch interval chosen"),
        Arg("t0_s", float, 0.3, unit="s", min=0.0, help="cold start assumed until one is measured"),
        Arg("t1_s", float, 0.1, unit="s", min=0.0, help="per-invocation work assumed until some is measured"),
        Arg("alpha", float, 0.3, unit="-", min=0.0, max=1.0, help="weight of the newest measurement in T0/T1"),
    ),
}
STRATEGIES = tuple(STRATEGY_ARGS)

POOL_ARGS = (
    Arg("idle_lifetime_s", float, 600.0, unit="s", min=0.0, help="an idle warm sandbox is destroyed after this"),
    Arg("max_per_function", int, 1000, unit="sandboxes", min=1, help="live sandboxes of one function at most"),
    Arg("max_total", int, 4000, unit="sandboxes", min=1, help="live sandboxes of all functions at most"),
)

__doc__ = __doc__.replace("{common}", render_args(COMMON_ARGS + POOL_ARGS)).replace(
    "{own}", "\n\n".join(f"{name}:\n{render_args(decl)}" for name, decl in STRATEGY_ARGS.items() if decl))


def strategy_args(name: str) -> tuple[Arg, ...]:
    """Every argument ``name`` takes (common ones first)."""
    if name not in STRATEGY_ARGS:
        raise ArgError(f"faas strategy {name!r}: unknown (strategies: {', '.join(STRATEGIES)})")
    return COMMON_ARGS + STRATEGY_ARGS[name]


class Strategy:
    """Base: the dispatch interval, no adaptation. Subclasses decide :meth:`plan`."""

    name = "?"

    def __init__(self, **params) -> None:
        self.params = bind_args(f"faas strategy {self.name}", strategy_args(self.name), params)
        self.dispatch_interval_s = self.params["dispatch_interval_s"]

    def interval_s(self, func: int) -> float:
        """The dispatch interval of ``func`` now."""
        return self.dispatch_interval_s

    def plan(self, func: int, n: int, now_s: float) -> Plan:
        raise NotImplementedError

    def observe(self, func: int, cold_start_s: float, exec_s: float) -> None:
        """What a batch of ``func`` cost: its sandbox's cold start (0 if warm) and mean exec, in s."""

    def describe(self) -> dict:
        return {"strategy": self.name, **self.params}


class FaaSBatch(Strategy):
    name = "faasbatch"

    def plan(self, func: int, n: int, now_s: float) -> Plan:
        return Plan(1, "parallel")


class Vanilla(Strategy):
    name = "vanilla"

    def plan(self, func: int, n: int, now_s: float) -> Plan:
        return Plan(n, "single")


class SFS(Strategy):
    name = "sfs"

    def plan(self, func: int, n: int, now_s: float) -> Plan:
        return Plan(n, "single")

    @property
    def slice_s(self) -> float:
        return self.params["slice_s"]


class Kraken(Strategy):
    """Kraken; needs Vanilla's per-function SLO inputs (:meth:`calibrate`) before :meth:`plan`."""

    name = "kraken"

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.batch_size: dict[int, int] = {}
        self.slo_s: dict[int, float] = {}
        self._loads: dict[int, Sequence[int]] = {}
        self._seq: dict[int, int] = {}
        self._ewma: dict[int, float] = {}
        self.calibrated_from = ""

    def calibrate(self, slo_s: Mapping[int, float], mean_exec_s: Mapping[int, float],
                  loads: Mapping[int, Sequence[int]], source: str = "") -> None:
        """Vanilla's results per function: the SLO (its quantile of schedule + exec), mean exec,
        and the batch size of each of its dispatches, in order (replayed by the perfect predictor).
        ``source`` names where they came from (a live run's directory); :meth:`describe` says it."""
        for f, slo in slo_s.items():
            self.slo_s[f] = float(slo)
            self.batch_size[f] = kraken_batch_size(slo, mean_exec_s[f])
        self._loads = {f: list(v) for f, v in loads.items()}
        self.calibrated_from = source

    def describe(self) -> dict:
        out = super().describe()
        if self.calibrated_from:
            out["calibrated_from"] = self.calibrated_from
        return out

    def predicted_load(self, func: int, n: int) -> float:
        k = self._seq.get(func, 0)
        self._seq[func] = k + 1
        if self.params["predictor"] == "perfect":
            log = self._loads.get(func, ())
            return float(log[k]) if k < len(log) else float(n)
        prev = self._ewma.get(func)
        a = self.params["alpha"]
        self._ewma[func] = float(n) if prev is None else a * n + (1.0 - a) * prev
        return 1.0 if prev is None else prev

    def plan(self, func: int, n: int, now_s: float) -> Plan:
        if func not in self.batch_size:
            raise ArgError(f"faas strategy kraken: function {func} was not calibrated from a Vanilla run")
        pred = self.predicted_load(func, n)
        k = max(1, min(n, math.ceil(pred / self.batch_size[func])))
        return Plan(k, "serial")


def kraken_batch_size(slo_s: float, mean_exec_s: float) -> int:
    """Kraken's batch size: ⌊SLO / mean duration⌋, at least 1."""
    if not mean_exec_s > 0:
        return 1
    return max(1, int(math.floor(slo_s / mean_exec_s)))


class FaaSBatchSLO(Strategy):
    name = "faasbatch-slo"

    def __init__(self, **params) -> None:
        super().__init__(**params)
        p = self.params
        if p["min_interval_s"] > p["max_interval_s"]:
            raise ArgError(f"faas strategy faasbatch-slo: min_interval_s {p['min_interval_s']:g} s > "
                           f"max_interval_s {p['max_interval_s']:g} s")
        self.t0_s: dict[int, float] = {}
        self.t1_s: dict[int, float] = {}

    def interval_s(self, func: int) -> float:
        p = self.params
        if func not in self.t1_s:  # nothing measured yet: the common dispatch interval
            return self.dispatch_interval_s
        slack = p["slo_s"] - self.t0_s.get(func, p["t0_s"]) - self.t1_s.get(func, p["t1_s"])
        return min(p["max_interval_s"], max(p["min_interval_s"], slack))

    def plan(self, func: int, n: int, now_s: float) -> Plan:
        return Plan(1, "parallel")

    def observe(self, func: int, cold_start_s: float, exec_s: float) -> None:
        a = self.params["alpha"]
        if cold_start_s > 0:
            self.t0_s[func] = a * cold_start_s + (1 - a) * self.t0_s.get(func, self.params["t0_s"])
        self.t1_s[func] = a * exec_s + (1 - a) * self.t1_s.get(func, self.params["t1_s"])


_CLASSES = {c.name: c for c in (FaaSBatch, Vanilla, Kraken, SFS, FaaSBatchSLO)}


def make_strategy(name: str, **params) -> Strategy:
    """A strategy by name; an unknown name or a bad argument is refused in one line."""
    if name not in _CLASSES:
        raise ArgError(f"faas strategy {name!r}: unknown (strategies: {', '.join(STRATEGIES)})")
    return _CLASSES[name](**params)


class Pool:
    """Warm sandboxes per function (LIFO), idle expiry and bounds; see the module manual."""

    def __init__(self, **params) -> None:
        p = bind_args("faas pool", POOL_ARGS, params)
        self.idle_lifetime_s = p["idle_lifetime_s"]
        self.max_per_function = p["max_per_function"]
        self.max_total = p["max_total"]
        self.warm: dict[int, deque] = {}  # func -> deque of (sandbox id, idle since s); right end = newest
        self.live: dict[int, int] = {}
        self.live_total = 0
        self.created = 0
        self.destroyed = 0
        self.peak_total = 0
        self._next_id = 0
        self._idle_heap: list[tuple[float, int, int]] = []  # (idle since s, func, sandbox); stale ones skipped
        self._idle_since: dict[int, float] = {}  # sandbox -> idle since s, for the warm ones

    def _drop(self, func: int, sid: int | None = None) -> None:
        """Destroy ``func``'s idle sandbox ``sid`` (default: its oldest)."""
        q = self.warm[func]
        if sid is None or q[0][0] == sid:
            sid = q.popleft()[0]
        else:  # a tie in idle time: not the leftmost
            q.remove(next(e for e in q if e[0] == sid))
        del self._idle_since[sid]
        self.live[func] -= 1
        self.live_total -= 1
        self.destroyed += 1

    def _clean_top(self) -> None:
        h = self._idle_heap
        while h and self._idle_since.get(h[0][2]) != h[0][0]:
            heapq.heappop(h)

    def _destroy_oldest_idle(self, other_than: int) -> bool:
        self._clean_top()
        if self._idle_heap and self._idle_heap[0][1] != other_than:
            _, f, sid = heapq.heappop(self._idle_heap)
            self._drop(f, sid)
            return True
        best_f, best_t = None, math.inf  # the oldest idle one is the asker's own: look further
        for f, q in self.warm.items():
            if f != other_than and q and q[0][1] < best_t:
                best_f, best_t = f, q[0][1]
        if best_f is None:
            return False
        self._drop(best_f)
        return True

    def can_acquire(self, func: int) -> bool:
        """Whether :meth:`acquire` would give ``func`` a sandbox now."""
        if self.warm.get(func):
            return True
        if self.live.get(func, 0) >= self.max_per_function:
            return False
        return self.live_total < self.max_total or any(q for f, q in self.warm.items() if f != func)

    def available(self, func: int) -> int:
        """How many :meth:`acquire` calls for ``func`` would get a sandbox now, one after another:
        its warm ones, then new ones up to the per-function bound and the total one (other
        functions' idle sandboxes destroyed to make room)."""
        warm = len(self.warm.get(func, ()))
        room_f = self.max_per_function - self.live.get(func, 0)
        room_total = self.max_total - self.live_total + sum(len(q) for f, q in self.warm.items() if f != func)
        return warm + max(0, min(room_f, room_total))

    def acquire(self, func: int, now_s: float) -> tuple[int, bool] | None:
        """A sandbox for ``func``: (id, cold) — the newest warm one, else a new one — or None at a bound."""
        q = self.warm.get(func)
        if q:
            sid = q.pop()[0]
            del self._idle_since[sid]
            return sid, False
        if self.live.get(func, 0) >= self.max_per_function:
            return None
        if self.live_total >= self.max_total and not self._destroy_oldest_idle(func):
            return None
        sid = self._next_id
        self._next_id += 1
        self.live[func] = self.live.get(func, 0) + 1
        self.live_total += 1
        self.created += 1
        self.peak_total = max(self.peak_total, self.live_total)
        return sid, True

    def discard(self, func: int, sid: int) -> None:
        """``sid`` (acquired, not released) is gone — it died or failed to start: forget it."""
        self.live[func] -= 1
        self.live_total -= 1
        self.destroyed += 1

    def release(self, func: int, sid: int, now_s: float) -> None:
        """``sid`` finished its work at ``now_s`` and is idle (warm) again."""
        q = self.warm.setdefault(func, deque())
        if q and q[-1][1] > now_s:
            raise ValueError(f"faas pool: sandbox {sid} released at {now_s} s, before one released at {q[-1][1]} s")
        q.append((sid, now_s))
        self._idle_since[sid] = now_s
        heapq.heappush(self._idle_heap, (now_s, func, sid))

    def expire(self, now_s: float) -> int:
        """Destroy the sandboxes idle for longer than the lifetime; returns how many."""
        gone = 0
        limit = now_s - self.idle_lifetime_s
        while True:
            self._clean_top()
            if not self._idle_heap or self._idle_heap[0][0] >= limit:
                return gone
            _, f, sid = heapq.heappop(self._idle_heap)
            self._drop(f, sid)
            gone += 1

    def idle(self, func: int) -> int:
        return len(self.warm.get(func, ()))
