"""IP header network functions: CheckIPHeader, DecTTL, UpdateTTL, MACRewrite, IPChecksum, SetIPv4.

Each class docstring is its manual. Per-packet work is one numba kernel (or a few numpy
operations) over the batch; the protocol view comes from :mod:`tailgate.packet.proto`
(``batch.headers``, parsed once per batch and shared by the modules that follow).

Checksums are kept right *incrementally* (RFC 1624, ``HC' = ~(~HC + ~m + m')``, from
:mod:`tailgate.packet.checksum`) wherever a module changes a covered field, so a packet that came
in with a right checksum leaves with one. Addresses given as arguments are read by
:mod:`tailgate.packet.addr`.

The byte-access helpers and the address-rewrite kernel at the top are shared with
:mod:`tailgate.nf.nat` and :mod:`tailgate.nf.tunnel`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tailgate.core.args import Arg, any_value
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.packet.addr import ipv4_arg, mac_arg
from tailgate.packet.checksum import (
    csum_upd16,
    csum_upd32,
    ipv4_hdr_csum_of,
    l4_csum_update32,
)
from tailgate.packet.proto import (
    B_MAL,
    C_FLAGS,
    C_L3,
    C_SLOT,
    ETH_P_IPV4,
    F_IPV4,
    F_IPV6,
    M_BAD_IHL,
    M_BAD_TOTAL_LEN,
    M_BAD_VERSION,
    M_TRUNCATED_L2,
    M_TRUNCATED_L3,
    hdr_cols,
)
from tailgate.packet.wide import ld_be16, ld_be32, slot_row, st_be16, st_be32

__all__ = [
    "CheckIPHeader",
    "DecTTL",
    "UpdateTTL",
    "MACRewrite",
    "IPChecksum",
    "SetIPv4",
]


def _user_cost(module: Module) -> bool:
    """True if the user gave ``cost_ns=`` to this instance (then setup must not replace it)."""
    return "cost_ns" in module.__dict__


_NO_CODES = np.zeros(0, dtype=np.int64)


def _codes_buf(module: Module, n: int) -> np.ndarray:
    """The module's scratch array of at least ``n`` int64 fate codes (a kernel fills the first
    ``n``). One per module, reused: ``emit_codes`` has read the codes by the time ``process``
    returns, and a new ``np.empty`` per batch costs more than the check."""
    buf = module.__dict__.get("_codes", _NO_CODES)
    if buf.shape[0] < n:
        buf = module._codes = np.empty(max(n, 64), dtype=np.int64)
    return buf


# ================================================================================================
# kernel helpers (numba, inlined)
# ================================================================================================
# Offsets given to these helpers are byte positions >= 0 inside a slot row (the parser's offsets,
# or a frame offset plus a header length). They index with unsigned integers: numba then skips
# its negative-index wraparound test on every byte access, which halves the cost of a
# byte-by-byte header loop.
@njit(cache=True, inline="always")
def rd8(row, o):
    return np.int64(row[np.uint64(o)])


@njit(cache=True, inline="always")
def wr8(row, o, v):
    row[np.uint64(o)] = np.uint8(v & 0xFF)


# 16- and 32-bit fields: one unaligned load or store each (see tailgate.packet.wide)
rd16 = ld_be16
wr16 = st_be16
rd32 = ld_be32
wr32 = st_be32


@njit(cache=True)
def rewrite_ipv4_addr_kernel(data, slots, l3_off, l4_off, ip_proto, rel, new_addr, do):
    """Write ``new_addr[k]`` into the IPv4 address at ``l3_off[k] + rel`` (12: src, 16: dst) where
    ``do[k]``; update the IPv4 header checksum and the TCP/UDP checksum (pseudo-header)."""
    for k in range(slots.shape[0]):
        if not do[k]:
            continue
        row = slot_row(data, slots[k])
        o = np.int64(l3_off[k])
        old = rd32(row, o + rel)
        new = np.int64(new_addr[k]) & 0xFFFFFFFF
        if old == new:
            continue
        wr32(row, o + rel, new)
        wr16(row, o + 10, csum_upd32(rd16(row, o + 10), old, new))
        l4_csum_update32(row, np.int64(l4_off[k]), ip_proto[k], old, new)


# ================================================================================================
# CheckIPHeader
# ================================================================================================
@njit(cache=True)
def _check_ip_kernel(data, hbuf, verify, codes):
    """CheckIPHeader's verdict per packet (0 or -(drop reason index + 1)); returns how many drop.

    ``hbuf`` is the batch's parsed headers (``hv.buf``). The first reason that applies wins, in
    the order of the class docstring's table."""
    n, i32, ethertype, u8 = hdr_cols(hbuf)
    slots = i32[C_SLOT * n : (C_SLOT + 1) * n]
    l3_off = i32[C_L3 * n : (C_L3 + 1) * n]
    flags = i32[C_FLAGS * n : (C_FLAGS + 1) * n]
    mal = u8[B_MAL * n : (B_MAL + 1) * n]
    n_bad = 0
    for k in range(n):
        m = mal[k]
        c = 0
        if m == M_TRUNCATED_L2:
            c = -2
        elif ethertype[k] != ETH_P_IPV4:
            c = -1
        elif m == M_TRUNCATED_L3:
            c = -2
        elif m == M_BAD_VERSION:
            c = -3
        elif m == M_BAD_IHL:
            c = -4
        elif m == M_BAD_TOTAL_LEN:
            c = -5
        elif verify and (flags[k] & F_IPV4):
            # malformed further in (L4) but with a sound IPv4 header: only the checksum counts
            row = slot_row(data, np.uint64(slots[k]))
            o = np.int64(l3_off[k])
            if ipv4_hdr_csum_of(row, o) != rd16(row, o + 10):
                c = -6
        codes[k] = c
        if c != 0:
            n_bad += 1
    return n_bad


class CheckIPHeader(Module):
    """CheckIPHeader — drops packets that do not carry a sound IPv4 header.

    Gates: 1 in / 1 out. Valid IPv4 packets leave on gate 0 unchanged; every other packet is
    dropped and counted under the first reason that applies, checked in this order:

    ================  =====================================================================
    drop reason       the packet ...
    ================  =====================================================================
    ``truncated``     is shorter than an Ethernet header, has a VLAN tag cut short, or its
                      IPv4 header (20 bytes, then IHL·4 bytes) does not fit in the frame
    ``not_ipv4``      has an ethertype (after up to two VLAN tags) other than 0x0800
    ``bad_version``   has a version nibble other than 4
    ``bad_ihl``       has IHL < 5
    ``bad_length``    has a total length below IHL·4 or beyond the end of the frame
    ``bad_checksum``  has a wrong header checksum (only with ``verify_checksum=True``)
    ================  =====================================================================

    (A frame shorter than 14 bytes is ``truncated`` rather than ``not_ipv4``.) Lengths are
    checked against the bytes held in the slot (``pool.length``), so a snapped capture whose IP
    total length runs past the captured bytes counts as ``bad_length``. The check never reads
    past a frame: it uses the bounds-checked parse of :mod:`tailgate.packet.proto`. Problems
    past the IP header (a truncated TCP header, say) are not this module's business: such
    packets pass.

    Example: in a router, ``src >> CheckIPHeader() >> DecTTL() >> MACRewrite(dst=...) >> sink``.
    A sound frame passes; a spoilt checksum and an IPv6 frame are dropped.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import CheckIPHeader
    >>> from tailgate.packet.craft import frame
    >>> check = CheckIPHeader()
    >>> spoilt = bytearray(frame())
    >>> spoilt[14 + 10] ^= 0xFF                     # a byte of the header checksum
    >>> out, _ = drive(check, [frame(), bytes(spoilt), frame(src_ip="fd00::1", dst_ip="fd00::2")])
    >>> len(out[0]), check.counter("drops.bad_checksum"), check.counter("drops.not_ipv4")
    (1, 1, 1)

    See also: DecTTL, IPChecksum (to repair checksums instead of dropping).
    """

    drop_reasons = ("not_ipv4", "truncated", "bad_version", "bad_ihl", "bad_length", "bad_checksum")
    cost_ns = (40.0, 6.0)
    args = (Arg("verify_checksum", bool, True, unit="-", help="also verify the IPv4 header checksum"),)

    def process(self, batch) -> None:
        hv = batch.headers
        n = len(batch.idx)
        codes = _codes_buf(self, n)
        n_bad = _check_ip_kernel(batch.pool.data, hv.buf, self.verify_checksum, codes)
        if n_bad:
            self.emit_codes(batch, codes[:n])
        else:
            self.emit(batch, 0)  # the usual case: everything passes, the batch (and its headers) go on


# ================================================================================================
# DecTTL / UpdateTTL
# ================================================================================================
@njit(cache=True)
def _dec_ttl_kernel(data, hbuf, codes):
    """Returns how many packets drop (codes != 0). ``hbuf``: the batch's parsed headers."""
    n, i32, _, _ = hdr_cols(hbuf)
    slots = i32[C_SLOT * n : (C_SLOT + 1) * n]
    l3_off = i32[C_L3 * n : (C_L3 + 1) * n]
    flags = i32[C_FLAGS * n : (C_FLAGS + 1) * n]
    n_bad = 0
    for k in range(n):
        f = flags[k]
        o = np.int64(l3_off[k])
        if f & F_IPV4:
            row = slot_row(data, np.uint64(slots[k]))
            old = rd16(row, o + 8)  # TTL and protocol: the 16-bit word the checksum covers
            if old < 0x200:  # TTL 0 or 1
                codes[k] = -2
                n_bad += 1
                continue
            new = old - 256
            wr8(row, o + 8, new >> 8)
            wr16(row, o + 10, csum_upd16(rd16(row, o + 10), old, new))
            codes[k] = 0
        elif f & F_IPV6:
            row = slot_row(data, np.uint64(slots[k]))
            hl = rd8(row, o + 7)
            if hl <= 1:
                codes[k] = -2
                n_bad += 1
                continue
            wr8(row, o + 7, hl - 1)
            codes[k] = 0
        else:
            codes[k] = -1
            n_bad += 1
    return n_bad


@njit(cache=True)
def _set_ttl_kernel(data, slots, l3_off, flags, ttl):
    """Set IPv4 TTL / IPv6 hop limit; returns how many packets were not IP."""
    n_other = 0
    t = np.int64(ttl)
    for k in range(slots.shape[0]):
        f = flags[k]
        o = np.int64(l3_off[k])
        if f & F_IPV4:
            row = slot_row(data, slots[k])
            proto = rd8(row, o + 9)
            old = (rd8(row, o + 8) << 8) | proto
            new = (t << 8) | proto
            if old != new:
                wr8(row, o + 8, t)
                wr16(row, o + 10, csum_upd16(rd16(row, o + 10), old, new))
        elif f & F_IPV6:
            data[slots[k], o + 7] = np.uint8(t)
        else:
            n_other += 1
    return n_other


class DecTTL(Module):
    """DecTTL — decrements the IPv4 TTL (and the IPv6 hop limit), as a router does.

    Gates: 1 in / 1 out. The IPv4 header checksum is updated incrementally (RFC 1624), so a
    right checksum stays right (and a wrong one stays wrong: put CheckIPHeader in front to drop
    those).

    Drop reasons:
        ``not_ip``: the packet has no complete IPv4 or IPv6 header.
        ``ttl_expired``: TTL (hop limit) is 0 or 1 on arrival, so it would reach 0 here. No
        ICMP time-exceeded is sent.

    Example: the survivor leaves as if built with TTL 63 (checksum included).

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import DecTTL
    >>> from tailgate.packet.craft import frame
    >>> dec = DecTTL()
    >>> out, _ = drive(dec, [frame(ttl=64), frame(ttl=1)])
    >>> out[0] == [frame(ttl=63)], dec.counter("drops.ttl_expired")
    (True, 1)

    See also: UpdateTTL, CheckIPHeader.
    """

    drop_reasons = ("not_ip", "ttl_expired")
    cost_ns = (30.0, 4.0)

    def process(self, batch) -> None:
        hv = batch.headers
        n = len(batch.idx)
        codes = _codes_buf(self, n)
        if _dec_ttl_kernel(batch.pool.data, hv.buf, codes):
            self.emit_codes(batch, codes[:n])
        else:
            self.emit(batch, 0)


class UpdateTTL(Module):
    """UpdateTTL — sets the IPv4 TTL (and the IPv6 hop limit) to a fixed value.

    Gates: 1 in / 1 out. The IPv4 header checksum is updated incrementally (RFC 1624). Packets
    without a complete IPv4/IPv6 header pass unchanged and are counted in the extra counter
    ``not_ip``. Drops nothing.

    Example:

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import UpdateTTL
    >>> from tailgate.packet.craft import frame
    >>> out, _ = drive(UpdateTTL(ttl=32), [frame(ttl=64), frame(ttl=1)])
    >>> out[0] == [frame(ttl=32), frame(ttl=32)]
    True

    See also: DecTTL.
    """

    cost_ns = (30.0, 4.0)
    args = (Arg("ttl", int, 64, unit="hops", help="the new TTL / hop limit", min=0, max=255),)

    def reset_counters(self) -> None:
        super().reset_counters()
        self.n_not_ip = 0

    def process(self, batch) -> None:
        hv = batch.headers
        self.n_not_ip += int(_set_ttl_kernel(batch.pool.data, hv.slots, hv.l3_off, hv.flags, self.ttl))
        self.emit(batch, 0)

    def extra_counters(self):
        return {"not_ip": int(self.n_not_ip)}


# ================================================================================================
# MACRewrite
# ================================================================================================
@njit(cache=True)
def _mac_rewrite_kernel(data, slots, offset, length, macs, codes):
    """Returns how many frames drop (no complete Ethernet header). ``macs``: int64
    ``[set_src, src, set_dst, dst]`` (one array argument costs less to pass than four scalars).

    Reads the frame bounds from the pool columns rather than the parsed headers (the same test
    as the parser's ``l2_off``), so a batch that was never parsed is not parsed for this."""
    set_src, src, set_dst, dst = macs[0], macs[1], macs[2], macs[3]
    rowlen = data.shape[1]
    n_bad = 0
    for k in range(slots.shape[0]):
        s = np.uint64(slots[k])
        o = np.int64(offset[s])
        end = min(o + np.int64(length[s]), rowlen)
        if o < 0 or o + 14 > end:
            codes[k] = -1
            n_bad += 1
            continue
        codes[k] = 0
        row = slot_row(data, s)
        # a 48-bit address as a 32-bit and a 16-bit store (not six byte stores)
        if set_dst:
            wr32(row, o, dst >> 16)
            wr16(row, o + 4, dst)
        if set_src:
            wr32(row, o + 6, src >> 16)
            wr16(row, o + 10, src)
    return n_bad


class MACRewrite(Module):
    """MACRewrite — rewrites the Ethernet source and/or destination address.

    Gates: 1 in / 1 out. Drop reason ``truncated``: the frame is shorter than an Ethernet
    header (14 bytes). Addresses are checked at construction (six hex octets separated by
    ``:`` or ``-``; an int of 48 bits is also taken). An address left out (None) is not touched.
    No checksum covers the Ethernet header, so none changes.

    Example:

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import MACRewrite
    >>> from tailgate.packet.craft import frame
    >>> out, _ = drive(MACRewrite(dst="02:00:00:00:00:fe"), [frame()])
    >>> out[0] == [frame(dst_mac="02:00:00:00:00:fe")]
    True

    See also: DecTTL (a router's other per-hop rewrite), VXLANEncap.
    """

    drop_reasons = ("truncated",)
    cost_ns = (25.0, 3.0)
    args = (
        Arg("src", any_value, None, unit="-", help="new source MAC, e.g. 02:00:00:00:00:01; None keeps it"),
        Arg("dst", any_value, None, unit="-", help="new destination MAC; None keeps it"),
    )

    def setup(self) -> None:
        self._src = None if self.src is None else mac_arg(self.label, "src", self.src)
        self._dst = None if self.dst is None else mac_arg(self.label, "dst", self.dst)
        # kernel argument, made once (not per batch)
        self._macs = np.array(
            [self._src is not None, self._src or 0, self._dst is not None, self._dst or 0], dtype=np.int64
        )

    def on_set(self, name: str) -> None:
        self.setup()

    def process(self, batch) -> None:
        pool = batch.pool
        n = len(batch.idx)
        codes = _codes_buf(self, n)
        if _mac_rewrite_kernel(pool.data, batch.idx, pool.offset, pool.length, self._macs, codes):
            self.emit_codes(batch, codes[:n])
        else:
            self.emit(batch, 0)


# ================================================================================================
# IPChecksum
# ================================================================================================
class IPChecksum(Module):
    """IPChecksum — recomputes the IPv4 header checksum (and, with ``l4=True``, TCP/UDP/ICMP).

    Gates: 1 in / 1 out. Drops nothing. Non-IPv4 packets pass unchanged (with ``l4=True``, IPv6
    TCP/UDP/ICMPv6 checksums are recomputed too). L4 checksums are recomputed only where the
    whole L4 segment is in the frame and the packet is not a fragment; an IPv4 UDP checksum of
    0 ("none") is replaced by the real checksum. Use it after a module that edits headers
    without keeping checksums (e.g. proto field setters), or to repair crafted traffic.

    With ``l4=True`` it costs more: it reads the payload.

    Example: repair a header checksum that was zeroed, and (``l4=True``) a UDP checksum too.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import IPChecksum
    >>> from tailgate.packet.craft import frame
    >>> spoilt = bytearray(frame())
    >>> spoilt[14 + 10 : 14 + 12] = b"\\0\\0"       # IPv4 header checksum
    >>> spoilt[14 + 20 + 6 : 14 + 20 + 8] = b"\\0\\0"  # UDP checksum
    >>> out, _ = drive(IPChecksum(), [bytes(spoilt)])
    >>> out[0][0][:34] == frame()[:34], out[0][0] == frame()
    (True, False)
    >>> out, _ = drive(IPChecksum(l4=True), [bytes(spoilt)])
    >>> out[0] == [frame()]
    True

    See also: CheckIPHeader (verifies), DecTTL/StaticNAT/NAPT (update incrementally).
    """

    cost_ns = (30.0, 8.0)
    args = (Arg("l4", bool, False, unit="-", help="also recompute TCP/UDP/ICMP checksums"),)

    def setup(self) -> None:
        if self.l4 and not _user_cost(self):
            self.cost_ns = (30.0, 30.0)

    def process(self, batch) -> None:
        hv = batch.headers
        hv.fix_ipv4_checksum()
        if self.l4:
            hv.fix_l4_checksum()
        self.emit(batch, 0)


# ================================================================================================
# SetIPv4
# ================================================================================================
@njit(cache=True)
def _set_tos_kernel(data, slots, l3_off, do, tos):
    t = np.int64(tos)
    for k in range(slots.shape[0]):
        if not do[k]:
            continue
        row = slot_row(data, slots[k])
        o = np.int64(l3_off[k])
        b0 = rd8(row, o)
        old = (b0 << 8) | rd8(row, o + 1)
        new = (b0 << 8) | t
        if old != new:
            wr8(row, o + 1, t)
            wr16(row, o + 10, csum_upd16(rd16(row, o + 10), old, new))


class SetIPv4(Module):
    """SetIPv4 — sets one IPv4 header field of every packet to a fixed value.

    Gates: 1 in / 1 out. Drops nothing. Non-IPv4 packets pass unchanged and are counted in the
    extra counter ``not_ipv4``. The IPv4 header checksum is updated incrementally; for
    ``src``/``dst`` the TCP/UDP checksum is updated too (the addresses are in its
    pseudo-header; an IPv4 UDP checksum of 0 stays 0). Non-first fragments have no L4 header,
    so only their IP checksum changes.

    Example: both checksums stay right.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import SetIPv4
    >>> from tailgate.packet.craft import frame
    >>> out, _ = drive(SetIPv4(field="dst", value="192.0.2.7"), [frame()])
    >>> out[0] == [frame(dst_ip="192.0.2.7")]
    True

    See also: StaticNAT (per-address rules), NAPT.
    """

    cost_ns = (30.0, 6.0)
    args = (
        Arg("field", str, "dst", unit="-", help="the field: src, dst or tos (the whole DSCP/ECN byte)",
            choices=("src", "dst", "tos")),
        Arg("value", any_value, unit="-", help="an IPv4 address (10.0.0.1) for src/dst; an int 0..255 for tos"),
    )

    def reset_counters(self) -> None:
        super().reset_counters()
        self.n_not_ipv4 = 0

    def setup(self) -> None:
        if self.field == "tos":
            v = self.value
            if isinstance(v, str):
                try:
                    v = int(v, 0)
                except ValueError:
                    v = None
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 0 <= int(v) <= 255:
                raise ArgError(f"{self.label}: argument 'value' must be an int 0..255 for field 'tos', got {self.value!r}")
            self._value = int(v)
        else:
            self._value = ipv4_arg(self.label, "value", self.value)

    def on_set(self, name: str) -> None:
        self.setup()

    def process(self, batch) -> None:
        hv = batch.headers
        is4 = hv.is_ipv4
        self.n_not_ipv4 += int(len(batch) - np.count_nonzero(is4))
        data = batch.pool.data
        if self.field == "tos":
            _set_tos_kernel(data, hv.slots, hv.l3_off, is4, self._value)
        else:
            rel = 12 if self.field == "src" else 16
            new = np.full(len(batch), self._value, dtype=np.int64)
            rewrite_ipv4_addr_kernel(data, hv.slots, hv.l3_off, hv.l4_off, hv.ip_proto, rel, new, is4)
        self.emit(batch, 0)

    def extra_counters(self):
        return {"not_ipv4": int(self.n_not_ipv4)}
