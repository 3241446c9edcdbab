"""``tailgate faas report``: the paper's experiment simulated beside the artifact's table, and a live check."""

import json

import pytest
from typer.testing import CliRunner

from tailgate.bench.faas_report import REFERENCE, WITHIN, markdown, simulated
from tailgate.cli.main import app


def test_reference_table_is_the_artifacts():
    assert len(REFERENCE) == 24 and not any(di == 0.05 for _, di, _ in REFERENCE)
    assert REFERENCE["io", 0.2, "faasbatch"] == {"n": 400, "containers": 14, "e2e_mean_ms": 258.8,
                                                 "e2e_p98_ms": 2109.3, "mem_mb": 0.6}
    assert REFERENCE["cpu", 0.5, "vanilla"]["e2e_p98_ms"] == 103323.9


def test_markdown_puts_every_point_beside_the_artifact_and_dashes_where_none():
    pts = [p for p in simulated(quick=True)]
    pts += [{**p, "interval_s": 0.05} for p in pts]
    text = markdown(pts, None, {"date": "2026-01-01 00:00 UTC", "cpu_model": "CPU X", "cpu_count": 2,
                                "platform": "Linux"}, "tailgate faas report --no-live --quick")
    assert "Written by `tailgate faas report --no-live --quick`, 2026-01-01 00:00 UTC on CPU X, 2 CPUs (Linux)" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| 0.2 | faasbatch |")]
    assert len(rows) == 2 and rows[0].endswith("| 45 | 1,136 | 7,025 | – |") and rows[1].endswith("| 14 | 259 | 2,109 | 0.6 |")
    at005 = [ln for ln in text.splitlines() if ln.startswith("| 0.05 | vanilla |")]
    assert at005 and all(ln.endswith("| – | – | – | – |") for ln in at005)
    assert "| 0.2 | " in text and "-78 %" in text  # the artifact's CPU P98 reduction vs Vanilla at 0.2 s
    assert "Not run (`--no-live`)." in text


def test_cli_no_live_quick_writes_the_report(tmp_path):
    res = CliRunner().invoke(app, ["faas", "report", "--no-live", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "faasbatch.md").read_text()
    assert text.startswith("# FaaSBatch") and " UTC on " in text.splitlines()[2]
    pts = json.loads((tmp_path / "faasbatch" / "simulated.json").read_text())
    assert {(p["kind"], p["strategy"]) for p in pts} == {(k, s) for k in ("cpu", "io")
                                                         for s in ("faasbatch", "vanilla", "kraken", "sfs")}
    assert all(f"{c}_p50_ms" in p and f"{c}_p98_ms" in p for p in pts
               for c in ("schedule", "cold_start", "queue", "exec", "e2e"))
    prov = json.loads((tmp_path / "faasbatch" / "provenance.json").read_text())
    assert prov["command"] == f"tailgate faas report --no-live --quick --out {tmp_path}"


def test_cli_refuses_an_out_that_is_a_file(tmp_path):
    f = tmp_path / "x"
    f.write_text("")
    res = CliRunner().invoke(app, ["faas", "report", "--no-live", "--quick", "--out", str(f)])
    assert res.exit_code == 2 and f"--out {f}: exists and is not a directory" in res.output


def test_live_quick_compares_the_gateway_with_the_simulator(tmp_path):
    pytest.importorskip("moto")
    res = CliRunner().invoke(app, ["faas", "report", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "faasbatch" / "live.json").read_text())
    assert [(r["kind"], r["strategy"]) for r in rows] == [("io", "faasbatch"), ("io", "vanilla")]
    for r in rows:
        assert r["ok"] == r["invocations"] == 12  # real put/get against the local S3 server, all answered
        assert r["live_e2e_p50_ms"] > 0 and r["sim_e2e_p50_ms"] > 0
        assert r["within"] == (abs(r["diff_p50"]) <= WITHIN and abs(r["diff_p98"]) <= WITHIN)
    assert (tmp_path / "faasbatch" / "profile.json").exists()
    assert (tmp_path / "faasbatch" / "live-io" / "serve-faasbatch" / "summary.json").exists()
    text = (tmp_path / "faasbatch.md").read_text()
    assert "## Live against the simulator" in text and "| io | faasbatch | 12 of 12 |" in text
