import pytest

from tailgate.core.clock import VirtualClock
from tailgate.core.errors import ArgError, GraphError
from tailgate.dataplane.runtime import Runtime
from tailgate.nf import Bypass, Merge, Queue, RandomSplit, Sink


def test_chain_wiring_reads_like_data_flow(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()])
    a, b = Bypass(name="a"), Bypass(name="b")
    assert (src >> a >> b) is b
    b >> Sink()
    assert a._ogates[0] == (b, 0)
    pipeline.check()


def test_unconnected_output_gate_names_module(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()])
    split = RandomSplit(name="split", gates=2)
    src >> split
    split[0] >> Sink()
    with pytest.raises(GraphError, match=r"RandomSplit\(split\): output gate 1 is not connected"):
        pipeline.check()


def test_unfed_module_is_an_error(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()])
    src >> Sink()
    Bypass(name="lonely") >> Sink()
    with pytest.raises(GraphError, match=r"Bypass\(lonely\): input gate 0 is not connected"):
        pipeline.check()


def test_cycle_without_queue_is_refused_with_queue_allowed(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()])
    m = Merge(name="m", inputs=2)
    split = RandomSplit(name="s", gates=2)
    src >> m >> split
    split[0] >> Sink()
    split[1] >> Bypass(name="back") >> m.input(1)
    with pytest.raises(GraphError, match="cycle without a queue: .*Merge\\(m\\)"):
        pipeline.check()


def test_cycle_through_queue_is_fine(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()])
    m = Merge(name="m", inputs=2)
    split = RandomSplit(name="s", gates=2, seed=1)
    q = Queue(name="q", size=64)
    src >> m >> split
    split[0] >> Sink(name="out")
    split[1] >> q >> m.input(1)
    rt = Runtime(pipeline, VirtualClock())
    rt.run()
    # Every packet eventually leaves through the sink; none lost.
    assert pipeline["out"].packets_in + q.counter("drops") == 1
    assert rt.pool.n_used == 0


def test_double_connection_and_bad_gate(pipeline):
    a, b, c = Bypass(), Bypass(), Bypass()
    a >> b
    with pytest.raises(GraphError, match="already connected"):
        a >> c
    with pytest.raises(GraphError, match="no output gate 3"):
        a[3]


def test_bad_arguments_name_module_and_argument(pipeline):
    with pytest.raises(ArgError, match=r"Bypass\(x\): unknown argument 'cycles'"):
        Bypass(name="x", cycles=3)
    with pytest.raises(ArgError, match=r"Bypass\(y\): argument 't0_ns' must be >= 0"):
        Bypass(name="y", t0_ns=-1)
    with pytest.raises(ArgError, match=r"argument 'gates' must be int"):
        RandomSplit(gates="two")
    with pytest.raises(GraphError, match="already exists"):
        Bypass(name="x2"), Bypass(name="x2")


def test_optional_gates_may_stay_open(pipeline, frame_source, udp_frame):
    from tailgate.core.clock import VirtualClock
    from tailgate.dataplane.module import Module

    class OneWay(Module):
        n_igates = 2
        n_ogates = 2
        optional_igates = (1,)
        optional_ogates = (1,)

        def process(self, batch):
            self.emit(batch, 1)  # to the open gate: freed and counted, never leaked

    src = frame_source(frames=[udp_frame()], repeat=5)
    m = OneWay(name="ow")
    src >> m >> Sink()
    rt = Runtime(pipeline, VirtualClock())
    rt.run()
    assert m.counter("drops.unconnected") == 5
    assert rt.pool.n_used == 0


def test_bad_codes_are_freed_and_counted(pipeline, frame_source, udp_frame):
    import numpy as np

    from tailgate.core.clock import VirtualClock
    from tailgate.dataplane.module import Module

    class Sloppy(Module):
        n_ogates = 2
        drop_reasons = ("only",)

        def process(self, batch):
            # gate 0, gate 1, a gate it lacks, its one reason, a reason it lacks
            self.emit_codes(batch, np.array([0, 1, 5, -1, -3] * (len(batch) // 5), np.int64))

    src = frame_source(frames=[udp_frame()], repeat=10)
    m = Sloppy(name="sloppy")
    src >> m
    m[0] >> Sink(name="a")
    m[1] >> Sink(name="b")
    rt = Runtime(pipeline, VirtualClock(), burst=10)
    rt.run()
    c = m.counters()
    assert (c["out.0"], c["out.1"], c["drops.only"], c["drops.unconnected"]) == (2, 2, 2, 4)
    assert c["drops"] == 6
    assert rt.pool.n_used == 0
