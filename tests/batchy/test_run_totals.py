"""What a Batchy script run leaves at the end: whole-run packets and rate, a titled module table,
and no packet left in a buffer or counted as a drop (virtual clock: deterministic)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from tailgate.nf.basic import Queue, Sink, Source
from tailgate.nf.fbuffer import FractionalBuffer
from tailgate.run.progress import final_table
from tailgate.run.script import ScriptRun

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "batchy"
ROUNDS = 6


@pytest.fixture(scope="module")
def simple_run(tmp_path_factory):
    """simple_pipeline, 6 rounds of 5 ms after 5 ms of warm-up, with a tight objective on flow1 (so
    that its buffer holds packets when the run ends)."""
    out = tmp_path_factory.mktemp("simple")
    words = [f"rounds={ROUNDS},period=0.005,warmup=0.005,delay_slo1=55_000,controller=projgrad"]
    sr = ScriptRun(EXAMPLES / "simple_pipeline.py", words, clock="virtual", out_dir=out / "r")
    sr.execute()
    return sr


def _modules(sr, cls):
    return [m for m in sr.pipeline if isinstance(m, cls)]


def test_summary_packets_and_rate_cover_the_whole_run(simple_run):
    sr = simple_run
    s = json.loads((sr.out_dir / "summary.json").read_text())
    sources = _modules(sr, Source)
    assert s["packets"] == sum(m.packets_in for m in sources)
    # every packet the sources made over the run is counted: out at a sink or still in a queue
    sinks = sum(m.packets_in for m in _modules(sr, Sink))
    queued = sum(len(m) for m in _modules(sr, Queue))
    assert s["packets"] == sinks + queued
    # the rate is the whole run's packets over the whole run's clock: about the controller's rate
    # (the rounds' total flow rate), not a round's packets over the whole clock (1/7 of it)
    assert s["rate_pps"] == pytest.approx(s["packets"] * 1e9 / s["clock_ns"])
    b = s["batchy"]
    assert b["rounds"] == ROUNDS and b["mean_of_rounds"] == [ROUNDS // 2 + 1, ROUNDS]
    assert 0.9 < s["rate_pps"] / b["sum_fpps"] < 1.05, (s["rate_pps"], b["sum_fpps"])
    # counters.csv agrees with the summary
    rows = (sr.out_dir / "counters.csv").read_text().splitlines()
    assert f"src_task0,Source,packets_in,{s['packets']}" in rows


def test_packets_held_in_buffers_at_the_end_go_on_to_their_sinks_not_to_drops(simple_run):
    sr = simple_run
    s = json.loads((sr.out_dir / "summary.json").read_text())
    buffers = _modules(sr, FractionalBuffer)
    assert buffers and any(sr.batchy.rows[-1][f"{b.name[3:]}:control"] > 0 for b in buffers)
    for b in buffers:
        c = s["modules"][b.name]["counters"]
        assert (c["drops"], c["occupancy"], c["held_at_stop"]) == (0, 0, 0), (b.name, c)
        assert "drops.unconnected" not in c
        assert c["packets_in"] == c["packets_out"]
        # the trigger the controller chose is back in place after the release
        assert b.trigger == sr.batchy.rows[-1][f"{b.name[3:]}:control"]
    assert all(m["counters"]["drops"] == 0 for m in s["modules"].values())


def test_the_module_table_at_the_end_is_titled_and_counts_the_whole_run(simple_run):
    out = io.StringIO()
    Console(file=out, width=120).print(final_table(simple_run.runtime, simple_run.stop_reason))
    text = out.getvalue()
    assert "per module, over the whole run" in text
    src = next(m for m in simple_run.pipeline if m.name == "src_task0")
    assert f"{src.packets_in:,}" in text


def test_the_rows_measure_one_period_each(simple_run):
    """Counters run on over the rounds; a row is what one period gained (its rate, not the run's
    cumulative count over one period)."""
    rows = simple_run.batchy.rows
    flow_pps = [r["flow1:pps"] + r["flow2:pps"] for r in rows]
    assert all(p == pytest.approx(r["sum_fpps"]) for p, r in zip(flow_pps, rows))
    # steady state: the last rounds' rates agree with each other within a few %, and a round's
    # packets are a fraction of the run's
    assert rows[-1]["sum_fpps"] == pytest.approx(rows[-2]["sum_fpps"], rel=0.05)
    period_packets = rows[-1]["task0:task_pps"] * 0.005
    assert period_packets < simple_run.summary["packets"] / ROUNDS


def test_a_script_without_batchy_has_nothing_to_release_and_no_batchy_summary(tmp_path):
    p = tmp_path / "s.py"
    p.write_text('Source("s", packets=10) >> Sink("k")\n')
    sr = ScriptRun(p, [], clock="virtual", out_dir=tmp_path / "o")
    sr.execute()
    assert sr.batchy.stop() == 0
    assert "batchy" not in sr.summary and sr.summary["packets"] == 10
