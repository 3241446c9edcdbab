"""The gateway's hot path under load: the sandbox channel's framing read in bulk, a listen backlog that
takes a burst of connects."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time

import pytest

from tailgate.faas.live.gateway import LISTEN_BACKLOG, Gateway
from tailgate.faas.live.registry import load_manifest
from tailgate.faas.live.sandbox import Sandbox, SandboxDied
from tailgate.faas.live.zygote import encode
from tailgate.faas.strategies import make_strategy


class _Spec:
    name = "f"


def _sandbox(reader: asyncio.StreamReader) -> Sandbox:
    return Sandbox(1, _Spec(), reader, None, 12345, 0.0, False)


def test_many_answers_in_one_read_and_a_frame_split_over_reads_all_arrive():
    async def main():
        reader = asyncio.StreamReader()
        sb = _sandbox(reader)
        futs = {i: asyncio.get_running_loop().create_future() for i in range(5)}
        sb.pending.update(futs)
        frames = b"".join(encode({"op": "done", "id": i, "ok": True, "result": i}) for i in range(5))
        reader.feed_data(frames[:7])          # a header and a bit
        await asyncio.sleep(0.01)
        assert not any(f.done() for f in futs.values())
        reader.feed_data(frames[7:])          # the rest: four and a half frames at once
        await asyncio.wait_for(asyncio.gather(*futs.values()), 2)
        assert [futs[i].result()["result"] for i in range(5)] == list(range(5))
        reader.feed_eof()
        await asyncio.wait_for(sb.read_task, 2)
        assert "closed its channel" in sb.dead

    asyncio.run(main())


def test_a_frame_that_is_not_an_object_fails_the_sandbox_in_one_line_instead_of_hanging():
    async def main():
        reader = asyncio.StreamReader()
        sb = _sandbox(reader)
        fut = asyncio.get_running_loop().create_future()
        sb.pending[7] = fut
        body = json.dumps([1, 2]).encode()
        reader.feed_data(len(body).to_bytes(4, "big") + body)
        with pytest.raises(SandboxDied, match="sent a bad frame .*list, not an object"):
            await asyncio.wait_for(fut, 2)

    asyncio.run(main())


def test_a_burst_of_connects_is_taken_without_waiting_for_a_syn_retry(tmp_path):
    (tmp_path / "th.py").write_text("def noop(event, context):\n    return event\n")
    (tmp_path / "m.yaml").write_text("path: .\nfunctions:\n  - {name: noop, handler: th:noop, kind: io}\n")
    assert LISTEN_BACKLOG >= 1024
    burst = 600  # aiohttp's default backlog of 128 drops most of these SYNs: a 1 s retry each

    async def main():
        gw = Gateway(load_manifest(tmp_path / "m.yaml"), make_strategy("faasbatch", dispatch_interval_s=0.05))
        port = await gw.start(port=0)
        socks = []
        try:
            # the gateway's loop does not run meanwhile: the kernel alone holds the connections
            for _ in range(burst):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                socks.append(s)
            deadline = time.monotonic() + 0.5
            pending = set(socks)
            while pending and time.monotonic() < deadline:
                _, ready, _ = select.select([], list(pending)[:500], [], 0.05)
                pending -= {s for s in ready if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0}
            assert not pending, f"{len(pending)} of {burst} connects not through within 0.5 s"
        finally:
            for s in socks:
                s.close()
            await gw.stop()

    asyncio.run(main())


def test_answers_finished_together_leave_the_sandbox_in_fewer_writes_all_intact(monkeypatch):
    import os
    import threading

    from tailgate.faas.live import zygote

    r, w = os.pipe()
    runner = zygote.Runner({"name": "f", "kind": "io", "memory_mb": 64, "timeout_s": 1}, lambda e, c: e, w)
    real_write, calls = os.write, []

    def slow_write(fd, data):  # a busy channel: answers finishing meanwhile queue up
        calls.append(len(data))
        time.sleep(0.02)
        return real_write(fd, data)

    monkeypatch.setattr(zygote.os, "write", slow_write)
    threads = [threading.Thread(target=lambda t=t: [runner.send({"op": "done", "id": t * 100 + k}) for k in range(5)])
               for t in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    monkeypatch.undo()
    os.close(w)
    got = []
    while (msg := zygote.read_frame(r)) is not None:
        got.append(msg["id"])
    os.close(r)
    assert sorted(got) == sorted(t * 100 + k for t in range(10) for k in range(5))
    for t in range(10):  # each thread's answers in the order it sent them
        mine = [i for i in got if i // 100 == t]
        assert mine == sorted(mine)
    assert len(calls) < len(got) / 2, f"{len(calls)} writes for {len(got)} answers"
