"""Synthetic traffic: frames checked with dpkt (fields) and an independent checksum routine."""

from __future__ import annotations

import ipaddress
import struct

import dpkt
import numpy as np
import pytest
from scapy.layers.l2 import Ether

from tailgate.packet.pool import PacketPool
from tailgate.packet.synth import (
    IMIX,
    ChoiceSize,
    FixedSize,
    FlowTemplate,
    TrafficGen,
    UniformSize,
    imix,
    random_flows,
)

V6 = dict(src_ip="fd00::1", dst_ip="fd00:0:0:1::2")


@pytest.fixture
def pool():
    return PacketPool(n_slots=4096)


# ------------------------------------------------------------------------------------------------
# independent checks
# ------------------------------------------------------------------------------------------------
def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def parse(frame: bytes):
    """(vlan ids, ip layer, l4 layer) via dpkt, plus raw IP header bytes and L4 bytes."""
    eth = dpkt.ethernet.Ethernet(frame)
    vids = [t.id for t in getattr(eth, "vlan_tags", [])]
    return eth, vids, eth.data, eth.data.data


def check_frame(frame: bytes, flow: FlowTemplate, size: int):
    assert len(frame) == size
    eth, vids, ip, l4 = parse(frame)
    mac = lambda t: bytes.fromhex(t.replace(":", "").replace("-", ""))  # noqa: E731
    assert (eth.src, eth.dst) == (mac(flow.src_mac), mac(flow.dst_mac))
    want_vids = [] if flow.vlan is None else ([flow.vlan] if isinstance(flow.vlan, int) else list(flow.vlan))
    assert vids == want_vids
    if len(want_vids) == 2:
        assert frame[12:14] == b"\x88\xa8" and frame[16:18] == b"\x81\x00"
    elif len(want_vids) == 1:
        assert frame[12:14] == b"\x81\x00"
    l3 = 14 + 4 * len(want_vids)
    if flow.is_ipv6:
        assert isinstance(ip, dpkt.ip6.IP6)
        assert ip.plen == size - l3 - 40 and ip.hlim == flow.ttl
        pseudo = ip.src + ip.dst + struct.pack("!IxxxB", ip.plen, ip.nxt)
        seg = frame[l3 + 40 :]
    else:
        assert isinstance(ip, dpkt.ip.IP)
        assert ip.len == size - l3 and ip.ttl == flow.ttl
        assert ones_sum(frame[l3 : l3 + 20]) == 0xFFFF, "bad IPv4 header checksum"
        pseudo = ip.src + ip.dst + struct.pack("!xBH", ip.p, ip.len - 20)
        seg = frame[l3 + 20 :]
    assert ipaddress.ip_address(ip.src) == ipaddress.ip_address(flow.src_ip)
    assert ipaddress.ip_address(ip.dst) == ipaddress.ip_address(flow.dst_ip)
    if flow.proto == "udp":
        assert isinstance(l4, dpkt.udp.UDP)
        assert (l4.sport, l4.dport, l4.ulen) == (flow.sport, flow.dport, len(seg))
        assert l4.sum != 0 and ones_sum(pseudo + seg) == 0xFFFF, "bad UDP checksum"
    elif flow.proto == "tcp":
        assert isinstance(l4, dpkt.tcp.TCP)
        assert (l4.sport, l4.dport) == (flow.sport, flow.dport)
        assert ones_sum(pseudo + seg) == 0xFFFF, "bad TCP checksum"
    else:
        if flow.is_ipv6:
            assert isinstance(l4, dpkt.icmp6.ICMP6) and l4.type == 128
            assert ones_sum(pseudo + seg) == 0xFFFF, "bad ICMPv6 checksum"
        else:
            assert isinstance(l4, dpkt.icmp.ICMP) and l4.type == 8
            assert ones_sum(seg) == 0xFFFF, "bad ICMP checksum"
        assert struct.unpack("!HH", seg[4:8]) == (flow.sport, flow.dport)


MIXED_FLOWS = [
    FlowTemplate(),
    FlowTemplate(src_ip="192.168.1.10", dst_ip="172.16.0.9", proto="tcp", sport=443, dport=50000, vlan=100, size_bytes=128, ttl=7),
    FlowTemplate(proto="icmp", vlan=(300, 4000), size_bytes=98),
    FlowTemplate(**V6, proto="udp", sport=53, dport=5353, size_bytes=1000),
    FlowTemplate(**V6, proto="tcp", vlan=(1, 2), size_bytes=82, src_mac="aa:bb:cc:dd:ee:ff"),
    FlowTemplate(**V6, proto="icmp", vlan=4095, size_bytes=70, dst_mac="02-00-00-00-00-09"),
    FlowTemplate(proto="udp", size_bytes=42),  # no payload at all
    FlowTemplate(proto="udp", size_bytes=45),  # payload shorter than the sequence number
]


@pytest.mark.parametrize("size_dist", [None, IMIX, UniformSize(40, 1500)])
def test_every_frame_parses_with_valid_checksums(pool, size_dist):
    gen = TrafficGen(MIXED_FLOWS, size_dist=size_dist, seed=11)
    for _ in range(3):
        b = gen.generate(pool, 200)
        flows, sizes = b.flow_id, b.lengths
        assert (b.wire_lens == sizes).all()
        assert set(flows.tolist()) == set(range(len(MIXED_FLOWS)))
        for fr, f, sz in zip(b.frames(), flows.tolist(), sizes.tolist()):
            flow = MIXED_FLOWS[f]
            if size_dist is None:
                assert sz == flow.size_bytes
            else:
                assert sz >= flow.header_bytes
            check_frame(fr, flow, sz)
        b.free()


def test_checksums_agree_with_scapy(pool):
    gen = TrafficGen(MIXED_FLOWS, size_dist=UniformSize(60, 300), seed=5)
    b = gen.generate(pool, 64)
    for fr in b.frames():
        p = Ether(fr)
        for layer in ("IP", "UDP", "TCP", "ICMP"):
            if p.haslayer(layer):
                del p[layer].chksum
        if p.haslayer("ICMPv6EchoRequest"):
            del p["ICMPv6EchoRequest"].cksum
        assert bytes(Ether(bytes(p))) == fr  # scapy recomputes the same checksums


def test_payload_carries_sequence_number(pool):
    gen = TrafficGen([FlowTemplate(size_bytes=100)], seed=1)
    gen.generate(pool, 5)
    fr = gen.generate(pool, 3).frames()
    for k, f in enumerate(fr):
        assert struct.unpack("!Q", f[42:50])[0] == 5 + k
        assert f[50:] == bytes(i & 0xFF for i in range(50, 100))


# ------------------------------------------------------------------------------------------------
# determinism and timing
# ------------------------------------------------------------------------------------------------
def _run(seed, chunks, **kw):
    pool = PacketPool(n_slots=2048)
    gen = TrafficGen(random_flows(16, seed=3, size_bytes=80), size_dist=IMIX, flow_weights=np.arange(1, 17), seed=seed, rate_pps=3e6, **kw)
    frames, ts, flows = [], [], []
    for n in chunks:
        b = gen.generate(pool, n)
        frames += b.frames()
        ts += b.arrival_ns.tolist()
        flows += b.flow_id.tolist()
        b.free()
    return frames, ts, flows


def test_same_seed_same_bytes_and_times():
    a = _run(42, [100, 100])
    assert a == _run(42, [100, 100])
    assert a == _run(42, [37, 150, 13])  # independent of how the work is cut into batches
    other = _run(43, [100, 100])
    assert other[0] != a[0] and other[1] == a[1]


def test_rate_spacing_across_calls(pool):
    gen = TrafficGen([FlowTemplate()], rate_pps=3_000_000, start_ns=5_000)
    assert gen.next_arrival_ns == 5_000
    ts = np.concatenate([gen.generate(pool, n).arrival_ns for n in (10, 1, 33)])
    k = np.arange(44)
    assert ts.tolist() == (5_000 + np.rint(k * 1e9 / 3e6)).astype(np.int64).tolist()
    assert set(np.diff(ts).tolist()) <= {333, 334}
    assert gen.next_arrival_ns == 5_000 + round(44 * 1e9 / 3e6)
    fast = TrafficGen([FlowTemplate()], start_ns=7)  # rate None: as fast as asked, 0-spaced
    assert fast.generate(pool, 20).arrival_ns.tolist() == [7] * 20
    assert fast.next_arrival_ns == 7


def test_flow_weights(pool):
    flows = [FlowTemplate(sport=i + 1) for i in range(4)]
    gen = TrafficGen(flows, flow_weights=[1, 0, 3, 0], seed=9)
    f = gen.generate(pool, 4000).flow_id
    counts = np.bincount(f, minlength=4)
    assert counts[1] == 0 and counts[3] == 0
    assert abs(counts[2] / 4000 - 0.75) < 0.03


def test_frame_too_big_for_pool_slot():
    pool = PacketPool(n_slots=16, slot_bytes=1024)
    gen = TrafficGen([FlowTemplate(size_bytes=2000)])
    with pytest.raises(ValueError, match="does not fit"):
        gen.generate(pool, 4)
    assert pool.n_free == 16


# ------------------------------------------------------------------------------------------------
# size distributions
# ------------------------------------------------------------------------------------------------
def test_size_distributions():
    rng = np.random.default_rng(0)
    assert (FixedSize(128).sample(rng, 50) == 128).all()
    u = UniformSize(60, 69).sample(rng, 20000)
    assert u.min() == 60 and u.max() == 69
    assert np.allclose(np.bincount(u - 60) / 20000, 0.1, atol=0.015)
    c = ChoiceSize([100, 200, 300], [1, 2, 7]).sample(rng, 20000)
    assert set(np.unique(c).tolist()) == {100, 200, 300}
    assert np.allclose([np.mean(c == s) for s in (100, 200, 300)], [0.1, 0.2, 0.7], atol=0.015)
    m = IMIX.sample(rng, 24000)
    assert np.allclose([np.mean(m == s) for s in (60, 566, 1514)], [7 / 12, 4 / 12, 1 / 12], atol=0.015)
    assert imix().max_bytes == 1514
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    assert np.array_equal(IMIX.sample(r1, 100), IMIX.sample(r2, 100))
    for d in (FixedSize(64), UniformSize(64, 65), IMIX):
        assert d.sample(rng, 10).dtype == np.int32


def test_small_sizes_are_raised_to_the_headers(pool):
    flows = [FlowTemplate(**V6, proto="tcp", vlan=(1, 2), size_bytes=200)]  # headers: 82 bytes
    b = TrafficGen(flows, size_dist=FixedSize(60)).generate(pool, 3)
    assert b.lengths.tolist() == [82] * 3
    check_frame(b.frame(0), flows[0], 82)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: FixedSize(10), "FixedSize.size_bytes"),
        (lambda: UniformSize(100, 90), "UniformSize.hi_bytes"),
        (lambda: UniformSize(10, 90), "UniformSize.lo_bytes"),
        (lambda: ChoiceSize([]), "ChoiceSize.sizes_bytes"),
        (lambda: ChoiceSize([64, 128], [1]), "ChoiceSize.weights"),
        (lambda: ChoiceSize([64, 128], [1, -1]), "ChoiceSize.weights"),
    ],
)
def test_bad_size_distributions(make, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        make()


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(src_ip="10.0.0.300"), "src_ip"),
        (dict(dst_ip="not-an-ip"), "dst_ip"),
        (dict(dst_ip="fd00::1"), "dst_ip"),  # family differs from src_ip
        (dict(sport=70000), "sport"),
        (dict(dport=-1), "dport"),
        (dict(sport="80"), "sport"),
        (dict(proto="sctp"), "proto"),
        (dict(vlan=4096), "vlan"),
        (dict(vlan=(1, 2, 3)), "vlan"),
        (dict(vlan=(1, -2)), "vlan"),
        (dict(ttl=256), "ttl"),
        (dict(size_bytes=41), "size_bytes"),
        (dict(size_bytes=9001), "size_bytes"),
        (dict(**V6, proto="tcp", size_bytes=64), "size_bytes"),
        (dict(src_mac="02:00:00:00:00"), "src_mac"),
        (dict(dst_mac="zz:00:00:00:00:01"), "dst_mac"),
    ],
)
def test_bad_template_fields(kw, field):
    with pytest.raises(ValueError, match=rf"FlowTemplate\.{field}"):
        FlowTemplate(**kw)


def test_template_layout_and_min_sizes():
    assert FlowTemplate().header_bytes == 42
    assert FlowTemplate(vlan=(1, 2), **V6, proto="tcp", size_bytes=100).header_bytes == 14 + 8 + 40 + 20
    assert FlowTemplate(size_bytes=42).size_bytes == 42
    assert FlowTemplate(vlan=[3, 4]).vlan == (3, 4)


def test_bad_generator_arguments():
    with pytest.raises(ValueError, match="flows"):
        TrafficGen([])
    with pytest.raises(ValueError, match="rate_pps"):
        TrafficGen([FlowTemplate()], rate_pps=0)
    with pytest.raises(ValueError, match="flow_weights"):
        TrafficGen([FlowTemplate()], flow_weights=[1, 2])


# ------------------------------------------------------------------------------------------------
# random flows
# ------------------------------------------------------------------------------------------------
def test_random_flows(pool):
    flows = random_flows(500, seed=1, dst_prefix="192.168.0.0/16", proto="tcp", size_bytes=90)
    assert len({(f.src_ip, f.dst_ip, f.sport, f.dport) for f in flows}) == 500
    net = ipaddress.ip_network("192.168.0.0/16")
    assert all(ipaddress.ip_address(f.dst_ip) in net for f in flows)
    assert all(f.proto == "tcp" and f.size_bytes == 90 and f.sport >= 1024 for f in flows)
    assert random_flows(5, seed=2) == random_flows(5, seed=2)
    assert random_flows(5, seed=2) != random_flows(5, seed=3)
    v6 = random_flows(50, seed=4, ipv6=True, size_bytes=100)
    assert all(f.is_ipv6 for f in v6)
    b = TrafficGen(v6, seed=0).generate(pool, 100)
    for fr, f in zip(b.frames(), b.flow_id.tolist()):
        check_frame(fr, v6[f], 100)
    with pytest.raises(ValueError, match="dst_prefix"):
        random_flows(3, dst_prefix="fd00::/64")
    with pytest.raises(ValueError, match="dst_prefix"):
        random_flows(3, dst_prefix="10.0.0.0/33")
    assert {f.dst_ip for f in random_flows(10, dst_prefix="10.1.2.3/32")} == {"10.1.2.3"}
