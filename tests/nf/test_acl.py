"""ACL: rule parsing, rules files, crafted packets, and a brute-force reference (hypothesis)."""
import ipaddress
import socket
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailgate.core.clock import VirtualClock
from tailgate.core.errors import ArgError
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.runtime import Runtime
from tailgate.nf.acl import ACL, compile_rules, load_rules, parse_rule
from tailgate.nf.basic import Sink
from tailgate.packet.pool import PacketPool

MAC = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"


# -- frames --------------------------------------------------------------------------------------
def l4_bytes(proto, sport, dport):
    if proto == 6:
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x10, 1024, 0, 0)
    if proto == 17:
        return struct.pack("!HHHH", sport, dport, 8 + 4, 0) + b"abcd"
    if proto in (1, 58):
        return struct.pack("!BBHI", 8, 0, 0, 0)
    return b"\x00" * 8  # some other protocol (e.g. GRE): no ports


def frame(fam=4, src=None, dst=None, proto=17, sport=1000, dport=2000, frag_offset=0):
    """Ethernet + IPv4/IPv6 + L4 built with struct; fam=0 gives an ARP-like non-IP frame."""
    if fam == 0:
        return MAC + b"\x08\x06" + b"\x00" * 28
    seg = l4_bytes(proto, sport, dport)
    if fam == 4:
        src = src or "10.0.0.1"
        dst = dst or "10.0.0.2"
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 1, frag_offset, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
        return MAC + b"\x08\x00" + ip + seg
    src = src or "2001:db8::1"
    dst = dst or "2001:db8::2"
    ip = struct.pack("!IHBB", 6 << 28, len(seg), proto, 64) + socket.inet_pton(socket.AF_INET6, src) + \
        socket.inet_pton(socket.AF_INET6, dst)
    return MAC + b"\x86\xdd" + ip + seg


def run_direct(module, frames):
    pool = PacketPool(n_slots=2048)
    module.pool = pool
    module.process(pool.from_frames(frames))
    fate = {}
    for g, b in module._out:
        for f in b.frames():
            fate.setdefault(f, []).append(g)
    module._out.clear()
    return fate, pool


# -- brute-force reference --------------------------------------------------------------------------
def ref_first_match(rules, pkt):
    """pkt: dict(fam, src, dst, proto, sport, dport) with None ports where the packet has none."""
    for i, r in enumerate(rules):
        ok = True
        for key in ("src", "dst"):
            spec = str(r.get(key, "*"))
            if spec in ("*", "any"):
                continue
            net = ipaddress.ip_network(spec, strict=False)
            if pkt["fam"] != net.version or ipaddress.ip_address(pkt[key]) not in net:
                ok = False
        proto = r.get("proto", "*")
        if ok and proto != "*":
            num = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}.get(proto, proto)
            if pkt["fam"] == 0 or pkt["proto"] != int(num):
                ok = False
        for key in ("sport", "dport"):
            spec = r.get(key, "*")
            if ok and spec != "*":
                if isinstance(spec, int):
                    lo = hi = spec
                else:
                    a, _, b = str(spec).partition("-")
                    lo, hi = int(a), int(b or a)
                if pkt[key] is None or not lo <= pkt[key] <= hi:
                    ok = False
        if ok:
            return i
    return -1


# -- parsing -------------------------------------------------------------------------------------------
def test_parse_rule_forms():
    assert parse_rule(dict(action="accept")) == (0, 0, 0, 0, 0, -1, -1, 65535, -1, 65535, 0)
    r = parse_rule(dict(src="10.1.2.3/8", dst="192.0.2.1", proto="udp", sport="1000-2000", dport=53, action=3))
    assert r == (4, 0x0A000000, 0xFF000000, 0xC0000201, 0xFFFFFFFF, 17, 1000, 2000, 53, 53, 3)
    r = parse_rule("2001:db8::/32 * tcp * 80 drop")
    assert r[0] == 6 and r[1] == 0x20010DB8 << 96 and r[5] == 6 and r[8:] == (80, 80, -1)
    assert parse_rule(("*", "*", 47, "*", "*", "7"))[5:] == (47, -1, 65535, -1, 65535, 7)


@pytest.mark.parametrize(
    "rule, msg",
    [
        (dict(src="10.0.0.0/33", action="drop"), "src: bad prefix length"),
        (dict(src="10.0.0.0/8", dst="2001:db8::/32", action="drop"), "src is IPv4 but dst is IPv6"),
        (dict(proto="tcpp", action="drop"), "unknown protocol"),
        (dict(proto=300, action="drop"), "out of range"),
        (dict(sport="2000-1000", action="drop"), "empty port range"),
        (dict(dport=70000, action="drop"), "0..65535"),
        (dict(dport="8o", action="drop"), "bad port"),
        (dict(src="*"), "no 'action'"),
        (dict(action="maybe"), "not accept, drop or a gate"),
        (dict(action="drop", port=80), "unknown rule field 'port'"),
        (dict(src="10.0.0.256", action="drop"), "bad IPv4"),
    ],
)
def test_rule_errors(rule, msg, pipeline):
    with pytest.raises(ValueError, match=msg):
        parse_rule(rule)
    with pytest.raises(ArgError, match=r"rules\[1\]: .*" + msg.split(":")[-1].strip()):
        ACL(rules=[dict(action="accept"), rule])


def test_rules_file_and_errors(tmp_path, pipeline):
    f = tmp_path / "acl.rules"
    f.write_text("# src dst proto sport dport action\n\n10.0.0.0/8 * udp * 53 accept  # dns\n* * * * * 2\n")
    rules, lines = load_rules(f)
    assert lines == [3, 4] and rules[0][5] == 17 and rules[1][-1] == 2
    acl = ACL(rules_file=str(f))
    assert acl.n_ogates == 3
    f.write_text("* * * * * accept\n\n* * udp * 53\n")
    with pytest.raises(ArgError, match=r"acl\.rules line 3: expected 6 fields"):
        ACL(rules_file=str(f))
    f.write_text("* * * * * accept\n* * udp * 99999 accept\n")
    with pytest.raises(ArgError, match=r"acl\.rules line 2: dport"):
        load_rules(f)
    f.write_text("* * * * * accept\n* * udp * 53 5\n")
    with pytest.raises(ArgError, match=r"acl\.rules line 2: gate 5 is out of range"):
        ACL(rules_file=str(f), gates=2)
    with pytest.raises(ArgError, match="missing.rules"):
        ACL(rules_file=str(tmp_path / "missing.rules"))
    with pytest.raises(ArgError, match="exactly one of"):
        ACL()
    with pytest.raises(ArgError, match="default_action"):
        ACL(rules=[], default_action="sometimes")


# -- crafted packets ------------------------------------------------------------------------------
def test_acl_crafted_packets_first_match_wins(pipeline):
    rules = [
        dict(src="10.0.0.0/8", proto="udp", dport=53, action="accept"),
        dict(dst="192.0.2.0/24", proto="tcp", dport="1000-2000", action=2),
        dict(proto="icmp", action="drop"),
        dict(src="10.1.0.0/16", action=1),  # shadowed for UDP/53 by rule 0
        dict(src="2001:db8::/32", proto="udp", sport="5000-6000", action=1),
        dict(proto="udp", dport="7-9", action="drop"),
    ]
    acl = ACL(rules=rules, default_action="accept")
    assert acl.n_ogates == 3
    f = {
        "dns": frame(src="10.1.2.3", proto=17, dport=53),
        "tcp_in": frame(dst="192.0.2.9", proto=6, dport=1500),
        "tcp_out": frame(dst="192.0.2.9", proto=6, dport=2001),
        "icmp": frame(proto=1),
        "ten_one": frame(src="10.1.9.9", proto=17, dport=54),
        "v6_udp": frame(fam=6, src="2001:db8::7", proto=17, sport=5500),
        "v6_tcp": frame(fam=6, src="2001:db8::7", proto=6, sport=5500),
        "icmp6": frame(fam=6, proto=58),
        "arp": frame(fam=0),
        "udp_discard": frame(src="11.0.0.1", proto=17, dport=9),
        "gre": frame(proto=47),
    }
    fate, pool = run_direct(acl, list(f.values()))
    assert fate[f["dns"]] == [0]
    assert fate[f["tcp_in"]] == [2]
    assert fate[f["tcp_out"]] == [0]  # default accept
    assert f["icmp"] not in fate
    assert fate[f["ten_one"]] == [1]
    assert fate[f["v6_udp"]] == [1]
    assert fate[f["v6_tcp"]] == [0]
    assert fate[f["icmp6"]] == [0]  # "icmp" is protocol 1; ICMPv6 is 58
    assert fate[f["arp"]] == [0]
    assert f["udp_discard"] not in fate
    assert fate[f["gre"]] == [0]
    c = acl.counters()
    assert [c[f"hits.{i}"] for i in range(6)] == [1, 1, 1, 1, 1, 1]
    assert c["hits.default"] == 5
    assert c["drops.denied"] == 2 and c["drops.no_match"] == 0
    assert pool.n_used == len(f) - 2


def test_acl_default_drop_ports_need_l4_and_wildcards_match_non_ip(pipeline):
    acl = ACL(rules=[dict(dport="*", sport="0-65535", action=1), dict(action=0)], gates=2)
    frames = [frame(proto=17, sport=0, dport=0), frame(proto=1), frame(fam=0), frame(proto=17, frag_offset=100)]
    fate, _ = run_direct(acl, frames)
    # rule 0 needs ports (an explicit range); ICMP, ARP and a non-first fragment fall to rule 1
    assert [fate[fr] for fr in frames] == [[1], [0], [0], [0]]
    acl2 = ACL(rules=[dict(proto="udp", action="accept")])
    fate, _ = run_direct(acl2, [frame(proto=17), frame(proto=6), frame(fam=0)])
    assert acl2.counter("drops.no_match") == 2 and acl2.counter("hits.default") == 2
    assert acl2.counter("hits.0") == 1


def test_acl_knob_recompiles(pipeline):
    acl = ACL(rules=[dict(proto="udp", action="drop")], default_action="accept")
    fr = frame(proto=17)
    assert run_direct(acl, [fr])[0] == {}
    acl.set("rules", [dict(proto="tcp", action="drop")])
    assert run_direct(acl, [fr])[0] == {fr: [0]}
    assert acl.counter("hits.default") == 1
    with pytest.raises(ArgError, match="rules\\[0\\]"):
        acl.set("rules", [dict(proto="nope", action="drop")])
    assert acl.get("rules") == [dict(proto="tcp", action="drop")]  # old rules kept
    assert run_direct(acl, [fr])[0] == {fr: [0]}


def test_acl_in_pipeline(frame_source):
    frames = [frame(proto=17, dport=53), frame(proto=6, dport=80), frame(proto=1)]
    with Pipeline() as p:
        src = frame_source(frames=frames, repeat=40)
        acl = ACL(rules=[dict(proto="udp", action=0), dict(proto="tcp", action=1)])
        s0, s1 = Sink(name="s0"), Sink(name="s1")
        src >> acl
        acl[0] >> s0
        acl[1] >> s1
        rt = Runtime(p, VirtualClock(), burst=32)
        rt.run()
    assert s0.counter("packets_in") == 40 and s1.counter("packets_in") == 40
    assert acl.counter("drops.no_match") == 40
    assert acl.counter("hits.0") == 40 and acl.counter("hits.1") == 40
    assert rt.pool.n_used == 0


# -- property test against the reference -------------------------------------------------------------
V4 = ["10.0.0.1", "10.1.2.3", "10.1.200.4", "192.0.2.7", "192.0.3.7", "8.8.8.8"]
V6 = ["2001:db8::1", "2001:db8:1::5", "2001:db9::1", "fe80::1"]
NETS4 = ["10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24", "8.8.8.8/32", "0.0.0.0/0", "10.1.2.3"]
NETS6 = ["2001:db8::/32", "2001:db8:1::/48", "::/0", "fe80::1/128"]
PORTS = [0, 53, 80, 1000, 1500, 2000, 65535]

port_spec = st.one_of(
    st.just("*"), st.sampled_from(PORTS),
    st.tuples(st.sampled_from(PORTS), st.sampled_from(PORTS)).map(lambda t: f"{min(t)}-{max(t)}"),
)


@st.composite
def rule_st(draw):
    fam = draw(st.sampled_from([0, 0, 4, 4, 6]))
    nets = {0: ["*"], 4: NETS4 + ["*"], 6: NETS6 + ["*"]}[fam]
    r = dict(
        src=draw(st.sampled_from(nets)), dst=draw(st.sampled_from(nets)),
        proto=draw(st.sampled_from(["*", "tcp", "udp", "icmp", "icmpv6", 47])),
        sport=draw(port_spec), dport=draw(port_spec),
        action=draw(st.sampled_from(["accept", "drop", 1, 2])),
    )
    return {k: v for k, v in r.items() if v != "*" or draw(st.booleans())}


@st.composite
def packet_st(draw):
    fam = draw(st.sampled_from([0, 4, 4, 6]))
    proto = draw(st.sampled_from([6, 17, 47, 1 if fam != 6 else 58]))
    addrs = V4 if fam == 4 else V6
    return dict(
        fam=fam,
        src=draw(st.sampled_from(addrs)),
        dst=draw(st.sampled_from(addrs)),
        proto=proto,
        sport=draw(st.sampled_from(PORTS)),
        dport=draw(st.sampled_from(PORTS)),
    )


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rules=st.lists(rule_st(), max_size=12), packets=st.lists(packet_st(), min_size=1, max_size=30),
       default=st.sampled_from(["accept", "drop", 2]))
def test_acl_matches_reference(rules, packets, default):
    with Pipeline():
        acl = ACL(rules=rules, default_action=default, gates=3)
    frames = []
    for p in packets:
        if p["fam"] == 0:
            frames.append(frame(fam=0))
        else:
            frames.append(frame(p["fam"], p["src"], p["dst"], p["proto"], p["sport"], p["dport"]))
        if p["fam"] == 0 or p["proto"] not in (6, 17):
            p["sport"] = p["dport"] = None
    pool = PacketPool(n_slots=256)
    batch = pool.from_frames(frames)
    slots = batch.idx.copy()
    acl.process(batch)
    gate_of = {}
    for g, b in acl._out:
        for s in b.idx.tolist():
            gate_of[s] = g
    dflt = {"accept": 0, "drop": None, 2: 2}[default]
    hits = np.zeros(len(rules) + 1, np.int64)
    for s, p in zip(slots.tolist(), packets):
        i = ref_first_match(rules, p)
        hits[i] += 1
        if i >= 0:
            a = rules[i]["action"]
            want = {"accept": 0, "drop": None}.get(a, a)
        else:
            want = dflt
        assert gate_of.get(s) == want, (p, i, rules)
    np.testing.assert_array_equal(acl.hits, hits[list(range(len(rules))) + [-1]])
    # the array-level matcher agrees with the packet kernel
    t = compile_rules(rules)
    fam = np.array([p["fam"] for p in packets])

    def halves(key):
        v = [int(ipaddress.ip_address(p[key])) if p["fam"] else 0 for p in packets]
        return np.array([x >> 64 for x in v], np.uint64), np.array([x & ((1 << 64) - 1) for x in v], np.uint64)

    sh, sl = halves("src")
    dh, dl = halves("dst")
    proto = np.array([p["proto"] if p["fam"] else 0x100 for p in packets])
    sp = np.array([-1 if p["sport"] is None else p["sport"] for p in packets])
    dp = np.array([-1 if p["dport"] is None else p["dport"] for p in packets])
    want = [ref_first_match(rules, p) for p in packets]
    assert t.match(fam, sh, sl, dh, dl, proto, sp, dp).tolist() == want
