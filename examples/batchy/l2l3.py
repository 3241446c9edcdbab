"""Batchy's L2L3 pipeline: ethertype check, MAC-based branches, IPv4 lookup into next hops, and per
next hop [ACL] → [StaticNAT] → UpdateTTL → MAC rewrite → IP checksum. One flow per
(branch, next hop), each with its own source and the same delay objective.

    tailgate run examples/batchy/l2l3.py branches=1,nhops=16,controller=projgrad,rounds=40

Costs (ns per batch / per packet) are the reference sheet's profiled values where it has them
(ExactMatch 117.8/19.2, IPLookup 68.5/27.5, DPDKACL 122.3/30.4, StaticNAT 43.5/21) and tailgate's
nominal ones for UpdateTTL, MACRewrite and IPChecksum; on the wall clock the profile of this
machine replaces them where one exists (``tailgate profile``).
"""
rounds = get_arg("rounds", 40, int)
period_s = get_arg("period", 0.01, float)
branches = get_arg("branches", 1, int)
nhops = get_arg("nhops", 16, int)
acl = get_arg("acl", False, bool)
nat = get_arg("nat", False, bool)
slo = get_arg("max_delay", 80_000, float)
fib = get_arg("fib", 500, int)
controller = get_arg("controller", "projgrad", str)
warmup_s = get_arg("warmup", 0.01, float)

w = batchy.add_worker("w0")
t = w.add_task("task0", type=get_arg("task_type", "RTC", str))
eth = t.add_module(ExactMatch(name="ethertype", field="eth.type", rules={"0x0800": 0}, gates=1),
                   T_0=117.8, T_1=19.2)
macs = {f"02:00:00:00:{b // 256:02x}:{b % 256:02x}": b for b in range(branches)}
br = t.add_module(ExactMatch(name="branch", field="eth.dst", rules=macs, gates=branches), T_0=117.8, T_1=19.2)
eth >> br
for b in range(branches):
    # one /24 per next hop, the rest of the FIB filler routes that no flow hits
    routes = [(f"10.{b}.{h}.0/24", h) for h in range(nhops)]
    routes += [(f"172.{16 + (k // 256) % 16}.{k % 256}.0/24", k % nhops) for k in range(max(fib - nhops, 0))]
    lookup = t.add_module(IPv4Lookup(name=f"lookup{b}", routes_list=routes, gates=nhops), T_0=68.5, T_1=27.5)
    br[b] >> lookup
    for h in range(nhops):
        path = [eth, br, lookup]
        prev = None
        if acl:
            a = t.add_module(ACL(name=f"acl{b}_{h}", rules=[dict(dst=f"10.{b}.{h}.0/24", proto="udp", action="accept")],
                                 default_action="drop"), T_0=122.3, T_1=30.4)
            path.append(a)
        if nat:
            n = t.add_module(StaticNAT(name=f"nat{b}_{h}", rules=[(f"10.{b}.{h}.1", f"198.18.{b}.{h}")]),
                             T_0=43.5, T_1=21.0)
            path.append(n)
        ttl = t.add_module(UpdateTTL(name=f"ttl{b}_{h}"))
        mac = t.add_module(MACRewrite(name=f"mac{b}_{h}", src="02:00:00:00:aa:01", dst=f"02:00:00:01:{b:02x}:{h:02x}"))
        csum = t.add_module(IPChecksum(name=f"csum{b}_{h}"))
        path += [ttl, mac, csum]
        lookup[h] >> path[3]
        for u, v in zip(path[3:], path[4:]):
            u >> (v.input(0) if v.n_igates > 1 else v)
        dst_mac = next(m for m, k in macs.items() if k == b)
        tmpl = [FlowTemplate(dst_mac=dst_mac, src_ip="10.255.0.1", dst_ip=f"10.{b}.{h}.1", sport=1000 + i, dport=5000)
                for i in range(4)]
        batchy.add_flow(f"flow{b}_{h}", path, delay_slo_ns=slo, source_params={"templates": tmpl})
batchy.add_source()
batchy.add_sink()
batchy.set_controller(controller)
batchy.run(rounds, control_period_s=period_s, warmup_s=warmup_s)
batchy.plot("l2l3.png")
batchy.dump("l2l3.csv")
