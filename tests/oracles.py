"""Independent checks for tests: checksums recomputed with dpkt (never with tailgate's own code),
and the invariants every protocol view must keep whatever bytes it parsed.

Import from ``oracles`` (``tests/`` is on the path through its conftest).
"""
import struct

import dpkt
import numpy as np

from tailgate.packet import proto
from tailgate.packet.proto import F_MALFORMED


def ip_sum_ok(ip) -> bool:
    """Recompute the IPv4 header checksum of a dpkt ``IP`` and compare it with the stored one."""
    hdr = bytearray(bytes(ip)[: ip.hl * 4])
    hdr[10:12] = b"\x00\x00"
    return dpkt.in_cksum(bytes(hdr)) == ip.sum


def l4_sum_ok(ip) -> bool:
    """Recompute the TCP, UDP (pseudo-header) or ICMP checksum of a dpkt ``IP`` and compare it.

    A UDP checksum of 0 means "none" and passes; a computed 0 is sent as 0xFFFF (RFC 768).
    """
    seg = bytearray(bytes(ip.data))
    at = {6: 16, 17: 6, 1: 2}[ip.p]
    stored = struct.unpack(">H", bytes(seg[at : at + 2]))[0]
    if ip.p == 17 and stored == 0:
        return True
    seg[at : at + 2] = b"\x00\x00"
    s = 0
    if ip.p != 1:
        s = dpkt.in_cksum_add(0, struct.pack(">4s4sxBH", ip.src, ip.dst, ip.p, len(seg)))
    s = dpkt.in_cksum_done(dpkt.in_cksum_add(s, bytes(seg)))
    if ip.p == 17 and s == 0:
        s = 0xFFFF
    return s == stored


def assert_offsets_inside(batch, hv):
    """No reported header reaches past the frame (or starts before it)."""
    start = batch.offsets.astype(np.int64)
    end = start + batch.lengths
    for name in ("l2_off", "l3_off", "l4_off", "l4_end", "tun_off", "inner_l2_off", "inner_l3_off"):
        col = getattr(hv, name).astype(np.int64)
        m = col >= 0
        assert np.all(col[m] >= start[m]) and np.all(col[m] <= end[m]), name
    has2 = hv.l2_off >= 0
    assert np.all(hv.l2_off[has2] + 14 + 4 * hv.n_vlan[has2] <= end[has2])
    assert np.all(hv.n_vlan[~has2] == 0) and np.all(hv.l3_off[~has2] == -1)
    v4, v6 = hv.is_ipv4, hv.is_ipv6
    assert not np.any(v4 & v6)
    assert np.array_equal(hv.l3_off >= 0, v4 | v6)
    assert np.all(hv.l3_off[v4] + 4 * hv.ipv4.ihl[v4].astype(np.int64) <= end[v4])
    assert np.all(hv.ipv4.ihl[v4] >= 5)
    assert np.all(hv.l3_off[v6] + 40 <= end[v6])
    has_end = hv.l4_end >= 0
    assert np.all(hv.l4_end[has_end] <= end[has_end]) and np.all(hv.l4_end[has_end] >= hv.l3_off[has_end] + 20)
    for mask, size in ((hv.is_udp, 8), (hv.is_tcp, 20), (hv.is_icmp, 4)):
        assert np.all(hv.l4_off[mask] + size <= hv.l4_end[mask])
    assert np.all(hv.l4_off[hv.is_tcp] + 4 * hv.tcp.data_off[hv.is_tcp].astype(np.int64) <= hv.l4_end[hv.is_tcp])
    assert np.array_equal(hv.l4_off >= 0, hv.is_tcp | hv.is_udp | hv.is_icmp)
    for col in (hv.tun_off, hv.inner_l2_off, hv.inner_l3_off):
        m = col >= 0
        assert np.all(col[m] <= hv.l4_end[m])
    assert np.array_equal(hv.malformed != 0, (hv.flags & F_MALFORMED) != 0)
    assert np.all(hv.malformed < len(proto.MALFORMED_REASONS))
