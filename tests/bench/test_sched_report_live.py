"""The report's live experiment runs both policies end to end and tabulates them."""
from tailgate.bench.sched_report_live import live_comparison


def test_live_comparison_runs_both_policies():
    out = live_comparison(n_workers=4, load_frac=0.5, run_scale=100, duration_s=1.0)
    for policy in ("darc", "cfcfs"):
        client = out["policies"][policy]["client"]
        assert client["answered"] == client["n_requests"] > 0
        assert out["policies"][policy]["server"]["completed"] == client["n_requests"]
    assert out["policies"]["darc"]["server"]["reservation"] is not None
    md = "\n".join(out["markdown"])
    assert "| darc |" in md and "| cfcfs |" in md and "Short requests' p99.9 latency" in md


def test_machine_stalls_counts_gaps_in_a_spin():
    from tailgate.bench.sched_report_live import machine_stalls
    st = machine_stalls(0.05, gap_ns=1)          # every clock step is a "gap" over 1 ns
    assert st["count"] > 0 and st["max_ns"] >= 1 and st["total_ns"] >= st["max_ns"]
    quiet = machine_stalls(0.05, gap_ns=10**12)  # no gap lasts 1000 s
    assert quiet["count"] == 0 and quiet["max_ns"] == 0


def _fake_run(short_ms, long_ms, lag_p99_us, trusted):
    def pol(short, long_):
        return {"client": {"metrics": {"types": {"SHORT": {"latency_ns": {"p99.9": short * 1e6}},
                                                 "LONG": {"latency_ns": {"p99.9": long_ * 1e6}}},
                                       "slowdown": {"p99.9": short}, "achieved_rps": 194.0, "dropped": 0},
                           "send_lag_ns": {"p50": 30e3, "p99": lag_p99_us * 1e3}, "trustworthy": trusted,
                           "verdict": "ok" if trusted else f"not trustworthy: p99 send lag {lag_p99_us} us"},
                "server": {"reservation": [{"types": [1], "reserved": [0]}]}}
    return {"workload": "disp2", "n_workers": 14, "load": 0.7, "run_scale": 1000.0, "duration_s": 30.0,
            "rate_rps": 194.0, "machine_stalls": {"duration_s": 2.0, "gap_ns": 100_000, "count": 10, "max_ns": 300e3},
            "policies": {"darc": pol(short_ms, long_ms), "cfcfs": pol(short_ms * 5, long_ms)}}


def test_live_runs_tabulate_the_median_and_range_over_the_runs():
    from tailgate.bench.sched_report_live import live_numbers, markdown_runs

    runs = [_fake_run(11.0, 179.0, 2450, False), _fake_run(9.0, 150.0, 50, True), {"error": "OSError: busy"},
            _fake_run(14.0, 160.0, 80, True)]
    numbers = live_numbers(runs)
    assert numbers["finished"] == 3 and numbers["policies"]["darc"]["trusted"] == 2
    md = "\n".join(markdown_runs(runs, numbers))
    assert "| darc | 11.0 (9.0–14.0) | 160.0 (150.0–179.0) | 11.0 (9.0–14.0) | 194 | 0 | 0.08 (0.05–2.45) | 2/3 |" in md
    assert "5.0× lower with DARC than with c-FCFS (median (min–max) over 3 runs)" in md
    assert "1 run(s) failed: OSError: busy" in md and "Run 4 times" in md


def test_live_runs_repeats_the_comparison():
    from tailgate.bench.sched_report_live import live_runs

    said = []
    out = live_runs(2, say=said.append, n_workers=4, load_frac=0.5, run_scale=100, duration_s=0.5)
    assert len(out["runs"]) == 2 and out["numbers"]["finished"] == 2, out["runs"]
    assert said == ["live run 1/2: DARC vs c-FCFS", "live run 2/2: DARC vs c-FCFS"]
    assert "<!-- live: begin -->" in out["markdown"]
