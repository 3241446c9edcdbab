"""The results directory: config.json, counters.csv (long format), summary.json."""

from __future__ import annotations

import csv
import json
import math
import re

import dpkt
import numpy as np

from tailgate.run.results import default_out_dir, jsonable, write_json
from tailgate.run.script import ScriptRun

SCRIPT = """
n = get_arg("n", 500, int)
src = Source("src", rate_pps=1e6, packets=n, flows=4, seed=3)
split = WeightedRandomSplit("split", weights="1,1")
merge = Merge("merge", inputs=2)
src >> split
split[0] >> Bypass("a", t0_ns=100, t1_ns=10) >> merge.input(0)
split[1] >> RateLimiter("police", rate_pps=1e5, burst_packets=8) >> merge.input(1)
merge >> Measure("measure") >> Sink("sink")
"""


def run_small(tmp_path, args=("n=500",)):
    path = tmp_path / "small.py"
    path.write_text(SCRIPT)
    sr = ScriptRun(path, list(args), clock="virtual", burst=16, out_dir=tmp_path / "res")
    return sr, sr.execute()


def test_directory_contents(tmp_path):
    sr, summary = run_small(tmp_path)
    out = tmp_path / "res"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "counters.csv", "summary.json"]

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["script"] == str(tmp_path / "small.py")
    assert cfg["args"] == {"n": "500"}
    assert cfg["clock"] == "virtual" and cfg["burst"] == 16
    assert set(cfg["versions"]) >= {"tailgate", "python", "numpy"}
    assert cfg["machine"]["cpu_model"] and cfg["machine"]["platform"]
    mods = {m["name"]: m for m in cfg["modules"]}
    assert mods["police"]["class"] == "RateLimiter"
    assert mods["police"]["config"]["rate_pps"] == 1e5 and mods["police"]["config"]["burst_packets"] == 8
    assert mods["split"]["connections"] == [{"ogate": 0, "to": "a", "igate": 0}, {"ogate": 1, "to": "police", "igate": 0}]

    with open(out / "counters.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["module", "class", "counter", "value"]
    got = {(r["module"], r["counter"]): r["value"] for r in rows}
    for m in sr.pipeline:
        for k, v in m.counters().items():
            assert got[(m.name, k)] == str(v)
        assert {r["class"] for r in rows if r["module"] == m.name} == {type(m).__name__}
    assert got[("sink", "packets_in")] == str(500 - int(got[("police", "drops.over_rate")]))

    s = json.loads((out / "summary.json").read_text())
    assert s == summary
    assert s["packets"] == 500 and s["stop_reason"] == "input exhausted" and s["clock"] == "virtual"
    assert s["clock_ns"] > 0 and s["wall_s"] > 0
    assert math.isclose(s["rate_pps"], 500 * 1e9 / s["clock_ns"])
    assert s["modules"]["police"]["class"] == "RateLimiter"
    assert s["measures"]["measure"]["all"]["packets"] == s["modules"]["sink"]["counters"]["packets_in"]
    assert s["warnings"] == []
    assert not list(out.glob(".*.tmp"))


def test_virtual_runs_repeat_exactly(tmp_path):
    for k in ("1", "2"):
        (tmp_path / k).mkdir()
        run_small(tmp_path / k)
    a = (tmp_path / "1" / "res" / "counters.csv").read_text()
    b = (tmp_path / "2" / "res" / "counters.csv").read_text()
    assert a == b


def test_capture_error_is_a_warning(tmp_path, udp_frame):
    frames = [udp_frame(dst=f"10.0.0.{i}") for i in range(1, 11)]
    cap = tmp_path / "cut.pcap"
    with open(cap, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for i, fr in enumerate(frames):
            w.writepkt(fr, ts=1_700_000_000 + i * 1e-3)
    data = cap.read_bytes()
    cap.write_bytes(data[:-10])  # the last record is cut short
    last_record = len(data) - (16 + len(frames[-1]))
    script = tmp_path / "replay.py"
    script.write_text('PcapSource("in", path=get_arg("pcap", type=str)) >> Sink("sink")\n')
    sr = ScriptRun(script, [f"pcap={cap}"], clock="virtual", out_dir=tmp_path / "res")
    s = sr.execute()
    assert s["modules"]["sink"]["counters"]["packets_in"] == 9
    assert len(s["warnings"]) == 1
    assert re.search(rf"PcapSource\(in\): {re.escape(str(cap))}: byte {last_record}: ", s["warnings"][0])
    assert json.loads((tmp_path / "res" / "summary.json").read_text())["warnings"] == s["warnings"]


def test_jsonable_and_default_dir(tmp_path):
    v = jsonable({"a": np.int64(3), "b": np.float32(0.5), "c": float("nan"), "d": np.arange(3), 4: (1, float("inf"))})
    assert v == {"a": 3, "b": 0.5, "c": None, "d": [0, 1, 2], "4": [1, None]}
    write_json(tmp_path / "x.json", {"n": float("nan")})
    assert json.loads((tmp_path / "x.json").read_text()) == {"n": None}
    d1 = default_out_dir("examples/pipeline.py", base=tmp_path)
    assert re.fullmatch(r"pipeline-\d{8}-\d{6}", d1.name) and d1.parent == tmp_path
    d1.mkdir()
    d2 = default_out_dir("examples/pipeline.py", base=tmp_path)
    assert d2 != d1 and d2.name.startswith(d1.name)
