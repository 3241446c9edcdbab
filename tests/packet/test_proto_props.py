"""Property tests for tailgate.packet.proto: frames built by scapy, read back by dpkt.

Valid frames: every field the parser reports equals what dpkt reads from the same bytes.
Invalid frames (random bytes, truncations, corrupted IHL / total length): the parser never
raises, never reports a header reaching past the frame, and flags as malformed whatever dpkt
could not read as a complete header.
"""

from __future__ import annotations

import struct

import dpkt
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_Router_Alert
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
)
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from tailgate.packet import proto
from tailgate.packet.pool import PacketPool
from tailgate.packet.proto import (
    F_FRAGMENT,
    F_ICMP,
    F_IPV4,
    F_IPV4_OPTIONS,
    F_IPV6,
    F_QINQ,
    F_TCP,
    F_UDP,
    F_VLAN,
    M_BAD_IHL,
    M_BAD_TCP_OFF,
    M_BAD_TOTAL_LEN,
    M_TRUNCATED_L2,
    M_TRUNCATED_L3,
    M_TRUNCATED_L4,
)
from oracles import assert_offsets_inside

POOL = PacketPool(n_slots=4096, slot_bytes=2048, headroom_bytes=128)
PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ================================================================================================
# strategies: a frame is drawn as a spec (dict), then built by scapy
# ================================================================================================
u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
ports = st.integers(0, 0xFFFF).filter(lambda p: p not in (proto.VXLAN_PORT, proto.GTPU_PORT))
mac = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
ip4 = u32.map(lambda a: ".".join(str((a >> s) & 0xFF) for s in (24, 16, 8, 0)))
ip6 = st.binary(min_size=16, max_size=16).map(
    lambda b: ":".join(f"{int.from_bytes(b[i:i + 2], 'big'):x}" for i in range(0, 16, 2))
)
vlan_tag = st.tuples(st.integers(0, 4095), st.integers(0, 7), st.integers(0, 1))


@st.composite
def frame_specs(draw):
    spec = {
        "dst": draw(mac),
        "src": draw(mac),
        "vlans": draw(st.lists(vlan_tag, max_size=2)),
        "outer_ad": draw(st.booleans()),
        "v": draw(st.sampled_from([4, 6])),
        "l4": draw(st.sampled_from(["udp", "tcp", "icmp"])),
        "sport": draw(ports),
        "dport": draw(ports),
        "payload": draw(st.binary(max_size=64)),
        "pad": draw(st.binary(max_size=12)),
    }
    if spec["v"] == 4:
        spec.update(
            ip_src=draw(ip4), ip_dst=draw(ip4), tos=draw(u8), ident=draw(u16), ttl=draw(u8),
            df=draw(st.booleans()),
            # (number of NOPs, router alert?): up to 40 option bytes
            opts=draw(st.tuples(st.integers(0, 36), st.booleans())),
        )
    else:
        spec.update(
            ip_src=draw(ip6), ip_dst=draw(ip6), tc=draw(u8), fl=draw(st.integers(0, 0xFFFFF)), hlim=draw(u8),
            # RFC 8200 order (dpkt mis-reads a fragment header that is not the last one)
            ext=[e for e in ("hbh", "dst", "rt", "frag") if draw(st.booleans())],
            pad_len=draw(st.integers(0, 20)),
            frag_m=draw(st.booleans()),
        )
    if spec["l4"] == "tcp":
        spec.update(seq=draw(u32), ack=draw(u32), tflags=draw(st.integers(0, 0x1FF)), win=draw(u16),
                    tcp_nops=draw(st.integers(0, 40)))
    elif spec["l4"] == "icmp":
        spec.update(itype=draw(st.sampled_from([0, 8, 13, 14, 17, 18])), icode=draw(u8), iid=draw(u16), iseq=draw(u16))
    return spec


def build(spec) -> bytes:
    pkt = Ether(dst=spec["dst"], src=spec["src"])
    for i, (vid, pcp, dei) in enumerate(spec["vlans"]):
        # dpkt only follows a second tag whose TPID is 0x8100, so only the outer one may be 802.1ad
        tag = Dot1AD if (i == 0 and spec["outer_ad"]) else Dot1Q
        pkt = pkt / tag(vlan=vid, prio=pcp, dei=dei)
    if spec["v"] == 4:
        nops, ra = spec["opts"]
        opts = [IPOption_NOP()] * nops + ([IPOption_Router_Alert()] if ra else [])
        pkt = pkt / IP(src=spec["ip_src"], dst=spec["ip_dst"], tos=spec["tos"], id=spec["ident"], ttl=spec["ttl"],
                       flags="DF" if spec["df"] else 0, options=opts)
    else:
        pkt = pkt / IPv6(src=spec["ip_src"], dst=spec["ip_dst"], tc=spec["tc"], fl=spec["fl"], hlim=spec["hlim"])
        for e in spec["ext"]:
            if e == "hbh":
                pkt = pkt / IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0" * spec["pad_len"])])
            elif e == "dst":
                pkt = pkt / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0" * spec["pad_len"])])
            elif e == "rt":
                pkt = pkt / IPv6ExtHdrRouting()
            else:
                pkt = pkt / IPv6ExtHdrFragment(offset=0, m=int(spec["frag_m"]), id=spec["pad_len"])
    if spec["l4"] == "udp":
        pkt = pkt / UDP(sport=spec["sport"], dport=spec["dport"])
    elif spec["l4"] == "tcp":
        pkt = pkt / TCP(sport=spec["sport"], dport=spec["dport"], seq=spec["seq"], ack=spec["ack"],
                        flags=spec["tflags"], window=spec["win"], options=[("NOP", None)] * spec["tcp_nops"])
    elif spec["v"] == 4:
        pkt = pkt / ICMP(type=spec["itype"], code=spec["icode"], id=spec["iid"], seq=spec["iseq"])
    else:
        pkt = pkt / ICMPv6EchoRequest(id=spec["iid"], seq=spec["iseq"])
    pkt = pkt / Raw(spec["payload"])
    return bytes(pkt) + spec["pad"]


def is_fragment(spec) -> bool:
    return spec["v"] == 6 and "frag" in spec["ext"] and spec["frag_m"]


def parse_frames(frames):
    batch = POOL.from_frames(frames)
    return batch, proto.parse(batch)


def dpkt_l4_complete(frame: bytes) -> bool:
    """True if dpkt reads Ethernet / IP(v6) / TCP-or-UDP with complete headers from ``frame``."""
    try:
        e = dpkt.ethernet.Ethernet(frame)
    except (dpkt.UnpackError, struct.error):
        return False
    ip = e.data
    if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
        return False
    return isinstance(ip.data, (dpkt.tcp.TCP, dpkt.udp.UDP))


# ================================================================================================
# valid frames
# ================================================================================================
def check_against_dpkt(batch, hv, i, spec, frame):
    e = dpkt.ethernet.Ethernet(frame)
    base = int(batch.offsets[i])
    assert hv.malformed[i] == 0
    assert hv.l2_off[i] == base
    assert hv.eth.dst[i] == int.from_bytes(e.dst, "big") and hv.eth.src[i] == int.from_bytes(e.src, "big")
    assert hv.eth.type[i] == e.type
    tags = getattr(e, "vlan_tags", [])
    assert hv.n_vlan[i] == len(tags) == len(spec["vlans"])
    if tags:
        t = tags[0]
        assert (hv.vlan.vid[i], hv.vlan.pcp[i], hv.vlan.dei[i]) == (t.id, t.pri, t.cfi)
        assert hv.ethertype[i] == tags[-1].type
    else:
        assert hv.ethertype[i] == e.type
    assert hv.vlan.inner_vid[i] == (tags[1].id if len(tags) == 2 else 0)
    l3 = base + 14 + 4 * len(tags)
    assert hv.l3_off[i] == l3
    ip = e.data
    expect_flags = (F_VLAN if tags else 0) | (F_QINQ if len(tags) == 2 else 0)
    if spec["v"] == 4:
        assert isinstance(ip, dpkt.ip.IP)
        v = hv.ipv4
        assert (v.version[i], v.ihl[i], v.tos[i], v.total_len[i], v.ident[i]) == (ip.v, ip.hl, ip.tos, ip.len, ip.id)
        assert (v.flags[i], v.frag_off[i]) == (ip._flags_offset >> 13, ip._flags_offset & 0x1FFF)
        assert (v.ttl[i], v.proto[i], v.checksum[i]) == (ip.ttl, ip.p, ip.sum)
        assert v.src[i] == int.from_bytes(ip.src, "big") and v.dst[i] == int.from_bytes(ip.dst, "big")
        assert hv.ip_proto[i] == ip.p
        assert hv.l4_off[i] == l3 + 4 * ip.hl
        assert hv.l4_end[i] == l3 + ip.len
        expect_flags |= F_IPV4 | (F_IPV4_OPTIONS if ip.hl > 5 else 0)
        assert hv.ipv6.hop_limit[i] == 0
    else:
        assert isinstance(ip, dpkt.ip6.IP6)
        v = hv.ipv6
        assert (v.traffic_class[i], v.flow_label[i], v.payload_len[i]) == (ip.fc, ip.flow, ip.plen)
        assert (v.next_header[i], v.hop_limit[i], v.version[i]) == (ip.nxt, ip.hlim, ip.v)
        assert v.src[i].tobytes() == ip.src and v.dst[i].tobytes() == ip.dst
        assert (v.src_hi[i], v.src_lo[i]) == (int.from_bytes(ip.src[:8], "big"), int.from_bytes(ip.src[8:], "big"))
        assert (v.dst_hi[i], v.dst_lo[i]) == (int.from_bytes(ip.dst[:8], "big"), int.from_bytes(ip.dst[8:], "big"))
        assert hv.ip_proto[i] == ip.p
        ext_len = sum(x.length for x in ip.all_extension_headers)
        assert hv.l4_off[i] == l3 + 40 + ext_len
        assert hv.l4_end[i] == l3 + 40 + ip.plen
        expect_flags |= F_IPV6 | (F_FRAGMENT if is_fragment(spec) else 0)
        assert hv.ipv4.ttl[i] == 0
    l4 = ip.data
    if spec["l4"] == "udp":
        assert isinstance(l4, dpkt.udp.UDP)
        u = hv.udp
        assert (u.sport[i], u.dport[i], u.len[i], u.checksum[i]) == (l4.sport, l4.dport, l4.ulen, l4.sum)
        assert (hv.sport[i], hv.dport[i]) == (l4.sport, l4.dport) == (spec["sport"], spec["dport"])
        expect_flags |= F_UDP
    elif spec["l4"] == "tcp":
        assert isinstance(l4, dpkt.tcp.TCP)
        t = hv.tcp
        assert (t.sport[i], t.dport[i], t.seq[i], t.ack[i]) == (l4.sport, l4.dport, l4.seq, l4.ack)
        assert (t.data_off[i], t.flags[i], t.window[i], t.checksum[i]) == (l4.off, l4.flags, l4.win, l4.sum)
        assert (hv.sport[i], hv.dport[i]) == (l4.sport, l4.dport)
        assert t.flags[i] == spec["tflags"]
        expect_flags |= F_TCP
    else:
        c = hv.icmp
        assert (c.type[i], c.code[i], c.checksum[i]) == (l4.type, l4.code, l4.sum)
        assert hv.sport[i] == 0 and hv.dport[i] == 0
        expect_flags |= F_ICMP
    assert hv.flags[i] == expect_flags
    assert hv.tun_off[i] == hv.inner_l2_off[i] == hv.inner_l3_off[i] == -1


@PROPS
@given(st.lists(frame_specs(), min_size=1, max_size=4))
def test_valid_frames_match_dpkt(specs):
    frames = [build(s) for s in specs]
    batch, hv = parse_frames(frames)
    try:
        assert_offsets_inside(batch, hv)
        for i, (spec, f) in enumerate(zip(specs, frames)):
            check_against_dpkt(batch, hv, i, spec, f)
        # scapy fills in correct checksums
        assert hv.ipv4_checksum_ok().tolist() == [s["v"] == 4 for s in specs]
        assert hv.l4_checksum_ok().tolist() == [not is_fragment(s) for s in specs]
        # a second parse of the same bytes is identical, and the flow hash is deterministic
        again = proto.Headers(batch.pool, batch.idx)
        assert np.array_equal(again.buf, hv.buf)
        assert np.array_equal(again.flow_hash(7), hv.flow_hash(7))
    finally:
        batch.free()


@PROPS
@given(st.lists(frame_specs(), min_size=1, max_size=4), st.data())
def test_setters_then_dpkt(specs, data):
    """Write random values through the accessors; dpkt reads them back from the bytes."""
    frames = [build(s) for s in specs]
    batch, hv = parse_frames(frames)
    try:
        n = len(frames)
        arr = lambda hi: np.array(data.draw(st.lists(st.integers(0, hi), min_size=n, max_size=n)), dtype=np.uint64)
        ttl, tos, src4, vid = arr(255), arr(255), arr(2**32 - 1), arr(4095)
        hlim, flow, lo = arr(255), arr(2**20 - 1), arr(2**64 - 1)
        sport, dport, seq = arr(0xFFFF), arr(0xFFFF), arr(2**32 - 1)
        # ICMP types dpkt decodes without quoting an inner packet
        itype = np.array(data.draw(st.lists(st.sampled_from([0, 8, 13, 14, 17, 18]), min_size=n, max_size=n)),
                         dtype=np.uint64)
        dport[(dport == proto.VXLAN_PORT) | (dport == proto.GTPU_PORT)] = 1
        hv.ipv4.ttl, hv.ipv4.tos, hv.ipv4.src, hv.vlan.vid = ttl, tos, src4, vid
        hv.ipv6.hop_limit, hv.ipv6.flow_label, hv.ipv6.dst_lo = hlim, flow, lo
        hv.sport, hv.dport, hv.tcp.seq, hv.icmp.type = sport, dport, seq, itype
        hv.fix_ipv4_checksum()
        hv.fix_l4_checksum()
        assert hv.ipv4_checksum_ok().tolist() == [s["v"] == 4 for s in specs]
        assert hv.l4_checksum_ok().tolist() == [not is_fragment(s) for s in specs]
        for i, f in enumerate(batch.frames()):
            e = dpkt.ethernet.Ethernet(f)
            if specs[i]["vlans"]:
                assert e.vlan_tags[0].id == vid[i]
            ip = e.data
            if specs[i]["v"] == 4:
                assert (ip.ttl, ip.tos, int.from_bytes(ip.src, "big")) == (ttl[i], tos[i], src4[i])
            else:
                assert (ip.hlim, ip.flow, int.from_bytes(ip.dst[8:], "big")) == (hlim[i], flow[i], lo[i])
            if specs[i]["l4"] in ("udp", "tcp"):
                assert (ip.data.sport, ip.data.dport) == (sport[i], dport[i])
            if specs[i]["l4"] == "tcp":
                assert ip.data.seq == seq[i]
            if specs[i]["l4"] == "icmp":
                assert ip.data.type == itype[i]
        assert not hv.is_malformed.any()
    finally:
        batch.free()


# ================================================================================================
# invalid frames
# ================================================================================================
@st.composite
def junk_frames(draw):
    body = draw(st.binary(max_size=160))
    head = draw(st.sampled_from([b"", b"\x08\x00", b"\x86\xdd", b"\x81\x00", b"\x88\xa8", b"\x08\x00\x45",
                                 b"\x08\x00\x46", b"\x86\xdd\x60", b"\x81\x00\x00\x01\x08\x00\x45"]))
    if head and len(body) >= 12:
        body = body[:12] + head + body[12 + len(head):]
    return body


@PROPS
@given(st.lists(junk_frames(), min_size=1, max_size=40), st.integers(0, 300))
def test_random_bytes_never_raise(frames, headroom):
    batch = POOL.alloc(len(frames))
    try:
        # garbage also behind the frame end: any overread would turn it into "valid" headers
        POOL.data[batch.idx] = 0x45
        batch.offsets = np.full(len(frames), headroom, dtype=np.int32)
        batch.set_frames(frames)
        hv = proto.parse(batch)
        assert_offsets_inside(batch, hv)
        # where dpkt walks the same headers (it follows a second VLAN tag only with TPID 0x8100, and
        # it also parses IPv6 extension-header options, which we skip by length), a TCP/UDP header
        # we report is one dpkt reads too
        same_path = (hv.n_vlan < 2) | np.array([f[16:18] == b"\x81\x00" for f in frames])
        same_path &= hv.is_ipv4 | (hv.ipv6.next_header == hv.ip_proto)
        l4 = (hv.is_tcp | hv.is_udp) & ~hv.is_malformed & ((hv.flags & F_FRAGMENT) == 0)
        for i, f in enumerate(frames):
            if l4[i] and same_path[i]:
                assert dpkt_l4_complete(f)
            if hv.l2_off[i] < 0:
                assert len(f) < 14 and hv.malformed[i] == M_TRUNCATED_L2
        hv.flow_hash()
        hv.ipv4_checksum_ok()
        hv.l4_checksum_ok()
        hv.fix_l4_checksum()
    finally:
        batch.free()


@FEWER
@given(frame_specs(), st.lists(st.integers(0, 400), min_size=1, max_size=30))
def test_truncations(spec, cuts):
    """Cut a valid frame anywhere (its bytes stay in the slot); every cut is seen, none overread."""
    full = build(spec)
    cuts = [c % (len(full) + 1) for c in cuts]
    batch = POOL.from_frames([full] * len(cuts))
    try:
        batch.lengths = np.array(cuts, dtype=np.int32)
        hv = proto.parse(batch)
        assert_offsets_inside(batch, hv)
        e = dpkt.ethernet.Ethernet(full)
        l3 = 14 + 4 * len(spec["vlans"])
        ip = e.data
        ip_hdr = 4 * ip.hl if spec["v"] == 4 else 40
        ip_end = l3 + (ip.len if spec["v"] == 4 else 40 + ip.plen)
        for i, c in enumerate(cuts):
            if c < l3:
                want = M_TRUNCATED_L2
            elif c < l3 + ip_hdr:
                want = M_TRUNCATED_L3
            elif c < ip_end:
                want = M_BAD_TOTAL_LEN
            else:
                want = 0  # only Ethernet padding was cut
            assert hv.malformed[i] == want, (c, l3, ip_hdr, ip_end)
            if not dpkt_l4_complete(full[:c]) and spec["l4"] != "icmp":
                assert hv.is_malformed[i]
            if want == 0:
                assert hv.l4_off[i] >= 0 and hv.l4_end[i] == hv.l2_off[i] + ip_end
    finally:
        batch.free()


@PROPS
@given(
    st.lists(
        st.tuples(frame_specs().filter(lambda s: s["v"] == 4 and s["l4"] != "icmp"),
                  st.one_of(st.none(), st.integers(0, 15)), st.one_of(st.none(), st.integers(0, 0xFFFF))),
        min_size=1, max_size=5,
    )
)
def test_corrupted_ihl_and_total_len(cases):
    frames = []
    for spec, ihl, tl in cases:
        f = bytearray(build(spec))
        l3 = 14 + 4 * len(spec["vlans"])
        if ihl is not None:
            f[l3] = 0x40 | ihl
        if tl is not None:
            f[l3 + 2 : l3 + 4] = struct.pack("!H", tl)
        frames.append(bytes(f))
    batch, hv = parse_frames(frames)
    try:
        assert_offsets_inside(batch, hv)
        for i, ((spec, _, _), f) in enumerate(zip(cases, frames)):
            l3 = 14 + 4 * len(spec["vlans"])
            ihl = (f[l3] & 0xF) * 4
            tl = struct.unpack_from("!H", f, l3 + 2)[0]
            if ihl < 20:
                want = M_BAD_IHL
            elif l3 + ihl > len(f):
                want = M_TRUNCATED_L3
            elif tl < ihl or l3 + tl > len(f):
                want = M_BAD_TOTAL_LEN
            else:
                want = None  # IP is fine; L4 depends on where the (moved) L4 header lands
            if want is not None:
                assert hv.malformed[i] == want
                assert hv.l4_off[i] == -1
            else:
                assert hv.malformed[i] in (0, M_TRUNCATED_L4, M_BAD_TCP_OFF)
                assert hv.is_ipv4[i] and hv.l4_end[i] == hv.l3_off[i] + tl
                assert hv.l4_off[i] in (-1, hv.l3_off[i] + ihl)
            if not dpkt_l4_complete(f):
                assert hv.is_malformed[i]
            if hv.l4_off[i] >= 0:
                # whatever we report as the L4 header is what dpkt reads there
                l4 = dpkt.ethernet.Ethernet(f).data.data
                assert isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP))
                assert (hv.sport[i], hv.dport[i]) == (l4.sport, l4.dport)
    finally:
        batch.free()
