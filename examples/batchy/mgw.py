"""Batchy's mobile gateway (mgwcomplex), downlink: users × bearers.

    tailgate run examples/batchy/mgw.py users=4,bearers=4,controller=projgrad,rounds=40

A user selector on the destination IP, a bearer selector on the source port, one NF per (user,
bearer) (Bypass of 2000 cycles per batch and 100 per packet at 2.5 cycles/ns), VXLAN
encapsulation per (user, bearer), then a shared tail: UpdateTTL → IPv4Lookup (5000-route FIB) →
MAC rewrite → IP checksum. Bearer b < last carries a QoS flow with objective ``delay_slo·(b+1)``
at ``qos_pps``; the last bearer is bulk (unlimited rate, a loose objective). Only the downlink
is built (the uplink needs VXLAN-encapsulated synthetic traffic).
"""
rounds = get_arg("rounds", 40, int)
period_s = get_arg("period", 0.01, float)
users = get_arg("users", 4, int)
bearers = get_arg("bearers", 4, int)
slo = get_arg("delay_slo", 100_000, float)
qos_pps = get_arg("qos_pps", 100_000.0, float)
controller = get_arg("controller", "projgrad", str)
warmup_s = get_arg("warmup", 0.01, float)
CYCLES_PER_NS = 2.5

w = batchy.add_worker("w0")
t = w.add_task("task0", type=get_arg("task_type", "RTC", str))
ue = t.add_module(ExactMatch(name="ue_selector", field="ipv4.dst", rules={f"10.10.0.{u + 1}": u for u in range(users)},
                             gates=users), T_0=117.8, T_1=19.2)
ttl = t.add_module(UpdateTTL(name="ttl"), controlled=False)
fib = [("10.10.0.0/24", 0), ("198.18.1.0/24", 0)] + [(f"172.{16 + k // 256}.{k % 256}.0/24", 0) for k in range(4999)]
lookup = t.add_module(IPv4Lookup(name="lookup", routes_list=fib, gates=1), T_0=68.5, T_1=27.5)
mac = t.add_module(MACRewrite(name="mac", dst="02:00:00:00:bb:01"))
csum = t.add_module(IPChecksum(name="csum"))
ttl >> lookup >> mac >> csum
for u in range(users):
    bsel = t.add_module(ExactMatch(name=f"bearer_sel{u}", field="udp.sport", rules={7000 + b: b for b in range(bearers)},
                                   gates=bearers), T_0=117.8, T_1=19.2)
    ue[u] >> bsel
    for b in range(bearers):
        nf = t.add_module(Bypass(name=f"nf{u}_{b}", t0_ns=2000 / CYCLES_PER_NS, t1_ns=100 / CYCLES_PER_NS))
        enc = t.add_module(VXLANEncap(name=f"vxlan{u}_{b}", src_ip="198.18.0.1", dst_ip="198.18.1.1", vni=u * 256 + b),
                           controlled=False)
        bsel[b] >> nf >> enc >> ttl
        bulk = b == bearers - 1
        tmpl = [FlowTemplate(src_ip="10.20.0.1", dst_ip=f"10.10.0.{u + 1}", sport=7000 + b, dport=8000 + i)
                for i in range(4)]
        batchy.add_flow(f"u{u}_b{b}", [ue, bsel, nf, enc, ttl, lookup, mac, csum],
                        delay_slo_ns=100_000_000 if bulk else slo * (b + 1),
                        rate_slo=None if bulk else {"packet": qos_pps},
                        source_params={"templates": tmpl})
batchy.add_source()
batchy.add_sink()
batchy.set_controller(controller)
batchy.run(rounds, control_period_s=period_s, warmup_s=warmup_s)
batchy.plot("mgw.png")
batchy.dump("mgw.csv")
