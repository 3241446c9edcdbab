"""CheckIPHeader, DecTTL, UpdateTTL, MACRewrite, IPChecksum, SetIPv4 — checked with dpkt."""
import socket
import struct

import dpkt
import numpy as np
import pytest

from tailgate.core.errors import ArgError
from tailgate.nf.ip import CheckIPHeader, DecTTL, IPChecksum, MACRewrite, SetIPv4, UpdateTTL
from tailgate.packet.pool import PacketPool
from oracles import ip_sum_ok, l4_sum_ok

MAC_A = b"\x02\x00\x00\x00\x00\x01"
MAC_B = b"\x02\x00\x00\x00\x00\x02"


# -- helpers ---------------------------------------------------------------------------------------
def ip4(s):
    return socket.inet_aton(s)


def frame(l4="udp", src="10.0.0.1", dst="10.0.0.2", sport=1000, dport=2000, ttl=64, payload=b"hello-world!",
          vlan=None, tos=0, udp_zero_sum=False):
    if l4 == "udp":
        seg = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        seg.ulen = 8 + len(payload)
        p = 17
    elif l4 == "tcp":
        seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=1234, flags=dpkt.tcp.TH_ACK, data=payload)
        p = 6
    else:
        seg = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=77, seq=1, data=payload))
        p = 1
    ip = dpkt.ip.IP(src=ip4(src), dst=ip4(dst), p=p, ttl=ttl, tos=tos, data=seg)
    ip.len = 20 + len(bytes(seg))
    raw_ip = bytes(ip)
    if udp_zero_sum:
        raw_ip = raw_ip[:26] + b"\x00\x00" + raw_ip[28:]
    if vlan is not None:
        return MAC_B + MAC_A + struct.pack(">HH", 0x8100, vlan) + b"\x08\x00" + raw_ip
    return MAC_B + MAC_A + b"\x08\x00" + raw_ip


def ipv6_frame(hlim=64):
    udp = dpkt.udp.UDP(sport=5, dport=6, data=b"v6data")
    udp.ulen = 14
    ip6 = dpkt.ip6.IP6(src=b"\x20\x01" + b"\x00" * 13 + b"\x01", dst=b"\x20\x01" + b"\x00" * 13 + b"\x02",
                       nxt=17, hlim=hlim, data=udp, plen=14)
    return MAC_B + MAC_A + b"\x86\xdd" + bytes(ip6)


def run(module, frames, igate=0, pool=None):
    pool = pool or PacketPool(n_slots=1024)
    module.pool = pool
    module._out.clear()
    module.current_igate = igate
    batch = pool.from_frames(frames)
    module.process(batch)
    out = {}
    for g, b in module._out:
        out.setdefault(g, []).extend(b.frames())
    return out


# -- CheckIPHeader ---------------------------------------------------------------------------------
def test_check_ip_header_reasons(pipeline):
    good = frame()
    bad_sum = bytearray(good)
    bad_sum[24] ^= 0xFF
    bad_ver = bytearray(good)
    bad_ver[14] = 0x55
    bad_ihl = bytearray(good)
    bad_ihl[14] = 0x44
    too_long = bytearray(good)
    too_long[16:18] = struct.pack(">H", 1000)
    too_short = bytearray(good)
    too_short[16:18] = struct.pack(">H", 10)
    frames = [
        good,                     # 0
        frame(vlan=5),            # 0 (VLAN-tagged IPv4)
        ipv6_frame(),             # not_ipv4
        MAC_B + MAC_A + b"\x08\x06" + b"\x00" * 28,  # ARP: not_ipv4
        good[:10],                # truncated (no Ethernet header)
        good[:14 + 12],           # truncated (IPv4 header cut)
        bytes(bad_ver),
        bytes(bad_ihl),
        bytes(too_long),
        bytes(too_short),
        bytes(bad_sum),
    ]
    m = CheckIPHeader()
    out = run(m, frames)
    assert out[0] == [good, frame(vlan=5)]
    c = m.counters()
    assert c["drops.not_ipv4"] == 2
    assert c["drops.truncated"] == 2
    assert c["drops.bad_version"] == 1
    assert c["drops.bad_ihl"] == 1
    assert c["drops.bad_length"] == 2
    assert c["drops.bad_checksum"] == 1


def test_check_ip_header_no_checksum_check(pipeline):
    bad_sum = bytearray(frame())
    bad_sum[24] ^= 0xFF
    m = CheckIPHeader(verify_checksum=False)
    out = run(m, [bytes(bad_sum)])
    assert out[0] == [bytes(bad_sum)]


def test_check_ip_header_frees_dropped_slots(pipeline):
    pool = PacketPool(n_slots=64)
    m = CheckIPHeader()
    run(m, [frame(), ipv6_frame(), b"\x00" * 5], pool=pool)
    assert pool.n_used == 1


# -- DecTTL / UpdateTTL --------------------------------------------------------------------------
@pytest.mark.parametrize("l4", ["udp", "tcp", "icmp"])
def test_dec_ttl(pipeline, l4):
    frames = [frame(l4=l4, ttl=t, src=f"10.0.{t}.1") for t in (64, 2, 255, 1, 0)]
    m = DecTTL()
    out = run(m, frames + [ipv6_frame(hlim=9), ipv6_frame(hlim=1), b"\x00" * 60])
    got = [dpkt.ethernet.Ethernet(f) for f in out[0]]
    assert [e.data.ttl if isinstance(e.data, dpkt.ip.IP) else e.data.hlim for e in got] == [63, 1, 254, 8]
    for e in got[:3]:
        assert ip_sum_ok(e.data)
    assert m.counter("drops.ttl_expired") == 3
    assert m.counter("drops.not_ip") == 1


def test_update_ttl(pipeline):
    m = UpdateTTL(ttl=7)
    out = run(m, [frame(ttl=64), frame(ttl=7), ipv6_frame(hlim=1), b"\xff" * 60])
    e = [dpkt.ethernet.Ethernet(f) for f in out[0]]
    assert e[0].data.ttl == 7 and ip_sum_ok(e[0].data)
    assert e[1].data.ttl == 7 and ip_sum_ok(e[1].data)
    assert e[2].data.hlim == 7
    assert out[0][3] == b"\xff" * 60
    assert m.counter("not_ip") == 1


def test_dec_ttl_checksum_wraparound(pipeline):
    # many TTL/address combinations, including checksums near 0x0000/0xFFFF
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(200):
        a = ".".join(str(x) for x in rng.integers(0, 256, 4))
        frames.append(frame(src=a, ttl=int(rng.integers(2, 256)), l4="tcp"))
    m = DecTTL()
    out = run(m, frames)
    for f_in, f_out in zip(frames, out[0]):
        e = dpkt.ethernet.Ethernet(f_out)
        assert ip_sum_ok(e.data)
        assert e.data.ttl == dpkt.ethernet.Ethernet(f_in).data.ttl - 1
        assert l4_sum_ok(e.data)


# -- MACRewrite --------------------------------------------------------------------------------------
def test_mac_rewrite(pipeline):
    m = MACRewrite(src="02:aa:bb:cc:dd:ee", dst="02-11-22-33-44-55")
    out = run(m, [frame(), frame(vlan=3), b"\x01" * 8])
    for f in out[0]:
        e = dpkt.ethernet.Ethernet(f)
        assert e.src == bytes.fromhex("02aabbccddee")
        assert e.dst == bytes.fromhex("021122334455")
    assert f[12:] == frame(vlan=3)[12:]
    assert m.counter("drops.truncated") == 1


def test_mac_rewrite_one_side(pipeline):
    m = MACRewrite(dst="02:00:00:00:00:09")
    f = run(m, [frame()])[0][0]
    assert f[:6] == bytes.fromhex("020000000009") and f[6:12] == MAC_A


@pytest.mark.parametrize("bad", ["02:00:00:00:00", "zz:00:00:00:00:01", "02:00:00:00:00:001", 1 << 48, 3.5])
def test_mac_rewrite_bad_args(pipeline, bad):
    with pytest.raises(ArgError, match="src"):
        MACRewrite(src=bad)


# -- IPChecksum ------------------------------------------------------------------------------------
def test_ip_checksum_repairs(pipeline):
    frames = []
    for l4 in ("udp", "tcp", "icmp"):
        f = bytearray(frame(l4=l4))
        f[24:26] = b"\x12\x34"                       # wrong IP checksum
        f[34 + (16 if l4 == "tcp" else 6 if l4 == "udp" else 2)] ^= 0x5A  # wrong L4 checksum
        frames.append(bytes(f))
    m = IPChecksum()
    out = run(m, frames)[0]
    for f in out:
        assert ip_sum_ok(dpkt.ethernet.Ethernet(f).data)
    assert not l4_sum_ok(dpkt.ethernet.Ethernet(out[0]).data)
    m4 = IPChecksum(l4=True)
    out = run(m4, frames + [frame(udp_zero_sum=True), ipv6_frame()])[0]
    for f in out[:2] + out[3:4]:
        e = dpkt.ethernet.Ethernet(f)
        assert ip_sum_ok(e.data) and l4_sum_ok(e.data)
        assert f == frame(l4="udp" if e.data.p == 17 else "tcp")
    assert out[2] == frame(l4="icmp")
    assert out[4] == ipv6_frame()


# -- SetIPv4 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [("src", "192.0.2.1"), ("dst", "203.0.113.77"), ("tos", 0xB8)])
def test_set_ipv4(pipeline, field, value):
    frames = [frame(l4="udp"), frame(l4="tcp"), frame(l4="udp", udp_zero_sum=True), ipv6_frame()]
    m = SetIPv4(field=field, value=value)
    out = run(m, frames)[0]
    for f in out[:3]:
        ip = dpkt.ethernet.Ethernet(f).data
        if field == "tos":
            assert ip.tos == value
        else:
            assert getattr(ip, field) == ip4(value)
        assert ip_sum_ok(ip) and l4_sum_ok(ip)
    assert struct.unpack(">H", out[2][40:42])[0] == 0  # UDP "no checksum" kept
    assert out[3] == ipv6_frame()
    assert m.counter("not_ipv4") == 1


def test_set_ipv4_bad_args(pipeline):
    with pytest.raises(ArgError, match="value"):
        SetIPv4(field="dst", value="300.1.1.1")
    with pytest.raises(ArgError, match="value"):
        SetIPv4(field="tos", value=256)
