"""Batchy's simple tree: a WeightedRandomSplit into N leaves, one NF and one flow per leaf.

    tailgate run examples/batchy/simpletree.py leaves=16 controller=projgrad rounds=40

The more leaves, the smaller the fragments each leaf gets (32/N packets a round), so the more a
buffer in front of each leaf pays: the leaves cost 10 000 cycles per batch and 100 per packet
(4000 ns / 40 ns at 2.5 cycles/ns), a batchiness of 0.01.
"""
rounds = get_arg("rounds", 40, int)
period_s = get_arg("period", 0.02, float)
leaves = get_arg("leaves", 16, int)
slo = get_arg("delay_slo", 1_000_000, float)   # Batchy's default max_delay (1 ms)
controller = get_arg("controller", "projgrad", str)
warmup_s = get_arg("warmup", 0.01, float)
CYCLES_PER_NS = 2.5

w = batchy.add_worker("w0")
t = w.add_task("task0", type=get_arg("task_type", "RTC", str))
split = t.add_module(WeightedRandomSplit(name="splitter", weights=[1.0] * leaves, seed=1))
for k in range(leaves):
    leaf = t.add_module(Bypass(name=f"leaf{k}", t0_ns=10_000 / CYCLES_PER_NS, t1_ns=100 / CYCLES_PER_NS))
    split[k] >> leaf
    batchy.add_flow(f"flow{k}", [split, leaf], delay_slo_ns=slo)
batchy.add_source()
batchy.add_sink()
batchy.set_controller(controller)
batchy.run(rounds, control_period_s=period_s, warmup_s=warmup_s)
batchy.plot("simpletree.png")
batchy.dump("simpletree.csv")
