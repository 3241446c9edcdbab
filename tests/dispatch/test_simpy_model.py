"""The SimPy baseline model: hand-computed cases, an independent event-loop oracle, queueing theory."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailgate.core.errors import ArgError
from tailgate.dispatch.darc import reserve, reserve_for
from tailgate.dispatch.requests import Requests, generate
from tailgate.dispatch.simpy_model import simulate_simpy
from tailgate.dispatch.workloads import LONG, SHORT, RequestType, Workload, get_workload

BIMODAL = (RequestType("SHORT", SHORT, 1_000, 0.5), RequestType("LONG", LONG, 100_000, 0.5))


def stream(arrival, type_idx, service, types=BIMODAL) -> Requests:
    return Requests(
        np.array(arrival, np.int64), np.array(type_idx, np.int64), np.array(service, np.int64), 1.0, tuple(types)
    )


def reference(reqs: Requests, n_workers, policy, reservation=None, overhead_ns=0) -> np.ndarray:
    """The same semantics as a plain loop over event instants (no SimPy): the test oracle.

    A worker is busy at ``t`` exactly while ``busy_until[w] > t``; at each instant every arrival
    up to ``t`` is queued, then one decision round runs.
    """
    arrival, service = reqs.arrival_ns.tolist(), reqs.service_ns.tolist()
    tid = reqs.type_ids[reqs.type_idx].tolist()
    n = len(arrival)
    done = [-1] * n
    busy_until = [0] * n_workers
    queues: dict = {}
    order = [] if policy == "cfcfs" else [(t, g) for g in reservation.groups for t in g.types]
    known = {t for t, _ in order}
    next_arrival, t = 0, 0
    dispatcher_free = [0]

    def start(i, w, t):
        s = max(t, dispatcher_free[0]) + overhead_ns
        dispatcher_free[0] = s
        busy_until[w] = done[i] = s + service[i]

    def idle(ws, t):
        return [w for w in ws if busy_until[w] <= t]

    while True:
        while next_arrival < n and arrival[next_arrival] <= t:
            i = next_arrival
            key = "all" if policy == "cfcfs" else (tid[i] if tid[i] in known else "unknown")
            queues.setdefault(key, []).append(i)
            next_arrival += 1
        if policy == "cfcfs":
            q = queues.get("all", [])
            while q and idle(range(n_workers), t):
                start(q.pop(0), idle(range(n_workers), t)[0], t)
        else:
            for type_id, g in order:
                q = queues.get(type_id, [])
                while q:
                    free = idle(g.reserved, t) or idle(g.stealable, t)
                    if not free:
                        break
                    start(q.pop(0), free[0], t)
            q = queues.get("unknown", [])
            if q and busy_until[reservation.spillway] <= t:
                start(q.pop(0), reservation.spillway, t)
        upcoming = [b for b in busy_until if b > t] + arrival[next_arrival : next_arrival + 1]
        if not upcoming:
            return np.array(done, np.int64)
        t = min(upcoming)


# --- hand-computed cases -------------------------------------------------------------------------


def test_cfcfs_three_requests_two_workers():
    # t=0: r0 (10 ns) -> w0; t=1: r1 (5) -> w1; t=2: r2 waits; t=6: w1 frees, r2 (4) -> w1, done 10.
    reqs = stream([0, 1, 2], [0, 0, 0], [10, 5, 4])
    assert simulate_simpy(reqs, 2, "cfcfs").tolist() == [10, 6, 10]


def test_cfcfs_gives_the_lowest_index_idle_worker_and_a_completion_frees_a_worker_for_a_same_time_arrival():
    # r0 on w0 until 5, r1 on w1 until 20. At t=5 w0 completes and r2 arrives: it takes w0 at once.
    # At t=6 r3 finds w0 busy (until 5+7=12) and w1 busy: waits until 12, takes w0 (the lowest).
    reqs = stream([0, 0, 5, 6], [0, 0, 0, 0], [5, 20, 7, 1])
    assert simulate_simpy(reqs, 2, "cfcfs").tolist() == [5, 20, 12, 13]


def test_darc_keeps_the_short_core_idle_while_long_requests_wait():
    # Two workers, SHORT reserved w0 (may steal w1), LONG reserved w1 (steals nothing).
    resa = reserve([(SHORT, 1_000, 0.9), (LONG, 100_000, 0.1)], 2)
    assert [g.reserved for g in resa.groups] == [(0,), (1,)]
    # Two LONG at t=0: one on w1, the other waits although w0 is idle (not work-conserving).
    reqs = stream([0, 0], [1, 1], [100, 100])
    assert simulate_simpy(reqs, 2, "darc", resa).tolist() == [100, 200]
    assert simulate_simpy(reqs, 2, "cfcfs").tolist() == [100, 100]


def test_darc_short_requests_steal_an_idle_long_core():
    resa = reserve([(SHORT, 1_000, 0.9), (LONG, 100_000, 0.1)], 2)
    # Three SHORT at t=0: w0, then the stolen w1, then the third waits for w0.
    reqs = stream([0, 0, 0], [0, 0, 0], [10, 10, 10])
    assert simulate_simpy(reqs, 2, "darc", resa).tolist() == [10, 10, 20]
    # A SHORT arriving while w0 is busy and a LONG holds w1 waits for w0, not behind the LONG.
    reqs = stream([0, 0, 1], [0, 1, 0], [10, 100, 10])
    assert simulate_simpy(reqs, 2, "darc", resa).tolist() == [10, 100, 20]


def test_darc_serves_shorter_types_first_in_a_round():
    resa = reserve([(SHORT, 1_000, 0.5), (LONG, 100_000, 0.5)], 3)   # SHORT w0 (+steal w1, w2); LONG w1, w2
    # A LONG arrives first, but in the round at t=0 the SHORTs take w0, w1, w2 before the LONG looks.
    reqs = stream([0, 0, 0, 0], [1, 0, 0, 0], [50, 10, 10, 10])
    assert simulate_simpy(reqs, 3, "darc", resa).tolist() == [60, 10, 10, 10]


def test_unknown_types_go_one_per_round_to_the_spillway_only():
    resa = reserve([(SHORT, 1_000, 1.0)], 3)      # SHORT: w0 reserved, steals w1, w2; spillway w2
    types = BIMODAL[:1] + (RequestType("ODD", 9, 1_000, 0.0),)
    reqs = stream([0, 0, 0], [1, 1, 0], [10, 10, 10], types)
    # The two ODD requests queue as unknown: the first takes w2 at 0, the second waits for w2.
    assert simulate_simpy(reqs, 3, "darc", resa).tolist() == [10, 20, 10]


def test_dispatcher_overhead_serialises_assignments():
    # overhead 3: at t=0 r0 starts at 3 (w0), r1 at 6 (w1); r2 arrives at 4 and waits for w0
    # (busy until 13); at 13 it starts at max(13, 6) + 3 = 16 and completes at 21.
    reqs = stream([0, 0, 4], [0, 0, 0], [10, 10, 5])
    assert simulate_simpy(reqs, 2, "cfcfs", overhead_ns=3).tolist() == [13, 16, 21]
    # With a third idle worker r2 is decided at 4 but the dispatcher is busy until 6: 6 + 3 + 5.
    assert simulate_simpy(reqs, 3, "cfcfs", overhead_ns=3).tolist() == [13, 16, 14]


# --- the oracle on random small systems ----------------------------------------------------------

small_requests = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 2), st.integers(1, 25)), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(small_requests, st.integers(1, 4), st.sampled_from(["cfcfs", "darc"]), st.integers(0, 4),
       st.lists(st.integers(1, 50), min_size=2, max_size=2), st.sampled_from([0.1, 0.5, 0.9]))
def test_matches_the_oracle(rows, n_workers, policy, overhead, means, short_share):
    # Three kinds of request: two declared types and one the reservation does not know (id 9).
    types = (
        RequestType("A", 1, means[0], short_share),
        RequestType("B", 2, means[1], 1 - short_share),
        RequestType("X", 9, 10, 0.0),
    )
    arrival = np.cumsum([gap for gap, _, _ in rows])
    reqs = stream(arrival, [k for _, k, _ in rows], [s for _, _, s in rows], types)
    resa = reserve([(1, means[0], short_share), (2, means[1], 1 - short_share)], n_workers)
    got = simulate_simpy(reqs, n_workers, policy, resa if policy == "darc" else None, overhead)
    assert got.tolist() == reference(reqs, n_workers, policy, resa, overhead).tolist()
    assert np.all(got >= reqs.arrival_ns + reqs.service_ns + overhead)


@pytest.mark.parametrize("policy", ["cfcfs", "darc"])
def test_matches_the_oracle_on_a_loaded_bimodal_stream(policy):
    wl = get_workload("disp2")
    reqs = generate(wl, 0.95, 4, 3_000, seed=2)
    resa = reserve_for(wl, 4)
    got = simulate_simpy(reqs, 4, policy, resa, overhead_ns=50)
    assert got.tolist() == reference(reqs, 4, policy, resa, overhead_ns=50).tolist()


# --- queueing theory -----------------------------------------------------------------------------


def erlang_c_mean_wait(n_servers: int, load: float, mean_service: float) -> float:
    """Mean queueing delay of an M/M/c queue (Erlang C)."""
    a = n_servers * load
    top = a**n_servers / math.factorial(n_servers) / (1 - load)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(n_servers)) + top)
    return p_wait * mean_service / (n_servers * (1 - load))


@pytest.mark.parametrize("n_workers", [1, 4])
def test_mm_c_mean_wait_at_half_load(n_workers):
    mean = 10_000
    wl = Workload("mm", (RequestType("X", 1, mean, 1.0, "exp"),))
    reqs = generate(wl, 0.5, n_workers, 40_000, seed=3)
    done = simulate_simpy(reqs, n_workers, "cfcfs")
    wait = (done - reqs.arrival_ns - reqs.service_ns)[4_000:]
    assert wait.min() >= 0
    # M/M/1 at load 0.5 waits one mean service time on average; M/M/4 much less.
    assert wait.mean() == pytest.approx(erlang_c_mean_wait(n_workers, 0.5, mean), rel=0.1)


def test_bad_arguments():
    reqs = stream([0], [0], [1])
    with pytest.raises(ArgError, match="not 'sjf'"):
        simulate_simpy(reqs, 2, "sjf")
    with pytest.raises(ArgError, match="needs a static reservation"):
        simulate_simpy(reqs, 2, "darc")
    with pytest.raises(ArgError, match="reservation is for 14 workers, not 2"):
        simulate_simpy(reqs, 2, "darc", reserve_for(get_workload("disp2"), 14))
    with pytest.raises(ArgError, match=r"dispatcher overhead \(ns\) must be an integer >= 0"):
        simulate_simpy(reqs, 2, "cfcfs", overhead_ns=-1)
    with pytest.raises(ArgError, match="number of workers"):
        simulate_simpy(reqs, 0, "cfcfs")
