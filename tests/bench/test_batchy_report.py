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
