"""The simulator benchmark runs and reports ratios against its SimPy baseline from the same run."""
from tailgate.bench.sched import bench_sim


def test_bench_sim_quick_reports_both_implementations():
    records = bench_sim(quick=True, repeats=1)
    assert {(r["impl"], r["policy"]) for r in records} == {
        ("simpy", "cfcfs"), ("tailgate", "cfcfs"), ("simpy", "darc"), ("tailgate", "darc")}
    for r in records:
        assert r["mreq_per_s"] > 0
        if r["impl"] == "tailgate":
            # A floor far below the target (20x): it fails only if the compiled path is broken.
            assert r["x_simpy"] > 2, r
