"""Internet checksums (RFC 1071) over packets in a pool, and RFC 1624 incremental update.

Manual
------
All offsets are *absolute byte positions inside a slot row* of ``pool.data`` (that is,
``pool.offset[slot] + header offset``). Kernels are numba-compiled and take the whole pool
array plus the batch's slot indices, so nothing is copied.

- :func:`ipv4_header_checksum` — checksum of each IPv4 header (IHL taken from the packet), as it
  should be stored in the checksum field (the field itself is skipped).
- :func:`l4_checksum` — TCP/UDP/ICMP checksum with the IPv4 or IPv6 pseudo-header where it applies.
- :func:`csum_update16`, :func:`csum_update32` — RFC 1624 eqn. 3: ``HC' = ~(~HC + ~m + m')``,
  vectorized over numpy arrays, for a 16- or 32-bit field that changed from ``m`` to ``m'``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tailgate.packet.wide import slot_row

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58


@njit(cache=True, inline="always")
def _fold(s):
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


@njit(cache=True, inline="always")
def _sum_bytes(row, start, end):
    """Ones-complement partial sum of row[start:end] as big-endian 16-bit words (odd tail padded)."""
    s = 0
    i = start
    while i + 1 < end:
        s += (np.int64(row[i]) << 8) | np.int64(row[i + 1])
        i += 2
    if i < end:
        s += np.int64(row[i]) << 8
    return s


@njit(cache=True)
def ipv4_header_checksum(data, slots, l3_off):
    """Correct header checksum for each IPv4 header at ``l3_off`` (absolute) in ``slots``."""
    n = slots.shape[0]
    out = np.empty(n, np.uint16)
    for k in range(n):
        row = slot_row(data, slots[k])
        o = l3_off[k]
        ihl = (row[o] & 0x0F) * 4
        s = _sum_bytes(row, o, o + 10) + _sum_bytes(row, o + 12, o + ihl)
        out[k] = (~_fold(s)) & 0xFFFF
    return out


@njit(cache=True)
def l4_checksum(data, slots, l3_off, l4_off, l4_end, is_ipv6, proto):
    """Correct TCP/UDP/ICMP/ICMPv6 checksum of each packet.

    ``l4_end`` is the absolute end of the L4 segment (from the IP length fields). The checksum
    field itself (at +16 for TCP, +6 for UDP, +2 for ICMP) is skipped. ICMP over IPv4 has no
    pseudo-header. A UDP result of 0 is returned as 0xFFFF (RFC 768).
    """
    n = slots.shape[0]
    out = np.empty(n, np.uint16)
    for k in range(n):
        row = slot_row(data, slots[k])
        p = proto[k]
        o3 = l3_off[k]
        o4 = l4_off[k]
        end = l4_end[k]
        seg_len = end - o4
        if p == PROTO_TCP:
            ck = 16
        elif p == PROTO_UDP:
            ck = 6
        else:
            ck = 2
        s = _sum_bytes(row, o4, o4 + ck) + _sum_bytes(row, o4 + ck + 2, end)
        if is_ipv6[k]:
            s += _sum_bytes(row, o3 + 8, o3 + 40) + seg_len + p
        elif p != PROTO_ICMP:
            s += _sum_bytes(row, o3 + 12, o3 + 20) + seg_len + p
        c = (~_fold(s)) & 0xFFFF
        if c == 0 and p == PROTO_UDP:
            c = 0xFFFF
        out[k] = c
    return out


def csum_update16(csum, old, new):
    """RFC 1624 incremental update for a 16-bit field changed from ``old`` to ``new`` (arrays)."""
    csum = np.asarray(csum, dtype=np.int64)
    old = np.asarray(old, dtype=np.int64)
    new = np.asarray(new, dtype=np.int64)
    s = (~csum & 0xFFFF) + (~old & 0xFFFF) + (new & 0xFFFF)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s & 0xFFFF).astype(np.uint16)


def csum_update32(csum, old, new):
    """RFC 1624 incremental update for a 32-bit field (e.g. an IPv4 address)."""
    old = np.asarray(old, dtype=np.int64)
    new = np.asarray(new, dtype=np.int64)
    c = csum_update16(csum, old >> 16, new >> 16)
    return csum_update16(c, old & 0xFFFF, new & 0xFFFF)
