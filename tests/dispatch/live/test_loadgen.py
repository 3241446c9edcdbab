"""The open-loop load client against the live server: records, metrics, send lag, losses, CSV."""

import csv
import os
import socket

import numpy as np
import pytest

from tailgate.core.errors import ArgError
from tailgate.dispatch.live.loadgen import (
    GRACE_MIN_NS,
    LoadConfig,
    NoAnswer,
    goodput_within_grace,
    load,
)
from tailgate.dispatch.live.process import ServerProcess
from tailgate.dispatch.live.ring import leaked_segments, orphaned_segments
from tailgate.dispatch.metrics import summarize
from tailgate.dispatch.workloads import get_workload


def test_load_against_the_server_records_every_request(tmp_path):
    before = set(leaked_segments())
    out = tmp_path / "records.csv"
    with ServerProcess("darc", "disp2", 2, worker_kind="sleep") as srv:
        r = load(LoadConfig("disp2", 0.5, 2, "127.0.0.1", srv.port, duration_s=0.4, seed=3, rate_rps=2_000,
                            run_scale=0.01, csv_path=str(out)), quiet=True)
    assert r["n_requests"] == 800
    assert r["answered"] == 800 and r["lost"] == r["dropped"] == r["unsent"] == 0
    assert r["duplicates"] == 0 and r["malformed_responses"] == 0
    assert srv.stats["completed"] == 800
    lag = r["send_lag_ns"]
    assert 0 <= lag["p50"] <= lag["p99"] <= lag["p99.9"] <= lag["max"]
    assert isinstance(r["trustworthy"], bool) and r["verdict"]
    m = r["metrics"]
    assert m is not None and set(m["types"]) == {"SHORT", "LONG"}
    assert m["requests"] == 800 and m["warmup"] == 80 and m["completed"] == 720 and m["dropped"] == 0
    assert sum(t["completed"] for t in m["types"].values()) == m["completed"]
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 800 and rows[0].keys() >= {"req_id", "type", "scheduled_ns", "sent_ns", "completed_ns", "status"}
    assert {row["status"] for row in rows} == {"answered"}
    assert all(int(row["completed_ns"]) >= int(row["sent_ns"]) >= 0 for row in rows)
    # The summary's percentiles are the records' (nearest rank), and a request takes at least its work.
    lat = np.array([int(row["latency_ns"]) for row in rows])
    want = np.percentile(lat, [50, 99], method="inverted_cdf")
    assert [r["latency_ns"]["p50"], r["latency_ns"]["p99"]] == want.tolist()
    sleep_ns = {"SHORT": 1_000 * 0.01, "LONG": 100_000 * 0.01}       # run_ns = service time x run_scale
    assert all(int(row["latency_ns"]) >= sleep_ns[row["type_name"]] for row in rows)
    assert set(orphaned_segments(also_pid=os.getpid())) - before == set()


def _dead_port() -> int:
    """A loopback UDP port nobody listens on."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_no_server_is_one_clear_error_with_the_records_kept(tmp_path):
    port = _dead_port()
    out = tmp_path / "records.csv"
    with pytest.raises(NoAnswer, match=rf"^no answer from 127\.0\.0\.1:{port}: 100 requests sent, none answered") as e:
        load(LoadConfig("disp2", 0.5, 2, "127.0.0.1", port, duration_s=0.05, rate_rps=2_000, timeout_s=0.1,
                        csv_path=str(out)), quiet=True)
    assert "\n" not in str(e.value)
    r = e.value.summary
    assert r["answered"] == 0 and r["lost"] == r["n_requests"] == 100
    assert r["unsent"] == r["dropped"] == 0 and r["latency_ns"] == {"p50": None, "p99": None}
    assert r["metrics"]["completed"] == 0 and r["metrics"]["dropped"] == r["metrics"]["measured"] == 90
    assert r["metrics"]["saturated"] and r["metrics"]["goodput_ratio"] == 0.0
    assert len(out.read_text().splitlines()) == 101


def test_sched_load_against_no_server_fails_in_one_line():
    from typer.testing import CliRunner

    from tailgate.cli import app

    port = _dead_port()
    res = CliRunner().invoke(app, ["sched", "load", "-n", "2", "--port", str(port), "--duration", "0.05",
                                   "--rate", "2000", "--json"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: no answer from 127.0.0.1:{port}"), res.output
    assert "Traceback" not in res.output


def test_a_stable_short_run_is_not_saturated_by_its_last_answers_in_flight():
    # 720 measured requests: by the simulator's test (completions by the last send) the last request,
    # in flight when it was sent, alone puts the ratio under 0.999; the grace lets it be answered.
    with ServerProcess("cfcfs", "disp2", 2, worker_kind="sleep") as srv:
        r = load(LoadConfig("disp2", 0.5, 2, "127.0.0.1", srv.port, duration_s=0.4, seed=5, rate_rps=2_000,
                            run_scale=0.01), quiet=True)
    m = r["metrics"]
    assert r["answered"] == 800
    assert m["saturation_grace_ns"] == GRACE_MIN_NS
    assert m["goodput_ratio"] == 1.0 and m["saturated"] is False


def test_goodput_within_grace_counts_answers_up_to_the_grace_after_the_last_send():
    ms = 1_000_000
    n = 2_000
    sent = np.arange(n, dtype=np.int64) * ms                      # one request a ms, the last at 1999 ms
    done = sent + 2 * ms                                          # each answered 2 ms later
    last = int(sent[-1])
    # the stable run: its last two requests are answered after the last send, within the grace
    assert goodput_within_grace(sent, done, 0.1, 100 * ms) == 1.0
    # the simulator's rule (answers by the last send) calls the same run saturated
    assert summarize(np.zeros(n, np.int64), sent, done, [1e6], ["T"], 1_000.0)["saturated"]
    # answers after the grace, never-sent and unanswered requests count against it
    late = done.copy()
    late[-5:] = last + 100 * ms + 1
    assert goodput_within_grace(sent, late, 0.1, 100 * ms) == (1_800 - 5) / 1_800
    gone = done.copy()
    gone[1_000] = -1
    s2 = sent.copy()
    s2[5] = -1                                                     # unsent: not counted at all
    assert goodput_within_grace(s2, gone, 0.1, 100 * ms) == (1_800 - 1) / 1_800
    # a backlog growing with the run: answers fall behind by 10 % of the elapsed time
    behind = sent + sent // 10
    assert goodput_within_grace(sent, behind, 0.1, 100 * ms) < 0.95
    # the warm-up is the first requests in send order, whatever the record order
    perm = np.random.default_rng(1).permutation(n)
    assert goodput_within_grace(sent[perm], late[perm], 0.1, 100 * ms) == (1_800 - 5) / 1_800
    assert goodput_within_grace(np.full(3, -1, np.int64), np.full(3, -1, np.int64), 0.1, ms) == 0.0


def test_the_grace_is_ten_longest_service_times_as_run_at_least_100_ms():
    assert LoadConfig("disp2", 0.5, 2, port=9).grace_ns == GRACE_MIN_NS == 100_000_000
    # disp2's LONG is 100 us: x1000 -> 100 ms as run -> 1 s of grace
    assert LoadConfig("disp2", 0.5, 2, port=9, run_scale=1000).grace_ns == 1_000_000_000
    assert LoadConfig("disp2", 0.5, 2, port=9, run_scale=1000, zero_work=True).grace_ns == GRACE_MIN_NS


@pytest.mark.parametrize("kwargs, match", [
    ({"load_frac": 2.0}, r"load 2.0 is outside \(0, 1.5\]"), ({"load_frac": 0.0}, "outside"), ({"port": 0}, "port"),
    ({"duration_s": -1}, "duration_s"), ({"host": "not-an-ip"}, "host"), ({"rate_rps": -5}, "rate_rps"),
    ({"n_workers": 0}, "n_workers"), ({"burst": 0}, "burst"), ({"warmup_frac": 1.0}, "warmup_frac"),
    ({"workload": "nosuch"}, "unknown workload"), ({"duration_s": 1e-9}, "no request at all"),
    ({"max_requests": 10}, "more than max_requests"),
])
def test_bad_configurations_are_refused_when_built(kwargs, match):
    args = {"workload": "disp2", "load_frac": 0.5, "n_workers": 2, "host": "127.0.0.1", "port": 9, "duration_s": 0.1}
    args.update(kwargs)
    with pytest.raises(ArgError, match=match):
        LoadConfig(**args)


def test_a_config_resolves_its_workload_and_its_size():
    cfg = LoadConfig("disp2", 0.5, 2, port=9, duration_s=0.5, run_scale=100)
    assert cfg.workload is get_workload("disp2")
    assert cfg.n_requests == 99 and abs(cfg.paced_rate_rps - 198.02) < 0.01
    assert LoadConfig("disp2", 0.5, 2, port=9, rate_rps=1_000).n_requests == 1_000


def test_ctrl_c_reports_what_was_measured():
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    code = textwrap.dedent("""
        from tailgate.dispatch.live.loadgen import GRACE_MIN_NS, LoadConfig, NoAnswer, goodput_within_grace, load
        # a short run first, so that the interrupt lands while sending, not while numba loads
        try:
            load(LoadConfig("disp2", 0.5, 2, "127.0.0.1", 9, duration_s=0.01, rate_rps=1_000, timeout_s=0.01),
                 quiet=True)
        except NoAnswer:
            pass
        print("GO", flush=True)
        r = load(LoadConfig("disp2", 0.5, 2, "127.0.0.1", 9, duration_s=30, rate_rps=1_000), quiet=True)
        print("RESULT", r["interrupted"], r["unsent"] > 0, r["trustworthy"], flush=True)
    """)
    # SIGINT back to default in the child: a test run started in the background inherits it ignored
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert p.stdout.readline().startswith("GO")
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert "RESULT True True False" in out, err


def test_run_scale_scales_the_offered_rate_with_the_service_times():
    port = _dead_port()
    # disp2 at load 0.5 on 2 workers is 19 802 req/s; service times x100 -> 198 req/s
    with pytest.raises(NoAnswer) as e:
        load(LoadConfig("disp2", 0.5, 2, "127.0.0.1", port, duration_s=0.5, run_scale=100, timeout_s=0.05), quiet=True)
    r = e.value.summary
    assert r["n_requests"] == 99 and abs(r["offered_rps"] - 198.02) < 0.01


@pytest.mark.parametrize("compiled", [True, False])
def test_both_send_paths_record_every_request(compiled, monkeypatch):
    from tailgate.dispatch.live import sender

    if not compiled:
        monkeypatch.setattr(sender, "COMPILED_IO", False)
    with ServerProcess("cfcfs", "disp2", 2, worker_kind="spin", worker_spin_ns=50_000) as srv:
        r = load(LoadConfig("disp2", 0.5, 2, "127.0.0.1", srv.port, duration_s=0.3, rate_rps=5_000, zero_work=True),
                 quiet=True)
    assert r["answered"] == r["n_requests"] == 1500 and r["duplicates"] == 0 and r["unsent"] == 0
    assert r["answered"] + r["dropped"] + r["lost"] + r["unsent"] == r["n_requests"]
    assert srv.stats["completed"] == srv.stats["dispatched"] == 1500
    lag, lat = r["send_lag_ns"], r["latency_ns"]
    assert 0 <= lag["p50"] <= lag["p99"] <= lag["p99.9"] <= lag["max"]
    assert 0 < lat["p50"] <= lat["p99"] and r["metrics"]["completed"] == r["metrics"]["measured"] == 1350
    # the schedule's 1500 requests over ~0.3 s: the sender kept (roughly) the offered rate
    assert r["send_rate_rps"] > 0 and r["offered_rps"] == 5_000
