"""Controllers on hand-made control inputs: each rule of reference §7/§8, one at a time."""
import logging
import math

import pytest

from tailgate.batchy.controllers import resolve_controller
from tailgate.batchy.state import ControlInput, FlowState, ModuleState
from tailgate.core.errors import ArgError


def mod(name, q=0, R_mpps=4.0, b_in=8.0, T0=400.0, T1=40.0, **kw):
    R = R_mpps * 1e-3                         # packets/ns
    b_v = q if q else b_in
    return ModuleState(name=name, T0_ns=T0, T1_ns=T1, q=q, x_per_ns=R / b_v, R_per_ns=R, b_v=b_v, b_in=b_in,
                       task="t0", **kw)


def inp(mods, flows, rnd=1):
    return ControlInput(round=rnd, period_ns=1e7, modules={m.name: m for m in mods}, flows=flows)


def flow(name, path, slo, delay):
    return FlowState(name=name, path=path, delay_slo_ns=slo, delay_ns=delay, rate_pps=1e6)


@pytest.mark.parametrize("name, cls, q", [
    ("null", "Fixed", 0), ("NULL", "Fixed", 0), ("max", "Fixed", 32), ("fixed8", "Fixed", 8), ("fix31", "Fixed", 31),
    ("ProjGradientTaskController", "ProjGrad", None), ("projgrad", "ProjGrad", None), ("OnOff", "OnOff", None),
    ("feasdir", "FeasDir", None),
])
def test_names_resolve(name, cls, q):
    c = resolve_controller(name)
    assert type(c).__name__ == cls
    if q is not None:
        d = c.control(inp([mod("a", q=5)], [flow("f", ["a"], 1e6, 1e3)]))
        assert d.triggers == {"a": q}


@pytest.mark.parametrize("bad, message", [
    ("fastest", "unknown controller 'fastest'"), ("fixed0", "must be 1..1024"), ("fix2000", "must be 1..1024"),
    ("", "give a name"),
])
def test_bad_names_are_one_clear_message(bad, message):
    with pytest.raises(ArgError, match=message):
        resolve_controller(bad)


def test_projgrad_pulls_an_unbuffered_module_within_budget(caplog):
    # R = 4 Mpps: dt/dq = 250 + 40 ns; q_min = 8 + 4 = 12 costs 3480 ns of a 10 us budget
    c = resolve_controller("projgrad")
    with caplog.at_level(logging.INFO, logger="tailgate.batchy"):
        d = c.control(inp([mod("a")], [flow("f", ["a"], 20_000, 10_000)]))
    assert d.triggers["a"] == 12
    assert "PULLING" in caplog.text


def test_projgrad_does_not_pull_beyond_the_budget():
    # the pull costs 12·290 = 3480 ns: more than a 3400 ns budget, less than a 3600 ns one
    d = resolve_controller("projgrad").control(inp([mod("a")], [flow("f", ["a"], 13_400, 10_000)]))
    assert d.triggers["a"] == 0
    d = resolve_controller("projgrad").control(inp([mod("a")], [flow("f", ["a"], 13_600, 10_000)]))
    assert d.triggers["a"] == 12


def test_projgrad_steps_up_to_the_tight_bound_and_then_sits_at_kkt(caplog):
    c = resolve_controller("projgrad")
    # q = 12 and 10 us left: the step may use up to (budget - 5 % of D) / 290 ns per packet
    d = c.control(inp([mod("a", q=12)], [flow("f", ["a"], 20_000, 10_000)]))
    q = d.triggers["a"]
    assert 12 < q <= 32
    assert (q - 12) * 290 <= 10_000 - 1_000 + 290       # never past 0.95·D by more than the rounding
    # at the tight bound (delay >= 0.95·D) nothing moves: a KKT point
    with caplog.at_level(logging.INFO, logger="tailgate.batchy"):
        d2 = c.control(inp([mod("a", q=20)], [flow("f", ["a"], 20_000, 19_200)]))
    assert d2.triggers["a"] == 20 and d2.kkt
    assert "KKT" in caplog.text


def test_projgrad_recovers_a_violating_flow_and_drops_below_q_min_to_zero():
    c = resolve_controller("projgrad")
    # 2 us over at 290 ns/packet: cut by ceil(2000/290) + 1 = 8 -> 24 - 8 = 16 (>= q_min 12)
    d = c.control(inp([mod("a", q=24)], [flow("f", ["a"], 20_000, 22_000)]))
    assert d.triggers["a"] == 16
    # 5 us over from q = 14: 14 - 19 < q_min -> 0
    d = c.control(inp([mod("a", q=14)], [flow("f", ["a"], 20_000, 25_000)]))
    assert d.triggers["a"] == 0


def test_projgrad_recovers_the_slowest_module_first():
    c = resolve_controller("projgrad")
    slow = mod("slow", q=20, R_mpps=1.0)        # 1/x large: the larger module delay
    fast = mod("fast", q=20, R_mpps=8.0)
    d = c.control(inp([slow, fast], [flow("f", ["slow", "fast"], 50_000, 51_000)]))
    assert d.triggers["slow"] < 20 and d.triggers["fast"] == 20


def test_projgrad_pushes_when_input_batches_are_already_full():
    d = resolve_controller("projgrad").control(inp([mod("a", q=32, b_in=30)], [flow("f", ["a"], 1e6, 1e4)]))
    assert d.triggers["a"] == 0


def test_projgrad_line_search_keeps_q_min_when_decreasing():
    # Two modules on one tight flow: the projection moves budget from the module with the smaller
    # gradient to the other; the decreasing one must not go below its q_min (the original's sign bug).
    a = mod("a", q=14, R_mpps=4.0, b_in=10, T0=2000)   # large T0: worth increasing
    b = mod("b", q=14, R_mpps=4.0, b_in=10, T0=50)     # small T0: the one that gives way
    # (b also carries a flow of its own, so it is not a chain child of a: see the chain tests)
    flows = [flow("f", ["a", "b"], 20_000, 19_500), flow("g", ["b"], 1e6, 1e4)]
    d = resolve_controller("projgrad").control(inp([a, b], flows))
    assert d.triggers["b"] >= 14     # q_min = 14: it may not decrease at all
    assert d.triggers["a"] >= 14


def test_projgrad_moves_along_a_tight_constraint():
    # q_min = 4 here, so the one with the small T0 can give way to the one with the large T0
    a = mod("a", q=16, R_mpps=4.0, b_in=0, T0=4000)
    b = mod("b", q=16, R_mpps=4.0, b_in=0, T0=40)
    flows = [flow("f", ["a", "b"], 20_000, 19_500), flow("g", ["b"], 1e6, 1e4)]
    d = resolve_controller("projgrad").control(inp([a, b], flows))
    assert d.triggers["a"] > 16 and d.triggers["b"] < 16
    assert d.triggers["b"] >= 4


def test_onoff_is_bang_bang():
    c = resolve_controller("onoff")
    d = c.control(inp([mod("a")], [flow("f", ["a"], 100_000, 10_000)]))
    assert d.triggers["a"] == 32
    d = c.control(inp([mod("a", q=32)], [flow("f", ["a"], 100_000, 101_000)]))
    assert d.triggers["a"] == 0
    d = c.control(inp([mod("a")], [flow("f", ["a"], 12_000, 10_000)]))
    assert d.triggers["a"] == 0        # 32 packets would not fit the budget


def test_feasdir_handles_one_module_per_round():
    c = resolve_controller("feasdir")
    mods = [mod("a"), mod("b")]
    fl = [flow("f", ["a"], 100_000, 10_000), flow("g", ["b"], 100_000, 10_000)]
    d1 = c.control(inp(mods, fl))
    assert sorted(d1.triggers.values()) == [0, 12]
    d2 = c.control(inp(mods, fl, rnd=2))
    assert d2.triggers != d1.triggers


def test_infeasible_after_two_rounds_unbuffered_over_the_objective():
    c = resolve_controller("projgrad")
    fl = [flow("f", ["a"], 1_000, 5_000)]
    assert c.control(inp([mod("a")], fl)).infeasible == {}
    d = c.control(inp([mod("a")], [flow("f", ["a"], 1_000, 4_000)], rnd=2))
    assert d.infeasible == {"f": 4_000}
    # a flow that has a buffer it could give up is not (yet) infeasible
    c2 = resolve_controller("projgrad")
    for r in (1, 2):
        assert c2.control(inp([mod("a", q=20)], fl, rnd=r)).infeasible == {}


def test_not_infeasible_while_the_controller_still_acts_elsewhere():
    # The flow's own path is unbuffered, but buffering another module (which shortens the task's
    # turnaround) is still being tried: no verdict yet.
    c = resolve_controller("projgrad")
    mods = [mod("robot"), mod("bulk")]
    fl = [flow("robot", ["robot"], 1_000, 5_000), flow("bulk", ["bulk"], 1e8, 1e4)]
    d = c.control(inp(mods, fl))
    assert d.triggers["bulk"] > 0 and d.infeasible == {}
    mods = [mod("robot"), mod("bulk", q=d.triggers["bulk"])]
    d = c.control(inp(mods, fl, rnd=2))
    assert d.triggers["bulk"] > mods[1].q and d.infeasible == {}


def test_a_flow_without_packets_is_no_evidence():
    c = resolve_controller("onoff")
    for r in (1, 2, 3):
        d = c.control(inp([mod("a")], [flow("f", ["a"], 1_000, math.nan)], rnd=r))
    assert d.infeasible == {}


# -- tailgate's additions: chain absorption and noise-aware budgets --------------------------------
def test_a_chain_child_of_a_buffered_module_is_absorbed(caplog):
    # u feeds c alone at the same rate: c's input already comes in batches of q_u
    u = mod("u", q=20, children=["c"])
    c = mod("c", q=21, b_in=20)
    with caplog.at_level(logging.INFO, logger="tailgate.batchy"):
        d = resolve_controller("projgrad").control(inp([u, c], [flow("f", ["u", "c"], 1e6, 1e4)]))
    assert d.triggers["c"] == 0 and d.triggers["u"] > 0
    assert "ABSORBED" in caplog.text
    # a child fed by a split (a quarter of the rate) keeps its own buffer
    c4 = mod("c", q=21, b_in=5, R_mpps=1.0)
    d = resolve_controller("projgrad").control(inp([u, c4], [flow("f", ["u", "c"], 1e6, 1e4)]))
    assert d.triggers["c"] > 0


@pytest.mark.parametrize("name", ["projgrad", "onoff"])
def test_only_the_head_of_a_chain_is_pulled(name):
    mods = [mod("c", children=["d"]), mod("d"), mod("u", children=["c"])]   # listed out of order
    d = resolve_controller(name).control(inp(mods, [flow("f", ["u", "c", "d"], 1e6, 1e4)]))
    assert d.triggers["u"] > 0 and d.triggers["c"] == 0 and d.triggers["d"] == 0


def test_chain_costs_count_in_the_head_of_the_chain():
    from tailgate.batchy.controllers import _Round

    # u -> c (a chain: same rate) -> d (a split child: a quarter of the rate, its own buffer)
    mods = [mod("u", q=12, T0=10, T1=1, children=["c"]), mod("c", T0=4000, T1=40, children=["d"]),
            mod("d", T0=500, T1=5, R_mpps=1.0)]
    r = _Round(inp(mods, [flow("f", ["u", "c", "d"], 40_000, 10_000)]))
    assert r.T0["u"] == 10 + 4000 and r.T1["u"] == 1 + 40       # c's work runs in u's batches
    assert r.T0["d"] == 500                                      # d is not part of the chain
    assert r.dtdq["u"] == pytest.approx(1 / 4e-3 + 41)                         # 1/R + the chain's per-packet cost


def test_one_noisy_reading_does_not_make_projgrad_cut():
    c = resolve_controller("projgrad")
    q = 12
    noise = [0, -600, 500, -300, 200, -500, 400, -200, 300, -400, 100, -100]   # σ ≈ 400 ns
    qs = []
    for r, e in enumerate(noise, 1):
        # the delay follows the model (290 ns a packet of trigger) plus the noise of one reading
        d = c.control(inp([mod("a", q=q)], [flow("f", ["a"], 20_000, 14_000 + 290 * (q - 12) + e)], rnd=r))
        q = d.triggers["a"]
        qs.append(q)
    assert qs[-1] == qs[-2] == qs[-3]          # settled despite the noise
    mean = 14_000 + 290 * (q - 12)
    # the original stops at 0.95·D = 19 us, where a reading 2.5σ high is over D; this keeps ~2σ of room
    assert 19_000 - 1_200 <= mean <= 19_000 - 500
    # a reading 3σ above the mean is luck: no recovery cut (at most a one-packet back-off)
    d = c.control(inp([mod("a", q=q)], [flow("f", ["a"], 20_000, mean + 1_200)], rnd=len(noise) + 1))
    assert q - 1 <= d.triggers["a"] <= q
    # a reading far above (the traffic changed) is taken as it is: recover at once
    d = c.control(inp([mod("a", q=q)], [flow("f", ["a"], 20_000, 26_000)], rnd=len(noise) + 2))
    assert d.triggers["a"] < q


def saturated(mods, flows, b0=32.0, rnd=1):
    i = inp(mods, flows, rnd=rnd)
    i.task_b0 = {"t0": b0}
    return i


def test_projgrad_pulls_together_what_fits_only_together_in_a_saturated_task(caplog):
    # four leaves of 1 Mpps, 1500 ns a batch, input batches of 8: q_min = 12 costs each leaf's
    # flow 12·1040 ns, more than its 5 us budget; but buffering all four saves 25 % of the task's
    # time (4·1 Mpps·1500 ns·(1/8 − 1/12)), and a saturated task's every delay shrinks with it
    mods = [mod(f"l{k}", R_mpps=1.0, T0=1500) for k in range(4)]
    flows = [flow(f"f{k}", [f"l{k}"], 45_000, 40_000) for k in range(4)]
    with caplog.at_level(logging.INFO, logger="tailgate.batchy"):
        d = resolve_controller("projgrad").control(saturated(mods, flows))
    assert all(d.triggers[f"l{k}"] == 12 for k in range(4))
    assert "with 3 others" in caplog.text
    # the same task not saturated (its ingress batches are not full): nothing is pulled
    d = resolve_controller("projgrad").control(saturated(mods, flows, b0=20.0))
    assert all(d.triggers[f"l{k}"] == 0 for k in range(4))
    # and one leaf alone does not fit even when saturated
    d = resolve_controller("projgrad").control(saturated(mods[:1], flows[:1]))
    assert d.triggers["l0"] == 0


def test_a_joint_pull_takes_one_new_buffer_per_flow():
    # u feeds d through a merge point: pulling both at once would stack two fill waits
    u = mod("u", R_mpps=1.0, T0=1500, children=["d"])
    d_ = mod("d", R_mpps=1.0, T0=1500, merge_point=True)
    v = mod("v", R_mpps=1.0, T0=1500)
    flows = [flow("f", ["u", "d"], 200_000, 40_000), flow("g", ["v"], 200_000, 40_000)]
    d = resolve_controller("projgrad").control(saturated([u, d_, v], flows))
    assert d.triggers["u"] == 12 and d.triggers["v"] == 12 and d.triggers["d"] == 0


def test_turnaround_coupling_in_the_tight_rows():
    from tailgate.batchy.controllers import _Round
    mods = [mod("a", q=12, R_mpps=1.0, T0=1500), mod("b", q=12, R_mpps=1.0, T0=1500)]
    flows = [flow("f", ["a"], 45_000, 40_000), flow("g", ["b"], 45_000, 40_000)]
    r = _Round(saturated(mods, flows))
    # ∂delay_f/∂q_b = −d_f·R_b·T0_b/q_b² (b's larger batches shorten the turnaround f waits in)
    assert r.coupling("f", "b") == pytest.approx(-40_000 * 1e-3 * 1500 / 144)
    assert r.coupling("f", "a") < 0
    # raising b by 4 packets: f only gains, g pays its fill wait less the turnaround saved
    q_to = {"a": 12, "b": 16}
    S = 1e-3 * 1500 * (1 / 12 - 1 / 16)
    assert r.predict("f", q_to) == pytest.approx(-S * 40_000)
    assert r.predict("g", q_to) == pytest.approx((1 - S) * (40_000 + 4 * 1040) - 40_000)
    # not saturated: no coupling
    r = _Round(saturated(mods, flows, b0=10.0))
    assert r.coupling("f", "b") == 0.0 and r.predict("f", q_to) == 0.0


def test_a_module_recovered_to_zero_is_held_before_it_is_pulled_again():
    c = resolve_controller("projgrad")
    d = c.control(inp([mod("a", q=12)], [flow("f", ["a"], 20_000, 40_000)], rnd=1))
    assert d.triggers["a"] == 0
    ok = [flow("f", ["a"], 20_000, 5_000)]          # plenty of budget again
    held = [c.control(inp([mod("a")], ok, rnd=r)).triggers["a"] for r in (2, 3)]
    assert held == [0, 0]                            # held for 2 rounds
    assert c.control(inp([mod("a")], ok, rnd=4)).triggers["a"] == 12
    # recovered to 0 a second time: held for 4 rounds
    assert c.control(inp([mod("a", q=12)], [flow("f", ["a"], 20_000, 40_000)], rnd=5)).triggers["a"] == 0
    assert [c.control(inp([mod("a")], ok, rnd=r)).triggers["a"] for r in (6, 7, 8, 9, 10)] == [0, 0, 0, 0, 12]


def test_push_keeps_a_buffer_that_still_saves():
    # b_in 24 >= 0.7·32: a cheap module is pushed (what it saves is negligible) ...
    cheap = mod("a", q=32, b_in=24, T0=40)
    assert resolve_controller("projgrad").control(inp([cheap], [flow("f", ["a"], 1e6, 1e4)])).triggers["a"] == 0
    # ... one that costs 2000 ns a batch still saves 4 Mpps·2000 ns·(1/24 − 1/32) = 8 % of the time
    dear = mod("a", q=32, b_in=24, T0=2000)
    assert resolve_controller("projgrad").control(inp([dear], [flow("f", ["a"], 1e6, 1e4)])).triggers["a"] == 32


def test_a_step_that_saves_almost_nothing_is_not_taken(caplog):
    # T0 = 10 ns: going 12 -> 32 saves 4 Mpps·10 ns·(1/12 − 1/32) = 0.2 % of the time: hold
    with caplog.at_level(logging.INFO, logger="tailgate.batchy"):
        d = resolve_controller("projgrad").control(inp([mod("a", q=12, T0=10)], [flow("f", ["a"], 1e6, 1e4)]))
    assert d.triggers["a"] == 12 and d.kkt
    assert "below 0.5 %" in caplog.text
    d = resolve_controller("projgrad").control(inp([mod("a", q=12, T0=400)], [flow("f", ["a"], 1e6, 1e4)]))
    assert d.triggers["a"] == 32


def test_a_module_fed_only_by_another_through_a_merge_is_its_chain_child():
    from tailgate.batchy.controllers import _Round
    # ttl -> (shared demux, a merge point) -> nf: every flow through nf comes from ttl, at its rate
    ttl = mod("ttl", q=16, R_mpps=1.0, T0=300)
    nf = mod("nf", R_mpps=1.0, T0=800, merge_point=True)
    other = mod("other", R_mpps=1.0)
    flows = [flow("f", ["ttl", "nf"], 1e6, 1e4), flow("g", ["other"], 1e6, 1e4)]
    r = _Round(inp([ttl, nf, other], flows))
    assert r.chain_parent == {"nf": "ttl"} and r.T0["ttl"] == 300 + 800
    d = resolve_controller("projgrad").control(inp([ttl, mod("nf", q=20, R_mpps=1.0, merge_point=True), other], flows))
    assert d.triggers["nf"] == 0 and "ABSORBED" in d.reasons["nf"]
    # another flow reaches nf without ttl: nf's batches are not ttl's
    flows2 = flows + [flow("h", ["other", "nf"], 1e6, 1e4)]
    assert "nf" not in _Round(inp([ttl, nf, other], flows2)).chain_parent


def test_a_buffer_that_costs_more_than_it_saves_is_not_pulled():
    # input batches of 16, T0 1500 ns at 0.4 Mpps: going to 32 saves 0.4e-3·1500·(1/16 − 1/32)
    # = 1.9 % of the time; a buffer costing 2 us an arriving batch costs 0.4e-3/16·2000 = 5 %
    m = mod("a", R_mpps=0.4, b_in=16, T0=1500)
    f = [flow("f", ["a"], 1e9, 1e4)]
    assert resolve_controller("projgrad").control(inp([m], f)).triggers["a"] == 20       # free buffers
    free = inp([m], f)
    free.buffer_cost_ns = 2000.0
    assert resolve_controller("projgrad").control(free).triggers["a"] == 0
    # one already buffered is let go
    held = inp([mod("a", q=20, R_mpps=0.4, b_in=16, T0=1500)], f)
    held.buffer_cost_ns = 2000.0
    assert resolve_controller("projgrad").control(held).triggers["a"] == 0
    # a module whose batch costs far more than the buffer, with small input batches, still
    # pays: 20 kpps in batches of 1, 10 us a batch (L2L3's chain of five on the wall clock)
    cheap = inp([mod("a", R_mpps=0.02, b_in=1, T0=10_000)], f)
    cheap.buffer_cost_ns = 2000.0
    assert resolve_controller("projgrad").control(cheap).triggers["a"] == 5


def test_a_violating_flow_elsewhere_does_not_hold_other_modules_at_q_min():
    # rc_static's shape: bulk leaves at q_min with loose objectives; a critical flow over its
    # objective on a module of its own (unbuffered). Every bulk leaf steps up in the same round.
    bulk = [mod(f"b{k}", q=12, R_mpps=1.0, b_in=8, T0=4000) for k in range(6)]
    crit = mod("crit", R_mpps=0.001, b_in=1, T0=1, T1=1)
    flows = [flow(f"f{k}", [f"b{k}"], 1e8, 1e5) for k in range(6)] + [flow("robot", ["crit"], 10_000, 12_000)]
    d = resolve_controller("projgrad").control(inp(bulk + [crit], flows))
    assert all(d.triggers[f"b{k}"] > 12 for k in range(6))
