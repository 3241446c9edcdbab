"""Tasks and workers with BESS semantics, and the run loop.

Manual
------
A :class:`Task` is rooted at a task-owning module (a source or a queue). One *round* asks the root
for up to ``burst`` packets and runs them to completion through the task's modules in longest-path
order; batches that reach one input gate from several upstream gates within the round are merged
before the module runs, so a merge point is called once per round.

A :class:`Worker` schedules its tasks, one round at a time:

- ``policy="rr"`` — round-robin;
- ``policy="wfq"`` — weighted fair (stride scheduling): each task has a ``share``; the task with the
  least ``usage / share`` runs next, where usage counts ``resource="packets"`` or ``resource="time"``
  (nanoseconds on the run's clock). An idle task is not allowed to hoard credit.

Every module call is charged to the clock (see :mod:`tailgate.core.clock`): the wall clock measures
it, the virtual clock advances by the module's modeled ``T0 + T1·b``.

A module with ``timer = True`` (a fractional buffer) exposes ``deadline_ns`` and ``on_timer(now_ns)``:
its task calls ``on_timer`` in every round once the deadline has passed, before the round's
modules run, even when the root had no packets; the packets it releases run through the rest of
the task in that round. When every task is idle the run loop also waits for the earliest deadline,
so a virtual clock jumps to it instead of stopping.

A task whose downstream queue signals overload (backpressure) yields without work, unless its root
ignores backpressure. Before the first round every module processes one empty batch, so that
numba's kernel loading is not counted as packet-processing time.

:class:`Runtime` checks the pipeline, builds the tasks (one default round-robin worker unless the
script made workers), and :meth:`Runtime.run` runs until a time limit, a packet limit, or until
nothing will ever happen again (every source exhausted and every queue empty).
"""

from __future__ import annotations

import time
from operator import attrgetter
from typing import Callable

from tailgate.core.clock import Clock, VirtualClock, WallClock
from tailgate.core.errors import ArgError, GraphError, TailgateError
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.module import Module
from tailgate.packet.pool import DEFAULT_BURST, Batch, PacketPool

_merge = Batch.merge
_pass_of = attrgetter("pass_")


class Task:
    def __init__(self, root: Module, modules: list[Module], clock: Clock, burst: int = DEFAULT_BURST) -> None:
        self.root = root
        self.name = root.name
        self.modules = modules
        self.downstream = modules[1:]
        self.queues_downstream = [m for m in self.downstream if m.task_root]
        self.clock = clock
        self.burst = burst
        self.share = 1.0
        self.pass_ = 0.0
        self.rounds = 0
        self.packets = 0
        self.time_ns = 0
        self.yields = 0
        self._calls = None
        # Modules with a deadline (a fractional buffer's flush timeout): checked every round,
        # also when the root had nothing, so that a buffered packet leaves when traffic stops.
        self.timers = [m for m in self.downstream if getattr(m, "timer", False)]
        # A wall clock's readings are only ever subtracted here, so its own counter serves: one
        # C call per reading instead of a Python method (and ``charge``), about 1 us a round.
        self._now = time.perf_counter_ns if type(clock) is WallClock else clock.now_ns

    def __repr__(self) -> str:
        return f"Task({self.name}, {len(self.modules)} modules)"

    def run_round(self) -> int:
        """One round: up to ``burst`` packets from the root, run to completion. Returns packets."""
        root = self.root
        if self.queues_downstream and getattr(root, "backpressure", True):
            for q in self.queues_downstream:
                if q.overloaded():
                    self.yields += 1
                    return 0
        # The hot loop of the whole data plane: Python runs here once per module per round.
        # (module, input gate, its pending list) in call order, built on the first round: the
        # pending lists live as long as their modules, and one flat loop is cheaper than two.
        calls = self._calls
        if calls is None:
            # ``exact``: an input fed by a module that emits batches of a chosen size (a fractional
            # buffer) gets them one call each instead of merged, as BESS runs each to completion.
            calls = self._calls = [
                (m, ig, m._pending[ig], any(getattr(up, "exact_batches", False) for up, _g in m._feeders[ig]))
                for m in self.downstream for ig in m._igate_range
            ]
        clock = self.clock
        virtual = clock.virtual
        now = self._now
        t_start = now()
        n = root.run_task(self.burst)
        if virtual:
            root.time_ns += clock.charge(t_start, root.cost_ns[0], root.cost_ns[1], n)
        else:
            root.time_ns += now() - t_start
        timers = self.timers
        if timers:
            fired = 0
            tnow = clock.now_ns()
            for m in timers:
                if m.deadline_ns <= tnow:
                    fired += m.on_timer(tnow)
            if n == 0 and fired == 0:
                return 0
        elif n == 0:
            return 0
        if n and not root.n_igates:
            # A source's "input" is what it made; a queue already counted its packets on enqueue.
            root.packets_in += n
            root.batches_in += 1
        for m, ig, pend, exact in calls:
            # (a module never feeds its own input within a round: the graph has no cycle
            # without a queue, and a queue is a task root; so this ends once pend is empty)
            while pend:
                if len(pend) == 1:
                    batch = pend.pop()
                elif exact:
                    batch = pend.pop(0)      # one call per batch, in the order they came
                else:
                    batch = _merge(pend)
                    pend.clear()
                b = len(batch.idx)
                m.packets_in += b
                m.batches_in += 1
                m.current_igate = ig
                t = now()
                m.process(batch)
                if virtual:
                    t0, t1 = m.cost_ns
                    cost = int(t0 + t1 * b + 0.5)
                    clock._now_ns += cost
                    m.time_ns += cost
                else:
                    m.time_ns += now() - t
        self.rounds += 1
        self.packets += n
        self.time_ns += now() - t_start
        return n


class Worker:
    """Schedules tasks round-robin (``rr``) or weighted-fair (``wfq`` by ``packets`` or ``time``)."""

    def __init__(self, name: str = "w0", policy: str = "rr", resource: str = "packets") -> None:
        if policy not in ("rr", "wfq"):
            raise ArgError(f"worker {name}: policy must be 'rr' or 'wfq', got {policy!r}")
        if resource not in ("packets", "time"):
            raise ArgError(f"worker {name}: resource must be 'packets' or 'time', got {resource!r}")
        self.name = name
        self.policy = policy
        self.resource = resource
        self.tasks: list[Task] = []
        self._roots: list[tuple[Module, float]] = []
        self._next = 0

    def add_task(self, root: Module | Task, share: float = 1.0) -> None:
        """Schedule the task rooted at ``root`` (a source or queue) on this worker."""
        if share <= 0:
            raise ArgError(f"worker {self.name}: share of task {getattr(root, 'name', root)} must be positive")
        if isinstance(root, Task):
            root.share = float(share)
            self.tasks.append(root)
        else:
            if not isinstance(root, Module) or not root.task_root:
                raise ArgError(f"worker {self.name}: {root!r} is not a source or queue; only those root tasks")
            self._roots.append((root, float(share)))

    def step(self) -> int:
        """Run one task round (skipping idle tasks); returns packets, 0 when every task was idle."""
        tasks = self.tasks
        nt = len(tasks)
        if nt == 1:
            return tasks[0].run_round()
        if self.policy == "rr":
            first = self._next
            for k in range(nt):
                i = (first + k) % nt
                n = tasks[i].run_round()
                if n:
                    self._next = (i + 1) % nt
                    return n
            return 0
        # Stride scheduling; an idle task's pass is raised to the current minimum so that it does
        # not come back with a pile of credit.
        order = sorted(tasks, key=_pass_of)
        floor = order[0].pass_
        if self.resource == "time":
            now = tasks[0].clock.now_ns
            for t in order:
                t0 = now()
                n = t.run_round()
                if n:
                    t.pass_ += max(now() - t0, 1) / t.share
                    return n
                if t.pass_ < floor:
                    t.pass_ = floor
            return 0
        for t in order:
            n = t.run_round()
            if n:
                t.pass_ += max(n, 1) / t.share
                return n
            if t.pass_ < floor:
                t.pass_ = floor
        return 0


class Runtime:
    """A checked pipeline with its tasks and workers, ready to run on one clock."""

    def __init__(
        self,
        pipeline: Pipeline,
        clock: Clock,
        *,
        burst: int = DEFAULT_BURST,
        workers: list[Worker] | None = None,
        pool: PacketPool | None = None,
    ) -> None:
        if not 1 <= burst <= 4096:
            raise ArgError(f"burst must be in 1..4096, got {burst}")
        pipeline.check()
        self.pipeline = pipeline
        self.clock = clock
        self.burst = burst
        self.pool = pool or getattr(pipeline, "pool", None) or PacketPool()
        for m in pipeline:
            m.clock = clock
            m.pool = self.pool
            m.runtime = self
        self.tasks = {r.name: Task(r, pipeline.task_modules(r), clock, burst) for r in pipeline.roots()}
        self.workers = list(workers or [])
        assigned: set[str] = set()
        for w in self.workers:
            for root, share in w._roots:
                if root.name in assigned:
                    raise GraphError(f"{root.label}: its task is scheduled on two workers")
                assigned.add(root.name)
                task = self.tasks[root.name]
                task.share = share
                w.tasks.append(task)
            w._roots.clear()
        rest = [t for name, t in self.tasks.items() if name not in assigned]
        if rest:
            if not self.workers:
                self.workers.append(Worker("w0"))
            self.workers[0].tasks.extend(rest)
        self.packets = 0
        self.steps = 0
        self.started_ns = 0
        self.stopped_ns = 0
        self.wall_s = 0.0
        self.stop_reason = ""
        self._finished = False

    @property
    def roots(self) -> list[Module]:
        return [t.root for t in self.tasks.values()]

    def elapsed_ns(self) -> int:
        return self.clock.now_ns() - self.started_ns

    def run(
        self,
        *,
        duration_ns: int | None = None,
        max_packets: int | None = None,
        on_progress: Callable[["Runtime"], None] | None = None,
        progress_every_s: float = 0.25,
    ) -> str:
        """Run until ``duration_ns`` of clock time, ``max_packets`` root packets, or nothing left.

        Returns (and stores in ``stop_reason``) why it stopped. May be called again to go on.

        (One long function on purpose: it is the data plane's outer loop, run once per round,
        and what it tracks lives in local variables; split into helper calls, every round would
        pay for the calls and the attribute traffic.)
        """
        clock = self.clock
        if self.steps == 0:
            self.warm_up()
            self.started_ns = clock.now_ns()
        end_ns = None if duration_ns is None else clock.now_ns() + int(duration_ns)
        limit = None if max_packets is None else self.packets + int(max_packets)
        workers = self.workers
        roots = self.roots
        timers = [m for t in self.tasks.values() for m in t.timers]
        # One round of the usual pipeline (one worker, one task) is one call: Worker.step with a
        # single task is exactly that task's run_round.
        step = None
        if len(workers) == 1:
            w = workers[0]
            step = w.tasks[0].run_round if type(w) is Worker and len(w.tasks) == 1 else w.step
        wall0 = time.perf_counter()
        next_progress = wall0 + progress_every_s
        reason = ""
        virtual = clock.virtual
        still_steps = 0
        still_ns = clock.now_ns()
        # The step and packet counts live in locals while the loop runs (attribute updates cost
        # a few hundred ns a round); they are written back before a progress callback and on
        # the way out, however the loop ends.
        steps = self.steps
        packets = self.packets
        stop_at = limit if limit is not None else 1 << 63  # (no limit: never reached)
        try:
            while True:
                if step is not None:
                    did = step()
                else:
                    did = 0
                    for w in workers:
                        did += w.step()
                steps += 1
                packets += did
                if virtual and did:
                    # Packets keep moving but virtual time does not (not even by idling until a
                    # source's next packet): every module on the way costs 0 ns, so a time limit
                    # would never be reached.
                    if clock.now_ns() == still_ns:
                        still_steps += 1
                        if still_steps >= 10_000 and limit is None:
                            raise TailgateError(
                                "the virtual clock stands still: every module on the packets' path has a "
                                "modeled cost of 0 ns; give modules cost_ns=(T0, T1) or set a packet limit"
                            )
                    else:
                        still_steps = 0
                        still_ns = clock.now_ns()
                if packets >= stop_at:
                    reason = "packet limit"
                    break
                if end_ns is not None and clock.now_ns() >= end_ns:
                    reason = "time limit"
                    break
                if not did:
                    nxt = [t for t in (r.next_event_ns() for r in roots) if t is not None]
                    if timers:
                        held = [m.deadline_ns for m in timers if len(m)]
                        if held:
                            nxt.append(max(min(held), clock.now_ns() + 1))
                    if not nxt:
                        if all(r.exhausted() for r in roots) or isinstance(clock, VirtualClock):
                            reason = "input exhausted" if all(r.exhausted() for r in roots) else "idle"
                            break
                        continue
                    t_next = min(nxt)
                    if end_ns is not None and t_next > end_ns:
                        clock.idle_until(end_ns)
                        reason = "time limit"
                        break
                    clock.idle_until(t_next)
                if on_progress is not None and (steps & 63) == 0:
                    wnow = time.perf_counter()
                    if wnow >= next_progress:
                        next_progress = wnow + progress_every_s
                        self.steps = steps
                        self.packets = packets
                        on_progress(self)
        finally:
            self.steps = steps
            self.packets = packets
        self.wall_s += time.perf_counter() - wall0
        self.stopped_ns = clock.now_ns()
        self.stop_reason = reason
        return reason

    def warm_up(self) -> None:
        """Load every module's compiled kernels before the clock starts counting.

        numba loads a kernel from its cache (or compiles it) on the first call, which costs
        milliseconds: left to the first packets, it would show up in a wall-clock run's rate and in
        the first modules' ``time_ns``. Each module processes one *empty* batch here, which runs
        its kernels on zero packets and changes nothing.
        """
        empty = self.pool.empty_batch()
        for m in self.pipeline:
            if not m.task_root:
                m.process(empty)
                m.drain_outputs()

    def finish(self) -> None:
        """Flush and close every module (pcap writers, ...). Idempotent."""
        if not self._finished:
            self._finished = True
            for m in self.pipeline:
                m.finish()

    def counters(self) -> dict[str, dict[str, int | float]]:
        return {m.name: m.counters() for m in self.pipeline}
