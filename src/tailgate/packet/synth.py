"""Synthetic traffic: flow templates, packet-size distributions and a seeded traffic generator.

Manual
------
What it does
    :class:`TrafficGen` fills pool slots with valid Ethernet frames -- optional 802.1Q VLAN tag or
    802.1ad QinQ pair, IPv4 or IPv6, UDP, TCP or ICMP (ICMPv6 over IPv6) -- drawn from a list of
    :class:`FlowTemplate` s, with correct IPv4 header, UDP, TCP and ICMP checksums, sizes from a
    size distribution and arrival times spaced for a packet rate. The same seed gives
    byte-identical packets and timestamps.

How it is fast
    Each flow's header bytes are built once, in Python, with ``struct`` (length and checksum
    fields zero), together with the constant parts of its checksums (template header words,
    pseudo-header addresses and protocol). ``generate`` makes one uniform draw per packet with
    numpy, takes the slots with ``PacketPool.alloc_idx``, then one numba kernel picks each
    packet's flow and size, copies the flow's template into its slot, patches the IPv4 total
    length / IPv6 payload length / UDP length, writes the payload and the checksums. No checksum
    is summed over the frame: the constant parts plus the length fields, the sequence number and
    a prefix-sum table of the payload pattern give the same sums in O(1) per packet.

API
    ``FlowTemplate(src_mac, dst_mac, src_ip, dst_ip, proto, sport, dport, vlan, ttl, size_bytes)``
        dataclass, validated on creation (``ValueError`` naming the field). ``vlan``: ``None``, a
        VID (802.1Q, TPID 0x8100) or ``(outer, inner)`` (802.1ad 0x88a8 outer + 0x8100 inner).
        ``size_bytes`` is the frame length as stored, without FCS (64 = 14+20+8+22 for
        IPv4/UDP). For ICMP, ``sport`` is the echo identifier and ``dport`` the sequence number.
        Properties ``is_ipv6``, ``header_bytes`` (smallest valid ``size_bytes``), ``l3_offset``,
        ``l4_offset``; ``header()`` returns the template bytes.
    ``FixedSize(size_bytes)``, ``UniformSize(lo_bytes, hi_bytes)`` (inclusive),
    ``ChoiceSize(sizes_bytes, weights=None)``, ``IMIX`` / ``imix()`` (7:4:1 of 64/570/1518-byte
    wire frames, stored without FCS as 60/566/1514) -- each has ``sample(rng, n) -> int32 array``
    and ``max_bytes``.
    ``TrafficGen(flows, *, size_dist=None, flow_weights=None, rate_pps=None, seed=0, start_ns=0)``
        ``generate(pool, n) -> Batch``; attributes ``packets_generated``, ``next_arrival_ns``.
    ``random_flows(n_flows, *, seed=0, proto="udp", size_bytes=64, dst_prefix=None, ipv6=False)``
        distinct random flows (sources in 10.0.0.0/8 or fd00::/8, destinations in ``dst_prefix``
        or the same default range, source ports >= 1024).

Per-packet contents
    - ``flow_id`` = the flow's index in ``flows``; ``length`` = ``wire_len`` = the sampled size;
      ``arrival_ns`` = ``start_ns + round(k * 1e9 / rate_pps)`` for the k-th packet of the
      generator (all ``start_ns`` when ``rate_pps`` is None).
    - A sampled size below a flow's ``header_bytes`` is raised to it; a size above the pool's
      room (``pool.max_frame_bytes``) raises ``ValueError``.
    - IPv4: DF set, identification 0. TCP: flags PSH|ACK, seq 1, ack 1, window 65535.
    - Payload: the packet's sequence number k as 8 big-endian bytes (when the payload has room),
      then bytes ``i & 0xff`` by position ``i`` in the frame.
    - Flows and sizes come from two independent streams of the seed and use one uniform draw
      per packet, so ``generate(a)`` then ``generate(b)`` equals ``generate(a + b)``.

Example::

    flows = random_flows(100, seed=1, size_bytes=128)
    gen = TrafficGen(flows, size_dist=IMIX, rate_pps=1e6, seed=7)
    pool = PacketPool(n_slots=4096)
    batch = gen.generate(pool, 256)   # 256 packets, 1 us apart
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numba import njit

from tailgate.packet.checksum import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    csum_finish,
    l4_csum_field,
    sum16_bytes,
)
from tailgate.packet.pool import Batch, PacketPool
from tailgate.packet.wide import slot_row

__all__ = [
    "IMIX",
    "ChoiceSize",
    "FixedSize",
    "FlowTemplate",
    "TrafficGen",
    "UniformSize",
    "imix",
    "random_flows",
]

MAX_FRAME_BYTES = 9000
ETH_P_IPV4 = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
_L4_HDR_BYTES = {"udp": 8, "tcp": 20, "icmp": 8}
_PAYLOAD_PATTERN = (np.arange(MAX_FRAME_BYTES) & 0xFF).astype(np.uint8)
_NO_SAMPLE = np.zeros(0, dtype=np.int32)
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


# ------------------------------------------------------------------------------------------------
# flow templates
# ------------------------------------------------------------------------------------------------
@dataclass
class FlowTemplate:
    """One flow's header fields and frame size; see the module manual."""

    src_mac: str = "02:00:00:00:00:01"
    dst_mac: str = "02:00:00:00:00:02"
    src_ip: str = "10.0.0.1"
    dst_ip: str = "10.0.0.2"
    proto: str = "udp"
    sport: int = 1024
    dport: int = 5001
    vlan: int | tuple[int, int] | None = None
    ttl: int = 64
    size_bytes: int = 64

    def __post_init__(self) -> None:
        for name in ("src_mac", "dst_mac"):
            v = getattr(self, name)
            if not isinstance(v, str) or not _MAC_RE.match(v):
                raise ValueError(f"FlowTemplate.{name}: {v!r} is not a MAC address like '02:00:00:00:00:01'")
        addrs = []
        for name in ("src_ip", "dst_ip"):
            v = getattr(self, name)
            try:
                addrs.append(ipaddress.ip_address(v))
            except ValueError:
                raise ValueError(f"FlowTemplate.{name}: {v!r} is not an IPv4 or IPv6 address") from None
        if addrs[0].version != addrs[1].version:
            raise ValueError(
                f"FlowTemplate.dst_ip: {self.dst_ip!r} is IPv{addrs[1].version} but src_ip "
                f"{self.src_ip!r} is IPv{addrs[0].version}"
            )
        if self.proto not in _L4_HDR_BYTES:
            raise ValueError(f"FlowTemplate.proto: {self.proto!r} is not one of 'udp', 'tcp', 'icmp'")
        for name in ("sport", "dport"):
            v = getattr(self, name)
            if not _is_int(v) or not 0 <= v <= 0xFFFF:
                raise ValueError(f"FlowTemplate.{name}: {v!r} is out of range 0..65535")
        vlan = self.vlan
        if vlan is not None:
            vids = tuple(vlan) if isinstance(vlan, (tuple, list)) else (vlan,)
            if len(vids) not in (1, 2) or not all(_is_int(x) and 0 <= x <= 4095 for x in vids):
                raise ValueError(f"FlowTemplate.vlan: {vlan!r} must be None, a VID 0..4095 or an (outer, inner) pair of VIDs")
            self.vlan = vids if len(vids) == 2 else vids[0]
        if not _is_int(self.ttl) or not 0 <= self.ttl <= 255:
            raise ValueError(f"FlowTemplate.ttl: {self.ttl!r} is out of range 0..255")
        if not _is_int(self.size_bytes):
            raise ValueError(f"FlowTemplate.size_bytes: {self.size_bytes!r} is not an integer")
        if not self.header_bytes <= self.size_bytes <= MAX_FRAME_BYTES:
            raise ValueError(
                f"FlowTemplate.size_bytes: {self.size_bytes} is outside {self.header_bytes}..{MAX_FRAME_BYTES} "
                f"(the headers of this flow take {self.header_bytes} bytes)"
            )

    # -- layout ----------------------------------------------------------------------------------
    @property
    def is_ipv6(self) -> bool:
        return ipaddress.ip_address(self.src_ip).version == 6

    @property
    def vlan_ids(self) -> tuple[int, ...]:
        if self.vlan is None:
            return ()
        return tuple(self.vlan) if isinstance(self.vlan, tuple) else (self.vlan,)

    @property
    def l3_offset(self) -> int:
        return 14 + 4 * len(self.vlan_ids)

    @property
    def l4_offset(self) -> int:
        return self.l3_offset + (40 if self.is_ipv6 else 20)

    @property
    def header_bytes(self) -> int:
        return self.l4_offset + _L4_HDR_BYTES[self.proto]

    @property
    def ip_proto(self) -> int:
        if self.proto == "udp":
            return PROTO_UDP
        if self.proto == "tcp":
            return PROTO_TCP
        return PROTO_ICMPV6 if self.is_ipv6 else PROTO_ICMP

    def header(self) -> bytes:
        """Template bytes of all headers, with length and checksum fields zero."""
        mac = lambda s: bytes.fromhex(s.replace(":", "").replace("-", ""))  # noqa: E731
        eth_type = ETH_P_IPV6 if self.is_ipv6 else ETH_P_IPV4
        out = bytearray(mac(self.dst_mac) + mac(self.src_mac))
        vids = self.vlan_ids
        if len(vids) == 2:
            out += struct.pack("!HHHH", ETH_P_8021AD, vids[0], ETH_P_8021Q, vids[1])
        elif len(vids) == 1:
            out += struct.pack("!HH", ETH_P_8021Q, vids[0])
        out += struct.pack("!H", eth_type)
        src = ipaddress.ip_address(self.src_ip).packed
        dst = ipaddress.ip_address(self.dst_ip).packed
        if self.is_ipv6:
            out += struct.pack("!IHBB", 6 << 28, 0, self.ip_proto, self.ttl) + src + dst
        else:
            out += struct.pack("!BBHHHBBH", 0x45, 0, 0, 0, 0x4000, self.ttl, self.ip_proto, 0) + src + dst
        if self.proto == "udp":
            out += struct.pack("!HHHH", self.sport, self.dport, 0, 0)
        elif self.proto == "tcp":
            out += struct.pack("!HHIIBBHHH", self.sport, self.dport, 1, 1, 5 << 4, 0x18, 0xFFFF, 0, 0)
        else:
            icmp_type = 128 if self.is_ipv6 else 8  # echo request
            out += struct.pack("!BBHHH", icmp_type, 0, 0, self.sport, self.dport)
        assert len(out) == self.header_bytes
        return bytes(out)


# ------------------------------------------------------------------------------------------------
# size distributions
# ------------------------------------------------------------------------------------------------
def _normalized_weights(name: str, weights, n: int) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"{name}: need {n} finite non-negative weights with a positive sum, got {weights!r}")
    return w / w.sum()


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index per uniform draw ``u`` for the cumulative weights ``cdf``."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _check_size(name: str, v) -> int:
    if not _is_int(v) or not 14 <= v <= MAX_FRAME_BYTES:
        raise ValueError(f"{name}: {v!r} is not a frame size in 14..{MAX_FRAME_BYTES} bytes")
    return int(v)


class FixedSize:
    """Every packet ``size_bytes`` long."""

    def __init__(self, size_bytes: int) -> None:
        self.size_bytes = _check_size("FixedSize.size_bytes", size_bytes)
        self.max_bytes = self.size_bytes

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.size_bytes, dtype=np.int32)

    def __repr__(self) -> str:
        return f"FixedSize({self.size_bytes})"


class UniformSize:
    """Sizes uniform over ``lo_bytes..hi_bytes`` inclusive (one uniform draw per packet)."""

    def __init__(self, lo_bytes: int, hi_bytes: int) -> None:
        self.lo_bytes = _check_size("UniformSize.lo_bytes", lo_bytes)
        self.hi_bytes = _check_size("UniformSize.hi_bytes", hi_bytes)
        if self.hi_bytes < self.lo_bytes:
            raise ValueError(f"UniformSize.hi_bytes: {hi_bytes} is below lo_bytes {lo_bytes}")
        self.max_bytes = self.hi_bytes

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        span = self.hi_bytes - self.lo_bytes + 1
        return (self.lo_bytes + np.floor(rng.random(n) * span)).astype(np.int32)

    def __repr__(self) -> str:
        return f"UniformSize({self.lo_bytes}, {self.hi_bytes})"


class ChoiceSize:
    """Sizes drawn from ``sizes_bytes`` with ``weights`` (uniform when None)."""

    def __init__(self, sizes_bytes: Sequence[int], weights: Sequence[float] | None = None) -> None:
        sizes = [_check_size("ChoiceSize.sizes_bytes", s) for s in sizes_bytes]
        if not sizes:
            raise ValueError("ChoiceSize.sizes_bytes: needs at least one size")
        self.sizes_bytes = np.array(sizes, dtype=np.int32)
        self.weights = _normalized_weights("ChoiceSize.weights", weights, len(sizes))
        self._cdf = np.cumsum(self.weights)
        self.max_bytes = int(self.sizes_bytes.max())

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.sizes_bytes[_draw(self._cdf, rng.random(n))]

    def __repr__(self) -> str:
        return f"ChoiceSize({self.sizes_bytes.tolist()}, {self.weights.tolist()})"


def imix() -> ChoiceSize:
    """Simple IMIX: 7:4:1 of 64/570/1518-byte wire frames, stored without FCS: 60/566/1514."""
    return ChoiceSize([60, 566, 1514], [7, 4, 1])


IMIX = imix()


# ------------------------------------------------------------------------------------------------
# generator kernel
# ------------------------------------------------------------------------------------------------
# Columns of the per-flow table ``TrafficGen._ftab`` (int64, one row per flow).
_F_HLEN, _F_L3, _F_L4, _F_V6, _F_PROTO, _F_SIZE, _F_IPSUM, _F_L4SUM, _F_CK = range(9)
_N_FCOLS = 9

# Ones-complement partial sums of the payload pattern: ``_PATTERN_WSUM[j]`` is the sum of the
# big-endian 16-bit words at even frame positions 0, 2, ..., 2j-2 (byte at position i is i & 0xff).
# Every L4 header starts at an even frame position (14 + 4*tags + 20 or 40) and is 8 or 20 bytes,
# so the payload's checksum words are exactly these words: its sum is a difference of two entries.
_PATTERN_WSUM = np.zeros(MAX_FRAME_BYTES // 2 + 1, np.int64)
_PATTERN_WSUM[1:] = np.cumsum(
    (_PAYLOAD_PATTERN[0::2].astype(np.int64) << 8) | _PAYLOAD_PATTERN[1::2].astype(np.int64)
)


@njit(cache=True, inline="always")
def _put8(row, o, v):
    # unsigned index: numba then skips its negative-index wraparound test (offsets here are >= 0)
    row[np.uint64(o)] = np.uint8(v & 0xFF)


@njit(cache=True)
def _synth_fill(data, offset, length, wire_len, flow_id, arrival_ns, slots, u, mode, cdf, sample, seq0, start_ns,
                period_ns, hdr, ftab, pattern, wsum):  # fmt: skip
    """Build every frame and set its slot metadata; packet ``k`` of the call is packet ``seq0 + k``
    of the generator.

    Per packet: the flow from the uniform draw ``u[k]`` (``mode`` 0: one flow, 1: equal weights,
    scaled draw, 2: search of the cumulative weights ``cdf``), the size (the flow's, or
    ``sample[k]`` raised to the header length), then the template copy, length fields, payload
    and checksums. The checksums are not summed over the frame: each flow's constant part
    (template header words, pseudo-header addresses and protocol) is in ``ftab``, and the
    payload's part comes from the sequence number and ``wsum`` -- O(1) per packet, same sums
    (so the same bytes) as :mod:`tailgate.packet.checksum` computes over the frame."""
    n = slots.shape[0]
    nf = ftab.shape[0]
    nc = cdf.shape[0]
    for k in range(n):
        if mode == 0:
            f = 0
        elif mode == 1:
            f = np.int64(np.int32(u[k] * nf))
            if f > nf - 1:
                f = nf - 1
        else:
            # np.searchsorted(cdf, u, side="right"), capped at the last flow
            lo = 0
            hi = nc
            x = u[k]
            while lo < hi:
                mid = (lo + hi) >> 1
                if cdf[mid] <= x:
                    lo = mid + 1
                else:
                    hi = mid
            f = lo if lo < nc else nc - 1
        fr = ftab[np.uint64(f)]
        hl = fr[_F_HLEN]
        if sample.shape[0] == 0:
            sz = fr[_F_SIZE]
        else:
            sz = max(np.int64(sample[k]), hl)
        s = np.uint64(slots[k])
        o = np.int64(offset[s])
        ou = np.uint64(o)
        row = slot_row(data, s)
        tpl = hdr[np.uint64(f)]
        for i in range(hl):
            row[ou + np.uint64(i)] = tpl[np.uint64(i)]
        a3 = o + fr[_F_L3]
        a4 = o + fr[_F_L4]
        seg = sz - fr[_F_L4]
        l4s = fr[_F_L4SUM]
        if fr[_F_V6]:
            _put8(row, a3 + 4, seg >> 8)
            _put8(row, a3 + 5, seg)
        else:
            tlen = sz - fr[_F_L3]
            _put8(row, a3 + 2, tlen >> 8)
            _put8(row, a3 + 3, tlen)
            c = csum_finish(fr[_F_IPSUM] + tlen)
            _put8(row, a3 + 10, c >> 8)
            _put8(row, a3 + 11, c)
        proto = fr[_F_PROTO]
        if proto == 17:
            _put8(row, a4 + 4, seg >> 8)
            _put8(row, a4 + 5, seg)
            l4s += seg  # the UDP length word
        if proto != 1:
            l4s += seg  # pseudo-header length (ICMP over IPv4 has no pseudo-header)
        seq = seq0 + k
        p = hl
        if sz - hl >= 8:
            for j in range(8):
                _put8(row, o + hl + j, seq >> (56 - 8 * j))
            l4s += (seq >> 48) & 0xFFFF
            l4s += (seq >> 32) & 0xFFFF
            l4s += (seq >> 16) & 0xFFFF
            l4s += seq & 0xFFFF
            p = hl + 8
        # payload bytes are their frame position & 0xff: copy from the pattern
        for i in range(p, sz):
            row[ou + np.uint64(i)] = pattern[np.uint64(i)]
        l4s += wsum[np.uint64(sz >> 1)] - wsum[np.uint64(p >> 1)]
        if sz & 1:
            l4s += ((sz - 1) & 0xFF) << 8
        c = csum_finish(l4s)
        if c == 0 and proto == 17:
            c = 0xFFFF
        at = a4 + fr[_F_CK]
        _put8(row, at, c >> 8)
        _put8(row, at + 1, c)
        length[s] = sz
        wire_len[s] = sz
        flow_id[s] = f
        if period_ns == 0.0:
            arrival_ns[s] = start_ns  # (no rate: every packet at start_ns; skips a libm rint)
        else:
            arrival_ns[s] = start_ns + np.int64(np.rint(np.float64(seq) * period_ns))


def _flow_row(f: FlowTemplate, h: bytes) -> list[int]:
    """One row of ``TrafficGen._ftab``: layout plus the constant parts of the checksums."""
    l3, l4, v6, proto = f.l3_offset, f.l4_offset, f.is_ipv6, f.ip_proto
    assert l3 % 2 == 0 and l4 % 2 == 0 and (len(h) - l4) % 2 == 0  # see _PATTERN_WSUM
    ip_sum = 0 if v6 else sum16_bytes(h[l3:l4])  # length and checksum fields are 0 in the template
    l4_sum = sum16_bytes(h[l4:])
    if v6:
        l4_sum += sum16_bytes(h[l3 + 8 : l3 + 40]) + proto
    elif proto != PROTO_ICMP:
        l4_sum += sum16_bytes(h[l3 + 12 : l3 + 20]) + proto
    ck = int(l4_csum_field(proto))
    return [len(h), l3, l4, int(v6), proto, f.size_bytes, ip_sum, l4_sum, ck]


# ------------------------------------------------------------------------------------------------
# generator
# ------------------------------------------------------------------------------------------------
class TrafficGen:
    """Seeded generator of frames from flow templates (see the module manual)."""

    def __init__(
        self,
        flows: Sequence[FlowTemplate],
        *,
        size_dist=None,
        flow_weights: Sequence[float] | None = None,
        rate_pps: float | None = None,
        seed: int = 0,
        start_ns: int = 0,
    ) -> None:
        flows = list(flows)
        if not flows:
            raise ValueError("TrafficGen.flows: needs at least one FlowTemplate")
        for i, f in enumerate(flows):
            if not isinstance(f, FlowTemplate):
                raise ValueError(f"TrafficGen.flows[{i}]: {f!r} is not a FlowTemplate")
        if rate_pps is not None and not (np.isfinite(rate_pps) and rate_pps > 0):
            raise ValueError(f"TrafficGen.rate_pps: {rate_pps!r} must be a positive packet rate or None")
        if size_dist is not None and not hasattr(size_dist, "sample"):
            raise ValueError(f"TrafficGen.size_dist: {size_dist!r} has no sample(rng, n) method")
        self.flows = flows
        self.size_dist = size_dist
        self.rate_pps = None if rate_pps is None else float(rate_pps)
        self.seed = seed
        self.start_ns = int(start_ns)
        self._period_ns = 0.0 if rate_pps is None else 1e9 / float(rate_pps)
        self.flow_weights = _normalized_weights("TrafficGen.flow_weights", flow_weights, len(flows))
        self._cdf = np.cumsum(self.flow_weights)
        self._uniform_flows = flow_weights is None
        flow_ss, size_ss = np.random.SeedSequence(seed).spawn(2)
        self._flow_rng = np.random.default_rng(flow_ss)
        self._size_rng = np.random.default_rng(size_ss)
        self.packets_generated = 0
        # per-flow template table, built once
        hdrs = [f.header() for f in flows]
        self._hdr_len = np.array([len(h) for h in hdrs], dtype=np.int32)
        self._hdr = np.zeros((len(flows), int(self._hdr_len.max())), dtype=np.uint8)
        for i, h in enumerate(hdrs):
            self._hdr[i, : len(h)] = np.frombuffer(h, dtype=np.uint8)
        self._ftab = np.array([_flow_row(f, h) for f, h in zip(flows, hdrs)], dtype=np.int64).reshape(-1, _N_FCOLS)
        self._size = np.array([f.size_bytes for f in flows], dtype=np.int32)
        self._max_fixed = int(self._size.max())
        self._max_hdr = int(self._hdr_len.max())
        if len(flows) == 1:
            self._mode = 0
        elif self._uniform_flows:
            # Equal weights: scaling the uniform draw gives the same distribution as a CDF search, cheaper.
            self._mode = 1
        else:
            self._mode = 2

    @property
    def next_arrival_ns(self) -> int:
        """Arrival time of the next packet ``generate`` will make."""
        return self.start_ns + int(np.rint(np.float64(self.packets_generated) * self._period_ns))

    def generate(self, pool: PacketPool, n: int) -> Batch:
        """``n`` new packets in fresh slots of ``pool``."""
        if n <= 0:
            return pool.empty_batch()
        # One draw per packet even with one flow: the stream position stays independent of the
        # flow count. The flow and size of each packet are worked out in the kernel.
        u = self._flow_rng.random(n)
        if self.size_dist is None:
            sample = _NO_SAMPLE
            biggest = self._max_fixed
        else:
            sample = np.asarray(self.size_dist.sample(self._size_rng, n), dtype=np.int32)
            if sample.shape != (n,):  # (a custom distribution; numpy's broadcasting rules, as before)
                sample = np.ascontiguousarray(np.broadcast_to(sample, (n,)))
            biggest = max(int(sample.max()), self._max_hdr)
        room = pool.max_frame_bytes
        if biggest > room or biggest > MAX_FRAME_BYTES:
            # Some packet *may* not fit: find the real biggest one (slow path, rare configurations).
            biggest = int(self._sizes_of(u, sample).max())
            if biggest > room:
                raise ValueError(
                    f"TrafficGen.generate: a {biggest}-byte frame does not fit the pool's {room}-byte slot room"
                )
            if biggest > MAX_FRAME_BYTES:  # (only a custom size distribution gets here)
                raise ValueError(f"TrafficGen.generate: a {biggest}-byte frame is over {MAX_FRAME_BYTES} bytes")
        idx = pool.alloc_idx(n)
        k0 = self.packets_generated
        _synth_fill(
            pool.data, pool.offset, pool.length, pool.wire_len, pool.flow_id, pool.arrival_ns,
            idx, u, self._mode, self._cdf, sample, k0, self.start_ns, self._period_ns,
            self._hdr, self._ftab, _PAYLOAD_PATTERN, _PATTERN_WSUM,
        )  # fmt: skip
        self.packets_generated = k0 + n
        return Batch(pool, idx)

    def _sizes_of(self, u: np.ndarray, sample: np.ndarray) -> np.ndarray:
        """The frame sizes ``_synth_fill`` will make for the draws ``u`` (numpy, for the room check)."""
        nf = len(self.flows)
        if self._mode == 0:
            flow = np.zeros(len(u), dtype=np.int32)
        elif self._mode == 1:
            flow = np.minimum((u * nf).astype(np.int32), nf - 1)
        else:
            flow = _draw(self._cdf, u)
        if len(sample) == 0:
            return self._size[flow]
        return np.maximum(sample, self._hdr_len[flow])

    def __repr__(self) -> str:
        return f"TrafficGen({len(self.flows)} flows, rate_pps={self.rate_pps}, seed={self.seed})"


# ------------------------------------------------------------------------------------------------
# random flows
# ------------------------------------------------------------------------------------------------
def random_flows(
    n_flows: int,
    *,
    seed: int = 0,
    proto: str = "udp",
    size_bytes: int = 64,
    dst_prefix: str | None = None,
    ipv6: bool = False,
) -> list[FlowTemplate]:
    """``n_flows`` distinct random flows (distinct 5-tuples); see the module manual."""
    if not _is_int(n_flows) or n_flows <= 0:
        raise ValueError(f"random_flows.n_flows: {n_flows!r} must be a positive integer")
    src_net = ipaddress.ip_network("fd00::/8" if ipv6 else "10.0.0.0/8")
    try:
        dst_net = ipaddress.ip_network(dst_prefix, strict=False) if dst_prefix is not None else src_net
    except ValueError:
        raise ValueError(f"random_flows.dst_prefix: {dst_prefix!r} is not a network like '192.168.0.0/16'") from None
    if dst_net.version != src_net.version:
        raise ValueError(f"random_flows.dst_prefix: {dst_prefix!r} is not an IPv{src_net.version} network")
    rng = np.random.default_rng(seed)
    flows: list[FlowTemplate] = []
    seen: set[tuple] = set()

    def rand_addr(net) -> str:
        host_bits = net.max_prefixlen - net.prefixlen
        r = int.from_bytes(rng.bytes(16), "big") & ((1 << host_bits) - 1)
        return str(net.network_address + r)

    tries = 0
    while len(flows) < n_flows:
        tries += 1
        if tries > 20 * n_flows + 100:
            raise ValueError(f"random_flows.dst_prefix: {dst_prefix!r} is too small for {n_flows} distinct flows")
        src, dst = rand_addr(src_net), rand_addr(dst_net)
        sport, dport = int(rng.integers(1024, 65536)), int(rng.integers(1, 65536))
        key = (src, dst, sport, dport)
        if key in seen:
            continue
        seen.add(key)
        flows.append(FlowTemplate(src_ip=src, dst_ip=dst, proto=proto, sport=sport, dport=dport, size_bytes=size_bytes))
    return flows
