"""Each strategy's batching rule, Kraken's formula, the pool's bounds and idle expiry (pure objects)."""
from __future__ import annotations

import pytest

from tailgate.core.errors import ArgError
from tailgate.faas.strategies import Plan, Pool, kraken_batch_size, make_strategy


def test_plans():
    assert make_strategy("faasbatch").plan(0, 5, 0.2) == Plan(1, "parallel")
    assert make_strategy("vanilla").plan(0, 5, 0.2) == Plan(5, "single")
    assert make_strategy("sfs").plan(0, 5, 0.2) == Plan(5, "single")
    assert make_strategy("faasbatch-slo").plan(0, 5, 0.2) == Plan(1, "parallel")


def test_kraken_batch_size_formula():
    assert kraken_batch_size(1.0, 0.3) == 3       # floor(SLO / mean duration)
    assert kraken_batch_size(0.1, 0.3) == 1       # at least 1
    assert kraken_batch_size(2.0, 0.0) == 1


def test_kraken_perfect_replays_vanillas_loads_and_ewma_predicts_online():
    k = make_strategy("kraken")
    k.calibrate({0: 1.0}, {0: 0.3}, {0: [10, 2, 7]})
    assert k.batch_size[0] == 3
    assert [k.plan(0, n, 0.0) for n in (10, 2, 7)] == [Plan(4, "serial"), Plan(1, "serial"), Plan(3, "serial")]
    e = make_strategy("kraken", predictor="ewma", alpha=0.5)
    e.calibrate({0: 1.0}, {0: 0.3}, {})
    # first dispatch: nothing seen yet (predicts 1); then 10; then 0.5*2 + 0.5*10 = 6
    assert [e.plan(0, n, 0.0).sandboxes for n in (10, 2, 9)] == [1, 2, 2]
    with pytest.raises(ArgError, match="not calibrated"):
        make_strategy("kraken").plan(3, 1, 0.0)


def test_faasbatch_slo_interval_follows_t0_t1():
    s = make_strategy("faasbatch-slo", slo_s=1.0, dispatch_interval_s=0.2, alpha=1.0, max_interval_s=0.5)
    assert s.interval_s(0) == 0.2                    # nothing measured yet
    s.observe(0, 0.3, 0.2)
    assert s.interval_s(0) == pytest.approx(0.5)     # 1 - 0.3 - 0.2 = 0.5
    s.observe(0, 0.6, 0.35)
    assert s.interval_s(0) == pytest.approx(0.05)    # the objective tightens the tick
    s.observe(0, 0.0, 2.0)                           # work beyond the objective: shortest interval
    assert s.interval_s(0) == pytest.approx(0.01)
    with pytest.raises(ArgError, match="min_interval_s"):
        make_strategy("faasbatch-slo", min_interval_s=0.6, max_interval_s=0.5)


def test_unknown_strategy_or_argument_is_one_line():
    with pytest.raises(ArgError, match="unknown.*faasbatch, vanilla"):
        make_strategy("openwhisk")
    with pytest.raises(ArgError, match="faas strategy sfs: unknown argument 'slice'"):
        make_strategy("sfs", slice=1)


def test_pool_lifo_bounds_and_eviction_for_room():
    p = Pool(max_per_function=2, max_total=3)
    assert [p.acquire(0, 0.0), p.acquire(0, 0.0), p.acquire(0, 0.0)] == [(0, True), (1, True), None]
    assert p.acquire(1, 0.0) == (2, True) and p.acquire(1, 0.0) is None  # total bound
    p.release(0, 0, 1.0)
    p.release(0, 1, 2.0)
    assert p.acquire(0, 3.0) == (1, False)           # LIFO: the newest idle one
    assert p.acquire(1, 3.0) == (3, True)            # room made by destroying f0's idle sandbox 0
    assert p.destroyed == 1 and p.live_total == 3 and p.peak_total == 3


def test_pool_idle_expiry():
    p = Pool(idle_lifetime_s=600)
    sid, cold = p.acquire(0, 0.0)
    p.release(0, sid, 10.0)
    assert p.expire(600.0) == 0 and p.idle(0) == 1
    assert p.expire(611.0) == 1 and p.idle(0) == 0 and p.live_total == 0
    assert p.acquire(0, 611.0)[1] is True


def test_pool_available_counts_what_acquire_would_give():
    p = Pool(max_per_function=3, max_total=4)
    assert p.available(0) == 3                       # the per-function bound
    a, _ = p.acquire(0, 0.0)
    p.acquire(1, 0.0)
    p.acquire(1, 0.0)
    assert p.available(0) == 1                       # the total bound: 3 of 4 live
    p.release(1, 1, 1.0)
    assert p.available(0) == 2                       # function 1's idle one may be destroyed for room
    p.release(0, a, 2.0)
    assert p.available(0) == 3                       # its own warm one, then two new
    n = 0
    while p.acquire(0, 3.0) is not None:
        n += 1
    assert n == 3
