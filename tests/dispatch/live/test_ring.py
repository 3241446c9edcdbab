"""Shared-memory SPSC rings: order, wrap-around, backpressure, many rings at once, other processes, no leaks."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tailgate.dispatch.live.ring import (
    RingSet,
    cleanup_owned,
    leaked_segments,
    orphaned_segments,
)


@pytest.fixture
def no_leaks():
    before = set(leaked_segments())
    yield
    assert set(orphaned_segments(also_pid=os.getpid())) - before == set()


def test_push_pop_order_wrap_and_backpressure(no_leaks):
    with RingSet(n_rings=2, n_fields=3, capacity=8) as rs:
        seen = []
        k = 0
        for _ in range(20):                       # wraps the 8-entry ring many times
            rows = np.arange(k, k + 5)[:, None] * np.ones(3, np.int64)
            assert rs.push(0, rows) == 5
            k += 5
            seen.extend(rs.pop(0, 3)[:, 0].tolist())
            seen.extend(rs.pop(0, 100)[:, 0].tolist())
        assert seen == list(range(100))
        assert rs.push(1, np.ones((10, 3))) == 8   # full: two refused, counted
        assert rs.full_refusals == 2
        assert rs.count(1) == 8 and len(rs) == 8
        assert rs.pop(0, 4).shape == (0, 3)


def test_many_rings_at_once(no_leaks):
    with RingSet(n_rings=5, n_fields=2, capacity=4) as rs:
        ok = rs.push_each(np.array([4, 1, 3]), np.array([[40, 0], [10, 0], [30, 0]]))
        assert ok.all()
        rs.push(1, np.array([[11, 0], [12, 0]]))
        rings, rows = rs.pop_all()
        assert rings.tolist() == [1, 1, 1, 3, 4]
        assert rows[:, 0].tolist() == [10, 11, 12, 30, 40]
        assert rs.pop_all()[0].tolist() == []
        rs.push(2, np.zeros((4, 2)))
        ok = rs.push_each(np.array([2, 0]), np.array([[1, 1], [2, 2]]))
        assert ok.tolist() == [False, True] and rs.full_refusals == 1
        rings, rows = rs.pop_all(max_per_ring=1)
        assert rings.tolist() == [0, 2]


def test_scalar_fast_path(no_leaks):
    with RingSet(n_rings=2, n_fields=4, capacity=2) as rs:
        assert rs.push1(1, (1, 2, 3, 4)) and rs.push1(1, [5, 6, 7, 8])
        assert not rs.push1(1, (0, 0, 0, 0))
        assert rs.pop1(1) == [1, 2, 3, 4] and rs.pop1(1) == [5, 6, 7, 8] and rs.pop1(1) is None
        rs.push(0, np.array([[9, 9, 9, 9]]))
        assert rs.pop1(0) == [9, 9, 9, 9]


def _echo(tx: RingSet, rx: RingSet, n: int) -> None:
    """Child: pop n entries from tx ring 0, push each back doubled on rx ring 0."""
    got = 0
    while got < n:
        rows = tx.pop(0, 64)
        got += len(rows)
        k = 0
        while k < len(rows):
            k += rx.push(0, rows[k:] * 2)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_across_processes(method, no_leaks):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"no {method} here")
    n = 20_000
    with RingSet(1, 2, capacity=256) as tx, RingSet(1, 2, capacity=256) as rx:
        p = mp.get_context(method).Process(target=_echo, args=(tx, rx, n))
        p.start()
        out = []
        i = 0
        while len(out) < n:
            if i < n:
                rows = np.stack([np.arange(i, min(i + 100, n))] * 2, axis=1)
                i += tx.push(0, rows)               # backpressure: push what fits, retry the rest
            out.extend(rx.pop(0, 256)[:, 0].tolist())
        p.join(10)
        assert p.exitcode == 0
        assert out == [2 * k for k in range(n)]


def test_ctrl_c_and_errors_leave_no_segment(no_leaks):
    code = textwrap.dedent("""
        import sys, time
        from tailgate.dispatch.live.ring import RingSet
        keep = RingSet(2, 4)                  # never closed by hand: unlinked at exit
        print(keep.name, flush=True)
        if sys.argv[1] == "error":
            raise RuntimeError("boom")
        time.sleep(30)
    """)
    for how in ("sigint", "error"):
        # SIGINT back to default in the child: a test run started in the background inherits it ignored
        p = subprocess.Popen([sys.executable, "-c", code, how], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        name = p.stdout.readline().strip()
        assert name.startswith("tg_")
        if how == "sigint":
            p.send_signal(signal.SIGINT)
        p.wait(20)
        assert p.returncode != 0
        assert not os.path.exists(f"/dev/shm/{name}")


def test_cleanup_owned_unlinks_what_was_not_closed():
    rs = RingSet(1, 1)
    name = rs.name
    assert name in leaked_segments()
    assert cleanup_owned() >= 1
    assert name not in leaked_segments()
    rs.close()                                     # closing afterwards is harmless
