"""VLAN, VXLAN and GTP-U encap/decap — results parsed with dpkt and scapy."""
import socket
import struct

import dpkt
import pytest
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN

from tailgate.core.clock import VirtualClock
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.dataplane.runtime import Runtime
from tailgate.nf.tunnel import GTPUDecap, GTPUEncap, VLANPop, VLANPush, VLANSplit, VXLANDecap, VXLANEncap
from tailgate.packet.pool import PacketPool

MAC_A = b"\x02\x00\x00\x00\x00\x01"
MAC_B = b"\x02\x00\x00\x00\x00\x02"


# -- helpers ---------------------------------------------------------------------------------------
def ip_packet(src="10.0.0.1", dst="10.0.0.2", sport=1000, dport=2000, payload=b"inner-payload", l4="udp"):
    if l4 == "udp":
        seg = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        seg.ulen = 8 + len(payload)
        p = 17
    else:
        seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=5, flags=dpkt.tcp.TH_ACK, data=payload)
        p = 6
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=p, ttl=64, data=seg)
    ip.len = 20 + len(bytes(seg))
    return bytes(ip)


def ip6_packet(payload=b"six"):
    udp = dpkt.udp.UDP(sport=7, dport=8, data=payload)
    udp.ulen = 8 + len(payload)
    return bytes(dpkt.ip6.IP6(src=b"\xfd" + b"\x00" * 14 + b"\x01", dst=b"\xfd" + b"\x00" * 14 + b"\x02",
                              nxt=17, hlim=64, data=udp, plen=len(bytes(udp))))


def eth(payload, etype=0x0800, tags=(), pad_to=0):
    hdr = MAC_B + MAC_A
    for tpid, tci in tags:
        hdr += struct.pack(">HH", tpid, tci)
    f = hdr + struct.pack(">H", etype) + payload
    return f + b"\x00" * max(0, pad_to - len(f))


def ip_sum_ok(raw_ip):
    ip = dpkt.ip.IP(raw_ip)
    hdr = bytearray(raw_ip[: ip.hl * 4])
    hdr[10:12] = b"\x00\x00"
    return dpkt.in_cksum(bytes(hdr)) == ip.sum


def run(module, frames, pool=None):
    pool = pool or PacketPool(n_slots=512)
    module.pool = pool
    module._out.clear()
    module.process(pool.from_frames(frames))
    out = {}
    for g, b in module._out:
        out.setdefault(g, []).extend(b.frames())
        assert (b.wire_lens == b.lengths).all()
    return out


ARP = eth(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20, etype=0x0806)


# -- VLAN --------------------------------------------------------------------------------------------
def test_vlan_push(pipeline):
    f = eth(ip_packet())
    out = run(VLANPush(vid=100, pcp=5), [f, ARP, f[:10]])
    a, b = out[0]
    e = dpkt.ethernet.Ethernet(a)
    assert e.vlan_tags[0].id == 100 and e.vlan_tags[0].pri == 5
    assert isinstance(e.data, dpkt.ip.IP) and bytes(e.data) == ip_packet()
    assert a == f[:12] + b"\x81\x00" + struct.pack(">H", (5 << 13) | 100) + f[12:]
    assert Ether(b)[Dot1Q].vlan == 100 and Ether(b)[Dot1Q].type == 0x0806
    m = VLANPush(vid=7)
    run(m, [b"\x00" * 10])
    assert m.counter("drops.truncated") == 1


def test_vlan_push_qinq_and_headroom(pipeline):
    inner = eth(ip_packet(), tags=[(0x8100, 20)])
    out = run(VLANPush(vid=300, tpid=0x88A8), [inner])[0][0]
    s = Ether(out)
    assert s.type == 0x88A8 and s[Dot1AD].vlan == 300 and s[Dot1Q].vlan == 20
    assert s[IP].dst == "10.0.0.2"
    pool = PacketPool(n_slots=16, headroom_bytes=2)
    m = VLANPush(vid=1)
    assert run(m, [inner], pool=pool) == {}
    assert m.counter("drops.no_headroom") == 1 and pool.n_used == 0


def test_vlan_pop(pipeline):
    plain = eth(ip_packet())
    m = VLANPop()
    out = run(m, [eth(ip_packet(), tags=[(0x8100, 42)]), plain,
                  eth(ip_packet(), tags=[(0x88A8, 300), (0x8100, 20)])])[0]
    assert out[0] == plain and out[1] == plain
    assert out[2] == eth(ip_packet(), tags=[(0x8100, 20)])
    assert m.counter("untagged") == 1


def test_vlan_split(pipeline):
    frames = [eth(ip_packet(), tags=[(0x8100, v)]) for v in (10, 20, 30, 10)] + [eth(ip_packet())]
    sp = VLANSplit(vids=[10, 20])
    assert sp.n_ogates == 3
    out = run(sp, frames)
    assert out[0] == [frames[0], frames[3]] and out[1] == [frames[1]] and out[2] == [frames[2], frames[4]]
    sp = VLANSplit(vids="20,10", unmatched="drop", pop=True)
    assert sp.n_ogates == 2
    out = run(sp, frames)
    assert out[1] == [eth(ip_packet())] * 2 and out[0] == [eth(ip_packet())]
    assert sp.counter("drops.unmatched") == 2
    with pytest.raises(ArgError, match="vids"):
        VLANSplit(vids=[10, 10])
    with pytest.raises(ArgError, match="vids"):
        VLANSplit(vids=[5000])


# -- VXLAN -------------------------------------------------------------------------------------------
def vxlan_encap(**kw):
    kw = {"src_ip": "192.0.2.1", "dst_ip": "192.0.2.2", "vni": 5001,
          "src_mac": "02:aa:00:00:00:01", "dst_mac": "02:aa:00:00:00:02", **kw}
    return VXLANEncap(**kw)


def test_vxlan_encap(pipeline):
    inner = [eth(ip_packet(sport=1000)), eth(ip_packet(sport=1001, l4="tcp")), ARP,
             eth(ip_packet(sport=1000), tags=[(0x8100, 9)]), eth(ip_packet(sport=1000)),
             eth(b"\x01" * 50, etype=0x9000)]
    out = run(vxlan_encap(), inner)[0]
    sports = []
    for f_in, f in zip(inner, out):
        assert len(f) == len(f_in) + 50
        p = Ether(f)
        assert p.src == "02:aa:00:00:00:01" and p.dst == "02:aa:00:00:00:02"
        assert p[IP].src == "192.0.2.1" and p[IP].dst == "192.0.2.2" and p[IP].flags.DF
        assert p[IP].len == len(f) - 14 and p[UDP].len == len(f) - 34
        assert p[UDP].dport == 4789 and p[UDP].chksum == 0
        assert p[VXLAN].vni == 5001 and p[VXLAN].flags & 0x08
        assert bytes(p[VXLAN].payload) == f_in
        assert ip_sum_ok(f[14:34])
        e = dpkt.ethernet.Ethernet(f)  # independent parser agrees on the outer headers
        assert e.data.len == len(f) - 14 and e.data.data.ulen == len(f) - 34
        sports.append(p[UDP].sport)
    assert all(49152 <= s <= 65535 for s in sports)
    assert sports[0] == sports[3] == sports[4]   # same inner flow, same outer port
    assert sports[2] == sports[5]                # non-IP inner frames share one port
    assert len(set(sports[:3])) == 3
    out = run(vxlan_encap(sport=7777, dport=8472, vni=(1 << 24) - 1), inner[:1])[0]
    p = Ether(out[0])
    assert p[UDP].sport == 7777 and p[UDP].dport == 8472
    assert struct.unpack(">I", out[0][46:50])[0] >> 8 == (1 << 24) - 1


def test_vxlan_encap_no_headroom(pipeline):
    pool = PacketPool(n_slots=16, headroom_bytes=40)
    m = vxlan_encap()
    assert run(m, [eth(ip_packet())], pool=pool) == {}
    assert m.counter("drops.no_headroom") == 1


def test_vxlan_round_trip(pipeline):
    inner = [eth(ip_packet()), ARP, eth(ip6_packet(), etype=0x86DD), eth(b"\x01", etype=0x9000, pad_to=60)]
    pool = PacketPool(n_slots=64)
    enc = vxlan_encap(vni=77)
    enc.pool = pool
    b = pool.from_frames(inner)
    enc.process(b)
    (g, eb), = enc._out
    dec = VXLANDecap(vni_anno=2)
    dec.pool = pool
    dec.process(eb)
    (g, db), = dec._out
    assert db.frames() == inner
    assert (db.anno(2) == 77).all()
    assert (db.offsets == pool.headroom_bytes).all() and (db.wire_lens == db.lengths).all()


def test_vxlan_decap_rejects(pipeline):
    good = bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=5, dport=4789) / VXLAN(vni=3)
                 / Ether(src="02:00:00:00:00:05") / IP() / UDP())
    no_i = bytes(Ether() / IP() / UDP(dport=4789) / VXLAN(flags=0, vni=3) / Ether() / IP())
    other = eth(ip_packet(dport=4790))
    short_inner = bytes(Ether() / IP() / UDP(dport=4789) / VXLAN(vni=3) / (b"\x00" * 8))
    # outer over IPv6 is fine
    v6 = bytes(Ether() / IPv6() / UDP(dport=4789) / VXLAN(vni=9) / Ether() / IP() / UDP())
    m = VXLANDecap()
    out = run(m, [good, no_i, other, short_inner, ARP, v6])[0]
    assert out == [bytes(Ether(good)[VXLAN].payload), bytes(Ether(v6)[VXLAN].payload)]
    assert m.counter("drops.not_vxlan") == 4


# -- GTP-U -------------------------------------------------------------------------------------------
def gtp_encap(**kw):
    return GTPUEncap(**{"src_ip": "10.10.0.1", "dst_ip": "10.10.0.2", "teid": 0xDEADBEEF, **kw})


def test_gtpu_encap(pipeline):
    small = ip_packet(payload=b"x")           # 29-byte IP packet: the Ethernet frame has padding
    frames = [eth(small, pad_to=60), eth(ip_packet(l4="tcp"), tags=[(0x8100, 33)]),
              eth(ip6_packet(), etype=0x86DD), ARP]
    m = gtp_encap()
    out = run(m, frames)[0]
    assert len(out) == 3 and m.counter("drops.not_ip") == 1
    inners = [small, ip_packet(l4="tcp"), ip6_packet()]
    for f, inner, f_in in zip(out, inners, frames):
        p = Ether(f)
        assert p.src == "02:00:00:00:00:01" and p.dst == "02:00:00:00:00:02"
        outer = p[IP]
        assert outer.src == "10.10.0.1" and outer.dst == "10.10.0.2" and outer.proto == 17
        assert p[UDP].dport == 2152 and p[UDP].sport == 2152 and p[UDP].chksum == 0
        g = p[GTP_U_Header]
        assert g.teid == 0xDEADBEEF and g.gtp_type == 255 and g.version == 1 and g.PT == 1
        assert g.length == len(inner)
        assert bytes(g.payload) == inner
        l2 = 18 if Dot1Q in p else 14
        assert outer.len == 36 + len(inner) and p[UDP].len == 16 + len(inner)
        assert len(f) == l2 + 36 + len(inner)
        assert ip_sum_ok(f[l2:l2 + 20])
        assert f[:l2 - 2] == f_in[:l2 - 2] and f[l2 - 2:l2] == b"\x08\x00"
    assert Ether(out[1])[Dot1Q].vlan == 33


def test_gtpu_encap_macs_and_malformed(pipeline):
    bad_len = bytearray(eth(ip_packet()))
    bad_len[16:18] = struct.pack(">H", 500)
    m = gtp_encap(src_mac="02:00:00:00:00:aa", dst_mac="02:00:00:00:00:bb")
    out = run(m, [eth(ip_packet()), bytes(bad_len)])
    p = Ether(out[0][0])
    assert p.src == "02:00:00:00:00:aa" and p.dst == "02:00:00:00:00:bb"
    assert m.counter("drops.malformed") == 1
    pool = PacketPool(n_slots=16, headroom_bytes=20)
    m = gtp_encap()
    assert run(m, [eth(ip_packet())], pool=pool) == {}
    assert m.counter("drops.no_headroom") == 1


def test_gtpu_round_trip(pipeline):
    frames = [eth(ip_packet(payload=b"x")), eth(ip_packet(l4="tcp"), tags=[(0x8100, 33)]),
              eth(ip6_packet(), etype=0x86DD)]
    pool = PacketPool(n_slots=64)
    enc, dec = gtp_encap(), GTPUDecap()
    enc.pool = dec.pool = pool
    enc.process(pool.from_frames([eth(ip_packet(payload=b"x"), pad_to=60)] + frames[1:]))
    dec.process(enc._out[0][1])
    assert dec._out[0][1].frames() == frames


def test_gtpu_decap_extension_headers_and_rejects(pipeline):
    inner = IP(src="172.16.0.1", dst="8.8.8.8") / UDP(sport=1, dport=53) / b"q"
    ext = bytes(Ether(src="02:00:00:00:00:0c", dst="02:00:00:00:00:0d") / IP(src="10.10.0.2", dst="10.10.0.1")
                / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=5, next_ex=0x85, E=1)
                / GTPPDUSessionContainer(type=0, QFI=9) / inner)
    plain = bytes(Ether() / IP() / UDP(dport=2152) / GTP_U_Header(teid=6) / IPv6() / UDP())
    echo = bytes(Ether() / IP() / UDP(dport=2152) / GTP_U_Header(teid=0, gtp_type=1, S=1, seq=1))
    not_ip = bytes(Ether() / IP() / UDP(dport=2152) / GTP_U_Header(teid=6) / (b"\x00" * 30))
    m = GTPUDecap()
    out = run(m, [ext, plain, echo, not_ip, ARP])[0]
    assert out[0] == ext[:12] + b"\x08\x00" + bytes(inner)
    assert Ether(out[0])[IP].dst == "8.8.8.8"
    assert out[1][12:14] == b"\x86\xdd" and out[1][14:] == bytes(Ether(plain)[IPv6])
    assert m.counter("drops.not_gtpu") == 3


# -- in a running pipeline ------------------------------------------------------------------------------
class Capture(Module):
    n_ogates = 0

    def setup(self):
        self.frames = []

    def process(self, batch):
        self.frames.extend(batch.frames())
        batch.free()


def test_tunnels_in_pipeline(pipeline, frame_source):
    frames = [eth(ip_packet(sport=p)) for p in range(1000, 1040)]
    src = frame_source(frames=frames)
    cap = Capture()
    src >> VLANPush(vid=5) >> vxlan_encap() >> gtp_encap() >> GTPUDecap() >> VXLANDecap() >> VLANPop() >> cap
    pool = PacketPool(n_slots=256)
    rt = Runtime(pipeline, VirtualClock(), pool=pool, burst=16)
    rt.run()
    assert cap.frames == frames
    assert pool.n_used == 0


def test_every_module_survives_mangled_frames(pipeline):
    """Truncated and bit-flipped frames: no crash, and every packet is either emitted or dropped."""
    import numpy as np

    from tailgate.nf.ip import CheckIPHeader, DecTTL, IPChecksum, MACRewrite, SetIPv4, UpdateTTL
    from tailgate.nf.nat import NAPT, StaticNAT

    base = [eth(ip_packet()), eth(ip_packet(l4="tcp"), tags=[(0x8100, 3)]), eth(ip6_packet(), etype=0x86DD),
            bytes(Ether() / IP() / UDP(dport=4789) / VXLAN(vni=3) / Ether() / IP() / UDP()),
            bytes(Ether() / IP() / UDP(dport=2152) / GTP_U_Header(teid=6) / IP() / UDP())]
    rng = np.random.default_rng(11)
    frames = []
    for _ in range(300):
        f = bytearray(base[rng.integers(len(base))])
        for _ in range(rng.integers(0, 4)):
            f[rng.integers(len(f))] = rng.integers(256)
        frames.append(bytes(f[: rng.integers(1, len(f) + 1)]))
    modules = [CheckIPHeader(), DecTTL(), UpdateTTL(), MACRewrite(src="02:00:00:00:00:07"), IPChecksum(l4=True),
               SetIPv4(field="src", value="1.2.3.4"), StaticNAT(rules=[("10.0.0.1", "9.9.9.9")]),
               NAPT(external_ip="9.9.9.8"), VLANPush(vid=1), VLANPop(), VLANSplit(vids=[3]),
               vxlan_encap(), VXLANDecap(), gtp_encap(), GTPUDecap()]
    for m in modules:
        for ig in range(m.n_igates):
            pool = PacketPool(n_slots=512)
            m.pool = pool
            m._out.clear()
            m.current_igate = ig
            before = int(m.drop_counts.sum())
            m.process(pool.from_frames(frames))
            emitted = sum(len(b) for _, b in m._out)
            assert emitted + int(m.drop_counts.sum()) - before == len(frames), m
            assert pool.n_used == emitted
            for _, b in m._out:
                assert (b.offsets >= 0).all() and (b.offsets + b.lengths <= pool.slot_bytes).all()
                assert (b.lengths >= 0).all()
