"""The reproduction report, on one small case (the full report is `tailgate batchy report`)."""
import json
import re

from typer.testing import CliRunner

from tailgate.bench import batchy_report
from tailgate.bench.batchy_report import build_report


def test_quick_report_writes_tables_plots_and_results(tmp_path):
    md = tmp_path / "batchy.md"
    seen = []
    res = build_report(md, quick=True, cases=[("simple_pipeline", {"delay_slo1": 5_000, "delay_slo2": 100_000})],
                       progress=lambda i, n, what: seen.append((i, n, what)))
    text = md.read_text()
    assert "## simple_pipeline" in text and "| projgrad |" in text and "| max |" in text
    runs = res["simple_pipeline"]["virtual"]
    assert set(runs) == {"null", "max", "onoff", "projgrad"}
    assert all("error" not in s for s in runs.values()), runs
    # max ignores the tight 5 us objective of flow1; projgrad keeps it and still beats null
    assert runs["max"]["flows"]["flow1"]["violations"] > 0
    assert runs["projgrad"]["flows"]["flow1"]["delay_ns"] <= 5_000 * 1.05
    assert runs["projgrad"]["sum_fpps"] > runs["null"]["sum_fpps"]
    assert json.loads((tmp_path / "batchy" / "results.json").read_text())["simple_pipeline"]["virtual"]["null"]
    assert (tmp_path / "batchy" / "simple_pipeline" / "virtual-projgrad" / "simple_pipeline.png").exists()
    assert seen and seen[-1][1] == 4


def test_the_report_states_its_date_and_machine_and_its_links_resolve(tmp_path):
    md = tmp_path / "any" / "dir" / "batchy.md"
    build_report(md, quick=True, cases=[("dag_test", {"delay_slo1": 12_000, "delay_slo2": 15_000})])
    text = md.read_text()
    header = text.split("\n## ")[0]
    assert "Ran on 20" in header and " CPUs (" in header and "Nothing was reused" in header
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links and all((md.parent / link).is_file() for link in links), links


def test_cli_report_writes_a_results_dir_by_default_never_docs(tmp_path, monkeypatch):
    from tailgate.cli import app

    monkeypatch.setattr(batchy_report, "CASES", [("dag_test", {"delay_slo1": 12_000, "delay_slo2": 15_000})])
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["batchy", "report", "--quick"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]      # no docs/ (the old default)
    (out,) = (tmp_path / "results").iterdir()
    assert out.name.startswith("batchy-report-") and (out / "batchy.md").is_file()
    assert (out / "batchy" / "results.json").is_file()
    assert f"report: {out.relative_to(tmp_path) / 'batchy.md'}" in res.stdout
    assert "ran: 20" in res.stdout and "reused: nothing" in res.stdout
    # --out FILE.md names the report itself (plots beside it)
    res = CliRunner().invoke(app, ["batchy", "report", "--quick", "--out", "other/x.md"])
    assert res.exit_code == 0 and (tmp_path / "other" / "x.md").is_file(), res.output
    assert (tmp_path / "other" / "batchy" / "results.json").is_file()


def test_cli_report_refuses_an_out_that_is_a_file_in_one_line(tmp_path):
    from tailgate.cli import app

    (tmp_path / "taken").write_text("")
    res = CliRunner().invoke(app, ["batchy", "report", "--quick", "--out", str(tmp_path / "taken")])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: --out ") and "is not a directory" in err and "\n" not in err


def test_cli_report_off_a_terminal_prints_one_line_per_run_and_one_infeasible_table(tmp_path, monkeypatch, caplog):
    import logging

    from tailgate.cli import app

    monkeypatch.setattr(batchy_report, "CASES", [("rc_static", {"delay_bound1": 35_000})])
    logger = logging.getLogger("tailgate.batchy")
    before = logger.level
    with caplog.at_level(logging.DEBUG):
        res = CliRunner().invoke(app, ["batchy", "report", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    # not a terminal: a plain line per finished run, numbered, with its ratio to null and late count
    lines = re.findall(r"^\[(\d+)/4\] rc_static virtual (\w+): ([\d.]+)x null, (\d+) late$", res.stderr, re.MULTILINE)
    assert [(i, c) for i, c, _, _ in lines] == [("1", "null"), ("2", "max"), ("3", "onoff"), ("4", "projgrad")]
    assert lines[0][2] == "1.00"
    # the null controller cannot meet the robot flow's objective: one table at the end, no per-round warnings
    assert res.stdout.count("infeasible objectives") == 1
    row = next(line.split() for line in res.stdout.splitlines() if line.startswith("rc_static"))
    assert row[:5] == ["rc_static", "virtual", "null", "robot", "35000"] and int(row[5]) > 35_000
    assert "is infeasible" not in res.output
    assert not [r for r in caplog.records if r.name.startswith("tailgate.batchy") and r.levelno >= logging.WARNING]
    assert logger.level == before           # a later `tailgate run` logs its warnings again
    md = (tmp_path / "batchy.md").read_text()
    assert md.count("## Infeasible objectives") == 1 and "| rc_static | virtual | null | robot | 35,000 |" in md


def test_run_line_names_the_run_its_ratio_to_null_and_its_late_rounds():
    from tailgate.bench.batchy_report import run_line

    null = {"sum_fpps": 100.0, "flows": {}}
    s = {"sum_fpps": 217.0, "flows": {"a": {"violations": 0}, "b": {"violations": 2}}}
    assert run_line(12, 56, "l2l3 virtual projgrad", s, null) == "[12/56] l2l3 virtual projgrad: 2.17x null, 2 late"
    assert run_line(1, 4, "x virtual null", {"error": "ValueError: bad"}, None) == "[1/4] x virtual null: error: ValueError: bad"


def _run(sum_fpps, late=0, settled=2, delay=500.0, infeasible=None, scale=10.0):
    return {"sum_fpps": sum_fpps, "converged_round": settled, "rate_settled_round": 5, "slo_scale": scale,
            "rate_scale": 1.0, "infeasible": infeasible or {},
            "flows": {"f": {"delay_ns": delay, "delay_slo_ns": 1000.0, "violations": late}}}


def _with_passes(runs):
    return {**runs[-1], "passes": runs}


def _wall_results():
    """Three wall runs of one pipeline (and its virtual run) with numbers that differ per run."""
    null = [_run(100.0), _run(110.0), _run(90.0)]
    pg = [_run(420.0, late=0), _run(495.0, late=1, settled=20), _run(180.0, late=3, settled=4)]
    mx = [_run(460.0, delay=600.0), _run(500.0, delay=1300.0), _run(200.0, delay=900.0)]
    on = [_run(100.0), _run(110.0), _run(90.0)]
    virtual = {"null": _run(1000.0, scale=1.0), "max": _run(2210.0, delay=5130.0, scale=1.0),
               "onoff": _run(1000.0, scale=1.0), "projgrad": _run(2170.0, delay=940.0, scale=1.0)}
    wall = {"null": _with_passes(null), "max": _with_passes(mx), "onoff": _with_passes(on),
            "projgrad": _with_passes(pg)}
    return {"mgw": {"virtual": virtual, "wall": wall}}


def test_wall_tables_give_the_median_and_range_over_the_runs():
    from tailgate.bench.batchy_report import _markdown, provenance

    cases = [("mgw", {"delay_slo": 193_342})]
    md = _markdown(_wall_results(), ("virtual", "wall"), False, provenance(), 3, cases)
    # projgrad x null per run: 4.20, 4.50, 2.00 -> median 4.20, range 2.00-4.50; late 0, 1, 3; settled 2, 20, 4
    assert "| mgw | wall | 4.20 (2.00–4.50) | 1 (0–3) | 4 (2–20) | 0.90 (0.60–1.30) | – |" in md
    assert "| mgw | virtual | 2.17 | 0 | 2 | 5.13 | – |" in md              # the virtual row as one run
    assert "**wall clock** (3 runs; objectives × 10.0, " in md
    assert "| projgrad | 0.000 | 4.20 (2.00–4.50) |" in md             # Mpps: all 0.000 as written
    assert "median over 3 runs" in md
    # the prose's wall numbers are this run's, not a fixed text
    assert "`projgrad` reaches 4.20 (2.00–4.50)× `null` there, `max` 4.55 (2.22–4.60)×" in md
    assert "with 1 (0–3) late flow-rounds" in md


def test_spread_formats_median_range_and_missing_values():
    from tailgate.bench.batchy_report import spread

    assert spread([1.0, 3.0, 2.0]) == "2.00 (1.00–3.00)"
    assert spread([2.0, 2.0, 2.0]) == "2.00"
    assert spread([4, None, 6], lambda v: f"{v:g}") == "5 (4–6), None in 1"
    assert spread([None]) == "None" and spread([]) == "–"


def test_the_reference_table_sets_the_sheet_beside_tailgate_and_marks_what_it_lacks():
    from tailgate.bench.batchy_report import CASES, REFERENCE, reference_table

    assert set(REFERENCE) == {c for c, _ in CASES}
    assert all(len(v) == 2 and v[1] for ref in REFERENCE.values() for v in ref.values())   # (value, citation)
    L = reference_table(_wall_results(), ("virtual", "wall"), [("mgw", {"delay_slo": 193_342})])
    row = next(line for line in L if line.startswith("| mgw |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:6] == ["mgw", "193,342", "193,342", "2–3× over prior work", "2.17", "4.20 (2.00–4.50)"]
    assert cells[6] == "–" and cells[8] == "–"                         # the sheet has no rate or settling for MGW
    assert any(line.startswith("- mgw: objective: §13") for line in L)


def test_cli_report_takes_wall_runs_and_refuses_fewer_than_one(tmp_path, monkeypatch):
    from tailgate.cli import app
    from tailgate.cli import batchy as cli_batchy

    res = CliRunner().invoke(app, ["batchy", "report", "--wall-runs", "0", "--out", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.strip().startswith("error: --wall-runs 0: must be at least 1")
    seen = {}

    def fake(md, **kw):
        seen.update(kw)
        return {}

    monkeypatch.setattr(cli_batchy, "build_report", fake)
    res = CliRunner().invoke(app, ["batchy", "report", "--clock", "wall", "--wall-runs", "5", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert seen["wall_runs"] == 5 and seen["clocks"] == ("wall",)
    res = CliRunner().invoke(app, ["batchy", "report", "--out", str(tmp_path)])
    assert seen["wall_runs"] == 3                                        # the default: a range over 3 runs


def test_the_report_writes_its_provenance(tmp_path):
    build_report(tmp_path / "batchy.md", quick=True, cases=[("dag_test", {"delay_slo1": 12_000, "delay_slo2": 15_000})])
    p = json.loads((tmp_path / "batchy" / "provenance.json").read_text())
    assert p["date"].startswith("20") and p["cpu_count"] and p["clocks"] == ["virtual"]
