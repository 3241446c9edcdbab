import time

import pytest

from tailgate.core.args import Arg, bind_args, float_list
from tailgate.core.clock import VirtualClock, WallClock, make_clock
from tailgate.core.errors import ArgError

DECL = (
    Arg("rate_pps", float, 0.0, unit="pps", min=0),
    Arg("gates", int, 2, min=1, max=8),
    Arg("mode", str, "fast", choices=("fast", "timed")),
    Arg("on", bool, False),
    Arg("path", str),
)


def test_bind_converts_strings_like_a_command_line():
    v = bind_args("M(x)", DECL, {"rate_pps": "1_000_000", "gates": "0x4", "on": "yes", "path": "a.pcap"})
    assert v == {"rate_pps": 1e6, "gates": 4, "mode": "fast", "on": True, "path": "a.pcap"}


@pytest.mark.parametrize(
    "given, message",
    [
        ({"path": "p", "rate": 1}, r"M\(x\): unknown argument 'rate' \(arguments: rate_pps, gates, mode, on, path\)"),
        ({}, r"M\(x\): missing required argument 'path'"),
        ({"path": "p", "gates": 9}, r"argument 'gates' must be <= 8"),
        ({"path": "p", "gates": 2.5}, r"argument 'gates' must be int, got 2.5"),
        ({"path": "p", "rate_pps": -1}, r"argument 'rate_pps' must be >= 0 pps"),
        ({"path": "p", "mode": "slow"}, r"argument 'mode' must be one of fast, timed; got 'slow'"),
        ({"path": "p", "on": "maybe"}, r"argument 'on' must be bool"),
    ],
)
def test_bad_arguments_are_one_clear_line(given, message):
    with pytest.raises(ArgError, match=message):
        bind_args("M(x)", DECL, given)


def test_float_list():
    assert float_list("1, 2:3") == [1.0, 2.0, 3.0]
    assert float_list((1, 2)) == [1.0, 2.0]


def test_virtual_clock_is_exact_and_monotone():
    c = VirtualClock()
    assert c.charge(0, 100, 2.5, 4) == 110
    assert c.now_ns() == 110
    c.idle_until(50)  # never backwards
    assert c.now_ns() == 110
    c.idle_until(1000)
    assert c.now_ns() == 1000
    with pytest.raises(ValueError):
        c.advance(-1)


def test_wall_clock_moves_and_waits():
    c = WallClock()
    t = c.now_ns()
    c.idle_until(t + 300_000)
    assert c.now_ns() >= t + 300_000
    assert make_clock("virtual").virtual and not make_clock("wall").virtual
    with pytest.raises(ArgError, match="unknown clock 'cpu'"):
        make_clock("cpu")


def test_wall_clock_pause_hides_the_time_in_between():
    c = WallClock()
    c.pause()
    t = c.now_ns()
    time.sleep(0.02)
    c.pause()                      # a second pause changes nothing
    c.resume()
    after = c.now_ns()
    assert 0 <= after - t < 10_000_000          # the 20 ms asleep did not count
    assert c.paused_ns >= 20_000_000
    c.resume()                     # resuming a running clock changes nothing
    c.idle_until(after + 1_000_000)
    assert c.now_ns() >= after + 1_000_000
    v = VirtualClock(5)
    v.pause()
    v.resume()
    assert v.now_ns() == 5
