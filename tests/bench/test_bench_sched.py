"""The simulator benchmark: both simulators run the same stream and agree; the records are consistent."""
import pytest

from tailgate.bench.sched import bench_sim


def test_bench_sim_quick_reports_both_implementations_on_the_same_stream():
    records = bench_sim(quick=True, repeats=1)
    assert {(r["impl"], r["policy"]) for r in records} == {
        ("simpy", "cfcfs"), ("tailgate", "cfcfs"), ("simpy", "darc"), ("tailgate", "darc")}
    by = {(r["impl"], r["policy"]): r for r in records}
    for policy in ("cfcfs", "darc"):
        ours, simpy = by["tailgate", policy], by["simpy", policy]
        # Same stream, same completion time for every request: the ratio compares like with like.
        assert ours["matches_simpy"] is True
        assert (ours["requests"], simpy["requests"]) == (200_000, 10_000)
        assert ours["mreq_per_s"] > 0 and simpy["mreq_per_s"] > 0 and simpy["x_simpy"] == 1.0
        assert ours["x_simpy"] == pytest.approx(ours["mreq_per_s"] / simpy["mreq_per_s"])
        assert ours["load"] == simpy["load"] == 0.8 and ours["workers"] == simpy["workers"] == 14
