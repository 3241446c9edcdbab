"""The simulator on hand-made traces: batching rules, the overlap fix, bounds, expiry, conservation, speed."""
from __future__ import annotations

import time

import numpy as np
import pytest

from tailgate.core.errors import ArgError
from tailgate.faas.sim import ProfileError, load_profile, run_strategies, simulate, write_results
from tailgate.faas.strategies import STRATEGIES, Pool, make_strategy
from tailgate.faas.trace import Trace, generate

CONST = {k: {"cold_start_ms": {"dist": "const", "value": 1000.0}, "exec_ms": {"dist": "const", "value": 100.0},
             "exec_cached_ms": {"dist": "const", "value": 10.0}, "mem_mb": 15.0, "mem_cached_mb": 1.0}
         for k in ("cpu", "io")}


def trace(arrivals, funcs=None, kind="cpu"):
    a = np.asarray(arrivals, dtype=float)
    f = np.zeros(len(a), dtype=np.int32) if funcs is None else np.asarray(funcs, dtype=np.int32)
    names = [f"f{k}" for k in range(int(f.max()) + 1)]
    return Trace(a, f, np.full(len(a), 25), names, [kind] * len(names))


def run(tr, name, pool=None, **params):
    return simulate(tr, make_strategy(name, **params), pool or Pool(), CONST, cores=0)


def test_five_in_one_interval_one_sandbox_for_faasbatch_five_for_vanilla():
    tr = trace([0.01, 0.03, 0.05, 0.07, 0.09])
    fb, va = run(tr, "faasbatch"), run(tr, "vanilla")
    assert fb.sandboxes_created == 1 and fb.batches == 1 and len(set(fb.sandbox)) == 1
    assert np.all(fb.queue_s == 0) and np.all(fb.exec_s == 0.1)       # parallel inside
    # blocking creation, each invocation handed over as soon as its sandbox is ready (as the gateway
    # does): the 2nd waits for the 1st's creation (ready 1.2 s, done 1.3 s) and creates its own; the
    # 3rd, asked for at 2.2 s, takes the 1st's sandbox warm; the 4th creates; the 5th takes one warm
    assert va.sandboxes_created == 3 and len(set(va.sandbox)) == 3
    assert sorted(np.round(va.schedule_s + tr.arrival_s, 6)) == [0.2, 1.2, 2.2, 2.2, 3.2]
    # invocations longer than the creations free nothing meanwhile: one sandbox each, one after another
    long = {"cpu": {**CONST["cpu"], "exec_ms": {"dist": "const", "value": 10_000.0}}}
    va = simulate(tr, make_strategy("vanilla"), Pool(), long, cores=0)
    assert va.sandboxes_created == 5 and len(set(va.sandbox)) == 5
    assert sorted(np.round(va.schedule_s + tr.arrival_s, 6)) == [0.2, 1.2, 2.2, 3.2, 4.2]


def test_kraken_runs_serially_inside():
    tr = trace([0.01, 0.03, 0.05, 0.07])
    k = make_strategy("kraken")
    k.calibrate({0: 0.25}, {0: 0.1}, {0: [4]})    # batch size 2 -> 2 sandboxes, 2 each, serial
    r = simulate(tr, k, Pool(), CONST, cores=0)
    assert r.sandboxes_created == 2 and sorted(np.round(r.queue_s, 6)) == [0, 0, 0.1, 0.1]


def test_contention_is_processor_sharing_and_sfs_shares_only_past_its_slice():
    warm = {"cpu": {**CONST["cpu"], "cold_start_ms": {"dist": "const", "value": 0.0}}}
    tr = trace([0.01] * 4)
    va = simulate(tr, make_strategy("vanilla"), Pool(), warm, cores=2)
    sfs = simulate(tr, make_strategy("sfs", slice_s=0.05), Pool(), warm, cores=2)
    assert np.allclose(va.exec_s, 0.2)            # 4 running together on 2 cores: twice as long
    assert np.allclose(sfs.exec_s, 0.05 + 0.05 * 2)  # the first 50 ms at high priority, the rest shared
    # with a 1 s cold start each (created one after another) they never overlap: no contention
    assert np.allclose(simulate(tr, make_strategy("vanilla"), Pool(), CONST, cores=2).exec_s, 0.1)


def test_dispatch_overlap_fixed():
    # cold start 1 s, tick 0.2 s: the original started a dispatch each tick while the first was still
    # creating, and each created its own sandbox (5); serialised dispatch takes what queued meanwhile
    tr = trace([0.1, 0.3, 0.5, 0.7, 0.9])
    r = run(tr, "faasbatch")
    assert r.batches == 2 and r.loads == {0: [1, 4]} and r.sandboxes_created == 2


def test_pool_bound_queues_instead_of_creating():
    tr = trace([0.01] * 6)
    r = run(tr, "vanilla", pool=Pool(max_per_function=2))
    assert r.sandboxes_created == 2 and r.sandboxes_peak == 2 and len(set(r.sandbox)) == 2
    # the batch shares the two it got, one invocation at a time each: 3 per sandbox, serially
    assert sorted(np.round(r.queue_s, 6)) == [0, 0, 0.1, 0.1, 0.2, 0.2]
    # a later batch (ticked at 0.4 s) waits for this function's dispatch to finish creating (2.2 s), then
    # takes the sandbox free since 1.3 s and, at the bound, runs both of its invocations in it serially
    r = run(trace([0.01, 0.01, 0.3, 0.3]), "vanilla", pool=Pool(max_per_function=2))
    assert r.sandboxes_created == 2 and r.batches == 2
    assert list(np.round(r.schedule_s[2:], 6)) == [1.9, 1.9] and list(np.round(r.queue_s[2:], 6)) == [0, 0.1]
    assert len(set(r.sandbox[2:])) == 1


def test_total_bound_waits_then_destroys_another_functions_idle_sandbox():
    pool = Pool(max_total=1)
    r = run(trace([0.01, 0.01], funcs=[0, 1]), "faasbatch", pool=pool)
    assert r.sandboxes_created == 2 and r.sandboxes_peak == 1 and pool.destroyed == 1
    # f1 waits until f0's sandbox finishes (1.3 s), which is destroyed to make room for f1's
    assert list(np.round(r.schedule_s, 6)) == [0.19, 1.29] and list(r.cold_start_s) == [1.0, 1.0]


def test_idle_expiry_makes_a_second_cold_start():
    assert run(trace([0.0, 100.0]), "faasbatch").sandboxes_created == 1
    r = run(trace([0.0, 700.0]), "faasbatch")
    assert r.sandboxes_created == 2 and list(r.cold_start_s) == [1.0, 1.0]
    r = run(trace([0.0, 700.0]), "faasbatch", pool=Pool(idle_lifetime_s=1000))
    assert r.sandboxes_created == 1 and list(r.cold_start_s) == [1.0, 0.0]


def test_io_cache_first_invocation_builds_the_client_the_rest_wait_only_for_the_build():
    tr = trace([0.01, 0.02, 0.03, 2.0, 2.01], kind="io")  # the sandbox is idle again at 1.3 s
    r = run(tr, "faasbatch")
    # batch 1: the build (100 - 10 ms) under the lock, every thread blocked in the hook meanwhile
    # (exec, not queue), then all run with the cached client (10 ms); batch 2: cache warm
    assert list(np.round(r.exec_s, 6)) == [0.1, 0.1, 0.1, 0.01, 0.01]
    assert list(np.round(r.queue_s, 6)) == [0.0] * 5
    assert list(r.mem_mb) == [15.0, 1.0, 1.0, 1.0, 1.0]
    assert np.all(run(tr, "vanilla").exec_s == 0.1)


@pytest.mark.parametrize("kind", ["cpu", "io"])
def test_conservation_every_invocation_once(kind):
    tr = generate(invocations=3000, kind=kind, functions=6, minutes=2, seed=3)
    results = run_strategies(tr, list(STRATEGIES), [0.05, 0.5], cores=8)
    assert len(results) == 2 * len(STRATEGIES)
    for r in results:
        assert sum(sum(v) for v in r.loads.values()) == len(tr), r.strategy.name
        cols = r.columns()
        for c in ("schedule_s", "cold_start_s", "queue_s", "exec_s"):
            assert np.isfinite(cols[c]).all() and (cols[c] >= 0).all(), (r.strategy.name, c)
        assert np.allclose(cols["e2e_s"], cols["schedule_s"] + cols["cold_start_s"] + cols["queue_s"] + cols["exec_s"])
        assert (cols["sandbox"] >= 0).all() and r.sandboxes_created >= len(np.unique(cols["sandbox"]))
        s = r.summary()
        assert s["invocations"] == len(tr) and s["e2e_p98_ms"] >= s["e2e_p50_ms"] > 0
    kr = [r for r in results if r.strategy.name == "kraken"][0].summary()
    assert kr["predictor"] == "perfect"


def test_bad_profile_is_one_line(tmp_path):
    with pytest.raises(ProfileError, match="cold_start_ms"):
        load_profile({"cpu": {"exec_ms": {"dist": "const", "value": 1}}})
    bad = tmp_path / "p.json"
    bad.write_text("{nope")
    with pytest.raises(ProfileError, match=r"p.json:1: not JSON"):
        load_profile(bad)
    with pytest.raises(ProfileError, match="median"):
        load_profile({"io": {"cold_start_ms": {"dist": "lognormal", "sigma": 1}, "exec_ms": {"dist": "const", "value": 1}}})
    with pytest.raises(ProfileError, match=r"cpu.exec_ms: a value is not a number"):
        load_profile({"cpu": {"cold_start_ms": {"dist": "const", "value": 1},
                              "exec_ms": {"dist": "lognormal", "median": "fast", "sigma": 1}}})
    with pytest.raises(ProfileError, match="no entry for io"):
        simulate(trace([0.0], kind="io"), make_strategy("vanilla"), profile={"cpu": CONST["cpu"]})
    with pytest.raises(ArgError, match="cores"):
        simulate(trace([0.0]), make_strategy("vanilla"), cores=-1)


def test_write_results(tmp_path):
    tr = trace([0.01, 0.02])
    out = write_results(tmp_path / "r", [run(tr, "faasbatch")], {"x": 1}, per_invocation=True)
    assert (out / "points.csv").read_text().startswith("strategy,interval_s")
    assert len((out / "invocations-faasbatch-0.2.csv").read_text().splitlines()) == 3


def test_speed_sanity():
    tr = generate(invocations=200_000, minutes=5, functions=7, seed=1)
    t0 = time.perf_counter()
    simulate(tr, make_strategy("faasbatch"))
    rate = len(tr) / (time.perf_counter() - t0)
    assert rate > 50_000, f"{rate:,.0f} invocations/s"  # loose: about 10^6/s on the dev machine
