"""Simulator speed: simulated requests per second, against a plain SimPy model of the same system.

Manual
------
:func:`bench_sim` returns JSON-ready records, one per (implementation, policy)::

    {"name": "sched_sim", "impl": "tailgate", "policy": "darc", "workers": 14,
     "requests": 2000000, "mreq_per_s": 3.1, "x_simpy": 45.0, "matches_simpy": True}

Both simulators run High Bimodal (``disp2``) at 80 % load with 14 workers, on request streams
drawn with the same seed; the SimPy model runs a shorter stream (it is ~100× slower) and the
rates are compared, so the ratio is measured in the same run on the same machine. The issue's
targets: ≥ 2 M requests/s for ``cfcfs`` and ``darc``, and ≥ 20× SimPy. DARC runs with its
reservation from the declared service times (``profile='oracle'``), as the SimPy model has no
online profiling; the compiled kernels are warmed up before timing, on the SimPy model's stream,
and ``matches_simpy`` says whether both gave every request of that stream the same completion time
(a speed ratio between two simulators means something only when they compute the same thing).
"""

from __future__ import annotations

import time

import numpy as np

from tailgate.dispatch.darc import reserve_for
from tailgate.dispatch.policy import make_policy
from tailgate.dispatch.requests import generate
from tailgate.dispatch.sim import simulate
from tailgate.dispatch.workloads import get_workload

POLICIES = ("cfcfs", "darc")
WORKLOAD = "disp2"
N_WORKERS = 14
LOAD = 0.8


def bench_sim(quick: bool = False, n_workers: int = N_WORKERS, load: float = LOAD, repeats: int = 3) -> list[dict]:
    # deferred: SimPy is an optional extra ('bench'/'test'); only this benchmark needs it
    from tailgate.dispatch.simpy_model import simulate_simpy

    wl = get_workload(WORKLOAD)
    n_ours = 200_000 if quick else 2_000_000
    n_simpy = 10_000 if quick else 50_000
    ours = generate(wl, load, n_workers, n_ours, seed=1)
    small = generate(wl, load, n_workers, n_simpy, seed=1)
    records = []
    for policy in POLICIES:
        kw = {"profile": "oracle"} if policy == "darc" else {}
        reference = simulate(make_policy(policy, wl, n_workers, **kw), small)  # compile / load the cache
        rate = max(simulate(make_policy(policy, wl, n_workers, **kw), ours).requests_per_s for _ in range(repeats))
        resa = reserve_for(wl, n_workers) if policy == "darc" else None
        t0 = time.perf_counter()
        simpy_done = simulate_simpy(small, n_workers, policy, reservation=resa)
        simpy_rate = n_simpy / (time.perf_counter() - t0)
        same = bool(np.array_equal(reference.completion_ns, simpy_done))
        common = {"name": "sched_sim", "policy": policy, "workers": n_workers, "load": load}
        records.append({**common, "impl": "simpy", "requests": n_simpy, "mreq_per_s": simpy_rate / 1e6, "x_simpy": 1.0})
        records.append({**common, "impl": "tailgate", "requests": n_ours, "mreq_per_s": rate / 1e6,
                        "x_simpy": rate / simpy_rate, "matches_simpy": same})
    return records
