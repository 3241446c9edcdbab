"""The reproduction report, on one small case (the full report is `tailgate batchy report`)."""
import json

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
