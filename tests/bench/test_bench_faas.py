"""``tailgate bench --suite faas``: the FaaS simulator's speed against a per-invocation event loop."""

import numpy as np
from typer.testing import CliRunner

from tailgate.bench.faas import bench_faas, naive_faasbatch
from tailgate.bench.markdown import render
from tailgate.cli.main import app
from tailgate.faas.sim import simulate
from tailgate.faas.strategies import Pool, make_strategy
from tailgate.faas.trace import Trace, generate

CONST = {"cold_start_ms": {"dist": "const", "value": 1000.0}, "exec_ms": {"dist": "const", "value": 100.0}}


def test_naive_loop_computes_what_the_simulator_computes():
    a = np.array([0.05, 0.1, 0.3, 1.5, 1.55, 1.62])
    f = np.array([0, 0, 0, 0, 0, 1], dtype=np.int32)
    t = Trace(a, f, np.full(len(a), 25), ["f0", "f1"], ["cpu", "cpu"])
    naive = naive_faasbatch(t, 0.2, profile=CONST)
    # tick 0.2: cold (1 s) + 0.1; tick 0.4 waits for that creation (1.2), then a second cold; tick 1.6
    # waits for it (2.2) and finds the first warm; f1 at 1.8 waits for the one creator (2.2)
    assert np.allclose(naive, [1.25, 1.2, 2.0, 0.8, 0.75, 1.68])
    sim = simulate(t, make_strategy("faasbatch", dispatch_interval_s=0.2), Pool(), {"cpu": CONST}, cores=0)
    assert np.allclose(sim.e2e_s, naive)
    # and on a generated trace, every invocation answered, none before its own work
    g = generate(invocations=2000, kind="cpu", functions=7, minutes=1, seed=3)
    e2e = naive_faasbatch(g, 0.2)
    assert len(e2e) == 2000 and np.all(np.isfinite(e2e)) and np.all(e2e > 0)


def test_bench_faas_records_and_markdown_table():
    recs = bench_faas(quick=True, repeats=1)
    by = {(r["impl"], r["policy"]): r for r in recs}
    assert set(by) == {("naive", "faasbatch"), ("tailgate", "faasbatch"), ("tailgate", "vanilla")}
    assert by["tailgate", "faasbatch"]["invocations"] == 100_000 and by["naive", "faasbatch"]["invocations"] == 5_000
    tb, nv = by["tailgate", "faasbatch"], by["naive", "faasbatch"]
    assert tb["minv_per_s"] > 0 and abs(tb["x_naive"] - tb["minv_per_s"] / nv["minv_per_s"]) < 1e-9
    assert "x_naive" not in by["tailgate", "vanilla"]
    text = render([recs], command="tailgate bench --markdown --runs 1 --suite faas --quick", ran={},
                  versions={}, elapsed_s=1.0)
    assert "**FaaS simulator against a per-invocation event loop** (`--suite faas`)" in text
    assert "| benchmark | strategy | implementation | M invocations/s |" in text
    assert "| faas_sim | faasbatch | naive | " in text and "| 1 | baseline |" in text
    assert "faasbatch ≥ 0.5 M invocations/s: met in" in text and "vanilla ≥ 0.5 M invocations/s: met in" in text


def test_unknown_suite_names_faas():
    res = CliRunner().invoke(app, ["bench", "--suite", "nope"])
    assert res.exit_code == 2
    assert "expected packet, sched, live, faas or all" in res.output
