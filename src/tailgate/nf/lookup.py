"""Longest-prefix-match routing: route files, the DIR-24-8 IPv4 table, a binary-search-on-lengths
IPv6 table, and the IPv4Lookup / IPv6Lookup modules.

Manual
------
Route files
    :func:`load_routes` reads a text file with one route per line::

        # destination      gate
        10.0.0.0/8          1
        10.1.0.0/16         2        # comments may follow a route
        0.0.0.0/0           0

    ``PREFIX/LEN GATE`` separated by blanks; ``#`` starts a comment; blank lines are skipped. The
    length is required (``/32`` or ``/128`` for a host route). A prefix whose host bits are set
    (``10.1.2.3/8``) is *accepted and masked* (it means ``10.0.0.0/8``), as routers do. The same
    prefix listed twice: the later line wins. Any other problem (a bad address, a length out of
    range, a gate that is not a non-negative integer, a wrong number of fields) is an
    :class:`~tailgate.core.errors.ArgError` naming the file and the line number. Parsing is one
    numba pass over the file bytes (IPv6 addresses go through ``inet_pton``); 100k routes load in
    a few tens of milliseconds.

Tables
    :class:`Dir24_8` (IPv4) — DPDK-style DIR-24-8: ``tbl24`` holds 2^24 uint16 entries indexed by
    the top 24 address bits; an entry is 0 (no route), ``gate + 1`` (bit 15 clear), or
    ``0x8000 | group`` pointing at a 256-entry ``tbl8`` group that resolves the last 8 bits for
    /25–/32 routes. A lookup is one or two memory reads. Built in one numba pass over the routes
    sorted by length (longest prefix wins whatever the input order). Limits: gates 0–32766 and
    32768 tbl8 groups (distinct /24s that hold /25–/32 routes).

    :class:`IPv6LPM` — Waldvogel et al. binary search on prefix lengths: one open-addressing hash
    table keyed by (length, masked address), a binary search over the distinct prefix lengths of
    the table, *markers* left on the search path of every prefix so that the search goes toward
    longer lengths, and each entry's precomputed best matching prefix (so a marker never leads
    the search astray). A lookup costs about log2(number of distinct lengths) hash probes.

Modules
    :class:`IPv4Lookup` and :class:`IPv6Lookup` (see their docstrings). Each ``process`` is one
    numba kernel over the batch (headers parsed once and cached on the batch) that reads the
    destination address straight from ``pool.data`` at ``l3_off``, writes each packet's fate into
    a buffer the module keeps between calls, and returns the gate when every packet takes the same
    one. Then the batch is passed on whole (``emit``, keeping its parsed headers); otherwise
    ``Module.emit_codes`` splits it (one numba counting sort, the project's only one).
    IPv4: the kernel makes two passes, first gathering every destination into a uint32 buffer,
    then probing tbl24/tbl8 in a tight loop, so that the table loads of different packets
    overlap.
"""

from __future__ import annotations

import os
import socket
import stat

import numpy as np
from numba import njit

from tailgate.core.args import Arg, any_value
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.packet.addr import parse_ipv4, parse_ipv6
from tailgate.packet.pcap import file_kind
from tailgate.packet.proto import C_L3, C_SLOT, hdr_cols
from tailgate.packet.wide import ld_be32, slot_row

__all__ = [
    "parse_prefix",
    "load_routes",
    "parse_routes_text",
    "routes_from_list",
    "Dir24_8",
    "IPv6LPM",
    "IPv4Lookup",
    "IPv6Lookup",
]

_U64 = (1 << 64) - 1
MAX_GATE_V4 = 0x7FFE
N_TBL8_GROUPS = 0x8000


# ================================================================================================
# addresses and prefixes (Python side, one value at a time)
# ================================================================================================
def _family_bits(family) -> int:
    if family in (4, "4", "ipv4", "v4", "inet"):
        return 32
    if family in (6, "6", "ipv6", "v6", "inet6"):
        return 128
    raise ValueError(f"family must be 4 or 6, got {family!r}")


def parse_prefix(s: str, family=4) -> tuple[int, int, bool]:
    """``"10.1.0.0/16"`` -> ``(address int masked to the length, length, host_bits_were_set)``.

    The ``/LEN`` part is required. ValueError with a one-line reason on any problem.
    """
    bits = _family_bits(family)
    addr_s, slash, len_s = s.partition("/")
    if not slash:
        raise ValueError(f"prefix {s!r} has no /LENGTH")
    a = parse_ipv4(addr_s) if bits == 32 else parse_ipv6(addr_s)
    if not (len_s.isdigit() and len_s.isascii() and len(len_s) <= 3):
        raise ValueError(f"bad prefix length {len_s!r} in {s!r}")
    ln = int(len_s)
    if ln > bits:
        raise ValueError(f"prefix length {ln} is out of range 0..{bits} in {s!r}")
    mask = ((1 << bits) - 1) ^ ((1 << (bits - ln)) - 1)
    return a & mask, ln, (a & ~mask) != 0


def _parse_gate(s: str) -> int:
    if not (s.isdigit() and s.isascii() and len(s) <= 9):
        raise ValueError(f"bad gate {s!r} (a non-negative integer)")
    return int(s)


def _parse_route_line(line: str, family) -> tuple[int, int, int]:
    """One route line (comment already removed) -> (prefix, length, gate); ValueError on trouble."""
    toks = line.split()
    if len(toks) != 2:
        raise ValueError(f"expected 'PREFIX/LEN GATE', got {len(toks)} field(s): {line.strip()!r}")
    p, ln, _ = parse_prefix(toks[0], family)
    return p, ln, _parse_gate(toks[1])


# ================================================================================================
# fast route-file parsing (numba over the raw bytes)
# ================================================================================================
@njit(cache=True, inline="always")
def _is_blank(c):
    return c == 32 or c == 9 or c == 13 or c == 11 or c == 12


@njit(cache=True)
def _scan_lines(buf):
    """Tokenize: for each line with at least one token, its line number, the first two tokens'
    [start, end) and the token count."""
    n = buf.shape[0]
    nl = 1
    for i in range(n):
        if buf[i] == 10:
            nl += 1
    lineno = np.empty(nl, np.int64)
    t0s = np.empty(nl, np.int64)
    t0e = np.empty(nl, np.int64)
    t1s = np.empty(nl, np.int64)
    t1e = np.empty(nl, np.int64)
    ntok = np.empty(nl, np.int64)
    r = 0
    line = 1
    i = 0
    while i <= n:
        j = i
        while j < n and buf[j] != 10:
            j += 1
        e = i
        while e < j and buf[e] != 35:  # '#'
            e += 1
        k = i
        cnt = 0
        a0 = 0
        b0 = 0
        a1 = 0
        b1 = 0
        while True:
            while k < e and _is_blank(buf[k]):
                k += 1
            if k >= e:
                break
            s = k
            while k < e and not _is_blank(buf[k]):
                k += 1
            if cnt == 0:
                a0 = s
                b0 = k
            elif cnt == 1:
                a1 = s
                b1 = k
            cnt += 1
        if cnt > 0:
            lineno[r] = line
            t0s[r] = a0
            t0e[r] = b0
            t1s[r] = a1
            t1e[r] = b1
            ntok[r] = cnt
            r += 1
        line += 1
        i = j + 1
    return lineno[:r], t0s[:r], t0e[:r], t1s[:r], t1e[:r], ntok[:r]


@njit(cache=True, inline="always")
def _parse_uint(buf, s, e, maxdigits):
    """Decimal digits in buf[s:e] -> value, or -1 if empty, too long or not all digits."""
    if e <= s or e - s > maxdigits:
        return -1
    v = 0
    for i in range(s, e):
        c = buf[i]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    return v


@njit(cache=True)
def _parse_len_gate(buf, t0s, t0e, t1s, t1e, ntok, maxlen, slash, lens, gates):
    """Per route: the '/' position in token 0, the length and the gate. Returns the first bad
    record index, or -1."""
    for r in range(t0s.shape[0]):
        if ntok[r] != 2:
            return r
        p = -1
        for i in range(t0s[r], t0e[r]):
            if buf[i] == 47:  # '/'
                p = i
                break
        if p < 0:
            return r
        slash[r] = p
        ln = _parse_uint(buf, p + 1, t0e[r], 3)
        if ln < 0 or ln > maxlen:
            return r
        g = _parse_uint(buf, t1s[r], t1e[r], 9)
        if g < 0:
            return r
        lens[r] = ln
        gates[r] = g
    return -1


@njit(cache=True)
def _parse_v4_addrs(buf, t0s, slash, out):
    """Dotted-quad addresses in buf[t0s[r]:slash[r]] -> out (int64). Returns the first bad record, or -1."""
    for r in range(t0s.shape[0]):
        i = t0s[r]
        e = slash[r]
        v = 0
        for q in range(4):
            s = i
            o = 0
            while i < e and buf[i] >= 48 and buf[i] <= 57 and i - s < 3:
                o = o * 10 + (buf[i] - 48)
                i += 1
            if i == s or o > 255:
                return r
            v = (v << 8) | o
            if q < 3:
                if i >= e or buf[i] != 46:  # '.'
                    return r
                i += 1
        if i != e:
            return r
        out[r] = v
    return -1


def parse_routes_text(data: bytes | str, family=4, *, source: str = "<routes>", with_lines: bool = False):
    """Parse route-file text (see the module manual). Returns ``(prefixes, lengths, gates)``
    (plus ``lines``, the 1-based line number of each route, with ``with_lines=True``).

    IPv4 prefixes are uint32 ``(n,)``; IPv6 prefixes are uint64 ``(n, 2)`` (high, low halves).
    Prefixes come back masked to their length; lengths and gates are int64. Errors are ArgError
    ``"SOURCE line N: reason"``.
    """
    bits = _family_bits(family)
    if isinstance(data, str):
        data = data.encode("utf-8")
    buf = np.frombuffer(data, dtype=np.uint8)
    lineno, t0s, t0e, t1s, t1e, ntok = _scan_lines(buf)
    n = lineno.shape[0]
    slash = np.zeros(n, np.int64)
    lens = np.zeros(n, np.int64)
    gates = np.zeros(n, np.int64)
    bad = _parse_len_gate(buf, t0s, t0e, t1s, t1e, ntok, bits, slash, lens, gates)
    m = n if bad < 0 else bad  # addresses are checked only before the first bad length/gate
    if bits == 32:
        addrs = np.zeros(n, np.int64)
        bad_a = _parse_v4_addrs(buf, t0s[:m], slash[:m], addrs)
        if bad_a >= 0:
            bad = bad_a
    else:
        text = data.decode("latin-1")
        pton = socket.inet_pton
        af = socket.AF_INET6
        try:
            packed = b"".join([pton(af, text[s:e]) for s, e in zip(t0s[:m].tolist(), slash[:m].tolist())])
        except (OSError, ValueError):
            packed = None
        if packed is None or len(packed) != 16 * m:
            for r, (s, e) in enumerate(zip(t0s[:m].tolist(), slash[:m].tolist())):
                try:
                    if len(pton(af, text[s:e])) != 16:
                        raise ValueError
                except (OSError, ValueError):
                    bad = r
                    break
        else:
            hl = np.frombuffer(packed, dtype=">u8").reshape(m, 2).astype(np.uint64)
    if bad >= 0:
        ln = int(lineno[bad])
        lines = data.split(b"\n")
        raw = lines[ln - 1].decode("utf-8", "replace") if ln - 1 < len(lines) else ""
        raw = raw.split("#", 1)[0]
        try:
            _parse_route_line(raw, family)
            reason = f"cannot parse route {raw.strip()!r}"
        except ValueError as e:
            reason = str(e)
        raise ArgError(f"{source} line {ln}: {reason}")
    if bits == 32:
        mask = (np.int64(0xFFFFFFFF) << (32 - lens)) & 0xFFFFFFFF
        prefixes = (addrs & mask).astype(np.uint32)
    else:
        hi = hl[:, 0]
        lo = hl[:, 1]
        l_hi = np.minimum(lens, 64).astype(np.uint64)
        l_lo = np.clip(lens - 64, 0, 64).astype(np.uint64)
        m_hi = _prefix_mask64(l_hi)
        m_lo = _prefix_mask64(l_lo)
        prefixes = np.stack([hi & m_hi, lo & m_lo], axis=1)
    if with_lines:
        return prefixes, lens, gates, lineno
    return prefixes, lens, gates


def _prefix_mask64(l: np.ndarray) -> np.ndarray:
    """Per element: a uint64 with the top ``l`` (0..64) bits set."""
    l = np.asarray(l, dtype=np.uint64)
    full = np.uint64(_U64)
    sh = np.minimum(np.uint64(64) - l, np.uint64(63))
    m = full << sh
    m = np.where(l == 0, np.uint64(0), m)
    return m.astype(np.uint64)


def load_routes(path, family=4, *, with_lines: bool = False):
    """Read a route file (see the module manual): ``(prefixes, lengths, gates)``.

    ``family`` is 4 or 6. IPv4 prefixes are uint32 ``(n,)``, IPv6 prefixes uint64 ``(n, 2)``
    (high, low halves); all masked to their lengths (host bits set in the file are accepted and
    cleared). ``with_lines=True`` adds a fourth array, the 1-based line number of each route.
    A missing file or a bad line is an :class:`ArgError` naming the file (and the line).
    """
    path = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO that no one writes to would otherwise wait forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise ArgError(f"{path}: cannot read route file: it is {file_kind(mode)}, not a regular file")
            f = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            data = f.read()
    except OSError as e:
        raise ArgError(f"{path}: cannot read route file: {e.strerror or e}") from None
    return parse_routes_text(data, family, source=path, with_lines=with_lines)


def routes_from_list(items, family=4, *, source: str = "routes_list"):
    """``[("10.0.0.0/8", 1), ...]`` (or ``"10.0.0.0/8 1"`` strings) -> ``(prefixes, lengths, gates)``.

    Errors name ``source[i]``.
    """
    bits = _family_bits(family)
    pfx, lens, gates = [], [], []
    try:
        items = list(items)
    except TypeError:
        raise ArgError(f"{source}: expected a list of (prefix, gate) pairs, got {items!r}") from None
    for i, it in enumerate(items):
        try:
            if isinstance(it, str):
                p, ln, g = _parse_route_line(it.split("#", 1)[0], family)
            else:
                if len(it) != 2:
                    raise ValueError(f"expected a (prefix, gate) pair, got {it!r}")
                p, ln, _ = parse_prefix(str(it[0]).strip(), family)
                g = it[1]
                if isinstance(g, str):
                    g = _parse_gate(g.strip())
                elif isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 0:
                    raise ValueError(f"bad gate {g!r} (a non-negative integer)")
        except (ValueError, TypeError) as e:
            raise ArgError(f"{source}[{i}]: {e}") from None
        pfx.append(p)
        lens.append(ln)
        gates.append(int(g))
    lens_a = np.array(lens, dtype=np.int64)
    gates_a = np.array(gates, dtype=np.int64)
    if bits == 32:
        return np.array(pfx, dtype=np.uint32), lens_a, gates_a
    pa = np.zeros((len(pfx), 2), dtype=np.uint64)
    for i, p in enumerate(pfx):
        pa[i, 0] = p >> 64
        pa[i, 1] = p & _U64
    return pa, lens_a, gates_a


# ================================================================================================
# DIR-24-8 (IPv4)
# ================================================================================================
_T8 = 1 << 24  # where tbl8 starts in the one array that holds tbl24 then tbl8


@njit(cache=True)
def _dir24_build(pfx, lens, vals, n_groups):
    """pfx/lens/vals sorted by length (stable); vals = gate + 1. Returns one uint16 array: tbl24
    (2^24 entries) followed by tbl8 (``max(n_groups, 1)`` groups of 256)."""
    tbl = np.zeros((1 << 24) + max(n_groups, 1) * 256, np.uint16)
    tbl24 = tbl[: 1 << 24]
    tbl8 = tbl[1 << 24 :]
    ng = 0
    for i in range(pfx.shape[0]):
        ln = lens[i]
        v = np.uint16(vals[i])
        p = pfx[i]
        s = p >> 8
        if ln <= 24:
            c = np.int64(1) << (24 - ln)
            tbl24[s : s + c] = v
        else:
            e = tbl24[s]
            if e & 0x8000:
                g = np.int64(e & 0x7FFF)
            else:
                g = ng
                ng += 1
                tbl8[g * 256 : (g + 1) * 256] = e
                tbl24[s] = np.uint16(0x8000 | g)
            o = g * 256 + (p & 0xFF)
            c = np.int64(1) << (32 - ln)
            tbl8[o : o + c] = v
    return tbl


_NOT_V4 = np.uint32(0xFFFFFFFE)  # -2 as int32: the code of a packet without an IPv4 header
# what Dir24_8.lookup passes for the packet arguments of _dir24_find (it has addresses only)
_NO_ROWS = np.zeros((1, 1), np.uint8)
_NO_I32 = np.zeros(0, np.int32)


@njit(cache=True, inline="always")
def _dir24_find(tbl, addrs, n, miss, codes, check, data, slots, l3_off):
    """The DIR-24-8 lookup loop, the only one: ``codes[k]`` (uint32) = the gate of the route for
    ``addrs[k]`` (uint32), ``miss`` where no route covers it, for ``k < n``. ``tbl`` is tbl24 then
    tbl8 (one array). Returns the code when all ``n`` are one gate (< 2^31), else -1.

    With ``check``, packet ``k`` (``slots[k]`` of ``data``) gets ``_NOT_V4`` unless it has an IPv4
    header at ``l3_off[k]``; without, the packet arguments are not read. ``check`` is the same for
    every packet, so the compiler makes two loops of this one (the usual all-IPv4 batch pays no
    test). Indices are unsigned: no negative-index fix-ups."""
    t8 = np.uint64(_T8)
    acc = np.uint32(0)
    c0 = np.uint32(0)
    for k in range(n):
        ku = np.uint64(k)
        c = _NOT_V4
        if not check or (l3_off[ku] >= 0 and (data[np.uint64(slots[ku]), np.uint64(l3_off[ku])] >> 4) == 4):
            a = addrs[ku]
            e = tbl[np.uint64(a >> 8)]
            if e & 0x8000:
                e = tbl[t8 + (np.uint64(e & 0x7FFF) << 8) + np.uint64(a & 0xFF)]
            c = np.uint32(e) - np.uint32(1) if e else miss
        if k == 0:
            c0 = c
        acc |= c ^ c0
        codes[ku] = c
    if acc == 0 and c0 < 0x80000000:
        return np.int64(c0)
    return -1


@njit(cache=True)
def _dir24_lookup(tbl, addrs, codes):
    _dir24_find(tbl, addrs, addrs.shape[0], np.uint32(0xFFFFFFFF), codes, False, _NO_ROWS, _NO_I32, _NO_I32)


@njit(cache=True)
def _v4_route(data, hbuf, tbl, buf, miss_code):
    """Route every packet of a batch (``hbuf``: its parsed headers); returns the gate when they
    all take the same one, else -1.

    ``buf`` (uint32, ``2 * cap`` with ``cap >= n``) is the caller's scratch, kept between calls:
    ``buf[:n]`` receives the destination addresses and ``buf[cap:cap + n]`` the per-packet codes
    (read them as int32): the gate, ``miss_code`` where no route matches, -2 (not_ipv4) without
    an IPv4 header. ``tbl`` is :attr:`Dir24_8.tbl` (tbl24 then tbl8).

    Two passes: gather every destination (loads from the slot rows, independent of each other),
    then probe the table in a tight loop (:func:`_dir24_find`, which looks at the headers again
    only when the gather found a packet without IPv4). ``l3_off >= 0`` with version nibble 4 is
    exactly the parser's F_IPV4 (it sets l3_off only for a complete header whose version matches
    the ethertype); reading one column is cheaper."""
    n, i32, _, _ = hdr_cols(hbuf)
    slots = i32[C_SLOT * n : (C_SLOT + 1) * n]
    l3_off = i32[C_L3 * n : (C_L3 + 1) * n]
    n_bad = 0
    for k in range(n):
        o = l3_off[k]
        ku = np.uint64(k)
        if o >= 0:
            row = slot_row(data, np.uint64(slots[k]))
            ou = np.uint64(o)
            if (row[ou] >> 4) == 4:
                buf[ku] = np.uint32(ld_be32(row, ou + 16))
                continue
        buf[ku] = 0
        n_bad += 1
    miss = np.uint32(np.int64(miss_code) & 0xFFFFFFFF)
    return _dir24_find(tbl, buf, n, miss, buf[buf.shape[0] >> 1 :], n_bad != 0, data, slots, l3_off)


def _longest_wins_order(lengths: np.ndarray) -> np.ndarray:
    """Build order: by length ascending, input order kept among equals (later duplicates win)."""
    return np.argsort(np.asarray(lengths), kind="stable")


class Dir24_8:
    """DIR-24-8 IPv4 longest-prefix-match table (see the module manual).

    ``Dir24_8(prefixes, lengths, gates)``: arrays of one length each; prefixes as uint32 (host
    bits are masked), lengths 0..32, gates 0..32766. ``lookup(addrs) -> int32`` gate per address,
    -1 where no route covers it. Attributes: ``tbl24`` (2^24 uint16), ``tbl8`` (groups x 256
    uint16), both views of ``tbl`` (one array, tbl24 then tbl8), ``n_routes``, ``n_groups``.
    """

    def __init__(self, prefixes, lengths, gates) -> None:
        pfx = np.asarray(prefixes, dtype=np.int64).ravel()
        lens = np.asarray(lengths, dtype=np.int64).ravel()
        gates = np.asarray(gates, dtype=np.int64).ravel()
        if not (len(pfx) == len(lens) == len(gates)):
            raise ValueError("Dir24_8: prefixes, lengths and gates must have the same length")
        if len(lens) and (lens.min() < 0 or lens.max() > 32):
            raise ValueError("Dir24_8: prefix lengths must be in 0..32")
        if len(gates) and (gates.min() < 0 or gates.max() > MAX_GATE_V4):
            raise ValueError(f"Dir24_8: gates must be in 0..{MAX_GATE_V4}")
        if len(pfx) and (pfx.min() < 0 or pfx.max() > 0xFFFFFFFF):
            raise ValueError("Dir24_8: prefixes must be 32-bit addresses")
        mask = (np.int64(0xFFFFFFFF) << (32 - lens)) & 0xFFFFFFFF
        pfx = pfx & mask
        long_ = lens > 24
        n_groups = int(len(np.unique(pfx[long_] >> 8))) if long_.any() else 0
        if n_groups > N_TBL8_GROUPS:
            raise ValueError(
                f"Dir24_8: the table needs {n_groups} tbl8 groups (distinct /24s holding /25-/32 routes); "
                f"the limit is {N_TBL8_GROUPS}"
            )
        order = _longest_wins_order(lens)
        self.tbl = _dir24_build(
            np.ascontiguousarray(pfx[order]), np.ascontiguousarray(lens[order]), np.ascontiguousarray(gates[order] + 1),
            n_groups,
        )
        self.tbl24 = self.tbl[:_T8]
        self.tbl8 = self.tbl[_T8:]
        self.n_routes = len(pfx)
        self.n_groups = n_groups

    def lookup(self, addrs) -> np.ndarray:
        """Gate per address (int32), -1 where no route matches."""
        a = np.ascontiguousarray(addrs, dtype=np.uint32)
        out = np.empty(a.shape[0], np.uint32)
        _dir24_lookup(self.tbl, a, out)
        return out.view(np.int32)

    @property
    def memory_bytes(self) -> int:
        return self.tbl24.nbytes + self.tbl8.nbytes

    def __repr__(self) -> str:
        return f"Dir24_8({self.n_routes} routes, {self.n_groups} tbl8 groups)"


# ================================================================================================
# binary search on prefix lengths (IPv6)
# ================================================================================================
_C1 = np.uint64(0x9E3779B97F4A7C15)
_C2 = np.uint64(0xBF58476D1CE4E5B9)
_C3 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _mask128(hi, lo, m):
    """(hi, lo) masked to the top m bits (0..128)."""
    z = np.uint64(0)
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    if m <= 0:
        return z, z
    if m < 64:
        return hi & (full << np.uint64(64 - m)), z
    if m == 64:
        return hi, z
    if m < 128:
        return hi, lo & (full << np.uint64(128 - m))
    return hi, lo


@njit(cache=True, inline="always")
def _h6(hi, lo, m, cap_mask):
    h = (hi * _C1) ^ (lo * _C2) ^ (np.uint64(m) * _C3)
    h ^= h >> np.uint64(31)
    h = h * _C2
    h ^= h >> np.uint64(29)
    return np.int64(h & np.uint64(cap_mask))


@njit(cache=True, inline="always")
def _h6_find(t, cap_mask, m, hi, lo):
    """Slot of key (m, hi, lo) in the packed table, or -1. Slot s is t[4s:4s+4] =
    (length + 1 (0: empty), hi, lo, (bmp + 1) | (real + 1) << 32)."""
    s = _h6(hi, lo, m, cap_mask)
    mm = np.uint64(m + 1)
    while True:
        b = 4 * s
        tl = t[b]
        if tl == 0:
            return -1
        if tl == mm and t[b + 1] == hi and t[b + 2] == lo:
            return s
        s = (s + 1) & cap_mask


@njit(cache=True)
def _h6_insert(t, cap_mask, m, hi, lo):
    s = _h6(hi, lo, m, cap_mask)
    mm = np.uint64(m + 1)
    while True:
        b = 4 * s
        tl = t[b]
        if tl == 0:
            t[b] = mm
            t[b + 1] = hi
            t[b + 2] = lo
            return s
        if tl == mm and t[b + 1] == hi and t[b + 2] == lo:
            return s
        s = (s + 1) & cap_mask


@njit(cache=True, inline="always")
def _h6_real(t, s):
    return np.int64(t[4 * s + 3] >> np.uint64(32)) - 1


@njit(cache=True, inline="always")
def _h6_bmp(t, s):
    return np.int64(t[4 * s + 3] & np.uint64(0xFFFFFFFF)) - 1


@njit(cache=True)
def _lpm6_build(hi, lo, lens, gates, dl, cap):
    cap_mask = cap - 1
    t = np.zeros(4 * cap, np.uint64)
    pos = np.full(129, -1, np.int64)
    k = dl.shape[0]
    for j in range(k):
        pos[dl[j]] = j
    n = hi.shape[0]
    # real prefixes (input order: a later duplicate overwrites)
    for i in range(n):
        s = _h6_insert(t, cap_mask, lens[i], hi[i], lo[i])
        t[4 * s + 3] = np.uint64(gates[i] + 1) << np.uint64(32)
    # markers on each prefix's search path where the search must go toward longer lengths
    for i in range(n):
        j = pos[lens[i]]
        a = 0
        b = k - 1
        while a <= b:
            mid = (a + b) // 2
            if mid == j:
                break
            if mid < j:
                mh, ml = _mask128(hi[i], lo[i], dl[mid])
                _h6_insert(t, cap_mask, dl[mid], mh, ml)
                a = mid + 1
            else:
                b = mid - 1
    # best matching prefix of every entry: its own route, else the longest shorter real prefix
    for s in range(cap):
        if t[4 * s] == 0:
            continue
        m = np.int64(t[4 * s]) - 1
        best = _h6_real(t, s)
        if best < 0:
            for jj in range(pos[m] - 1, -1, -1):
                mh, ml = _mask128(t[4 * s + 1], t[4 * s + 2], dl[jj])
                f = _h6_find(t, cap_mask, dl[jj], mh, ml)
                if f >= 0:
                    r = _h6_real(t, f)
                    if r >= 0:
                        best = r
                        break
        t[4 * s + 3] = (t[4 * s + 3] & np.uint64(0xFFFFFFFF00000000)) | np.uint64(best + 1)
    return t


@njit(cache=True, inline="always")
def _lpm6_get(t, cap_mask, dl, hi, lo):
    a = 0
    b = dl.shape[0] - 1
    best = np.int32(-1)
    while a <= b:
        mid = (a + b) // 2
        m = dl[mid]
        mh, ml = _mask128(hi, lo, m)
        f = _h6_find(t, cap_mask, m, mh, ml)
        if f >= 0:
            v = _h6_bmp(t, f)
            if v >= 0:
                best = np.int32(v)
            a = mid + 1
        else:
            b = mid - 1
    return best


@njit(cache=True)
def _lpm6_lookup(t, cap_mask, dl, hi, lo, out):
    for k in range(hi.shape[0]):
        out[k] = _lpm6_get(t, cap_mask, dl, np.uint64(hi[k]), np.uint64(lo[k]))


@njit(cache=True, inline="always")
def _be64(row, o):
    v = np.uint64(0)
    for i in range(8):
        v = (v << np.uint64(8)) | np.uint64(row[o + i])
    return v


@njit(cache=True)
def _v6_route(data, hbuf, t, cap_mask, dl, miss_code, codes):
    """Like :func:`_v4_route` for IPv6 (destination at l3_off + 24, version nibble 6), in one
    pass: ``codes[:n]`` (int32, the caller's scratch) receives the codes; returns the gate when
    every packet takes the same one, else -1."""
    n, i32, _, _ = hdr_cols(hbuf)
    slots = i32[C_SLOT * n : (C_SLOT + 1) * n]
    l3_off = i32[C_L3 * n : (C_L3 + 1) * n]
    acc = 0
    c0 = 0
    for k in range(n):
        o = l3_off[k]
        row = slot_row(data, np.uint64(slots[k]))
        if o < 0 or (row[np.uint64(o)] >> 4) != 6:
            c = -2
        else:
            o += 24
            g = _lpm6_get(t, cap_mask, dl, _be64(row, o), _be64(row, o + 8))
            c = np.int64(g) if g >= 0 else np.int64(miss_code)
        if k == 0:
            c0 = c
        acc |= c ^ c0
        codes[np.uint64(k)] = c
    if acc == 0 and c0 >= 0:
        return c0
    return -1


class IPv6LPM:
    """IPv6 longest-prefix match by binary search on prefix lengths (see the module manual).

    ``IPv6LPM(prefixes, lengths, gates)``: prefixes as uint64 ``(n, 2)`` (high, low halves; host
    bits are masked), lengths 0..128, gates >= 0. ``lookup(hi, lo) -> int32`` gate per address
    (given as its uint64 halves), -1 where no route matches. Attributes: ``lengths`` (the distinct
    prefix lengths searched), ``n_routes``, ``n_entries`` (prefixes + markers), ``capacity``.
    """

    def __init__(self, prefixes, lengths, gates) -> None:
        p = np.asarray(prefixes, dtype=np.uint64).reshape(-1, 2)
        lens = np.asarray(lengths, dtype=np.int64).ravel()
        gates = np.asarray(gates, dtype=np.int64).ravel()
        if not (len(p) == len(lens) == len(gates)):
            raise ValueError("IPv6LPM: prefixes, lengths and gates must have the same length")
        if len(lens) and (lens.min() < 0 or lens.max() > 128):
            raise ValueError("IPv6LPM: prefix lengths must be in 0..128")
        if len(gates) and (gates.min() < 0 or gates.max() > 0x7FFFFFFF):
            raise ValueError("IPv6LPM: gates must be non-negative int32 values")
        hi = p[:, 0] & _prefix_mask64(np.minimum(lens, 64))
        lo = p[:, 1] & _prefix_mask64(np.clip(lens - 64, 0, 64))
        dl = np.unique(lens).astype(np.int64)
        depth = int(np.ceil(np.log2(len(dl) + 1))) if len(dl) else 1
        bound = max(len(lens) * (depth + 1), 1)
        cap = 1 << int(np.ceil(np.log2(2 * bound + 2)))
        args = (np.ascontiguousarray(hi), np.ascontiguousarray(lo), lens, gates.astype(np.int32), dl)
        self.table = _lpm6_build(*args, cap)
        # The capacity came from an upper bound on the markers; rebuild smaller (load <= 1/2) when
        # the real count allows, so that lookups touch less memory.
        used = int(np.count_nonzero(self.table[0::4]))
        right = 1 << int(np.ceil(np.log2(2 * used + 2)))
        if right < cap:
            cap = right
            self.table = _lpm6_build(*args, cap)
        self.lengths = dl
        self.capacity = cap
        self._cap_mask = cap - 1
        self.n_routes = len(lens)
        self.n_entries = int(np.count_nonzero(self.table[0::4]))

    def lookup(self, hi, lo) -> np.ndarray:
        """Gate per address given as uint64 halves (int32), -1 where no route matches."""
        hi = np.ascontiguousarray(hi, dtype=np.uint64)
        lo = np.ascontiguousarray(lo, dtype=np.uint64)
        out = np.empty(hi.shape[0], np.int32)
        _lpm6_lookup(self.table, self._cap_mask, self.lengths, hi, lo, out)
        return out

    def lookup_bytes(self, addrs) -> np.ndarray:
        """Gate per address given as an ``(n, 16)`` uint8 array (as ``hv.ipv6.dst``)."""
        a = np.ascontiguousarray(addrs, dtype=np.uint8).reshape(-1, 16)
        hl = a.view(">u8").reshape(-1, 2).astype(np.uint64)
        return self.lookup(hl[:, 0], hl[:, 1])

    @property
    def memory_bytes(self) -> int:
        return self.table.nbytes

    def __repr__(self) -> str:
        return f"IPv6LPM({self.n_routes} routes, {len(self.lengths)} lengths, {self.n_entries} entries)"


# ================================================================================================
# modules
# ================================================================================================
class _RouteLookup(Module):
    """Shared body of IPv4Lookup and IPv6Lookup."""

    family = 4
    drop_reasons = ("no_route", "not_ipv4")
    args = (
        Arg("routes", str, None, unit="-", help="route file: one 'PREFIX/LEN GATE' per line, # comments"),
        Arg("routes_list", any_value, None, unit="-", help="the same routes inline: (PREFIX/LEN, GATE) pairs"),
        Arg("gates", int, None, unit="-", min=1, max=MAX_GATE_V4 + 1,
            help="output gates; None = largest route gate + 1"),
        Arg("default_gate", int, -1, unit="-", min=-1,
            help="gate for packets no route matches; -1 drops them (no_route)"),
    )

    def setup(self) -> None:
        self.rebuild_or_roll_back(self._load)
        self.n_ogates = self._n_gates
        self._grow(256)

    def process(self, batch) -> None:
        hv = batch.headers
        n = hv.n
        if n > self._cap:
            self._grow(n)
        # The kernel writes per-packet codes into self._codes and returns the gate when every
        # packet takes the same one without drops (-1 otherwise).
        g = self._route(batch.pool.data, hv.buf)
        if g >= 0:
            self.emit(batch, g)  # one gate, no drops: the batch goes on whole
        else:
            self.emit_codes(batch, self._codes[:n])

    def _route(self, data, hbuf) -> int:
        raise NotImplementedError

    def _grow(self, n: int) -> None:
        """Scratch kept between batches: ``_buf`` (uint32, 2 x cap: addresses, then codes) and
        ``_codes`` (its second half as int32)."""
        cap = max(n, 2 * getattr(self, "_cap", 0))
        self._cap = cap
        self._buf = np.empty(2 * cap, np.uint32)
        self._codes = self._buf[cap:].view(np.int32)

    def _load(self) -> None:
        fam = self.family
        if (self.routes is None) == (self.routes_list is None):
            raise ArgError(f"{self.label}: give exactly one of 'routes' (a file) or 'routes_list' (a list)")
        if self.routes is not None:
            source = self.routes
            try:
                pfx, lens, gates, lines = load_routes(self.routes, fam, with_lines=True)
            except ArgError as e:
                raise ArgError(f"{self.label}: {e}") from None

            def locate(i: int) -> str:
                return f"{source} line {int(lines[i])}"
        else:
            pfx, lens, gates = routes_from_list(self.routes_list, fam, source=f"{self.label}: routes_list")

            def locate(i: int) -> str:
                return f"routes_list[{i}]"

        top = int(gates.max()) + 1 if len(gates) else 1
        n_gates = self.gates if self.gates is not None else max(top, self.default_gate + 1, 1)
        if self.n_ogates_built is not None:
            n_gates = self.n_ogates_built  # a knob change at run time cannot add gates
        if len(gates) and top > n_gates:
            i = int(np.argmax(gates >= n_gates))
            raise ArgError(
                f"{self.label}: {locate(i)}: gate {int(gates[i])} is out of range "
                f"(the module has {n_gates} output gate{'s' if n_gates != 1 else ''}: 0..{n_gates - 1})"
            )
        if self.default_gate >= n_gates:
            raise ArgError(
                f"{self.label}: default_gate {self.default_gate} is out of range "
                f"(the module has {n_gates} output gates)"
            )
        try:
            self.table = self._build(pfx, lens, gates)
        except ValueError as e:
            raise ArgError(f"{self.label}: {e}") from None
        self.n_routes = len(lens)
        self._n_gates = n_gates
        self._miss = int(self.default_gate) if self.default_gate >= 0 else -1

    def on_set(self, name: str) -> None:
        if name in ("routes", "routes_list", "default_gate", "gates"):
            self.rebuild_or_roll_back(self._load, changed=name, one_of=("routes", "routes_list"))

    def extra_counters(self) -> dict:
        return {"routes": int(self.n_routes)}


class IPv4Lookup(_RouteLookup):
    """IPv4Lookup — longest-prefix-match routing on the IPv4 destination address (DIR-24-8).

    Gates: 1 in / ``gates`` out. A packet leaves on the gate of the longest route that covers its
    destination address.

    Routes come from a file (``routes``, see :func:`load_routes`) or inline (``routes_list``,
    ``[("10.0.0.0/8", 1), ("0.0.0.0/0", 0)]``): give exactly one. Host bits are masked and a later
    duplicate wins. A route (or ``default_gate``) naming a gate >= ``gates`` is an error naming
    the file and line (or the list index). A ``0.0.0.0/0`` route does the job of
    ``default_gate``.

    Drop reasons: ``no_route`` (no route and no default gate), ``not_ipv4`` (no complete IPv4
    header: other ethertypes, IPv6, runts, truncated IPv4 headers, bad version or IHL). An IPv4
    packet whose header is complete but whose total-length field is bad is still routed; put
    ``CheckIPHeader`` in front to drop those.

    Counters: ``routes`` (routes loaded). Knobs: every argument may be changed with ``set`` (the
    table is rebuilt; the gate count stays; a change that fails leaves the old table in place).

    Cost model: ``(68.5, 27.5)`` ns — T0 + T1·batch, from Batchy's profile of BESS IPLookup.

    Example: in a pipeline, ``src >> rt; rt[0] >> uplink; rt[1] >> lan; rt[2] >> dc``.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import IPv4Lookup
    >>> from tailgate.packet.craft import frame
    >>> rt = IPv4Lookup(routes_list=[("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("0.0.0.0/0", 0)])
    >>> out, _ = drive(rt, [frame(dst_ip=a) for a in ("10.1.2.3", "10.9.9.9", "192.0.2.1", "10.1.0.1")])
    >>> {gate: len(leaving) for gate, leaving in sorted(out.items())}
    {0: 1, 1: 1, 2: 2}

    Related: :class:`IPv6Lookup`, :class:`~tailgate.nf.acl.ACL`,
    :class:`~tailgate.nf.classify.ExactMatch`. Tables: :class:`Dir24_8`.
    """

    family = 4
    drop_reasons = ("no_route", "not_ipv4")
    cost_ns = (68.5, 27.5)

    def _build(self, pfx, lens, gates):
        return Dir24_8(pfx, lens, gates)

    def _route(self, data, hbuf) -> int:
        return _v4_route(data, hbuf, self.table.tbl, self._buf, self._miss)


class IPv6Lookup(_RouteLookup):
    """IPv6Lookup — longest-prefix-match routing on the IPv6 destination address.

    Gates: 1 in / ``gates`` out. Table: :class:`IPv6LPM` (binary search on prefix lengths with
    markers; about log2(distinct prefix lengths) hash probes per packet).

    Routes come from a file (``routes``, lines like ``2001:db8::/32 1``, see
    :func:`load_routes`) or inline (``routes_list``, ``[("2001:db8::/32", 1), ("::/0", 0)]``):
    give exactly one. Host bits are masked and a later duplicate wins; a route naming a gate >=
    ``gates`` is an error naming the file and line (or the list index).

    Drop reasons: ``no_route``, ``not_ipv6`` (no complete IPv6 header).

    Counters: ``routes``. Knobs: every argument (the table is rebuilt; the gate count stays; a
    change that fails leaves the old table in place).

    Cost model: ``(75.0, 45.0)`` ns — modeled: about twice the hash probes of an IPv4 lookup.

    Example: in a pipeline, ``src >> rt6; rt6[0] >> uplink; rt6[1] >> lan``. An IPv4 frame has no
    IPv6 header.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import IPv6Lookup
    >>> from tailgate.packet.craft import frame
    >>> rt6 = IPv6Lookup(routes_list=[("2001:db8::/32", 1), ("::/0", 0)])
    >>> v6 = [frame(src_ip="2001:db8::1", dst_ip=a) for a in ("2001:db8::7", "2001:db9::7")]
    >>> out, _ = drive(rt6, v6 + [frame()])
    >>> len(out[0]), len(out[1]), rt6.counter("drops.not_ipv6")
    (1, 1, 1)

    Related: :class:`IPv4Lookup`, :class:`~tailgate.nf.acl.ACL`.
    """

    family = 6
    drop_reasons = ("no_route", "not_ipv6")
    cost_ns = (75.0, 45.0)

    def _build(self, pfx, lens, gates):
        return IPv6LPM(pfx, lens, gates)

    def _route(self, data, hbuf) -> int:
        t = self.table
        return _v6_route(data, hbuf, t.table, t._cap_mask, t.lengths, self._miss, self._codes)
