"""``tailgate bench --markdown``: N runs as one dated Markdown file, medians and ranges, same-run ratios."""
import json
import re

import pytest
from typer.testing import CliRunner

from tailgate.bench.markdown import block, fmt3, numbers, render, replace_block, summarize
from tailgate.cli.main import app
from tailgate.core.errors import ArgError

RUNNER = CliRunner()


def invoke(*args):
    return RUNNER.invoke(app, list(args))


def _packet_run(scale: float) -> list[dict]:
    dpkt = 0.1 * scale
    return [{"name": "l2l3", "impl": "dpkt", "batch": 1, "mpps": dpkt, "packets": 10, "seconds": 1.0},
            {"name": "l2l3", "impl": "tailgate", "batch": 256, "mpps": 12.0 * scale ** 2, "packets": 10,
             "seconds": 1.0, "x_dpkt": 12.0 * scale ** 2 / dpkt}]


def test_summary_gives_median_range_and_the_per_run_ratio():
    runs = [_packet_run(1.0), _packet_run(2.0), _packet_run(0.5)]
    rows = {(r["impl"], r["batch"]): r for r in summarize(runs)}
    tg, dp = rows["tailgate", 256], rows["dpkt", 1]
    assert tg["mpps"] == {"median": 12.0, "min": 3.0, "max": 48.0, "n": 3}
    # the ratio of each run to that run's own baseline (120, 240, 60), not median over median
    assert tg["x_dpkt"] == {"median": 120.0, "min": 60.0, "max": 240.0, "n": 3}
    assert dp["x_dpkt"]["median"] == 1.0 and tg["runs"] == dp["runs"] == 3
    text = render(runs, command="tailgate bench --markdown --runs 3", ran={"date": "2026-12-07 15:00 UTC",
                  "cpu_model": "Test CPU", "cpu_count": 2, "platform": "Linux"},
                  versions={"python": "3.11.7", "numpy": "2.4.6", "numba": "0.68.1", "tailgate": "0.1.0"},
                  elapsed_s=30.0)
    assert "| l2l3 | tailgate | 256 | 12.0 | 3.00–48.0 | 120 | 60.0–240 |" in text
    assert "| l2l3 | dpkt | 1 | 0.100 | 0.0500–0.200 | 1 | baseline |" in text
    assert "2026-12-07 15:00 UTC on Test CPU, 2 CPUs (Linux)" in text and "numba 0.68.1" in text
    assert "`l2l3` at batch 256 ≥ 10 Mpps: met in 2 of 3 runs" in text


def test_fmt3_and_prose_numbers():
    got = [fmt3(x) for x in (14.04, 0.06861, 205.3, 92_512.0, 1.0, None)]
    assert got == ["14.0", "0.0686", "205", "92,500", "1.00", "–"]
    assert numbers("`l2l3` at L2L3 runs 14.0 Mpps (205×) on 10,000 prefixes, `--runs 3`") == {"14.0", "205", "10,000"}


def test_block_and_replace_block():
    text = "a\n<!-- bench:begin docs/bench.md -->\nold\n<!-- bench:end -->\nb\n"
    assert block(text) == "old"
    assert replace_block(text, "new\nrows") == "a\n<!-- bench:begin docs/bench.md -->\nnew\nrows\n<!-- bench:end -->\nb\n"
    with pytest.raises(ArgError, match="README.md: expected one"):
        block("no markers", "README.md")


def test_runs_zero_and_misused_options_are_refused_in_one_line():
    for args, msg in ((("--runs", "0"), "error: --runs 0: expected a whole number of runs >= 1"),
                      (("--markdown", "--runs", "-2"), "error: --runs -2: expected a whole number of runs >= 1"),
                      (("--out", "x"), "error: --out writes the Markdown file: it needs --markdown"),
                      (("--markdown", "--json"), "error: --markdown and --json: pick one")):
        res = invoke("bench", "--suite", "sched", *args)
        assert res.exit_code == 2, res.output
        assert res.output.strip().splitlines()[-1].startswith(msg), res.output
        assert "Traceback" not in res.output


def test_readme_without_block_is_refused_before_measuring(tmp_path, monkeypatch):
    import tailgate.cli.bench as cli_bench

    monkeypatch.setattr(cli_bench, "bench_sim", lambda quick: pytest.fail("measured before checking --readme"))
    readme = tmp_path / "README.md"
    readme.write_text("# no block\n")
    res = invoke("bench", "--markdown", "--suite", "sched", "--out", str(tmp_path), "--readme", str(readme))
    assert res.exit_code == 2
    assert f"--readme {readme}: expected one" in res.output


def test_markdown_quick_sched_two_runs_writes_dated_file_with_ranges_and_ratios(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- bench:begin docs/bench.md -->\n<!-- bench:end -->\ntail\n")
    res = invoke("bench", "--markdown", "--quick", "--runs", "2", "--suite", "sched", "--out", str(tmp_path),
                 "--readme", str(readme))
    assert res.exit_code == 0, res.output
    md = (tmp_path / "bench.md").read_text()
    assert f"wrote: {tmp_path / 'bench.md'}" in res.stdout and "| sched_sim |" in res.stdout
    head = block(md).splitlines()[0]
    assert head.startswith("`tailgate bench --markdown --runs 2 --suite sched --quick --out ")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC on .+, \d+ CPUs \(", head), head
    assert "Python " in head and "numpy " in head and "numba " in head and "2 runs in one process" in head
    rows = [ln for ln in md.splitlines() if ln.startswith("| sched_sim | ")]
    assert len(rows) == 4
    for ln in rows:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        median, (lo, hi) = float(cells[3].replace(",", "")), (float(v.replace(",", "")) for v in cells[4].split("–"))
        assert lo <= median <= hi
        if cells[2] == "tailgate":
            ratio = float(cells[5].replace(",", ""))
            r_lo, r_hi = (float(v.replace(",", "")) for v in cells[6].split("–"))
            assert r_lo <= ratio <= r_hi and ratio > 1 and cells[7] == "2 of 2 runs"
        else:
            assert cells[5:7] == ["1", "baseline"]
    raw = json.loads((tmp_path / "bench.json").read_text())
    assert len(raw["runs"]) == 2 and all(len(run) == 4 for run in raw["runs"])
    for run in raw["runs"]:   # each run's ratio is against the SimPy of that same run
        by = {(r["impl"], r["policy"]): r for r in run}
        for p in ("cfcfs", "darc"):
            ours, simpy = by["tailgate", p], by["simpy", p]
            assert ours["x_simpy"] == pytest.approx(ours["mreq_per_s"] / simpy["mreq_per_s"])
    assert raw["ran"]["cpu_model"] and raw["versions"]["numba"]
    assert block(readme.read_text()) == block(md) and readme.read_text().endswith("<!-- bench:end -->\ntail\n")


def test_json_with_several_runs_numbers_each_record(monkeypatch):
    import tailgate.cli.bench as cli_bench

    record = {"name": "sched_sim", "impl": "simpy", "mreq_per_s": 0.1}
    monkeypatch.setattr(cli_bench, "bench_sim", lambda quick: [record])
    res = invoke("bench", "--json", "--suite", "sched", "--runs", "2")
    assert res.exit_code == 0, res.output
    assert [r["run"] for r in json.loads(res.stdout)] == [1, 2]


def test_missing_baseline_package_is_one_line(monkeypatch):
    import tailgate.cli.bench as cli_bench

    def no_simpy(quick):
        raise ModuleNotFoundError("No module named 'simpy'", name="simpy")

    monkeypatch.setattr(cli_bench, "bench_sim", no_simpy)
    res = invoke("bench", "--suite", "sched")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.strip() == "error: bench --suite sched needs simpy (pip install 'tailgate[bench]')"


def test_live_records_show_no_send_lag_when_no_paced_step_was_answered_in_full(monkeypatch):
    from tailgate.bench import live

    monkeypatch.setattr(live, "bench_live", lambda **kw: {
        "policy": "cfcfs", "n_workers": 2, "target_rps": 50_000, "dispatch_rate_rps": 90_000.0,
        "open_loop_best_rps": 0.0, "send_lag_ns_at_best": None})
    closed, opened = live.bench_live_records(quick=True)
    assert closed["rps"] == 90_000.0 and opened["rps"] == 0.0 and opened["offered_max_rps"] == 20_000
    assert opened["send_lag_p50_us"] is None and opened["send_lag_p99_us"] is None   # not 0 µs
    text = render([[closed, opened]], command="c", ran={}, versions={}, elapsed_s=1.0)
    assert "| open_loop | cfcfs | 2 | 0 | 0–0 | – | – | – | – |" in text
    assert "closed loop ≥ 50,000 requests/s: met in 1 of 1 runs" in text
