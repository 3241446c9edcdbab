"""Live SFS scheduling: an invocation starts SCHED_FIFO, is demoted to SCHED_OTHER after its slice.

Each test starts a gateway with the process sandbox (root only: SCHED_FIFO, nice and cgroups
need it); a handler reports its scheduling class at its start and again after spinning past the
slice.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest

from tailgate.faas.live import sandbox as sandbox_mod
from tailgate.faas.live.gateway import Gateway
from tailgate.faas.live.registry import load_manifest
from tailgate.faas.live.sandbox import CGROUP_ROOT, make_backend
from tailgate.faas.live.zygote import SfsScheduler
from tailgate.faas.strategies import Pool, make_strategy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO, nice -10 and cgroups need root")

SLICE_S = 0.05

HANDLERS = '''
import os, time

def classes(event, context):
    start = os.sched_getscheduler(0)
    nice0 = os.getpriority(os.PRIO_PROCESS, 0)
    time.sleep(event.get("sleep_s", 0.0))  # waiting uses no CPU time: still in the first slice after it
    after_sleep = os.sched_getscheduler(0)
    t0 = time.thread_time()
    while time.thread_time() - t0 < event["spin_s"]:
        pass
    time.sleep(0.02)  # the demoter (io) or the timer's signal (cpu) gets its turn
    return {"start": start, "after_sleep": after_sleep, "end": os.sched_getscheduler(0), "nice_start": nice0,
            "nice_end": os.getpriority(os.PRIO_PROCESS, 0)}
'''

MANIFEST = '''
path: .
functions:
  - {name: cpu, handler: sh:classes, kind: cpu}
  - {name: io, handler: sh:classes, kind: io}
'''


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "sh.py").write_text(HANDLERS)
    (tmp_path / "m.yaml").write_text(MANIFEST)
    return load_manifest(tmp_path / "m.yaml")


def run(manifest, strategy: str, calls: list[tuple[str, dict]], **params):
    """Start a gateway with ``strategy``, post ``calls`` one after another; (answers, /metrics, summary)."""
    async def main():
        gw = Gateway(manifest, make_strategy(strategy, dispatch_interval_s=0.02, **params), sandbox="process",
                     pool=Pool(max_per_function=4, max_total=8), grace_s=2.0)
        port = await gw.start(port=0)
        url = f"http://127.0.0.1:{port}"
        out = []
        try:
            async with aiohttp.ClientSession() as s:
                for fn, event in calls:
                    async with s.post(f"{url}/invoke/{fn}", json=event) as r:
                        out.append((r.status, await r.json()))
                async with s.get(f"{url}/metrics") as r:
                    metrics = await r.json()
        finally:
            summary = await gw.stop()
        return out, metrics, summary

    return asyncio.run(asyncio.wait_for(main(), 30))


def rt_available() -> bool:
    """cgroup v1 RT group scheduling, with room for one more gateway's RT budget beside the other
    cgroups' (another gateway serving sfs at the same time holds half of it)."""
    cpu = CGROUP_ROOT / "cpu"
    if not (cpu / "cpu.rt_runtime_us").exists():
        return False

    def share(d: Path) -> float:
        return int((d / "cpu.rt_runtime_us").read_text()) / int((d / "cpu.rt_period_us").read_text())

    taken = sum(share(d) for d in cpu.iterdir() if (d / "cpu.rt_runtime_us").exists() and d.is_dir())
    return taken + sandbox_mod.SFS_RT_SHARE <= share(cpu)


@pytest.mark.parametrize("fn", ["cpu", "io"])
def test_sfs_invocation_starts_fifo_then_is_demoted(manifest, fn):
    out, metrics, summary = run(manifest, "sfs", [(fn, {"spin_s": 3 * SLICE_S}), (fn, {"spin_s": 0.0})],
                                slice_s=SLICE_S)
    means = metrics["sfs_means"]
    assert summary["sfs_means"] == means
    assert [s for s, _ in out] == [200, 200], out
    long, short = out[0][1]["result"], out[1][1]["result"]
    if means == "sched_fifo":
        assert long["start"] == os.SCHED_FIFO and long["end"] == os.SCHED_OTHER, long
        assert long["nice_end"] == 0
        # an invocation shorter than its slice is FIFO throughout
        assert short["start"] == os.SCHED_FIFO, short
    elif means == "nice":
        assert long["start"] == os.SCHED_OTHER and long["nice_start"] == -10 and long["nice_end"] == 0, long
    else:
        pytest.skip(f"no means here: {means}")
    assert metrics["sfs_invocations"] == {means: 2}


def test_sfs_means_is_sched_fifo_on_cgroup_v1_with_rt(manifest):
    if not rt_available():
        pytest.skip("no cgroup v1 cpu controller with RT group scheduling, or its RT time is taken")
    _, metrics, _ = run(manifest, "sfs", [], slice_s=SLICE_S)
    assert metrics["sfs_means"] == "sched_fifo"


@pytest.mark.parametrize("strategy", ["vanilla", "faasbatch"])
def test_other_strategies_leave_invocations_in_the_fair_class(manifest, strategy):
    out, metrics, summary = run(manifest, strategy, [("cpu", {"spin_s": 0.0}), ("io", {"spin_s": 0.0})])
    for status, ans in out:
        assert status == 200
        assert ans["result"]["start"] == os.SCHED_OTHER and ans["result"]["nice_start"] == 0
    assert "sfs_means" not in metrics and "sfs_means" not in summary


def test_rt_cgroup_is_bounded_and_removed(manifest):
    if not rt_available():
        pytest.skip("no cgroup v1 cpu controller with RT group scheduling, or its RT time is taken")

    async def main():
        backend = make_backend("process", manifest)
        await backend.start()
        try:
            means = backend.enable_sfs(SLICE_S)
            rt = Path(backend.sfs["rt_dir"])
            shares = [int((d / "cpu.rt_runtime_us").read_text()) / int((d / "cpu.rt_period_us").read_text())
                      for d in (rt, rt.parent)]
        finally:
            await backend.stop()
        return means, rt, shares

    means, rt, shares = asyncio.run(main())
    assert means == "sched_fifo"
    assert all(0 < s <= 0.7 for s in shares), shares
    assert not rt.exists() and not rt.parent.exists()


def test_sfs_on_another_sandbox_kind_says_none(manifest):
    means = make_backend("bwrap", manifest).enable_sfs(0.1)
    assert means == "none: live SFS scheduling needs --sandbox process (not bwrap)"


def test_slice_zero_never_promotes():
    assert SfsScheduler({"slice_s": 0.0, "means": "sched_fifo", "rt_dir": None}).promote(os.getpid()) is None


@pytest.mark.parametrize("fn", ["cpu", "io"])
def test_the_slice_counts_cpu_time_not_waiting(manifest, fn):
    if not rt_available():
        pytest.skip("no cgroup v1 cpu controller with RT group scheduling, or its RT time is taken")
    out, metrics, _ = run(manifest, "sfs", [(fn, {"sleep_s": 3 * SLICE_S, "spin_s": 2 * SLICE_S})], slice_s=SLICE_S)
    res = out[0][1]["result"]
    assert metrics["sfs_means"] == "sched_fifo"
    assert (res["start"], res["after_sleep"], res["end"]) == (os.SCHED_FIFO, os.SCHED_FIFO, os.SCHED_OTHER), res


def test_without_rt_runtime_falls_back_to_nice(manifest, monkeypatch, capfd):
    monkeypatch.setattr(sandbox_mod.Cgroups, "enable_rt", lambda self, share: (None, "test: no RT runtime"))
    out, metrics, _ = run(manifest, "sfs", [("cpu", {"spin_s": 3 * SLICE_S}), ("io", {"spin_s": 3 * SLICE_S})],
                          slice_s=SLICE_S)
    assert metrics["sfs_means"] == "nice"
    for _, ans in out:
        res = ans["result"]
        assert res["start"] == os.SCHED_OTHER and (res["nice_start"], res["nice_end"]) == (-10, 0), res
    assert metrics["sfs_invocations"] == {"nice": 2}
    assert "faas: sfs: each invocation nice -10 for its first 0.05 s of CPU time, then nice 0 (no SCHED_FIFO: " \
           "test: no RT runtime)" in capfd.readouterr().err


def test_no_means_at_all_is_said_and_invocations_run_plain(manifest, monkeypatch, capfd):
    monkeypatch.setattr(sandbox_mod, "probe_sfs_means", lambda rt, root: ("none", "test: refused"))
    out, metrics, _ = run(manifest, "sfs", [("cpu", {"spin_s": 0.0})], slice_s=SLICE_S)
    assert metrics["sfs_means"].startswith("none: ") and "test: refused" in metrics["sfs_means"]
    assert out[0][1]["result"]["start"] == os.SCHED_OTHER and out[0][1]["result"]["nice_start"] == 0
    assert metrics["sfs_invocations"] == {}
    assert "faas: sfs: invocations are not prioritised (none: " in capfd.readouterr().err


def test_fifo_invocations_on_every_cpu_leave_the_gateway_running(manifest):
    """A slice longer than the work: every CPU spins in SCHED_FIFO; the RT budget (half of each CPU)
    stretches their wall time to about twice their CPU time and keeps /metrics answering."""
    if not rt_available():
        pytest.skip("no cgroup v1 cpu controller with RT group scheduling, or its RT time is taken")
    spin_s = 1.0

    async def main():
        gw = Gateway(manifest, make_strategy("sfs", dispatch_interval_s=0.02, slice_s=30.0), sandbox="process",
                     pool=Pool(max_per_function=8, max_total=8), grace_s=5.0)
        port = await gw.start(port=0)
        url = f"http://127.0.0.1:{port}"
        lags = []
        try:
            async with aiohttp.ClientSession() as s:
                async def spin():
                    async with s.post(f"{url}/invoke/cpu", json={"spin_s": spin_s}) as r:
                        return await r.json()

                tasks = [asyncio.create_task(spin()) for _ in range(os.cpu_count() or 1)]
                await asyncio.sleep(0.3)
                while not all(t.done() for t in tasks):
                    t0 = asyncio.get_running_loop().time()
                    async with s.get(f"{url}/metrics") as r:
                        await r.json()
                    lags.append(asyncio.get_running_loop().time() - t0)
                    await asyncio.sleep(0.05)
                results = [await t for t in tasks]
        finally:
            await gw.stop()
        return results, lags

    results, lags = asyncio.run(asyncio.wait_for(main(), 30))
    for ans in results:
        assert ans["result"]["start"] == os.SCHED_FIFO and ans["result"]["end"] == os.SCHED_FIFO, ans
        assert ans["timing"]["exec_s"] > 1.5 * spin_s, ans  # throttled to the budget
    assert lags and max(lags) < 0.5, lags


def test_rt_time_held_elsewhere_falls_back_to_nice_and_says_why(manifest, capfd):
    if not rt_available():
        pytest.skip("no cgroup v1 cpu controller with RT group scheduling, or its RT time is taken")
    hog = CGROUP_ROOT / "cpu" / f"tailgate-sfs-test-{os.getpid()}"
    hog.mkdir()
    try:
        try:  # enough of the machine's RT time that what is left is less than the gateway's budget
            root_us = int((CGROUP_ROOT / "cpu" / "cpu.rt_runtime_us").read_text())
            (hog / "cpu.rt_period_us").write_text("1000000")
            (hog / "cpu.rt_runtime_us").write_text(str(root_us - int(sandbox_mod.SFS_RT_SHARE * 1e6) + 100_000))
        except OSError:
            pytest.skip("cannot take the RT time for the test")
        out, metrics, _ = run(manifest, "sfs", [("io", {"spin_s": 0.0})], slice_s=SLICE_S)
    finally:
        (hog / "cpu.rt_runtime_us").write_text("0")
        hog.rmdir()
    assert metrics["sfs_means"] == "nice"
    assert out[0][1]["result"]["nice_start"] == -10
    err = capfd.readouterr().err
    assert "RT runtime (Invalid argument: other cgroups may hold the RT time)" in err, err
