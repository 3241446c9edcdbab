"""Scheduling policies on hand-made event sequences: each rule of the reference sheet, one test."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailgate.core.errors import ArgError
from tailgate.dispatch.darc import reserve_for
from tailgate.dispatch.policy import (
    POLICIES,
    bind_policy_params,
    make_policy,
    policy_args,
)
from tailgate.dispatch.workloads import LONG, SHORT, WORKLOADS

DISP2 = WORKLOADS["disp2"]


def arrive(pol, rids, types, now=0):
    return pol.arrive(np.asarray(rids), np.asarray(types), now)


def assigned(pol, now=0):
    w, r = pol.assign(now)
    return list(zip(w.tolist(), r.tolist()))


def test_cfcfs_is_one_fifo_to_the_lowest_idle_worker():
    pol = make_policy("cfcfs", DISP2, 3)
    arrive(pol, [10, 11, 12, 13], [LONG, SHORT, LONG, SHORT])
    assert assigned(pol) == [(0, 10), (1, 11), (2, 12)]
    assert assigned(pol) == []
    pol.complete(np.array([1]), 50)
    assert assigned(pol, 50) == [(1, 13)]
    assert pol.counters()["dispatched"] == 4


def test_full_queue_drops_and_counts():
    pol = make_policy("cfcfs", DISP2, 1, queue_len=2)
    ok = arrive(pol, [1, 2, 3, 4], [SHORT] * 4)
    assert ok.tolist() == [True, True, False, False]
    assert pol.counters()["drops"] == 2


def test_dfcfs_round_robin_and_workers_serve_only_their_queue():
    pol = make_policy("dfcfs", DISP2, 2)
    arrive(pol, [0, 1, 2, 3], [SHORT] * 4)      # w0 gets 0, 2; w1 gets 1, 3
    assert assigned(pol) == [(0, 0), (1, 1)]
    pol.complete(np.array([0]), 5)
    assert assigned(pol, 5) == [(0, 2)]
    pol.complete(np.array([0]), 6)
    assert assigned(pol, 6) == []                # w0's queue is empty; w1's request 3 waits


def test_dfcfs_hash_assignment_uses_the_request_id():
    pol = make_policy("dfcfs", DISP2, 4, assign="hash")
    arrive(pol, [5, 6, 9], [SHORT] * 3)          # 5 % 4 = 1, 6 % 4 = 2, 9 % 4 = 1
    assert assigned(pol) == [(1, 5), (2, 6)]


def test_steal_takes_from_another_workers_queue():
    pol = make_policy("steal", DISP2, 2)
    arrive(pol, [0, 1, 2, 3], [SHORT] * 4)
    assert assigned(pol) == [(0, 0), (1, 1)]
    pol.complete(np.array([0]), 5)
    assert assigned(pol, 5) == [(0, 2)]
    pol.complete(np.array([0]), 6)
    assert assigned(pol, 6) == [(0, 3)]          # stolen from w1's queue


def test_sjf_serves_shorter_types_first_then_unknown():
    pol = make_policy("sjf", DISP2, 1)
    arrive(pol, [0, 1, 2], [99, LONG, SHORT])
    order = []
    for now in range(3):
        order += [r for _, r in assigned(pol, now)]
        pol.complete(np.array([0]), now)
    assert order == [2, 1, 0]


def test_edf_serves_the_earliest_deadline():
    pol = make_policy("edf", DISP2, 1)           # deadlines: SHORT 10 µs, LONG 1 ms
    arrive(pol, [0], [LONG], now=0)
    arrive(pol, [1], [SHORT], now=500_000)       # due at 510 µs, before the LONG's 1000 µs
    assert assigned(pol, 500_000) == [(0, 1)]
    pol2 = make_policy("edf", DISP2, 1)
    arrive(pol2, [0], [LONG], now=0)
    arrive(pol2, [1], [SHORT], now=995_000)      # due at 1005 µs: the LONG goes first
    assert assigned(pol2, 995_000) == [(0, 0)]


def test_ts_preempts_only_when_someone_waits():
    pol = make_policy("ts", DISP2, 1, slice_ns=5_000)
    assert pol.slice_ns == 5_000
    arrive(pol, [0], [LONG])
    assert assigned(pol) == [(0, 0)]
    assert not pol.preempt(0, 5_000)             # nothing waits: keep running
    arrive(pol, [1], [SHORT], now=6_000)
    assert pol.preempt(0, 10_000)
    assert assigned(pol, 10_000) == [(0, 1)]     # the SHORT waited longest relative to its SLO
    pol.complete(np.array([0]), 11_000)
    assert assigned(pol, 11_000) == [(0, 0)]     # the LONG resumes
    assert pol.counters()["preemptions"] == 1
    assert not make_policy("cfcfs", DISP2, 1).preempt(0, 1)


def test_darc_oracle_matches_the_reference_reservations():
    for name in ("disp2", "sbim2", "tpcc", "rocksdb"):
        pol = make_policy("darc", WORKLOADS[name], 14, profile="oracle")
        assert pol.reservation().table() == reserve_for(WORKLOADS[name], 14).table()


def darc_disp2():
    return make_policy("darc", DISP2, 14, profile="oracle")


def test_darc_short_core_idles_while_longs_wait():
    pol = darc_disp2()                           # SHORT: w0 (steals w1..13); LONG: w1..13
    arrive(pol, list(range(14)), [LONG] * 14)
    got = assigned(pol)
    assert [w for w, _ in got] == list(range(1, 14))   # w0 is never given a LONG
    assert pol.counters()["queued"] == 1
    arrive(pol, [100], [SHORT])
    assert assigned(pol) == [(0, 100)]


def test_darc_short_steals_idle_long_cores_never_the_reverse():
    pol = darc_disp2()
    arrive(pol, [0, 1, 2], [SHORT] * 3)
    assert assigned(pol) == [(0, 0), (1, 1), (2, 2)]


def test_darc_unknown_types_go_only_to_the_spillway_one_per_loop():
    pol = darc_disp2()
    arrive(pol, [0, 1], [77, 77])
    assert assigned(pol) == [(13, 0)]
    pol.complete(np.array([13]), 9)
    assert assigned(pol, 9) == [(13, 1)]


def test_darc_profiles_online_then_reserves():
    pol = make_policy("darc", DISP2, 14, resa_samples=100)
    assert pol.reservation() is None             # c-FCFS while profiling
    rng = np.random.default_rng(3)
    now = 0
    for rid in range(100):
        t = SHORT if rng.random() < 0.5 else LONG
        arrive(pol, [rid], [t], now)
        (w, _), = assigned(pol, now)
        now += 1_000 if t == SHORT else 100_000
        pol.complete(np.array([w]), now)
    table = pol.reservation().table()
    assert [g["types"] for g in table] == [[SHORT], [LONG]]
    assert table[0]["reserved"] == [0] and table[1]["reserved"] == list(range(1, 14))
    assert pol.reservations == 1


def test_bad_policy_arguments_are_refused_by_name():
    with pytest.raises(ArgError, match="unknown policy 'fifo'"):
        make_policy("fifo", DISP2, 4)
    with pytest.raises(ArgError, match=r"policy cfcfs: unknown argument 'slice_ns' \(arguments: queue_len\)"):
        make_policy("cfcfs", DISP2, 4, slice_ns=5)
    with pytest.raises(ArgError, match="n_workers"):
        make_policy("cfcfs", DISP2, 0)
    with pytest.raises(ArgError, match="'slice_ns' must be >= 1 ns"):
        make_policy("ts", DISP2, 4, slice_ns=0)
    with pytest.raises(ArgError, match="slo_x must be > 0"):
        make_policy("ts", DISP2, 4, slo_x=0)
    with pytest.raises(ArgError, match="'assign' must be one of rr, hash"):
        make_policy("dfcfs", DISP2, 4, assign="random")
    with pytest.raises(ArgError, match="smoothing must be below 1"):
        make_policy("darc", DISP2, 4, smoothing=1.0)
    with pytest.raises(ArgError, match="'tolerance' must be a number"):
        make_policy("darc", DISP2, 4, tolerance=float("nan"))
    with pytest.raises(ArgError, match="two request types"):
        make_policy("darc", WORKLOADS["tpcc"], 14, n_resas=2)
    with pytest.raises(ArgError, match="n_resas must be"):
        make_policy("darc", DISP2, 14, n_resas=14)
    with pytest.raises(ArgError, match="queue_len"):
        make_policy("sjf", DISP2, 4, queue_len=0)


def test_darc_static_reservation():
    pol = make_policy("darc", DISP2, 4, n_resas=2)
    rows = pol.reservation().table()
    assert rows[0]["reserved"] == [0, 1] and rows[0]["stealable"] == [2, 3]
    assert rows[1]["reserved"] == [2, 3] and rows[1]["stealable"] == []


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(POLICIES)),
       ops=st.lists(st.tuples(st.sampled_from(["arrive", "complete", "preempt"]),
                              st.integers(0, 3), st.sampled_from([SHORT, LONG, 0, 300])),
                    min_size=1, max_size=60))
def test_no_request_is_lost_or_served_twice(name, ops):
    pol = make_policy(name, DISP2, 4, queue_len=8)
    running: dict[int, int] = {}
    arrived = dropped = finished = 0
    now = 0
    for op, k, t in ops:
        now += 100
        if op == "arrive":
            ok = pol.arrive(np.array([arrived]), np.array([t]), now)
            dropped += int(not ok[0])
            arrived += 1
        elif op == "complete" and k in running:
            pol.complete(np.array([k]), now)
            del running[k]
            finished += 1
        elif op == "preempt" and k in running and pol.preempt(k, now):
            del running[k]
        for w, r in zip(*pol.assign(now)):
            assert w not in running, "assigned to a busy worker"
            assert r not in running.values(), "one request on two workers"
            running[int(w)] = int(r)
    c = pol.counters()
    assert c["drops"] == dropped
    assert finished + len(running) + c["queued"] + dropped == arrived


def test_every_policy_declares_its_arguments_with_units_and_help():
    for name in POLICIES:
        args = policy_args(name)
        assert args[0].name == "queue_len"
        for a in args:
            assert a.unit and a.help, (name, a.name)
        pol = make_policy(name, DISP2, 4)
        assert list(pol.params) == [a.name for a in args]
        assert pol.params == {a.name: a.default for a in args}


def test_declared_arguments_convert_what_a_command_line_gives():
    pol = make_policy("ts", DISP2, 4, slice_ns="2_500", queues="single", slo_x="4")
    assert pol.params["slice_ns"] == 2_500 and pol.slice_ns == 2_500 and pol.params["slo_x"] == 4.0
    assert bind_policy_params("darc", {"n_resas": None})["n_resas"] is None

