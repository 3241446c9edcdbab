"""``tailgate faas``: sim writes its files or prints JSON, strategies lists arguments, bad input is one line."""
from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from tailgate.cli import app


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_sim_writes_points_and_summary(tmp_path):
    out = tmp_path / "r"
    res = invoke("faas", "sim", "-s", "faasbatch,vanilla,kraken", "--interval", "0.05,0.5", "--kind", "io",
                 "--per-invocation", "--out", out)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((out / "points.csv").read_text().splitlines()))
    assert [(r["strategy"], float(r["interval_s"])) for r in rows] == [
        ("faasbatch", 0.05), ("vanilla", 0.05), ("kraken", 0.05), ("faasbatch", 0.5), ("vanilla", 0.5), ("kraken", 0.5)]
    assert all(r["invocations"] == "400" for r in rows) and rows[2]["predictor"] == "perfect"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["strategies"] == ["faasbatch", "vanilla", "kraken"]
    assert (out / "invocations-kraken-0.5.csv").exists()
    assert "simulated 2,400 invocations" in res.output


def test_sim_json_one_object_per_strategy_and_interval():
    res = invoke("faas", "sim", "-s", "faasbatch,sfs", "--dispatch-interval-s", "0.2", "--json")
    assert res.exit_code == 0, res.output
    pts = json.loads(res.stdout)
    assert [p["strategy"] for p in pts] == ["faasbatch", "sfs"]
    for key in ("strategy", "interval_s", "invocations", "sandboxes", "e2e_p50_ms", "e2e_p98_ms", "schedule_p98_ms",
                "cold_start_p98_ms", "queue_p98_ms", "exec_p98_ms"):
        assert key in pts[0]
    assert pts[0]["invocations"] == 800


def test_sim_on_a_trace_file_warns_of_bad_rows(tmp_path):
    p = tmp_path / "t2021.txt"
    p.write_text("app,func,end_timestamp,duration\nA,f,1.0,0.5\nA,f,2.0,0.5\nA,f,x,1\n")
    res = invoke("faas", "sim", "-s", "faasbatch", "--trace", p, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["invocations"] == 2
    assert f"1 bad rows skipped in {p}; first: {p}:4" in res.stderr.replace("\n", "")


def test_bad_input_is_one_line():
    for args, msg in ((["-s", "faasbatch,bogus"], "unknown 'bogus'"), (["-s", "faasbatch,"], "empty"),
                      (["--interval", "0"], "must be > 0"), (["--interval", "x"], "not a number"),
                      (["--trace", "/no/such/file"], "no such trace file"), (["--kind", "gpu"], "--kind"),
                      (["-s", "faasbatch", "--param", "vanilla.slice_s=1"], "not among"),
                      (["--param", "vanilla.slice_s=1"], "faas strategy vanilla: unknown argument 'slice_s'"), (["--window", "reference"], "only for a trace")):
        res = invoke("faas", "sim", *args, "--json")
        assert res.exit_code == 2, (args, res.output)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], (args, lines)


def test_strategies_lists_every_strategy_with_its_arguments():
    res = invoke("faas", "strategies")
    assert res.exit_code == 0
    for name in ("faasbatch", "vanilla", "kraken", "sfs", "faasbatch-slo", "predictor", "slice_s", "max_total"):
        assert name in res.stdout
