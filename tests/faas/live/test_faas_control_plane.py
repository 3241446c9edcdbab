"""The live gateway's control plane is not starved by the invocations it schedules.

- every strategy (cgroup v1): a sandbox's control threads run in the gateway's ``ctl`` folder (a
  large weight beside the sandboxes' folders), its forked (cpu) invocations in a child cgroup of the
  sandbox's; the answer leaves before the invocation process is reaped;
- sfs: the gateway's event loop, the template and every sandbox's control threads run SCHED_FIFO
  above the invocations (their own RT budget, ``<gateway>/ctl``), all undone at stop.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest

from tailgate.faas.live import sandbox as sandbox_mod
from tailgate.faas.live import zygote as zygote_mod
from tailgate.faas.live.gateway import Gateway
from tailgate.faas.live.registry import load_manifest
from tailgate.faas.live.sandbox import CGROUP_ROOT
from tailgate.faas.live.zygote import CONTROL_RT_PRIORITY, SFS_RT_PRIORITY, Runner
from tailgate.faas.strategies import Pool, make_strategy

HANDLERS = '''
import os, threading

def cpu_line(path):
    for line in open(path):
        _, ctl, p = line.rstrip("\\n").split(":", 2)
        if "cpu" in ctl.split(","):
            return p
    return ""

def where(event, context):
    """Its own class and cpu cgroup, and its sandbox's main thread's (the sandbox: parent of a cpu
    invocation, this process for an io one)."""
    sandbox = os.getppid() if event.get("forked") else os.getpid()
    tid = threading.get_native_id()
    return {"policy": os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK, "prio": os.sched_getparam(0).sched_priority,
            "cgroup": cpu_line(f"/proc/self/task/{tid}/cgroup"),
            "sandbox_policy": os.sched_getscheduler(sandbox) & ~os.SCHED_RESET_ON_FORK,
            "sandbox_prio": os.sched_getparam(sandbox).sched_priority,
            "sandbox_cgroup": cpu_line(f"/proc/{sandbox}/task/{sandbox}/cgroup")}
'''

MANIFEST = '''
path: .
functions:
  - {name: cpu, handler: h:where, kind: cpu}
  - {name: io, handler: h:where, kind: io}
'''

root_v1 = pytest.mark.skipif(os.geteuid() != 0 or not (CGROUP_ROOT / "cpu" / "cgroup.procs").exists(),
                             reason="needs root and the cgroup v1 cpu controller")


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "h.py").write_text(HANDLERS)
    (tmp_path / "m.yaml").write_text(MANIFEST)
    return load_manifest(tmp_path / "m.yaml")


def rt_room() -> bool:
    """RT group scheduling with room for one sfs gateway's two budgets beside the other cgroups'."""
    cpu = CGROUP_ROOT / "cpu"
    if not (cpu / "cpu.rt_runtime_us").exists():
        return False

    def share(d: Path) -> float:
        return int((d / "cpu.rt_runtime_us").read_text()) / int((d / "cpu.rt_period_us").read_text())

    taken = sum(share(d) for d in cpu.iterdir() if d.is_dir() and (d / "cpu.rt_runtime_us").exists())
    return taken + sandbox_mod.SFS_RT_SHARE + sandbox_mod.CONTROL_RT_SHARE <= share(cpu)


def serve(manifest, strategy: str, calls: list[tuple[str, dict]], **params):
    """Start a gateway, post ``calls`` one after another; (answers, what the gateway's thread and the
    template had while serving, the gateway's folder, what its thread has after stop)."""
    async def main():
        gw = Gateway(manifest, make_strategy(strategy, dispatch_interval_s=0.02, **params), sandbox="process",
                     pool=Pool(max_per_function=4, max_total=8), grace_s=2.0)
        port = await gw.start(port=0)
        tpl = gw.backend.template.pid
        ctl = CGROUP_ROOT / "cpu" / gw.backend.cgroups.name / "ctl"
        during = {"ctl_shares": int((ctl / "cpu.shares").read_text()) if ctl.exists() else None,
                  "gateway_cgroup": _cpu_of(os.getpid()),
                  "gateway": (policy(0), os.sched_getparam(0).sched_priority),
                  "template": (policy(tpl), os.sched_getparam(tpl).sched_priority),
                  "template_cgroup": _cpu_of(tpl)}
        out = []
        try:
            async with aiohttp.ClientSession() as s:
                for fn, event in calls:
                    async with s.post(f"http://127.0.0.1:{port}/invoke/{fn}", json=event) as r:
                        out.append((r.status, await r.json()))
        finally:
            await gw.stop()
        after = (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0), _cpu_of(os.getpid()))
        left = CGROUP_ROOT / "cpu" / gw.backend.cgroups.name
        assert not left.exists(), sorted(str(p) for p in left.rglob("*") if p.is_dir())  # everything removed at stop
        return out, during, gw.backend.cgroups.name, after

    return asyncio.run(asyncio.wait_for(main(), 30))


def policy(pid: int) -> int:
    """The scheduling policy of ``pid``, without the SCHED_RESET_ON_FORK flag."""
    return os.sched_getscheduler(pid) & ~os.SCHED_RESET_ON_FORK


def _cpu_of(pid: int) -> str:
    """The cpu cgroup path of ``pid``'s main thread."""
    with open(f"/proc/{pid}/task/{pid}/cgroup") as f:
        for line in f:
            _, ctl, p = line.rstrip("\n").split(":", 2)
            if "cpu" in ctl.split(","):
                return p
    return ""


@root_v1
@pytest.mark.parametrize("strategy", ["vanilla", "faasbatch"])
def test_forked_invocations_run_in_the_sandboxs_child_cgroup(manifest, strategy):
    home = _cpu_of(os.getpid())
    out, during, name, after = serve(manifest, strategy, [("cpu", {"forked": True}), ("io", {})])
    (s1, cpu), (s2, io) = out
    assert (s1, s2) == (200, 200), out
    cpu, io = cpu["result"], io["result"]
    # the sandboxes' control threads share the gateway's heavy control folder
    assert during["ctl_shares"] == sandbox_mod.CONTROL_CPU_SHARES
    assert cpu["sandbox_cgroup"] == io["sandbox_cgroup"] == f"/{name}/ctl", (cpu, io)
    # invocations (a forked process, an io thread) in their sandbox's invocations folder
    for r in (cpu, io):
        assert r["cgroup"].startswith(f"/{name}/sb") and r["cgroup"].endswith("/inv"), r
    # nothing else changes outside sfs: the gateway and the template stay where they are, in SCHED_OTHER
    assert during["gateway_cgroup"] == home and during["template_cgroup"] == home
    assert during["gateway"] == (os.SCHED_OTHER, 0) and during["template"] == (os.SCHED_OTHER, 0)
    assert cpu["sandbox_policy"] == os.SCHED_OTHER and cpu["policy"] == os.SCHED_OTHER
    assert after == (os.SCHED_OTHER, 0, home)
    assert not (CGROUP_ROOT / "cpu" / name).exists()


@root_v1
def test_sfs_control_plane_outranks_the_invocations_and_is_undone_at_stop(manifest):
    if not rt_room():
        pytest.skip("no RT group scheduling, or its RT time is taken")
    home = _cpu_of(os.getpid())
    out, during, name, after = serve(manifest, "sfs", [("cpu", {"forked": True}), ("io", {})], slice_s=5.0)
    assert [s for s, _ in out] == [200, 200], out
    fifo_ctl = (os.SCHED_FIFO, CONTROL_RT_PRIORITY)
    assert during["gateway"] == fifo_ctl and during["template"] == fifo_ctl, during
    assert during["template_cgroup"] == f"/{name}/ctl"
    for _, ans in out:
        r = ans["result"]
        # the invocation in its first slice: SCHED_FIFO below the control plane, in the RT folder
        assert (r["policy"], r["prio"], r["cgroup"]) == (os.SCHED_FIFO, SFS_RT_PRIORITY, f"/{name}/rt"), r
        # its sandbox's control thread (the one reading the gateway's frames) above it
        assert (r["sandbox_policy"], r["sandbox_prio"], r["sandbox_cgroup"]) == (*fifo_ctl, f"/{name}/ctl"), r
    assert after == (os.SCHED_OTHER, 0, home)
    assert not (CGROUP_ROOT / "cpu" / name).exists()


@root_v1
def test_sfs_demoted_cpu_invocation_goes_to_the_sandboxs_invocations_folder(manifest):
    if not rt_room():
        pytest.skip("no RT group scheduling, or its RT time is taken")
    out, _, name, _ = serve(manifest, "sfs", [("cpu", {"forked": True})], slice_s=0.0)  # slice 0: never promoted
    r = out[0][1]["result"]
    assert r["policy"] == os.SCHED_OTHER and r["cgroup"].startswith(f"/{name}/sb") and r["cgroup"].endswith("/inv"), r


@root_v1
def test_without_room_for_the_control_budget_it_gets_nice_and_says_so(manifest, monkeypatch, capfd):
    if not rt_room():
        pytest.skip("no RT group scheduling, or its RT time is taken")
    monkeypatch.setattr(sandbox_mod.Cgroups, "enable_control", lambda self, share: (None, "test: no room"))
    out, during, _, after = serve(manifest, "sfs", [("io", {})], slice_s=5.0)
    assert out[0][0] == 200
    assert during["gateway"] == (os.SCHED_OTHER, 0)
    assert after[:2] == (os.SCHED_OTHER, 0)
    err = capfd.readouterr().err
    assert ("faas: sfs: control plane (gateway, template, sandboxes' control threads) nice -15 (no SCHED_FIFO: "
            "test: no room); invocations in their first slice can delay it") in err, err


def test_a_forked_invocations_answer_leaves_before_it_is_reaped(monkeypatch):
    """The sandbox answers as soon as the invocation process has written (and closed) its answer,
    not after waiting for it to finish exiting."""
    order = []
    real_waitpid = os.waitpid

    def waitpid(pid, flags):
        order.append("reaped")
        return real_waitpid(pid, flags)

    monkeypatch.setattr(zygote_mod.os, "waitpid", waitpid)
    fn = {"name": "f", "kind": "cpu", "memory_mb": 64, "timeout_s": 5.0}
    runner = Runner(fn, lambda event, ctx: {"x": event["x"]}, out_fd=-1)
    runner.call_forked({"id": 1, "event": {"x": 3}}, lambda ans: order.append(ans["result"]))
    assert order == [{"x": 3}, "reaped"]


def test_a_forked_invocation_that_dies_is_answered_once_reaped():
    fn = {"name": "f", "kind": "cpu", "memory_mb": 64, "timeout_s": 5.0}
    runner = Runner(fn, lambda event, ctx: os._exit(3), out_fd=-1)
    got = []
    runner.call_forked({"id": 1, "event": {}}, got.append)
    assert len(got) == 1 and got[0]["ok"] is False and got[0]["error"] == "invocation process died (exit status 3)"


def test_cgroup_v2_sandbox_gets_control_and_invocations_children(tmp_path, monkeypatch):
    """v2 has no processes in a folder with children: the sandbox's process goes to ``sbN/ctl``, its
    forked invocations to ``sbN/inv``; both are removed with the sandbox."""
    monkeypatch.setattr(sandbox_mod, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(sandbox_mod.os, "geteuid", lambda: 0)
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    cg = sandbox_mod.Cgroups("tg-test")
    (tmp_path / "m.yaml").write_text("functions:\n  - {name: a, handler: m:f, kind: cpu}\n")
    spec = load_manifest(tmp_path / "m.yaml").functions["a"]
    dirs = cg.create(3, spec)
    sb = tmp_path / "tg-test" / "sb3"
    assert dirs == [sb]
    assert (sb / "cgroup.subtree_control").read_text() == "+cpu"
    assert cg.members(dirs) == [sb / "ctl"] and cg.invocations_dir(dirs) == sb / "inv"
    for f in (sb / "cgroup.subtree_control", sb / "cpu.max", sb / "memory.max"):
        f.unlink()  # a real cgroup folder's files go with it
    cg.remove(dirs)
    assert not sb.exists()


def test_cgroup_v1_sandbox_gets_an_invocations_child(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox_mod, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(sandbox_mod.os, "geteuid", lambda: 0)
    for c in ("cpu", "memory"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "cgroup.procs").write_text("")
    cg = sandbox_mod.Cgroups("tg-test")
    assert cg.version == 1
    (tmp_path / "m.yaml").write_text("functions:\n  - {name: a, handler: m:f, kind: cpu}\n")
    dirs = cg.create(5, load_manifest(tmp_path / "m.yaml").functions["a"])
    cpu = tmp_path / "cpu" / "tg-test" / "sb5"
    assert cg.members(dirs) == dirs and cg.invocations_dir(dirs) == cpu / "inv"


def test_a_forked_invocations_wait_to_start_is_queue_time_not_answer_gap():
    """A forked invocation that waits for a CPU before its handler starts (under sfs: its turn in the
    SCHED_FIFO queue) reports that wait in ``queue_s``; ``exec_s`` is the handler's alone."""
    import time

    from tailgate.faas.live.zygote import ControlClass, read_frame

    class SlowStart:  # stands for an SfsScheduler whose promotion waits 0.3 s for the CPU
        control = ControlClass(None)

        def begin_process(self):
            time.sleep(0.3)
            return "sched_fifo"

    r, w = os.pipe()
    fn = {"name": "f", "kind": "cpu", "memory_mb": 64, "timeout_s": 5.0}
    runner = Runner(fn, lambda event, ctx: {}, out_fd=w, sfs=SlowStart())
    runner.run_items([{"id": 7, "event": {}}], time.perf_counter())
    msg = read_frame(r)
    os.close(r)
    os.close(w)
    assert msg["id"] == 7 and msg["ok"] and msg["sfs"] == "sched_fifo"
    assert msg["queue_s"] >= 0.3 and msg["exec_s"] < 0.1, msg
    assert "start_wait_s" not in msg
