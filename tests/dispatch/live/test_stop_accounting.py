"""Whatever stops the live server, accepted = completed + dropped + abandoned, exactly, in the
counters it prints and in the stats it returns; a worker killed with SIGKILL is restarted."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tailgate.dispatch.live.process import ServerProcess
from tailgate.dispatch.live.wire import (
    SIZE_DROPPED,
    BatchSocket,
    decode_responses,
    encode_requests,
    ip_to_int,
    udp_socket,
)
from tailgate.dispatch.workloads import LONG, SHORT

LOCAL = ip_to_int("127.0.0.1")
CLI = [sys.executable, "-c", "from tailgate.cli import main; main()"]
IDENTITY = re.compile(r"accepted ([\d,]+) = completed ([\d,]+) \+ dropped ([\d,]+) \+ abandoned ([\d,]+)")


def free_port() -> int:
    s = udp_socket()
    port = s.getsockname()[1]
    s.close()
    return port


class Client:
    """Send requests, collect (id, size) answers."""

    def __init__(self, port: int):
        self.port = port
        self.bs = BatchSocket(udp_socket())
        self.answers: dict[int, int] = {}

    def send(self, ids, types, run_ns) -> None:
        rows = encode_requests(ids, types, run_ns)
        sent = 0
        while sent < len(rows):
            sent += self.bs.send_burst(rows[sent:], None, LOCAL, self.port)

    def collect(self, until_n: int, timeout_s: float) -> dict[int, int]:
        deadline = time.monotonic() + timeout_s
        while len(self.answers) < until_n and time.monotonic() < deadline:
            k = self.bs.recv_burst()
            if k == 0:
                time.sleep(0.001)
                continue
            f, ok = decode_responses(self.bs.data[:k], self.bs.lengths[:k])
            for rid, size in zip(f["req_id"][ok].tolist(), f["size"][ok].tolist()):
                self.answers[rid] = size
        return self.answers

    def close(self) -> None:
        self.bs.close()


@pytest.fixture
def spawn():
    """Start CLI subprocesses; every one is killed at the end of the test."""
    procs = []

    def start(*args):
        env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
        p = subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(5)


def wait_listening(port: int, timeout_s: float = 60.0) -> None:
    """Until the server answers a hello on ``port``."""
    from tailgate.dispatch.live.loadgen import hello

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if hello("127.0.0.1", port, timeout_s=0.2, tries=1) is not None:
            return
    raise AssertionError(f"no server on port {port} after {timeout_s} s")


def backlog(port: int, n: int = 400) -> Client:
    """``n`` requests of 20 ms at once on 2 sleep workers: a few run, most queue or are dropped."""
    c = Client(port)
    for lo in range(0, n, 50):               # in bursts the socket buffer takes whole
        ids = np.arange(lo, min(lo + 50, n))
        c.send(ids, np.where(ids % 2, LONG, SHORT), np.full(len(ids), 20_000_000))
        time.sleep(0.01)
    c.collect(12, timeout_s=10)              # a few have completed: the backlog is there
    return c


def parse_identity(text: str) -> tuple[int, int, int, int]:
    m = IDENTITY.search(text)
    assert m, text
    return tuple(int(g.replace(",", "")) for g in m.groups())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_during_a_backlog_accounts_for_every_request(spawn, sig):
    port = free_port()
    n = 400
    # printed counters (no --json) for SIGINT, the JSON stats for SIGTERM
    as_json = ["--json"] if sig == signal.SIGTERM else []
    p = spawn("sched", "serve", "-p", "cfcfs", "-n", 2, "--kind", "sleep", "--port", port, "--param", "queue_len=200",
              "--max-queue-delay-us", 0, *as_json)
    wait_listening(port)
    c = backlog(port, n)
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    answers = c.collect(n, timeout_s=5)       # the abandoned ones are answered as dropped
    c.close()
    assert p.returncode == 0, err
    assert "Traceback" not in err
    if sig == signal.SIGTERM:
        s = json.loads(out)
        accepted, completed, dropped, abandoned = s["accepted"], s["completed"], s["dropped"], s["abandoned"]
        assert s["accounted"] is True
        assert s["abandoned_by_reason"].get("queued at stop", 0) > 0
        assert sum(s["abandoned_by_reason"].values()) == abandoned
        assert s["dropped_by_reason"]["queue_full"] == dropped > 0
    else:
        accepted, completed, dropped, abandoned = parse_identity(err)
        assert "abandoned: queued at stop" in err
    assert accepted == n
    assert accepted == completed + dropped + abandoned
    assert completed > 0 and dropped > 0 and abandoned > 0
    # every request got an answer: served, or refused (dropped and abandoned)
    assert len(answers) == n
    assert sum(1 for v in answers.values() if v == SIZE_DROPPED) == dropped + abandoned


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"resource_tracker" not in cmd:
            out.append(int(d))
    return sorted(out)


def test_a_worker_killed_mid_run_is_restarted_and_its_request_counted(spawn):
    port = free_port()
    p = spawn("sched", "serve", "-p", "cfcfs", "-n", 2, "--kind", "sleep", "--port", port)
    wait_listening(port)
    workers = _children(p.pid)
    assert len(workers) == 2, workers
    c = Client(port)
    c.send(np.arange(40), np.full(40, LONG), np.full(40, 50_000_000))      # 1 s of work on 2 workers
    c.collect(3, timeout_s=10)
    os.kill(workers[1], signal.SIGKILL)
    time.sleep(0.5)                                # the dispatcher notices within 0.1 s and restarts it
    assert p.poll() is None                        # still serving
    later = np.arange(1000, 1020)
    c.send(later, np.full(20, SHORT), np.zeros(20))
    answers = c.collect(60, timeout_s=15)
    assert p.poll() is None
    after = _children(p.pid)
    assert len(after) == 2 and workers[1] not in after and workers[0] in after
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    c.close()
    assert p.returncode == 0, err
    assert all(answers.get(r) == 0 for r in later.tolist())          # later requests served
    assert len(answers) == 60
    assert re.search(r"worker 1 died \(SIGKILL\): [01] request\(s\) it held counted abandoned; restarted", err), err
    accepted, completed, dropped, abandoned = parse_identity(err)
    assert accepted == 60 == completed + dropped + abandoned
    assert abandoned <= 1
    assert re.search(r"worker_deaths\s+1", err) and re.search(r"worker_restarts\s+1", err)


def test_a_killed_worker_in_a_server_process_is_in_the_stats():
    with ServerProcess("darc", "disp2", 2, worker_kind="sleep") as srv:
        workers = _children(srv.proc.pid)
        c = Client(srv.port)
        c.send(np.arange(10), np.full(10, LONG), np.full(10, 30_000_000))
        c.collect(1, timeout_s=10)
        os.kill(workers[0], signal.SIGKILL)
        answers = c.collect(10, timeout_s=15)
        c.send(np.arange(100, 110), np.full(10, SHORT), np.zeros(10))
        answers = c.collect(20, timeout_s=15)
        c.close()
    s = srv.stats
    assert len(answers) == 20 and all(answers[r] == 0 for r in range(100, 110))
    assert s["worker_deaths"] == s["worker_restarts"] == 1
    assert s["accounted"] and s["accepted"] == 20
    assert len(s["events"]) == 1 and "worker 0 died (SIGKILL)" in s["events"][0]
    assert s["abandoned"] == sum(s["abandoned_by_reason"].values()) <= 1
