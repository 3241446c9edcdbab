"""DARC reservations against the worked examples of the Perséphone reference sheet (N = 14)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailgate.core.errors import ArgError
from tailgate.dispatch.darc import cores_for, reserve, reserve_for
from tailgate.dispatch.workloads import PHASED, WORKLOADS, get_workload

W = tuple(range(14))


def test_high_bimodal():
    r = reserve_for(WORKLOADS["disp2"], 14)
    short, long_ = r.groups
    assert short.demand == pytest.approx(0.1386, abs=1e-3)
    assert short.reserved == (0,) and short.stealable == W[1:]
    assert long_.demand == pytest.approx(13.86, abs=1e-2)
    # 14 wanted, 13 left: all of them plus the spillway (w13, already among them).
    assert long_.reserved == W[1:] and long_.stealable == ()
    assert r.spillway == 13


def test_extreme_bimodal():
    short, long_ = reserve_for(WORKLOADS["sbim2"], 14).groups
    assert short.demand == pytest.approx(2.32, abs=1e-2) and short.reserved == (0, 1)
    assert short.stealable == W[2:]
    assert long_.demand == pytest.approx(11.68, abs=1e-2) and long_.reserved == W[2:]


def test_tpcc_groups_and_cores():
    r = reserve_for(WORKLOADS["tpcc"], 14)
    names = {5: "NewOrder", 6: "Payment", 7: "Delivery", 8: "OrderStatus", 9: "StockLevel"}
    got = [([names[t] for t in g.types], round(g.demand, 2), len(g.reserved)) for g in r.groups]
    assert got == [
        (["Payment", "OrderStatus"], 2.02, 2),
        (["NewOrder"], 6.46, 6),
        (["Delivery", "StockLevel"], 5.52, 6),
    ]
    assert sum(len(g.reserved) for g in r.groups) == 14
    assert r.groups[0].stealable == W[2:] and r.groups[1].stealable == W[8:]


def test_rocksdb():
    get, scan = reserve_for(WORKLOADS["rocksdb"], 14).groups
    assert get.reserved == (0,) and scan.reserved == W[1:]


def test_inverted_phase_sorts_by_service_time_not_label():
    _, _, wl = PHASED[0]
    first, second = reserve_for(wl, 14).groups
    assert first.types == (2,)  # "LONG" is the 1 µs type in this phase
    assert first.reserved == (0,)


def test_rounding_rule():
    assert [cores_for(d) for d in (0.01, 0.99, 1.5, 1.51, 2.0, 6.46, 5.52)] == [1, 1, 1, 2, 2, 6, 6]


def test_group_that_finds_no_cores_left_gets_the_spillway():
    # Three groups, two workers: the third finds none left and is served by the spillway.
    r = reserve([(1, 1_000, 0.4), (2, 10_000, 0.3), (3, 100_000, 0.3)], 2)
    assert [g.reserved for g in r.groups] == [(0,), (1,), (1,)]
    assert r.group_of(99) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(100, 1e7), st.floats(0.001, 1.0)), min_size=1, max_size=8),
    st.integers(1, 32),
)
def test_invariants(types, n):
    r = reserve([(i + 1, m, w) for i, (m, w) in enumerate(types)], n)
    means = [m for g in r.groups for m in g.mean_ns]
    assert means == sorted(means)  # groups in ascending order, every type once
    assert sorted(t for g in r.groups for t in g.types) == list(range(1, len(types) + 1))
    seen: set[int] = set()
    for g in r.groups:
        assert g.reserved, "every group is served by at least one worker"
        assert set(g.reserved) <= set(range(n))
        # Reservations never overlap, except the spillway handed to overflowing groups.
        assert not (set(g.reserved) - {r.spillway}) & seen
        seen |= set(g.reserved)
        # A group may steal only cores not reserved by itself or any shorter group.
        assert not set(g.stealable) & seen


def test_bad_input():
    with pytest.raises(ArgError, match="at least one worker"):
        reserve([(1, 1_000, 1.0)], 0)
    with pytest.raises(ArgError, match="type 1 has mean"):
        reserve([(1, -5, 1.0)], 4)
    with pytest.raises(ArgError, match="unknown workload 'nope'"):
        get_workload("nope")
