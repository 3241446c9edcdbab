"""Batchy's L3VRF pipeline: per VLAN a routing table (VRF), per next hop TTL/MAC/checksum and an
ACL, then a shared demultiplexer on the destination port into one NF per flow.

    tailgate run examples/batchy/l3vrf.py vlans=2,nhops=4,controller=projgrad,rounds=40

Costs: IPLookup 214.7/40.2 and DPDKACL 195.8/33.1 ns (the reference sheet's l3vrf values);
VLANSplit/VLANPop/UpdateTTL/MACRewrite/IPChecksum/ExactMatch tailgate's nominal ones; the per-flow
NF is a Bypass of 1000 cycles per batch and 100 per packet at 2.5 cycles/ns.
"""
rounds = get_arg("rounds", 40, int)
period_s = get_arg("period", 0.01, float)
vlans = get_arg("vlans", 2, int)
nhops = get_arg("nhops", 4, int)
slo = get_arg("max_delay", 80_000, float)
controller = get_arg("controller", "projgrad", str)
warmup_s = get_arg("warmup", 0.01, float)
CYCLES_PER_NS = 2.5

w = batchy.add_worker("w0")
t = w.add_task("task0", type=get_arg("task_type", "RTC", str))
vsplit = t.add_module(VLANSplit(name="vlan_split", vids=[100 + v for v in range(vlans)], unmatched="drop"))
n_flows = vlans * nhops
demux = t.add_module(ExactMatch(name="dport_demux", field="udp.dport", rules={6000 + k: k for k in range(n_flows)},
                                gates=n_flows), T_0=117.8, T_1=19.2)
pieces = []
for v in range(vlans):
    pop = t.add_module(VLANPop(name=f"pop{v}"))
    lookup = t.add_module(IPv4Lookup(name=f"vrf{v}", routes_list=[(f"10.{v}.{h}.0/24", h) for h in range(nhops)],
                                     gates=nhops), T_0=214.7, T_1=40.2)
    vsplit[v] >> pop >> lookup
    for h in range(nhops):
        k = v * nhops + h
        ttl = t.add_module(UpdateTTL(name=f"ttl{v}_{h}"))
        mac = t.add_module(MACRewrite(name=f"mac{v}_{h}", dst=f"02:00:00:02:{v:02x}:{h:02x}"))
        csum = t.add_module(IPChecksum(name=f"csum{v}_{h}"))
        acl = t.add_module(ACL(name=f"acl{v}_{h}", rules=[dict(dst=f"10.{v}.{h}.0/24", action="accept")],
                               default_action="drop"), T_0=195.8, T_1=33.1)
        lookup[h] >> ttl >> mac >> csum >> acl >> demux
        nf = t.add_module(Bypass(name=f"nf{v}_{h}", t0_ns=1000 / CYCLES_PER_NS, t1_ns=100 / CYCLES_PER_NS))
        demux[k] >> nf
        tmpl = [FlowTemplate(vlan=100 + v, src_ip="10.255.0.1", dst_ip=f"10.{v}.{h}.1", sport=1000 + i, dport=6000 + k)
                for i in range(4)]
        batchy.add_flow(f"flow{v}_{h}", [vsplit, pop, lookup, ttl, mac, csum, acl, demux, nf], delay_slo_ns=slo,
                        source_params={"templates": tmpl})
batchy.add_source()
batchy.add_sink()
batchy.set_controller(controller)
batchy.run(rounds, control_period_s=period_s, warmup_s=warmup_s)
batchy.plot("l3vrf.png")
batchy.dump("l3vrf.csv")
