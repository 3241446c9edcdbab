"""The live server on loopback: every request answered once with its id, bad input counted, clean stops."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tailgate.core.errors import ArgError
from tailgate.dispatch.live.dispatcher import Server
from tailgate.dispatch.live.process import ServerProcess
from tailgate.dispatch.live.ring import leaked_segments, orphaned_segments
from tailgate.dispatch.live.wire import (
    SIZE_DROPPED,
    BatchSocket,
    decode_responses,
    encode_requests,
    ip_to_int,
    udp_socket,
)
from tailgate.dispatch.workloads import GET, LONG, SCAN, SHORT

LOCAL = ip_to_int("127.0.0.1")


@pytest.fixture
def no_leaks():
    before = set(leaked_segments())
    yield
    assert set(orphaned_segments(also_pid=os.getpid())) - before == set()


class Client:
    """A test client: send raw datagrams or encoded requests, collect responses by id."""

    def __init__(self, port):
        self.port = port
        self.sock = udp_socket()
        self.bs = BatchSocket(self.sock)

    def send(self, ids, types, run_ns):
        rows = encode_requests(ids, types, run_ns)
        sent = 0
        while sent < len(rows):
            sent += self.bs.send_burst(rows[sent:], None, LOCAL, self.port)
        return sent

    def raw(self, payload: bytes):
        self.sock.sendto(payload, ("127.0.0.1", self.port))

    def collect(self, n, timeout_s=5.0):
        ids, sizes = [], []
        deadline = time.monotonic() + timeout_s
        while len(ids) < n and time.monotonic() < deadline:
            k = self.bs.recv_burst()
            if k == 0:
                time.sleep(0.0005)
                continue
            f, ok = decode_responses(self.bs.data[:k], self.bs.lengths[:k])
            assert ok.all()
            ids.extend(f["req_id"].tolist())
            sizes.extend(f["size"].tolist())
        return ids, sizes

    def close(self):
        self.bs.close()


@pytest.mark.parametrize("kind, reply, spin_ns", [("sleep", "dispatcher", 0), ("spin", "dispatcher", 0),
                                                   ("spin", "worker", 0), ("spin", "dispatcher", 100_000)])
def test_every_request_answered_once_with_its_id(kind, reply, spin_ns, no_leaks):
    with ServerProcess("cfcfs", "disp2", 2, worker_kind=kind, reply=reply, worker_spin_ns=spin_ns) as srv:
        c = Client(srv.port)
        n = 500
        for start in range(0, n, 50):                     # a few bursts, zero work
            c.send(np.arange(start, start + 50), np.where(np.arange(50) % 2, LONG, SHORT), np.zeros(50))
            time.sleep(0.002)
        ids, sizes = c.collect(n)
        time.sleep(0.05)
        extra, _ = c.collect(1, timeout_s=0.05)
        c.close()
    assert sorted(ids) == list(range(n)) and extra == []
    assert set(sizes) == {0}
    s = srv.stats
    assert s["reply"] == reply
    assert s["accepted"] == n and s["dispatched"] == n and s["completed"] == n and s["responses_sent"] == n
    assert s["malformed"] == s["dropped"] == s["unknown_type"] == 0
    assert s["dispatch_rate_rps"] > 0


@pytest.mark.parametrize("policy", ["darc", "dfcfs", "steal", "sjf", "edf", "ts"])
def test_every_policy_serves_live(policy, no_leaks):
    with ServerProcess(policy, "disp2", 3, worker_kind="sleep") as srv:
        c = Client(srv.port)
        c.send(np.arange(60), np.where(np.arange(60) % 3 == 0, LONG, SHORT), np.where(np.arange(60) % 3 == 0, 200_000, 0))
        ids, _ = c.collect(60)
        c.close()
    assert sorted(ids) == list(range(60))
    assert srv.stats["completed"] == 60 and srv.stats["policy_counters"]["dispatched"] >= 60


def test_bad_input_is_counted_and_the_server_keeps_serving(no_leaks):
    with ServerProcess("darc", "disp2", 2, worker_kind="sleep", max_run_ns=10_000_000) as srv:
        c = Client(srv.port)
        c.raw(b"")                                       # empty
        c.raw(b"\x01\x02\x03")                           # short
        c.raw(bytes(200))                                # oversize
        c.send([900], [SHORT], [2_000_000_000])          # run time above max_run_ns
        c.send([901, 902], [77, 0], [0, 0])              # undeclared type, UNKNOWN type: spillway
        c.send(np.arange(100), np.full(100, SHORT), np.zeros(100))
        ids, _ = c.collect(102)
        c.close()
    assert sorted(ids) == list(range(100)) + [901, 902]
    s = srv.stats
    assert s["malformed_by_reason"] == {"short": 2, "oversize": 1, "bad_run_ns": 1}
    assert s["malformed"] == 4 and s["unknown_type"] == 2
    assert s["rx_datagrams"] == 106 and s["completed"] == 102


def test_full_queue_drops_are_counted_and_answered(no_leaks):
    params = {"queue_len": 4}
    with ServerProcess("cfcfs", "disp2", 1, worker_kind="sleep", policy_params=params) as srv:
        c = Client(srv.port)
        c.send(np.arange(30), np.full(30, LONG), np.full(30, 3_000_000))   # 3 ms each, all at once
        ids, sizes = c.collect(30, timeout_s=10)
        c.close()
    assert sorted(ids) == list(range(30))
    dropped = sum(1 for z in sizes if z == SIZE_DROPPED)
    s = srv.stats
    assert dropped > 0 and s["dropped"] == dropped == s["drop_answers"]
    assert s["completed"] == 30 - dropped


@pytest.mark.parametrize("reply", ["dispatcher", "worker"])
def test_time_slicing_preempts_and_answers_exactly_once(reply, no_leaks):
    params = {"slice_ns": 2_000_000, "preempt_cost_ns": 0}
    with ServerProcess("ts", "disp2", 1, worker_kind="spin", policy_params=params, reply=reply) as srv:
        c = Client(srv.port)
        c.send([0, 1], [LONG, LONG], [20_000_000, 20_000_000])      # two 20 ms requests share one worker
        time.sleep(0.002)
        c.send([2], [SHORT], [100_000])
        ids, _ = c.collect(3, timeout_s=5)
        time.sleep(0.05)
        extra, _ = c.collect(1, timeout_s=0.05)
        c.close()
    assert sorted(ids) == [0, 1, 2] and extra == []
    assert ids.index(2) < 2                      # the short one did not wait for both long ones
    s = srv.stats
    assert s["preempted"] > 0 and s["completed"] == 3 and s["responses_sent"] == 3


def test_rocksdb_workers_run_get_and_scan(no_leaks):
    pytest.importorskip("rocksdict")
    with ServerProcess("darc", "rocksdb", 2, worker_kind="rocksdb") as srv:
        c = Client(srv.port)
        c.send(np.arange(20), np.where(np.arange(20) % 4 == 0, SCAN, GET), np.zeros(20))
        ids, _ = c.collect(20, timeout_s=10)
        c.close()
    assert sorted(ids) == list(range(20))
    assert srv.stats["worker_busy_s"] > 0


def _parent(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _state(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def test_sigint_stops_the_server_cleanly_and_prints_counters(tmp_path):
    code = textwrap.dedent("""
        from tailgate.dispatch.live.process import serve
        serve("cfcfs", "disp2", 2, worker_kind="sleep", on_ready=lambda port: print("READY", port, flush=True))
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("READY"), p.stderr.read()
        c = Client(int(line.split()[1]))
        c.send(np.arange(10), np.full(10, SHORT), np.zeros(10))
        ids, _ = c.collect(10)
        c.close()
        assert len(ids) == 10
        children = [pid for pid in os.listdir("/proc") if pid.isdigit() and _parent(pid) == p.pid
                    and "resource_tracker" not in _cmdline(pid)]
        assert len(children) == 2                   # the two workers
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    assert "Traceback" not in err and "dispatched" in err and "dispatch rate" in err
    for pid in children:                            # workers reaped (gone, or a zombie of a dead parent)
        assert _parent(pid) == -1 or _state(pid) == "Z"
    assert [n for n in leaked_segments() if n.startswith(f"tg_{p.pid}_")] == []


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ArgError, match="worker kind"):
        Server("cfcfs", "disp2", 2, worker_kind="gpu")
    with pytest.raises(ArgError, match="n_workers"):
        Server("cfcfs", "disp2", 0)
    with pytest.raises(ArgError, match="unknown policy"):
        Server("fifo", "disp2", 2)
    with pytest.raises(ArgError, match="unknown workload"):
        Server("cfcfs", "nope", 2)
    with pytest.raises(ArgError, match="reply"):
        Server("cfcfs", "disp2", 2, reply="client")


def test_a_port_in_use_is_a_one_line_error():
    taken = udp_socket()
    try:
        srv = Server("cfcfs", "disp2", 1, port=taken.getsockname()[1])
        with pytest.raises(ArgError, match="cannot bind"):
            srv.start()
        srv.close()
    finally:
        taken.close()


def test_a_burst_beyond_the_workers_is_answered_once_and_latency_follows_completion(no_leaks):
    """Many more requests than workers at once: the fast loop cycles notices and assignments; every
    response leaves after its request ran (a 1 ms spin: none can come back sooner)."""
    with ServerProcess("cfcfs", "disp2", 2, worker_kind="spin", worker_spin_ns=50_000) as srv:
        c = Client(srv.port)
        t0 = time.perf_counter()
        c.send(np.arange(20), np.full(20, SHORT), np.full(20, 1_000_000))      # 20 x 1 ms on 2 workers
        ids, _ = c.collect(20, timeout_s=10)
        elapsed = time.perf_counter() - t0
        n = 3000
        c.send(np.arange(100, 100 + n), np.full(n, SHORT), np.zeros(n))
        more, _ = c.collect(n, timeout_s=10)
        time.sleep(0.05)
        extra, _ = c.collect(1, timeout_s=0.05)
        c.close()
    assert sorted(ids) == list(range(20)) and elapsed >= 0.010        # 10 rounds of 1 ms at least
    assert sorted(more) == list(range(100, 100 + n)) and extra == []
    s = srv.stats
    assert s["completed"] == s["responses_sent"] == n + 20 and s["fast_cycles"] > 0
