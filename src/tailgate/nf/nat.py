"""Address translation: StaticNAT (1:1 addresses) and NAPT (many internal endpoints behind one
external address, with port allocation and idle expiry).

Each class docstring is its manual. Both keep the IPv4 header checksum and the TCP/UDP (and, for
NAPT, ICMP echo) checksums right by incremental update (RFC 1624), so a packet that came in with
right checksums leaves with right checksums without the payload being read.

The per-packet path is numba (a vectorized lookup for StaticNAT; for NAPT an open-addressing
hash table in numpy arrays, looked up, filled and emptied inside the kernel).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tailgate.core.args import Arg, any_value
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.nf.ip import (
    rd16,
    rd32,
    rewrite_ipv4_addr_kernel,
    wr16,
    wr32,
)
from tailgate.packet.addr import ipv4_arg
from tailgate.packet.checksum import csum_upd16, csum_upd32
from tailgate.packet.proto import F_FRAGMENT, F_IPV4
from tailgate.packet.wide import slot_row

__all__ = ["StaticNAT", "NAPT"]


# ================================================================================================
# StaticNAT
# ================================================================================================
def _parse_rules(owner: str, rules) -> list[tuple[int, int]]:
    """Rules as a list of (internal, external) pairs, a dict, or ``"in=ext,in=ext"``."""
    if isinstance(rules, str):
        items = []
        for part in rules.replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise ArgError(f"{owner}: argument 'rules': expected 'internal=external', got {part!r}")
            a, b = part.split("=", 1)
            items.append((a.strip(), b.strip()))
    elif isinstance(rules, dict):
        items = list(rules.items())
    else:
        try:
            items = [tuple(r) for r in rules]
        except TypeError:
            raise ArgError(f"{owner}: argument 'rules' must be a list of (internal, external) pairs, got {rules!r}") from None
    if not items:
        raise ArgError(f"{owner}: argument 'rules' needs at least one (internal, external) pair")
    out = []
    for r in items:
        if len(r) != 2:
            raise ArgError(f"{owner}: argument 'rules': each rule is an (internal, external) pair, got {r!r}")
        out.append((ipv4_arg(owner, "rules", r[0]), ipv4_arg(owner, "rules", r[1])))
    ins = [a for a, _ in out]
    exs = [b for _, b in out]
    if len(set(ins)) != len(ins):
        raise ArgError(f"{owner}: argument 'rules': an internal address appears twice (1:1 NAT)")
    if len(set(exs)) != len(exs):
        raise ArgError(f"{owner}: argument 'rules': an external address appears twice (1:1 NAT)")
    return out


class StaticNAT(Module):
    """StaticNAT — 1:1 IPv4 address translation (static NAT, no ports, no state).

    Gates: 2 in / 2 out.

    - Input gate 0 (forward, inside → outside) rewrites the **source** address from internal to
      external and leaves on output gate 0.
    - Input gate 1 (reverse, outside → inside) rewrites the **destination** address from external
      to internal and leaves on output gate 1.

    Packets that no rule matches (including non-IPv4 packets) pass **unchanged** to the output
    gate of their direction; they are counted in the extra counter ``unmatched`` (translated ones
    in ``translated``). Nothing is dropped. The reverse direction (input and output gate 1) may be
    left unconnected when only one direction is needed.

    Checksums: the IPv4 header checksum and the TCP/UDP checksum (the address is in its
    pseudo-header) are updated incrementally. An IPv4 UDP checksum of 0 ("none") stays 0. ICMP
    checksums do not cover the IP header and are unchanged; addresses embedded in ICMP error
    payloads are not translated. Non-first fragments get their IP header translated (they have
    no L4 header).

    ``rules`` are the (internal, external) address pairs, e.g.
    ``[("10.0.0.1", "198.18.0.1"), ("10.0.0.2", "198.18.0.2")]``; also a dict
    ``{internal: external}`` or a string ``"10.0.0.1=198.18.0.1,10.0.0.2=198.18.0.2"``. Each
    internal and each external address appears once.

    Example: in a pipeline, ``inside >> nat.input(0); nat[0] >> outside`` and
    ``outside >> nat.input(1); nat[1] >> inside``. Outbound, then back:

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import StaticNAT
    >>> from tailgate.packet.craft import frame
    >>> nat = StaticNAT(rules=[("10.0.0.1", "198.18.0.1")])
    >>> out, _ = drive(nat, [frame(src_ip="10.0.0.1"), frame(src_ip="10.0.0.9")])
    >>> out[0] == [frame(src_ip="198.18.0.1"), frame(src_ip="10.0.0.9")]    # checksums updated too
    True
    >>> back, _ = drive(nat, [frame(dst_ip="198.18.0.1")], igate=1)
    >>> back[1] == [frame(dst_ip="10.0.0.1")], nat.counter("translated"), nat.counter("unmatched")
    (True, 2, 1)

    See also: NAPT (many hosts behind one address), SetIPv4.
    """

    n_igates = 2
    optional_igates = (1,)
    optional_ogates = (1,)
    n_ogates = 2
    cost_ns = (40.0, 10.0)
    args = (Arg("rules", any_value, unit="-", help="(internal, external) IPv4 address pairs, one per host"),)

    def setup(self) -> None:
        rules = _parse_rules(self.label, self.rules)
        ins = np.array([a for a, _ in rules], dtype=np.int64)
        exs = np.array([b for _, b in rules], dtype=np.int64)
        o = np.argsort(ins)
        self._fwd_keys, self._fwd_vals = ins[o], exs[o]
        o = np.argsort(exs)
        self._rev_keys, self._rev_vals = exs[o], ins[o]

    def on_set(self, name: str) -> None:
        self.setup()

    def reset_counters(self) -> None:
        super().reset_counters()
        self.n_translated = 0
        self.n_unmatched = 0

    def extra_counters(self):
        return {"translated": int(self.n_translated), "unmatched": int(self.n_unmatched)}

    def process(self, batch) -> None:
        ig = self.current_igate
        hv = batch.headers
        is4 = hv.is_ipv4
        if ig == 0:
            keys, vals, addr, rel = self._fwd_keys, self._fwd_vals, hv.ipv4.src, 12
        else:
            keys, vals, addr, rel = self._rev_keys, self._rev_vals, hv.ipv4.dst, 16
        a = addr.astype(np.int64)
        pos = np.searchsorted(keys, a)
        pos[pos == len(keys)] = 0
        hit = is4 & (keys[pos] == a)
        nh = int(np.count_nonzero(hit))
        self.n_translated += nh
        self.n_unmatched += len(batch) - nh
        if nh:
            rewrite_ipv4_addr_kernel(batch.pool.data, hv.slots, hv.l3_off, hv.l4_off, hv.ip_proto, rel, vals[pos], hit)
        self.emit(batch, ig)


# ================================================================================================
# NAPT
# ================================================================================================
# drop reason codes (negative: -(index + 1) in NAPT.drop_reasons)
_D_NOT_IPV4 = -1
_D_UNSUPPORTED = -2
_D_FRAGMENT = -3
_D_MALFORMED = -4
_D_NO_MAPPING = -5
_D_EXHAUSTED = -6

_EMPTY = np.int64(-1)
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, inline="always")
def _home(key, shift):
    return np.int64((np.uint64(key) * _HASH_MUL) >> np.uint64(shift))


@njit(cache=True, inline="always")
def _classify(row, f, o3, o4, l4end, proto, inbound):
    """(proto index 0 tcp/1 udp/2 icmp, port field offset, checksum offset) or a drop code in [0]."""
    if not (f & F_IPV4):
        return _D_NOT_IPV4, 0, 0
    if f & F_FRAGMENT:
        return _D_FRAGMENT, 0, 0
    if proto == 6 or proto == 17:
        if o4 < 0:
            return _D_MALFORMED, 0, 0
        pp = o4 + 2 if inbound else o4
        ck = o4 + 16 if proto == 6 else o4 + 6
        return (0 if proto == 6 else 1), pp, ck
    if proto == 1:
        if o4 < 0 or o4 + 8 > l4end:
            return _D_MALFORMED, 0, 0
        t = row[o4]
        # outbound echo requests, inbound echo replies; the identifier plays the port
        if (inbound and t != 0) or (not inbound and t != 8):
            return _D_UNSUPPORTED, 0, 0
        return 2, o4 + 4, o4 + 2
    return _D_UNSUPPORTED, 0, 0


@njit(cache=True, inline="always")
def _rewrite(row, o3, addr_rel, new_ip, pp, new_port, ck, pi):
    """Write address and port (ICMP id) and update the IP and L4 checksums incrementally."""
    old_ip = rd32(row, o3 + addr_rel)
    old_port = rd16(row, pp)
    wr32(row, o3 + addr_rel, new_ip)
    wr16(row, o3 + 10, csum_upd32(rd16(row, o3 + 10), old_ip, new_ip))
    c = rd16(row, ck)
    if not (pi == 1 and c == 0):  # UDP checksum 0: none, stays 0
        if pi != 2:  # TCP/UDP pseudo-header holds the address; ICMP does not
            c = csum_upd32(c, old_ip, new_ip)
        c = csum_upd16(c, old_port, new_port)
        if pi == 1 and c == 0:
            c = 0xFFFF
        wr16(row, ck, c)
    wr16(row, pp, new_port)


@njit(cache=True)
def _table_delete(keys, vals, key, shift):
    """Remove ``key`` from the linear-probing table (backward-shift deletion, no tombstones)."""
    mask = keys.shape[0] - 1
    i = _home(key, shift)
    while keys[i] != key:
        if keys[i] == -1:
            return
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        kj = keys[j]
        if kj == -1:
            break
        h = _home(kj, shift)
        # keep kj where it is if its home lies cyclically in (i, j]
        if i <= j:
            stays = i < h and h <= j
        else:
            stays = h > i or h <= j
        if stays:
            continue
        keys[i] = kj
        vals[i] = vals[j]
        i = j
    keys[i] = -1


@njit(cache=True)
def _expire(keys, vals, shift, rev_ip, rev_port, rev_used, last_seen, free, n_free, now, timeout_ns):
    """Reclaim every mapping idle for more than ``timeout_ns``; returns how many."""
    n = 0
    for pi in range(rev_used.shape[0]):
        for idx in range(rev_used.shape[1]):
            if rev_used[pi, idx] and now - last_seen[pi, idx] > timeout_ns:
                key = (rev_ip[pi, idx] << 24) | (np.int64(rev_port[pi, idx]) << 8) | pi
                _table_delete(keys, vals, key, shift)
                rev_used[pi, idx] = False
                free[pi, n_free[pi]] = idx
                n_free[pi] += 1
                n += 1
    return n


@njit(cache=True)
def _napt_out_kernel(data, slots, l3_off, l4_off, l4_end, flags, ip_proto,
                     keys, vals, shift, rev_ip, rev_port, rev_used, last_seen, free, n_free,
                     port_min, ext_ip, now, timeout_ns, codes, stats):
    """Outbound: map (src ip, src port, proto) to an external port, allocating on a miss."""
    mask = keys.shape[0] - 1
    swept = False
    for k in range(slots.shape[0]):
        row = slot_row(data, slots[k])
        o3 = np.int64(l3_off[k])
        pi, pp, ck = _classify(row, flags[k], o3, np.int64(l4_off[k]), np.int64(l4_end[k]), ip_proto[k], False)
        if pi < 0:
            codes[k] = pi
            continue
        ip = rd32(row, o3 + 12)
        port = rd16(row, pp)
        key = (ip << 24) | (port << 8) | pi
        h = _home(key, shift)
        while keys[h] != -1 and keys[h] != key:
            h = (h + 1) & mask
        if keys[h] == key:
            idx = vals[h]
        else:
            if n_free[pi] == 0 and not swept:
                # out of ports: reclaim idle mappings now rather than at the next periodic sweep
                swept = True
                stats[1] += _expire(keys, vals, shift, rev_ip, rev_port, rev_used, last_seen, free, n_free,
                                    now, timeout_ns)
                h = _home(key, shift)
                while keys[h] != -1:
                    h = (h + 1) & mask
            if n_free[pi] == 0:
                codes[k] = _D_EXHAUSTED
                continue
            n_free[pi] -= 1
            idx = free[pi, n_free[pi]]
            keys[h] = key
            vals[h] = idx
            rev_ip[pi, idx] = ip
            rev_port[pi, idx] = port
            rev_used[pi, idx] = True
            stats[0] += 1
        last_seen[pi, idx] = now
        _rewrite(row, o3, 12, ext_ip, pp, port_min + np.int64(idx), ck, pi)
        codes[k] = 0


@njit(cache=True)
def _napt_in_kernel(data, slots, l3_off, l4_off, l4_end, flags, ip_proto,
                    rev_ip, rev_port, rev_used, last_seen, port_min, ext_ip, now, timeout_ns, codes):
    """Inbound: packets to (external ip, allocated port) go back to the internal endpoint."""
    nports = rev_used.shape[1]
    for k in range(slots.shape[0]):
        row = slot_row(data, slots[k])
        o3 = np.int64(l3_off[k])
        pi, pp, ck = _classify(row, flags[k], o3, np.int64(l4_off[k]), np.int64(l4_end[k]), ip_proto[k], True)
        if pi < 0:
            codes[k] = pi
            continue
        idx = rd16(row, pp) - port_min
        if rd32(row, o3 + 16) != ext_ip or idx < 0 or idx >= nports:
            codes[k] = _D_NO_MAPPING
            continue
        if not rev_used[pi, idx] or now - last_seen[pi, idx] > timeout_ns:
            codes[k] = _D_NO_MAPPING
            continue
        last_seen[pi, idx] = now
        _rewrite(row, o3, 16, rev_ip[pi, idx], pp, np.int64(rev_port[pi, idx]), ck, pi)
        codes[k] = 1


class NAPT(Module):
    """NAPT — network address and port translation: many internal hosts share one external IPv4
    address (a home router's "NAT", RFC 3022 / RFC 4787 behaviour).

    Gates: 2 in / 2 out. Input gate 0 takes outbound traffic (inside → outside) and sends it out
    of output gate 0; input gate 1 takes inbound traffic (outside → inside) and sends it out of
    output gate 1. The inbound direction (gate 1) may be left unconnected.

    Outbound: the mapping key is **(internal source address, internal source port, protocol)**;
    the destination is *not* part of it (endpoint-independent mapping, RFC 4787 REQ-1), so one
    internal socket keeps one external port whatever it talks to. The first packet of a new key
    allocates an external port from ``[port_min, port_max]`` (separately per protocol; the
    lowest free port first, then recently freed ones); the packet's source becomes
    ``(external_ip, external port)``.

    Inbound: a packet to ``(external_ip, port)`` with a live mapping for its protocol has its
    destination rewritten to the internal address and port. Filtering is endpoint-independent:
    any remote host may send to an allocated port (a "full cone" NAT).

    Protocols: TCP and UDP by port; ICMP echo by identifier (outbound echo requests, inbound echo
    replies). There is no TCP state machine: a TCP mapping lives until it is idle for
    ``timeout_s`` like any other.

    Expiry: a mapping is idle once no packet in either direction used it for ``timeout_s`` on the
    run's clock (``self.clock.now_ns()``; without a clock, as in unit tests, the newest
    ``arrival_ns`` of the batch). An inbound packet for an idle mapping is dropped
    (``no_mapping``) even before the mapping is reclaimed. Reclaiming sweeps run every
    ``timeout_s / 8`` of clock time and whenever a protocol runs out of ports; an outbound packet
    of an idle mapping that was not yet reclaimed simply revives it (same external port).

    Checksums: IPv4 header, TCP/UDP (address in the pseudo-header and port) and ICMP (identifier)
    checksums are updated incrementally. An IPv4 UDP checksum of 0 ("none") stays 0.

    Drop reasons:
        ``not_ipv4``: not an IPv4 packet.
        ``unsupported``: a protocol other than TCP/UDP/ICMP echo (including ICMP errors, whose
        embedded headers are not translated, echo requests arriving from outside and echo replies
        leaving from inside).
        ``fragment``: an IPv4 fragment (no reassembly here, so the ports of later fragments are
        unknown; all fragments are dropped alike).
        ``malformed``: TCP/UDP/ICMP header cut short or invalid.
        ``no_mapping``: inbound packet not addressed to ``external_ip`` or to a port without a
        live mapping.
        ``ports_exhausted``: outbound new flow while every port of its protocol is mapped.

    ``external_ip``, ``port_min`` and ``port_max`` cannot change while running (the tables depend
    on them); ``timeout_s`` can.

    Extra counters: ``mappings`` (live now), ``mappings_created``, ``mappings_expired``.

    Example: in a pipeline, ``lan >> nat.input(0); nat[0] >> wan`` and
    ``wan >> nat.input(1); nat[1] >> lan``. Two hosts go out from the same port; a reply comes
    back to the second, and a packet to a port nobody mapped is dropped.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import NAPT
    >>> from tailgate.packet.craft import frame
    >>> nat = NAPT(external_ip="198.18.0.1", port_min=20000, port_max=29999, timeout_s=120)
    >>> out, _ = drive(nat, [frame(src_ip="10.0.0.1", sport=5000), frame(src_ip="10.0.0.2", sport=5000)])
    >>> nat.mappings()
    [('udp', '10.0.0.1', 5000, 20000), ('udp', '10.0.0.2', 5000, 20001)]
    >>> reply = frame(src_ip="192.0.2.9", dst_ip="198.18.0.1", sport=53, dport=20001)
    >>> back, _ = drive(nat, [reply, frame(dst_ip="198.18.0.1", dport=25000)], igate=1)
    >>> back[1] == [frame(src_ip="192.0.2.9", dst_ip="10.0.0.2", sport=53, dport=5000)]
    True
    >>> nat.counter("drops.no_mapping")
    1

    See also: StaticNAT (1:1 addresses, no state).
    """

    n_igates = 2
    optional_igates = (1,)
    optional_ogates = (1,)
    n_ogates = 2
    drop_reasons = ("not_ipv4", "unsupported", "fragment", "malformed", "no_mapping", "ports_exhausted")
    cost_ns = (60.0, 25.0)
    args = (
        Arg("external_ip", any_value, unit="-", help="the shared external IPv4 address"),
        Arg("port_min", int, 1024, unit="-", help="lowest external port (ICMP identifier) handed out",
            min=1, max=65535),
        Arg("port_max", int, 65535, unit="-", help="highest external port (ICMP identifier) handed out",
            min=1, max=65535),
        Arg("timeout_s", float, 300.0, unit="s", help="idle time after which a mapping expires", min=1e-6),
    )

    def setup(self) -> None:
        self._ext_ip = ipv4_arg(self.label, "external_ip", self.external_ip)
        if self.port_min > self.port_max:
            raise ArgError(f"{self.label}: port_min ({self.port_min}) must not exceed port_max ({self.port_max})")
        self._fixed = {"external_ip": self.external_ip, "port_min": self.port_min, "port_max": self.port_max}
        nports = self.port_max - self.port_min + 1
        cap = 1
        while cap < 2 * 3 * nports:
            cap <<= 1
        cap = max(cap, 64)
        self._shift = 64 - (cap.bit_length() - 1)
        self._keys = np.full(cap, -1, dtype=np.int64)
        self._vals = np.zeros(cap, dtype=np.int32)
        self._rev_ip = np.zeros((3, nports), dtype=np.int64)
        self._rev_port = np.zeros((3, nports), dtype=np.int32)
        self._rev_used = np.zeros((3, nports), dtype=np.bool_)
        self._last_seen = np.zeros((3, nports), dtype=np.int64)
        # per protocol a stack of free port indices; the top (end) is handed out first
        self._free = np.ascontiguousarray(np.tile(np.arange(nports - 1, -1, -1, dtype=np.int32), (3, 1)))
        self._n_free = np.full(3, nports, dtype=np.int64)
        self._stats = np.zeros(2, dtype=np.int64)  # created, expired
        self._next_sweep_ns = None

    def on_set(self, name: str) -> None:
        if name in ("external_ip", "port_min", "port_max"):
            setattr(self, name, self._fixed[name])  # put the old value back: the tables depend on it
            raise ArgError(f"{self.label}: argument {name!r} cannot change while running (mappings depend on it)")

    @property
    def _timeout_ns(self) -> int:
        return int(round(self.timeout_s * 1e9))

    def _now(self, batch) -> int:
        if self.clock is not None:
            return int(self.clock.now_ns())
        return int(batch.arrival_ns.max()) if len(batch) else 0

    def sweep(self, now_ns: int) -> int:
        """Reclaim the mappings idle for more than ``timeout_s`` at ``now_ns``; returns how many."""
        n = int(_expire(self._keys, self._vals, self._shift, self._rev_ip, self._rev_port, self._rev_used,
                        self._last_seen, self._free, self._n_free, np.int64(now_ns), np.int64(self._timeout_ns)))
        self._stats[1] += n
        return n

    def mappings(self) -> list[tuple[str, str, int, int]]:
        """Live mappings as ``(proto, internal ip, internal port, external port)`` (slow; for tests)."""
        import ipaddress

        names = ("tcp", "udp", "icmp")
        out = []
        for pi, idx in zip(*np.nonzero(self._rev_used)):
            out.append((names[pi], str(ipaddress.IPv4Address(int(self._rev_ip[pi, idx]))),
                        int(self._rev_port[pi, idx]), int(idx) + self.port_min))
        return out

    def extra_counters(self):
        return {
            "mappings": int(np.count_nonzero(self._rev_used)),
            "mappings_created": int(self._stats[0]),
            "mappings_expired": int(self._stats[1]),
        }

    def process(self, batch) -> None:
        now = self._now(batch)
        tmo = self._timeout_ns
        if self._next_sweep_ns is None:
            self._next_sweep_ns = now + max(tmo // 8, 1)
        elif now >= self._next_sweep_ns:
            self.sweep(now)
            self._next_sweep_ns = now + max(tmo // 8, 1)
        hv = batch.headers
        codes = np.empty(len(batch), dtype=np.int64)
        args = (batch.pool.data, hv.slots, hv.l3_off, hv.l4_off, hv.l4_end, hv.flags, hv.ip_proto)
        if self.current_igate == 0:
            _napt_out_kernel(*args, self._keys, self._vals, self._shift, self._rev_ip, self._rev_port,
                             self._rev_used, self._last_seen, self._free, self._n_free,
                             np.int64(self.port_min), np.int64(self._ext_ip), np.int64(now), np.int64(tmo),
                             codes, self._stats)
        else:
            _napt_in_kernel(*args, self._rev_ip, self._rev_port, self._rev_used, self._last_seen,
                            np.int64(self.port_min), np.int64(self._ext_ip), np.int64(now), np.int64(tmo), codes)
        self.emit_codes(batch, codes)
