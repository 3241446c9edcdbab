"""Batchy's graph build and its declarations: flows checked, buffers spliced, the trigger limits."""

import pytest

from tailgate.batchy.build import DEFAULT_FLUSH_TIMEOUT_NS, flush_timeout_ns
from tailgate.batchy.controllers import resolve_controller
from tailgate.batchy.spec import make_flow
from tailgate.batchy.state import ControlInput
from tailgate.core.errors import ArgError
from tailgate.nf import Bypass, RandomSplit
from tailgate.nf.fbuffer import FractionalBuffer
from tailgate.packet.pool import DEFAULT_BURST, MAX_TRIGGER


def test_make_flow_checks_the_path_and_the_objectives(pipeline):
    split, a, b = RandomSplit(name="split", gates=2), Bypass(name="a"), Bypass(name="b")
    split[0] >> a
    split[1] >> b
    added = {"split", "a", "b"}
    f = make_flow("f", [{"task": None, "path": [split, a]}], 1e4, rate_slo={"bit": 1e9}, added=added)
    assert [m.name for m in f.path] == ["split", "a"] and f.rate_slo_bps == 1e9 and f.rate_slo_pps is None
    with pytest.raises(ArgError, match="a -> b is not a connection"):
        make_flow("f", [a, b], 1e4, added=added)
    with pytest.raises(ArgError, match="was not added to a task"):
        make_flow("f", [split, a], 1e4, added={"split"})
    with pytest.raises(ArgError, match="delay_slo_ns is required"):
        make_flow("f", [split, a], None, added=added)
    with pytest.raises(ArgError, match="percentile"):
        make_flow("f", [split, a], 1e4, percentile=100, added=added)


def test_flush_timeout_is_the_tightest_objective_through_the_module(pipeline):
    split, a, b = RandomSplit(name="split", gates=2), Bypass(name="a"), Bypass(name="b")
    split[0] >> a
    split[1] >> b
    added = {"split", "a", "b"}
    flows = [make_flow("f1", [split, a], 50_000, added=added), make_flow("f2", [split, b], 20_000, added=added)]
    assert flush_timeout_ns(a, flows) == 50_000
    assert flush_timeout_ns(split, flows) == 20_000
    assert flush_timeout_ns(Bypass(name="c"), flows) == DEFAULT_FLUSH_TIMEOUT_NS


def test_two_trigger_limits_two_meanings():
    # controllers choose up to the data plane's burst; a fixed trigger may go up to what a buffer holds
    inp = ControlInput(round=1, period_ns=1e6, modules={}, flows=[])
    assert inp.max_trigger == DEFAULT_BURST == 32
    assert resolve_controller(f"fixed{MAX_TRIGGER}").trigger == MAX_TRIGGER == 1024
    assert next(a for a in FractionalBuffer.args if a.name == "trigger").max == MAX_TRIGGER
    with pytest.raises(ArgError, match=f"1..{MAX_TRIGGER}"):
        resolve_controller(f"fixed{MAX_TRIGGER + 1}")
