"""The script API: arguments, run(), workers, error lines, results on errors."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from tailgate.cli import app
from tailgate.core.errors import TailgateError
from tailgate.run.script import ScriptArgError, ScriptError, ScriptGraphError, ScriptRun, convert_arg, parse_script_args


def write(tmp_path, text, name="s.py"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def run_script(tmp_path, text, args=(), name="s.py", **kw):
    path = write(tmp_path, text, name)
    kw.setdefault("clock", "virtual")
    kw.setdefault("out_dir", tmp_path / "out")
    sr = ScriptRun(path, list(args), **kw)
    return sr, sr.execute()


# ------------------------------------------------------------------------------------------------
# arguments
# ------------------------------------------------------------------------------------------------
def test_parse_words_and_comma_lists():
    assert parse_script_args(["rounds=100,delay_slo1=55_000", "x=a"]) == {"rounds": "100", "delay_slo1": "55_000", "x": "a"}
    # a piece without '=' continues the previous value
    assert parse_script_args(["weights=9,1", "seed=2"]) == {"weights": "9,1", "seed": "2"}
    assert parse_script_args([]) == {}


@pytest.mark.parametrize(
    "words, fragment",
    [(["a=1", "a=2"], "given twice"), (["oops"], "not of the form name=value"), (["1x=2"], "bad argument name")],
)
def test_parse_errors(words, fragment):
    with pytest.raises(ScriptArgError, match=fragment):
        parse_script_args(words, "s.py")


def test_convert_types():
    assert convert_arg("s", "n", "55_000", int) == 55000
    assert convert_arg("s", "n", "1e6", int) == 1_000_000
    assert convert_arg("s", "n", "0x10", int) == 16
    assert convert_arg("s", "r", "2.5e6", float) == 2.5e6
    assert convert_arg("s", "r", "1_000.5", float) == 1000.5
    assert convert_arg("s", "b", "yes", bool) is True and convert_arg("s", "b", "off", bool) is False
    assert convert_arg("s", "t", "hi", str) == "hi"
    for raw, t in (("1.5", int), ("abc", float), ("maybe", bool)):
        with pytest.raises(ScriptArgError, match=r"s: argument 'x' must be \w+, got"):
            convert_arg("s", "x", raw, t)


SMALL = """
n = get_arg("n", 100, int)
rate = get_arg("rate", 1e6, float)
verbose = get_arg("verbose", False, bool)
src = Source("src", rate_pps=rate, packets=n)
src >> Measure("m") >> Sink("sink")
"""


def test_script_without_run_runs_until_input_exhausted(tmp_path):
    sr, s = run_script(tmp_path, SMALL, ["n=1_000,rate=2e6", "verbose=yes"])
    assert sr.read == {"n": 1000, "rate": 2e6, "verbose": True}
    assert s["packets"] == 1000 and s["stop_reason"] == "input exhausted"
    assert s["modules"]["sink"]["counters"]["packets_in"] == 1000
    # 1000 packets at 2 Mpps: about 0.5 ms of virtual time
    assert 490_000 <= s["clock_ns"] <= 520_000
    assert s["measures"]["m"]["all"]["packets"] == 1000
    assert (tmp_path / "out" / "summary.json").exists()


def test_unknown_argument_is_reported_before_running(tmp_path):
    with pytest.raises(ScriptArgError) as e:
        run_script(tmp_path, SMALL, ["n=10", "rat=5"])
    msg = str(e.value)
    assert "unknown argument 'rat'" in msg and "n, rate, verbose" in msg and "did you mean 'rate'" in msg
    assert "\n" not in msg
    assert not (tmp_path / "out").exists()  # nothing ran, nothing left behind


def test_wrong_type_names_the_argument(tmp_path):
    with pytest.raises(ScriptArgError, match=r"^s\.py: argument 'n' must be int, got 'ten'$"):
        run_script(tmp_path, SMALL, ["n=ten"])


def test_missing_required_argument(tmp_path):
    with pytest.raises(ScriptArgError, match="missing required argument 'pcap'"):
        run_script(tmp_path, 'p = get_arg("pcap", type=str)\n')


def test_exception_in_script_is_one_line_with_the_script_line(tmp_path):
    text = """
    x = 1
    def f():
        return x / 0
    f()
    """
    with pytest.raises(ScriptError) as e:
        run_script(tmp_path, text)
    assert str(e.value) == f"{tmp_path / 's.py'}:4: ZeroDivisionError: division by zero"


def test_module_error_in_script_names_line_and_module(tmp_path):
    with pytest.raises(ScriptError) as e:
        run_script(tmp_path, "\nsrc = Source(rate_pps=-1)\n")
    assert str(e.value).startswith(f"{tmp_path / 's.py'}:2: Source(source0): argument 'rate_pps' must be >= 0")


def test_syntax_error_line(tmp_path):
    with pytest.raises(ScriptError, match=r"s\.py:3: SyntaxError"):
        run_script(tmp_path, "a = 1\nb = 2\nc = (\n")


def test_graph_error_without_run(tmp_path):
    with pytest.raises(TailgateError, match=r"Sink\(b\): input gate 0 is not connected"):
        run_script(tmp_path, 'Source("a", packets=5) >> Sink("s")\nSink("b")\n')
    assert not (tmp_path / "out").exists()


def test_synthetic_source_defaults_to_one_second(tmp_path):
    sr, s = run_script(tmp_path, 'Source("src", rate_pps=10_000) >> Sink("sink")\n')
    assert s["stop_reason"] == "time limit"
    assert 1_000_000_000 <= s["clock_ns"] < 1_001_000_000
    assert 10_000 <= s["packets"] <= 10_001


def test_command_line_limits(tmp_path):
    _, s = run_script(tmp_path, 'Source("src", rate_pps=1e6) >> Sink("sink")\n', packets=640)
    assert s["packets"] == 640 and s["stop_reason"] == "packet limit"
    _, s = run_script(tmp_path, 'Source("src", rate_pps=1e6) >> Sink("sink")\n', seconds=0.001, out_dir=tmp_path / "o2")
    assert s["stop_reason"] == "time limit" and 999 <= s["packets"] <= 1001


def test_run_twice_continues_and_knobs_change(tmp_path):
    text = """
    src = Source("src", rate_pps=1e6)
    src >> Sink("sink")
    first = run(seconds=0.001)
    src.set("rate_pps", 2e6)
    second = run(seconds=0.001)
    assert second["packets"] > first["packets"]
    log.info("first %d, second %d", first["packets"], second["packets"])
    """
    sr, s = run_script(tmp_path, text)
    assert s["runs"] == 2
    assert 2990 <= s["packets"] <= 3010  # 1000 + 2000
    assert 2_000_000 <= s["clock_ns"] <= 2_010_000


def test_workers_wfq_shares(tmp_path):
    text = """
    a = Source("a", rate_pps=0, size_bytes=64)
    b = Source("b", rate_pps=0, size_bytes=64)
    a >> Bypass("ca", t1_ns=10) >> Sink("sa")
    b >> Bypass("cb", t1_ns=10) >> Sink("sb")
    w = add_worker("w0", policy="wfq", resource="packets")
    w.add_task(a, share=3)
    w.add_task(b, share=1)
    run(packets=32_000)
    """
    sr, s = run_script(tmp_path, text)
    na = s["modules"]["sa"]["counters"]["packets_in"]
    nb = s["modules"]["sb"]["counters"]["packets_in"]
    assert na + nb == 32_000
    assert 2.8 < na / nb < 3.2
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["workers"][0]["policy"] == "wfq"
    assert {t["root"]: t["share"] for t in cfg["workers"][0]["tasks"]} == {"a": 3.0, "b": 1.0}


def test_add_worker_after_run_is_an_error(tmp_path):
    text = 'Source("a", packets=10) >> Sink("s")\nrun()\nadd_worker("late")\n'
    with pytest.raises(ScriptError, match=r"s\.py:3: add_worker\(\) must come before the first run\(\)"):
        run_script(tmp_path, text)
    assert (tmp_path / "out" / "summary.json").exists()  # the run that happened is kept


def test_error_after_the_run_started_keeps_results(tmp_path):
    text = """
    from tailgate.dataplane.module import Module

    class Flaky(Module):
        def process(self, batch):
            if self.packets_in > 100:
                raise RuntimeError("flaky broke")
            self.emit(batch)

    Source("src", rate_pps=1e6) >> Flaky("flaky") >> Sink("sink")
    run(seconds=0.01)
    """
    with pytest.raises(ScriptError) as e:
        run_script(tmp_path, text)
    assert "s.py:7: RuntimeError: flaky broke (in Flaky(flaky))" in str(e.value)  # the raise, in the script
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["stop_reason"] == "error" and "flaky broke" in s["error"]
    assert s["modules"]["sink"]["counters"]["packets_in"] > 0
    assert (tmp_path / "out" / "counters.csv").exists() and (tmp_path / "out" / "config.json").exists()


def test_interrupt_keeps_results(tmp_path):
    text = """
    from tailgate.dataplane.module import Module

    class Stop(Module):
        def process(self, batch):
            if self.packets_in > 500:
                raise KeyboardInterrupt
            self.emit(batch)

    Source("src", rate_pps=1e6) >> Stop("stop") >> Sink("sink")
    """
    with pytest.raises(KeyboardInterrupt):
        run_script(tmp_path, text)
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["stop_reason"] == "interrupted"
    assert s["modules"]["sink"]["counters"]["packets_in"] >= 500


def test_fresh_pipeline_and_names_per_script(tmp_path):
    text = 'Source(packets=64) >> Bypass() >> Bypass() >> Sink()\n'
    sr1, s1 = run_script(tmp_path, text, out_dir=tmp_path / "a")
    sr2, s2 = run_script(tmp_path, text, out_dir=tmp_path / "b")
    assert list(s1["modules"]) == list(s2["modules"]) == ["source0", "bypass0", "bypass1", "sink0"]
    assert (tmp_path / "a" / "counters.csv").read_text() == (tmp_path / "b" / "counters.csv").read_text()


def test_script_globals(tmp_path):
    text = """
    assert pipeline is not None and clock.now_ns() == 0
    assert results_dir.name == "out"
    t = FlowTemplate(dst_ip="10.9.9.9", size_bytes=100)
    src = Source("src", templates=[t], packets=10)
    src >> Sink("sink")
    assert pipeline["src"] is src
    (results_dir / "note.txt").write_text("hello")
    """
    sr, s = run_script(tmp_path, text)
    assert s["packets"] == 10
    assert (tmp_path / "out" / "note.txt").read_text() == "hello"


def test_virtual_time_that_would_stand_still_is_an_error(tmp_path):
    with pytest.raises(TailgateError, match="the virtual clock would never advance"):
        run_script(tmp_path, 'Source("src") >> Sink("sink")\n')
    _, s = run_script(tmp_path, 'Source("src") >> Sink("sink")\n', packets=320, out_dir=tmp_path / "o2")
    assert s["packets"] == 320


# ------------------------------------------------------------------------------------------------
# misspelt names, and graph errors at the line that made the module
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, line, hint",
    [
        ('src = Source("s", packets=5)\ncheck = CheckIPHeaders("c")\n', 2, "did you mean CheckIPHeader?"),
        ('x = 1\n\nsrc = source("s", packets=5)\n', 3, "did you mean Source?"),
        ('n = get_args("n", 1, int)\n', 1, "did you mean get_arg?"),
        ('rate = 5\nSource("s", rate_pps=rat)\n', 2, "did you mean rate?"),  # the script's own names too
    ],
)
def test_misspelt_name_suggests_the_right_one(tmp_path, text, line, hint):
    with pytest.raises(ScriptError) as e:
        run_script(tmp_path, text)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 's.py'}:{line}: NameError: name ") and msg.endswith(hint), msg


def test_unknown_name_without_a_close_one_has_no_hint(tmp_path):
    with pytest.raises(ScriptError) as e:
        run_script(tmp_path, "Zzyzx()\n")
    assert str(e.value) == f"{tmp_path / 's.py'}:1: NameError: name 'Zzyzx' is not defined"


SPLIT = """
src = Source("src", packets=10)
split = RandomSplit("split", gates=2)
src >> split
split[0] >> Sink("sink")
"""


def test_unconnected_output_gate_names_the_line_that_made_the_module(tmp_path):
    with pytest.raises(ScriptGraphError) as e:
        run_script(tmp_path, SPLIT)
    assert str(e.value) == f"{tmp_path / 's.py'}:3: RandomSplit(split): output gate 1 is not connected"


def test_graph_error_at_an_explicit_run_names_the_module_line_once(tmp_path):
    with pytest.raises(TailgateError) as e:
        run_script(tmp_path, SPLIT + "\nrun(packets=10)\n")
    assert str(e.value) == f"{tmp_path / 's.py'}:3: RandomSplit(split): output gate 1 is not connected"


def test_unconnected_gate_through_the_cli_is_one_line_with_the_line(tmp_path):
    path = write(tmp_path, SPLIT)
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 2
    assert res.stderr.strip() == f"error: {path}:3: RandomSplit(split): output gate 1 is not connected"
