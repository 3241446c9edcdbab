"""Request streams: open-loop Poisson arrivals, i.i.d. types by share, per-type service times, phases."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailgate.core.errors import ArgError
from tailgate.dispatch.requests import generate, generate_phased
from tailgate.dispatch.workloads import LONG, PHASED, SHORT, RequestType, Workload, get_workload


def test_same_seed_same_arrays_other_seed_other_arrays():
    wl = get_workload("tpcc")
    a, b, c = (generate(wl, 0.7, 14, 5_000, seed) for seed in (7, 7, 8))
    for field in ("arrival_ns", "type_idx", "service_ns"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
        assert not np.array_equal(getattr(a, field), getattr(c, field))


def test_arrays_shapes_and_types():
    r = generate(get_workload("disp2"), 0.5, 14, 10_000, 1)
    assert len(r) == 10_000
    for arr in (r.arrival_ns, r.type_idx, r.service_ns):
        assert arr.dtype == np.int64 and arr.shape == (10_000,)
    assert np.all(np.diff(r.arrival_ns) >= 0) and r.arrival_ns[0] >= 0
    assert r.type_names == ["SHORT", "LONG"] and r.type_ids.tolist() == [SHORT, LONG]
    assert r.nominal_ns.tolist() == [1_000.0, 100_000.0]


def test_arrivals_are_poisson_at_the_offered_rate():
    wl = get_workload("disp2")
    r = generate(wl, 0.8, 14, 400_000, 3)
    assert r.offered_rps == pytest.approx(wl.rate_rps(0.8, 14))
    gaps = np.diff(r.arrival_ns).astype(np.float64)
    mean_gap = 1e9 / r.offered_rps
    # The mean gap within 4 standard errors; an exponential's spread equals its mean, and a
    # fraction e^-1 of gaps exceeds the mean (memorylessness, checked at two points).
    assert gaps.mean() == pytest.approx(mean_gap, abs=4 * mean_gap / math.sqrt(len(gaps)))
    assert gaps.std() == pytest.approx(mean_gap, rel=0.01)
    assert np.mean(gaps > mean_gap) == pytest.approx(math.exp(-1), abs=0.003)
    assert np.mean(gaps > 3 * mean_gap) == pytest.approx(math.exp(-3), abs=0.002)


def test_types_follow_the_shares_and_a_zero_share_never_appears():
    wl = Workload(
        "w",
        (RequestType("A", 1, 1_000, 0.7), RequestType("B", 2, 2_000, 0.0), RequestType("C", 3, 3_000, 0.3)),
    )
    r = generate(wl, 1.0, 4, 200_000, 5)
    counts = np.bincount(r.type_idx, minlength=3)
    assert counts[1] == 0
    sd = math.sqrt(200_000 * 0.7 * 0.3)
    assert abs(counts[0] - 140_000) < 5 * sd
    # Fixed service times: every request carries exactly its type's time.
    assert np.array_equal(r.service_ns, np.array([1_000, 2_000, 3_000])[r.type_idx])


def test_each_type_draws_from_its_own_distribution():
    wl = Workload(
        "mix",
        (
            RequestType("E", 1, 5_000, 0.5, "exp"),
            RequestType("L", 2, 50_000, 0.3, "lognormal", sigma=1.0),
            RequestType.empirical("M", 3, [700, 900], 0.2),
        ),
    )
    r = generate(wl, 0.9, 8, 300_000, 11)
    by = [r.service_ns[r.type_idx == k] for k in range(3)]
    assert by[0].mean() == pytest.approx(5_000, rel=0.02) and by[0].std() == pytest.approx(5_000, rel=0.03)
    assert by[1].mean() == pytest.approx(50_000, rel=0.03)
    assert set(by[2].tolist()) == {700, 900}
    assert r.service_ns.min() >= 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_requests": 0}, "number of requests must be an integer >= 1"),
        ({"n_requests": 2.5}, "number of requests"),
        ({"n_workers": 0}, "number of workers must be an integer >= 1"),
        ({"load": 0.0}, r"load 0.0 is outside \(0, 1.5\]"),
        ({"load": 2.0}, "outside"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"workload": get_workload("disp2"), "load": 0.5, "n_workers": 4, "n_requests": 10, "seed": 1} | kwargs
    with pytest.raises(ArgError, match=message):
        generate(**args)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 10**6), st.integers(0, 20)), min_size=1, max_size=6).filter(
        lambda ts: sum(w for _, w in ts) > 0
    ),
    st.floats(0.05, 1.5),
    st.integers(1, 32),
    st.integers(1, 3_000),
    st.integers(0, 2**32),
)
def test_stream_invariants(types, load, n_workers, n, seed):
    total = sum(w for _, w in types)
    wl = Workload("h", tuple(RequestType(f"T{i}", i + 1, s, w / total, "exp") for i, (s, w) in enumerate(types)))
    r = generate(wl, load, n_workers, n, seed)
    assert len(r.arrival_ns) == len(r.type_idx) == len(r.service_ns) == n
    assert np.all(np.diff(r.arrival_ns) >= 0) and r.arrival_ns[0] >= 0
    assert r.service_ns.min() >= 1
    drawn = set(np.unique(r.type_idx).tolist())
    assert drawn <= {i for i, (_, w) in enumerate(types) if w > 0}


# --- phases --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phased():
    return generate_phased(PHASED, 14, seed=4, scale=0.01)   # 4 x 50 ms


def test_phases_follow_each_other_at_their_own_rates(phased):
    assert phased.phase_starts_ns == (0, 50_000_000, 100_000_000, 150_000_000)
    assert np.all(np.diff(phased.arrival_ns) >= 0) and phased.arrival_ns[-1] < 200_000_000
    bounds = list(phased.phase_starts_ns) + [200_000_000]
    expected_total = 0.0
    for k, (_, load, wl) in enumerate(PHASED):
        inside = (phased.arrival_ns >= bounds[k]) & (phased.arrival_ns < bounds[k + 1])
        expected = wl.rate_rps(load, 14) * 0.05
        expected_total += expected
        assert abs(np.count_nonzero(inside) - expected) < 5 * math.sqrt(expected)
    assert phased.offered_rps == pytest.approx(expected_total / 0.2)


def test_merged_types_keep_ids_and_each_kind_its_own_nominal_time(phased):
    got = [(t.name, t.type_id, t.service_ns) for t in phased.types]
    assert got == [
        ("SHORT@100us", SHORT, 100_000),   # phase 1: labels inverted on purpose
        ("LONG@1us", LONG, 1_000),
        ("SHORT@1us", SHORT, 1_000),       # phases 2 and 3 share these two kinds
        ("LONG@100us", LONG, 100_000),
        ("SHORT@3.5us", SHORT, 3_500),
    ]
    assert sum(t.ratio for t in phased.types) == pytest.approx(1.0)
    # Every request's service time is its merged type's (all phases are fixed-time).
    assert np.array_equal(phased.service_ns, phased.nominal_ns.astype(np.int64)[phased.type_idx])
    # Which kinds each phase uses.
    bounds = list(phased.phase_starts_ns) + [200_000_000]
    used = []
    for k in range(4):
        inside = (phased.arrival_ns >= bounds[k]) & (phased.arrival_ns < bounds[k + 1])
        used.append(sorted(set(phased.type_idx[inside].tolist())))
    assert used == [[0, 1], [2, 3], [2, 3], [4]]
    # Phase 3 is 95 % SHORT.
    inside = phased.arrival_ns >= bounds[2]
    inside &= phased.arrival_ns < bounds[3]
    assert np.mean(phased.type_idx[inside] == 2) == pytest.approx(0.95, abs=0.005)


def test_phased_is_deterministic_and_names_stay_plain_without_collisions():
    one = [(0.001, 0.5, get_workload("disp2")), (0.001, 0.9, get_workload("disp2"))]
    a, b = (generate_phased(one, 4, seed=9) for _ in range(2))
    assert np.array_equal(a.arrival_ns, b.arrival_ns) and np.array_equal(a.service_ns, b.service_ns)
    assert a.type_names == ["SHORT", "LONG"]   # the same kinds in both phases: no renaming


@pytest.mark.parametrize(
    "phases, scale, message",
    [
        ([], 1.0, "at least one phase"),
        ([(0.0, 0.8, PHASED[0][2])], 1.0, "phase 1 .phase1.: duration 0.0 s"),
        ([(1.0, 1.8, PHASED[0][2])], 1.0, "outside"),
        ([(1.0, 0.8, PHASED[0][2])], -1.0, "scale must be > 0"),
        ([(1.0, 0.01, PHASED[0][2])], 1e-9, "drew no requests"),
    ],
)
def test_bad_phases(phases, scale, message):
    with pytest.raises(ArgError, match=message):
        generate_phased(phases, 14, seed=1, scale=scale)
