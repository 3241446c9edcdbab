"""The report's live experiment runs both policies end to end and tabulates them."""
from tailgate.dispatch.live_report import live_comparison


def test_live_comparison_runs_both_policies():
    out = live_comparison(n_workers=4, load=0.5, run_scale=100, duration_s=1.0)
    for policy in ("darc", "cfcfs"):
        client = out["policies"][policy]["client"]
        assert client["answered"] == client["n_requests"] > 0
        assert out["policies"][policy]["server"]["completed"] == client["n_requests"]
    assert out["policies"]["darc"]["server"]["reservation"] is not None
    md = "\n".join(out["markdown"])
    assert "| darc |" in md and "| cfcfs |" in md and "Short requests' p99.9 latency" in md
