"""An independent pure-Python reference parser for the fuzz tests: what tailgate's parser must
report for one frame, written from the rules in ``tailgate.packet.proto``'s manual (never from
its code, and never importing it: the constants below are restated from the standards).

:func:`parse_frame` takes the frame's bytes and returns a :class:`Ref` with the same fields as
one row of :class:`tailgate.packet.proto.Headers`, with offsets counted from the frame's first
byte (``-1`` where absent). The fuzz tests compare the two field by field.

Where the reference follows one of tailgate's documented choices rather than a standard (the
manual of ``tailgate/packet/proto.py`` states each one):

- at most two VLAN tags are skipped (TPID 0x8100 or 0x88a8 in either position); a third TPID is
  an ethertype that is neither IPv4 nor IPv6: not IP, not malformed ("What it parses");
- a tag cut short is ``truncated_l2`` and the ethertype column holds that TPID;
- IPv6 extension headers 0, 43, 44 and 60 are skipped in any order, at most 8 of them; after
  8 the walk stops and the next header is reported as the protocol, not parsed, not malformed;
- ``F_FRAGMENT`` for IPv4 is MF or offset != 0; for an IPv6 fragment header it is M or
  offset != 0 (the two reserved bits ignored); a non-first fragment has no L4 header;
- ``F_IPV4``/``F_IPV6`` are set once the fixed IP header is complete, also when the length field
  is then found bad ("Flags"); the protocol column then holds the header's protocol field;
- ``l4_end`` is the end of the IP payload by the length field, set once the L3 layer is fine,
  also when the L4 header is then found malformed;
- UDP to port 4789 is VXLAN (its flags byte is not looked at: RFC 7348's I flag may be clear)
  and to 2152 GTP-U ("What it parses"); a bad tunnel payload is not malformed, the packet
  just is not flagged as a tunnel ("Malformed reasons"); the VXLAN inner Ethernet offset is set
  whenever 14 bytes follow the VXLAN header; an inner IP offset only when the whole inner IP
  header (IHL*4 bytes, 40 for IPv6) lies inside the outer IP payload; a GTP-U header with E, S
  or PN set is 12 bytes and its extension chain (E) is walked to a next-type of 0, at most 16
  extensions, each of a non-zero length; a bad chain keeps ``F_GTPU`` but gives no inner IP.
"""

from __future__ import annotations

from typing import NamedTuple

# flags (restated from the manual's "Flags" list, in its order)
VLAN, QINQ, IPV4, IPV6, IPV4_OPTIONS, FRAGMENT, TCP, UDP, ICMP, VXLAN, GTPU, MALFORMED = (1 << k for k in range(12))
# malformed reasons, in the manual's order
OK, TRUNC_L2, TRUNC_L3, BAD_VERSION, BAD_IHL, BAD_TOTAL_LEN, TRUNC_L4, BAD_TCP_OFF = range(8)

TPIDS = (0x8100, 0x88A8)
ET_IPV4, ET_IPV6 = 0x0800, 0x86DD
IPV6_EXT = (0, 43, 44, 60)
MAX_IPV6_EXT = 8
MAX_GTP_EXT = 16
VXLAN_UDP_PORT, GTPU_UDP_PORT = 4789, 2152


class Ref(NamedTuple):
    """One frame's parse, offsets from the frame's first byte, -1 where absent."""

    l2_off: int = -1
    l3_off: int = -1
    l4_off: int = -1
    l4_end: int = -1
    tun_off: int = -1
    inner_l2_off: int = -1
    inner_l3_off: int = -1
    flags: int = 0
    n_vlan: int = 0
    ethertype: int = 0
    ip_proto: int = 0
    malformed: int = OK


def _u16(f: bytes, o: int) -> int:
    return (f[o] << 8) | f[o + 1]


def _inner_ip(f: bytes, o: int, end: int, version: int) -> bool:
    """A whole IPv4 (IHL*4 bytes, IHL >= 5) or IPv6 (40 bytes) header at ``o`` before ``end``."""
    if o >= end:
        return False
    v = f[o] >> 4
    if version and v != version:
        return False
    if v == 4:
        ihl = (f[o] & 15) * 4
        return ihl >= 20 and o + ihl <= end
    if v == 6:
        return o + 40 <= end
    return False


def _tags(f: bytes, o: int, end: int) -> tuple[int, int, int, bool]:
    """Ethertype field at ``o``: (ethertype, first byte after it, complete tags, not cut short)."""
    et = _u16(f, o)
    p = o + 2
    n = 0
    while et in TPIDS and n < 2:
        if p + 4 > end:
            return et, p, n, False
        et = _u16(f, p + 2)
        p += 4
        n += 1
    return et, p, n, True


def _vxlan(f: bytes, q: int, end: int) -> tuple[int, int, int, int]:
    if q + 8 > end:
        return 0, -1, -1, -1
    inner = q + 8
    if inner + 14 > end:
        return VXLAN, q, -1, -1
    et, l3, _, ok = _tags(f, inner + 12, end)
    il3 = -1
    if ok and ((et == ET_IPV4 and _inner_ip(f, l3, end, 4)) or (et == ET_IPV6 and _inner_ip(f, l3, end, 6))):
        il3 = l3
    return VXLAN, q, inner, il3


def _gtpu(f: bytes, q: int, end: int) -> tuple[int, int, int]:
    if q + 8 > end:
        return 0, -1, -1
    b0 = f[q]
    if b0 >> 5 != 1 or not b0 & 0x10:  # GTPv1, protocol type 1 (GTP, not GTP')
        return 0, -1, -1
    size = 8
    chain_ok = True
    if b0 & 0x07:  # E, S or PN: the optional 4-byte field is there
        if q + 12 > end:
            return 0, -1, -1
        size = 12
        if b0 & 0x04:
            next_type = f[q + 11]
            count = 0
            while next_type != 0:
                if count >= MAX_GTP_EXT or q + size >= end:
                    chain_ok = False
                    break
                ext_len = f[q + size] * 4
                if ext_len == 0 or q + size + ext_len > end:
                    chain_ok = False
                    break
                next_type = f[q + size + ext_len - 1]
                size += ext_len
                count += 1
    il3 = q + size if chain_ok and f[q + 1] == 0xFF and _inner_ip(f, q + size, end, 0) else -1
    return GTPU, q, il3


def parse_frame(f: bytes) -> Ref:
    """The reference parse of one frame (see the module docstring)."""
    end = len(f)
    if end < 14:
        return Ref(flags=MALFORMED, malformed=TRUNC_L2)
    et, l3s, nvlan, ok = _tags(f, 12, end)
    flags = (VLAN if nvlan else 0) | (QINQ if nvlan == 2 else 0)
    base = dict(l2_off=0, n_vlan=nvlan, ethertype=et)
    if not ok:
        return Ref(flags=flags | MALFORMED, malformed=TRUNC_L2, **base)
    if et not in (ET_IPV4, ET_IPV6):
        return Ref(flags=flags, **base)

    def bad(reason, **kw):
        return Ref(flags=kw.pop("fl", flags) | MALFORMED, malformed=reason, **base, **kw)

    first = True
    if et == ET_IPV4:
        if l3s + 20 > end:
            return bad(TRUNC_L3)
        if f[l3s] >> 4 != 4:
            return bad(BAD_VERSION)
        ihl = (f[l3s] & 15) * 4
        if ihl < 20:
            return bad(BAD_IHL)
        if l3s + ihl > end:
            return bad(TRUNC_L3)
        flags |= IPV4 | (IPV4_OPTIONS if ihl > 20 else 0)
        proto = f[l3s + 9]
        total = _u16(f, l3s + 2)
        if total < ihl or l3s + total > end:
            return bad(BAD_TOTAL_LEN, fl=flags, l3_off=l3s, ip_proto=proto)
        frag = _u16(f, l3s + 6)
        mf, offset = frag & 0x2000, frag & 0x1FFF
        if mf or offset:
            flags |= FRAGMENT
        first = offset == 0
        pend = l3s + total
        p = l3s + ihl
        is6 = False
    else:
        if l3s + 40 > end:
            return bad(TRUNC_L3)
        if f[l3s] >> 4 != 6:
            return bad(BAD_VERSION)
        flags |= IPV6
        proto = f[l3s + 6]
        pend = l3s + 40 + _u16(f, l3s + 4)
        if pend > end:
            return bad(BAD_TOTAL_LEN, fl=flags, l3_off=l3s, ip_proto=proto)
        p = l3s + 40
        for _ in range(MAX_IPV6_EXT):
            if proto not in IPV6_EXT:
                break
            if p + 8 > pend:
                return bad(TRUNC_L3, fl=flags, l3_off=l3s, ip_proto=proto)
            if proto == 44:  # fragment header: 8 bytes, offset (13 bits) << 3 | 2 reserved | M
                word = _u16(f, p + 2)
                offset, m = word >> 3, word & 1
                if offset or m:
                    flags |= FRAGMENT
                if offset:
                    first = False
                size = 8
            else:
                size = (f[p + 1] + 1) * 8
                if p + size > pend:
                    return bad(TRUNC_L3, fl=flags, l3_off=l3s, ip_proto=proto)
            proto = f[p]
            p += size
        is6 = True
    common = dict(l3_off=l3s, l4_end=pend, ip_proto=proto)
    if not first:
        return Ref(flags=flags, **base, **common)
    if proto == 6:
        if p + 20 > pend:
            return bad(TRUNC_L4, fl=flags, **common)
        doff = (f[p + 12] >> 4) * 4
        if doff < 20:
            return bad(BAD_TCP_OFF, fl=flags, **common)
        if p + doff > pend:
            return bad(TRUNC_L4, fl=flags, **common)
        return Ref(flags=flags | TCP, l4_off=p, **base, **common)
    if proto == 17:
        if p + 8 > pend:
            return bad(TRUNC_L4, fl=flags, **common)
        dport = _u16(f, p + 2)
        tfl, tun, il2, il3 = 0, -1, -1, -1
        if dport == VXLAN_UDP_PORT:
            tfl, tun, il2, il3 = _vxlan(f, p + 8, pend)
        elif dport == GTPU_UDP_PORT:
            tfl, tun, il3 = _gtpu(f, p + 8, pend)
        return Ref(
            flags=flags | UDP | tfl, l4_off=p, tun_off=tun, inner_l2_off=il2, inner_l3_off=il3, **base, **common
        )
    if (proto == 1 and not is6) or (proto == 58 and is6):
        if p + 4 > pend:
            return bad(TRUNC_L4, fl=flags, **common)
        return Ref(flags=flags | ICMP, l4_off=p, **base, **common)
    return Ref(flags=flags, **base, **common)
