"""The per-round output: CSV format, summary, when triggers and rates settled."""

import math

from tailgate.batchy.output import (
    converged_round,
    dump_csv,
    rate_settled_round,
    summary,
)
from tailgate.batchy.spec import Flow


def rows_of(triggers, rates):
    return [{"t": k + 1, "a:control": q, "f:delay": 1000.0, "f:pps": r, "sum_fpps": r}
            for k, (q, r) in enumerate(zip(triggers, rates))]


def test_converged_round_is_the_first_round_of_the_still_tail():
    rows = rows_of([0, 10, 20, 22, 21, 22], [1.0] * 6)
    assert converged_round(rows, ["a"]) == 3          # 20 -> 22 -> 21 -> 22: within 3 packets
    assert converged_round(rows, ["a"], tolerance=0) == 6
    assert converged_round([], ["a"]) is None


def test_rate_settled_round_and_an_unsettled_run():
    assert rate_settled_round(rows_of([0] * 6, [1.0, 2.0, 10.0, 10.2, 9.9, 10.0])) == 3
    assert rate_settled_round(rows_of([0] * 4, [0.0] * 4)) is None


def test_summary_means_the_second_half_and_counts_late_rounds():
    rows = rows_of([0, 8, 8, 8], [1.0, 2.0, 3.0, 5.0])
    rows[-1]["f:delay"] = 1100.0                      # 10 % over a 1000 ns objective: late
    f = Flow("f", [], 1000.0, None, None, 95.0, None)
    s = summary(rows, [f], controlled=["a"], controller_name="projgrad", infeasible={})
    assert s["sum_fpps"] == 4.0 and s["flows"]["f"]["violations"] == 1
    assert s["flows"]["f"]["delay_max_ns"] == 1100.0 and s["triggers"] == {"a": 8}
    assert s["mean_of_rounds"] == [rows[2]["t"], rows[3]["t"]]     # which rounds the means cover
    assert list(s) == ["controller", "rounds", "mean_of_rounds", "sum_fpps", "flows", "infeasible", "triggers",
                       "converged_round", "rate_settled_round"]


def test_dump_csv_formats_floats_nan_and_missing_cells(tmp_path):
    out = dump_csv([{"t": 1, "x": 1 / 3}, {"t": 2, "x": math.nan, "y": 7}], tmp_path / "s.csv")
    assert out.read_text() == "t,x,y\n1,0.333333,\n2,nan,7\n"


def _legend_labels(fig):
    return [[t.get_text() for t in a.get_legend().get_texts()] if a.get_legend() else [] for a in fig.axes]


def test_a_64_flow_plot_groups_the_flows_and_names_the_worst(tmp_path):
    import matplotlib.pyplot as plt

    from tailgate.batchy.output import plot, plot_figure

    flows = [Flow(f"flow0_{k}", [], 100_000.0, None, None, 95.0, None) for k in range(64)]
    controlled = [f"acl0_{k}" for k in range(64)]
    rows = []
    for t in range(1, 11):
        r = {"t": t, "sum_fpps": 1e6}
        for k, f in enumerate(flows):
            r[f"{f.name}:delay"] = 50_000.0 + 100.0 * k
            r[f"{f.name}:delay_estimate"] = 40_000.0
            r[f"{f.name}:pps"] = 1e6 / 64
            r[f"acl0_{k}:control"] = min(32, t * 3)
        r["flow0_41:delay"] = 180_000.0 if t == 7 else 60_000.0       # the worst: 1.8x its objective once
        rows.append(r)
    fig = plot_figure(rows, flows, controlled, "projgrad")
    try:
        labels = _legend_labels(fig)
        assert all(len(panel) <= 10 for panel in labels), labels
        assert any("flow0_41" in t for t in labels[1]) and any("flow0_41" in t for t in labels[2])
        assert labels[1][0].startswith("64 flows")                  # the group, then the worst named
        assert labels[0] == ["64 modules: min–max", "64 modules: median"]
    finally:
        plt.close(fig)
    assert plot(rows, flows, controlled, "projgrad", tmp_path / "l2l3.png").stat().st_size > 0


def test_a_few_flows_are_each_drawn_and_named():
    import matplotlib.pyplot as plt

    from tailgate.batchy.output import plot_figure

    flows = [Flow(f"flow{k}", [], 1000.0, None, None, 95.0, None) for k in (1, 2)]
    rows = [{"t": t, "a:control": 4, "flow1:delay": 900.0, "flow2:delay": 500.0, "flow1:pps": 1.0, "flow2:pps": 1.0,
             "sum_fpps": 2.0} for t in (1, 2)]
    fig = plot_figure(rows, flows, ["a"], "null")
    try:
        labels = _legend_labels(fig)
        assert labels[0] == ["a"] and labels[2] == ["flow1", "flow2", "total"]
    finally:
        plt.close(fig)
