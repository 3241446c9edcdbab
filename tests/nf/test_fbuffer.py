"""FractionalBuffer: exact-size batches, pass-through, resize flush, flush timeout, validation."""
import pytest

from tailgate.core.clock import VirtualClock
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.dataplane.runtime import Runtime
from tailgate.nf import Bypass, FractionalBuffer, Sink


class Sizes(Module):
    """Records the size (and clock time) of every batch it gets."""

    def setup(self):
        self.sizes = []
        self.times = []

    def process(self, batch):
        if not len(batch):            # the runtime's warm-up call
            return
        self.sizes.append(len(batch))
        self.times.append(self.clock.now_ns())
        self.emit(batch)


def _chain(frame_source, udp_frame, repeat, trigger, burst_src=None, **fb):
    src = frame_source(frames=[udp_frame()], repeat=repeat)
    buf = FractionalBuffer(name="fb", trigger=trigger, **fb)
    rec = Sizes(name="rec")
    src >> Bypass(cost_ns=(100, 10)) >> buf >> rec >> Sink()
    return src, buf, rec


def test_releases_exact_trigger_sized_batches(pipeline, frame_source, udp_frame):
    # 100 packets in bursts of 7 through a trigger of 10: ten batches of exactly 10.
    _src, buf, rec = _chain(frame_source, udp_frame, 100, 10)
    rt = Runtime(pipeline, VirtualClock(), burst=7)
    rt.run()
    assert rec.sizes == [10] * 10
    assert len(buf) == 0 and rt.pool.n_used == 0


def test_a_large_burst_leaves_as_several_batches_in_one_call(pipeline, frame_source, udp_frame):
    _src, buf, rec = _chain(frame_source, udp_frame, 64, 8)
    Runtime(pipeline, VirtualClock(), burst=32).run()
    assert rec.sizes == [8] * 8
    assert buf.counter("batches_out") == 8


def test_zero_trigger_passes_through_unchanged(pipeline, frame_source, udp_frame):
    _src, buf, rec = _chain(frame_source, udp_frame, 50, 0)
    Runtime(pipeline, VirtualClock(), burst=7).run()
    assert rec.sizes == [7] * 7 + [1]


def test_flush_timeout_releases_leftovers_when_traffic_stops(pipeline, frame_source, udp_frame):
    # 25 packets, trigger 10: two batches of 10, then 5 wait; the source is exhausted, so only the
    # timeout can release them -- the original buffer would hold them for ever.
    _src, buf, rec = _chain(frame_source, udp_frame, 25, 10, flush_timeout_ns=50_000)
    clock = VirtualClock()
    rt = Runtime(pipeline, clock, burst=5)
    rt.run()
    assert rec.sizes == [10, 10, 5]
    assert buf.counter("flushes_timeout") == 1
    # the leftover left at its deadline: 50 us after it arrived, not before
    assert rec.times[-1] >= 50_000
    assert rt.pool.n_used == 0


class FirstFew(Module):
    """Gate 1 gets the first ``few`` packets, gate 0 everything after."""

    n_ogates = 2

    def setup(self):
        self.seen = 0

    def process(self, batch):
        if not len(batch):
            return
        gate = 1 if self.seen < 5 else 0
        self.seen += len(batch)
        self.emit(batch, gate)


def test_timeout_fires_while_the_task_is_busy_elsewhere(pipeline, frame_source, udp_frame):
    # The buffered branch gets 5 packets and then none, while the task keeps running the other
    # branch: the leftovers must still leave at their deadline.
    src = frame_source(frames=[udp_frame()], repeat=400)
    split = FirstFew(name="split")
    buf = FractionalBuffer(name="fb", trigger=32, flush_timeout_ns=20_000)
    rec = Sizes(name="rec")
    src >> Bypass(cost_ns=(500, 50)) >> split
    split[1] >> buf >> rec >> Sink()
    split[0] >> Sink()
    rt = Runtime(pipeline, VirtualClock(), burst=5)
    rt.run()
    assert rec.sizes == [5]
    assert buf.counter("flushes_timeout") == 1
    # 400 packets at 750 ns per 5 take 60 us: the flush came while the task was still busy
    assert 20_000 <= rec.times[0] < 25_000


def test_lowering_the_trigger_flushes_as_is(pipeline, frame_source, udp_frame):
    _src, buf, rec = _chain(frame_source, udp_frame, 28, 20)
    rt = Runtime(pipeline, VirtualClock(), burst=4)
    rt.run(max_packets=16)            # 16 packets wait for 20
    assert rec.sizes == [] and len(buf) == 16
    buf.set("trigger", 5)             # below what waits: released as one batch of 16
    rt.run()
    assert rec.sizes[0] == 16
    assert buf.counter("flushes_resize") == 1
    assert sum(rec.sizes) == 28


def test_trigger_to_zero_releases_at_the_next_round(pipeline, frame_source, udp_frame):
    _src, buf, rec = _chain(frame_source, udp_frame, 12, 32)
    rt = Runtime(pipeline, VirtualClock(), burst=4)
    rt.run(max_packets=12)
    assert len(buf) == 12
    buf.set("trigger", 0)
    rt.run(duration_ns=1_000)         # no more input: the next round's timer check releases them
    assert rec.sizes == [12]


def test_a_wrong_trigger_is_refused_and_the_old_one_kept():
    buf = FractionalBuffer(name="fbx", trigger=8)
    with pytest.raises(ArgError, match=r"FractionalBuffer\(fbx\).*'trigger' must be <= 1024"):
        buf.set("trigger", 2000)
    with pytest.raises(ArgError, match="'trigger' must be >= 0"):
        buf.set("trigger", -1)
    assert buf.get("trigger") == 8
    with pytest.raises(ArgError, match="flush_timeout_ns"):
        FractionalBuffer(name="fby", flush_timeout_ns=0)


def test_end_of_run_frees_what_waits(pipeline, frame_source, udp_frame):
    _src, buf, _rec = _chain(frame_source, udp_frame, 5, 10, flush_timeout_ns=10**12)
    rt = Runtime(pipeline, VirtualClock(), burst=5)
    rt.run(max_packets=5)
    assert len(buf) == 5
    rt.finish()
    assert rt.pool.n_used == 0
    assert buf.counter("held_at_stop") == 5 and buf.counter("drops") == 0   # held, not lost


def test_hold_cost_is_measured_apart_from_the_users_pipeline():
    from tailgate.dataplane.graph import Pipeline
    from tailgate.nf.fbuffer import hold_cost_ns
    from tailgate.packet.pool import PacketPool

    with Pipeline() as p:
        cost = hold_cost_ns(PacketPool(256), calls=200)
        assert len(p) == 0                      # nothing joined the pipeline being built
    assert 0.0 <= cost < 1e6
