"""The Batchy control loop end to end, through the example scripts (virtual clock: deterministic)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tailgate.core.errors import TailgateError
from tailgate.script import ScriptRun

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "batchy"


def run_example(name, tmp_path, clock="virtual", **args):
    words = [f"{k}={v}" for k, v in args.items()]
    sr = ScriptRun(EXAMPLES / f"{name}.py", words, clock=clock, out_dir=tmp_path / f"{name}-{args.get('controller')}")
    sr.execute()
    return sr


def test_same_script_same_seed_same_csv_byte_for_byte(tmp_path):
    a = run_example("simple_pipeline", tmp_path / "a", controller="projgrad", rounds=8)
    b = run_example("simple_pipeline", tmp_path / "b", controller="projgrad", rounds=8)
    ca = (a.out_dir / "simple_pipeline.csv").read_bytes()
    assert ca == (b.out_dir / "simple_pipeline.csv").read_bytes()
    header = ca.decode().splitlines()[0].split(",")
    for col in ("t", "bypass1:control", "bypass1:x_v", "bypass1:R_v", "bypass1:b_v", "bypass1:b_in", "flow1:delay",
                "flow1:delay_estimate", "flow1:pps", "task0:task_pps", "task0:t_0", "sum_fpps", "ctrlr_deadtime"):
        assert col in header
    assert (a.out_dir / "simple_pipeline.png").stat().st_size > 10_000


def test_projgrad_holds_a_tight_objective_and_beats_null(tmp_path):
    slo = 15_000
    pg = run_example("simple_pipeline", tmp_path, controller="projgrad", rounds=25, delay_slo1=slo).batchy
    s = pg.summary(last=5)
    assert s["converged_round"] is not None and s["converged_round"] <= 20
    d1 = s["flows"]["flow1"]["delay_ns"]
    assert d1 <= slo * 1.05, s
    assert d1 >= slo * 0.5, s      # it used the budget it had, not just stayed at null
    null = run_example("simple_pipeline", tmp_path, controller="null", rounds=6).batchy.summary(last=3)
    assert s["sum_fpps"] > null["sum_fpps"] * 1.05


def test_simpletree_projgrad_doubles_null_and_max_misses_a_tight_robot_objective(tmp_path):
    pg = run_example("simpletree", tmp_path, controller="projgrad", rounds=15, leaves=16).batchy.summary(last=5)
    null = run_example("simpletree", tmp_path, controller="null", rounds=5, leaves=16).batchy.summary(last=3)
    assert pg["sum_fpps"] >= 2 * null["sum_fpps"], (pg["sum_fpps"], null["sum_fpps"])
    mx = run_example("rc_static", tmp_path, controller="max", rounds=6).batchy.summary(last=3)
    robot = mx["flows"]["robot"]
    assert not robot["delay_ns"] <= robot["delay_slo_ns"]     # late, or nothing got out in a period (nan)


def _script(tmp_path, body):
    p = tmp_path / "s.py"
    p.write_text(textwrap.dedent(body))
    return p


BASE = """
    w = batchy.add_worker("w0")
    t = w.add_task("task0")
    split = t.add_module(RandomSplit(name="split", gates=2))
    a = t.add_module(Bypass(name="a", t0_ns=400, t1_ns=40))
    b = t.add_module(Bypass(name="b", t0_ns=400, t1_ns=40))
    split[0] >> a
    split[1] >> b
"""


@pytest.mark.parametrize("tail, message", [
    ('batchy.add_flow("f", [split, a], delay_slo_ns=0)', "delay objective must be > 0"),
    ('batchy.add_flow("f", [a, b], delay_slo_ns=1000)', "a -> b is not a connection"),
    ('batchy.add_flow("f", [split, a], delay_slo_ns=1e4, rate_slo=-5)', "rate objective must be > 0"),
    ('batchy.add_flow("f", [split, a], delay_slo_ns=1e4)\nbatchy.set_controller("fastest")', "fastest"),
    ('batchy.run(3)', "declare at least one flow"),
])
def test_bad_input_is_one_clear_message(tmp_path, tail, message):
    sr = ScriptRun(_script(tmp_path, BASE + textwrap.indent(tail, "    ")), [], clock="virtual", out_dir=tmp_path / "out")
    with pytest.raises(TailgateError) as e:
        sr.execute()
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_infeasible_objective_is_named_with_the_best_delay(tmp_path):
    # 1 ns is below what even an unbuffered pass costs
    body = BASE + """
    batchy.add_flow("tight", [split, a], delay_slo_ns=1)
    batchy.add_flow("loose", [split, b], delay_slo_ns=1e6)
    batchy.set_controller("projgrad")
    batchy.run(6, control_period_s=0.002, warmup_s=0.001)
    """
    sr = ScriptRun(_script(tmp_path, body), [], clock="virtual", out_dir=tmp_path / "out")
    sr.execute()
    inf = sr.batchy.summary()["infeasible"]
    assert "tight" in inf and inf["tight"] > 1
    assert "loose" not in inf
