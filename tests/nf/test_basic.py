"""Basic network functions on crafted packets through a real pipeline."""
import pytest

from tailgate.core.clock import VirtualClock
from tailgate.core.errors import ArgError
from tailgate.dataplane.runtime import Runtime
from tailgate.nf import Bypass, Drop, Measure, RateLimiter, SetMetadata, Sink, Timestamp, WeightedRandomSplit
from tailgate.packet.pool import ANNO_TIMESTAMP


def test_drop_counts_and_frees(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()], repeat=40)
    d = Drop(name="d")
    src >> d
    rt = Runtime(pipeline, VirtualClock())
    rt.run()
    assert d.counter("drops.dropped") == 40
    assert rt.pool.n_used == 0


def test_set_metadata_and_timestamp(pipeline, frame_source, udp_frame):
    from tailgate.dataplane.module import Module

    seen = {}

    class Peek(Module):
        def process(self, batch):
            seen["flow"] = batch.flow_id.copy()
            seen["ts"] = batch.anno(ANNO_TIMESTAMP).copy()
            seen["port"] = batch.out_port.copy()
            self.emit(batch)

    src = frame_source(frames=[udp_frame()], repeat=4)
    src >> Bypass(cost_ns=(1000, 0)) >> SetMetadata(field="out_port", value=3) >> Timestamp() >> Peek() >> Sink()
    Runtime(pipeline, VirtualClock()).run()
    assert (seen["port"] == 3).all()
    # Timestamp ran after the 1000 ns bypass under the virtual clock.
    assert (seen["ts"] == 1000).all()
    with pytest.raises(ArgError, match="argument 'field' must be one of"):
        SetMetadata(field="color", value=1)


def test_measure_latency_under_virtual_clock(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame(sport=1), udp_frame(sport=2)], repeat=50)
    m = Measure(name="m")
    src >> Bypass(cost_ns=(2000, 100)) >> m >> Sink()
    Runtime(pipeline, VirtualClock(), burst=10).run()
    s = m.summary()
    assert s["all"]["packets"] == 100
    assert set(s["flows"]) == {0, 1}
    assert s["flows"][0]["packets"] == 50
    # Each batch of 10 waits exactly 2000 + 100*10 ns from its arrival stamp.
    assert 3000 <= s["all"]["p50_ns"] <= 3000 * (1 + 1 / 32)
    assert m.counter("p99_ns") == s["all"]["p99_ns"]
    # clear() empties every row it had filled (it zeroes only those)
    m.clear()
    assert not m.hist.any() and not m.flow_packets.any() and m.summary()["all"]["packets"] == 0


def test_rate_limiter_polices_to_rate(pipeline, frame_source, udp_frame):
    # Packets every 100 ns in batches of 10 (1 us per round) -> offered 10 Mpps, limit 1 Mpps.
    src = frame_source(frames=[udp_frame()], repeat=10_000)
    rl = RateLimiter(name="rl", rate_pps=1e6, burst_packets=10, cost_ns=(0, 0))
    src >> Bypass(cost_ns=(1000, 0)) >> rl >> Sink(name="out")
    Runtime(pipeline, VirtualClock(), burst=10).run()
    out = pipeline["out"].packets_in
    elapsed_us = 1000 * 1000 / 1000  # 1000 rounds x 1 us
    assert out == pytest.approx(elapsed_us * 1 + 10, abs=2)
    assert rl.counter("drops.over_rate") == 10_000 - out


def test_rate_limiter_bits(pipeline, frame_source, udp_frame):
    f = udp_frame()  # 60 bytes
    src = frame_source(frames=[f], repeat=1000)
    rl = RateLimiter(rate_bps=len(f) * 8 * 1e6, burst_bits=len(f) * 8 * 10, cost_ns=(0, 0))
    src >> Bypass(cost_ns=(1000, 0)) >> rl >> Sink(name="out")
    Runtime(pipeline, VirtualClock(), burst=10).run()
    # 100 rounds of 1 us at one frame per us, plus the full bucket at the start.
    assert pipeline["out"].packets_in == pytest.approx(110, abs=1)
    with pytest.raises(ArgError, match="exactly one of rate_pps or rate_bps"):
        RateLimiter(rate_pps=1, rate_bps=1)


def test_weighted_split_follows_weights(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()], repeat=4000)
    ws = WeightedRandomSplit(weights="3,1", seed=3)
    src >> ws
    ws[0] >> Sink(name="a")
    ws[1] >> Sink(name="b")
    Runtime(pipeline, VirtualClock(), burst=256).run()
    a, b = pipeline["a"].packets_in, pipeline["b"].packets_in
    assert a + b == 4000
    assert a / 4000 == pytest.approx(0.75, abs=0.03)
    with pytest.raises(ArgError, match="weights"):
        WeightedRandomSplit(weights=[0, 0])
