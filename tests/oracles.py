"""Independent checks for tests: checksums recomputed with dpkt, never with tailgate's own code.

Import as ``import oracles`` (``tests/`` is on the path through its conftest).
"""
import struct

import dpkt


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
