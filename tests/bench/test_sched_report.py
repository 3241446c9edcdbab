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

