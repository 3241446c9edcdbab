"""What a run shows besides its numbers: module tables in data-flow order, a warning for a source
that fell behind its offered rate, the ``--plot`` picture, and what ``make demo`` installs."""

from __future__ import annotations

import io
import json
import re
import tomllib
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from tailgate.cli import app
from tailgate.run.progress import final_table, module_rows
from tailgate.run.results import dataflow_order
from tailgate.run.script import ScriptRun

ROOT = Path(__file__).resolve().parents[2]

# Created out of data-flow order: the sink first, the source last, a queue in the middle.
SHUFFLED = """
sink = Sink("sink")
merge = Merge("merge", inputs=2)
b = Bypass("b", t0_ns=10, t1_ns=1)
q = Queue("q", size=256)
a = Bypass("a", t0_ns=10, t1_ns=1)
split = WeightedRandomSplit("split", weights="1,1", seed=1)
src = Source("src", rate_pps=1e5, packets=400, flows=4, seed=1)
src >> split
split[0] >> a >> merge.input(0)
split[1] >> q >> b >> merge.input(1)
merge >> sink
"""

BEHIND = """
src = Source("src", rate_pps=get_arg("rate_pps", 2e6, float), flows=4, seed=1)
src >> Bypass("slow", t0_ns=0, t1_ns=1000) >> Measure("measure") >> Sink("sink")
"""


def _script(tmp_path, text, name="s.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_module_tables_follow_the_data_flow(tmp_path):
    sr = ScriptRun(_script(tmp_path, SHUFFLED), clock="virtual", out_dir=tmp_path / "res")
    sr.execute()
    assert [m.name for m in sr.pipeline] == ["sink", "merge", "b", "q", "a", "split", "src"]
    want = ["src", "split", "q", "a", "b", "merge", "sink"]  # a tie (q, a) keeps creation order
    assert [m.name for m in dataflow_order(sr.pipeline)] == want
    assert [row[0] for row in module_rows(sr.runtime)] == want  # the live view's rows
    out = io.StringIO()
    Console(file=out, width=120).print(final_table(sr.runtime))
    lines = out.getvalue().splitlines()
    firsts = [ln.split()[0] for ln in lines if ln.split() and ln.split()[0] in want]
    assert firsts == want


def test_a_source_behind_its_offered_rate_is_warned(tmp_path):
    # 1 µs per packet downstream: a 2 Mpps source sends 1 Mpps on the virtual clock
    sr = ScriptRun(_script(tmp_path, BEHIND), clock="virtual", seconds=0.001, out_dir=tmp_path / "res")
    s = sr.execute()
    assert len(s["warnings"]) == 1
    assert re.fullmatch(
        r"Source\(src\): fell behind its offered rate: 2\.000 Mpps offered, (0\.99\d|1\.00\d) Mpps sent \(1,0\d\d of 2,0\d\d "
        r"packets due\); .*",
        s["warnings"][0],
    )
    assert json.loads((tmp_path / "res" / "summary.json").read_text())["warnings"] == s["warnings"]

    ok = ScriptRun(_script(tmp_path, BEHIND, "ok.py"), ["rate_pps=5e5"], clock="virtual", seconds=0.001,
                   out_dir=tmp_path / "res_ok")
    assert ok.execute()["warnings"] == []  # 0.5 Mpps is what the pipeline takes: no warning


def test_the_behind_warning_shows_on_the_terminal(tmp_path):
    r = CliRunner().invoke(app, ["run", str(_script(tmp_path, BEHIND)), "--clock", "virtual", "--seconds", "0.001",
                                 "--out", str(tmp_path / "res")])
    assert "warning: Source(src): fell behind its offered rate: 2.000 Mpps offered" in r.output
    # a source that fell behind is reported, not an error: exit 1 is for damaged input
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "res" / "summary.json").read_text())["damaged_input"] is False


def test_plot_option_writes_a_picture(tmp_path):
    script = _script(tmp_path, BEHIND)
    common = ["run", str(script), "rate_pps=5e5", "--clock", "virtual", "--seconds", "0.001", "--quiet"]
    r = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "plain")])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "plain" / "plot.png").exists()
    r = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "res"), "--plot"])
    assert r.exit_code == 0, r.output
    png = tmp_path / "res" / "plot.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert f"plot: {png}" in r.output
    assert not list((tmp_path / "res").glob(".*tmp*"))


def test_demo_installs_no_test_tools_and_explains_itself():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"  # an SPDX string: no setuptools deprecation warning
    assert any(r.startswith("setuptools>=77") for r in project["build-system"]["requires"])
    make = (ROOT / "Makefile").read_text()
    stamp_recipe = make.split("$(STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]
    assert "pip install -q -e .\n" in stamp_recipe + "\n" and "[test]" not in stamp_recipe
    demo = make.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert demo.startswith(" $(STAMP)\n") and "--plot" in demo
    assert len([ln for ln in demo.splitlines() if ln.strip().startswith("@echo")]) == 3
    assert re.search(r"^test: \$\(TEST_STAMP\)", make, re.M)
