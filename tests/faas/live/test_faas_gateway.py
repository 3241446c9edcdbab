"""The live gateway in this process: HTTP answers, batching per tick, cold starts, faults, teardown.

Each test starts a gateway on a free port with the process sandbox, runs a few invocations and
stops it; every sandbox process must be gone afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess

import aiohttp
import psutil
import pytest

from tailgate.faas.live import sandbox as sandbox_mod
from tailgate.faas.live.gateway import Gateway
from tailgate.faas.live.registry import load_manifest
from tailgate.faas.live.sandbox import make_backend
from tailgate.faas.strategies import Pool, make_strategy

HANDLERS = '''
import time

def noop(event, context):
    return event

def slow(event, context):
    time.sleep(event.get("s", 0.5))
    return {"slept": event.get("s", 0.5)}

def boom(event, context):
    raise ValueError("boom: " + str(event.get("why", "no reason")))

def fib(event, context):
    def f(n):
        return n if n < 2 else f(n - 1) + f(n - 2)
    return f(event.get("n", 15))

def pid(event, context):
    import os
    return os.getpid()
'''

MANIFEST = '''
path: .
functions:
  - {name: noop, handler: th:noop, kind: io}
  - {name: slow, handler: th:slow, kind: io}
  - {name: boom, handler: th:boom, kind: io}
  - {name: fib, handler: th:fib, kind: cpu}
  - {name: hang, handler: th:slow, kind: io, limits: {timeout_s: 0.3}}
  - {name: pid, handler: th:pid, kind: cpu}
  - {name: cslow, handler: th:slow, kind: cpu}
'''


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "th.py").write_text(HANDLERS)
    (tmp_path / "m.yaml").write_text(MANIFEST)
    return load_manifest(tmp_path / "m.yaml")


def my_descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def run(manifest, body, strategy="faasbatch", interval_s=0.05, sandbox="process", **gw_kw):
    """Start a gateway, run ``body(gw, session, url)``, stop it; check no process was left behind."""
    before = my_descendants()

    async def main():
        gw = Gateway(manifest, make_strategy(strategy, dispatch_interval_s=interval_s), sandbox=sandbox,
                     pool=Pool(max_per_function=20, max_total=50), grace_s=2.0, **gw_kw)
        port = await gw.start(port=0)
        try:
            async with aiohttp.ClientSession() as s:
                out = await asyncio.wait_for(body(gw, s, f"http://127.0.0.1:{port}"), 30)
        finally:
            summary = await gw.stop()
        return out, summary

    out, summary = asyncio.run(main())
    left = my_descendants() - before
    assert not left, f"processes left behind: {left}"
    assert summary["accepted"] == summary["completed"] + summary["failed"] + summary["abandoned"]
    return out, summary


async def post(s, url, fn, event=None, data=None):
    async with s.post(f"{url}/invoke/{fn}", json=event if data is None else None, data=data) as r:
        return r.status, await r.json()


def test_http_answers_and_error_codes(manifest):
    async def body(gw, s, url):
        out = {}
        out["ok"] = await post(s, url, "noop", {"x": 1})
        out["404"] = await post(s, url, "nope", {})
        out["400"] = await post(s, url, "noop", data=b"{not json")
        out["413"] = await post(s, url, "noop", data=b'"' + b"x" * 5000 + b'"')
        out["500"] = await post(s, url, "boom", {"why": "test"})
        async with s.get(f"{url}/functions") as r:
            out["functions"] = await r.json()
        async with s.get(f"{url}/metrics") as r:
            out["metrics"] = await r.json()
        return out

    out, summary = run(manifest, body, max_body_bytes=4096)
    status, ans = out["ok"]
    assert status == 200 and ans["result"] == {"x": 1}
    for col in ("schedule_s", "cold_start_s", "queue_s", "exec_s", "e2e_s", "mem_mb"):
        assert col in ans["timing"]
    assert ans["timing"]["e2e_s"] >= ans["timing"]["exec_s"] > 0
    assert out["404"][0] == 404 and "unknown function 'nope'" in out["404"][1]["error"]
    assert out["400"][0] == 400 and "not JSON" in out["400"][1]["error"]
    assert out["413"][0] == 413 and "4096 bytes" in out["413"][1]["error"]
    assert out["500"][0] == 500 and out["500"][1]["error"] == "ValueError: boom: test"
    assert {f["name"] for f in out["functions"]["functions"]} == set(manifest.functions)
    m = out["metrics"]
    assert m["functions"]["noop"]["completed"] == 1 and "p50" in m["functions"]["noop"]["e2e_ms"]
    assert m["functions"]["noop"]["interval_s"] == 0.05  # the dispatch interval in effect
    assert m["functions"]["boom"]["failed"] == 1
    assert (summary["accepted"], summary["completed"], summary["failed"]) == (2, 1, 1)


@pytest.mark.parametrize("strategy, sandboxes", [("faasbatch", 1), ("vanilla", 5)])
def test_five_invocations_in_one_tick(manifest, strategy, sandboxes):
    async def body(gw, s, url):
        # long enough that no sandbox of the batch is free again before the last one is created
        return await asyncio.gather(*(post(s, url, "fib", {"n": 30}) for _ in range(5)))

    # a long tick, so the five arrive within one
    out, summary = run(manifest, body, strategy=strategy, interval_s=0.5)
    assert [st for st, _ in out] == [200] * 5
    assert summary["batches"] == 1
    assert summary["sandboxes"]["created"] == sandboxes
    colds = sorted(a["timing"]["cold_start_s"] for _, a in out)
    assert all(c > 0 for c in colds)  # every sandbox of the batch was new: cold start recorded
    assert summary["sandboxes"]["cold_start_ms"]["p50"] > 0


def test_a_share_starts_when_its_sandbox_is_ready_not_when_the_batchs_last_is(manifest):
    # vanilla, five in one tick: five sandboxes created one after another; the first invocation
    # runs (and is answered) while the later sandboxes are still being created
    async def body(gw, s, url):
        return await asyncio.gather(*(post(s, url, "fib", {"n": 12}) for _ in range(5)))

    out, summary = run(manifest, body, strategy="vanilla", interval_s=0.5)
    assert [st for st, _ in out] == [200] * 5 and summary["batches"] == 1
    ready = [a["timing"]["schedule_s"] + a["timing"]["cold_start_s"] for _, a in out]
    done = [a["timing"]["e2e_s"] for _, a in out]
    assert min(done) < max(ready)


def test_a_short_cpu_invocation_is_answered_before_a_long_one_of_its_batch(manifest):
    # each cpu invocation is a forked child; one that inherited a sibling's pipe held its answer
    # back until it exited itself, so a short one came back with the longest of its batch
    async def body(gw, s, url):
        async def timed(event):
            t0 = asyncio.get_running_loop().time()
            st, ans = await post(s, url, "cslow", event)
            return st, asyncio.get_running_loop().time() - t0

        # the long ones among the short ones: their forks overlap the short ones' pipes
        events = [{"s": 2.5} if k % 4 == 3 else {"s": 0.01} for k in range(16)]
        return await asyncio.gather(*(timed(e) for e in events))

    out, summary = run(manifest, body, interval_s=0.3)
    assert [st for st, _ in out] == [200] * 16
    assert summary["sandboxes"]["created"] == 1  # one batch, one sandbox
    longs = [t for k, (_, t) in enumerate(out) if k % 4 == 3]
    shorts = [t for k, (_, t) in enumerate(out) if k % 4 != 3]
    assert min(longs) >= 2.5
    assert max(shorts) < 1.5, shorts


def test_a_warm_sandbox_is_reused_and_has_no_cold_start(manifest):
    async def body(gw, s, url):
        first = await post(s, url, "noop", {})
        second = await post(s, url, "noop", {})
        return first, second

    (first, second), summary = run(manifest, body)
    assert first[1]["timing"]["cold_start_s"] > 0
    assert second[0] == 200, second
    assert second[1]["timing"]["cold_start_s"] == 0
    assert summary["sandboxes"]["created"] == 1


def test_a_killed_sandbox_fails_its_invocations_with_a_reason_and_is_replaced(manifest):
    async def body(gw, s, url):
        tasks = [asyncio.ensure_future(post(s, url, "slow", {"s": 5})) for _ in range(3)]
        for _ in range(200):  # until the batch is in a sandbox
            busy = [sb for sb in gw.pool.sandboxes.values() if sb.busy == 3]
            if busy:
                break
            await asyncio.sleep(0.01)
        os.kill(busy[0].pid, signal.SIGKILL)
        killed = await asyncio.gather(*tasks)
        after = await post(s, url, "slow", {"s": 0.01})
        return killed, after

    (killed, after), summary = run(manifest, body)
    for status, ans in killed:
        assert status == 502
        assert "closed its channel" in ans["error"] and "slow" in ans["error"]
    assert after[0] == 200
    assert summary["sandbox_died"] == 3 and summary["failed"] == 3 and summary["completed"] == 1
    assert summary["sandboxes"]["created"] == 2


def test_a_hung_handler_times_out_and_its_sandbox_is_recycled(manifest):
    async def body(gw, s, url):
        hung = await post(s, url, "hang", {"s": 60})
        ok = await post(s, url, "hang", {"s": 0.01})
        return hung, ok

    (hung, ok), summary = run(manifest, body)
    assert hung[0] == 504 and "timed out after 0.3 s" in hung[1]["error"]
    assert ok[0] == 200 and ok[1]["timing"]["cold_start_s"] > 0  # a new sandbox
    assert summary["timed_out"] == 1 and summary["sandboxes"]["created"] == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")
def test_a_process_sandbox_has_its_own_net_namespace(manifest):
    async def body(gw, s, url):
        st, ans = await post(s, url, "pid", {})
        sb = next(iter(gw.pool.sandboxes.values()))
        return st, ans, os.readlink(f"/proc/{sb.pid}/ns/net"), sb.unshared

    st, ans, sb_net, unshared = run(manifest, body)[0]
    assert st == 200 and unshared
    assert sb_net != os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{os.getpid()}/ns/uts") == os.readlink("/proc/self/ns/uts")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed (make system-deps)")
def test_the_bwrap_sandbox_runs_invocations(manifest):
    async def body(gw, s, url):
        return await asyncio.gather(post(s, url, "fib", {"n": 10}), post(s, url, "noop", {"y": 2}))

    out, summary = run(manifest, body, sandbox="bwrap")
    assert out[0] == (200, out[0][1]) and out[0][1]["result"] == 55
    assert out[1][1]["result"] == {"y": 2}
    assert summary["sandbox"] == "bwrap" and summary["sandboxes"]["created"] == 2


def _docker_up() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_docker_without_a_daemon_is_one_line(manifest):
    if _docker_up():
        pytest.skip("a docker daemon answers")

    async def main():
        await make_backend("docker", manifest).start()

    with pytest.raises(Exception) as e:
        asyncio.run(main())
    assert "--sandbox docker" in str(e.value) and "\n" not in str(e.value)


def test_cgroup_v2_limits_are_written(tmp_path, monkeypatch):
    """On a v2 hierarchy (faked in a folder) a sandbox's cgroup gets cpu.max and memory.max."""
    monkeypatch.setattr(sandbox_mod, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(sandbox_mod.os, "geteuid", lambda: 0)
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    cg = sandbox_mod.Cgroups("tg-test")
    assert cg.version == 2
    spec = load_manifest_text(tmp_path, "functions:\n  - {name: a, handler: m:f, kind: io, "
                                        "limits: {memory_mb: 64, cpu_share: 0.5}}\n").functions["a"]
    (d,) = cg.create(7, spec)
    assert d == tmp_path / "tg-test" / "sb7"
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (tmp_path / "tg-test" / "cgroup.subtree_control").read_text() == "+cpu +memory"


def test_no_cgroups_is_said_at_start_up(tmp_path, monkeypatch, manifest, capsys):
    monkeypatch.setattr(sandbox_mod, "CGROUP_ROOT", tmp_path)  # neither v1 nor v2 controllers there
    backend = make_backend("process", manifest)
    assert backend.cgroups.version is None
    assert "no cgroup limits" in backend.isolation()


@pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/memory/cgroup.procs") or os.geteuid() != 0,
                    reason="needs root and cgroup v1 memory")
def test_a_process_sandbox_is_in_its_own_v1_cgroup(manifest):
    async def body(gw, s, url):
        await post(s, url, "pid", {})
        sb = next(iter(gw.pool.sandboxes.values()))
        return open(f"/proc/{sb.pid}/cgroup").read(), [str(d) for d in sb.cgroups]

    cgroup_text, dirs = run(manifest, body)[0]
    assert any(f"/tailgate-faas-{os.getpid()}/sb" in line for line in cgroup_text.splitlines() if ":memory:" in line)
    assert all(not os.path.exists(d) for d in dirs)  # removed at teardown


def load_manifest_text(folder, text):
    p = folder / "m.yaml"
    p.write_text(text)
    return load_manifest(p)


@pytest.mark.skipif(os.geteuid() != 0 or not (sandbox_mod.CGROUP_ROOT / "cpu" / "cgroup.procs").exists(),
                    reason="needs root and cgroup v1")
def test_folders_of_a_dead_gateway_are_reaped_at_start():
    # a gateway killed with -9 leaves its cgroup folders (which may hold RT time); the next one
    # removes those of dead gateways and leaves live ones' alone
    proc = subprocess.Popen(["true"])  # a pid that has exited
    proc.wait()
    root = sandbox_mod.CGROUP_ROOT / "cpu"
    stale = root / f"tgtest-faas-{proc.pid}" / "sb1"
    alive = root / f"tgtest-faas-{os.getpid()}" / "sb1"
    try:
        stale.mkdir(parents=True)
        alive.mkdir(parents=True)
        sandbox_mod.Cgroups("tgtest-faas-1")
        assert not stale.parent.exists()
        assert alive.exists()
    finally:
        for d in (stale, stale.parent, alive, alive.parent):
            if d.exists():
                d.rmdir()
