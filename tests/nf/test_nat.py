"""StaticNAT and NAPT — translated packets checked against dpkt-recomputed checksums."""
import socket
import struct

import dpkt
import numpy as np
import pytest

from tailgate.core.clock import VirtualClock
from tailgate.core.errors import ArgError
from tailgate.nf.nat import NAPT, StaticNAT
from tailgate.dataplane.drive import drive
from oracles import ip_sum_ok, l4_sum_ok

MAC_A = b"\x02\x00\x00\x00\x00\x01"
MAC_B = b"\x02\x00\x00\x00\x00\x02"
EXT = "198.18.0.1"


# -- helpers ---------------------------------------------------------------------------------------
def ip4(s):
    return socket.inet_aton(s)


def frame(l4="udp", src="10.0.0.1", dst="192.0.2.9", sport=1000, dport=2000, payload=b"payload-bytes",
          icmp_type=8, icmp_id=77, udp_zero_sum=False, frag=False):
    if l4 == "udp":
        seg = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        seg.ulen = 8 + len(payload)
        p = 17
    elif l4 == "tcp":
        seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=99, flags=dpkt.tcp.TH_SYN, data=payload)
        p = 6
    elif l4 == "icmp":
        seg = dpkt.icmp.ICMP(type=icmp_type, code=0, data=dpkt.icmp.ICMP.Echo(id=icmp_id, seq=3, data=payload))
        p = 1
    else:  # GRE-ish: an unsupported protocol
        seg = b"\x00" * 8
        p = 47
    ip = dpkt.ip.IP(src=ip4(src), dst=ip4(dst), p=p, ttl=64, data=seg)
    if frag:
        ip.mf = 1
    ip.len = 20 + len(bytes(seg))
    raw = bytes(ip)
    if udp_zero_sum:
        raw = raw[:26] + b"\x00\x00" + raw[28:]
    return MAC_B + MAC_A + b"\x08\x00" + raw


def run(module, frames, igate=0, pool=None):
    return drive(module, frames, igate=igate, pool=pool)[0]


def ports(ip):
    if ip.p == 1:
        return ip.data.data.id, ip.data.data.id
    return ip.data.sport, ip.data.dport


def parsed(frames):
    return [dpkt.ethernet.Ethernet(f).data for f in frames]


# -- StaticNAT ---------------------------------------------------------------------------------------
RULES = [("10.0.0.1", "198.18.0.1"), ("10.0.0.2", "198.18.0.2")]


def test_static_nat_forward(pipeline):
    nat = StaticNAT(rules=RULES)
    frames = [frame("udp", src="10.0.0.1"), frame("tcp", src="10.0.0.2"), frame("icmp", src="10.0.0.1"),
              frame("udp", src="10.0.0.1", udp_zero_sum=True), frame("udp", src="10.0.0.3")]
    out = run(nat, frames, igate=0)
    assert list(out) == [0]
    ips = parsed(out[0])
    assert [socket.inet_ntoa(i.src) for i in ips] == ["198.18.0.1", "198.18.0.2", "198.18.0.1", "198.18.0.1", "10.0.0.3"]
    for ip in ips:
        assert socket.inet_ntoa(ip.dst) == "192.0.2.9"
        assert ip_sum_ok(ip) and l4_sum_ok(ip)
    assert struct.unpack(">H", out[0][3][40:42])[0] == 0
    assert out[0][4] == frames[4]
    assert nat.counter("translated") == 4 and nat.counter("unmatched") == 1


def test_static_nat_reverse(pipeline):
    nat = StaticNAT(rules="10.0.0.1=198.18.0.1, 10.0.0.2=198.18.0.2")
    frames = [frame("tcp", src="192.0.2.9", dst="198.18.0.2", sport=80, dport=5555),
              frame("udp", src="192.0.2.9", dst="198.18.0.1"),
              frame("udp", src="192.0.2.9", dst="10.0.0.1"),  # internal address from outside: no rule
              MAC_B + MAC_A + b"\x08\x06" + b"\x00" * 28]
    out = run(nat, frames, igate=1)
    assert list(out) == [1]
    ips = parsed(out[1][:3])
    assert [socket.inet_ntoa(i.dst) for i in ips] == ["10.0.0.2", "10.0.0.1", "10.0.0.1"]
    for ip in ips:
        assert ip_sum_ok(ip) and l4_sum_ok(ip)
    assert out[1][2:] == frames[2:]
    assert nat.counter("unmatched") == 2


def test_static_nat_bad_rules(pipeline):
    with pytest.raises(ArgError, match="rules"):
        StaticNAT(rules=[("10.0.0.1", "198.18.0.1"), ("10.0.0.1", "198.18.0.2")])
    with pytest.raises(ArgError, match="rules"):
        StaticNAT(rules=[("10.0.0.1", "1.2.3")])
    with pytest.raises(ArgError, match="rules"):
        StaticNAT(rules=[])


# -- NAPT --------------------------------------------------------------------------------------------
def make_napt(**kw):
    kw.setdefault("external_ip", EXT)
    kw.setdefault("port_min", 40000)
    kw.setdefault("port_max", 40999)
    kw.setdefault("timeout_s", 10.0)
    nat = NAPT(**kw)
    nat.clock = VirtualClock()
    return nat


def test_napt_outbound_allocates_and_reuses(pipeline):
    nat = make_napt()
    frames = [frame("udp", src="10.0.0.1", sport=1000), frame("tcp", src="10.0.0.1", sport=1000),
              frame("udp", src="10.0.0.2", sport=1000), frame("udp", src="10.0.0.1", sport=1000, dst="203.0.113.5"),
              frame("udp", src="10.0.0.1", sport=1001), frame("icmp", src="10.0.0.3", icmp_id=9),
              frame("udp", src="10.0.0.7", udp_zero_sum=True)]
    out = run(nat, frames, igate=0)
    ips = parsed(out[0])
    assert all(socket.inet_ntoa(i.src) == EXT for i in ips)
    for ip in ips:
        assert ip_sum_ok(ip) and l4_sum_ok(ip)
    sp = [ports(i)[0] for i in ips]
    # udp and tcp have separate port spaces; same internal endpoint -> same port whatever the destination
    assert sp == [40000, 40000, 40001, 40000, 40002, 40000, 40003]
    assert struct.unpack(">H", out[0][6][40:42])[0] == 0
    assert nat.counter("mappings") == 6 and nat.counter("mappings_created") == 6
    # a second batch keeps the same mapping
    out2 = run(nat, [frame("udp", src="10.0.0.2", sport=1000)], igate=0)
    assert ports(parsed(out2[0])[0])[0] == 40001
    assert ("udp", "10.0.0.2", 1000, 40001) in nat.mappings()


def test_napt_inbound_round_trip(pipeline):
    nat = make_napt()
    out = run(nat, [frame("tcp", src="10.0.0.5", sport=3333, dport=443, dst="192.0.2.80"),
                    frame("icmp", src="10.0.0.6", icmp_id=4321, dst="192.0.2.80")], igate=0)
    tcp_out, icmp_out = parsed(out[0])
    ext_port = tcp_out.data.sport
    ext_id = icmp_out.data.data.id
    replies = [frame("tcp", src="192.0.2.80", dst=EXT, sport=443, dport=ext_port),
               frame("icmp", src="192.0.2.80", dst=EXT, icmp_type=0, icmp_id=ext_id),
               frame("tcp", src="192.0.2.80", dst=EXT, sport=443, dport=ext_port + 1),  # no mapping
               frame("tcp", src="192.0.2.80", dst="198.18.0.99", sport=443, dport=ext_port),  # not our address
               frame("udp", src="192.0.2.80", dst=EXT, sport=443, dport=ext_port),  # udp has no such mapping
               frame("icmp", src="192.0.2.80", dst=EXT, icmp_type=8, icmp_id=ext_id)]  # echo request in: unsupported
    out = run(nat, replies, igate=1)
    assert list(out) == [1]
    t, i = parsed(out[1])
    assert socket.inet_ntoa(t.dst) == "10.0.0.5" and t.data.dport == 3333 and t.data.sport == 443
    assert socket.inet_ntoa(i.dst) == "10.0.0.6" and i.data.data.id == 4321
    for ip in (t, i):
        assert ip_sum_ok(ip) and l4_sum_ok(ip)
    assert nat.counter("drops.no_mapping") == 3
    assert nat.counter("drops.unsupported") == 1


def test_napt_drop_reasons(pipeline):
    nat = make_napt()
    trunc = bytearray(frame("tcp"))
    trunc[16:18] = struct.pack(">H", 30)  # IP total length cuts the TCP header
    frames = [frame("gre"), frame("udp", frag=True), MAC_B + MAC_A + b"\x86\xdd" + b"\x60" + b"\x00" * 39,
              bytes(trunc), frame("icmp", icmp_type=0)]
    out = run(nat, frames, igate=0)
    assert not out
    c = nat.counters()
    assert c["drops.unsupported"] == 2 and c["drops.fragment"] == 1 and c["drops.not_ipv4"] == 1
    assert c["drops.malformed"] == 1


def test_napt_ports_exhausted_and_expiry(pipeline):
    nat = make_napt(port_min=50000, port_max=50001, timeout_s=1.0)
    out = run(nat, [frame("udp", src="10.0.0.1"), frame("udp", src="10.0.0.2"), frame("udp", src="10.0.0.3")])
    assert [ports(i)[0] for i in parsed(out[0])] == [50000, 50001]
    assert nat.counter("drops.ports_exhausted") == 1
    # half a timeout later 10.0.0.2 is still active
    nat.clock.advance(600_000_000)
    run(nat, [frame("udp", src="10.0.0.2")])
    nat.clock.advance(600_000_000)
    # 10.0.0.1's mapping is idle 1.2 s > 1 s: inbound to it is dropped, 10.0.0.2's still works
    back = run(nat, [frame("udp", src="192.0.2.9", dst=EXT, sport=2000, dport=50000),
                     frame("udp", src="192.0.2.9", dst=EXT, sport=2000, dport=50001)], igate=1)
    assert [socket.inet_ntoa(i.dst) for i in parsed(back[1])] == ["10.0.0.2"]
    # a new flow gets the reclaimed port (swept when the protocol ran out of ports)
    out = run(nat, [frame("udp", src="10.0.0.3")])
    assert ports(parsed(out[0])[0])[0] == 50000
    assert nat.counter("mappings_expired") == 1
    assert ("udp", "10.0.0.3", 1000, 50000) in nat.mappings()
    assert nat.counter("mappings") == 2


def test_napt_periodic_sweep(pipeline):
    nat = make_napt(timeout_s=1.0)
    run(nat, [frame("udp", src=f"10.0.1.{k}") for k in range(1, 101)])
    assert nat.counter("mappings") == 100
    nat.clock.advance(3_000_000_000)
    run(nat, [frame("tcp", src="10.0.9.9")])
    assert nat.counter("mappings") == 1 and nat.counter("mappings_expired") == 100


def test_napt_many_flows_table_consistency(pipeline):
    """Random churn: the hash table and the port table stay consistent (checked against a dict)."""
    nat = make_napt(port_min=1024, port_max=1024 + 299, timeout_s=1.0)
    rng = np.random.default_rng(7)
    ref = {}
    for rnd in range(12):
        srcs = rng.integers(1, 120, 64)
        sps = rng.integers(1000, 1003, 64)
        frames = [frame("udp", src=f"10.1.0.{s}", sport=int(p)) for s, p in zip(srcs, sps)]
        out = run(nat, frames)
        for (s, p), ip in zip(zip(srcs, sps), parsed(out[0])):
            key = (f"10.1.0.{s}", int(p))
            got = ip.data.sport
            if key in ref and ref[key][1] >= rnd - 2:  # seen within the timeout: same port
                assert ref[key][0] == got
            ref[key] = (got, rnd)
            assert ip_sum_ok(ip) and l4_sum_ok(ip)
        nat.clock.advance(400_000_000)
    live = nat.mappings()
    assert len({m[3] for m in live}) == len(live)  # no external port used twice
    for proto, a, p, ext in live:
        assert ref[(a, p)][0] == ext


def test_napt_bad_args(pipeline):
    with pytest.raises(ArgError, match="external_ip"):
        NAPT(external_ip="nope")
    with pytest.raises(ArgError, match="port_min"):
        NAPT(external_ip=EXT, port_min=5000, port_max=4000)


def test_napt_hash_table_backward_shift_delete():
    """White-box: deletions from a crowded linear-probing table keep every other key findable."""
    from tailgate.nf.nat import _home, _table_delete

    cap, shift = 64, 58
    keys = np.full(cap, -1, dtype=np.int64)
    vals = np.zeros(cap, dtype=np.int32)
    rng = np.random.default_rng(3)
    live = {}

    def find(key):
        h = int(_home(key, shift))
        while keys[h] != -1:
            if keys[h] == key:
                return int(vals[h])
            h = (h + 1) & (cap - 1)
        return None

    for v, key in enumerate(rng.choice(1 << 40, 56, replace=False)):
        h = int(_home(int(key), shift))
        while keys[h] != -1:
            h = (h + 1) & (cap - 1)
        keys[h], vals[h] = key, v
        live[int(key)] = v
    for key in rng.permutation(list(live))[:40]:
        _table_delete(keys, vals, np.int64(key), shift)
        del live[int(key)]
        assert find(int(key)) is None
        assert all(find(k) == v for k, v in live.items())
    assert np.count_nonzero(keys != -1) == len(live)


def test_napt_knobs(pipeline):
    nat = make_napt()
    with pytest.raises(ArgError, match="port_min"):
        nat.set("port_min", 2000)
    assert nat.get("port_min") == 40000
    nat.set("timeout_s", 5)
    assert nat._timeout_ns == 5_000_000_000
