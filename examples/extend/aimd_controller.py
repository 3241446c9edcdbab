"""A new Batchy controller, defined in a script: AIMD grows each trigger while its flows are on
time and halves it when one is late.

    tailgate run examples/extend/aimd_controller.py --clock virtual
"""
from tailgate.batchy.controllers import Controller
from tailgate.batchy.state import ControlDecision, ControlInput


class AIMD(Controller):
    """Additive increase (``step`` packets a round), multiplicative decrease (halve when late)."""

    name = "aimd"
    step = 4  # packets added to a trigger per on-time round

    def control(self, inp: ControlInput) -> ControlDecision:
        late = {v for f in inp.flows if f.delay_ns > f.delay_slo_ns for v in f.path}
        q = {v: m.q // 2 if v in late else min(m.q + self.step, inp.max_trigger) for v, m in inp.modules.items()}
        return ControlDecision(q, {v: f"AIMD: {m.q} -> {q[v]}" for v, m in inp.modules.items() if q[v] != m.q})


task = batchy.add_worker("w0").add_task("task0")
split = task.add_module(RandomSplit(name="splitter", gates=2, seed=1))
nf1 = task.add_module(Bypass(name="bypass1", t0_ns=400, t1_ns=40))
nf2 = task.add_module(Bypass(name="bypass2", t0_ns=400, t1_ns=40))
split[0] >> nf1
split[1] >> nf2
batchy.add_flow("tight", [split, nf1], delay_slo_ns=get_arg("delay_slo_tight", 15_000, float))
batchy.add_flow("loose", [split, nf2], delay_slo_ns=get_arg("delay_slo_loose", 100_000, float))
batchy.add_source()
batchy.add_sink()
batchy.set_controller(AIMD())
batchy.run(get_arg("rounds", 20, int), control_period_s=0.01, warmup_s=0.01)
batchy.dump("aimd.csv")
