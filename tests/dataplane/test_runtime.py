import pytest

from tailgate.core.args import Arg
from tailgate.core.clock import VirtualClock, WallClock
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.dataplane.runtime import Runtime, Worker
from tailgate.nf import Bypass, Merge, Queue, RandomSplit, Sink


class Recorder(Module):
    """Test module: records the size of every batch it gets, passes it on."""

    def setup(self):
        self.sizes = []

    def process(self, batch):
        self.sizes.append(len(batch))
        self.emit(batch)


def test_branches_merge_into_one_call_per_round(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame(sport=p) for p in range(64)])
    split = RandomSplit(gates=3, seed=7)
    rec = Recorder(name="rec")
    src >> split
    split[0] >> Bypass() >> rec
    split[1] >> Bypass() >> Bypass() >> rec
    split[2] >> rec
    rec >> Sink()
    rt = Runtime(pipeline, VirtualClock(), burst=32)
    rt.run()
    # One empty warm-up call (kernels load before the clock counts), then 64 packets in two
    # rounds of 32: the merge point runs once per round with the whole burst.
    assert rec.sizes == [0, 32, 32]
    order = [m.name for m in pipeline.task_modules(src)]
    assert order.index("rec") > max(order.index(m.name) for m in pipeline if m.name.startswith("bypass"))


def test_virtual_clock_charges_modeled_cost(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()], repeat=100)
    a = Bypass(name="a", t0_ns=1000, t1_ns=10)
    b = Bypass(name="b", cost_ns=(500, 0))
    src >> a >> b >> Sink()
    clock = VirtualClock()
    rt = Runtime(pipeline, clock, burst=32)
    rt.run()
    batches = [32, 32, 32, 4]
    assert a.time_ns == sum(1000 + 10 * n for n in batches)
    assert b.time_ns == 500 * len(batches)
    assert clock.now_ns() == a.time_ns + b.time_ns
    assert a.batches_in == 4 and a.packets_in == 100


def test_wall_clock_bypass_busy_waits(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()], repeat=10)
    a = Bypass(t0_ns=200_000)
    src >> a >> Sink()
    rt = Runtime(pipeline, WallClock(), burst=32)
    rt.run()
    assert a.time_ns >= 200_000


def test_counters_by_name(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()], repeat=10)
    split = RandomSplit(name="s", gates=2, drop_rate=0.5, seed=1)
    src >> split
    split[0] >> Sink()
    split[1] >> Sink()
    Runtime(pipeline, VirtualClock()).run()
    c = split.counters()
    assert c["packets_in"] == 10
    assert c["out.0"] + c["out.1"] + c["drops.random_drop"] == 10
    assert split.counter("drops") == c["drops.random_drop"] > 0
    with pytest.raises(ArgError, match="no counter 'nope'"):
        split.counter("nope")
    split.set("drop_rate", 0.25)
    assert split.get("drop_rate") == 0.25
    with pytest.raises(ArgError, match="must be <= 1.0"):
        split.set("drop_rate", 2)


class Spinner(Module):
    """Test task root: always has a burst ready, counts what it sends."""

    n_igates = 0
    task_root = True
    args = (Arg("frame", bytes),)

    def setup(self):
        self.sent = 0

    def run_task(self, burst):
        b = self.pool.from_frames([self.frame] * burst)
        self.sent += burst
        self.emit(b)
        return burst


def _two_task_pipeline(udp_frame, policy, resource, shares, costs):
    a, b = Spinner(name="A", frame=udp_frame()), Spinner(name="B", frame=udp_frame())
    a >> Bypass(name="costA", cost_ns=costs[0]) >> Sink()
    b >> Bypass(name="costB", cost_ns=costs[1]) >> Sink()
    w = Worker("w", policy=policy, resource=resource)
    w.add_task(a, share=shares[0])
    w.add_task(b, share=shares[1])
    return a, b, w


def test_wfq_by_packets_follows_shares(pipeline, udp_frame):
    a, b, w = _two_task_pipeline(udp_frame, "wfq", "packets", (3, 1), ((0, 10), (0, 10)))
    Runtime(pipeline, VirtualClock(), workers=[w]).run(max_packets=32 * 400)
    assert a.sent / b.sent == pytest.approx(3.0, rel=0.05)


def test_wfq_by_time_follows_shares(pipeline, udp_frame):
    # B's packets cost 4x as much: equal time shares give A about 4x the packets.
    a, b, w = _two_task_pipeline(udp_frame, "wfq", "time", (1, 1), ((0, 10), (0, 40)))
    Runtime(pipeline, VirtualClock(), workers=[w]).run(max_packets=32 * 500)
    assert a.sent / b.sent == pytest.approx(4.0, rel=0.1)


def test_round_robin_alternates(pipeline, udp_frame):
    a, b, w = _two_task_pipeline(udp_frame, "rr", "packets", (1, 1), ((0, 10), (0, 40)))
    Runtime(pipeline, VirtualClock(), workers=[w]).run(max_packets=32 * 100)
    assert a.sent == b.sent


def test_queue_backpressure_holds_upstream_without_drops(pipeline, udp_frame):
    src = Spinner(name="src", frame=udp_frame())
    q = Queue(name="q", size=256)
    src >> q >> Bypass(name="slow", cost_ns=(0, 100)) >> Sink()
    w = Worker("w", policy="wfq", resource="packets")
    w.add_task(src, share=4)
    w.add_task(q, share=1)
    Runtime(pipeline, VirtualClock(), workers=[w]).run(max_packets=32 * 300)
    assert q.counter("drops.queue_full") == 0
    assert q.max_fill <= 256
    assert pipeline["slow"].packets_in > 0


def test_queue_without_backpressure_drops_when_full(pipeline, udp_frame):
    src = Spinner(name="src", frame=udp_frame())
    q = Queue(name="q", size=64, backpressure=False)
    src >> q >> Sink()
    w = Worker("w", policy="wfq", resource="packets")
    w.add_task(src, share=4)
    w.add_task(q, share=1)
    rt = Runtime(pipeline, VirtualClock(), workers=[w])
    rt.run(max_packets=32 * 100)
    assert q.counter("drops.queue_full") > 0
    # Nothing leaks: every packet is in the queue, dropped or sunk.
    assert rt.pool.n_used == len(q)


def test_merge_module_multiple_inputs(pipeline, frame_source, udp_frame):
    s1 = frame_source(name="s1", frames=[udp_frame()], repeat=5)
    s2 = frame_source(name="s2", frames=[udp_frame()], repeat=7)
    m = Merge(inputs=2)
    s1 >> m
    s2 >> m.input(1)
    m >> Sink(name="out")
    Runtime(pipeline, VirtualClock()).run()
    assert pipeline["out"].packets_in == 12


def test_bad_worker_policy():
    with pytest.raises(ArgError, match="policy must be 'rr' or 'wfq'"):
        Worker("w", policy="fifo")


def test_virtual_clock_standing_still_is_reported(pipeline, udp_frame):
    from tailgate.core.errors import TailgateError

    src = Spinner(name="src", frame=udp_frame())
    src >> Sink()
    rt = Runtime(pipeline, VirtualClock())
    with pytest.raises(TailgateError, match="virtual clock stands still"):
        rt.run(duration_ns=1_000)
    # With a packet limit the same pipeline runs fine.
    rt.run(max_packets=320)


def test_queue_counts_each_packet_once(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()], repeat=100)
    q = Queue(name="q", size=1024)
    src >> q >> Sink(name="out")
    Runtime(pipeline, VirtualClock()).run()
    assert q.packets_in == 100
    assert q.counter("out.0") == 100
