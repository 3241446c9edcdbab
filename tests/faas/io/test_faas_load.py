"""The open-loop replayer (tailgate.faas.io.load, `tailgate faas load`) against a tiny aiohttp stub gateway."""

from __future__ import annotations

import asyncio
import csv
import json
import socket
import threading
import time

import numpy as np
import pytest
from aiohttp import web
from typer.testing import CliRunner

from tailgate.cli import app
from tailgate.core.errors import ArgError
from tailgate.faas.io.load import LoadConfig, NoAnswer, plan, poisson_trace, replay, write_results
from tailgate.faas.io.s3server import free_port
from tailgate.faas.trace import generate


class Stub:
    """A gateway stand-in in a thread of its own: /invoke/{f} answers like the real one, /metrics too.
    ``slow`` sleeps 1 s, ``bad`` answers 500, ``late`` answers after 100 ms; the others at once."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[tuple[float, str, dict]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def invoke(self, request):
        f = request.match_info["f"]
        ev = await request.json()
        self.arrivals.append((time.perf_counter(), f, ev))
        if f == "slow":
            await asyncio.sleep(1.0)
        if f == "late":
            await asyncio.sleep(0.1)
        timing = {"schedule_s": 0.002, "cold_start_s": 0.0, "queue_s": 0.0005, "exec_s": 0.001, "e2e_s": 0.0035,
                  "mem_mb": None}
        if f == "bad":
            return web.json_response({"error": "ValueError: boom", "status": "failed", "timing": timing}, status=500)
        return web.json_response({"result": ev.get("n"), "timing": timing})

    async def metrics(self, request):
        return web.json_response({"strategy": {"strategy": "faasbatch", "dispatch_interval_s": 0.2},
                                  "sandboxes": {"created": 3, "used": 2, "peak": 2}, "batches": 4})

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        a = web.Application()
        a.add_routes([web.post("/invoke/{f}", self.invoke), web.get("/metrics", self.metrics)])
        self.runner = web.AppRunner(a, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> "Stub":
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def stub():
    with Stub() as s:
        yield s


def test_sends_on_schedule_without_waiting_for_answers(stub):
    # 100 ms per answer, 100 invocations/s for 0.5 s: a closed loop would take ~5 s; open loop sends on time
    tr = poisson_trace(100, 0.5, names=["late"], seed=3)
    t0 = time.perf_counter()
    s, rec = replay(tr, LoadConfig(port=stub.port, timeout_s=5))
    assert time.perf_counter() - t0 < 2.5
    assert s["ok"] == len(tr) == s["invocations"]
    lag_s = rec.sent_s - rec.plan.due_s
    # a closed loop would fall behind by up to ~4.5 s; open loop stays on time (loose bounds: a busy machine)
    assert lag_s.min() >= 0 and np.median(lag_s) < 0.02 and lag_s.max() < 0.09
    assert s["send_lag_us"]["p50"] < 20_000
    assert s["client_p50_ms"] >= 100  # the answers took their 100 ms; sends did not wait for them
    sent_span, due_span = np.ptp(rec.sent_s), np.ptp(rec.plan.due_s)
    assert abs(sent_span - due_span) < 0.09


def test_pacing_follows_the_trace_shape(stub):
    stub.arrivals.clear()
    tr = generate(invocations=60, kind="cpu", functions=3, minutes=1, seed=7)
    s, rec = replay(tr, LoadConfig(port=stub.port, speed=60.0, functions=["fa", "fb"]))
    assert s["ok"] == 60
    got = sorted(t for t, _, _ in stub.arrivals[-60:])
    # the server saw the trace's gaps (compressed 60x), within a few ms each
    gaps_seen = np.diff(np.array(got))
    gaps_due = np.diff(np.sort(tr.arrival_s / 60.0))
    assert np.median(np.abs(np.sort(gaps_seen) - np.sort(gaps_due))) < 0.01
    # trace function k goes to functions[k % 2]; the events carry the fib n
    assert set(s["functions"]) == {"fa", "fb"}
    assert sum(f["invocations"] for f in s["functions"].values()) == 60
    sent_n = sorted(ev["n"] for _, _, ev in stub.arrivals[-60:])
    assert sent_n == sorted(tr.input_n.tolist())


def test_columns_failures_and_gateway_fields(stub, tmp_path):
    tr = poisson_trace(200, 0.3, names=["ok1", "bad"], seed=5)
    s, rec = replay(tr, LoadConfig(port=stub.port, event={"size_bytes": 4096}))
    n_bad = int(np.sum(tr.func == 1))
    assert s["failed"] == n_bad and s["ok"] == len(tr) - n_bad
    assert s["strategy"] == "faasbatch" and s["interval_s"] == 0.2 and s["sandboxes"] == 3
    assert (s["sandboxes_used"], s["sandboxes_peak"], s["batches"]) == (2, 2, 4)
    assert s["exec_mean_ms"] == pytest.approx(1.0) and s["mem_per_invocation_mb"] is None
    assert s["e2e_p50_ms"] == pytest.approx(3.5) and s["schedule_p98_ms"] == pytest.approx(2.0)
    assert s["queue_p98_ms"] == pytest.approx(0.5) and s["exec_p98_ms"] == pytest.approx(1.0)
    assert s["functions"]["bad"]["ok"] == 0 and "ValueError: boom" in s["first_errors"][0]
    assert stub.arrivals[-1][2]["size_bytes"] == 4096
    out = write_results(tmp_path / "r", s, rec, {"x": 1})
    rows = list(csv.DictReader(open(out / "invocations.csv")))
    assert len(rows) == len(tr) and {r["status"] for r in rows} == {"ok", "failed"}
    assert json.loads((out / "summary.json").read_text())["summary"]["failed"] == n_bad


def test_bounded_in_count_time_and_waiting(stub):
    tr = poisson_trace(100, 2.0, names=["a"], seed=1)
    assert len(plan(tr, LoadConfig(port=stub.port, max_invocations=7))) == 7
    p = plan(tr, LoadConfig(port=stub.port, duration_s=0.5))
    assert len(p) < len(tr) and p.due_s.max() < 0.5
    t0 = time.perf_counter()
    s, _ = replay(poisson_trace(50, 0.2, names=["slow", "a"], seed=2), LoadConfig(port=stub.port, timeout_s=0.3))
    assert time.perf_counter() - t0 < 2.0
    assert s["timeout"] > 0 and s["ok"] > 0 and s["timeout"] + s["ok"] == s["invocations"]
    with pytest.raises(ArgError, match="no invocation to send"):
        replay(tr, LoadConfig(port=stub.port, duration_s=1e-9))
    with pytest.raises(ArgError, match="speed"):
        LoadConfig(speed=0)


def test_no_server_is_one_line_exit_2():
    port = free_port()
    with pytest.raises(NoAnswer, match=f"no answer from 127.0.0.1:{port}"):
        replay(poisson_trace(10, 0.1), LoadConfig(port=port, connect_timeout_s=0.5))
    r = CliRunner().invoke(app, ["faas", "load", "--port", str(port), "--rate", "10", "--duration-s", "0.1"])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [f"error: no answer from 127.0.0.1:{port} (Connection refused): "
                                             "is the gateway running (tailgate faas serve)?"]


def test_a_listener_that_never_answers_is_no_answer():
    with socket.socket() as srv:  # accepts connections (the kernel's backlog), never reads nor answers
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        port = srv.getsockname()[1]
        t0 = time.perf_counter()
        with pytest.raises(NoAnswer, match="not one answered") as e:
            replay(poisson_trace(20, 0.2), LoadConfig(port=port, timeout_s=0.3))
        assert time.perf_counter() - t0 < 2.0
        assert e.value.summary["timeout"] == e.value.summary["invocations"]


def test_cli_json_and_bad_arguments(stub, tmp_path):
    r = CliRunner().invoke(app, ["faas", "load", "--port", str(stub.port), "--rate", "100", "--duration-s", "0.3",
                                 "--function", "a", "--json"])
    assert r.exit_code == 0, r.output
    (point,) = json.loads(r.output)
    sim = CliRunner().invoke(app, ["faas", "sim", "-s", "faasbatch", "--kind", "io", "-n", "50", "--json"])
    (sim_point,) = json.loads(sim.output)
    assert set(sim_point) - {"predictor", "chosen_interval_s"} <= set(point)  # a live point has the sim's fields
    assert "send_lag_us" in point and point["strategy"] == "faasbatch"
    r = CliRunner().invoke(app, ["faas", "load", "--port", str(stub.port), "--invocations", "20", "--minutes", "0.5", "--speed", "100",
                                 "--function", "a", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "invocations.csv").exists() and "send lag" in r.output
    for args, msg in ((["--event", "[1]"], "--event"), (["--event", "{x"], "not JSON"), (["--function", "a,,b"], "empty"),
                      (["--speed", "0"], "speed"), (["--kind", "gpu"], "--kind")):
        r = CliRunner().invoke(app, ["faas", "load", "--port", str(stub.port), *args])
        assert r.exit_code == 2 and r.output.startswith("error:") and msg in r.output, r.output
