"""Batchy's robot-control case (rc-static): one delay-critical flow beside bulk flows.

    tailgate run examples/batchy/rc_static.py controller=projgrad rounds=40

The robot flow (1000 pps, objective ``delay_bound1``, 35 µs as in the NSDI script) goes to a
cheap NF (1 cycle per batch and per packet); 15 bulk flows (no rate limit, objective 100 ms) go
to heavy NFs (10 000 cycles per batch). The original sent everything through a
WeightedRandomSplit and set the weights; here an ExactMatch on the destination picks the robot
traffic, so it arrives at exactly its rate. ``max`` buffers the robot NF too and misses its
objective by orders of magnitude; ``projgrad`` must not.
"""
rounds = get_arg("rounds", 40, int)
period_s = get_arg("period", 0.02, float)
slo1 = get_arg("delay_bound1", 35_000, float)
bulk_leaves = get_arg("leaves", 15, int)
robot_pps = get_arg("robot_pps", 1000.0, float)
controller = get_arg("controller", "projgrad", str)
warmup_s = get_arg("warmup", 0.01, float)
CYCLES_PER_NS = 2.5

w = batchy.add_worker("w0")
t = w.add_task("task0", type=get_arg("task_type", "RTC", str))
sel = t.add_module(ExactMatch(name="selector", field="ipv4.dst", rules={"10.1.0.1": 0}, default_gate=1, gates=2))
robot = t.add_module(Bypass(name="robot", t0_ns=1 / CYCLES_PER_NS, t1_ns=1 / CYCLES_PER_NS))
split = t.add_module(WeightedRandomSplit(name="bulk_split", weights=[1.0] * bulk_leaves, seed=1))
sel[0] >> robot
sel[1] >> split
robot_tmpl = [FlowTemplate(src_ip="10.0.0.1", dst_ip="10.1.0.1", sport=1000, dport=2000)]
bulk_tmpl = [FlowTemplate(src_ip="10.0.0.2", dst_ip="10.2.0.1", sport=1000 + k, dport=3000) for k in range(16)]
batchy.add_flow("robot", [sel, robot], delay_slo_ns=slo1, rate_slo={"packet": robot_pps},
                source_params={"templates": robot_tmpl})
for k in range(bulk_leaves):
    leaf = t.add_module(Bypass(name=f"bulk{k}", t0_ns=10_000 / CYCLES_PER_NS, t1_ns=0.0))
    split[k] >> leaf
    batchy.add_flow(f"bulk{k}", [sel, split, leaf], delay_slo_ns=100_000_000,
                    source_params={"templates": bulk_tmpl, "rate_pps": 0.0} if k == 0 else None)
batchy.add_source()
batchy.add_sink()
batchy.set_controller(controller)
batchy.run(rounds, control_period_s=period_s, warmup_s=warmup_s)
batchy.plot("rc_static.png")
batchy.dump("rc_static.csv")
