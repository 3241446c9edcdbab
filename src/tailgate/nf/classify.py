"""Classification by one header field (ExactMatch) and by flow hash (HashSplit).

Manual
------
:class:`ExactMatch` sends each packet to the gate its value of one header field maps to; values
are kept as a sorted key array and looked up with a binary search (one numba call per batch;
``Module.emit_codes`` then splits the batch). :class:`HashSplit` spreads flows over gates by the parser's 5-tuple
``flow_hash``, so that every packet of a flow takes the same gate.

Fields (``ExactMatch(field=...)``): every integer field of the protocol view
(:mod:`tailgate.packet.proto`), by its dotted path, plus a few parser columns:

- ``eth.dst eth.src eth.type``; ``vlan.vid vlan.pcp vlan.dei vlan.inner_vid``
- ``ipv4.src ipv4.dst ipv4.proto ipv4.tos ipv4.ttl ipv4.ident ipv4.total_len ipv4.flags
  ipv4.frag_off ipv4.ihl ipv4.version ipv4.checksum``
- ``ipv6.src_hi ipv6.src_lo ipv6.dst_hi ipv6.dst_lo ipv6.next_header ipv6.hop_limit
  ipv6.traffic_class ipv6.flow_label ipv6.payload_len ipv6.version``
- ``udp.sport udp.dport udp.len udp.checksum``; ``tcp.sport tcp.dport tcp.flags tcp.seq tcp.ack
  tcp.window tcp.data_off tcp.checksum``; ``icmp.type icmp.code icmp.checksum``
- ``vxlan.vni vxlan.flags``; ``gtpu.teid gtpu.msg_type gtpu.flags gtpu.length``
- ``sport dport`` (TCP or UDP); ``ethertype`` (after VLAN tags), ``ip_proto`` (IPv4 protocol /
  IPv6 final next header), ``n_vlan``

A packet that lacks the field's header (``vlan.vid`` on an untagged frame, ``udp.dport`` on TCP,
``dport`` on ICMP, ...) never matches a rule, even a rule for 0: it takes the default.
"""

from __future__ import annotations

import re

import numpy as np
from numba import njit

from tailgate.core.args import Arg, any_value
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.nf.acl import PROTO_NAMES
from tailgate.packet.addr import parse_ipv4
from tailgate.packet.proto import parse

__all__ = ["ExactMatch", "HashSplit", "FIELDS", "parse_field_value"]

# field -> (bits, presence, value kind). Presence names a header whose absence means "no match".
_HDR_FIELDS = {
    "eth": {"dst": 48, "src": 48, "type": 16},
    "vlan": {"vid": 12, "pcp": 3, "dei": 1},
    "ipv4": {"version": 4, "ihl": 4, "tos": 8, "total_len": 16, "ident": 16, "flags": 3, "frag_off": 13, "ttl": 8,
             "proto": 8, "checksum": 16, "src": 32, "dst": 32},
    "ipv6": {"version": 4, "traffic_class": 8, "flow_label": 20, "payload_len": 16, "next_header": 8,
             "hop_limit": 8, "src_hi": 64, "src_lo": 64, "dst_hi": 64, "dst_lo": 64},
    "udp": {"sport": 16, "dport": 16, "len": 16, "checksum": 16},
    "tcp": {"sport": 16, "dport": 16, "seq": 32, "ack": 32, "data_off": 4, "flags": 9, "window": 16, "checksum": 16},
    "icmp": {"type": 8, "code": 8, "checksum": 16},
    "vxlan": {"flags": 8, "vni": 24},
    "gtpu": {"flags": 8, "msg_type": 8, "length": 16, "teid": 32},
}
FIELDS: dict[str, tuple[int, str]] = {}
for _h, _fs in _HDR_FIELDS.items():
    for _f, _bits in _fs.items():
        FIELDS[f"{_h}.{_f}"] = (_bits, _h)
FIELDS["vlan.inner_vid"] = (12, "vlan2")
FIELDS.update({"sport": (16, "ports"), "dport": (16, "ports"), "ethertype": (16, "eth"), "ip_proto": (8, "ip"),
               "n_vlan": (2, "eth")})
del _h, _fs, _f, _bits

_MAC_RE = re.compile(r"^[0-9a-fA-F]{1,2}([:-])[0-9a-fA-F]{1,2}(\1[0-9a-fA-F]{1,2}){4}$")
_PROTO_FIELDS = ("ipv4.proto", "ipv6.next_header", "ip_proto")
_ETHERTYPES = {"ipv4": 0x0800, "ip": 0x0800, "arp": 0x0806, "ipv6": 0x86DD, "vlan": 0x8100, "8021q": 0x8100,
               "qinq": 0x88A8, "8021ad": 0x88A8, "mpls": 0x8847, "lldp": 0x88CC}
_ETHERTYPE_FIELDS = ("eth.type", "ethertype")


def parse_field_value(field: str, value) -> int:
    """A rule key for ``field`` -> int: an int; a numeric string (``"0x0800"`` too); a MAC
    ``"aa:bb:cc:dd:ee:ff"``; an IPv4 address ``"10.0.0.1"``; a protocol name for protocol fields;
    an ethertype name (``ipv4``, ``arp``, ``ipv6``, ``vlan`` ...) for ethertype fields.
    ValueError if it does not parse or does not fit the field's width."""
    bits = FIELDS[field][0]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = int(value)
    elif isinstance(value, str):
        s = value.strip()
        low = s.lower()
        if _MAC_RE.match(s):
            v = int(re.sub(r"[:-]", "", "".join(p.zfill(2) for p in re.split(r"[:-]", s))), 16)
        elif s.count(".") == 3:
            v = parse_ipv4(s)
        elif field in _PROTO_FIELDS and low in PROTO_NAMES:
            v = PROTO_NAMES[low]
        elif field in _ETHERTYPE_FIELDS and low in _ETHERTYPES:
            v = _ETHERTYPES[low]
        else:
            try:
                v = int(s.replace("_", ""), 0)
            except ValueError:
                raise ValueError(f"cannot read {value!r} as a value of {field}") from None
    else:
        raise ValueError(f"cannot read {value!r} as a value of {field} (an int or a string)")
    if not 0 <= v < (1 << bits):
        raise ValueError(f"{value!r} does not fit {field} ({bits} bits)")
    return v


def _presence(hv, what: str) -> np.ndarray:
    if what == "eth":
        return hv.l2_off >= 0
    if what == "vlan":
        return hv.n_vlan >= 1
    if what == "vlan2":
        return hv.n_vlan >= 2
    if what == "ip":
        return hv.l3_off >= 0
    if what == "ports":
        return hv.is_tcp | hv.is_udp
    return getattr(hv, "is_" + what)


@njit(cache=True)
def _exact_kernel(slots, vals, present, keys, gates, default_code):
    n = slots.shape[0]
    codes = np.empty(n, np.int32)
    nk = keys.shape[0]
    for k in range(n):
        c = default_code
        if present[k] and nk:
            v = np.uint64(vals[k])
            i = np.searchsorted(keys, v)
            if i < nk and keys[i] == v:
                c = gates[i]
        codes[k] = c
    return codes


@njit(cache=True)
def _hash_split_kernel(slots, h, l3_off, n_gates):
    """Gate ``h % n_gates`` for IP packets (``l3_off >= 0``), 0 for the others (the codes)."""
    n = slots.shape[0]
    codes = np.empty(n, np.int32)
    for k in range(n):
        codes[k] = np.int32(np.int64(h[k]) % n_gates) if l3_off[k] >= 0 else 0
    return codes


class ExactMatch(Module):
    """ExactMatch — sends each packet to the gate that its value of one header field maps to.

    Gates: 1 in / ``gates`` out. The lookup is a binary search in the sorted rule keys (one numba
    call per batch).

    ``field`` is a dotted path of the protocol view: ``eth.dst``, ``eth.type``, ``vlan.vid``,
    ``ipv4.dst``, ``ipv4.src``, ``ipv4.proto``, ``udp.dport``, ``tcp.dport``, ``dport``,
    ``sport``, ``ip_proto``, ... (the full list is in the module manual and in
    ``tailgate.nf.classify.FIELDS``); an unknown name is an error that lists the valid ones.
    ``rules`` maps values to gates: ints, numeric strings (``"0x0800"``), MAC strings
    (``"02:00:00:00:00:01"``), IPv4 strings, protocol names for protocol fields (``"udp"``) and
    ethertype names for ethertype fields (``"arp"``); a list of ``(value, gate)`` pairs works
    too. Two keys with the same value are an error. Packets that lack the field's header take
    ``default_gate`` too.

    Drop reason: ``no_match``.

    Counters: ``rules``. Knobs: every argument may be changed with ``set`` (recompiled; the gate
    count stays; a change that fails leaves the old rules in place).

    Cost model: ``(45.0, 12.0)`` ns — one field read and one binary search per packet.

    Example: in a pipeline, ``src >> em; em[0] >> host_a; em[1] >> host_b; em[2] >> flood``.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import ExactMatch
    >>> from tailgate.packet.craft import frame
    >>> em = ExactMatch(field="eth.dst", rules={"02:00:00:00:00:01": 0, "02:00:00:00:00:02": 1},
    ...                 default_gate=2)
    >>> macs = ["02:00:00:00:00:02", "02:00:00:00:00:01", "02:00:00:00:00:99", "02:00:00:00:00:02"]
    >>> out, _ = drive(em, [frame(dst_mac=m) for m in macs])
    >>> {gate: len(leaving) for gate, leaving in sorted(out.items())}
    {0: 1, 1: 2, 2: 1}

    Related: :class:`HashSplit`, :class:`~tailgate.nf.acl.ACL`, :class:`~tailgate.nf.lookup.IPv4Lookup`
    (prefixes rather than exact values).
    """

    drop_reasons = ("no_match",)
    cost_ns = (45.0, 12.0)
    args = (
        Arg("field", str, unit="-", help="header field path, e.g. eth.dst, ipv4.dst, udp.dport"),
        Arg("rules", any_value, unit="-", help="{value: gate}, or a list of (value, gate) pairs"),
        Arg("default_gate", int, None, unit="-", min=0, help="gate for unmatched packets; None drops them (no_match)"),
        Arg("gates", int, None, unit="-", min=1, max=65535, help="output gates; None = largest gate used + 1"),
    )

    def setup(self) -> None:
        self.rebuild_or_roll_back(self._compile)
        self.n_ogates = self._n_gates

    def _compile(self) -> None:
        field = self.field.strip()
        if field not in FIELDS:
            raise ArgError(f"{self.label}: unknown field {self.field!r}; valid fields: {', '.join(FIELDS)}")
        rules = self.rules
        if isinstance(rules, dict):
            items = list(rules.items())
        else:
            try:
                items = [tuple(x) for x in rules]
                if any(len(x) != 2 for x in items):
                    raise TypeError
            except TypeError:
                raise ArgError(
                    f"{self.label}: argument 'rules' must be a dict {{value: gate}}, got {rules!r}"
                ) from None
        keys, gates, seen = [], [], {}
        for value, gate in items:
            try:
                v = parse_field_value(field, value)
            except ValueError as e:
                raise ArgError(f"{self.label}: rules: {e}") from None
            if isinstance(gate, bool) or not isinstance(gate, (int, np.integer)) or gate < 0:
                raise ArgError(f"{self.label}: rules: gate for {value!r} must be a non-negative int, got {gate!r}")
            if v in seen:
                raise ArgError(f"{self.label}: rules: {value!r} and {seen[v]!r} are the same {field} value")
            seen[v] = value
            keys.append(v)
            gates.append(int(gate))
        used = gates + ([self.default_gate] if self.default_gate is not None else [])
        top = max(used) + 1 if used else 1
        n_gates = self.gates if self.gates is not None else top
        if self.n_ogates_built is not None:
            n_gates = self.n_ogates_built
        if top > n_gates:
            raise ArgError(f"{self.label}: gate {top - 1} is out of range (the module has {n_gates} output gates)")
        # derived state only from here, where nothing can fail: a failed knob change keeps it all
        order = np.argsort(np.array(keys, dtype=np.uint64), kind="stable")
        self._keys = np.array(keys, dtype=np.uint64)[order]
        self._gates = np.array(gates, dtype=np.int32)[order]
        self._default_code = self.default_gate if self.default_gate is not None else -1
        self._n_gates = n_gates
        self._field = field
        self._path = field.split(".")
        self._pres = FIELDS[field][1]

    def on_set(self, name: str) -> None:
        if name in ("field", "rules", "default_gate", "gates"):
            self.rebuild_or_roll_back(self._compile)

    def values(self, batch) -> tuple[np.ndarray, np.ndarray]:
        """``(values, present)`` of the field for every packet of ``batch``."""
        hv = parse(batch)  # = batch.headers (cached on the batch)
        obj = hv
        for part in self._path:
            obj = getattr(obj, part)
        return np.asarray(obj), _presence(hv, self._pres)

    def process(self, batch) -> None:
        vals, present = self.values(batch)
        self.emit_codes(batch, _exact_kernel(batch.idx, vals, present, self._keys, self._gates, self._default_code))

    def extra_counters(self) -> dict:
        return {"rules": int(len(self._keys))}


class HashSplit(Module):
    """HashSplit — spreads flows over its output gates by a hash of the 5-tuple.

    Gates: 1 in / ``gates`` out. Gate = ``flow_hash(seed) % gates``, where ``flow_hash`` is the
    parser's 32-bit hash of (src ip, dst ip, ip proto, sport, dport) for IPv4 and IPv6 (ports 0
    unless TCP/UDP). Every packet of a flow takes the same gate, and many flows spread about
    evenly. Not symmetric: the two directions of a connection may take different gates.
    Non-IP packets (ARP, LLDP, truncated frames) all go to gate 0. Different seeds give
    independent spreads.

    Cost model: ``(40.0, 9.0)`` ns — one hash per packet.

    Example: in a pipeline, ``src >> lb`` and ``lb[g] >> workers[g]`` for each gate. 64 flows,
    each sent twice, spread over 4 gates; both packets of a flow take the same one.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import HashSplit
    >>> from tailgate.packet.craft import frame
    >>> lb = HashSplit(gates=4, seed=7)
    >>> flows = [frame(sport=port) for port in range(1000, 1064)]
    >>> out, _ = drive(lb, flows + flows)
    >>> sorted(len(leaving) for leaving in out.values())
    [26, 28, 36, 38]
    >>> all(leaving.count(f) % 2 == 0 for leaving in out.values() for f in leaving)
    True

    Related: :class:`~tailgate.nf.split.RandomSplit` (per packet, not per flow),
    :class:`ExactMatch`.
    """

    cost_ns = (40.0, 9.0)
    args = (
        Arg("gates", int, 2, unit="-", min=1, max=4096, help="output gates"),
        Arg("seed", int, 0, unit="-", min=0, max=0xFFFFFFFF, help="hash seed (32 bits)"),
    )

    def setup(self) -> None:
        self.n_ogates = self.gates

    def on_set(self, name: str) -> None:
        if name == "gates" and self.gates != self.n_ogates_built:
            n = self.n_ogates_built
            self.gates = n
            raise ArgError(f"{self.label}: the gate count cannot change while running (it has {n})")

    def gates_of(self, batch) -> np.ndarray:
        """The gate of every packet of ``batch`` (int32)."""
        hv = parse(batch)  # = batch.headers (cached on the batch)
        h = hv.flow_hash(self.seed)
        return np.where(hv.l3_off >= 0, h % np.uint32(self.gates), 0).astype(np.int32)

    def process(self, batch) -> None:
        if self.gates == 1:
            self.emit(batch, 0)
            return
        hv = parse(batch)  # = batch.headers (cached on the batch)
        self.emit_codes(batch, _hash_split_kernel(hv.slots, hv.flow_hash(self.seed), hv.l3_off, self.gates))
