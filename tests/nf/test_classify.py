"""ExactMatch and HashSplit on crafted frames."""
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
from tailgate.nf.basic import Sink
from tailgate.nf.classify import FIELDS, ExactMatch, HashSplit, parse_field_value
from tailgate.packet.pool import PacketPool
from tailgate.dataplane.drive import drive

MAC1 = "02:00:00:00:00:01"
MAC2 = "02:00:00:00:00:02"


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def frame(dst_mac=MAC2, src_mac=MAC1, vlan=None, fam=4, src="10.0.0.1", dst="10.0.0.2", proto=17, sport=1000,
          dport=2000, ttl=64):
    """Ethernet [+ 802.1Q] + IPv4/IPv6 + TCP/UDP/ICMP, or ARP with fam=0 (struct-built)."""
    l2 = mac(dst_mac) + mac(src_mac)
    if vlan is not None:
        l2 += struct.pack("!HH", 0x8100, vlan)
    if fam == 0:
        return l2 + b"\x08\x06" + b"\x00" * 28
    if proto == 6:
        seg = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x12, 1024, 0, 0)
    elif proto == 17:
        seg = struct.pack("!HHHH", sport, dport, 12, 0) + b"data"
    else:
        seg = struct.pack("!BBHI", 8, 0, 0, 0)
    if fam == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 1, 0, ttl, proto, 0, socket.inet_aton(src),
                         socket.inet_aton(dst))
        return l2 + b"\x08\x00" + ip + seg
    ip = struct.pack("!IHBB", 6 << 28, len(seg), proto, ttl) + socket.inet_pton(socket.AF_INET6, src) + \
        socket.inet_pton(socket.AF_INET6, dst)
    return l2 + b"\x86\xdd" + ip + seg


def run_direct(module, frames):
    return drive(module, frames)


# -- ExactMatch ----------------------------------------------------------------------------------
def test_parse_field_values():
    assert parse_field_value("eth.dst", "02:00:00:00:00:0a") == 0x02000000000A
    assert parse_field_value("eth.dst", "2-0-0-0-0-a") == 0x02000000000A
    assert parse_field_value("ipv4.dst", "10.0.0.1") == 0x0A000001
    assert parse_field_value("eth.type", "0x0800") == 0x0800
    assert parse_field_value("eth.type", "arp") == 0x0806
    assert parse_field_value("ipv4.proto", "udp") == 17
    assert parse_field_value("udp.dport", "53") == 53
    for field, bad in [("vlan.vid", 4096), ("udp.dport", -1), ("ipv4.proto", "10.0.0.1"), ("udp.dport", "http"),
                       ("eth.dst", 1.5)]:
        with pytest.raises(ValueError):
            parse_field_value(field, bad)


def test_exact_match_mac(pipeline):
    em = ExactMatch(field="eth.dst", rules={MAC1: 0, "02:00:00:00:00:02": 1}, default_gate=2)
    assert em.n_ogates == 3
    frames = [frame(dst_mac=MAC1), frame(dst_mac=MAC2, sport=1), frame(dst_mac="ff:ff:ff:ff:ff:ff"), frame(fam=0)]
    out, _ = run_direct(em, frames)
    assert out == {0: [frames[0]], 1: [frames[1], frames[3]], 2: [frames[2]]}


@pytest.mark.parametrize(
    "field, rules, frames_gates",
    [
        ("ipv4.dst", {"10.0.0.2": 0, "10.0.0.3": 1},
         [(dict(dst="10.0.0.2"), 0), (dict(dst="10.0.0.3"), 1), (dict(dst="10.0.0.4"), None)]),
        ("ipv4.src", {"10.9.9.9": 1}, [(dict(src="10.9.9.9"), 1), (dict(), None)]),
        ("ipv4.proto", {"udp": 0, "tcp": 1}, [(dict(proto=17), 0), (dict(proto=6), 1), (dict(proto=1), None)]),
        ("udp.dport", {53: 1, 2000: 0}, [(dict(dport=53), 1), (dict(dport=2000), 0), (dict(proto=6, dport=53), None)]),
        ("tcp.dport", {80: 0}, [(dict(proto=6, dport=80), 0), (dict(proto=17, dport=80), None)]),
        ("dport", {80: 0, 0: 1}, [(dict(proto=6, dport=80), 0), (dict(proto=17, dport=80), 0), (dict(proto=1), None),
                                  (dict(proto=17, dport=0), 1)]),
        ("sport", {1000: 1}, [(dict(sport=1000), 1), (dict(sport=1001), None)]),
        ("eth.type", {"ipv4": 0, "arp": 1, "0x86dd": 2},
         [(dict(), 0), (dict(fam=0), 1), (dict(fam=6, src="::1", dst="::2"), 2), (dict(vlan=5), None)]),
        ("ethertype", {0x0800: 0}, [(dict(vlan=5), 0), (dict(fam=0), None)]),
        ("vlan.vid", {0: 0, 7: 1}, [(dict(vlan=7), 1), (dict(vlan=0), 0), (dict(), None)]),
        ("ipv4.ttl", {1: 1}, [(dict(ttl=1), 1), (dict(ttl=2), None), (dict(fam=6, src="::1", dst="::2", ttl=1), None)]),
        ("ipv6.hop_limit", {1: 0}, [(dict(fam=6, src="::1", dst="::2", ttl=1), 0), (dict(ttl=1), None)]),
        ("ip_proto", {"icmp": 0, 58: 1}, [(dict(proto=1), 0), (dict(fam=6, src="::1", dst="::2", proto=58), 1)]),
    ],
)
def test_exact_match_fields(field, rules, frames_gates, pipeline):
    em = ExactMatch(field=field, rules=rules)
    frames = [frame(**kw) for kw, _ in frames_gates]
    out, pool = run_direct(em, frames)
    want = {}
    for fr, (_, g) in zip(frames, frames_gates):
        if g is not None:
            want.setdefault(g, []).append(fr)
    assert out == want
    n_drop = sum(g is None for _, g in frames_gates)
    assert em.counter("drops.no_match") == n_drop
    assert pool.n_used == len(frames) - n_drop


def test_exact_match_errors(pipeline):
    with pytest.raises(ArgError, match=r"unknown field 'eth.dest'; valid fields: eth\.dst, eth\.src"):
        ExactMatch(field="eth.dest", rules={})
    with pytest.raises(ArgError, match="does not fit"):
        ExactMatch(field="vlan.vid", rules={5000: 0})
    with pytest.raises(ArgError, match="same eth.type value"):
        ExactMatch(field="eth.type", rules={"arp": 0, 0x0806: 1})
    with pytest.raises(ArgError, match="gate 3 is out of range"):
        ExactMatch(field="dport", rules={80: 3}, gates=2)
    with pytest.raises(ArgError, match="non-negative int"):
        ExactMatch(field="dport", rules={80: "x"})
    with pytest.raises(ArgError, match="missing required argument 'rules'"):
        ExactMatch(field="dport")
    assert "ipv4.dst" in FIELDS and "vlan.inner_vid" in FIELDS


def test_exact_match_list_rules_and_knob(pipeline):
    em = ExactMatch(field="udp.dport", rules=[(53, 1), (67, 0)], gates=3)
    assert em.n_ogates == 3 and em.counter("rules") == 2
    fr = frame(dport=67)
    assert run_direct(em, [fr])[0] == {0: [fr]}
    em.set("rules", {67: 2})
    assert run_direct(em, [fr])[0] == {2: [fr]}
    with pytest.raises(ArgError, match="out of range"):
        em.set("rules", {67: 3})
    assert em.get("rules") == {67: 2} and run_direct(em, [fr])[0] == {2: [fr]}  # old rules kept


def test_exact_match_failed_field_change_keeps_the_old_field(pipeline):
    em = ExactMatch(field="udp.dport", rules={300: 1}, default_gate=0)
    fr = frame(dport=300)
    with pytest.raises(ArgError, match="does not fit"):
        em.set("field", "ipv4.proto")  # 300 is a port, not a protocol: the rules do not fit the new field
    assert em.get("field") == "udp.dport" and run_direct(em, [fr])[0] == {1: [fr]}  # still matches on dport


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rules=st.dictionaries(st.integers(0, 70), st.integers(0, 3), max_size=20),
    ports=st.lists(st.integers(0, 70), min_size=1, max_size=60),
    default=st.one_of(st.none(), st.integers(0, 3)),
)
def test_exact_match_property(rules, ports, default):
    with Pipeline():
        em = ExactMatch(field="udp.dport", rules=rules, default_gate=default, gates=4)
    pool = PacketPool(n_slots=128)
    batch = pool.from_frames([frame(dport=p) for p in ports])
    slots = batch.idx.copy()
    em.process(batch)
    got = {}
    for g, b in em._out:
        for s in b.idx.tolist():
            got[s] = g
    for s, p in zip(slots.tolist(), ports):
        assert got.get(s) == rules.get(p, default)
    # order is kept within each gate
    for g, b in em._out:
        pos = [slots.tolist().index(s) for s in b.idx.tolist()]
        assert pos == sorted(pos)


def test_exact_match_in_pipeline(frame_source):
    frames = [frame(dport=53), frame(dport=80), frame(dport=443)]
    with Pipeline() as p:
        src = frame_source(frames=frames, repeat=30)
        em = ExactMatch(field="dport", rules={53: 0, 80: 1})
        s0, s1 = Sink(name="s0"), Sink(name="s1")
        src >> em
        em[0] >> s0
        em[1] >> s1
        rt = Runtime(p, VirtualClock(), burst=32)
        rt.run()
    assert (s0.counter("packets_in"), s1.counter("packets_in"), em.counter("drops.no_match")) == (30, 30, 30)
    assert rt.pool.n_used == 0


# -- HashSplit -----------------------------------------------------------------------------------------
def flows(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = rng.integers(1, 2**32 - 1, 2)
        fam = 4 if i % 3 else 6
        proto = 17 if i % 2 else 6
        if fam == 4:
            src, dst = socket.inet_ntoa(int(a).to_bytes(4, "big")), socket.inet_ntoa(int(b).to_bytes(4, "big"))
        else:
            src, dst = f"2001:db8::{int(a) & 0xFFFF:x}", f"2001:db8:1::{int(b) & 0xFFFF:x}"
        out.append(frame(fam=fam, src=src, dst=dst, proto=proto, sport=int(rng.integers(1, 65535)),
                         dport=int(rng.integers(1, 65535))))
    return out


def test_hash_split_same_flow_same_gate_and_even_spread(pipeline):
    hs = HashSplit(gates=4, seed=1)
    fl = flows(2000)
    pool = PacketPool(n_slots=8192)
    # every flow three times, in different batches and positions
    g_runs = []
    for perm_seed in range(3):
        order = np.random.default_rng(perm_seed).permutation(len(fl))
        b = pool.from_frames([fl[i] for i in order])
        gates = hs.gates_of(b)
        g = np.empty(len(fl), np.int64)
        g[order] = gates
        g_runs.append(g)
        b.free()
    assert (g_runs[0] == g_runs[1]).all() and (g_runs[0] == g_runs[2]).all()
    counts = np.bincount(g_runs[0], minlength=4)
    assert counts.min() > 0.8 * len(fl) / 4 and counts.max() < 1.2 * len(fl) / 4, counts
    # a different seed gives a different spread
    b = pool.from_frames(fl)
    other = HashSplit(gates=4, seed=2).gates_of(b)
    assert (other != g_runs[0]).mean() > 0.5


def test_hash_split_process_non_ip_to_gate_zero(pipeline):
    hs = HashSplit(gates=8)
    frames = [frame(fam=0), b"\x00" * 12] + flows(200, seed=5)
    out, pool = run_direct(hs, frames)
    assert out[0][:2] == frames[:2]
    assert sum(len(v) for v in out.values()) == len(frames)
    assert len(out) == 8  # 200 flows reach every gate
    # the same frames again: same gates
    out2, _ = run_direct(hs, frames)
    assert out2 == out


def test_hash_split_args(pipeline):
    assert HashSplit().n_ogates == 2
    with pytest.raises(ArgError):
        HashSplit(gates=0)
    hs = HashSplit(gates=1)
    fr = frames = [frame()]
    assert run_direct(hs, frames)[0] == {0: fr}
