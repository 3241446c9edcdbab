"""``tailgate faas report``: the paper's experiment simulated beside the artifact's table, and a live check."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tailgate.bench.faas_report import (BREAKDOWN, CPU_P98_REDUCTION, IO_P98_REDUCTION, LIVE_STRATEGIES, REFERENCE,
                                        SANDBOX_RATIO, WITHIN, aggregate, criteria, fib_shift, live_pcts, markdown,
                                        overhead_markdown, simulated)
from tailgate.measure.percentile import percentiles
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


@pytest.mark.slow  # ~1-2 min: a profile and five live gateways (make test-slow)
def test_live_quick_compares_the_gateway_with_the_simulator(tmp_path):
    pytest.importorskip("moto")
    res = CliRunner().invoke(app, ["faas", "report", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "faasbatch" / "live.json").read_text())
    assert [(r["kind"], r["strategy"]) for r in rows] == [("io", s) for s in LIVE_STRATEGIES]
    for r in rows:
        assert r["ok"] == r["invocations"] == 12  # real put/get against the local S3 server, all answered
        assert r["live_e2e_p50_ms"] > 0 and r["sim_e2e_p50_ms"] > 0
        assert r["within"] == (abs(r["diff_p50"]) <= WITHIN and abs(r["diff_p98"]) <= WITHIN)
        assert all(r[f"live_{c}_p50_ms"] is not None and r[f"live_{c}_p98_ms"] >= r[f"live_{c}_p50_ms"]
                   for c in BREAKDOWN)
    assert rows[1]["gateway"]["predictor"] == "perfect"  # Kraken, calibrated from the Vanilla run before it
    assert rows[1]["gateway"]["calibrated_from"].endswith("serve-vanilla")
    assert rows[4]["gateway"]["slo_s"] > 0
    assert (tmp_path / "faasbatch" / "profile.json").exists()
    assert (tmp_path / "faasbatch" / "live-io" / "run1" / "serve-faasbatch" / "summary.json").exists()
    assert [r["run"] for r in json.loads((tmp_path / "faasbatch" / "live_runs.json").read_text())] == [1] * 5
    crit = json.loads((tmp_path / "faasbatch" / "criteria.json").read_text())
    assert len(crit) == 6 and all(c["met"] in (True, False) for c in crit[:5]) and crit[5]["met"] is None
    text = (tmp_path / "faasbatch.md").read_text()
    assert "## Live against the simulator" in text and "| io | faasbatch | 12 of 12 |" in text
    assert "| io | kraken (perfect) | 12 of 12 |" in text
    assert "## The issue's live criteria" in text and "## Gateway overhead" in text
    ov = json.loads((tmp_path / "faasbatch" / "overhead" / "overhead.json").read_text())
    assert ov["client"]["sent"] == ov["client"]["invocations"] > 0 and ov["overhead_ms"]["p50"] >= 0


def _row(kind, strategy, e2e_p98, sandboxes=10, mem=None, **comp):
    """A live row as :func:`live` writes it, the breakdown from ``comp`` (p98; p50 half of it)."""
    r = {"kind": kind, "strategy": strategy, "invocations": 400, "ok": 400, "live_sandboxes": sandboxes,
         "sim_sandboxes": sandboxes, "live_batches": 50, "live_mem_per_invocation_mb": mem,
         "sim_mem_per_invocation_mb": mem, "gateway": {}, "live_e2e_p50_ms": e2e_p98 / 2,
         "live_e2e_p98_ms": e2e_p98, "sim_e2e_p50_ms": e2e_p98 / 2, "sim_e2e_p98_ms": e2e_p98, "diff_p50": 0.0,
         "diff_p98": 0.0, "within": True}
    for c in BREAKDOWN:
        v = comp.get(c, 1.0)
        r[f"live_{c}_p50_ms"], r[f"live_{c}_p98_ms"] = v / 2, v
        r[f"sim_{c}_p50_ms"], r[f"sim_{c}_p98_ms"] = v / 2, v
    return r


def _live_part(rows, kinds=("io", "cpu")):
    return {"profile": {}, "rows": rows, "cores": 2, "interval_s": 0.2, "kinds": list(kinds)}


RAN = {"date": "2026-01-01 00:00 UTC", "cpu_model": "CPU X", "cpu_count": 2, "platform": "Linux"}


def test_criteria_are_computed_from_the_live_rows():
    rows = [_row("io", "vanilla", 1000.0, sandboxes=60, mem=14.9), _row("io", "kraken", 500.0),
            _row("io", "faasbatch", 200.0, sandboxes=10, mem=1.0), _row("io", "sfs", 1000.0),
            _row("cpu", "vanilla", 1000.0), _row("cpu", "faasbatch", 300.0)]
    got = {c["name"]: c for c in criteria(_live_part(rows))}
    assert [c["met"] for c in got.values()] == [True, False, True, True, True, True]
    assert got["I/O e2e p98, FaaSBatch vs Kraken"]["value"] == pytest.approx(0.6)
    assert got["I/O sandboxes, Vanilla / FaaSBatch"]["value"] == pytest.approx(6.0)
    assert got["I/O memory per invocation, FaaSBatch vs Vanilla"]["value"] == pytest.approx(13.9)
    assert got["CPU e2e p98, FaaSBatch vs Vanilla"]["value"] == pytest.approx(0.7)
    assert (IO_P98_REDUCTION, CPU_P98_REDUCTION, SANDBOX_RATIO) == (0.70, 0.60, 5.0)


def test_a_criterion_not_met_gets_its_breakdown_and_the_component_that_carries_it():
    rows = [_row("io", "vanilla", 2000.0, sandboxes=60, mem=14.9, schedule=900.0, exec=100.0),
            _row("io", "kraken", 500.0, queue=400.0, exec=100.0),
            _row("io", "faasbatch", 400.0, sandboxes=20, mem=20.0, schedule=150.0, exec=250.0),
            _row("io", "sfs", 2000.0), _row("cpu", "vanilla", 1000.0), _row("cpu", "faasbatch", 300.0)]
    text = markdown(simulated(quick=True), _live_part(rows), RAN, "tailgate faas report")
    sec = text.split("## The issue's live criteria")[1]
    assert "Met: 3 of 6." in sec
    assert "| I/O e2e p98, FaaSBatch vs Kraken | 400 ms | 500 ms | 20.0 % below | ≥ 70 % below | no |" in sec
    assert "| I/O sandboxes, Vanilla / FaaSBatch | 20 | 60 | 3.0× fewer | ≥ 5× fewer | no |" in sec
    assert "| I/O memory per invocation, FaaSBatch vs Vanilla | 20.00 MB | 14.90 MB | 5.10 MB higher | lower | no |" in sec
    kraken = sec.split("**I/O e2e p98, FaaSBatch vs Kraken: not met.**")[1].split("**")[0]
    assert "| faasbatch | 75.0 / 150 | 0.5 / 1.0 | 0.5 / 1.0 | 125 / 250 | 0.5 / 1.0 | 200 / 400 |" in kraken
    assert "the bound needs ≤ 150 ms (250 ms less)" in kraken
    assert "differ most in queue (Kraken 400 ms, FaaSBatch 1.0 ms: FaaSBatch's 399 ms shorter)" in kraken
    assert "FaaSBatch's own p98 is carried by exec (250 ms)" in kraken
    assert "Vanilla created 60 sandboxes for 400 answered invocations, FaaSBatch 20 over 50 batches (3.0×" in sec
    assert "**I/O e2e p98, FaaSBatch vs Vanilla" not in sec  # met: no breakdown


def test_a_criterion_whose_run_is_missing_says_so_instead_of_a_verdict():
    rows = [_row("io", "vanilla", 1000.0, sandboxes=60, mem=14.9),
            {"kind": "io", "strategy": "kraken", "invocations": 400, "error": "the gateway (kraken) did not start: x"},
            _row("io", "faasbatch", 200.0, sandboxes=10, mem=1.0), _row("io", "sfs", 1000.0)]
    live_part = _live_part(rows, kinds=("io",))
    got = {c["name"]: c for c in criteria(live_part)}
    assert got["I/O e2e p98, FaaSBatch vs Kraken"]["met"] is None
    assert got["CPU e2e p98, FaaSBatch vs Vanilla"]["missing"] == "CPU not run live (--quick runs I/O only)"
    text = markdown(simulated(quick=True), live_part, RAN, "tailgate faas report")
    assert "| io | kraken | not run: the gateway (kraken) did not start: x |" in text
    assert "| I/O e2e p98, FaaSBatch vs Kraken | – | – | – | ≥ 70 % below | not measured: Kraken not run" in text
    assert "Within 15% at both p50 and p98: 3 of 3 points." in text


def test_the_overhead_section_gives_the_bound_the_accounting_and_the_clients_verdict():
    ov = {"rate_per_s": 2000.0, "duration_s": 30.0, "interval_s": 0.2, "holds": False,
          "overhead_ms": {"p50": 101.5, "p98": 230.0}, "bound_ms": 202.0, "p50_within_bound": True,
          "client": {"invocations": 60000, "sent": 60000, "ok": 59990, "failed": 0, "timeout": 10, "error": 0,
                     "unsent": 0, "answered": 59990},
          "gateway": {"accepted": 60000, "completed": 59990, "failed": 0, "abandoned": 10, "in_flight": 0,
                      "counted": 60000},
          "nothing_lost": False, "lost_reasons": ["10 timed out and 0 hit a connection error at the client"],
          "send_lag_ms": {"p50": 0.2, "p99": 3.0, "max": 9.0}, "client_trustworthy": False,
          "client_verdict": "p99 send lag 3.000 ms > 1 ms", "scheduled_rate_per_s": 2000.0,
          "achieved_rate_per_s": 1990.0, "answered_rate_per_s": 1980.0}
    text = "\n".join(overhead_markdown(ov))
    assert "The must-show does not hold." in text
    assert "| overhead p50 | 101.50 ms | ≤ 202 ms (di + 2 ms) | yes |" in text
    assert "| client: sent = ok + failed + timeout + error | 60,000 = 59,990 + 0 + 10 + 0 (unsent 0 of 60,000) |" \
           " every one answered | no |" in text
    assert "| gateway: accepted = completed + failed + abandoned | 60,000 = 59,990 + 0 + 10 (in flight 0) |" \
           " every one counted | yes |" in text
    assert "not trustworthy (p99 send lag 3.000 ms > 1 ms)" in text
    assert overhead_markdown(None) == []
    assert overhead_markdown({"error": "faas overhead: boom"}) == ["## Gateway overhead", "",
                                                                    "Not run: faas overhead: boom", ""]


def test_live_percentiles_are_nearest_rank_as_the_loader_reports():
    v = np.random.default_rng(1).exponential(100.0, 401)
    assert live_pcts(v) == tuple(float(x) for x in percentiles(v, [50, 98]))
    assert live_pcts(np.array([np.nan])) == (None, None)


def test_the_live_faasbatch_slo_intervals_come_from_the_gateways_metrics():
    from tailgate.bench.faas_report import _gateway_said
    m = {"gateway_metrics": {"strategy": {"strategy": "faasbatch-slo", "slo_s": 1.0},
                             "functions": {"s3io_0": {"interval_s": 0.5}, "s3io_1": {"interval_s": 0.31}}}}
    assert _gateway_said(m) == {"slo_s": 1.0, "chosen_interval_s": {"s3io_0": 0.5, "s3io_1": 0.31}}
    plain = {"gateway_metrics": {"strategy": {"strategy": "faasbatch"}, "functions": {"f": {"interval_s": 0.2}}}}
    assert _gateway_said(plain) == {}  # a fixed interval is no choice


def test_a_faasbatch_p98_above_the_baseline_reads_above():
    rows = [_row("io", "vanilla", 1000.0, sandboxes=60, mem=14.9), _row("io", "kraken", 500.0),
            _row("io", "faasbatch", 200.0, sandboxes=10, mem=1.0), _row("io", "sfs", 1000.0),
            _row("cpu", "vanilla", 1000.0), _row("cpu", "faasbatch", 1300.0)]
    text = markdown(simulated(quick=True), _live_part(rows), RAN, "tailgate faas report")
    assert "| CPU e2e p98, FaaSBatch vs Vanilla | 1,300 ms | 1,000 ms | 30.0 % above | ≥ 60 % below | no |" in text


def _runs(*p98s_per_strategy):
    """Run rows: for each (kind, strategy, [p98 per run]) one row per run (run numbers from 1)."""
    out = []
    for kind, strategy, p98s in p98s_per_strategy:
        for k, v in enumerate(p98s, 1):
            out.append({**_row(kind, strategy, v, sandboxes=60 if strategy == "vanilla" else 10,
                               mem=14.9 if strategy == "vanilla" else 1.0), "run": k})
    return out


def test_runs_aggregate_to_medians_with_their_range_and_the_simulator_is_checked_against_both():
    rows = _runs(("io", "vanilla", [1000.0, 1400.0, 1100.0]), ("io", "faasbatch", [200.0, 260.0, 140.0]))
    for r in rows:  # the simulator says 1,000 / 400 for every run
        r["sim_e2e_p98_ms"], r["sim_e2e_p50_ms"] = (1000.0, 550.0) if r["strategy"] == "vanilla" else (400.0, 100.0)
    rows.append({"run": 4, "kind": "io", "strategy": "faasbatch", "invocations": 400, "error": "did not start"})
    agg = {r["strategy"]: r for r in aggregate(rows)}
    v, fb = agg["vanilla"], agg["faasbatch"]
    assert v["live_e2e_p98_ms"] == 1100.0 and v["live_e2e_p98_runs"] == [1000.0, 1400.0, 1100.0]
    assert v["runs"] == 3 and v["errors"] == 0 and v["ok_total"] == 1200 and v["ok"] == 400
    assert v["diff_p98"] == pytest.approx(1000.0 / 1100.0 - 1) and v["within"] is True and v["in_range_p98"] is True
    assert fb["runs"] == 3 and fb["errors"] == 1 and fb["live_e2e_p98_ms"] == 200.0
    assert fb["diff_p98"] == pytest.approx(1.0) and fb["within"] is False
    assert fb["in_range_p98"] is False  # 400 > 260 x 1.15
    assert fb["live_e2e_p50_ms"] == 100.0 and fb["in_range_p50"] is True
    none = aggregate([{"run": 1, "kind": "io", "strategy": "sfs", "invocations": 4, "error": "x"}])
    assert none == [{"kind": "io", "strategy": "sfs", "invocations": 4, "error": "x", "errors": 1}]


def test_criteria_over_runs_take_the_medians_and_say_how_many_runs_met_each():
    run_rows = _runs(("io", "vanilla", [1000.0, 1000.0, 1000.0]), ("io", "kraken", [1000.0] * 3),
                     ("io", "faasbatch", [200.0, 400.0, 250.0]), ("io", "sfs", [1000.0] * 3))
    part = {**_live_part(aggregate(run_rows), kinds=("io",)), "run_rows": run_rows, "runs": 3}
    got = {c["name"]: c for c in criteria(part)}
    c = got["I/O e2e p98, FaaSBatch vs Vanilla"]
    assert c["faasbatch"] == 250.0 and c["met"] is True and (c["met_runs"], c["runs"]) == (2, 3)
    assert c["value_runs"] == pytest.approx([0.8, 0.6, 0.75])
    text = markdown(simulated(quick=True), part, RAN, "tailgate faas report")
    assert "| I/O e2e p98, FaaSBatch vs Vanilla | 250 ms | 1,000 ms | 75.0 % below | ≥ 70 % below | yes | 2 of 3 |" in text
    assert "each value the median over 3 runs" in text
    assert "| io | faasbatch | 1200 of 1200 | 10 / 10 | 125 (100–200) |" in text
    assert text.count(" in range |") == 1


def test_the_cpu_trace_is_lowered_to_the_papers_share_of_the_machine():
    assert fib_shift(32) == 0 and fib_shift(64) == 0
    assert fib_shift(2) == 6 and fib_shift(1) == 7 and fib_shift(8) == 3


@pytest.mark.parametrize("args, said", [(["--live-runs", "0"], "--live-runs 0: give 1 to 20"),
                                        (["--cpu-sandbox", "vm"], "--cpu-sandbox 'vm': must be one of")])
def test_cli_refuses_bad_live_arguments_in_one_line(tmp_path, args, said):
    res = CliRunner().invoke(app, ["faas", "report", "--out", str(tmp_path), *args])
    assert res.exit_code != 0 and said in res.output and "Traceback" not in res.output
