"""Vectorized protocol views: parse every packet of a batch once, then read and write header fields
as numpy arrays.

Manual
------
:func:`parse` runs **one** numba kernel over a batch (``pool.data``, ``batch.idx``, ``pool.offset``,
``pool.length``) and returns a :class:`Headers` object, cached on the batch (``batch._headers``;
``batch.headers`` and ``batch.invalidate_headers()`` use that cache). Nothing is copied out of
the pool: the result is a handful of per-packet offset/flag columns, and the field accessors
gather or scatter the header bytes in place.

What it parses (outer to inner)
    Ethernet II; up to two VLAN tags (TPID 0x8100 or 0x88a8, in either position); IPv4 (with
    options) or IPv6 (skipping hop-by-hop 0, routing 43, fragment 44 and destination-options 60
    extension headers, at most 8); TCP, UDP, ICMP (protocol 1 over IPv4) and ICMPv6 (58 over IPv6);
    VXLAN (UDP destination port 4789: 8-byte header, inner Ethernet with up to two VLAN tags,
    inner IPv4/IPv6) and GTP-U (UDP destination port 2152: GTPv1 with PT=1, the optional 4-byte
    seq/N-PDU/next-extension field when any of E/S/PN is set, the extension-header chain when E
    is set, and for G-PDU (message type 0xFF) the inner IPv4/IPv6 chosen by its version nibble).

Columns of :class:`Headers` (numpy arrays of length ``n = len(batch)``; every offset is an
ABSOLUTE byte position inside the slot row ``pool.data[slot]``, ``-1`` where absent)

=============  =======  ===================================================================
column         dtype    meaning
=============  =======  ===================================================================
slots          int32    the batch's slot indices (``batch.idx``)
l2_off         int32    Ethernet header (``pool.offset[slot]``), -1 if the frame is < 14 bytes
n_vlan         int8     complete VLAN tags: 0, 1 or 2
ethertype      uint16   ethertype after the VLAN tags
l3_off         int32    IPv4/IPv6 header
l4_off         int32    TCP/UDP/ICMP header (-1 for non-first fragments and other protocols)
l4_end         int32    end of the IP payload per the IP length field (where the L4 segment ends)
ip_proto       uint8    IPv4 protocol, or IPv6 next header after the extension headers
flags          uint32   ``F_*`` bitmask
malformed      uint8    ``M_*`` reason code, 0 = fine
tun_off        int32    VXLAN or GTP-U header
inner_l2_off   int32    VXLAN inner Ethernet header
inner_l3_off   int32    inner IP header (GTP-U G-PDU, or VXLAN inner IPv4/IPv6)
=============  =======  ===================================================================

Invariant: a non-negative offset means the whole fixed part of that header lies inside the
frame (for IPv4 the IHL*4 bytes, for TCP the data-offset*4 bytes, for L4 inside the IP
payload), so an accessor never reads at or past ``offset + length``. The kernel never does
either: anything that would need such a read is reported as truncated.

Flags: ``F_VLAN`` (>= 1 tag), ``F_QINQ`` (2 tags), ``F_IPV4``, ``F_IPV6``, ``F_IPV4_OPTIONS``
(IHL > 5), ``F_FRAGMENT`` (IPv4 MF or offset != 0, or an IPv6 fragment header with M or
offset != 0), ``F_TCP``, ``F_UDP``, ``F_ICMP`` (ICMP or ICMPv6), ``F_VXLAN``, ``F_GTPU``,
``F_MALFORMED``. A protocol flag is set only when its header is complete (so ``F_TCP`` implies
``l4_off >= 0``). ``F_IPV4``/``F_IPV6`` are set as soon as the IP header itself is complete,
even if the length field is then found bad (``M_BAD_TOTAL_LEN``); the L4 is not parsed then.

Malformed reasons (``malformed`` column; names in ``MALFORMED_REASONS``):
``M_TRUNCATED_L2`` (< 14 bytes, or a VLAN tag cut short), ``M_TRUNCATED_L3`` (IP header or an
IPv6 extension header cut short), ``M_BAD_VERSION`` (version nibble does not match the
ethertype), ``M_BAD_IHL`` (IHL < 5), ``M_BAD_TOTAL_LEN`` (IPv4 total length beyond the frame or
below IHL*4; IPv6 payload length beyond the frame), ``M_TRUNCATED_L4`` (TCP/UDP/ICMP header does
not fit in the IP payload, or TCP options cut short), ``M_BAD_TCP_OFF`` (TCP data offset < 5).
Non-IP frames and unknown protocols are not malformed. A bad VXLAN/GTP-U payload is not
malformed either: the packet simply is not flagged as a tunnel.

Field accessors (sub-objects; each attribute reads as a new numpy array, 0 where the header is
absent, and can be assigned an array of length n or a scalar, which writes big-endian into the
packets that have the header and leaves the others alone)

- ``hv.eth``: ``dst``, ``src`` (uint64 holding 48 bits), ``type`` (outer ethertype at +12)
- ``hv.vlan``: ``vid``, ``pcp``, ``dei`` (outer tag), ``inner_vid`` (second tag)
- ``hv.ipv4``: ``version, ihl, tos, total_len, ident, flags`` (3 bits), ``frag_off`` (13 bits,
  in 8-byte units as on the wire), ``ttl, proto, checksum, src, dst`` (uint32)
- ``hv.ipv6``: ``version, traffic_class, flow_label, payload_len, next_header`` (of the fixed
  header), ``hop_limit``, ``src``/``dst`` as (n, 16) uint8 arrays, and the uint64 halves
  ``src_hi, src_lo, dst_hi, dst_lo``
- ``hv.udp``: ``sport, dport, len, checksum``
- ``hv.tcp``: ``sport, dport, seq, ack, data_off, flags`` (9 bits, NS..FIN), ``window, checksum``
- ``hv.icmp``: ``type, code, checksum`` (ICMP and ICMPv6)
- ``hv.vxlan``: ``flags, vni``;  ``hv.gtpu``: ``flags, msg_type, length, teid``
- ``hv.sport``, ``hv.dport``: TCP or UDP ports, else 0

Setters do NOT update checksums (use ``csum_update16/32`` from :mod:`tailgate.packet.checksum`
or the ``fix_*`` methods). A setter of a field that decides the layout (``eth.type``,
``ipv4.version/ihl/total_len/flags/frag_off/proto``, ``ipv6.version/payload_len/next_header``,
``tcp.data_off``, ``udp.dport``, ``dport``, ``gtpu.flags/msg_type``) re-parses the batch in place
(:meth:`Headers.refresh`), so the columns stay true; other setters leave the columns alone.
After changing the layout some other way (encap/decap), call ``batch.invalidate_headers()``.

Other methods: :meth:`Headers.flow_hash` (32-bit murmur3-style hash of src ip, dst ip, protocol,
sport, dport; deterministic across runs; non-IP packets hash the seed only),
:meth:`Headers.ipv4_checksum_ok`, :meth:`Headers.fix_ipv4_checksum`,
:meth:`Headers.l4_checksum_ok`, :meth:`Headers.fix_l4_checksum` (TCP/UDP/ICMP/ICMPv6 where the
L4 segment is complete and not a fragment; an IPv4 UDP checksum of 0 means "none" and counts as
ok), :meth:`Headers.malformed_counts`.

Columns are views of one buffer owned by the :class:`Headers` object (treat them as read-only;
:meth:`Headers.refresh` rewrites them in place). Boolean masks: ``is_ipv4, is_ipv6, is_tcp,
is_udp, is_icmp, is_vlan, is_vxlan, is_gtpu, is_fragment, is_malformed``.

Module kernels take that buffer whole, ``kernel(pool.data, hv.buf, ...)``, and find the columns
(the slot indices among them) with the inlined :func:`hdr_cols`: two arguments instead of one
per column, and no Python-side column views.

Cost: one numba call per batch: a fixed call cost plus a few ns per packet.

Example::

    pool = PacketPool(4096)
    batch = pool.from_frames(frames)
    hv = parse(batch)                                   # or batch.headers
    dns = hv.is_udp & (hv.dport == 53)
    v4 = hv.ipv4
    old = (v4.ttl.astype(np.uint16) << 8) | v4.proto   # the 16-bit word that holds the TTL
    v4.ttl = np.maximum(v4.ttl, 1) - 1                  # only IPv4 packets are written
    v4.checksum = csum_update16(v4.checksum, old, (v4.ttl.astype(np.uint16) << 8) | v4.proto)
    bad = batch.select(hv.is_malformed)                 # why: hv.malformed_counts()
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tailgate.packet.checksum import ipv4_hdr_csum_of, l4_csum, l4_csum_field
from tailgate.packet.wide import ld_be16, prefetch, slot_row, st_be16

__all__ = [
    "parse",
    "Headers",
    "F_VLAN",
    "F_QINQ",
    "F_IPV4",
    "F_IPV6",
    "F_IPV4_OPTIONS",
    "F_FRAGMENT",
    "F_TCP",
    "F_UDP",
    "F_ICMP",
    "F_VXLAN",
    "F_GTPU",
    "F_MALFORMED",
    "M_OK",
    "M_TRUNCATED_L2",
    "M_TRUNCATED_L3",
    "M_BAD_VERSION",
    "M_BAD_IHL",
    "M_BAD_TOTAL_LEN",
    "M_TRUNCATED_L4",
    "M_BAD_TCP_OFF",
    "MALFORMED_REASONS",
    "ETH_P_IPV4",
    "ETH_P_IPV6",
    "ETH_P_8021Q",
    "ETH_P_8021AD",
    "VXLAN_PORT",
    "GTPU_PORT",
]

# -- flags ---------------------------------------------------------------------------------------
F_VLAN = 1 << 0
F_QINQ = 1 << 1
F_IPV4 = 1 << 2
F_IPV6 = 1 << 3
F_IPV4_OPTIONS = 1 << 4
F_FRAGMENT = 1 << 5
F_TCP = 1 << 6
F_UDP = 1 << 7
F_ICMP = 1 << 8
F_VXLAN = 1 << 9
F_GTPU = 1 << 10
F_MALFORMED = 1 << 11

# -- malformed reasons -------------------------------------------------------------------------
M_OK = 0
M_TRUNCATED_L2 = 1
M_TRUNCATED_L3 = 2
M_BAD_VERSION = 3
M_BAD_IHL = 4
M_BAD_TOTAL_LEN = 5
M_TRUNCATED_L4 = 6
M_BAD_TCP_OFF = 7
MALFORMED_REASONS = (
    "ok",
    "truncated_l2",
    "truncated_l3",
    "bad_version",
    "bad_ihl",
    "bad_total_len",
    "truncated_l4",
    "bad_tcp_off",
)

ETH_P_IPV4 = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
VXLAN_PORT = 4789
GTPU_PORT = 2152

_MAX_IPV6_EXT = 8
_PREFETCH_AHEAD = 8
_MAX_GTP_EXT = 16

# Layout of the one output buffer the kernel fills: 9 int32 columns, 1 uint16, 3 uint8. The
# slot indices are copied in too, so that a module's kernel takes ``(pool.data, hv.buf)`` and
# finds every column there: each array argument of a numba call costs ~0.1 us of dispatch, and
# each Python-side column view more, against a few ns per packet to copy the slots.
C_L2, C_L3, C_L4, C_L4END, C_TUN, C_IL2, C_IL3, C_FLAGS, C_SLOT = range(9)
_N_I32 = 9
B_NVLAN, B_PROTO, B_MAL = range(3)
_ROW_BYTES = _N_I32 * 4 + 2 + 3


# ================================================================================================
# parse kernel
# ================================================================================================
@njit(cache=True, inline="always")
def _at(row, o):
    """``row[o]`` for an offset known to be >= 0 (an unsigned index skips numba's wraparound)."""
    return row[np.uint64(o)]


@njit(cache=True, inline="always")
def _be16(row, o):
    return ld_be16(row, o)


@njit(cache=True, inline="always")
def hdr_cols(buf):
    """The columns of a :class:`Headers` buffer (``hv.buf``), for module kernels: returns
    ``(n, i32, et, u8)`` where column ``C_x`` of packet ``k`` is ``i32[C_x * n + k]`` (offsets,
    flags, the slot), the ethertype is ``et[k]`` and ``B_x`` is ``u8[B_x * n + k]``."""
    n = buf.shape[0] // _ROW_BYTES
    i32 = buf[: 4 * _N_I32 * n].view(np.int32)
    et = buf[4 * _N_I32 * n : (4 * _N_I32 + 2) * n].view(np.uint16)
    u8 = buf[(4 * _N_I32 + 2) * n :]
    return n, i32, et, u8


@njit(cache=True, inline="always")
def _skip_vlans(row, o, end):
    """Skip up to two VLAN tags at ``o`` (the ethertype field). Returns (ethertype, hdr_end, n, ok)."""
    et = _be16(row, o)
    p = o + 2
    n = 0
    ok = True
    while (et == ETH_P_8021Q or et == ETH_P_8021AD) and n < 2:
        if p + 4 > end:
            ok = False
            break
        et = _be16(row, p + 2)
        p += 4
        n += 1
    return et, p, n, ok


@njit(cache=True, inline="always")
def _inner_ip_ok(row, o, end, version):
    """True if a complete IPv4/IPv6 header (of ``version``, or either if 0) sits at ``o``."""
    if o + 1 > end:
        return False
    v = _at(row, o) >> 4
    if version != 0 and v != version:
        return False
    if v == 4:
        ihl = np.int64(_at(row, o) & 0x0F) * 4
        return ihl >= 20 and o + ihl <= end
    if v == 6:
        return o + 40 <= end
    return False


# One helper per header layer, each inlined into the kernel by numba. They take the slot row
# (a borrowed view: passing it costs nothing) and scalars, and return scalars: a layer helper
# returns ``mal`` (M_OK or why the packet is malformed), the flags it found and its offsets.
# The walk stops at the first malformed layer, keeping what the layers before it found.
@njit(cache=True, inline="always")
def _l2(row, base, end):
    """Ethernet and up to two VLAN tags: ``(mal, flags, l2, ethertype, l3 start, n_vlan)``."""
    if base < 0 or base + 14 > end:
        return M_TRUNCATED_L2, 0, -1, 0, 0, 0
    et, l3s, nvlan, ok = _skip_vlans(row, base + 12, end)
    fl = 0
    if nvlan >= 1:
        fl |= F_VLAN
        if nvlan == 2:
            fl |= F_QINQ
    if not ok:
        return M_TRUNCATED_L2, fl, base, et, l3s, nvlan
    return M_OK, fl, base, et, l3s, nvlan


@njit(cache=True, inline="always")
def _l3_ipv4(row, l3s, end):
    """IPv4 header at ``l3s``: ``(mal, flags, l3, proto, payload end, L4 start, first fragment)``."""
    if l3s + 20 > end:
        return M_TRUNCATED_L3, 0, -1, 0, -1, 0, True
    b0 = _at(row, l3s)
    if (b0 >> 4) != 4:
        return M_BAD_VERSION, 0, -1, 0, -1, 0, True
    ihl = np.int64(b0 & 0x0F) * 4
    if ihl < 20:
        return M_BAD_IHL, 0, -1, 0, -1, 0, True
    if l3s + ihl > end:
        return M_TRUNCATED_L3, 0, -1, 0, -1, 0, True
    fl = F_IPV4
    if ihl > 20:
        fl |= F_IPV4_OPTIONS
    proto = _at(row, l3s + 9)
    tl = _be16(row, l3s + 2)
    if tl < ihl or l3s + tl > end:
        return M_BAD_TOTAL_LEN, fl, l3s, proto, -1, 0, True
    first_frag = True
    fo = _be16(row, l3s + 6)
    if fo & 0x3FFF:
        fl |= F_FRAGMENT
        if fo & 0x1FFF:
            first_frag = False
    return M_OK, fl, l3s, proto, l3s + tl, l3s + ihl, first_frag


@njit(cache=True, inline="always")
def _l3_ipv6(row, l3s, end):
    """IPv6 header and its extension headers at ``l3s``: as :func:`_l3_ipv4` (``proto`` is the
    next header after the extension headers, or where their walk stopped)."""
    if l3s + 40 > end:
        return M_TRUNCATED_L3, 0, -1, 0, -1, 0, True
    if (_at(row, l3s) >> 4) != 6:
        return M_BAD_VERSION, 0, -1, 0, -1, 0, True
    fl = F_IPV6
    nh = _at(row, l3s + 6)
    pend = l3s + 40 + _be16(row, l3s + 4)
    if pend > end:
        return M_BAD_TOTAL_LEN, fl, l3s, nh, -1, 0, True
    mal = M_OK
    first_frag = True
    p = l3s + 40
    cnt = 0
    while cnt < _MAX_IPV6_EXT and (nh == 0 or nh == 43 or nh == 60 or nh == 44):
        if p + 8 > pend:
            mal = M_TRUNCATED_L3
            break
        if nh == 44:
            fo = _be16(row, p + 2)
            if fo & 0xFFF9:
                fl |= F_FRAGMENT
                if fo & 0xFFF8:
                    first_frag = False
            hlen = 8
        else:
            hlen = (np.int64(_at(row, p + 1)) + 1) * 8
            if p + hlen > pend:
                mal = M_TRUNCATED_L3
                break
        nh = _at(row, p)
        p += hlen
        cnt += 1
    return mal, fl, l3s, nh, pend, p, first_frag


@njit(cache=True, inline="always")
def _vxlan(row, q, pend):
    """VXLAN header at ``q`` (inside the UDP payload ending at ``pend``): ``(flags, tun, inner
    l2, inner l3)``."""
    if q + 8 > pend:
        return 0, -1, -1, -1
    ie = q + 8
    if ie + 14 > pend:
        return F_VXLAN, q, -1, -1
    il3 = -1
    iet, ip3, _, iok = _skip_vlans(row, ie + 12, pend)
    if iok:
        if iet == ETH_P_IPV4 and _inner_ip_ok(row, ip3, pend, 4):
            il3 = ip3
        elif iet == ETH_P_IPV6 and _inner_ip_ok(row, ip3, pend, 6):
            il3 = ip3
    return F_VXLAN, q, ie, il3


@njit(cache=True, inline="always")
def _gtpu(row, q, pend):
    """GTP-U header at ``q``: ``(flags, tun, inner l3)`` (inner IP of a G-PDU only)."""
    if q + 8 > pend:
        return 0, -1, -1
    gf = _at(row, q)
    if (gf >> 5) != 1 or (gf & 0x10) == 0:
        return 0, -1, -1
    gh = 8
    chain_ok = True
    if gf & 0x07:
        gh = 12
        if gf & 0x04 and q + 12 <= pend:
            nxt = _at(row, q + 11)
            ecnt = 0
            while nxt != 0:
                if ecnt >= _MAX_GTP_EXT or q + gh + 1 > pend:
                    chain_ok = False
                    break
                elen = np.int64(_at(row, q + gh)) * 4
                if elen == 0 or q + gh + elen > pend:
                    chain_ok = False
                    break
                nxt = _at(row, q + gh + elen - 1)
                gh += elen
                ecnt += 1
    if not (q + 12 <= pend or gh == 8):
        return 0, -1, -1
    il3 = -1
    if chain_ok and _at(row, q + 1) == 0xFF and _inner_ip_ok(row, q + gh, pend, 0):
        il3 = q + gh
    return F_GTPU, q, il3


@njit(cache=True, inline="always")
def _l4(row, p, pend, proto, is6):
    """TCP, UDP (and a VXLAN or GTP-U tunnel in it), ICMP or ICMPv6 header at ``p``: ``(mal,
    flags, l4, tun, inner l2, inner l3)``; other protocols are not parsed and not malformed."""
    if proto == 6:
        if p + 20 > pend:
            return M_TRUNCATED_L4, 0, -1, -1, -1, -1
        doff = np.int64(_at(row, p + 12) >> 4) * 4
        if doff < 20:
            return M_BAD_TCP_OFF, 0, -1, -1, -1, -1
        if p + doff > pend:
            return M_TRUNCATED_L4, 0, -1, -1, -1, -1
        return M_OK, F_TCP, p, -1, -1, -1
    if proto == 17:
        if p + 8 > pend:
            return M_TRUNCATED_L4, 0, -1, -1, -1, -1
        dport = _be16(row, p + 2)
        if dport == VXLAN_PORT:
            tfl, tun, il2, il3 = _vxlan(row, p + 8, pend)
            return M_OK, F_UDP | tfl, p, tun, il2, il3
        if dport == GTPU_PORT:
            tfl, tun, il3 = _gtpu(row, p + 8, pend)
            return M_OK, F_UDP | tfl, p, tun, -1, il3
        return M_OK, F_UDP, p, -1, -1, -1
    if (proto == 1 and not is6) or (proto == 58 and is6):
        if p + 4 > pend:
            return M_TRUNCATED_L4, 0, -1, -1, -1, -1
        return M_OK, F_ICMP, p, -1, -1, -1
    return M_OK, 0, -1, -1, -1, -1


@njit(cache=True, inline="always")
def _walk(row, base, end):
    """Every layer of the frame ``row[base:end]``, outer to inner: ``(l2, l3, l4, l4end, tun,
    inner l2, inner l3, flags, n_vlan, ethertype, proto, mal)``."""
    l3 = -1
    l4 = -1
    l4end = -1
    tun = -1
    il2 = -1
    il3 = -1
    proto = 0
    mal, fl, l2, et, l3s, nvlan = _l2(row, base, end)
    if mal == M_OK and (et == ETH_P_IPV4 or et == ETH_P_IPV6):  # (not IP: not malformed either)
        is6 = et == ETH_P_IPV6
        if is6:
            mal, f3, l3, proto, pend, p, first_frag = _l3_ipv6(row, l3s, end)
        else:
            mal, f3, l3, proto, pend, p, first_frag = _l3_ipv4(row, l3s, end)
        fl |= f3
        if mal == M_OK:
            l4end = pend
            if first_frag:
                mal, f4, l4, tun, il2, il3 = _l4(row, p, pend, proto, is6)
                fl |= f4
    if mal != M_OK:
        fl |= F_MALFORMED
    return l2, l3, l4, l4end, tun, il2, il3, fl, nvlan, et, proto, mal


@njit(cache=True, inline="always")
def _fast_ipv4(row, base, end):
    """The common case: untagged IPv4 without options, not a fragment, carrying TCP or UDP that
    is not a tunnel. ``(flags, payload end, proto)``; flags 0 when the packet is not such a one
    (then :func:`_walk` takes it, and gives it the same columns this would)."""
    if base >= 0 and base + 34 <= end and _be16(row, base + 12) == ETH_P_IPV4 and _at(row, base + 14) == 0x45:
        l3 = base + 14
        tl = _be16(row, l3 + 2)
        pend = l3 + tl
        proto = _at(row, l3 + 9)
        if tl >= 20 and pend <= end and (_be16(row, l3 + 6) & 0x3FFF) == 0:
            p = l3 + 20
            if proto == 17:
                if p + 8 <= pend:
                    dport = _be16(row, p + 2)
                    if dport != VXLAN_PORT and dport != GTPU_PORT:
                        return F_IPV4 | F_UDP, pend, proto
            elif proto == 6 and p + 20 <= pend:
                doff = np.int64(_at(row, p + 12) >> 4) * 4
                if doff >= 20 and p + doff <= pend:
                    return F_IPV4 | F_TCP, pend, proto
    return 0, 0, 0


@njit(cache=True)
def _parse_kernel(data, slots, offset, length, buf):
    """Parse every packet of a batch into ``buf`` (see :func:`hdr_cols`): the common case by
    :func:`_fast_ipv4`, the rest by :func:`_walk`."""
    n, i32, u16, u8 = hdr_cols(buf)
    rowlen = data.shape[1]
    for k in range(n):
        # The parser is usually the first to touch a frame: fetch the one 8 packets on now.
        if k + _PREFETCH_AHEAD < n:
            s_ahead = slots[k + _PREFETCH_AHEAD]
            prefetch(data, s_ahead, offset[s_ahead])
        s = slots[k]
        row = slot_row(data, s)
        base = np.int64(offset[s])
        end = base + np.int64(length[s])
        if end > rowlen:
            end = rowlen
        # The stores stay in the kernel: an array passed to an inlined helper costs a reference
        # count increment and decrement per call. And the common case keeps its own store block
        # of constants: merging the two paths into one block costs some percent of the parse.
        # Unsigned indices: numba then skips its negative-index wraparound (a few % here).
        fl, pend, proto = _fast_ipv4(row, base, end)
        if fl != 0:
            l3 = base + 14
            i32[np.uint64(C_L2 * n + k)] = base
            i32[np.uint64(C_L3 * n + k)] = l3
            i32[np.uint64(C_L4 * n + k)] = l3 + 20
            i32[np.uint64(C_L4END * n + k)] = pend
            i32[np.uint64(C_TUN * n + k)] = -1
            i32[np.uint64(C_IL2 * n + k)] = -1
            i32[np.uint64(C_IL3 * n + k)] = -1
            i32[np.uint64(C_FLAGS * n + k)] = fl
            i32[np.uint64(C_SLOT * n + k)] = s
            u16[np.uint64(k)] = ETH_P_IPV4
            u8[np.uint64(B_NVLAN * n + k)] = 0
            u8[np.uint64(B_PROTO * n + k)] = proto
            u8[np.uint64(B_MAL * n + k)] = M_OK
            continue
        l2, l3, l4, l4end, tun, il2, il3, fl, nvlan, et, proto, mal = _walk(row, base, end)
        i32[np.uint64(C_L2 * n + k)] = l2
        i32[np.uint64(C_L3 * n + k)] = l3
        i32[np.uint64(C_L4 * n + k)] = l4
        i32[np.uint64(C_L4END * n + k)] = l4end
        i32[np.uint64(C_TUN * n + k)] = tun
        i32[np.uint64(C_IL2 * n + k)] = il2
        i32[np.uint64(C_IL3 * n + k)] = il3
        i32[np.uint64(C_FLAGS * n + k)] = fl
        i32[np.uint64(C_SLOT * n + k)] = s
        u16[np.uint64(k)] = et
        u8[np.uint64(B_NVLAN * n + k)] = nvlan
        u8[np.uint64(B_PROTO * n + k)] = proto
        u8[np.uint64(B_MAL * n + k)] = mal
    return 0


# ================================================================================================
# checksum kernels (whole batch, one call; see Headers.ipv4_checksum_ok and friends)
# ================================================================================================
_NO_OK = np.zeros(0, np.bool_)


@njit(cache=True)
def _ipv4_csum_check_kernel(data, hbuf, ok):
    n, i32, _, _ = hdr_cols(hbuf)
    slots = i32[C_SLOT * n : (C_SLOT + 1) * n]
    l3_off = i32[C_L3 * n : (C_L3 + 1) * n]
    flags = i32[C_FLAGS * n : (C_FLAGS + 1) * n]
    for k in range(n):
        if flags[k] & F_IPV4:
            row = slot_row(data, np.uint64(slots[k]))
            o = np.int64(l3_off[k])
            ok[k] = ipv4_hdr_csum_of(row, o) == _be16(row, o + 10)
        else:
            ok[k] = False


@njit(cache=True)
def _ipv4_csum_fix_kernel(data, hbuf):
    n, i32, _, _ = hdr_cols(hbuf)
    slots = i32[C_SLOT * n : (C_SLOT + 1) * n]
    l3_off = i32[C_L3 * n : (C_L3 + 1) * n]
    flags = i32[C_FLAGS * n : (C_FLAGS + 1) * n]
    for k in range(n):
        if flags[k] & F_IPV4:
            row = slot_row(data, np.uint64(slots[k]))
            o = np.int64(l3_off[k])
            st_be16(row, o + 10, ipv4_hdr_csum_of(row, o))


@njit(cache=True)
def _l4_csum_kernel(data, slots, l3_off, l4_off, l4_end, flags, ip_proto, fix, ok):
    """TCP/UDP/ICMP/ICMPv6 checksums of the complete, unfragmented L4 segments: store them
    (``fix``) or set ``ok[k]`` (False where there is no such segment). The sums are
    :func:`tailgate.packet.checksum.l4_csum`; a stored UDP-over-IPv4 checksum of 0 ("none")
    counts as ok."""
    for k in range(slots.shape[0]):
        f = flags[k]
        if (f & (F_TCP | F_UDP | F_ICMP)) == 0 or (f & F_FRAGMENT) != 0:
            if not fix:
                ok[k] = False
            continue
        row = slot_row(data, slots[k])
        p = np.int64(ip_proto[k])
        o3 = np.int64(l3_off[k])
        o4 = np.int64(l4_off[k])
        end = np.int64(l4_end[k])
        is6 = (f & F_IPV6) != 0
        c = l4_csum(row, o3, o4, end, p, is6)
        at = o4 + l4_csum_field(p)
        if fix:
            row[np.uint64(at)] = np.uint8(c >> 8)
            row[np.uint64(at + 1)] = np.uint8(c & 0xFF)
        else:
            have = _be16(row, at)
            ok[k] = c == have or (p == 17 and not is6 and have == 0)


# ================================================================================================
# generic field kernels
# ================================================================================================
@njit(cache=True)
def _read_field(data, slots, base, rel, nbytes, shift, mask, out):
    """out[k] = (big-endian nbytes at base[k]+rel >> shift) & mask, or 0 where base[k] < 0."""
    for k in range(slots.shape[0]):
        o = base[k]
        if o < 0:
            out[k] = 0
            continue
        row = slot_row(data, slots[k])
        o += rel
        w = np.uint64(0)
        for i in range(nbytes):
            w = (w << np.uint64(8)) | np.uint64(row[o + i])
        out[k] = (w >> shift) & mask


@njit(cache=True)
def _write_field(data, slots, base, rel, nbytes, shift, mask, values):
    """Read-modify-write the bit field into every packet with base[k] >= 0."""
    keep = ~(mask << shift)
    for k in range(slots.shape[0]):
        o = base[k]
        if o < 0:
            continue
        row = slot_row(data, slots[k])
        o += rel
        w = np.uint64(0)
        for i in range(nbytes):
            w = (w << np.uint64(8)) | np.uint64(row[o + i])
        w = (w & keep) | ((np.uint64(values[k]) & mask) << shift)
        for i in range(nbytes - 1, -1, -1):
            row[o + i] = np.uint8(w & np.uint64(0xFF))
            w >>= np.uint64(8)


_M32 = np.uint64(0xFFFFFFFF)


@njit(cache=True, inline="always")
def _rotl32(x, r):
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _M32


@njit(cache=True, inline="always")
def _mix(h, w):
    w = (w * np.uint64(0xCC9E2D51)) & _M32
    w = _rotl32(w, 15)
    w = (w * np.uint64(0x1B873593)) & _M32
    h ^= w
    h = _rotl32(h, 13)
    return (h * np.uint64(5) + np.uint64(0xE6546B64)) & _M32


@njit(cache=True, inline="always")
def _be32u(row, o):
    return (
        (np.uint64(row[o]) << np.uint64(24))
        | (np.uint64(row[o + 1]) << np.uint64(16))
        | (np.uint64(row[o + 2]) << np.uint64(8))
        | np.uint64(row[o + 3])
    )


@njit(cache=True)
def _flow_hash_kernel(data, slots, l3_off, l4_off, flags, proto, seed, out):
    for k in range(slots.shape[0]):
        h = np.uint64(seed) & _M32
        f = flags[k]
        row = slot_row(data, slots[k])
        o = l3_off[k]
        nw = 3
        p = np.uint64(0)
        if f & F_IPV4:
            h = _mix(h, _be32u(row, o + 12))
            h = _mix(h, _be32u(row, o + 16))
            p = np.uint64(proto[k])
        elif f & F_IPV6:
            for i in range(8):
                h = _mix(h, _be32u(row, o + 8 + 4 * i))
            nw = 9
            p = np.uint64(proto[k])
        ports = np.uint64(0)
        if f & (F_TCP | F_UDP):
            ports = _be32u(row, l4_off[k])
        h = _mix(h, ports)
        h = _mix(h, p)
        h ^= np.uint64(4 * nw)
        h ^= h >> np.uint64(16)
        h = (h * np.uint64(0x85EBCA6B)) & _M32
        h ^= h >> np.uint64(13)
        h = (h * np.uint64(0xC2B2AE35)) & _M32
        h ^= h >> np.uint64(16)
        out[k] = h


# ================================================================================================
# Python side
# ================================================================================================
def _as_values(value, n: int, what: str) -> np.ndarray:
    """An int64/uint64 array of length n from an array or a scalar (bit patterns kept)."""
    a = np.asarray(value)
    if a.ndim == 0:
        a = np.full(n, a)
    elif a.shape != (n,):
        raise ValueError(f"{what}: expected a scalar or an array of length {n}, got shape {a.shape}")
    if a.dtype == np.uint64 or a.dtype == np.int64:
        return np.ascontiguousarray(a)
    if a.dtype.kind not in "iub":
        raise TypeError(f"{what}: expected integers, got {a.dtype}")
    return a.astype(np.int64)


class _Field:
    """A big-endian bit field of a header, as a numpy-array property of a header view."""

    def __init__(self, hdr, rel, nbytes, dtype, shift=0, mask=None, structural=False, doc=""):
        self.hdr = hdr
        self.rel = int(rel)
        self.nbytes = int(nbytes)
        self.dtype = np.dtype(dtype)
        self.shift = np.uint64(shift)
        self.mask = np.uint64((1 << (8 * nbytes)) - 1 if mask is None else mask)
        self.structural = structural
        self.__doc__ = doc
        self.name = "?"

    def __set_name__(self, owner, name):
        self.name = f"{owner.__name__.lstrip('_').replace('View', '').lower()}.{name}"

    def __get__(self, view, owner=None):
        if view is None:
            return self
        h = view._h
        out = np.empty(h.n, self.dtype)
        _read_field(h.pool.data, h.slots, h._base(self.hdr), self.rel, self.nbytes, self.shift, self.mask, out)
        return out

    def __set__(self, view, value):
        h = view._h
        vals = _as_values(value, h.n, self.name)
        _write_field(h.pool.data, h.slots, h._base(self.hdr), self.rel, self.nbytes, self.shift, self.mask, vals)
        if self.structural:
            h.refresh()


class _Ipv6Addr:
    """A 16-byte IPv6 address field as an (n, 16) uint8 array."""

    def __init__(self, rel, doc=""):
        self.rel = rel
        self.__doc__ = doc

    def __set_name__(self, owner, name):
        self.name = f"ipv6.{name}"

    def __get__(self, view, owner=None):
        if view is None:
            return self
        h = view._h
        base = h._base("ipv6")
        out = np.zeros((h.n, 16), np.uint8)
        m = base >= 0
        if m.any():
            cols = base[m][:, None] + (self.rel + np.arange(16))
            out[m] = h.pool.data[h.slots[m][:, None], cols]
        return out

    def __set__(self, view, value):
        h = view._h
        if isinstance(value, (bytes, bytearray)):
            value = np.frombuffer(bytes(value), np.uint8)
        elif hasattr(value, "packed"):  # ipaddress.IPv6Address
            value = np.frombuffer(value.packed, np.uint8)
        v = np.asarray(value)
        if v.shape not in ((16,), (h.n, 16)):
            raise ValueError(f"{self.name}: expected 16 bytes or an (n, 16) array, got shape {v.shape}")
        v = np.broadcast_to(v.astype(np.uint8), (h.n, 16))
        base = h._base("ipv6")
        m = base >= 0
        if m.any():
            cols = base[m][:, None] + (self.rel + np.arange(16))
            h.pool.data[h.slots[m][:, None], cols] = v[m]


class _View:
    __slots__ = ("_h",)

    def __init__(self, h):
        self._h = h

    def __repr__(self):
        return f"<{type(self).__name__.lstrip('_')} of {self._h.n} packets>"


class _EthView(_View):
    """Ethernet header (present where ``l2_off >= 0``)."""

    __slots__ = ()
    dst = _Field("eth", 0, 6, np.uint64, doc="destination MAC (48 bits in a uint64)")
    src = _Field("eth", 6, 6, np.uint64, doc="source MAC (48 bits in a uint64)")
    type = _Field("eth", 12, 2, np.uint16, structural=True, doc="outer ethertype at +12 (TPID if tagged)")


class _VlanView(_View):
    """Outer VLAN tag (where ``n_vlan >= 1``) and the second tag's VID (where ``n_vlan == 2``)."""

    __slots__ = ()
    vid = _Field("vlan", 0, 2, np.uint16, 0, 0x0FFF, doc="outer VLAN id")
    dei = _Field("vlan", 0, 2, np.uint8, 12, 0x1, doc="outer drop-eligible indicator")
    pcp = _Field("vlan", 0, 2, np.uint8, 13, 0x7, doc="outer priority code point")
    inner_vid = _Field("vlan2", 0, 2, np.uint16, 0, 0x0FFF, doc="second (inner) tag VLAN id")


class _IPv4View(_View):
    """IPv4 header (where ``flags & F_IPV4``)."""

    __slots__ = ()
    version = _Field("ipv4", 0, 1, np.uint8, 4, 0xF, structural=True)
    ihl = _Field("ipv4", 0, 1, np.uint8, 0, 0xF, structural=True, doc="header length in 32-bit words")
    tos = _Field("ipv4", 1, 1, np.uint8)
    total_len = _Field("ipv4", 2, 2, np.uint16, structural=True)
    ident = _Field("ipv4", 4, 2, np.uint16)
    flags = _Field("ipv4", 6, 2, np.uint8, 13, 0x7, structural=True, doc="3 bits: reserved, DF (2), MF (1)")
    frag_off = _Field("ipv4", 6, 2, np.uint16, 0, 0x1FFF, structural=True, doc="13 bits, 8-byte units")
    ttl = _Field("ipv4", 8, 1, np.uint8)
    proto = _Field("ipv4", 9, 1, np.uint8, structural=True)
    checksum = _Field("ipv4", 10, 2, np.uint16)
    src = _Field("ipv4", 12, 4, np.uint32)
    dst = _Field("ipv4", 16, 4, np.uint32)


class _IPv6View(_View):
    """IPv6 fixed header (where ``flags & F_IPV6``)."""

    __slots__ = ()
    version = _Field("ipv6", 0, 4, np.uint8, 28, 0xF, structural=True)
    traffic_class = _Field("ipv6", 0, 4, np.uint8, 20, 0xFF)
    flow_label = _Field("ipv6", 0, 4, np.uint32, 0, 0xFFFFF)
    payload_len = _Field("ipv6", 4, 2, np.uint16, structural=True)
    next_header = _Field("ipv6", 6, 1, np.uint8, structural=True, doc="next header of the fixed header")
    hop_limit = _Field("ipv6", 7, 1, np.uint8)
    src = _Ipv6Addr(8, doc="source address, (n, 16) uint8")
    dst = _Ipv6Addr(24, doc="destination address, (n, 16) uint8")
    src_hi = _Field("ipv6", 8, 8, np.uint64)
    src_lo = _Field("ipv6", 16, 8, np.uint64)
    dst_hi = _Field("ipv6", 24, 8, np.uint64)
    dst_lo = _Field("ipv6", 32, 8, np.uint64)


class _UdpView(_View):
    """UDP header (where ``flags & F_UDP``)."""

    __slots__ = ()
    sport = _Field("udp", 0, 2, np.uint16)
    dport = _Field("udp", 2, 2, np.uint16, structural=True)
    len = _Field("udp", 4, 2, np.uint16)
    checksum = _Field("udp", 6, 2, np.uint16)


class _TcpView(_View):
    """TCP header (where ``flags & F_TCP``)."""

    __slots__ = ()
    sport = _Field("tcp", 0, 2, np.uint16)
    dport = _Field("tcp", 2, 2, np.uint16)
    seq = _Field("tcp", 4, 4, np.uint32)
    ack = _Field("tcp", 8, 4, np.uint32)
    data_off = _Field("tcp", 12, 1, np.uint8, 4, 0xF, structural=True, doc="header length in 32-bit words")
    flags = _Field("tcp", 12, 2, np.uint16, 0, 0x1FF, doc="9 bits: NS CWR ECE URG ACK PSH RST SYN FIN")
    window = _Field("tcp", 14, 2, np.uint16)
    checksum = _Field("tcp", 16, 2, np.uint16)


class _IcmpView(_View):
    """ICMP / ICMPv6 header (where ``flags & F_ICMP``)."""

    __slots__ = ()
    type = _Field("icmp", 0, 1, np.uint8)
    code = _Field("icmp", 1, 1, np.uint8)
    checksum = _Field("icmp", 2, 2, np.uint16)


class _VxlanView(_View):
    """VXLAN header (where ``flags & F_VXLAN``)."""

    __slots__ = ()
    flags = _Field("vxlan", 0, 1, np.uint8)
    vni = _Field("vxlan", 4, 4, np.uint32, 8, 0xFFFFFF)


class _GtpuView(_View):
    """GTP-U header (where ``flags & F_GTPU``)."""

    __slots__ = ()
    flags = _Field("gtpu", 0, 1, np.uint8, structural=True)
    msg_type = _Field("gtpu", 1, 1, np.uint8, structural=True)
    length = _Field("gtpu", 2, 2, np.uint16)
    teid = _Field("gtpu", 4, 4, np.uint32)


class _cached:
    """Like ``functools.cached_property`` without its lock (Python 3.11 takes one on every first
    read, about 2 µs here — more than some kernels). Computed once, then found in ``__dict__``."""

    def __init__(self, func):
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


def _i32_col(col, dtype, doc):
    def get(self):
        n = self.n
        return self.buf[4 * n * col : 4 * n * (col + 1)].view(dtype)

    get.__doc__ = doc
    return _cached(get)


def _u8_col(col, dtype, doc):
    def get(self):
        n = self.n
        o = (4 * _N_I32 + 2) * n
        return self.buf[o + n * col : o + n * (col + 1)].view(dtype)

    get.__doc__ = doc
    return _cached(get)


class Headers:
    """Parsed headers of one batch: per-packet offset/flag columns plus field accessors.

    Columns are views of one buffer that :meth:`refresh` rewrites in place. See the module
    docstring for the full manual.
    """

    # ``sport``/``dport`` descriptors look for ``_h`` on their owner.
    sport = _Field("ports", 0, 2, np.uint16, doc="TCP or UDP source port, else 0")
    dport = _Field("ports", 2, 2, np.uint16, structural=True, doc="TCP or UDP destination port, else 0")

    def __init__(self, pool, slots: np.ndarray) -> None:
        self.pool = pool
        self.slots = slots
        self.n = n = slots.shape[0]
        self.buf = np.empty(n * _ROW_BYTES, np.uint8)
        self._bases = {}
        _parse_kernel(pool.data, slots, pool.offset, pool.length, self.buf)

    @property
    def _h(self):
        return self

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Headers({self.n} packets, {int(np.count_nonzero(self.malformed))} malformed)"

    def refresh(self) -> "Headers":
        """Re-parse the same slots in place (after writing a field that changes the layout)."""
        _parse_kernel(self.pool.data, self.slots, self.pool.offset, self.pool.length, self.buf)
        self._bases.clear()
        return self

    # -- columns ------------------------------------------------------------------------------
    l2_off = _i32_col(C_L2, np.int32, "l2_off: Ethernet header offset, -1 if the frame has < 14 bytes")
    l3_off = _i32_col(C_L3, np.int32, "l3_off: IPv4/IPv6 header offset, -1 if absent")
    l4_off = _i32_col(C_L4, np.int32, "l4_off: TCP/UDP/ICMP header offset, -1 if absent")
    l4_end = _i32_col(C_L4END, np.int32, "l4_end: end of the IP payload per the IP length, -1 if absent")
    tun_off = _i32_col(C_TUN, np.int32, "tun_off: VXLAN or GTP-U header offset, -1 if absent")
    inner_l2_off = _i32_col(C_IL2, np.int32, "inner_l2_off: VXLAN inner Ethernet offset, -1 if absent")
    inner_l3_off = _i32_col(C_IL3, np.int32, "inner_l3_off: tunnelled IP header offset, -1 if absent")
    flags = _i32_col(C_FLAGS, np.uint32, "flags: F_* bitmask")

    @_cached
    def ethertype(self) -> np.ndarray:
        """Ethertype after the VLAN tags (0 if the frame has no complete Ethernet header)."""
        n = self.n
        return self.buf[4 * _N_I32 * n : (4 * _N_I32 + 2) * n].view(np.uint16)

    n_vlan = _u8_col(B_NVLAN, np.int8, "n_vlan: complete VLAN tags (0, 1 or 2)")
    ip_proto = _u8_col(B_PROTO, np.uint8, "ip_proto: IPv4 protocol / IPv6 final next header")
    malformed = _u8_col(B_MAL, np.uint8, "malformed: M_* reason code, 0 = fine")

    # -- boolean masks --------------------------------------------------------------------------
    def _flag(self, f: int) -> np.ndarray:
        return (self.flags & np.uint32(f)) != 0

    is_ipv4 = property(lambda self: self._flag(F_IPV4), doc="IPv4 header complete")
    is_ipv6 = property(lambda self: self._flag(F_IPV6), doc="IPv6 header complete")
    is_tcp = property(lambda self: self._flag(F_TCP), doc="TCP header complete")
    is_udp = property(lambda self: self._flag(F_UDP), doc="UDP header complete")
    is_icmp = property(lambda self: self._flag(F_ICMP), doc="ICMP/ICMPv6 header complete")
    is_vlan = property(lambda self: self._flag(F_VLAN), doc="at least one VLAN tag")
    is_vxlan = property(lambda self: self._flag(F_VXLAN), doc="VXLAN header complete")
    is_gtpu = property(lambda self: self._flag(F_GTPU), doc="GTP-U header complete")
    is_fragment = property(lambda self: self._flag(F_FRAGMENT), doc="IP fragment (first or later)")
    is_malformed = property(lambda self: self.malformed != 0, doc="malformed reason != 0")

    # -- header views ----------------------------------------------------------------------------
    eth = _cached(lambda self: _EthView(self))
    vlan = _cached(lambda self: _VlanView(self))
    ipv4 = _cached(lambda self: _IPv4View(self))
    ipv6 = _cached(lambda self: _IPv6View(self))
    udp = _cached(lambda self: _UdpView(self))
    tcp = _cached(lambda self: _TcpView(self))
    icmp = _cached(lambda self: _IcmpView(self))
    vxlan = _cached(lambda self: _VxlanView(self))
    gtpu = _cached(lambda self: _GtpuView(self))

    def _base(self, hdr: str) -> np.ndarray:
        """Absolute offset of header ``hdr`` per packet, -1 where the packet lacks it (cached)."""
        b = self._bases.get(hdr)
        if b is not None:
            return b
        neg = np.int32(-1)
        if hdr == "eth":
            b = self.l2_off
        elif hdr == "vlan":
            b = np.where(self.n_vlan >= 1, self.l2_off + np.int32(14), neg)
        elif hdr == "vlan2":
            b = np.where(self.n_vlan >= 2, self.l2_off + np.int32(18), neg)
        elif hdr == "ipv4":
            b = np.where(self._flag(F_IPV4), self.l3_off, neg)
        elif hdr == "ipv6":
            b = np.where(self._flag(F_IPV6), self.l3_off, neg)
        elif hdr == "udp":
            b = np.where(self._flag(F_UDP), self.l4_off, neg)
        elif hdr == "tcp":
            b = np.where(self._flag(F_TCP), self.l4_off, neg)
        elif hdr == "icmp":
            b = np.where(self._flag(F_ICMP), self.l4_off, neg)
        elif hdr == "ports":
            b = np.where(self._flag(F_TCP | F_UDP), self.l4_off, neg)
        elif hdr == "vxlan":
            b = np.where(self._flag(F_VXLAN), self.tun_off, neg)
        elif hdr == "gtpu":
            b = np.where(self._flag(F_GTPU), self.tun_off, neg)
        else:
            raise KeyError(hdr)
        b = np.ascontiguousarray(b, dtype=np.int32)
        self._bases[hdr] = b
        return b

    # -- hashing ----------------------------------------------------------------------------------
    def flow_hash(self, seed: int = 0) -> np.ndarray:
        """32-bit hash of (src ip, dst ip, ip proto, sport, dport) per packet (uint32).

        IPv4 and IPv6 (full 128-bit addresses). Ports are 0 unless TCP/UDP (so non-first fragments
        hash like port-less packets); non-IP packets hash the seed only. Deterministic across runs
        and machines; not symmetric.
        """
        out = np.empty(self.n, np.uint32)
        _flow_hash_kernel(
            self.pool.data, self.slots, self.l3_off, self.l4_off, self.flags, self.ip_proto,
            np.uint64(int(seed) & 0xFFFFFFFF), out,
        )
        return out

    # -- checksums --------------------------------------------------------------------------------
    # One numba call each, over the whole batch: selecting the IPv4 (or L4) packets with numpy
    # masks and gathering the stored checksum with 2-D fancy indexing costs far more than the
    # checksum arithmetic itself.
    def ipv4_checksum_ok(self) -> np.ndarray:
        """True where the IPv4 header checksum is right (False where not IPv4)."""
        ok = np.empty(self.n, np.bool_)
        _ipv4_csum_check_kernel(self.pool.data, self.buf, ok)
        return ok

    def fix_ipv4_checksum(self) -> None:
        """Recompute and store the IPv4 header checksum of every IPv4 packet."""
        _ipv4_csum_fix_kernel(self.pool.data, self.buf)

    def l4_checksum_ok(self) -> np.ndarray:
        """True where the TCP/UDP/ICMP/ICMPv6 checksum is right.

        False where there is no complete, unfragmented L4 segment. A UDP-over-IPv4 checksum of 0
        ("no checksum") counts as ok.
        """
        ok = np.empty(self.n, np.bool_)
        _l4_csum_kernel(
            self.pool.data, self.slots, self.l3_off, self.l4_off, self.l4_end, self.flags, self.ip_proto, False, ok
        )
        return ok

    def fix_l4_checksum(self) -> None:
        """Recompute and store the L4 checksum where the segment is complete and not a fragment."""
        _l4_csum_kernel(
            self.pool.data, self.slots, self.l3_off, self.l4_off, self.l4_end, self.flags, self.ip_proto, True,
            _NO_OK,
        )

    # -- summaries --------------------------------------------------------------------------------
    def malformed_counts(self) -> dict[str, int]:
        """``{reason name: count}`` for the reasons present (``"ok"`` included)."""
        c = np.bincount(self.malformed, minlength=len(MALFORMED_REASONS))
        return {MALFORMED_REASONS[i]: int(c[i]) for i in np.flatnonzero(c) if i < len(MALFORMED_REASONS)}


def parse(batch) -> Headers:
    """Parse every packet of ``batch`` (one numba pass) and cache the result on the batch."""
    h = batch._headers
    if h is not None:
        return h
    idx = batch.idx
    if not idx.flags.c_contiguous:
        idx = np.ascontiguousarray(idx)
    h = Headers(batch.pool, idx)
    batch._headers = h
    return h
