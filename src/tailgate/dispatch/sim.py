"""Discrete-event simulation of a dispatcher and N workers under any policy.

Manual
------
:func:`simulate` replays a request stream (arrival time, type, service time: see
:func:`tailgate.dispatch.requests.generate`) through a :class:`~tailgate.dispatch.policy.Policy`
and returns when each request started and completed. The event loop is compiled (numba) and
calls the policy's own compiled kernels, so the simulated scheduler is the one the live server
runs, not a model of it.

The model:

* events at one instant are taken in this order: completions (worker order), arrivals (arrival
  order), then one dispatch round (``policy.assign``);
* every assignment costs the single dispatcher ``overhead_ns``, serialised: the k-th assignment
  of a round starts ``k × overhead_ns`` after the later of now and the dispatcher's last one;
* a request runs its service time without interruption, except under ``ts``: after each
  ``slice_ns`` the policy may take it back (if anything waits), and the preempted request pays
  ``preempt_cost_ns`` of extra work when it resumes;
* a request whose queue is full is dropped (``completion_ns == -1``).

Same requests and policy parameters → the same result, bit for bit. :func:`run_point` does one
load point end to end (generate, simulate, summarise) and is what ``tailgate sched sim`` sweeps.

Speed: a few hundred ns per request on one core (``tailgate bench`` measures it against a plain
SimPy model of the same system, :mod:`tailgate.dispatch.simpy_model`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from tailgate.dispatch.metrics import summarize_requests
from tailgate.dispatch.policy import (
    F_PCOST,
    F_SLICE,
    I_RESAS,
    I_T,
    I_W,
    Policy,
    arrive_one,
    assign_all,
    complete_one,
    make_policy,
    preempt_one,
)
from tailgate.dispatch.requests import generate

NEVER = np.iinfo(np.int64).max
#: Reservation changes kept for the timeline (DARC); later ones are counted, not stored.
LOG_CAPACITY = 4096


@njit(cache=True)
def _simulate(st, arrival_ns, type_id, service_ns, overhead_ns, start_ns, completion_ns, log_t, log_cores):
    n = arrival_ns.shape[0]
    n_w = st.ip[I_W]
    n_types = st.ip[I_T]
    slice_ns = np.int64(st.fp[F_SLICE])
    pcost_ns = np.int64(st.fp[F_PCOST])
    busy_until = np.full(n_w, NEVER, np.int64)  # end of the running segment (completion or slice)
    segment_ns = np.zeros(n_w, np.int64)
    remaining_ns = service_ns.copy()
    start_ns[:] = -1
    completion_ns[:] = -1
    dispatcher_free = np.int64(0)
    n_log = 0
    resas = st.ip[I_RESAS]
    i = 0
    while True:
        t_done = NEVER
        for w in range(n_w):
            if busy_until[w] < t_done:
                t_done = busy_until[w]
        t_arr = arrival_ns[i] if i < n else NEVER
        now = min(t_done, t_arr)
        if now == NEVER:
            break
        if t_done == now:
            for w in range(n_w):
                if busy_until[w] != now:
                    continue
                rid = st.w_rid[w]
                remaining_ns[rid] -= segment_ns[w]
                if remaining_ns[rid] <= 0:
                    completion_ns[rid] = now
                    complete_one(st, w, now)
                    busy_until[w] = NEVER
                elif preempt_one(st, w, now):
                    remaining_ns[rid] += pcost_ns
                    busy_until[w] = NEVER
                else:
                    segment_ns[w] = min(remaining_ns[rid], slice_ns)
                    busy_until[w] = now + segment_ns[w]
        while i < n and arrival_ns[i] == now:
            arrive_one(st, i, type_id[i], now)
            i += 1
        k = assign_all(st, now)
        for j in range(k):
            w = st.out_w[j]
            rid = st.out_r[j]
            dispatcher_free = max(dispatcher_free, now) + overhead_ns
            if start_ns[rid] < 0:
                start_ns[rid] = dispatcher_free
            seg = remaining_ns[rid]
            if slice_ns > 0 and seg > slice_ns:
                seg = slice_ns
            segment_ns[w] = seg
            busy_until[w] = dispatcher_free + seg
        if st.ip[I_RESAS] != resas:
            resas = st.ip[I_RESAS]
            if n_log < log_t.shape[0]:
                log_t[n_log] = now
                for t in range(n_types):
                    g = st.t_group[t]
                    log_cores[n_log, t] = st.g_reserved[g].sum() if g >= 0 else 0
                n_log += 1
    return n_log


@dataclass
class SimResult:
    """What one simulation gives back (arrays are per request, in arrival order)."""

    policy: Policy
    arrival_ns: np.ndarray
    type_idx: np.ndarray
    service_ns: np.ndarray
    start_ns: np.ndarray
    completion_ns: np.ndarray           # -1: dropped (queue full)
    wall_s: float                       # how long the simulation took on this machine
    reservation_log: list = field(default_factory=list)  # [(t_ns, {type name: cores})]

    @property
    def requests_per_s(self) -> float:
        """Simulation speed: simulated requests per second of wall time."""
        return len(self.arrival_ns) / self.wall_s if self.wall_s > 0 else float("inf")


def simulate(policy: Policy, requests, overhead_ns: int = 0) -> SimResult:
    """Run ``requests`` (arrival_ns, type_idx, service_ns) through ``policy``, a fresh policy."""
    if overhead_ns < 0:
        raise ValueError(f"overhead_ns must be >= 0, got {overhead_ns}")
    arrival = np.ascontiguousarray(requests.arrival_ns, dtype=np.int64)
    type_idx = np.ascontiguousarray(requests.type_idx, dtype=np.int64)
    service = np.ascontiguousarray(requests.service_ns, dtype=np.int64)
    # The ids on the wire: the stream's own types (a phased stream has more than one workload's).
    ids = requests.type_ids if hasattr(requests, "type_ids") else policy.type_ids
    wire_ids = np.ascontiguousarray(ids[type_idx], dtype=np.int64)
    start = np.empty_like(arrival)
    completion = np.empty_like(arrival)
    n_types = len(policy.workload.types)
    log_t = np.zeros(LOG_CAPACITY, np.int64)
    log_cores = np.zeros((LOG_CAPACITY, n_types), np.int64)
    t0 = time.perf_counter()
    n_log = _simulate(policy.ref, arrival, wire_ids, service, np.int64(overhead_ns), start, completion,
                      log_t, log_cores)
    wall_s = time.perf_counter() - t0
    names = [t.name for t in policy.workload.types]
    log = [(int(log_t[k]), {names[t]: int(log_cores[k, t]) for t in range(n_types)}) for k in range(n_log)]
    return SimResult(policy, arrival, type_idx, service, start, completion, wall_s, log)


def run_point(workload, policy: str, n_workers: int, load: float, n_requests: int = 200_000,
              seed: int = 1, overhead_ns: int = 0, warmup_frac: float = 0.1, **params) -> dict:
    """One load point: generate, simulate, summarise. JSON-ready (DARC adds its reservation)."""

    pol = make_policy(policy, workload, n_workers, **params)
    reqs = generate(workload, load, n_workers, n_requests, seed)
    res = simulate(pol, reqs, overhead_ns=overhead_ns)
    summary = summarize_requests(reqs, res.completion_ns, warmup_frac=warmup_frac)
    summary.update({
        "workload": workload.name, "policy": pol.name, "n_workers": n_workers, "load": load,
        "n_requests": n_requests, "seed": seed, "overhead_ns": overhead_ns,
        "params": {k: v for k, v in pol.params.items() if v is not None},
        "counters": pol.counters(), "sim_requests_per_s": res.requests_per_s,
    })
    table = pol.reservation()
    if table is not None:
        summary["reservation"] = table.table()
        summary["reservation_changes"] = len(res.reservation_log)
    return summary
