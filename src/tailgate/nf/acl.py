"""ACL — first-match 5-tuple access control lists (IPv4 and IPv6).

Manual
------
A rule matches on source/destination prefix, IP protocol and source/destination port ranges; the
first rule that matches a packet decides its fate (accept, drop, or a gate number). Rules are
compiled once into flat numpy arrays (address/mask halves, protocol/mask, port ranges, action) and
matched by one numba kernel that walks the rules in order for each packet and stops at the first
match, counting hits per rule.

Field syntax (the same in rule dicts and in rules files)

=========  ======================================================================================
field      accepted values
=========  ======================================================================================
src, dst   ``*`` / ``any``; an IPv4 or IPv6 prefix ``10.0.0.0/8``, ``2001:db8::/32``; a bare
           address means a host (/32, /128). Host bits set are masked. A rule whose src and dst
           are of different families is an error.
proto      ``*`` / ``any``; ``tcp`` ``udp`` ``icmp`` ``icmpv6`` ``sctp`` ``gre`` ``esp`` ``ah``;
           or a number 0–255
sport,     ``*`` / ``any``; a port ``80``; a range ``1000-2000`` (inclusive)
dport
action     ``accept`` (also ``allow``, ``pass``: gate 0), ``drop`` (also ``deny``), or a gate
           number
=========  ======================================================================================

Matching rules, documented choices
    - An IPv4 prefix only matches IPv4 packets, an IPv6 prefix only IPv6 packets; ``*`` matches
      any packet, IP or not. A rule with ``src=*, dst=*`` and a specific protocol still needs an
      IP packet (non-IP packets have no protocol).
    - The protocol is the parser's ``ip_proto``: the IPv4 protocol, or the IPv6 next header after
      the extension headers.
    - A port constraint other than ``*`` matches only packets with a complete TCP or UDP header;
      non-first fragments (no L4 header) and ICMP never match it.
    - Packets that match no rule get ``default_action``.

Rules file
    One rule per line, six whitespace-separated fields ``SRC DST PROTO SPORT DPORT ACTION``;
    ``#`` starts a comment; blank lines are skipped::

        # src          dst            proto  sport  dport      action
        10.0.0.0/8     *              udp    *      53         accept
        *              192.0.2.0/24   tcp    *      1000-2000  2
        *              *              *      *      *          drop

    A bad line is an :class:`~tailgate.core.errors.ArgError` naming the file and line number.
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit

from tailgate.core.args import Arg, any_value
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.packet.addr import parse_ipv4, parse_ipv6
from tailgate.packet.proto import parse
from tailgate.packet.wide import slot_row

__all__ = ["ACL", "compile_rules", "load_rules", "parse_rule", "RuleTable"]

_U64 = (1 << 64) - 1
PROTO_NAMES = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58,
               "ipv6-icmp": 58, "sctp": 132}
_ANY = ("*", "any")
_ACCEPT = ("accept", "allow", "pass", "permit")
_DROP = ("drop", "deny", "reject", "block")
RULE_FIELDS = ("src", "dst", "proto", "sport", "dport", "action")
ACTION_DROP = -1  # compiled action of a drop rule (drop reason 0, "denied")


# ================================================================================================
# parsing one rule
# ================================================================================================
def _parse_addr(v, what: str):
    """-> (family 0/4/6, value int (128-bit space), mask int)."""
    if v is None:
        return 0, 0, 0
    s = str(v).strip()
    if s.lower() in _ANY:
        return 0, 0, 0
    a_s, slash, l_s = s.partition("/")
    if ":" in a_s:
        fam, bits, a = 6, 128, parse_ipv6(a_s)
    else:
        fam, bits = 4, 32
        a = parse_ipv4(a_s)
    if slash:
        if not (l_s.isdigit() and l_s.isascii() and len(l_s) <= 3) or int(l_s) > bits:
            raise ValueError(f"{what}: bad prefix length in {s!r} (0..{bits})")
        ln = int(l_s)
    else:
        ln = bits
    mask = ((1 << bits) - 1) ^ ((1 << (bits - ln)) - 1)
    return fam, a & mask, mask


def _parse_proto(v) -> int:
    """-> protocol number, or -1 for any."""
    if v is None:
        return -1
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        p = int(v)
    else:
        s = str(v).strip().lower()
        if s in _ANY:
            return -1
        if s in PROTO_NAMES:
            return PROTO_NAMES[s]
        if not (s.isdigit() and s.isascii()):
            raise ValueError(f"proto: unknown protocol {v!r} (a number 0..255, *, or {', '.join(PROTO_NAMES)})")
        p = int(s)
    if not 0 <= p <= 255:
        raise ValueError(f"proto: {p} is out of range 0..255")
    return p


def _parse_ports(v, what: str) -> tuple[int, int]:
    """-> (lo, hi); ``(-1, 65535)`` for any (also matching packets without ports)."""
    if v is None:
        return -1, 65535
    if isinstance(v, (tuple, list)) and len(v) == 2:
        lo, hi = v
    elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        lo = hi = int(v)
    else:
        s = str(v).strip()
        if s.lower() in _ANY:
            return -1, 65535
        a, dash, b = s.partition("-")
        if not (a.strip().isdigit() and (not dash or b.strip().isdigit())):
            raise ValueError(f"{what}: bad port or range {v!r} (80, 1000-2000 or *)")
        lo = int(a)
        hi = int(b) if dash else lo
    try:
        lo, hi = int(lo), int(hi)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: bad port range {v!r}") from None
    if not (0 <= lo <= 65535 and 0 <= hi <= 65535):
        raise ValueError(f"{what}: ports must be in 0..65535, got {v!r}")
    if lo > hi:
        raise ValueError(f"{what}: empty port range {v!r} (low > high)")
    return lo, hi


def _parse_action(v) -> int:
    """-> gate (>= 0) or ACTION_DROP."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        if v < 0:
            raise ValueError(f"action: gate must be >= 0, got {v}")
        return int(v)
    s = str(v).strip().lower()
    if s in _ACCEPT:
        return 0
    if s in _DROP:
        return ACTION_DROP
    if s.isdigit() and s.isascii():
        return int(s)
    raise ValueError(f"action: {v!r} is not accept, drop or a gate number")


def parse_rule(rule) -> tuple:
    """A rule dict (or a 6-field line / sequence) -> ``(fam, src, smask, dst, dmask, proto,
    sport_lo, sport_hi, dport_lo, dport_hi, action)`` with Python ints. ValueError on trouble."""
    if isinstance(rule, str):
        toks = rule.split("#", 1)[0].split()
        if len(toks) != 6:
            raise ValueError(f"expected 6 fields 'SRC DST PROTO SPORT DPORT ACTION', got {len(toks)}")
        rule = dict(zip(RULE_FIELDS, toks))
    elif isinstance(rule, (list, tuple)):
        if len(rule) != 6:
            raise ValueError(f"expected 6 fields (src, dst, proto, sport, dport, action), got {len(rule)}")
        rule = dict(zip(RULE_FIELDS, rule))
    elif not isinstance(rule, dict):
        raise ValueError(f"a rule is a dict (or a 6-field line), got {rule!r}")
    unknown = [k for k in rule if k not in RULE_FIELDS]
    if unknown:
        raise ValueError(f"unknown rule field {unknown[0]!r} (fields: {', '.join(RULE_FIELDS)})")
    if "action" not in rule:
        raise ValueError("the rule has no 'action' (accept, drop or a gate number)")
    sf, s, sm = _parse_addr(rule.get("src"), "src")
    df, d, dm = _parse_addr(rule.get("dst"), "dst")
    if sf and df and sf != df:
        raise ValueError(f"src is IPv{sf} but dst is IPv{df}")
    fam = sf or df
    proto = _parse_proto(rule.get("proto"))
    slo, shi = _parse_ports(rule.get("sport"), "sport")
    dlo, dhi = _parse_ports(rule.get("dport"), "dport")
    return fam, s, sm, d, dm, proto, slo, shi, dlo, dhi, _parse_action(rule["action"])


def load_rules(path) -> tuple[list[tuple], list[int]]:
    """Read a rules file: ``(parsed rules, line numbers)``. ArgError ``"FILE line N: reason"``."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ArgError(f"{path}: cannot read rules file: {getattr(e, 'strerror', None) or e}") from None
    rules, lines = [], []
    for i, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0]
        if not body.strip():
            continue
        try:
            rules.append(parse_rule(body))
        except ValueError as e:
            raise ArgError(f"{path} line {i}: {e}") from None
        lines.append(i)
    return rules, lines


# ================================================================================================
# compiled table and the matching kernel
# ================================================================================================
class RuleTable:
    """Rules compiled to flat arrays (one entry per rule, in order).

    ``fam`` (int8: 0 any, 4, 6), ``src_hi, src_lo, smask_hi, smask_lo, dst_hi, dst_lo, dmask_hi,
    dmask_lo`` (uint64; an IPv4 address sits in the low 32 bits of ``*_lo``), ``proto`` and
    ``proto_mask`` (int64; mask 0 = any, else 0x1FF so that a non-IP packet's 0x100 never
    matches), ``sport_lo, sport_hi, dport_lo, dport_hi`` (int64; ``*`` is -1..65535 so that it
    also matches packets without ports, which read as -1), ``action`` (int64: gate, or -1 drop).
    """

    def __init__(self, parsed: list[tuple]) -> None:
        n = len(parsed)
        cols = list(zip(*parsed)) if n else [()] * 11
        fam, s, sm, d, dm, proto, slo, shi, dlo, dhi, act = cols
        self.n = n
        self.fam = np.array(fam, dtype=np.int8)
        self.src_hi, self.src_lo = _split(s)
        self.smask_hi, self.smask_lo = _split(sm)
        self.dst_hi, self.dst_lo = _split(d)
        self.dmask_hi, self.dmask_lo = _split(dm)
        p = np.array(proto, dtype=np.int64)
        self.proto = np.maximum(p, 0)
        self.proto_mask = np.where(p < 0, 0, 0x1FF).astype(np.int64)
        self.sport_lo = np.array(slo, dtype=np.int64)
        self.sport_hi = np.array(shi, dtype=np.int64)
        self.dport_lo = np.array(dlo, dtype=np.int64)
        self.dport_hi = np.array(dhi, dtype=np.int64)
        self.action = np.array(act, dtype=np.int64)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The matcher's form: ``(ri, ru)``, one row per rule. ``ri`` int64 columns: fam, proto,
        proto_mask, sport_lo, sport_hi, dport_lo, dport_hi, action; ``ru`` uint64 columns: src_hi,
        src_lo, smask_hi, smask_lo, dst_hi, dst_lo, dmask_hi, dmask_lo."""
        ri = np.stack([self.fam.astype(np.int64), self.proto, self.proto_mask, self.sport_lo, self.sport_hi,
                       self.dport_lo, self.dport_hi, self.action], axis=1).reshape(self.n, 8)
        ru = np.stack([self.src_hi, self.src_lo, self.smask_hi, self.smask_lo, self.dst_hi, self.dst_lo,
                       self.dmask_hi, self.dmask_lo], axis=1).reshape(self.n, 8)
        return np.ascontiguousarray(ri, np.int64), np.ascontiguousarray(ru, np.uint64)

    def match(self, fam, src_hi, src_lo, dst_hi, dst_lo, proto, sport, dport) -> np.ndarray:
        """First matching rule per packet (-1: none), for packets given as arrays (tests, tools).

        ``fam`` 0/4/6 (0 non-IP), addresses as uint64 halves (IPv4 in the low 32 bits of ``lo``),
        ``proto`` (0x100 for non-IP), ``sport``/``dport`` (-1 without ports)."""
        n = len(fam)
        out = np.empty(n, np.int64)
        _match_arrays(
            np.asarray(fam, np.int64), np.asarray(src_hi, np.uint64), np.asarray(src_lo, np.uint64),
            np.asarray(dst_hi, np.uint64), np.asarray(dst_lo, np.uint64), np.asarray(proto, np.int64),
            np.asarray(sport, np.int64), np.asarray(dport, np.int64), *self.arrays(), out,
        )
        return out


def _split(vals) -> tuple[np.ndarray, np.ndarray]:
    hi = np.array([v >> 64 for v in vals], dtype=np.uint64)
    lo = np.array([v & _U64 for v in vals], dtype=np.uint64)
    return hi, lo


def compile_rules(rules) -> RuleTable:
    """Rule dicts (or 6-field lines) -> :class:`RuleTable`; ValueError ``"rule i: reason"``."""
    parsed = []
    for i, r in enumerate(rules):
        try:
            parsed.append(parse_rule(r))
        except ValueError as e:
            raise ValueError(f"rule {i}: {e}") from None
    return RuleTable(parsed)


@njit(cache=True, inline="always")
def _first_match(ri, ru, pf, sh, sl, dh, dl, pp, sp, dp):
    """Index of the first rule matching the packet's fields, or -1 (rows of ri/ru: see RuleTable.arrays)."""
    for r in range(ri.shape[0]):
        f = ri[r, 0]
        if f != 0 and f != pf:
            continue
        if (pp & ri[r, 2]) != ri[r, 1]:
            continue
        if sp < ri[r, 3] or sp > ri[r, 4] or dp < ri[r, 5] or dp > ri[r, 6]:
            continue
        if (sh & ru[r, 2]) != ru[r, 0] or (sl & ru[r, 3]) != ru[r, 1]:
            continue
        if (dh & ru[r, 6]) != ru[r, 4] or (dl & ru[r, 7]) != ru[r, 5]:
            continue
        return r
    return -1


@njit(cache=True)
def _match_arrays(pf, sh, sl, dh, dl, pp, sp, dp, ri, ru, out):
    for k in range(pf.shape[0]):
        out[k] = _first_match(ri, ru, pf[k], sh[k], sl[k], dh[k], dl[k], pp[k], sp[k], dp[k])


@njit(cache=True, inline="always")
def _be(row, o, nbytes):
    v = np.uint64(0)
    for i in range(nbytes):
        v = (v << np.uint64(8)) | np.uint64(row[o + i])
    return v


@njit(cache=True)
def _acl_kernel(data, slots, l3_off, l4_off, ip_proto, ri, ru, default_code, hits):
    """Match every packet, count hits (``hits[n_rules]`` counts the default); returns the codes
    (``Module.emit_codes``: a gate, -1 denied, -2 no_match).

    Family from the version nibble at ``l3_off`` (the parser sets l3_off only for a complete
    IPv4/IPv6 header whose version matches the ethertype). Ports are read where ``l4_off >= 0``
    and the protocol is TCP or UDP (l4_off is set only for complete L4 headers)."""
    n_rules = ri.shape[0]
    n = slots.shape[0]
    codes = np.empty(n, np.int32)
    z = np.uint64(0)
    for k in range(n):
        row = slot_row(data, slots[k])
        o = l3_off[k]
        pf = 0
        sh = z
        sl = z
        dh = z
        dl = z
        pp = 0x100
        sp = -1
        dp = -1
        if o >= 0:
            v = row[o] >> 4
            if v == 4:
                pf = 4
                sl = _be(row, o + 12, 4)
                dl = _be(row, o + 16, 4)
            elif v == 6:
                pf = 6
                sh = _be(row, o + 8, 8)
                sl = _be(row, o + 16, 8)
                dh = _be(row, o + 24, 8)
                dl = _be(row, o + 32, 8)
            if pf != 0:
                pp = np.int64(ip_proto[k])
                o4 = l4_off[k]
                if o4 >= 0 and (pp == 6 or pp == 17):
                    sp = (np.int64(row[o4]) << 8) | np.int64(row[o4 + 1])
                    dp = (np.int64(row[o4 + 2]) << 8) | np.int64(row[o4 + 3])
        r = _first_match(ri, ru, pf, sh, sl, dh, dl, pp, sp, dp)
        if r >= 0:
            hits[r] += 1
            a = ri[r, 7]
            codes[k] = a if a >= 0 else -1
        else:
            hits[n_rules] += 1
            codes[k] = default_code
    return codes


# ================================================================================================
# the module
# ================================================================================================
class ACL(Module):
    """ACL — first-match access control on the 5-tuple (IPv4 and IPv6).

    Gates: 1 in / ``gates`` out. Each packet takes the action of the first rule that matches it
    (see the module manual for field syntax and matching details): ``accept`` sends it to gate 0,
    a number sends it to that gate, ``drop`` drops it (reason ``denied``). Packets no rule matches
    get ``default_action``.

    Rules come inline (``rules``: ``[dict(src="10.0.0.0/8", dst="*", proto="udp", sport="*",
    dport="1000-2000", action="accept"), ...]``, omitted fields are ``*``, ``action`` is
    required; errors name the rule's index) or from a file (``rules_file``: one ``SRC DST PROTO
    SPORT DPORT ACTION`` per line, ``#`` comments; errors name the file and line). Give exactly
    one; an empty list is allowed (everything takes the default). An action naming a gate >=
    ``gates`` is an error.

    Drop reasons: ``denied`` (a drop rule matched), ``no_match`` (no rule matched and the default
    action is drop).

    Counters: ``hits.I`` packets that matched rule ``I`` first (0-based, in rule order), and
    ``hits.default``. The array is ``acl.hits`` (the last entry is the default). Knobs: ``rules``,
    ``rules_file`` and ``default_action`` may be changed with ``set`` (recompiled; hit counters
    restart; the gate count stays; a change that fails leaves the old rules in place).

    Cost model: ``(60.0, 35.0)`` ns — T0 + T1·batch for a table of about ten rules (matching is
    linear in the rules a packet passes before its first match).

    Example: in a pipeline, ``src >> acl; acl[0] >> out; acl[1] >> inspect``.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import ACL
    >>> from tailgate.packet.craft import frame
    >>> acl = ACL(rules=[dict(src="10.0.0.0/8", proto="udp", dport=53, action="accept"),
    ...                  dict(dst="192.0.2.0/24", proto="tcp", dport="1000-2000", action=1),
    ...                  dict(proto="icmp", action="drop")],
    ...           default_action="accept")
    >>> out, _ = drive(acl, [frame(dport=53), frame(proto="tcp", dst_ip="192.0.2.9", dport=1500),
    ...                      frame(proto="icmp"), frame(dport=80)])
    >>> len(out[0]), len(out[1]), acl.counter("drops.denied")
    (2, 1, 1)
    >>> acl.hits.tolist()                   # rule 0, 1, 2, then the default
    [1, 1, 1, 1]

    Related: :class:`~tailgate.nf.classify.ExactMatch`, :class:`~tailgate.nf.lookup.IPv4Lookup`,
    :class:`~tailgate.nf.classify.HashSplit`.
    """

    drop_reasons = ("denied", "no_match")
    cost_ns = (60.0, 35.0)
    args = (
        Arg("rules", any_value, None, unit="-", help="list of rule dicts: src, dst, proto, sport, dport, action"),
        Arg("rules_file", str, None, unit="-", help="rules file: one 'SRC DST PROTO SPORT DPORT ACTION' per line"),
        Arg("default_action", any_value, "drop", unit="-",
            help="for packets no rule matches: accept, drop (no_match) or a gate number"),
        Arg("gates", int, None, unit="-", min=1, max=65535, help="output gates; None = largest gate used + 1"),
    )

    def setup(self) -> None:
        self.rebuild_or_roll_back(self._compile)
        self.n_ogates = self._n_gates

    def _compile(self) -> None:
        if (self.rules is None) == (self.rules_file is None):
            raise ArgError(f"{self.label}: give exactly one of 'rules' (a list of dicts) or 'rules_file'")
        if self.rules_file is not None:
            try:
                parsed, lines = load_rules(self.rules_file)
            except ArgError as e:
                raise ArgError(f"{self.label}: {e}") from None
            where = [f"{self.rules_file} line {ln}" for ln in lines]
        else:
            rules = self.rules
            if isinstance(rules, dict) or isinstance(rules, str):
                rules = [rules]
            try:
                rules = list(rules)
            except TypeError:
                raise ArgError(f"{self.label}: argument 'rules' must be a list of rule dicts, got {rules!r}") from None
            parsed = []
            for i, r in enumerate(rules):
                try:
                    parsed.append(parse_rule(r))
                except ValueError as e:
                    raise ArgError(f"{self.label}: rules[{i}]: {e}") from None
            where = [f"rules[{i}]" for i in range(len(parsed))]
        try:
            default = _parse_action(self.default_action)
        except ValueError as e:
            raise ArgError(f"{self.label}: default_action: {e}") from None
        gates_used = [p[-1] for p in parsed if p[-1] >= 0] + ([default] if default >= 0 else [])
        top = max(gates_used) + 1 if gates_used else 1
        n_gates = self.gates if self.gates is not None else top
        if self.n_ogates_built is not None:
            n_gates = self.n_ogates_built
        for w, p in zip(where, parsed):
            if p[-1] >= n_gates:
                raise ArgError(
                    f"{self.label}: {w}: gate {p[-1]} is out of range (the module has {n_gates} output "
                    f"gate{'s' if n_gates != 1 else ''}: 0..{n_gates - 1})"
                )
        if default >= n_gates:
            raise ArgError(
                f"{self.label}: default_action gate {default} is out of range (the module has {n_gates} output gates)"
            )
        self.table = RuleTable(parsed)
        self._ri, self._ru = self.table.arrays()
        self._default_code = default if default >= 0 else -2
        self._n_gates = n_gates
        self.hits = np.zeros(self.table.n + 1, dtype=np.int64)

    def on_set(self, name: str) -> None:
        if name in ("rules", "rules_file", "default_action", "gates"):
            self.rebuild_or_roll_back(self._compile, changed=name, one_of=("rules", "rules_file"))

    def process(self, batch) -> None:
        hv = parse(batch)  # = batch.headers (cached on the batch)
        codes = _acl_kernel(
            batch.pool.data, hv.slots, hv.l3_off, hv.l4_off, hv.ip_proto, self._ri, self._ru, self._default_code,
            self.hits,
        )
        self.emit_codes(batch, codes)

    def reset_counters(self) -> None:
        super().reset_counters()
        if hasattr(self, "hits"):
            self.hits[:] = 0

    def extra_counters(self) -> dict:
        h = self.hits.tolist()
        c = {f"hits.{i}": v for i, v in enumerate(h[:-1])}
        c["hits.default"] = h[-1]
        return c
