"""The live server's soak: 2x saturation for a long run (default 600 s; ``TAILGATE_SOAK_S`` shortens
it) with one worker killed with SIGKILL in the middle, between two low-load phases.

It checks that the server answers a hello every ``SAMPLE_S`` throughout, that its memory stays
flat (the private memory — USS — of the server and its workers together at most
``MEMORY_SLACK_BYTES`` above its value after the first tenth of the overload; in 600 s runs it
rises by ~0.02 MiB/s for the first ~2 minutes after each fork, steps up once by 2.5–6 MiB, then
stays flat to the end: pages the processes shared becoming each one's own, not a trend), that
``accepted = completed + dropped + abandoned`` at the stop, that the worker was restarted, and
that latency comes back afterwards (the low-load phase at the end has a p99 within 2x of the one
at the start). Run: ``TAILGATE_SOAK_S=60 .venv/bin/python -m pytest -m slow tests/dispatch/live/test_soak.py -s``.
"""

import os
import signal
import threading
import time

import pytest

from tailgate.dispatch.live.loadgen import LoadConfig, hello, load
from tailgate.dispatch.live.process import ServerProcess
from tailgate.dispatch.workloads import get_workload

SOAK_S = float(os.environ.get("TAILGATE_SOAK_S", "600"))
RUN_SCALE = 100                      # disp2 as run: SHORT 100 µs, LONG 10 ms (sleep workers)
N_WORKERS = 2
LOW_LOAD = 0.3
SAMPLE_S = 2.0
MEMORY_SLACK_BYTES = 16 << 20        # 16 MiB over the whole overload (the worker's restart costs ~6 once)


def _private_bytes(pid: int) -> tuple[int, int]:
    """(USS, RSS) of one process, from /proc/PID/smaps_rollup."""
    uss = rss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Private_Clean", "Private_Dirty"):
                uss += int(rest.split()[0]) * 1024
            elif key == "Rss":
                rss = int(rest.split()[0]) * 1024
    return uss, rss


def _tree(pid: int) -> list[int]:
    """``pid`` and its children (the workers; not multiprocessing's resource tracker)."""
    out = [pid]
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"resource_tracker" not in cmd:
            out.append(int(d))
    return out


def _memory(pid: int) -> tuple[int, int]:
    uss = rss = 0
    for p in _tree(pid):
        try:
            u, r = _private_bytes(p)
        except OSError:
            continue
        uss += u
        rss += r
    return uss, rss


class Monitor(threading.Thread):
    """Every SAMPLE_S: the server answers a hello, memory; at ``kill_at_s``, SIGKILL one worker."""

    def __init__(self, srv: ServerProcess, kill_at_s: float):
        super().__init__(daemon=True)
        self.srv, self.kill_at_s = srv, kill_at_s
        self.stop = threading.Event()
        self.samples: list[tuple[float, int, int]] = []     # (t, uss, rss)
        self.unanswered: list[float] = []
        self.killed: int | None = None

    def run(self) -> None:
        t0 = time.monotonic()
        pid = self.srv.proc.pid
        while not self.stop.wait(SAMPLE_S):
            t = time.monotonic() - t0
            if hello("127.0.0.1", self.srv.port, timeout_s=0.5, tries=3) is None or not self.srv.proc.is_alive():
                self.unanswered.append(t)
            uss, rss = _memory(pid)
            self.samples.append((t, uss, rss))
            if self.killed is None and t >= self.kill_at_s:
                workers = _tree(pid)[1:]
                self.killed = workers[-1]
                os.kill(self.killed, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux /proc")
def test_soak_twice_saturation_with_a_worker_killed():
    wl = get_workload("disp2")
    low_s = max(10.0, 0.05 * SOAK_S)
    full_rate = wl.rate_rps(1.0, N_WORKERS) / RUN_SCALE

    def phase(load_x: float, duration_s: float, seed: int) -> dict:
        return load(LoadConfig(wl, 0.5, N_WORKERS, port=srv.port, duration_s=duration_s, seed=seed,
                               rate_rps=load_x * full_rate, run_scale=RUN_SCALE, timeout_s=3.0), quiet=True)

    with ServerProcess("cfcfs", wl, N_WORKERS, worker_kind="sleep") as srv:
        before = phase(LOW_LOAD, low_s, 1)
        mon = Monitor(srv, kill_at_s=SOAK_S / 2)
        mon.start()
        try:
            over = phase(2.0, SOAK_S, 2)
        finally:
            mon.stop.set()
            mon.join(10)
        after = phase(LOW_LOAD, low_s, 3)
        alive = srv.proc.is_alive()
    s = srv.stats
    uss = [(t, u) for t, u, _ in mon.samples]
    settled = [u for t, u in uss if t >= 0.1 * SOAK_S]
    report = (f"soak {SOAK_S:g} s: p99 before {before['latency_ns']['p99'] / 1e6:.1f} ms, overload "
              f"{over['latency_ns']['p99'] / 1e6:.1f} ms, after {after['latency_ns']['p99'] / 1e6:.1f} ms; "
              f"shed {s['shed']:,}, accepted {s['accepted']:,} = completed {s['completed']:,} + dropped "
              f"{s['dropped']:,} + abandoned {s['abandoned']:,}; USS {settled[0] / 2**20:.1f} -> "
              f"{settled[-1] / 2**20:.1f} MiB (max {max(settled) / 2**20:.1f}), RSS max "
              f"{max(r for _, _, r in mon.samples) / 2**20:.1f} MiB; events {s['events']}; USS MiB by "
              f"{SAMPLE_S:g} s: {' '.join(f'{u / 2**20:.1f}' for _, u in uss)}")
    print(report)
    assert alive and mon.unanswered == [], report
    assert mon.killed is not None and s["worker_deaths"] == s["worker_restarts"] == 1, report
    assert s["accepted"] == s["completed"] + s["dropped"] + s["abandoned"] and s["accounted"], report
    assert s["shed"] > 0 and over["lost"] == 0, report
    assert max(settled) <= settled[0] + MEMORY_SLACK_BYTES, report
    assert after["latency_ns"]["p99"] <= 2 * before["latency_ns"]["p99"], report
    assert after["dropped"] == 0 and after["answered"] == after["n_requests"], report
