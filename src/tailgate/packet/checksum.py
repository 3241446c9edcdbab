"""Internet checksums (RFC 1071) and their incremental update (RFC 1624): the one place that does
checksum arithmetic.

Manual
------
Every other module (the protocol view's ``fix_*``/``*_ok`` methods, the IP and NAT network
functions, the tunnels, the traffic generator) calls these; none sums or folds on its own.

Compiled primitives (numba, inlined into the caller's kernel; ``row`` is one slot row
``pool.data[slot]`` and every offset an absolute byte position in it, >= 0):

- :func:`sum16` — the unfolded sum of ``row[start:end]`` as big-endian 16-bit words, an odd
  tail padded with 0 (a partial checksum: partial sums add).
- :func:`fold16` — fold the carries of a partial sum into 16 bits; :func:`csum_finish` —
  ``~fold16(s) & 0xFFFF``, the value that goes into a checksum field.
- :func:`ipv4_hdr_csum` / :func:`ipv4_hdr_csum_of` — the checksum that belongs in the IPv4
  header at ``o`` (of ``ihl`` bytes, or of the IHL read from the header), the field itself
  skipped.
- :func:`l4_csum_field` — where the checksum field sits in a TCP (16), UDP (6) or ICMP (2)
  header; :func:`l4_csum` — the checksum that belongs in a whole TCP/UDP/ICMP/ICMPv6 segment,
  pseudo-header included (none for ICMP over IPv4); a UDP result of 0 is 0xFFFF (RFC 768).
- :func:`csum_upd16`, :func:`csum_upd32` — RFC 1624 eqn. 3, ``HC' = ~(~HC + ~m + m')``, for a
  16- or 32-bit covered field that changed from ``old`` to ``new`` (int64 scalars).
- :func:`l4_csum_update32` — that update applied to the TCP/UDP checksum of a packet whose
  pseudo-header address changed (a UDP checksum of 0 means "none" and stays 0).

Whole-batch forms (for tests, tools and numpy code; ``data`` is ``pool.data``, the rest are
per-packet arrays):

- :func:`ipv4_header_checksum(data, slots, l3_off) <ipv4_header_checksum>`,
  :func:`l4_checksum(data, slots, l3_off, l4_off, l4_end, is_ipv6, proto) <l4_checksum>` ->
  uint16 arrays: the right checksum of each packet;
- :func:`csum_update16`, :func:`csum_update32` — the incremental update over numpy arrays (any
  shapes that broadcast; a scalar in, a scalar out);
- :func:`sum16_bytes` — :func:`sum16` of a Python ``bytes`` (template headers).

Example::

    hv = batch.headers
    v4 = hv.ipv4
    old = (v4.ttl.astype(np.int64) << 8) | v4.proto
    v4.ttl = v4.ttl - 1
    v4.checksum = csum_update16(v4.checksum, old, old - 256)   # still right, payload unread
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tailgate.packet.wide import ld_be16, ld_be32, slot_row, st_be16

__all__ = [
    "PROTO_ICMP",
    "PROTO_TCP",
    "PROTO_UDP",
    "PROTO_ICMPV6",
    "sum16",
    "fold16",
    "csum_finish",
    "ipv4_hdr_csum",
    "ipv4_hdr_csum_of",
    "l4_csum_field",
    "l4_csum",
    "csum_upd16",
    "csum_upd32",
    "l4_csum_update32",
    "ipv4_header_checksum",
    "l4_checksum",
    "csum_update16",
    "csum_update32",
    "sum16_bytes",
]

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58


# ================================================================================================
# compiled primitives (inlined into the calling kernel)
# ================================================================================================
@njit(cache=True, inline="always")
def sum16(row, start, end):
    """Unfolded sum of ``row[start:end]`` as big-endian 16-bit words, an odd tail padded with 0."""
    s = np.int64(0)
    i = start
    while i + 1 < end:
        s += ld_be16(row, i)
        i += 2
    if i < end:
        # unsigned index: numba then skips its negative-index wraparound test
        s += np.int64(row[np.uint64(i)]) << 8
    return s


@njit(cache=True, inline="always")
def fold16(s):
    """A partial sum (>= 0) with its carries folded back in: the 16-bit ones-complement sum."""
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


@njit(cache=True, inline="always")
def csum_finish(s):
    """The checksum field value for the partial sum ``s``: ``~fold16(s) & 0xFFFF``."""
    return (~fold16(s)) & 0xFFFF


@njit(cache=True, inline="always")
def ipv4_hdr_csum(row, o, ihl):
    """Checksum that belongs in the IPv4 header of ``ihl`` bytes (a multiple of 4) at ``o``,
    the checksum field itself skipped."""
    # 32-bit words: folding their sum gives the 16-bit ones-complement sum (2^16 = 1 mod 0xFFFF)
    # in half the loads; then the stored checksum is taken back out.
    s = np.int64(0)
    for i in range(0, ihl, 4):
        s += ld_be32(row, o + i)
    return csum_finish(s - ld_be16(row, o + 10))


@njit(cache=True, inline="always")
def ipv4_hdr_csum_of(row, o):
    """Checksum that belongs in the complete IPv4 header at ``o`` (its length from the IHL)."""
    return ipv4_hdr_csum(row, o, np.int64(row[np.uint64(o)] & 0x0F) * 4)


@njit(cache=True, inline="always")
def l4_csum_field(p):
    """Offset of the checksum field in the L4 header of IP protocol ``p``: TCP 16, UDP 6, else
    (ICMP, ICMPv6) 2."""
    if p == PROTO_TCP:
        return 16
    if p == PROTO_UDP:
        return 6
    return 2


@njit(cache=True, inline="always")
def l4_csum(row, o3, o4, end, p, is6):
    """Checksum that belongs in the TCP/UDP/ICMP/ICMPv6 segment ``row[o4:end]`` of IP protocol
    ``p`` (int64) under the IP header at ``o3`` (IPv6 if ``is6``), the field itself skipped.

    The pseudo-header (addresses, length, protocol) counts except for ICMP over IPv4; a UDP
    result of 0 is returned as 0xFFFF (RFC 768: 0 means "no checksum")."""
    ck = l4_csum_field(p)
    s = sum16(row, o4, o4 + ck) + sum16(row, o4 + ck + 2, end)
    if is6:
        s += sum16(row, o3 + 8, o3 + 40) + (end - o4) + p
    elif p != PROTO_ICMP:
        s += sum16(row, o3 + 12, o3 + 20) + (end - o4) + p
    c = csum_finish(s)
    if c == 0 and p == PROTO_UDP:
        c = 0xFFFF
    return c


@njit(cache=True, inline="always")
def csum_upd16(c, old, new):
    """RFC 1624 eqn. 3 for one 16-bit word: ``~(~c + ~old + new)`` (all int64)."""
    s = ((~c) & 0xFFFF) + ((~old) & 0xFFFF) + (new & 0xFFFF)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


@njit(cache=True, inline="always")
def csum_upd32(c, old, new):
    """RFC 1624 for a 32-bit field (an IPv4 address): its two 16-bit words in turn."""
    c = csum_upd16(c, (old >> 16) & 0xFFFF, (new >> 16) & 0xFFFF)
    return csum_upd16(c, old & 0xFFFF, new & 0xFFFF)


@njit(cache=True, inline="always")
def l4_csum_update32(row, l4, proto, old, new):
    """Update the TCP/UDP checksum at ``l4`` for a 32-bit pseudo-header field (an address) change.

    Nothing happens for other protocols or ``l4 < 0`` (no L4 header: a non-first fragment). A
    UDP checksum of 0 means "none" and stays 0; a UDP result of 0 is stored as 0xFFFF.
    """
    if l4 < 0 or (proto != PROTO_TCP and proto != PROTO_UDP):
        return
    ck = l4 + l4_csum_field(proto)
    c = ld_be16(row, ck)
    if proto == PROTO_UDP and c == 0:
        return
    c = csum_upd32(c, old, new)
    if proto == PROTO_UDP and c == 0:
        c = 0xFFFF
    st_be16(row, ck, c)


# ================================================================================================
# whole-batch forms
# ================================================================================================
@njit(cache=True)
def ipv4_header_checksum(data, slots, l3_off):
    """Correct header checksum for each IPv4 header at ``l3_off`` (absolute) in ``slots``."""
    n = slots.shape[0]
    out = np.empty(n, np.uint16)
    for k in range(n):
        out[k] = ipv4_hdr_csum_of(slot_row(data, slots[k]), np.int64(l3_off[k]))
    return out


@njit(cache=True)
def l4_checksum(data, slots, l3_off, l4_off, l4_end, is_ipv6, proto):
    """Correct TCP/UDP/ICMP/ICMPv6 checksum of each packet (see :func:`l4_csum`).

    ``l4_end`` is the absolute end of the L4 segment (from the IP length fields).
    """
    n = slots.shape[0]
    out = np.empty(n, np.uint16)
    for k in range(n):
        row = slot_row(data, slots[k])
        out[k] = l4_csum(
            row, np.int64(l3_off[k]), np.int64(l4_off[k]), np.int64(l4_end[k]), np.int64(proto[k]), is_ipv6[k]
        )
    return out


@njit(cache=True)
def _update16_kernel(c, old, new, out):
    for k in range(c.shape[0]):
        out[k] = csum_upd16(c[k], old[k], new[k])


def csum_update16(csum, old, new):
    """RFC 1624 incremental update for a 16-bit field changed from ``old`` to ``new`` (arrays or
    scalars that broadcast; a uint16 result of the broadcast shape, a scalar for scalars)."""
    c, o, n = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (csum, old, new)))
    out = np.empty(c.shape, np.uint16)
    _update16_kernel(c.ravel(), o.ravel(), n.ravel(), out.reshape(-1))
    return out[()] if out.ndim == 0 else out


def csum_update32(csum, old, new):
    """RFC 1624 incremental update for a 32-bit field (e.g. an IPv4 address)."""
    old = np.asarray(old, dtype=np.int64)
    new = np.asarray(new, dtype=np.int64)
    c = csum_update16(csum, old >> 16, new >> 16)
    return csum_update16(c, old & 0xFFFF, new & 0xFFFF)


def sum16_bytes(b: bytes) -> int:
    """:func:`sum16` of a ``bytes`` object (Python side: template headers built once)."""
    if len(b) & 1:
        b = b + b"\0"
    return int(np.frombuffer(b, dtype=">u2").astype(np.int64).sum())
