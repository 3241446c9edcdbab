"""``tailgate sched``: sweeps write their files, one point prints JSON, bad input is one line."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailgate.cli import app


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_sweep_writes_csv_json_and_plots(tmp_path):
    out = tmp_path / "s"
    res = invoke("sched", "sim", "-p", "darc,cfcfs", "--load", "0.2:0.6:0.2", "--requests", 3000,
                 "--jobs", 1, "--param", "darc.profile=oracle", "--out", out)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / "points.csv")))
    assert [(r["policy"], float(r["load"])) for r in rows] == [
        ("darc", 0.2), ("darc", 0.4), ("darc", 0.6), ("cfcfs", 0.2), ("cfcfs", 0.4), ("cfcfs", 0.6)]
    assert "SHORT_latency_p999_ns" in rows[0]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["max_sustainable_load"]) == {"darc", "cfcfs"}
    assert summary["points"][0]["reservation"][0]["reserved"] == [0]
    assert (out / "slowdown.png").stat().st_size > 1000 and (out / "types.png").stat().st_size > 1000
    assert "sustains load" in res.output


def test_one_point_prints_json_with_darcs_reservation():
    res = invoke("sched", "sim", "-w", "sbim2", "-p", "darc", "--load", "0.8", "--requests", 5000,
                 "--param", "profile=oracle", "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["policy"] == "darc" and s["load"] == 0.8
    assert [len(g["reserved"]) for g in s["reservation"]] == [2, 12]
    assert s["slowdown"]["p99.9"] >= 1.0


def test_policies_lists_every_policy_with_its_argument_table():
    res = invoke("sched", "policies")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    for name in ("darc", "cfcfs", "dfcfs", "steal", "sjf", "edf", "ts"):
        assert name in lines
    assert lines[1] == "Arguments:" and lines[2].split() == ["name", "type", "default", "unit", "range", "help"]
    slice_row = next(line.split() for line in lines if line.split()[:1] == ["slice_ns"])
    assert slice_row[1:4] == ["int", "5000", "ns"] and ">=" in slice_row
    assert any(line.split()[:4] == ["assign", "str", "'rr'", "-"] and "hash" in line for line in lines)
    assert sum(line.split()[:1] == ["queue_len"] for line in lines) == 7


@pytest.mark.parametrize("args, words", [
    (["-p", "fifo"], "unknown policy 'fifo'"),
    (["--load", "2.0"], "load 2 is outside (0, 1.5]"),
    (["--load", "x:y"], "expected a number"),
    (["-w", "nosuch"], "unknown workload 'nosuch'"),
    (["--param", "ts.slice_ns=5", "-p", "darc"], "policy 'ts' is not among"),
    (["--param", "slice_ns=0", "-p", "ts"], "'slice_ns' must be >= 1 ns"),
    (["--param", "darc.bogus=1", "-p", "darc"], "unknown argument 'bogus'"),
    (["--param", "bogus=1", "-p", "darc,cfcfs"], "no chosen policy takes 'bogus'"),
    (["--requests", "5"], "--requests 5"),
    (["-p", "darc,,"], "--policy 'darc,,': policy 2 of 3 is empty"),
    (["-p", ",darc"], "policy 1 of 2 is empty"),
    (["-p", " , "], "give at least one policy"),
    (["-p", "darc,cfcfs,DARC"], "'darc' is named twice"),
    (["--jobs", "0"], "--jobs 0: must be >= 1"),
    (["--jobs", "-3"], "--jobs -3: must be >= 1"),
])
def test_bad_input_is_one_line(args, words):
    res = invoke("sched", "sim", "--json", "--requests", 1000, *args)
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in res.output
    assert words in err


@pytest.mark.parametrize("args, words", [
    (["serve", "--kind", "bogus", "--duration", "1"], "unknown worker kind 'bogus'"),
    (["serve", "-p", "nope", "--duration", "1"], "unknown policy 'nope'"),
    (["load", "--load", "2", "--duration", "1"], "load 2.0 is outside (0, 1.5]"),
    (["serve", "--max-queue-delay-us", "soon", "--duration", "1"], "--max-queue-delay-us 'soon'"),
    (["serve", "--max-queue-delay-us", "HUGE=5", "--duration", "1"], "names type 'HUGE'"),
    (["serve", "--max-queue-delay-us", "-3", "--duration", "1"], "must be a number of µs >= 0"),
])
def test_serve_and_load_refuse_bad_input_in_one_line(args, words):
    res = invoke("sched", *args)
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and words in err


@pytest.mark.parametrize("args, words", [
    (["--jobs", "0"], "--jobs 0: must be >= 1"),
    (["--slowdown-target", "0"], "--slowdown-target 0: must be > 0"),
    (["--out", "FILE"], "exists and is not a directory"),
])
def test_report_refuses_bad_input_in_one_line_before_running(tmp_path, args, words):
    (tmp_path / "FILE").write_text("")
    args = [tmp_path / "FILE" if a == "FILE" else a for a in args]
    res = invoke("sched", "report", "--quick", "--no-live", "--out", tmp_path / "r", *args)
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and words in err
    assert not (tmp_path / "r").exists()


def test_report_writes_a_results_dir_by_default_and_says_what_it_reused(tmp_path, monkeypatch):
    """A default run writes under ./results/, never docs/; a second run into the same --out states its reuse."""
    import functools

    import tailgate.cli.sched as cli_sched

    monkeypatch.setattr(cli_sched, "make_report",
                        functools.partial(cli_sched.make_report, n_requests=2_000, loads="0.5"))
    monkeypatch.chdir(tmp_path)
    res = invoke("sched", "report", "--quick", "--no-live", "--jobs", 1)
    assert res.exit_code == 0, res.output
    (out,) = (tmp_path / "results").iterdir()
    assert out.name.startswith("sched-report-") and (out / "persephone.md").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]      # no docs/ (the old default)
    assert f"report: {Path('results') / out.name / 'persephone.md'}" in res.stdout
    assert "ran: " in res.stdout and "reused: nothing" in res.stdout
    assert "Nothing was reused" in (out / "persephone.md").read_text()
    # the same directory again: its simulations are reused, and both the terminal and the header say so
    res = invoke("sched", "report", "--quick", "--no-live", "--jobs", 1, "--out", out)
    assert res.exit_code == 0, res.output
    reused = [line for line in res.stdout.splitlines() if line.startswith("reused: ")]
    assert len(reused) == 4 and all("persephone" in line and "summary.json" in line for line in reused), reused
    header = (out / "persephone.md").read_text().split("\n## ")[0]
    assert "Reused from an earlier run in this directory" in header
    assert "points of disp2, sbim2, tpcc, rocksdb (made 20" in header
    assert "`persephone/<workload>/summary.json`" in header
    # --no-reuse redoes them
    res = invoke("sched", "report", "--quick", "--no-live", "--jobs", 1, "--out", out, "--no-reuse")
    assert res.exit_code == 0 and "reused: nothing" in res.stdout


def test_serve_and_load_talk_over_loopback():
    from tailgate.dispatch.live.process import ServerProcess

    with ServerProcess("cfcfs", "disp2", 2, worker_kind="sleep") as srv:
        res = invoke("sched", "load", "-n", 2, "--port", srv.port, "--duration", 0.5, "--run-scale", 100,
                     "--load", 0.3, "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["answered"] == s["n_requests"] > 0 and s["lost"] == 0
    assert srv.stats["completed"] == s["n_requests"]
    assert s["server"]["workload"] == "disp2" and s["server"]["policy"] == "cfcfs"     # the hello matched


def test_short_darc_runs_warn_that_profiling_is_measured():
    res = invoke("sched", "sim", "-p", "darc", "--load", "0.5", "--requests", 2000, "--json")
    assert res.exit_code == 0 and "darc runs c-FCFS for its first 50,000 completions" in res.stderr
    res = invoke("sched", "sim", "-p", "darc", "--load", "0.5", "--requests", 2000, "--json",
                 "--param", "darc.resa_samples=100")
    assert res.exit_code == 0 and "note:" not in res.stderr


def test_load_refuses_a_server_of_another_size_in_one_line_unless_forced():
    from tailgate.dispatch.live.process import ServerProcess

    with ServerProcess("cfcfs", "disp2", 2, worker_kind="sleep") as srv:
        res = invoke("sched", "load", "-n", 4, "--port", srv.port, "--duration", 0.3, "--run-scale", 100,
                     "--load", 0.3, "--json")
        forced = invoke("sched", "load", "-n", 4, "--port", srv.port, "--duration", 0.3, "--run-scale", 100,
                        "--load", 0.3, "--json", "--force")
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: load: not sized for the server") and "\n" not in err
    assert "the server has 2 workers, this client was told --workers 4" in err
    assert forced.exit_code == 0, forced.output
    s = json.loads(forced.stdout)
    assert s["answered"] == s["n_requests"] and s["server"]["n_workers"] == 2
    assert srv.stats["accepted"] == s["n_requests"]          # the refused run sent nothing
