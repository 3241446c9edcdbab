"""A forked (cpu) invocation does not inherit a lock held by another thread of its sandbox."""
from __future__ import annotations

import os
import threading

from tailgate.faas.io import reuse
from tailgate.faas.live.zygote import Runner


def _shares(event, context):
    return context.shared("k", lambda: 7)


def test_a_forked_invocation_can_share_while_the_sandbox_holds_its_lock():
    r, w = os.pipe()
    try:
        runner = Runner({"kind": "cpu", "name": "f", "timeout_s": 10, "memory_mb": 64}, _shares, w)
        out = []
        with runner.lock:  # another thread of the sandbox inside shared_cache at the fork
            t = threading.Thread(target=runner.call_forked, args=({"id": 1, "event": {}}, out.append), daemon=True)
            t.start()
            t.join(30)
        assert out and out[0]["ok"] and out[0]["result"] == 7
    finally:
        os.close(r)
        os.close(w)


def test_the_reuse_hooks_lock_is_fresh_in_a_forked_child():
    r, w = os.pipe()
    with reuse._LOCK:  # held by this thread at the fork
        pid = os.fork()
        if pid == 0:
            ok = reuse._LOCK.acquire(timeout=5)
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"1"


def test_a_forked_invocations_own_failure_is_answered_with_its_text():
    r, w = os.pipe()
    try:
        runner = Runner({"kind": "cpu", "name": "f", "timeout_s": 10}, _shares, w)  # no memory_mb: Context fails
        out = []
        runner.call_forked({"id": 1, "event": {}}, out.append)
        assert out and not out[0]["ok"] and out[0]["error"].startswith("sandbox: KeyError")
    finally:
        os.close(r)
        os.close(w)
