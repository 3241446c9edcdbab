"""Tunnels and tags: VLANPush, VLANPop, VLANSplit, VXLANEncap, VXLANDecap, GTPUEncap, GTPUDecap.

Each class docstring is its manual, and its example runs as a test.

How bytes move. A frame sits ``pool.offset[slot]`` bytes into its slot with headroom in front
(128 bytes by default). Encapsulation writes the new outer headers *into the headroom*
(``offset -= n``, ``length += n``) and moves at most the Ethernet header; the payload never
moves. Decapsulation is the reverse (``offset += n``). A packet whose headroom is too small is
dropped under ``no_headroom``. All byte moves are numba kernels (one header-template copy per
packet), and every module that changes the layout calls ``batch.invalidate_headers()`` so that
the next module re-parses.

Lengths and checksums: outer IPv4 total length, header checksum, UDP length and the GTP-U length
are written per packet; the outer UDP checksum is 0 (allowed for VXLAN by RFC 7348 and for GTP-U
over IPv4). ``wire_len`` changes by as much as ``length``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tailgate.core.args import Arg, any_value
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.nf.ip import rd16, wr16
from tailgate.packet.addr import ipv4_arg, mac_arg
from tailgate.packet.checksum import ipv4_hdr_csum
from tailgate.packet.pool import N_ANNOTATIONS
from tailgate.packet.proto import ETH_P_8021AD, ETH_P_8021Q, GTPU_PORT, VXLAN_PORT
from tailgate.packet.wide import slot_row

__all__ = ["VLANPush", "VLANPop", "VLANSplit", "VXLANEncap", "VXLANDecap", "GTPUEncap", "GTPUDecap"]

_VXLAN_HDR = 14 + 20 + 8 + 8  # outer Ethernet, IPv4, UDP, VXLAN
_GTPU_HDR = 20 + 8 + 8  # outer IPv4, UDP, GTP-U (the Ethernet header is reused)


# ================================================================================================
# kernels
# ================================================================================================
@njit(cache=True)
def _vlan_push_kernel(data, slots, offset, length, wire_len, tag, codes):
    """Insert the 4-byte ``tag`` (TPID << 16 | TCI) after the MAC addresses."""
    for k in range(slots.shape[0]):
        s = slots[k]
        o = np.int64(offset[s])
        if length[s] < 14:
            codes[k] = -2
            continue
        if o < 4:
            codes[k] = -1
            continue
        row = slot_row(data, s)
        no = o - 4
        for i in range(12):  # destination below source: ascending copy is safe
            row[no + i] = row[o + i]
        row[no + 12] = np.uint8((tag >> 24) & 0xFF)
        row[no + 13] = np.uint8((tag >> 16) & 0xFF)
        row[no + 14] = np.uint8((tag >> 8) & 0xFF)
        row[no + 15] = np.uint8(tag & 0xFF)
        offset[s] = no
        length[s] += 4
        wire_len[s] += 4
        codes[k] = 0


@njit(cache=True)
def _vlan_pop_kernel(data, slots, offset, length, wire_len, do):
    """Remove the outermost VLAN tag where ``do[k]`` and the frame has one; returns how many."""
    n = 0
    for k in range(slots.shape[0]):
        if not do[k]:
            continue
        s = slots[k]
        o = np.int64(offset[s])
        if length[s] < 18:
            continue
        row = slot_row(data, s)
        tpid = rd16(row, o + 12)
        if tpid != ETH_P_8021Q and tpid != ETH_P_8021AD:
            continue
        for i in range(11, -1, -1):  # destination above source: descending copy
            row[o + 4 + i] = row[o + i]
        offset[s] = o + 4
        length[s] -= 4
        wire_len[s] -= 4
        n += 1
    return n


@njit(cache=True)
def _vxlan_encap_kernel(data, slots, offset, length, wire_len, tmpl, sport, codes):
    """Copy the 50-byte outer-header template in front of each frame and fill the lengths."""
    nh = tmpl.shape[0]
    for k in range(slots.shape[0]):
        s = slots[k]
        o = np.int64(offset[s])
        if o < nh:
            codes[k] = -1
            continue
        row = slot_row(data, s)
        no = o - nh
        for i in range(nh):
            row[no + i] = tmpl[i]
        inner = np.int64(length[s])
        ip = no + 14
        wr16(row, ip + 2, 20 + 8 + 8 + inner)
        wr16(row, ip + 10, ipv4_hdr_csum(row, ip, 20))
        wr16(row, ip + 20, np.int64(sport[k]))
        wr16(row, ip + 24, 8 + 8 + inner)
        offset[s] = no
        length[s] = inner + nh
        wire_len[s] += nh
        codes[k] = 0


@njit(cache=True)
def _gtpu_encap_kernel(data, slots, offset, length, wire_len, l3_off, ip_end, tmpl,
                       set_src, src_mac, set_dst, dst_mac, codes):
    """Move the Ethernet header (with its VLAN tags) 36 bytes to the front and write
    IPv4/UDP/GTP-U between it and the inner IP packet (which stays in place)."""
    nh = tmpl.shape[0]
    for k in range(slots.shape[0]):
        if codes[k] != 0:
            continue
        s = slots[k]
        o = np.int64(offset[s])
        if o < nh:
            codes[k] = -3
            continue
        row = slot_row(data, s)
        l3 = np.int64(l3_off[k])
        h2 = l3 - o
        no = o - nh
        for i in range(h2):  # destination below source: ascending copy
            row[no + i] = row[o + i]
        t = no + h2
        for i in range(nh):
            row[t + i] = tmpl[i]
        row[t - 2] = np.uint8(0x08)
        row[t - 1] = np.uint8(0x00)
        ilen = np.int64(ip_end[k]) - l3
        wr16(row, t + 2, nh + ilen)
        wr16(row, t + 10, ipv4_hdr_csum(row, t, 20))
        wr16(row, t + 24, 16 + ilen)
        wr16(row, t + 30, ilen)
        if set_dst:
            for i in range(6):
                row[no + i] = np.uint8((dst_mac >> (8 * (5 - i))) & 0xFF)
        if set_src:
            for i in range(6):
                row[no + 6 + i] = np.uint8((src_mac >> (8 * (5 - i))) & 0xFF)
        new_len = h2 + nh + ilen
        wire_len[s] += new_len - length[s]
        offset[s] = no
        length[s] = new_len


@njit(cache=True)
def _gtpu_decap_kernel(data, slots, offset, length, wire_len, l3_off, il3_off, l4_end, codes):
    """Move the outer Ethernet header (with its VLAN tags) up to the inner IP packet."""
    for k in range(slots.shape[0]):
        if codes[k] != 0:
            continue
        s = slots[k]
        o = np.int64(offset[s])
        row = slot_row(data, s)
        h2 = np.int64(l3_off[k]) - o
        il3 = np.int64(il3_off[k])
        avail = np.int64(l4_end[k]) - il3
        if (row[il3] >> 4) == 4:
            ilen = rd16(row, il3 + 2)
            et = 0x0800
        else:
            ilen = 40 + rd16(row, il3 + 4)
            et = 0x86DD
        if ilen > avail:
            ilen = avail
        no = il3 - h2
        for i in range(h2 - 1, -1, -1):  # destination above source: descending copy
            row[no + i] = row[o + i]
        wr16(row, il3 - 2, et)
        new_len = h2 + ilen
        wire_len[s] += new_len - length[s]
        offset[s] = no
        length[s] = new_len


def _pool_cols(batch):
    p = batch.pool
    return p.data, np.ascontiguousarray(batch.idx), p.offset, p.length, p.wire_len


def _ipv4_template(tos: int, ttl: int, src: int, dst: int, df: bool) -> bytes:
    return bytes([0x45, tos, 0, 0, 0, 0, 0x40 if df else 0, 0, ttl, 17, 0, 0]) + src.to_bytes(4, "big") + dst.to_bytes(4, "big")


def _int_list(owner: str, arg: str, value) -> list[int]:
    if isinstance(value, str):
        value = [p for p in value.replace(":", ",").split(",") if p.strip()]
    if isinstance(value, (int, np.integer)):
        value = [value]
    try:
        out = []
        for v in value:
            if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                raise ValueError(v)
            out.append(int(v, 0) if isinstance(v, str) else int(v))
    except (TypeError, ValueError):
        raise ArgError(f"{owner}: argument {arg!r} must be a list of integers, got {value!r}") from None
    return out


# ================================================================================================
# VLAN
# ================================================================================================
class VLANPush(Module):
    """VLANPush — adds an 802.1Q (or 802.1ad) tag in front of the ethertype.

    Gates: 1 in / 1 out. The 4-byte tag goes right after the MAC addresses, so on a frame that is
    already tagged it becomes the new *outer* tag (QinQ: push a C-tag first, then an S-tag with
    ``tpid=0x88a8``). The frame grows by 4 bytes into the headroom; only the 12 MAC bytes move.

    Drop reasons:
        ``no_headroom``: fewer than 4 bytes in front of the frame.
        ``truncated``: frame shorter than an Ethernet header (14 bytes).

    Example: the tag (TPID 0x8100, then PCP 5 and VID 100) sits after the MAC addresses.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import VLANPush
    >>> from tailgate.packet.craft import frame
    >>> out, _ = drive(VLANPush(vid=100, pcp=5), [frame()])
    >>> tagged = out[0][0]
    >>> tagged[12:16].hex(), tagged[:12] + tagged[16:] == frame()
    ('8100a064', True)

    See also: VLANPop, VLANSplit.
    """

    drop_reasons = ("no_headroom", "truncated")
    cost_ns = (30.0, 5.0)
    args = (
        Arg("vid", int, unit="-", help="VLAN id", min=0, max=4095),
        Arg("pcp", int, 0, unit="-", help="priority code point", min=0, max=7),
        Arg("dei", int, 0, unit="-", help="drop-eligible indicator", min=0, max=1),
        Arg("tpid", int, ETH_P_8021Q, unit="-", help="tag protocol id: 0x8100 (802.1Q) or 0x88a8 (802.1ad S-tag)",
            choices=(ETH_P_8021Q, ETH_P_8021AD)),
    )

    def _tag(self) -> int:
        return (self.tpid << 16) | (self.pcp << 13) | (self.dei << 12) | self.vid

    def process(self, batch) -> None:
        codes = np.empty(len(batch), dtype=np.int64)
        _vlan_push_kernel(*_pool_cols(batch), np.int64(self._tag()), codes)
        batch.invalidate_headers()
        self.emit_codes(batch, codes)


class VLANPop(Module):
    """VLANPop — removes the outermost VLAN tag (TPID 0x8100 or 0x88a8).

    Gates: 1 in / 1 out. Drops nothing: a frame without a tag passes unchanged (counted in the
    extra counter ``untagged``). The frame shrinks by 4 bytes; only the 12 MAC bytes move.
    Pop twice to strip a QinQ double tag.

    Example:

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import VLANPop
    >>> from tailgate.packet.craft import frame
    >>> pop = VLANPop()
    >>> tagged, qinq = frame(vlan=100), frame(vlan=(200, 100))
    >>> out, _ = drive(pop, [tagged, qinq, frame()])
    >>> out[0][0] == tagged[:12] + tagged[16:], out[0][1] == qinq[:12] + qinq[16:]
    (True, True)
    >>> out[0][2] == frame(), pop.counter("untagged")
    (True, 1)

    See also: VLANPush, VLANSplit (``pop=True`` splits and pops in one step).
    """

    cost_ns = (30.0, 5.0)

    def reset_counters(self) -> None:
        super().reset_counters()
        self.n_untagged = 0

    def extra_counters(self):
        return {"untagged": int(self.n_untagged)}

    def process(self, batch) -> None:
        n = _vlan_pop_kernel(*_pool_cols(batch), np.ones(len(batch), dtype=np.bool_))
        self.n_untagged += len(batch) - int(n)
        batch.invalidate_headers()
        self.emit(batch, 0)


class VLANSplit(Module):
    """VLANSplit — sends each frame to an output gate chosen by its (outer) VLAN id.

    Gates: 1 in / ``len(vids)`` (+1) out. A frame whose outer tag has VID ``vids[k]`` goes to gate
    ``k``. Untagged frames and frames with any other VID go to the *last* gate, ``len(vids)``,
    when ``unmatched="gate"`` (the default); with ``unmatched="drop"`` there is no such gate and
    they are dropped under ``unmatched``. With ``pop=True`` the matched frames leave without
    their outer tag (unmatched ones are never changed). ``vids`` holds each VLAN id (0..4095)
    once, as a list (``[10, 20, 30]``) or a string (``"10,20,30"``); it and ``unmatched`` cannot
    change while running (they set the gates), ``pop`` can.

    Drop reason ``unmatched``: only with ``unmatched="drop"``.

    Example: in a pipeline, ``trunk >> split; split[0] >> tenant_a; split[1] >> tenant_b;
    split[2] >> Drop()``.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import VLANSplit
    >>> from tailgate.packet.craft import frame
    >>> split = VLANSplit(vids=[10, 20], pop=True)
    >>> frames = [frame(vlan=20), frame(vlan=10), frame(vlan=30), frame()]
    >>> out, _ = drive(split, frames)
    >>> {gate: len(leaving) for gate, leaving in sorted(out.items())}
    {0: 1, 1: 1, 2: 2}
    >>> out[1] == [frames[0][:12] + frames[0][16:]], out[2] == frames[2:]   # matched ones popped
    (True, True)

    See also: VLANPush, VLANPop.
    """

    drop_reasons = ("unmatched",)
    cost_ns = (30.0, 4.0)
    args = (
        Arg("vids", any_value, unit="-", help="VLAN ids, one per output gate"),
        Arg("unmatched", str, "gate", unit="-", help="other frames: to an extra last gate, or drop them",
            choices=("gate", "drop")),
        Arg("pop", bool, False, unit="-", help="strip the outer tag of matched frames"),
    )

    def setup(self) -> None:
        vids = _int_list(self.label, "vids", self.vids)
        if not vids:
            raise ArgError(f"{self.label}: argument 'vids' needs at least one VLAN id")
        if any(not 0 <= v <= 4095 for v in vids):
            raise ArgError(f"{self.label}: argument 'vids' must hold VLAN ids 0..4095, got {vids!r}")
        if len(set(vids)) != len(vids):
            raise ArgError(f"{self.label}: argument 'vids' holds a VLAN id twice: {vids!r}")
        self._vids = vids
        self._fixed = {"vids": self.vids, "unmatched": self.unmatched}
        n = len(vids)
        self.n_ogates = n + 1 if self.unmatched == "gate" else n
        miss = n if self.unmatched == "gate" else -1
        self._lut = np.full(4097, miss, dtype=np.int64)  # entry 4096: untagged
        self._lut[np.asarray(vids)] = np.arange(n)

    def on_set(self, name: str) -> None:
        if name != "pop":
            setattr(self, name, self._fixed[name])  # put the old value back
            raise ArgError(f"{self.label}: argument {name!r} cannot change while running (it sets the gates)")

    def process(self, batch) -> None:
        hv = batch.headers
        vid = np.where(hv.n_vlan >= 1, hv.vlan.vid, 4096)
        codes = self._lut[vid]
        if self.pop:
            matched = codes >= 0
            matched &= codes < len(self._vids)
            if matched.any():
                _vlan_pop_kernel(*_pool_cols(batch), matched)
                batch.invalidate_headers()
        self.emit_codes(batch, codes)


# ================================================================================================
# VXLAN
# ================================================================================================
class VXLANEncap(Module):
    """VXLANEncap — wraps each Ethernet frame in Ethernet/IPv4/UDP/VXLAN (RFC 7348).

    Gates: 1 in / 1 out. Adds 50 bytes in front of the frame (14 Ethernet + 20 IPv4 + 8 UDP +
    8 VXLAN), written into the headroom; the inner frame does not move. The outer IPv4 header
    has DF set, identification 0, the given TTL/TOS, the right total length and checksum; the
    outer UDP has the right length and checksum 0; the VXLAN header has the I flag and the VNI.

    The outer UDP source port is, by default (``sport=0``), 49152 + (hash of the inner
    src/dst IP, protocol and ports mod 16384), so one inner flow keeps one outer port and
    different flows spread over ECMP paths (RFC 7348 §5); inner non-IP frames all share one
    port (the hash of no fields).

    Drop reason ``no_headroom``: fewer than 50 bytes in front of the frame.

    The outer MAC addresses default to placeholders: set them, or rewrite them later with
    MACRewrite.

    Example: 50 bytes of outer headers, the frame unchanged behind them, the VNI at the end of the
    VXLAN header.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import VXLANEncap
    >>> from tailgate.packet.craft import frame
    >>> encap = VXLANEncap(src_ip="192.0.2.1", dst_ip="192.0.2.2", vni=5001, dst_mac="02:00:00:00:00:fe")
    >>> out, _ = drive(encap, [frame()])
    >>> wrapped = out[0][0]
    >>> len(wrapped), wrapped[50:] == frame(), int.from_bytes(wrapped[46:49], "big")
    (114, True, 5001)

    See also: VXLANDecap, GTPUEncap.
    """

    drop_reasons = ("no_headroom",)
    cost_ns = (50.0, 12.0)
    args = (
        Arg("src_ip", any_value, unit="-", help="outer source IPv4 address (the local VTEP)"),
        Arg("dst_ip", any_value, unit="-", help="outer destination IPv4 address (the remote VTEP)"),
        Arg("vni", int, unit="-", help="VXLAN network identifier", min=0, max=(1 << 24) - 1),
        Arg("src_mac", any_value, "02:00:00:00:00:01", unit="-", help="outer source MAC (placeholder default)"),
        Arg("dst_mac", any_value, "02:00:00:00:00:02", unit="-",
            help="outer destination MAC, the next hop (placeholder default)"),
        Arg("dport", int, VXLAN_PORT, unit="-", help="outer UDP destination port", min=1, max=65535),
        Arg("sport", int, 0, unit="-", help="fixed outer UDP source port; 0 = per-flow hash", min=0, max=65535),
        Arg("ttl", int, 64, unit="hops", help="outer TTL", min=1, max=255),
        Arg("tos", int, 0, unit="-", help="outer TOS byte (DSCP and ECN)", min=0, max=255),
    )

    def setup(self) -> None:
        L = self.label
        src, dst = ipv4_arg(L, "src_ip", self.src_ip), ipv4_arg(L, "dst_ip", self.dst_ip)
        smac, dmac = mac_arg(L, "src_mac", self.src_mac), mac_arg(L, "dst_mac", self.dst_mac)
        t = (
            dmac.to_bytes(6, "big") + smac.to_bytes(6, "big") + b"\x08\x00"
            + _ipv4_template(self.tos, self.ttl, src, dst, True)
            + b"\x00\x00" + self.dport.to_bytes(2, "big") + b"\x00\x00\x00\x00"
            + b"\x08\x00\x00\x00" + (self.vni << 8).to_bytes(4, "big")
        )
        assert len(t) == _VXLAN_HDR
        self._tmpl = np.frombuffer(t, dtype=np.uint8).copy()

    def on_set(self, name: str) -> None:
        self.setup()

    def process(self, batch) -> None:
        n = len(batch)
        if self.sport:
            sport = np.full(n, self.sport, dtype=np.int64)
        else:
            sport = 49152 + (batch.headers.flow_hash().astype(np.int64) & 0x3FFF)
        codes = np.empty(n, dtype=np.int64)
        _vxlan_encap_kernel(*_pool_cols(batch), self._tmpl, sport, codes)
        batch.invalidate_headers()
        self.emit_codes(batch, codes)


class VXLANDecap(Module):
    """VXLANDecap — strips Ethernet/IP/UDP/VXLAN and hands on the inner Ethernet frame.

    Gates: 1 in / 1 out. A packet is VXLAN when it is IPv4 or IPv6, UDP to port 4789, with a
    complete 8-byte VXLAN header whose I flag (0x08) is set, followed by a complete inner
    Ethernet header. The outer headers are simply skipped (``offset`` moves forward; no byte
    moves); the inner frame ends where the outer UDP length says.

    Drop reason ``not_vxlan``: anything else (including malformed outer headers).

    With ``vni_anno`` = 0..7 the VNI is kept in that annotation column (``batch.anno(k)``), e.g.
    for a later split by tenant.

    Example: what VXLANEncap wrapped comes back out; a plain frame is not VXLAN.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import VXLANDecap, VXLANEncap
    >>> from tailgate.packet.craft import frame
    >>> wrapped, _ = drive(VXLANEncap(src_ip="192.0.2.1", dst_ip="192.0.2.2", vni=5001), [frame()])
    >>> decap = VXLANDecap(vni_anno=1)
    >>> out, pool = drive(decap, wrapped[0] + [frame()])
    >>> out[0] == [frame()], decap.counter("drops.not_vxlan")
    (True, 1)
    >>> pool.anno[pool.in_use, 1].tolist()          # the VNI, beside the frame
    [5001]

    See also: VXLANEncap.
    """

    drop_reasons = ("not_vxlan",)
    cost_ns = (40.0, 6.0)
    args = (Arg("vni_anno", int, -1, unit="-", help="annotation column that keeps the VNI; -1 = none",
                min=-1, max=N_ANNOTATIONS - 1),)

    def process(self, batch) -> None:
        hv = batch.headers
        il2 = hv.inner_l2_off.astype(np.int64)
        # the inner frame ends where the outer UDP length says (never past the IP payload)
        end = np.minimum(hv.l4_off.astype(np.int64) + hv.udp.len, hv.l4_end)
        ok = hv.is_vxlan & (il2 >= 0) & ((hv.vxlan.flags & 0x08) != 0) & (end - il2 >= 14)
        codes = np.where(ok, 0, -1).astype(np.int64)
        if ok.any():
            pool = batch.pool
            sl = hv.slots[ok]
            new_off = il2[ok]
            if self.vni_anno >= 0:
                pool.anno[sl, self.vni_anno] = hv.vxlan.vni[ok]
            old_len = pool.length[sl].astype(np.int64)
            new_len = end[ok] - new_off
            pool.wire_len[sl] += (new_len - old_len).astype(np.int32)
            pool.offset[sl] = new_off
            pool.length[sl] = new_len
            batch.invalidate_headers()
        self.emit_codes(batch, codes)


# ================================================================================================
# GTP-U
# ================================================================================================
class GTPUEncap(Module):
    """GTPUEncap — carries each IP packet in IPv4/UDP/GTP-U (3GPP TS 29.281 G-PDU).

    Gates: 1 in / 1 out. Input: Ethernet frames (up to two VLAN tags) carrying IPv4 or IPv6.
    Output: the *same Ethernet header* (VLAN tags kept, ethertype set to IPv4; MACs replaced
    only if ``src_mac``/``dst_mac`` are given), then outer IPv4 (DF, right length and
    checksum), UDP to port 2152 (checksum 0), an 8-byte GTP-U header (version 1, PT=1, message
    type 0xFF, length, TEID) and the inner IP packet — exactly its IP length: Ethernet padding
    of short frames is not carried. Grows the frame by 36 bytes into the headroom; only the
    Ethernet header moves.

    Drop reasons:
        ``not_ip``: no complete IPv4/IPv6 header.
        ``malformed``: IP length fields that do not fit the frame.
        ``no_headroom``: fewer than 36 bytes in front of the frame.

    Example: 36 bytes between the Ethernet header and the inner IP packet; the TEID ends the
    GTP-U header.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import GTPUEncap
    >>> from tailgate.packet.craft import frame
    >>> out, _ = drive(GTPUEncap(src_ip="10.10.0.1", dst_ip="10.10.0.2", teid=0x1234), [frame()])
    >>> wrapped = out[0][0]
    >>> len(wrapped), wrapped[46:50].hex(), wrapped[50:] == frame()[14:]
    (100, '00001234', True)

    See also: GTPUDecap, VXLANEncap.
    """

    drop_reasons = ("not_ip", "malformed", "no_headroom")
    cost_ns = (50.0, 12.0)
    args = (
        Arg("src_ip", any_value, unit="-", help="outer source IPv4 address"),
        Arg("dst_ip", any_value, unit="-", help="outer destination IPv4 address"),
        Arg("teid", int, unit="-", help="tunnel endpoint id", min=0, max=(1 << 32) - 1),
        Arg("sport", int, GTPU_PORT, unit="-", help="outer UDP source port", min=1, max=65535),
        Arg("ttl", int, 64, unit="hops", help="outer TTL", min=1, max=255),
        Arg("tos", int, 0, unit="-", help="outer TOS byte (DSCP and ECN)", min=0, max=255),
        Arg("src_mac", any_value, None, unit="-", help="new Ethernet source MAC; None keeps the frame's"),
        Arg("dst_mac", any_value, None, unit="-", help="new Ethernet destination MAC; None keeps the frame's"),
    )

    def setup(self) -> None:
        L = self.label
        src, dst = ipv4_arg(L, "src_ip", self.src_ip), ipv4_arg(L, "dst_ip", self.dst_ip)
        self._smac = None if self.src_mac is None else mac_arg(L, "src_mac", self.src_mac)
        self._dmac = None if self.dst_mac is None else mac_arg(L, "dst_mac", self.dst_mac)
        t = (
            _ipv4_template(self.tos, self.ttl, src, dst, True)
            + self.sport.to_bytes(2, "big") + GTPU_PORT.to_bytes(2, "big") + b"\x00\x00\x00\x00"
            + b"\x30\xff\x00\x00" + self.teid.to_bytes(4, "big")
        )
        assert len(t) == _GTPU_HDR
        self._tmpl = np.frombuffer(t, dtype=np.uint8).copy()

    def on_set(self, name: str) -> None:
        self.setup()

    def process(self, batch) -> None:
        hv = batch.headers
        is_ip = hv.is_ipv4 | hv.is_ipv6
        codes = np.where(is_ip, np.where(hv.l4_end >= 0, 0, -2), -1).astype(np.int64)
        _gtpu_encap_kernel(
            *_pool_cols(batch), hv.l3_off, hv.l4_end, self._tmpl,
            self._smac is not None, np.int64(self._smac or 0),
            self._dmac is not None, np.int64(self._dmac or 0),
            codes,
        )
        batch.invalidate_headers()
        self.emit_codes(batch, codes)


class GTPUDecap(Module):
    """GTPUDecap — strips outer IP/UDP/GTP-U and hands on the inner IP packet with the outer
    Ethernet header kept in front of it.

    Gates: 1 in / 1 out. Input: Ethernet (up to two VLAN tags) / IPv4 or IPv6 / UDP to port 2152
    / GTP-U version 1, PT=1, message type 0xFF (G-PDU) — with the optional sequence/N-PDU/
    extension field and extension-header chain skipped — carrying an IPv4 or IPv6 packet.
    Output: the outer Ethernet header (MACs and VLAN tags unchanged, ethertype set to the inner
    IP version) followed by the inner IP packet, cut to the inner IP length (or to the end of
    the outer payload if that comes first). Only the Ethernet header moves.

    Drop reason ``not_gtpu``: anything else, including GTP-U signalling (echo, error indication,
    end marker) and G-PDUs whose payload is not IP.

    Example: what GTPUEncap wrapped comes back out; a plain UDP frame is not GTP-U.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import GTPUDecap, GTPUEncap
    >>> from tailgate.packet.craft import frame
    >>> wrapped, _ = drive(GTPUEncap(src_ip="10.10.0.1", dst_ip="10.10.0.2", teid=7), [frame()])
    >>> decap = GTPUDecap()
    >>> out, _ = drive(decap, wrapped[0] + [frame()])
    >>> out[0] == [frame()], decap.counter("drops.not_gtpu")
    (True, 1)

    See also: GTPUEncap.
    """

    drop_reasons = ("not_gtpu",)
    cost_ns = (40.0, 8.0)

    def process(self, batch) -> None:
        hv = batch.headers
        il3 = hv.inner_l3_off
        ok = hv.is_gtpu & (il3 >= 0)
        codes = np.where(ok, 0, -1).astype(np.int64)
        _gtpu_decap_kernel(*_pool_cols(batch), hv.l3_off, il3, hv.l4_end, codes)
        batch.invalidate_headers()
        self.emit_codes(batch, codes)
