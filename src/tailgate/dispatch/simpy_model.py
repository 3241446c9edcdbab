"""A plain SimPy model of the request-scheduling system: the baseline the fast simulator is held to.

Manual
------
:func:`simulate_simpy` runs a :class:`~tailgate.dispatch.requests.Requests` stream through one
dispatcher and ``n_workers`` run-to-completion workers, and returns each request's completion time::

    reqs = generate(get_workload("disp2"), 0.8, 14, 50_000, seed=1)
    done_ns = simulate_simpy(reqs, 14, "darc", reservation=reserve_for(get_workload("disp2"), 14))

It is written the way a person would write it with SimPy — an arrival process, a dispatcher
process, one process per worker fed through a ``simpy.Store`` — and it is the baseline of the
issue's speed target (the numba simulator must be ≥ 20× faster). Its semantics are exact, so the two
can be compared request by request:

* Times are whole ns. At one instant, every completion and every arrival lands first; then the
  dispatcher makes one decision round. (Completions only free workers and arrivals only append to
  FIFOs, so their order among themselves cannot change the round.)
* ``cfcfs``: one central FIFO; each assignment gives the head request to the lowest-index idle worker.
* ``darc`` (static ``reservation``, e.g. :func:`~tailgate.dispatch.darc.reserve_for`): one FIFO per
  type id, served in the reservation's order (groups ascending, types within a group ascending).
  For each type, while its FIFO is non-empty: the first idle worker of its group's ``reserved``
  list, else the first idle one of its ``stealable`` list, else the type waits for the next round
  even if other workers are idle (DARC is not work-conserving). Requests whose id no group serves go
  to an UNKNOWN FIFO served last, at most one per round, by the spillway worker only (sheet §7).
* Dispatcher overhead: assignments are serialised on one dispatcher. An assignment decided at time
  ``t`` with the dispatcher free from ``d`` starts the request at ``s = max(t, d) + overhead_ns``,
  and the dispatcher is then free from ``s``. The worker is taken at ``t`` and runs the request
  from ``s`` for its ``service_ns``, without preemption; with ``overhead_ns = 0`` it starts at ``t``.

Every request completes (queues are unbounded), so no entry of the result is -1. Speed is a few
tens of thousands of requests per second; it is a baseline, not a tool.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import simpy

from tailgate.core.errors import ArgError
from tailgate.dispatch.darc import Reservation
from tailgate.dispatch.requests import check_count

POLICIES = ("cfcfs", "darc")


class _System:
    """The dispatcher's state and the processes that drive it."""

    def __init__(self, env: simpy.Environment, requests, n_workers: int, policy: str,
                 reservation: Reservation | None, overhead_ns: int):
        self.env = env
        self.requests = requests
        self.policy = policy
        self.overhead_ns = overhead_ns
        self.busy = [False] * n_workers
        self.inboxes = [simpy.Store(env, capacity=1) for _ in range(n_workers)]
        self.completion_ns = np.full(len(requests), -1, dtype=np.int64)
        self.dispatcher_free_ns = 0
        self.wakeup = env.event()
        # Requests wait in FIFOs keyed by what the policy classifies on.
        if policy == "cfcfs":
            self.central: deque[int] = deque()
        else:
            assert reservation is not None
            self.reservation = reservation
            # (type id, reserved workers, stealable workers) in the order DARC serves them.
            self.darc_order = [(tid, g.reserved, g.stealable) for g in reservation.groups for tid in g.types]
            self.by_type: dict[int, deque[int]] = {tid: deque() for tid, _, _ in self.darc_order}
            self.unknown: deque[int] = deque()
            self.type_id_of = requests.type_ids[requests.type_idx].tolist()

    # --- processes -------------------------------------------------------------------------

    def arrivals(self):
        env = self.env
        for i, at_ns in enumerate(self.requests.arrival_ns.tolist()):
            if at_ns > env.now:
                yield env.timeout(at_ns - env.now)
            self.enqueue(i)
            self.kick()

    def worker(self, w: int):
        env, service_ns = self.env, self.requests.service_ns
        while True:
            i, start_ns = yield self.inboxes[w].get()
            yield env.timeout(start_ns - env.now + int(service_ns[i]))
            self.completion_ns[i] = env.now
            self.busy[w] = False
            self.kick()

    def dispatcher(self):
        while True:
            # SimPy runs the events of one instant in the order they were scheduled. Every
            # completion and arrival due now was scheduled earlier, the wake-up only now, so the
            # round below sees all of them.
            yield self.wakeup
            self.wakeup = self.env.event()
            if self.policy == "cfcfs":
                self.round_cfcfs()
            else:
                self.round_darc()

    # --- policy ----------------------------------------------------------------------------

    def kick(self) -> None:
        """Something changed: make sure a decision round follows at this instant."""
        if not self.wakeup.triggered:
            self.wakeup.succeed()

    def enqueue(self, i: int) -> None:
        if self.policy == "cfcfs":
            self.central.append(i)
        else:
            self.by_type.get(self.type_id_of[i], self.unknown).append(i)

    def assign(self, i: int, w: int) -> None:
        start_ns = max(self.env.now, self.dispatcher_free_ns) + self.overhead_ns
        self.dispatcher_free_ns = start_ns
        self.busy[w] = True
        self.inboxes[w].put((i, start_ns))

    def first_idle(self, workers) -> int | None:
        return next((w for w in workers if not self.busy[w]), None)

    def round_cfcfs(self) -> None:
        while self.central:
            w = self.first_idle(range(len(self.busy)))
            if w is None:
                return
            self.assign(self.central.popleft(), w)

    def round_darc(self) -> None:
        for tid, reserved, stealable in self.darc_order:
            queue = self.by_type[tid]
            while queue:
                w = self.first_idle(reserved)
                if w is None:
                    w = self.first_idle(stealable)
                if w is None:
                    break          # this type waits, even if workers of shorter groups idle
                self.assign(queue.popleft(), w)
        spillway = self.reservation.spillway
        if self.unknown and not self.busy[spillway]:
            self.assign(self.unknown.popleft(), spillway)


def simulate_simpy(requests, n_workers: int, policy: str, reservation: Reservation | None = None,
                   overhead_ns: int = 0) -> np.ndarray:
    """Completion time (int64 ns) of every request of ``requests`` under ``policy``."""
    if policy not in POLICIES:
        raise ArgError(f"the SimPy model knows policies {', '.join(POLICIES)}, not {policy!r}")
    n_workers = check_count("the number of workers", n_workers)
    overhead_ns = check_count("the dispatcher overhead (ns)", overhead_ns, low=0)
    if policy == "darc":
        if reservation is None:
            raise ArgError("darc in the SimPy model needs a static reservation (darc.reserve_for(workload, n))")
        if reservation.n_workers != n_workers:
            raise ArgError(f"the reservation is for {reservation.n_workers} workers, not {n_workers}")
    env = simpy.Environment()
    system = _System(env, requests, n_workers, policy, reservation, overhead_ns)
    env.process(system.arrivals())
    env.process(system.dispatcher())
    for w in range(n_workers):
        env.process(system.worker(w))
    env.run()
    return system.completion_ns
