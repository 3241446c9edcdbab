"""The simulator's contention and client-cache model on hand-made cases whose answers are worked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from tailgate.core.errors import ArgError
from tailgate.faas.sim import ProfileError, load_profile, ps_finish_s, simulate
from tailgate.faas.strategies import Pool, make_strategy
from tailgate.faas.trace import Trace


def const(ms):
    return {"dist": "const", "value": float(ms)}


def profile(kind, exec_ms, cached_ms=None, cold_ms=0.0, **extra):
    p = {"cold_start_ms": const(cold_ms), "exec_ms": const(exec_ms), **extra}
    if cached_ms is not None:
        p.update(exec_cached_ms=const(cached_ms), mem_mb=15.0, mem_cached_mb=1.0)
    return {kind: p}


def trace(arrivals, kind="cpu"):
    a = np.asarray(arrivals, dtype=float)
    return Trace(a, np.zeros(len(a), dtype=np.int32), np.full(len(a), 25), ["f0"], [kind])


def test_processor_sharing_short_jobs_leave_and_the_rest_speed_up():
    # 1 core, 0.1 s and 1.0 s together: both at half speed until 0.2 s, then the long one alone: 1.1 s
    assert np.allclose(ps_finish_s(np.array([1.0, 0.1]), 0.0, 1), [1.1, 0.2])
    # 4 equal jobs on 2 cores: each at half speed
    assert np.allclose(ps_finish_s(np.full(4, 0.1), 0.0, 2), 0.2)
    # one job beside 3 others on 2 cores: 4 threads on 2 cores, half speed
    assert np.allclose(ps_finish_s(np.array([0.1]), 3.0, 2), 0.2)
    # plenty of cores: no slow-down; 0 cores: no contention at all
    assert np.allclose(ps_finish_s(np.array([0.3, 0.1]), 0.0, 32), [0.3, 0.1])
    assert np.allclose(ps_finish_s(np.array([0.3, 0.1]), 9.0, 0), [0.3, 0.1])
    # a sandbox capped at 1 core on a 32-core machine: 2 jobs of 0.1 s share that one core
    assert np.allclose(ps_finish_s(np.array([0.1, 0.1]), 0.0, 32, sandbox_cores=1.0), 0.2)


def test_a_batch_is_shared_over_time_not_stretched_by_its_size():
    # faasbatch, one sandbox, 1 core: 0.1, 0.1 and 1.0 s of CPU. The old model stretched every one
    # by 3 (0.3, 0.3, 3.0); sharing gives 0.3, 0.3 (three at a third) and 0.3 + 0.9 = 1.2 s
    tr = trace([0.01, 0.02, 0.03])
    prof = {"cpu": {"cold_start_ms": const(0.0),
                    "exec_ms": {"dist": "empirical", "samples": [100.0]}}}
    r = simulate(tr, make_strategy("faasbatch"), Pool(), prof, cores=1)
    assert np.allclose(r.exec_s, 0.3)
    # unequal sizes through the fib distribution: n=20 -> 0.1 s, n=30 -> 1.0 s (no noise)
    fib = {"cpu": {"cold_start_ms": const(0.0),
                   "exec_ms": {"dist": "fib", "anchors": [[20, 100.0], [30, 1000.0]], "sigma": 0.0}}}
    t2 = Trace(np.array([0.01, 0.02, 0.03]), np.zeros(3, dtype=np.int32), np.array([20, 20, 30]), ["f0"], ["cpu"])
    r2 = simulate(t2, make_strategy("faasbatch"), Pool(), fib, cores=1)
    assert np.allclose(r2.exec_s, [0.3, 0.3, 1.2])


def test_io_only_the_cpu_share_contends():
    # vanilla, no cold start: 4 I/O invocations of 0.1 s start together on 1 core. All CPU: 4 at a
    # quarter speed, 0.4 s; with cpu_share 0.5: 0.05 s of CPU each at a quarter (0.2 s) + 0.05 s wait
    tr = trace([0.01] * 4, kind="io")
    full = simulate(tr, make_strategy("vanilla"), Pool(), profile("io", 100.0), cores=1, io_cpu_share=1.0)
    assert np.allclose(full.exec_s, 0.4)
    half = simulate(tr, make_strategy("vanilla"), Pool(), profile("io", 100.0), cores=1, io_cpu_share=0.5)
    assert np.allclose(half.exec_s, 0.25)
    # the profile's io.cpu_share wins over the argument
    prof = profile("io", 100.0, cpu_share=0.0)
    assert np.allclose(simulate(tr, make_strategy("vanilla"), Pool(), prof, cores=1, io_cpu_share=1.0).exec_s, 0.1)


def test_client_build_others_wait_only_for_the_build():
    # faasbatch I/O, 3 invocations in one sandbox, plenty of cores: exec 100 ms, cached 10 ms, so the
    # build is 90 ms; everyone waits for it in the hook (exec), then runs 10 ms: 100 ms each, no queue
    tr = trace([0.01, 0.02, 0.03], kind="io")
    r = simulate(tr, make_strategy("faasbatch"), Pool(), profile("io", 100.0, 10.0), cores=32, io_thread_cores=0)
    assert np.allclose(r.exec_s, 0.1) and np.allclose(r.queue_s, 0.0)
    # 1 core, all CPU: the build alone 90 ms, then 3 x 10 ms shared: 90 + 30 = 120 ms each
    r1 = simulate(tr, make_strategy("faasbatch"), Pool(), profile("io", 100.0, 10.0), cores=1, io_cpu_share=1.0)
    assert np.allclose(r1.exec_s, 0.12)


def test_background_is_the_others_mean_load_over_the_run():
    # two vanilla invocations on 1 core, the second 0.05 s after the first (0 cold start, 0.05 s tick).
    # Estimated when each starts (ps_passes=0): the first, 0.1 s alone, is running for the second's
    # first 0.05 s, so the second sees on average half a thread beside it: slow-down 1.5, 0.15 s
    tr = trace([0.01, 0.06])
    van = make_strategy("vanilla", dispatch_interval_s=0.05)
    r = simulate(tr, van, Pool(), profile("cpu", 100.0), cores=1, ps_passes=0)
    assert np.allclose(r.exec_s, [0.1, 0.15])
    # the fixed point also slows the first by the second: it runs 0.05 s alone, then both at half
    # speed: it ends at 0.15 s, the second 0.05 s later (0.15 s each)
    r = simulate(tr, make_strategy("vanilla", dispatch_interval_s=0.05), Pool(), profile("cpu", 100.0), cores=1)
    assert np.allclose(r.exec_s, [0.15, 0.15])


def test_a_burst_of_equal_jobs_ends_together():
    # ten vanilla invocations of 0.1 s arriving 10 ms apart on 1 core (one tick each, no cold start):
    # processor sharing over the whole run ends the last at 1.0 s of work after the first started,
    # and none of them gets a slowdown fixed at its start (the first would run alone: 0.1 s)
    tr = trace([0.001 + 0.01 * k for k in range(10)])
    r = simulate(tr, make_strategy("vanilla", dispatch_interval_s=0.01), Pool(), profile("cpu", 100.0), cores=1,
                 ps_passes=10)
    ends = r.schedule_s + r.exec_s + tr.arrival_s
    assert ends.max() - (r.schedule_s[0] + tr.arrival_s[0]) == pytest.approx(1.0, rel=0.05)
    assert r.exec_s[0] > 0.5


def test_bad_share_is_one_line():
    with pytest.raises(ProfileError, match="io.cpu_share"):
        load_profile(profile("io", 100.0, cpu_share=2.0))
    with pytest.raises(ArgError, match="io_cpu_share"):
        simulate(trace([0.0], kind="io"), make_strategy("vanilla"), Pool(), profile("io", 100.0), io_cpu_share=1.5)
    with pytest.raises(ArgError, match="sandbox_cores"):
        simulate(trace([0.0]), make_strategy("vanilla"), Pool(), profile("cpu", 100.0), sandbox_cores=-1)


def test_native_image_first_invocation_builds_cold_later_ones_warm():
    # vanilla, no contention: one invocation at a time reuses one sandbox. The first builds its
    # client from a cold image (300 ms, 15 MB), the later ones with the libraries' caches warm (80 ms)
    prof = profile("io", 300.0, cached_ms=30.0, exec_warm_ms=const(80.0), mem_warm_mb=4.0)
    tr = trace([0.01, 1.01, 2.01], kind="io")
    res = simulate(tr, make_strategy("vanilla"), Pool(), prof, cores=0)
    assert res.sandboxes_created == 1
    assert np.allclose(res.exec_s, [0.3, 0.08, 0.08])
    assert np.allclose(res.mem_mb, [15.0, 4.0, 4.0])
    # kraken-style serial share in a fresh sandbox: the first cold, the ones after it warm
    two = simulate(trace([0.01, 0.02], kind="io"), make_strategy("vanilla"), Pool(max_per_function=1), prof, cores=0)
    assert np.allclose(two.exec_s, [0.3, 0.08]) and np.allclose(two.queue_s, [0.0, 0.3])
    # without exec_warm_ms every native invocation builds from a cold image (as before)
    old = simulate(tr, make_strategy("vanilla"), Pool(), profile("io", 300.0, cached_ms=30.0), cores=0)
    assert np.allclose(old.exec_s, 0.3)


def test_the_hand_over_is_its_own_component_and_slows_with_the_load():
    # a 10 ms hand-over after each exec: alone it is 10 ms; 4 invocations ending together on 1 core share it
    tr = trace([0.01] * 4)
    p = profile("cpu", 100.0, answer_ms=const(10.0))
    free = simulate(tr, make_strategy("vanilla"), Pool(), p, cores=0)
    assert np.allclose(free.answer, 0.01) and np.allclose(free.e2e_s, free.schedule_s + free.exec_s + 0.01)
    busy = simulate(tr, make_strategy("faasbatch"), Pool(), p, cores=1)
    assert np.all(busy.answer > 0.01)  # ended together: each hand-over waits for the others'
    assert np.allclose(busy.e2e_s, busy.schedule_s + busy.cold_start_s + busy.queue_s + busy.exec_s + busy.answer)
    plain = simulate(tr, make_strategy("faasbatch"), Pool(), profile("cpu", 100.0), cores=1)
    assert np.all(plain.answer == 0) and np.allclose(plain.exec_s, busy.exec_s)  # without it: as before


def test_a_cold_starts_cpu_contends_with_running_invocations():
    # a 1 s job starts at 0.2 s; a second sandbox's 200 ms cold start at 0.4 s burns a whole core
    # on a 1-core machine: the running job is slowed only when the start's CPU counts
    tr = Trace(np.array([0.01, 0.21]), np.array([0, 1], dtype=np.int32), np.full(2, 25), ["f0", "f1"], ["cpu"] * 2)
    base = {"cold_start_ms": const(200.0), "exec_ms": const(1000.0)}
    quiet = simulate(tr, make_strategy("vanilla"), Pool(), {"cpu": base}, cores=1)
    hot = simulate(tr, make_strategy("vanilla"), Pool(), {"cpu": {**base, "cold_start_cpu_share": 1.0}}, cores=1)
    assert hot.exec_s[0] > quiet.exec_s[0] + 0.05
    with pytest.raises(ProfileError, match="cpu.cold_start_cpu_share"):
        load_profile({"cpu": {**base, "cold_start_cpu_share": 1.5}})


def test_an_io_sandboxs_threads_share_one_core():
    # faasbatch I/O, 4 invocations of 100 ms CPU in one sandbox on 4 cores: threads of one process
    # hold one interpreter lock, so together they get one core: 400 ms each; forked cpu ones 100 ms
    tr = trace([0.01] * 4, kind="io")
    p = profile("io", 100.0, cpu_share=1.0)
    p["io"]["exec_cached_ms"] = const(100.0)
    gil = simulate(tr, make_strategy("faasbatch"), Pool(), p, cores=4)
    assert np.allclose(gil.exec_s, 0.4, rtol=0.01)
    assert np.allclose(simulate(tr, make_strategy("faasbatch"), Pool(), p, cores=4, io_thread_cores=0).exec_s, 0.1)
    cpu = simulate(trace([0.01] * 4), make_strategy("faasbatch"), Pool(), profile("cpu", 100.0), cores=4)
    assert np.allclose(cpu.exec_s, 0.1)
    # one sandbox each (vanilla): no shared lock
    assert np.allclose(simulate(tr, make_strategy("vanilla"), Pool(), p, cores=4).exec_s, 0.1)


def test_baselines_start_sandboxes_without_the_reuse_hook():
    # the hook's sandboxes (faasbatch) start in cold_start_ms, the baselines' in cold_start_native_ms
    tr = trace([0.01], kind="io")
    p = profile("io", 100.0, 10.0, cold_ms=30.0, cold_start_native_ms=const(8.0))
    assert simulate(tr, make_strategy("faasbatch"), Pool(), p, cores=0).cold_start_s[0] == pytest.approx(0.030)
    for name in ("vanilla", "sfs"):
        assert simulate(tr, make_strategy(name), Pool(), p, cores=0).cold_start_s[0] == pytest.approx(0.008)


def test_the_shared_servers_work_is_serialised_on_its_core():
    # two I/O invocations in two sandboxes on 4 cores: 50 ms in the client, then 50 ms in the one
    # S3 server process (one core for both): the server phases share it, both end at 150 ms
    tr = trace([0.01, 0.01], kind="io")
    p = profile("io", 100.0, cpu_share=1.0, server_ms=const(50.0))
    r = simulate(tr, make_strategy("vanilla"), Pool(), p, cores=4)
    assert np.allclose(r.exec_s, 0.15, rtol=0.02)
    assert np.allclose(simulate(tr, make_strategy("vanilla"), Pool(), p, cores=4, server_cores=0).exec_s, 0.1)
    assert np.allclose(simulate(trace([0.01], kind="io"), make_strategy("vanilla"), Pool(), p, cores=4).exec_s, 0.1)


def test_a_fractional_capacity_slows_parallel_work():
    # 4 invocations of 100 ms at once on a capacity of 1.6 cores: 400 ms of work over 1.6 cores
    tr = trace([0.01] * 4)
    r = simulate(tr, make_strategy("faasbatch"), Pool(), profile("cpu", 100.0), cores=1.6)
    assert np.allclose(r.exec_s, 0.25, rtol=0.01)
    with pytest.raises(ProfileError, match="cpu.capacity_cores"):
        load_profile(profile("cpu", 100.0, capacity_cores=0))
