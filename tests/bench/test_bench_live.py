"""The live benchmark: a closed-loop capacity and an open-loop ladder against a live server."""
import pytest

from tailgate.bench.live import bench_live


@pytest.mark.slow
def test_bench_live_reports_a_rate():
    r = bench_live(rates_rps=(5_000,), duration_s=0.5)
    assert r["dispatch_rate_rps"] > 0 and r["open_loop_steps"][0]["answered"] > 0
    step = r["open_loop_steps"][0]
    assert step["answered"] + step["lost"] + step["dropped"] <= step["n_requests"] == 2_500
    assert r["server"]["completed"] >= step["answered"]
