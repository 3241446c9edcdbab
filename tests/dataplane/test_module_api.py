"""Module's public graph and output calls: splice, rewire, the read-only views, driving by hand."""

import pytest

from tailgate.core.clock import VirtualClock
from tailgate.core.errors import GraphError
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.module import Module
from tailgate.dataplane.runtime import Runtime
from tailgate.nf import Bypass, FractionalBuffer, HashSplit, RandomSplit, Sink


def test_splice_in_front_moves_every_feeder_in_order(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame(sport=p) for p in range(64)])
    split = RandomSplit(name="split", gates=2, seed=3)
    nf = Bypass(name="nf")
    src >> split
    split[0] >> nf
    split[1] >> nf
    nf >> Sink()
    buf = FractionalBuffer(name="buf", trigger=0)
    nf.splice_in_front(buf)
    assert buf.feeders(0) == [(split, 0), (split, 1)]
    assert nf.feeders(0) == [(buf, 0)]
    assert split.ogate_peer(0) == (buf, 0) and split.ogate_peer(1) == (buf, 0)
    assert buf.ogate_peer(0) == (nf, 0)
    Runtime(pipeline, VirtualClock()).run()
    # every packet now passes through the buffer on its way to nf
    assert buf.packets_in == nf.packets_in == 64


def test_rewire_moves_one_gate_and_the_packets_follow(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame(sport=p) for p in range(64)])
    split = RandomSplit(name="split", gates=2, seed=5)
    a = Bypass(name="a")
    old, new = Sink(name="old"), Sink(name="new")
    src >> split
    split[0] >> a >> old
    split[1] >> old
    assert a.rewire(0, new) is new
    assert old.feeders(0) == [(split, 1)] and new.feeders(0) == [(a, 0)]
    assert a.ogate_peer(0) == (new, 0)
    feeders = new.feeders(0)
    feeders.clear()  # a copy: the wiring is untouched
    assert new.feeders(0) == [(a, 0)]
    Runtime(pipeline, VirtualClock()).run()
    assert new.packets_in == a.packets_in > 0
    assert old.packets_in == 64 - a.packets_in


def test_rewire_connects_an_open_gate_and_checks_its_arguments(pipeline):
    split = RandomSplit(name="split", gates=2)
    sink = Sink(name="s")
    split.rewire(1, sink.input(0))
    assert split.open_ogates() == [0]
    with pytest.raises(GraphError, match=r"no output gate 5"):
        split.rewire(5, sink)
    with pytest.raises(GraphError, match=r"not a module"):
        split.rewire(0, "sink")


def test_no_rewiring_once_a_runtime_runs_the_graph(pipeline, frame_source, udp_frame):
    src = frame_source(frames=[udp_frame()])
    a = Bypass(name="a")
    src >> a >> Sink(name="s")
    Runtime(pipeline, VirtualClock())
    with pytest.raises(GraphError, match=r"Bypass\(a\): cannot rewire a module that a runtime already runs"):
        a.rewire(0, Sink(name="late"))
    with pytest.raises(GraphError, match=r"cannot rewire"):
        a.splice_in_front(FractionalBuffer(name="late_buf"))


def test_open_ogates_and_the_gate_count_built(pipeline):
    split = HashSplit(name="h", gates=3)
    assert split.open_ogates() == [0, 1, 2]
    assert split.ogate_peer(2) is None
    split[1] >> Sink()
    assert split.open_ogates() == [0, 2]
    assert split.n_ogates_built == 3


def test_the_gate_count_built_is_none_while_setup_runs(pipeline):
    seen = []

    class Probe(Module):
        def setup(self):
            seen.append(self.n_ogates_built)

    p = Probe(name="probe")
    assert seen == [None] and p.n_ogates_built == 1


def test_open_outputs_then_drain_returns_what_left_each_gate(pool, udp_frame):
    split = RandomSplit(gates=2, seed=1)
    split.open_outputs(pool)
    split.process(pool.from_frames([udp_frame(sport=p) for p in range(40)]))
    out = split.drain_outputs()
    assert sorted({g for g, _b in out}) == [0, 1]
    assert sum(len(b) for _g, b in out) == 40
    assert pool.n_used == 40                   # the caller owns the batches
    assert split.drain_outputs() == []         # drained
    for _g, b in out:
        b.free()
    split.process(pool.from_frames([udp_frame()]))
    split.open_outputs(pool)                   # opening again forgets what was kept
    assert split.drain_outputs() == []


def test_auto_names_restart_and_come_back():
    with Pipeline():
        first = Bypass().name
    saved = Module.reset_auto_names()
    try:
        with Pipeline():
            assert Bypass().name == "bypass0"
    finally:
        Module.restore_auto_names(saved)
    with Pipeline():
        assert Bypass().name == f"bypass{int(first.removeprefix('bypass')) + 1}"
