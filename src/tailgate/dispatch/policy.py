"""Request-scheduling policies behind one interface, shared by the simulator and the live server.

Manual
------
A policy decides which idle worker runs which queued request. Build one with
:func:`make_policy` and drive it with three calls per dispatcher loop::

    pol = make_policy("darc", get_workload("disp2"), n_workers=14)
    ok = pol.arrive(rids, type_ids, now_ns)   # enqueue; False where a queue was full (dropped)
    pol.complete(workers, now_ns)             # these workers finished their request
    workers, rids = pol.assign(now_ns)        # new assignments, each to an idle worker

``type_ids`` are wire type ids (SHORT 1, LONG 2, ...); an id the workload does not declare goes
to the UNKNOWN queue. Time-slicing (``ts``) adds ``pol.preempt(worker, now_ns)``: called when a
worker's request has run ``pol.slice_ns``; True means the policy took the request back (it is
re-queued and the worker is idle). The discrete-event simulator (:mod:`tailgate.dispatch.sim`)
calls the same compiled kernels from its compiled event loop, and the live server calls these
methods, so there is one implementation of every policy.

Policies (``POLICIES``), from the Perséphone reference sheet (§§5–9):

========  ===================================================================================
cfcfs     one central FIFO; the head goes to the lowest-index idle worker
dfcfs     per-worker FIFOs filled round-robin (``assign='rr'``) or by request id
          (``assign='hash'``); a worker serves only its own queue
steal     per-worker FIFOs filled round-robin; an idle worker with an empty queue steals the
          head of the next non-empty queue (Shenango's work stealing)
sjf       per-type FIFOs served shortest nominal service time first, to any idle worker
          (non-preemptive fixed priority, plotted as "FP")
edf       per-type FIFOs; serve the head with the earliest ``enqueue + deadline`` (deadline per
          type, default 10 × its nominal service time)
darc      per-type FIFOs and DARC's reserved cores, profiled online (below)
ts        Shinjuku-style time slicing: ``queues='type'`` (cPREMQ: serve the queue whose head has
          waited longest relative to its SLO = 10 × nominal service time) or ``queues='single'``
          (cPRESQ: one FIFO); a request that has run ``slice_ns`` (default 5 µs) while others
          wait goes back to the tail of its queue, and pays ``preempt_cost_ns`` when it resumes
========  ===================================================================================

DARC, as the sheet describes and with its listed defects fixed:

* it starts as c-FCFS (the oldest head across the type queues) and profiles the service time
  (``now − dispatch``) of every completion per type, in windows (arithmetic mean per window);
* after ``resa_samples`` completions (default 50 000) it reserves cores
  (:func:`tailgate.dispatch.darc.reserve_kernel`); ``profile='oracle'`` reserves from the
  declared service times at once (the original's oracle mode divided by zero), and
  ``n_resas=K`` gives the first K workers to the shortest type and the rest to the others
  (the sheet's static mode, two types only);
* per loop, types are served shortest first: a free reserved worker of the type's group, else a
  free stealable one (workers of longer groups), else the type waits even if shorter groups'
  cores idle. Unknown requests go only to the spillway worker (the last one; the ``psp``
  branch's regression to worker 0 is not copied);
* once a window holds more than ``window_min`` completions (default 50 000), a type whose
  second-oldest queued request has waited longer than its mean service time triggers a
  recomputation; the reservation changes only if some type's demand moved by more than 10 % or
  the set of active types changed. Types with no samples in a window are *idle*: unlike the
  original they get no cores (their requests, if any, go to the spillway) and they trigger a
  recomputation once they wait longer than the mean service time of the window.
  ``smoothing=a`` (0 ≤ a < 1, default 0 as the original) keeps weight ``a`` of the previous
  estimate of each type's mean and share at every window, so thin windows flap less.

``pol.reservation()`` returns the current table at any moment; ``pol.reservations`` counts
re-reservations. Queues hold ``queue_len`` requests each (default 4096); a full queue drops.

Arguments are declared, with type, default, unit and range: :data:`COMMON_ARGS` (every policy)
and :data:`POLICY_ARGS` (each policy's own); :func:`policy_args` lists one policy's and
``tailgate sched policies`` prints them all. ``make_policy`` refuses an unknown name (listing
what the policy takes), a wrong type or a value out of range, in one line naming the policy.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit, types
from numba.experimental import structref

from tailgate.core.args import Arg, bind_args
from tailgate.core.errors import ArgError
from tailgate.dispatch.darc import (
    GROUP_TOLERANCE,
    Reservation,
    reservation_from,
    reserve_kernel,
)

# Policy kinds (the compiled kernels branch on these).
CFCFS, DFCFS, STEAL, SJF, EDF, DARC, TS = range(7)
POLICIES = {"cfcfs": CFCFS, "dfcfs": DFCFS, "steal": STEAL, "sjf": SJF, "edf": EDF, "darc": DARC, "ts": TS}

# Integer registers (st.ip).
(I_KIND, I_W, I_T, I_Q, I_CAP, I_RR, I_HASH, I_MODE, I_SAMPLES, I_WIN, I_RESA_NEEDED, I_WIN_MIN,
 I_IDLE, I_DROPS, I_DISPATCHED, I_RESAS, I_PREEMPTS, I_NGROUPS, I_SINGLEQ, I_COMPLETED, I_SEQ, I_N) = range(22)
# Float registers (st.fp).
F_SLICE, F_PCOST, F_TOL, F_THRESH, F_SMOOTH, F_N = range(6)
# DARC modes.
M_PROFILING, M_RESERVED, M_STATIC = 0, 1, 2

NO_TYPE = -1

#: Everything a policy keeps, as arrays, so compiled code can own it. ``t_*`` arrays are per
#: declared type (``T`` of them; index ``T`` is UNKNOWN where a queue exists for it).
PolicyState = namedtuple("PolicyState", [
    "ip", "fp",
    "q_rid", "q_type", "q_t", "q_seq",              # ring FIFOs: request id, type index, enqueue time,
    "q_head", "q_len",                              #   arrival sequence (c-FCFS order across queues)
    "w_busy", "w_rid", "w_type", "w_q", "w_start",  # per worker: its request, type, queue, dispatch time
    "type_of_id",                                   # wire type id (0..255) -> type index (T = unknown)
    "t_nominal_ns", "t_order", "t_deadline_ns",     # declared service time, shortest-first order, EDF/TS
    "t_mean_ns", "t_ratio", "t_max_delay_ns", "t_demand", "win_sum_ns", "win_cnt", "t_active",
    "t_group", "g_reserved", "g_steal", "g_demand",  # DARC's current reservation
    "out_w", "out_r",                               # assign()'s results
])


@structref.register
class _StateType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class StateRef(structref.StructRefProxy):
    """The compiled kernels' handle on a :data:`PolicyState` (same arrays, no copy).

    Why not pass the namedtuple itself: a call that numba does not inline increments and
    decrements the reference count of every array in a tuple argument (30 atomic pairs per
    call, ~200 ns); a struct reference costs one pair.
    """


structref.define_proxy(StateRef, _StateType, list(PolicyState._fields))


@njit(cache=True)
def _push(st, q, rid, t, now_ns):
    cap = st.ip[I_CAP]
    n = st.q_len[q]
    if n >= cap:
        return False
    slot = (st.q_head[q] + n) % cap
    st.q_rid[q, slot] = rid
    st.q_type[q, slot] = t
    st.q_seq[q, slot] = st.ip[I_SEQ]
    st.ip[I_SEQ] += 1
    st.q_t[q, slot] = now_ns
    st.q_len[q] = n + 1
    return True


@njit(cache=True)
def _pop(st, q, w):
    """Take the head of queue ``q`` for worker ``w``; returns its request id."""
    h = st.q_head[q]
    rid = st.q_rid[q, h]
    st.w_type[w] = st.q_type[q, h]
    st.q_head[q] = (h + 1) % st.ip[I_CAP]
    st.q_len[q] -= 1
    return rid


@njit(cache=True)
def _start(st, w, q, now_ns, n_out):
    """Give the head of queue ``q`` to idle worker ``w``; returns the new output count."""
    rid = _pop(st, q, w)
    st.w_busy[w] = 1
    st.w_rid[w] = rid
    st.w_q[w] = q
    st.w_start[w] = now_ns
    st.ip[I_IDLE] -= 1
    st.ip[I_DISPATCHED] += 1
    st.out_w[n_out] = w
    st.out_r[n_out] = rid
    return n_out + 1


@njit(cache=True)
def _first_idle(st, mask):
    """Lowest-index idle worker whose ``mask`` entry is set (-1: none)."""
    for w in range(st.ip[I_W]):
        if mask[w] and st.w_busy[w] == 0:
            return w
    return -1


@njit(cache=True)
def _any_idle(st):
    for w in range(st.ip[I_W]):
        if st.w_busy[w] == 0:
            return w
    return -1


@njit(cache=True)
def arrive_one(st, rid, type_id, now_ns):
    """Enqueue one request; False if its queue is full (the request is dropped and counted)."""
    n_types = st.ip[I_T]
    t = st.type_of_id[type_id] if 0 <= type_id < st.type_of_id.shape[0] else n_types
    kind = st.ip[I_KIND]
    if kind == CFCFS or (kind == TS and st.ip[I_SINGLEQ] == 1):
        q = 0
    elif kind == DFCFS or kind == STEAL:
        n_w = st.ip[I_W]
        if st.ip[I_HASH] == 1:
            q = rid % n_w
        else:
            q = st.ip[I_RR]
            st.ip[I_RR] = (q + 1) % n_w
    else:
        q = t
    if not _push(st, q, rid, t, now_ns):
        st.ip[I_DROPS] += 1
        return False
    return True


@njit(cache=True)
def complete_one(st, w, now_ns):
    """Worker ``w`` finished its request: free it and, for DARC, profile the service time."""
    if st.w_busy[w] == 0:
        return
    st.w_busy[w] = 0
    st.ip[I_IDLE] += 1
    st.ip[I_COMPLETED] += 1
    if st.ip[I_KIND] != DARC:
        return
    t = st.w_type[w]
    if t < 0 or t >= st.ip[I_T]:
        return
    st.win_sum_ns[t] += now_ns - st.w_start[w]
    st.win_cnt[t] += 1
    st.ip[I_WIN] += 1
    st.ip[I_SAMPLES] += 1
    if st.ip[I_MODE] == M_PROFILING and st.ip[I_SAMPLES] >= st.ip[I_RESA_NEEDED]:
        _close_window(st, True)
        st.ip[I_MODE] = M_RESERVED


@njit(cache=True)
def _close_window(st, force):
    """Turn the window's samples into means and shares; re-reserve if demand moved enough."""
    n_types = st.ip[I_T]
    total = 0
    for t in range(n_types):
        total += st.win_cnt[t]
    if total == 0:
        return False
    changed = force
    s_ns = 0.0
    keep = st.fp[F_SMOOTH]
    for t in range(n_types):
        active = st.win_cnt[t] > 0
        was_active = st.t_active[t] == 1
        if active != was_active:
            changed = True
        st.t_active[t] = 1 if active else 0
        if active:
            mean_ns = st.win_sum_ns[t] / st.win_cnt[t]
            ratio = st.win_cnt[t] / total
            if was_active and keep > 0:
                # Exponential smoothing across windows (the original has none, so one thin
                # window can swing the reservation); only a type seen before has a past to keep.
                mean_ns = keep * st.t_mean_ns[t] + (1 - keep) * mean_ns
                ratio = keep * st.t_ratio[t] + (1 - keep) * ratio
            st.t_mean_ns[t] = mean_ns
            st.t_ratio[t] = ratio
            s_ns += mean_ns * ratio
        else:
            st.t_ratio[t] = 0.0
    n_w = st.ip[I_W]
    for t in range(n_types):
        d = st.t_mean_ns[t] * st.t_ratio[t] / s_ns * n_w if st.t_active[t] == 1 else 0.0
        prev = st.t_demand[t]
        if abs(d - prev) > st.fp[F_THRESH] * prev:
            changed = True
        st.t_demand[t] = d
    st.win_sum_ns[:] = 0
    st.win_cnt[:] = 0
    st.ip[I_WIN] = 0
    if changed:
        _reserve(st, s_ns)
    return changed


@njit(cache=True)
def _reserve(st, s_ns):
    n_types = st.ip[I_T]
    active = st.t_active[:n_types] == 1
    st.ip[I_NGROUPS] = reserve_kernel(st.t_mean_ns, st.t_ratio, active, st.ip[I_W], st.fp[F_TOL],
                                      st.t_group, st.g_reserved, st.g_steal, st.g_demand)
    st.t_order[:] = np.argsort(st.t_mean_ns, kind="mergesort")
    for t in range(n_types):
        # The re-reservation trigger: a type's second-oldest request waiting longer than its
        # mean service time. Idle types have no mean of their own, so the window's mean stands in.
        st.t_max_delay_ns[t] = st.t_mean_ns[t] if st.t_active[t] == 1 else s_ns
    st.ip[I_RESAS] += 1


@njit(cache=True)
def _maybe_rereserve(st, now_ns):
    if st.ip[I_MODE] != M_RESERVED or st.ip[I_WIN] <= st.ip[I_WIN_MIN]:
        return
    cap = st.ip[I_CAP]
    for t in range(st.ip[I_T]):
        if st.q_len[t] >= 2:
            second = (st.q_head[t] + 1) % cap
            if now_ns - st.q_t[t, second] > st.t_max_delay_ns[t]:
                _close_window(st, False)
                return


@njit(cache=True)
def _oldest_queue(st, n_q):
    """The non-empty queue whose head was enqueued first (-1: all empty)."""
    best = -1
    best_seq = 0
    for q in range(n_q):
        if st.q_len[q] > 0:
            seq = st.q_seq[q, st.q_head[q]]
            if best < 0 or seq < best_seq:
                best, best_seq = q, seq
    return best


@njit(cache=True)
def _assign_fifo_order(st, now_ns, n_q):
    """c-FCFS over one or several queues: the oldest head to the lowest idle worker."""
    n = 0
    while st.ip[I_IDLE] > 0:
        q = _oldest_queue(st, n_q)
        if q < 0:
            break
        n = _start(st, _any_idle(st), q, now_ns, n)
    return n


@njit(cache=True)
def _assign_darc(st, now_ns):
    if st.ip[I_MODE] == M_PROFILING:
        return _assign_fifo_order(st, now_ns, st.ip[I_Q])
    _maybe_rereserve(st, now_ns)
    n_types = st.ip[I_T]
    spill = st.ip[I_W] - 1
    n = 0
    for i in range(n_types):
        t = st.t_order[i]
        g = st.t_group[t]
        while st.q_len[t] > 0 and st.ip[I_IDLE] > 0:
            if g < 0:
                # An idle (unreserved) type: only the spillway serves it, like UNKNOWN.
                w = spill if st.w_busy[spill] == 0 else -1
            else:
                w = _first_idle(st, st.g_reserved[g])
                if w < 0:
                    w = _first_idle(st, st.g_steal[g])
            if w < 0:
                break
            n = _start(st, w, t, now_ns, n)
    # At most one UNKNOWN request per loop, and only to the spillway.
    if st.q_len[n_types] > 0 and st.w_busy[spill] == 0:
        n = _start(st, spill, n_types, now_ns, n)
    return n


@njit(cache=True)
def _assign_priority(st, now_ns):
    """SJF: type queues shortest first (then UNKNOWN), each drained to any idle worker."""
    n = 0
    n_types = st.ip[I_T]
    for i in range(n_types + 1):
        q = st.t_order[i] if i < n_types else n_types
        while st.q_len[q] > 0 and st.ip[I_IDLE] > 0:
            n = _start(st, _any_idle(st), q, now_ns, n)
    return n


@njit(cache=True)
def _assign_scored(st, now_ns):
    """EDF (earliest head deadline) or Shinjuku's queue choice (largest wait ÷ SLO)."""
    n = 0
    edf = st.ip[I_KIND] == EDF
    n_q = st.ip[I_Q]
    while st.ip[I_IDLE] > 0:
        best = -1
        best_score = 0.0
        for q in range(n_q):
            if st.q_len[q] == 0:
                continue
            head_t = st.q_t[q, st.q_head[q]]
            if edf:
                score = -(head_t + st.t_deadline_ns[q])
            else:
                score = (now_ns - head_t) / st.t_deadline_ns[q]
            if best < 0 or score > best_score:
                best, best_score = q, score
        if best < 0:
            break
        n = _start(st, _any_idle(st), best, now_ns, n)
    return n


@njit(cache=True)
def _assign_per_worker(st, now_ns, steal):
    n = 0
    n_w = st.ip[I_W]
    for w in range(n_w):
        if st.w_busy[w] != 0:
            continue
        if st.q_len[w] > 0:
            n = _start(st, w, w, now_ns, n)
        elif steal:
            for k in range(1, n_w):
                v = (w + k) % n_w
                if st.q_len[v] > 0:
                    n = _start(st, w, v, now_ns, n)
                    break
    return n


@njit(cache=True)
def assign_all(st, now_ns):
    """Make every assignment the policy wants now; results in ``st.out_w/out_r[:n]``."""
    if st.ip[I_IDLE] == 0:
        return 0
    kind = st.ip[I_KIND]
    if kind == CFCFS:
        n = _assign_fifo_order(st, now_ns, 1)
    elif kind == DARC:
        n = _assign_darc(st, now_ns)
    elif kind == SJF:
        n = _assign_priority(st, now_ns)
    elif kind == EDF:
        n = _assign_scored(st, now_ns)
    elif kind == TS:
        n = _assign_fifo_order(st, now_ns, 1) if st.ip[I_SINGLEQ] == 1 else _assign_scored(st, now_ns)
    else:
        n = _assign_per_worker(st, now_ns, kind == STEAL)
    return n


@njit(cache=True)
def preempt_one(st, w, now_ns):
    """Time slicing: take worker ``w``'s request back if anything else waits."""
    if st.ip[I_KIND] != TS or st.w_busy[w] == 0:
        return False
    waiting = False
    for q in range(st.ip[I_Q]):
        if st.q_len[q] > 0:
            waiting = True
            break
    if not waiting or not _push(st, st.w_q[w], st.w_rid[w], st.w_type[w], now_ns):
        return False
    st.w_busy[w] = 0
    st.ip[I_IDLE] += 1
    st.ip[I_PREEMPTS] += 1
    return True


@njit(cache=True)
def release_one(st, w):
    """Worker ``w``'s request will not run or finish (the live server shed it, or its worker
    died): the worker is idle again; nothing is profiled or counted as completed."""
    if st.w_busy[w] == 0:
        return
    st.w_busy[w] = 0
    st.ip[I_IDLE] += 1


@njit(cache=True)
def _arrive_many(st, rids, type_ids, now_ns, ok):
    for i in range(rids.shape[0]):
        ok[i] = arrive_one(st, rids[i], type_ids[i], now_ns)


@njit(cache=True)
def _complete_many(st, workers, now_ns):
    for i in range(workers.shape[0]):
        complete_one(st, workers[i], now_ns)


class Policy:
    """One scheduling policy's state and its calls (see the module manual)."""

    def __init__(self, name: str, workload, n_workers: int, state: PolicyState, params: dict):
        self.name = name
        self.workload = workload
        self.n_workers = n_workers
        self.state = state
        self.ref = StateRef(*state)
        self.params = params
        self.type_ids = np.array([t.type_id for t in workload.types], dtype=np.int64)

    # -- the three calls of a dispatcher loop ---------------------------------------------------
    def arrive(self, rids, type_ids, now_ns: int) -> np.ndarray:
        rids = np.ascontiguousarray(rids, dtype=np.int64)
        ok = np.empty(rids.shape[0], dtype=np.bool_)
        _arrive_many(self.ref, rids, np.ascontiguousarray(type_ids, dtype=np.int64), int(now_ns), ok)
        return ok

    def complete(self, workers, now_ns: int) -> None:
        _complete_many(self.ref, np.ascontiguousarray(workers, dtype=np.int64), int(now_ns))

    def assign(self, now_ns: int) -> tuple[np.ndarray, np.ndarray]:
        n = assign_all(self.ref, int(now_ns))
        return self.state.out_w[:n].copy(), self.state.out_r[:n].copy()

    def preempt(self, worker: int, now_ns: int) -> bool:
        return bool(preempt_one(self.ref, int(worker), int(now_ns)))

    def release(self, worker: int) -> None:
        """``worker``'s request will not run or finish (shed, or its worker died): the worker
        is idle again, nothing profiled (:func:`release_one`)."""
        release_one(self.ref, int(worker))

    # -- inspection ---------------------------------------------------------------------------
    @property
    def slice_ns(self) -> int:
        return int(self.state.fp[F_SLICE])

    @property
    def preempt_cost_ns(self) -> int:
        return int(self.state.fp[F_PCOST])

    @property
    def reservations(self) -> int:
        """How many times DARC has (re)computed its reservation."""
        return int(self.state.ip[I_RESAS])

    def reservation(self) -> Reservation | None:
        """DARC's current reservation table (None for other policies, or while profiling)."""
        st = self.state
        if st.ip[I_KIND] != DARC or st.ip[I_MODE] == M_PROFILING:
            return None
        return reservation_from(self.type_ids, st.t_mean_ns, st.t_group, st.g_reserved, st.g_steal,
                                st.g_demand, int(st.ip[I_NGROUPS]), self.n_workers)

    def queue_lengths(self) -> np.ndarray:
        return self.state.q_len.copy()

    def counters(self) -> dict:
        ip = self.state.ip
        return {"dispatched": int(ip[I_DISPATCHED]), "completed": int(ip[I_COMPLETED]),
                "drops": int(ip[I_DROPS]), "preemptions": int(ip[I_PREEMPTS]),
                "reservations": int(ip[I_RESAS]), "queued": int(self.state.q_len.sum()),
                "idle_workers": int(ip[I_IDLE])}

    def __repr__(self) -> str:
        return f"Policy({self.name!r}, {self.workload.name!r}, n_workers={self.n_workers})"


#: The argument every policy takes.
COMMON_ARGS = (
    Arg("queue_len", int, 4096, unit="requests", min=1, help="capacity of each queue; a request that finds it full is dropped"),
)
#: The arguments of each policy, besides :data:`COMMON_ARGS`.
POLICY_ARGS: dict[str, tuple[Arg, ...]] = {
    "cfcfs": (),
    "dfcfs": (
        Arg("assign", str, "rr", unit="-", choices=("rr", "hash"),
            help="how arrivals are spread over the per-worker queues: round-robin or by request id"),
    ),
    "steal": (),
    "sjf": (),
    "edf": (
        Arg("deadline_x", float, 10.0, unit="x nominal",
            help="each type's deadline as a multiple of its nominal service time (> 0)"),
    ),
    "darc": (
        Arg("profile", str, "online", unit="-", choices=("online", "oracle"),
            help="reserve from profiled service times, or at once from the declared ones"),
        Arg("resa_samples", int, 50_000, unit="completions", min=1,
            help="completions profiled (as c-FCFS) before the first reservation"),
        Arg("window_min", int, 50_000, unit="completions", min=1,
            help="completions a profiling window needs before it may trigger a re-reservation"),
        Arg("n_resas", int, None, unit="workers", min=0,
            help="static reservation: the first K workers serve the shorter of two types"),
        Arg("tolerance", float, GROUP_TOLERANCE, unit="-", min=0,
            help="types whose mean service times differ by less than this fraction share a group"),
        Arg("threshold", float, 0.1, unit="-", min=0,
            help="a re-reservation takes effect when some type's demand moved by more than this fraction"),
        Arg("smoothing", float, 0.0, unit="-", min=0,
            help="weight kept from the previous estimate of each type's mean and share per window (< 1)"),
    ),
    "ts": (
        Arg("queues", str, "type", unit="-", choices=("type", "single"),
            help="per-type queues served by waiting time over SLO (cPREMQ), or one FIFO (cPRESQ)"),
        Arg("slice_ns", int, 5_000, unit="ns", min=1, help="a request runs this long before it may be preempted"),
        Arg("preempt_cost_ns", int, 500, unit="ns", min=0, help="added to a preempted request's remaining time"),
        Arg("slo_x", float, 10.0, unit="x nominal",
            help="each type's SLO as a multiple of its nominal service time (> 0), for queue selection"),
    ),
}
MAX_WORKERS = 1024


def policy_key(name: str) -> str:
    """The policy's canonical (lower-case) name; ArgError for an unknown one."""
    key = str(name).lower()
    if key not in POLICIES:
        raise ArgError(f"unknown policy {name!r} (policies: {', '.join(POLICIES)})")
    return key


def policy_args(name: str) -> tuple[Arg, ...]:
    """Every argument policy ``name`` takes: :data:`COMMON_ARGS`, then its own."""
    return COMMON_ARGS + POLICY_ARGS.get(policy_key(name), ())


def bind_policy_params(name: str, params: dict) -> dict:
    """``params`` checked against the policy's arguments; returns every argument with its value
    (unknown names, wrong types and out-of-range values raise ArgError naming the policy)."""
    key = policy_key(name)
    declared = policy_args(key)
    p = bind_args(f"policy {key}", declared, params)
    for a in declared:
        v = p[a.name]
        if a.type is float and math.isnan(v):
            raise ArgError(f"policy {key}: argument {a.name!r} must be a number, got {v!r}")
    return p


def make_policy(name: str, workload, n_workers: int, **params) -> Policy:
    """A fresh policy ``name`` for ``workload`` on ``n_workers`` workers (arguments: :func:`policy_args`)."""
    key = policy_key(name)
    if not isinstance(n_workers, (int, np.integer)) or not 1 <= n_workers <= MAX_WORKERS:
        raise ArgError(f"policy {key}: n_workers must be an integer in 1..{MAX_WORKERS}, got {n_workers!r}")
    p = bind_policy_params(key, params)
    n_w = int(n_workers)
    types = workload.types
    n_t = len(types)
    kind = POLICIES[key]
    single = key == "cfcfs" or (key == "ts" and p["queues"] == "single")
    n_q = 1 if single else (n_w if kind in (DFCFS, STEAL) else n_t + 1)
    cap = p["queue_len"]
    nominal = np.array([t.service_ns for t in types], dtype=np.float64)

    st = PolicyState(
        ip=np.zeros(I_N, np.int64), fp=np.zeros(F_N, np.float64),
        q_rid=np.zeros((n_q, cap), np.int64), q_type=np.zeros((n_q, cap), np.int64),
        q_t=np.zeros((n_q, cap), np.int64), q_seq=np.zeros((n_q, cap), np.int64), q_head=np.zeros(n_q, np.int64), q_len=np.zeros(n_q, np.int64),
        w_busy=np.zeros(n_w, np.int64), w_rid=np.full(n_w, -1, np.int64), w_type=np.full(n_w, NO_TYPE, np.int64),
        w_q=np.zeros(n_w, np.int64), w_start=np.zeros(n_w, np.int64),
        type_of_id=np.full(256, n_t, np.int64),
        t_nominal_ns=nominal, t_order=np.argsort(nominal, kind="mergesort").astype(np.int64),
        t_deadline_ns=np.zeros(n_t + 1, np.float64),
        t_mean_ns=nominal.copy(), t_ratio=np.array([t.ratio for t in types], dtype=np.float64),
        t_max_delay_ns=np.zeros(n_t, np.float64), t_demand=np.zeros(n_t, np.float64),
        win_sum_ns=np.zeros(n_t, np.float64), win_cnt=np.zeros(n_t, np.int64), t_active=np.zeros(n_t, np.int64),
        t_group=np.full(n_t, -1, np.int64), g_reserved=np.zeros((n_t, n_w), np.int8),
        g_steal=np.zeros((n_t, n_w), np.int8), g_demand=np.zeros(n_t, np.float64),
        out_w=np.zeros(n_w, np.int64), out_r=np.zeros(n_w, np.int64),
    )
    for i, t in enumerate(types):
        st.type_of_id[t.type_id] = i
    ip, fp = st.ip, st.fp
    ip[I_KIND], ip[I_W], ip[I_T], ip[I_Q], ip[I_CAP], ip[I_IDLE] = kind, n_w, n_t, n_q, cap, n_w
    ip[I_SINGLEQ] = 1 if single else 0
    if key == "dfcfs":
        ip[I_HASH] = 1 if p["assign"] == "hash" else 0
    if key in ("edf", "ts"):
        x = _positive(key, "deadline_x" if key == "edf" else "slo_x", p.get("deadline_x", p.get("slo_x")))
        st.t_deadline_ns[:n_t] = x * nominal
        st.t_deadline_ns[n_t] = x * nominal.max()  # UNKNOWN: as patient as the longest type
    if key == "ts":
        fp[F_SLICE] = p["slice_ns"]
        fp[F_PCOST] = p["preempt_cost_ns"]
    pol = Policy(key, workload, n_w, st, p)
    if key == "darc":
        _setup_darc(pol, p, n_w, n_t)
    return pol


def _setup_darc(pol: Policy, p: dict, n_w: int, n_t: int) -> None:
    st = pol.state
    ip, fp = st.ip, st.fp
    fp[F_TOL] = p["tolerance"]
    fp[F_THRESH] = p["threshold"]
    fp[F_SMOOTH] = p["smoothing"]
    if fp[F_SMOOTH] >= 1:
        raise ArgError(f"policy darc: smoothing must be below 1 (the weight kept from past windows), got {p['smoothing']!r}")
    ip[I_RESA_NEEDED] = p["resa_samples"]
    ip[I_WIN_MIN] = p["window_min"]
    profile = p["profile"]
    if p["n_resas"] is not None:
        k = p["n_resas"]
        if n_t != 2:
            raise ArgError(f"policy darc: n_resas (static reservation) needs exactly two request types, "
                           f"the workload has {n_t}")
        if not 0 <= k < n_w:
            raise ArgError(f"policy darc: n_resas must be an integer in 0..{n_w - 1}, got {k!r}")
        short, long_ = st.t_order
        st.t_group[short], st.t_group[long_] = 0, 1
        st.g_reserved[0, :k] = 1
        st.g_steal[0, k:] = 1
        st.g_reserved[1, k:] = 1
        st.t_active[:] = 1
        ip[I_NGROUPS] = 2
        ip[I_MODE] = M_STATIC
        ip[I_RESAS] = 1
    elif profile == "oracle":
        st.t_active[:] = st.t_ratio > 0
        s_ns = float((st.t_mean_ns * st.t_ratio).sum())
        st.t_demand[:] = st.t_mean_ns * st.t_ratio / s_ns * n_w
        _reserve(pol.ref, s_ns)
        ip[I_MODE] = M_RESERVED
    else:
        ip[I_MODE] = M_PROFILING


def _positive(policy: str, arg: str, value: float) -> float:
    if not value > 0:
        raise ArgError(f"policy {policy}: {arg} must be > 0, got {value!r}")
    return value
