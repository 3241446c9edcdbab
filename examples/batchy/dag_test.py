"""Batchy's DAG test: split, two NFs, merge, split again, two NFs (flows over both levels).

    tailgate run examples/batchy/dag_test.py controller=projgrad rounds=40

The splits classify by destination address (ExactMatch), so that each flow's packets take its
own path through both levels and the merge between them, and the delay measured where a flow
leaves is that flow's alone (with random splits, the packets leaving nf_b1 would be a mix of
both upper branches, whatever the flows declare).
"""
rounds = get_arg("rounds", 40, int)
period_s = get_arg("period", 0.01, float)
slo1 = get_arg("delay_slo1", 25_000, float)
slo2 = get_arg("delay_slo2", 30_000, float)
controller = get_arg("controller", "projgrad", str)
warmup_s = get_arg("warmup", 0.01, float)
CYCLES_PER_NS = 2.5
t0, t1 = 1000 / CYCLES_PER_NS, 100 / CYCLES_PER_NS

w = batchy.add_worker("w0")
t = w.add_task("task0", type=get_arg("task_type", "RTC", str))
by_dst = {"10.0.1.1": 0, "10.0.2.1": 1}
s1 = t.add_module(ExactMatch(name="split1", field="ipv4.dst", rules=by_dst, gates=2))
a1 = t.add_module(Bypass(name="nf_a1", t0_ns=t0, t1_ns=t1))
a2 = t.add_module(Bypass(name="nf_a2", t0_ns=t0, t1_ns=t1))
mg = t.add_module(Merge(name="merge", inputs=2), controlled=False)
s2 = t.add_module(ExactMatch(name="split2", field="ipv4.dst", rules=by_dst, gates=2))
b1 = t.add_module(Bypass(name="nf_b1", t0_ns=t0, t1_ns=t1))
b2 = t.add_module(Bypass(name="nf_b2", t0_ns=t0, t1_ns=t1))
s1[0] >> a1
s1[1] >> a2
a1 >> mg.input(0)
a2 >> mg.input(1)
mg >> s2
s2[0] >> b1
s2[1] >> b2
for name, path, slo, dst in (("flow1", [s1, a1, mg, s2, b1], slo1, "10.0.1.1"),
                             ("flow2", [s1, a2, mg, s2, b2], slo2, "10.0.2.1")):
    tmpl = [FlowTemplate(src_ip="10.255.0.1", dst_ip=dst, sport=1000 + i, dport=5000) for i in range(4)]
    batchy.add_flow(name, path, delay_slo_ns=slo, source_params={"templates": tmpl})
batchy.add_source()
batchy.add_sink()
batchy.set_controller(controller)
batchy.run(rounds, control_period_s=period_s, warmup_s=warmup_s)
batchy.plot("dag_test.png")
batchy.dump("dag_test.csv")
