"""Slow, load and soak tests: `make test-slow` runs them; `make test` skips them."""
import numpy as np
import pytest

from tailgate.core.clock import WallClock
from tailgate.dataplane.runtime import Runtime
from tailgate.nf import CheckIPHeader, DecTTL, HashSplit, IPChecksum, IPv4Lookup, MACRewrite, Measure, Merge, Queue, Sink, Source

pytestmark = pytest.mark.slow


def test_bench_quick_reports_every_row_and_beats_dpkt():
    from tailgate.bench.packet import run_bench

    recs = run_bench(quick=True)
    rows = {(r["name"], r["impl"], r["batch"]) for r in recs}
    for b in (32, 64, 256, 1024):
        assert ("l2l3", "tailgate", b) in rows
    assert ("l2l3", "dpkt", 1) in rows and ("l2l3", "scapy", 1) in rows
    assert ("pcap_read_parse", "tailgate", 256) in rows
    for r in recs:
        assert r["mpps"] > 0 and r["packets"] > 0
        if r["impl"] == "tailgate":
            # Batched numba against per-packet dpkt, measured in the same run: an order of
            # magnitude is a floor that holds on any machine (this one measures 100-250x).
            assert r["x_dpkt"] > 10, r


def test_soak_two_million_packets_wall_clock_no_leak(pipeline):
    """2M packets through split, router branch, queue and merge on the wall clock: bounded in
    packets, nothing leaks, every packet is accounted for."""
    src = Source(name="src", flows=256, dst_prefix="10.0.0.0/8", packets=2_000_000, seed=5)
    split = HashSplit(name="split", gates=2)
    merge = Merge(name="merge", inputs=2)
    lookup = IPv4Lookup(name="lookup", routes_list=[("10.0.0.0/8", 0)])
    q = Queue(name="q", size=4096)
    src >> split
    split[0] >> CheckIPHeader() >> lookup >> DecTTL() >> MACRewrite(dst="02:00:00:00:00:09") >> IPChecksum() >> merge
    split[1] >> q >> merge.input(1)
    merge >> Measure(name="m") >> Sink(name="sink")
    rt = Runtime(pipeline, WallClock(), burst=256)
    reason = rt.run()
    assert reason == "input exhausted"
    assert pipeline["sink"].packets_in == 2_000_000
    assert rt.pool.n_used == 0
    s = pipeline["m"].summary()["all"]
    assert s["packets"] == 2_000_000 and s["p99_ns"] is not None
    assert np.isfinite(s["rate_pps"])
