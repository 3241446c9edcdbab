"""The reproduction report: one call writes the markdown, its figures and data."""
import json
import re

from tailgate.bench.sched_report import WORKLOADS, make_report


def test_report_writes_every_section(tmp_path):
    report = make_report(tmp_path, quick=True, live=False, n_requests=6_000, loads="0.4,0.8", say=lambda m: None,
                         jobs=1)
    assert report.path == tmp_path / "persephone.md" and report.reused == {}
    md = report.path.read_text()
    for title in ("## Headline", "vs the reference sheet", "## Highest load sustained", "## Workload changes over time",
                  "## Live, on this machine"):
        assert title in md
    for name in WORKLOADS:
        assert (tmp_path / "persephone" / name / "slowdown.png").exists()
        summary = json.loads((tmp_path / "persephone" / name / "summary.json").read_text())
        assert len(summary["points"]) == 2 * 7
    assert (tmp_path / "persephone" / "phased.png").exists() and (tmp_path / "persephone" / "static.png").exists()
    assert "## Statically reserved short cores" in md
    # DARC's online reservation for High Bimodal matches the sheet even in a small run.
    assert "| disp2 | SHORT | 1 | 1 | 0.14 | yes |" in md
    assert "| tpcc | NewOrder | 6 | 6 | 6.46 | yes |" in md
    # the match with the reference is stated per mode: declared (oracle) and profiled online
    block = md.split("<!-- reservations: begin -->\n")[1].split("\n<!-- reservations: end -->")[0]
    assert block.startswith("Declared (`profile=oracle`): DARC's reservations match the reference sheet's for all 4 "
                            "workloads. Profiled online at 80 % load: they match for ")
    online_rows = [r for r in md.splitlines() if r.startswith("| ") and r.endswith(("| yes |", "| **no** |"))]
    n_online = sum(1 for name in WORKLOADS if all(r.endswith("| yes |") for r in online_rows if r.startswith(f"| {name} |")))
    assert (f"they match for all 4 workloads" if n_online == 4 else f"they match for {n_online} of 4 workloads") in block
    # the side-by-side table: the sheet's figures with where they come from, "–" where it has none
    side = md.split("## Side by side with the reference")[1].split("\n## ")[0]
    assert "| disp2 | p99.9 slowdown at 90 % | Perséphone c-FCFS | ≈ 110 | §14" in side
    assert "| disp2 | p99.9 slowdown at 90 % | Perséphone DARC | – |" in side
    assert "| sbim2 | highest load | Shinjuku (time slicing) | ≤ 60 % |" in side
    # the prose's re-reservation counts are the phase run's, not a number written once
    from tailgate.bench.sched_report import SMOOTHED, phase_counts
    phased = json.loads((tmp_path / "persephone" / "phased.json").read_text())
    plain, smooth = phase_counts(phased, "darc"), phase_counts(phased, SMOOTHED)
    assert f"| no smoothing | {' | '.join(map(str, plain))} | {sum(plain)} |" in md
    assert f"in the phase run, {sum(plain)} re-reservations without it, {sum(smooth)} with it" in md
    assert "from 303 to 15" not in md
    prov = json.loads((tmp_path / "persephone" / "provenance.json").read_text())
    assert prov["date"] == report.ran["date"] and prov["live_runs"] == 0 and prov["reused"] == {}


def test_a_second_run_reuses_identical_simulations_and_says_so(tmp_path):
    said = []
    kw = dict(quick=True, live=False, n_requests=3_000, loads="0.5", jobs=1)
    first = make_report(tmp_path, say=said.append, **kw)
    first_md = first.path.read_text()
    assert first.reused == {} and "Nothing was reused" in first_md
    assert first.reuse_lines() == ["reused: nothing; every experiment ran now"]
    said.clear()
    second = make_report(tmp_path, say=said.append, **kw)
    assert sum("reusing" in m for m in said) == len(WORKLOADS)
    assert set(second.reused) == set(WORKLOADS)
    assert second.reused["disp2"]["from"] == str(tmp_path / "persephone" / "disp2" / "summary.json")
    assert second.reused["disp2"]["provenance"] == first.ran            # the earlier run's date and machine
    header = second.path.read_text().split("\n## ")[0]
    assert "Reused from an earlier run in this directory" in header and first.ran["date"] in header
    assert all(name in line and "summary.json" in line and first.ran["date"] in line
               for name, line in zip(WORKLOADS, second.reuse_lines()))
    # the same results, only the header differs
    assert second.path.read_text().split("\n## ", 1)[1] == first_md.split("\n## ", 1)[1]
    said.clear()
    third = make_report(tmp_path, say=said.append, **{**kw, "n_requests": 3_001})
    assert not any("reusing" in m for m in said) and third.reused == {}


def test_reuse_is_only_from_the_output_directory(tmp_path):
    kw = dict(quick=True, live=False, n_requests=3_000, loads="0.5", say=lambda m: None, jobs=1)
    make_report(tmp_path / "a", **kw)
    elsewhere = make_report(tmp_path / "some" / "where", **kw)
    assert elsewhere.reused == {}
    # the report's links are relative: they resolve wherever it is written
    links = re.findall(r"\]\(([^)]+)\)", elsewhere.path.read_text())
    assert links and all(not link.startswith(("/", "docs/")) and (elsewhere.path.parent / link).is_file()
                         for link in links), links
    # an earlier run that left no provenance record is still named, as unrecorded
    (tmp_path / "a" / "persephone" / "tpcc" / "provenance.json").unlink()
    again = make_report(tmp_path / "a", **kw)
    assert again.reused["tpcc"]["provenance"] is None
    assert "tpcc (made at an unrecorded date, on an unrecorded machine)" in again.path.read_text()



def test_cli_report_takes_live_runs_and_refuses_fewer_than_one(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from tailgate.cli import app
    from tailgate.cli import sched as cli_sched

    res = CliRunner().invoke(app, ["sched", "report", "--live-runs", "0", "--out", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.strip().startswith("error: --live-runs 0: must be at least 1"), res.output
    seen = {}

    def fake(out, **kw):
        seen.update(kw)
        from tailgate.bench.sched_report import Report
        return Report(tmp_path / "persephone.md", {"date": "2026-01-01 00:00 UTC"})

    monkeypatch.setattr(cli_sched, "make_report", fake)
    res = CliRunner().invoke(app, ["sched", "report", "--live-runs", "5", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert seen["live_runs"] == 5
    CliRunner().invoke(app, ["sched", "report", "--out", str(tmp_path)])
    assert seen["live_runs"] == 3
