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
