"""Load sweeps: load specs, parallel points in a stable order, the sustainable-load rule."""
import pytest

from tailgate.core.errors import ArgError
from tailgate.dispatch.sweep import parse_loads, sustainable, sweep
from tailgate.dispatch.workloads import WORKLOADS


def test_parse_loads():
    assert parse_loads("0.8") == [0.8]
    assert parse_loads("0.5,0.7") == [0.5, 0.7]
    assert parse_loads("0.05:1.0:0.05") == pytest.approx([0.05 * k for k in range(1, 21)])
    assert parse_loads("0.1:0.35:0.1") == pytest.approx([0.1, 0.2, 0.3])
    for bad in ("0", "1.6", "a", "0.5:0.1:0.1", "0.1:0.5:0", "1:2:3:4", ""):
        with pytest.raises(ArgError):
            parse_loads(bad)


def test_parallel_sweep_equals_serial_sweep():
    kw = dict(n_requests=2000, seed=7)
    serial = sweep(WORKLOADS["disp2"], ["cfcfs", "sjf"], 4, [0.3, 0.6], jobs=1, **kw)
    parallel = sweep(WORKLOADS["disp2"], ["cfcfs", "sjf"], 4, [0.3, 0.6], jobs=2, **kw)
    assert [(s["policy"], s["load"]) for s in parallel] == [("cfcfs", 0.3), ("cfcfs", 0.6), ("sjf", 0.3), ("sjf", 0.6)]
    strip = lambda s: {k: v for k, v in s.items() if k != "sim_requests_per_s"}  # noqa: E731
    assert [strip(s) for s in serial] == [strip(s) for s in parallel]


def test_sustainable_stops_at_the_first_miss():
    def pt(load, sd, sat=False):
        return {"policy": "x", "load": load, "saturated": sat, "slowdown": {"p99.9": sd}}
    pts = [pt(0.1, 2), pt(0.2, 3), pt(0.3, 50), pt(0.4, 4), pt(0.5, 5, sat=True)]
    assert sustainable(pts, 10) == {"x": 0.2}
    assert sustainable(pts, 1) == {"x": None}
