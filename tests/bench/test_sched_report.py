"""The reproduction report: one call writes the markdown, its figures and data."""
import json

from tailgate.bench.sched_report import WORKLOADS, make_report


def test_report_writes_every_section(tmp_path):
    path = make_report(tmp_path, quick=True, live=False, n_requests=6_000, loads="0.4,0.8", say=lambda m: None)
    md = path.read_text()
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


def test_a_second_run_reuses_identical_simulations(tmp_path):
    said = []
    kw = dict(quick=True, live=False, n_requests=3_000, loads="0.5")
    make_report(tmp_path, say=said.append, **kw)
    first = (tmp_path / "persephone.md").read_text()
    said.clear()
    make_report(tmp_path, say=said.append, **kw)
    assert sum("reusing" in m for m in said) == len(WORKLOADS)
    assert (tmp_path / "persephone.md").read_text().split("\n", 3)[3] == first.split("\n", 3)[3]
    said.clear()
    make_report(tmp_path, say=said.append, **{**kw, "n_requests": 3_001})
    assert not any("reusing" in m for m in said)
