"""Batchy's simple pipeline: a RandomSplit into two NFs, one flow through each.

    tailgate run examples/batchy/simple_pipeline.py rounds=100,delay_slo1=55_000

The NFs are Bypass modules of 1000 cycles per batch and 100 per packet at 2.5 cycles/ns (the
reference sheet's BYPASS_RATIO; the original passed the cycle counts as ns, a unit mix-up).
"""
rounds = get_arg("rounds", 40, int)
period_s = get_arg("period", 0.01, float)
slo1 = get_arg("delay_slo1", 15_000, float)
slo2 = get_arg("delay_slo2", 100_000, float)
controller = get_arg("controller", "projgrad", str)
warmup_s = get_arg("warmup", 0.01, float)
CYCLES_PER_NS = 2.5

w = batchy.add_worker("w0")
t = w.add_task("task0", type=get_arg("task_type", "RTC", str))
split = t.add_module(RandomSplit(name="splitter", gates=2, seed=1))
nf1 = t.add_module(Bypass(name="bypass1", t0_ns=1000 / CYCLES_PER_NS, t1_ns=100 / CYCLES_PER_NS))
nf2 = t.add_module(Bypass(name="bypass2", t0_ns=1000 / CYCLES_PER_NS, t1_ns=100 / CYCLES_PER_NS))
split[0] >> nf1
split[1] >> nf2
batchy.add_flow("flow1", [split, nf1], delay_slo_ns=slo1)
batchy.add_flow("flow2", [split, nf2], delay_slo_ns=slo2)
batchy.add_source()
batchy.add_sink()
batchy.set_controller(controller)
batchy.run(rounds, control_period_s=period_s, warmup_s=warmup_s)
batchy.plot("simple_pipeline.png")
batchy.dump("simple_pipeline.csv")
