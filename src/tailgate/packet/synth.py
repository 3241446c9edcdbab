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
    fields zero). ``generate`` draws the flow and size of every packet with numpy, then one numba
    kernel copies each flow's template into its slot, patches the IPv4 total length / IPv6
    payload length / UDP length, writes the payload and computes the checksums (with the kernels
    of :mod:`tailgate.packet.checksum`).

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

from tailgate.packet.checksum import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, ipv4_header_checksum, l4_checksum
from tailgate.packet.pool import Batch, PacketPool

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
@njit(cache=True)
def _synth_fill(data, offset, length, wire_len, flow_id, arrival_ns, slots, flow, size, seq0, start_ns, period_ns,
                hdr, hdr_len, l3_rel, l4_rel, is_v6, proto, pattern):  # fmt: skip
    """Build every frame (template copy, length fields, payload, IPv4/L4 checksums) and set the
    slot metadata; packet ``k`` of the call is packet ``seq0 + k`` of the generator."""
    n = slots.shape[0]
    l3 = np.empty(n, np.int64)
    l4 = np.empty(n, np.int64)
    end = np.empty(n, np.int64)
    v6 = np.empty(n, np.bool_)
    pr = np.empty(n, np.int64)
    n4 = 0
    for k in range(n):
        s = slots[k]
        f = flow[k]
        sz = size[k]
        o = offset[s]
        hl = hdr_len[f]
        dst = data[s, o : o + sz]
        tpl = hdr[f]
        for i in range(hl):
            dst[i] = tpl[i]
        a3 = l3_rel[f]
        a4 = l4_rel[f]
        if is_v6[f]:
            plen = sz - a4
            dst[a3 + 4] = (plen >> 8) & 0xFF
            dst[a3 + 5] = plen & 0xFF
        else:
            tlen = sz - a3
            dst[a3 + 2] = (tlen >> 8) & 0xFF
            dst[a3 + 3] = tlen & 0xFF
            n4 += 1
        if proto[f] == 17:
            ulen = sz - a4
            dst[a4 + 4] = (ulen >> 8) & 0xFF
            dst[a4 + 5] = ulen & 0xFF
        seq = seq0 + k
        p = hl
        if sz - hl >= 8:
            for j in range(8):
                dst[hl + j] = (seq >> (56 - 8 * j)) & 0xFF
            p = hl + 8
        tail = dst[p:sz]  # payload bytes are their frame position & 0xff: copy from the pattern
        pat = pattern[p:sz]
        for i in range(sz - p):
            tail[i] = pat[i]
        length[s] = sz
        wire_len[s] = sz
        flow_id[s] = f
        arrival_ns[s] = start_ns + np.int64(np.rint(np.float64(seq) * period_ns))
        l3[k] = o + a3
        l4[k] = o + a4
        end[k] = o + sz
        v6[k] = is_v6[f]
        pr[k] = proto[f]
    if n4 > 0:
        s4 = np.empty(n4, np.int32)
        o4 = np.empty(n4, np.int64)
        j = 0
        for k in range(n):
            if not v6[k]:
                s4[j] = slots[k]
                o4[j] = l3[k]
                j += 1
        ck = ipv4_header_checksum(data, s4, o4)
        for j in range(n4):
            data[s4[j], o4[j] + 10] = ck[j] >> 8
            data[s4[j], o4[j] + 11] = ck[j] & 0xFF
    ck = l4_checksum(data, slots, l3, l4, end, v6, pr)
    for k in range(n):
        if pr[k] == 6:
            at = l4[k] + 16
        elif pr[k] == 17:
            at = l4[k] + 6
        else:
            at = l4[k] + 2
        data[slots[k], at] = ck[k] >> 8
        data[slots[k], at + 1] = ck[k] & 0xFF


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
        self._l3 = np.array([f.l3_offset for f in flows], dtype=np.int64)
        self._l4 = np.array([f.l4_offset for f in flows], dtype=np.int64)
        self._v6 = np.array([f.is_ipv6 for f in flows], dtype=np.bool_)
        self._proto = np.array([f.ip_proto for f in flows], dtype=np.int64)
        self._size = np.array([f.size_bytes for f in flows], dtype=np.int32)

    @property
    def next_arrival_ns(self) -> int:
        """Arrival time of the next packet ``generate`` will make."""
        return self.start_ns + int(np.rint(np.float64(self.packets_generated) * self._period_ns))

    def generate(self, pool: PacketPool, n: int) -> Batch:
        """``n`` new packets in fresh slots of ``pool``."""
        if n <= 0:
            return pool.empty_batch()
        if len(self.flows) == 1:
            flow = np.zeros(n, dtype=np.int32)
            self._flow_rng.random(n)  # keep the stream position independent of the flow count
        elif self._uniform_flows:
            # Equal weights: scaling the uniform draw gives the same distribution as a CDF search, cheaper.
            nf = len(self.flows)
            flow = np.minimum((self._flow_rng.random(n) * nf).astype(np.int32), nf - 1)
        else:
            flow = _draw(self._cdf, self._flow_rng.random(n))
        if self.size_dist is None:
            size = self._size[flow]
        else:
            size = np.maximum(np.asarray(self.size_dist.sample(self._size_rng, n), dtype=np.int32), self._hdr_len[flow])
        flow = flow.astype(np.int32, copy=False)
        size = size.astype(np.int32, copy=False)
        room = pool.max_frame_bytes
        biggest = int(size.max())
        if biggest > room:
            raise ValueError(f"TrafficGen.generate: a {biggest}-byte frame does not fit the pool's {room}-byte slot room")
        batch = pool.alloc(n)
        k0 = self.packets_generated
        _synth_fill(
            pool.data, pool.offset, pool.length, pool.wire_len, pool.flow_id, pool.arrival_ns,
            batch.idx, flow, size, k0, self.start_ns, self._period_ns,
            self._hdr, self._hdr_len, self._l3, self._l4, self._v6, self._proto, _PAYLOAD_PATTERN,
        )  # fmt: skip
        self.packets_generated = k0 + n
        return batch

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
