"""Seeded, reproducible fuzz inputs: well-formed frames of every layout tailgate parses, then
mutated; and capture files (pcap, pcapng, both byte orders), then mutated.

``frames(seed, n)`` and ``captures(seed, n)`` return the same inputs for the same arguments on
every machine (one ``numpy.random.Generator`` per call, seeded by ``seed``): a failure names its
seed and item, and that is enough to rebuild the input.

Frame mutations (one to three per frame; one frame in eight is left whole): a bit flip, a byte
set to a boundary value (0, 0xff, 0x7f, 0x80, 1), a length field set to lie (IPv4 IHL and total
length, IPv6 payload length and extension-header lengths, TCP data offset, UDP length, GTP-U
flags and extension lengths, each to 0, its maximum, or its true value +-1), truncation at every
header boundary (+-1 byte), and junk appended.

Capture mutations: the same kinds of change to file headers, section/interface/packet block
headers and their length fields (block total length, captured length, options), truncation at
every record boundary, and appended junk.
"""

from __future__ import annotations

import struct

import numpy as np

MAX_FRAME_BYTES = 1600
JUMBO_BYTES = 4096


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class _Frame:
    """A frame under construction: bytes, header boundaries and the places of length fields."""

    def __init__(self) -> None:
        self.b = bytearray()
        self.bounds: list[int] = []
        self.fields: list[tuple[int, int, int]] = []  # (offset, bytes, true value)

    def add(self, hdr: bytes) -> int:
        at = len(self.b)
        self.b += hdr
        self.bounds.append(len(self.b))
        return at

    def field(self, at: int, size: int) -> None:
        self.fields.append((at, size, int.from_bytes(self.b[at : at + size], "big")))


def _ip_payload(rng, v6: bool, depth: int) -> tuple[int, bytes]:
    """An L4 header and payload: (IP protocol, bytes). May nest a VXLAN or GTP-U tunnel."""
    kind = rng.integers(0, 8)
    payload = rng.integers(0, 256, rng.integers(0, 48), dtype=np.uint8).tobytes()
    if kind <= 1:  # TCP with options
        doff = int(rng.integers(5, 16)) if rng.random() < 0.3 else 5
        opts = rng.integers(0, 256, (doff - 5) * 4, dtype=np.uint8).tobytes()
        hdr = struct.pack("!HHIIBBHHH", int(rng.integers(1, 65536)), int(rng.integers(1, 65536)), 1, 0,
                          doff << 4, 0x18, 8192, 0, 0)
        return 6, hdr + opts + payload
    if kind <= 4:  # UDP, tunnels among them
        dport = int(rng.integers(1, 65536))
        if depth == 0 and kind == 3:
            dport = 4789
            inner = _build(rng, depth + 1)
            payload = struct.pack("!II", 0x08000000, int(rng.integers(0, 1 << 24)) << 8) + inner
        elif depth == 0 and kind == 4:
            dport = 2152
            flags = int(rng.choice([0x30, 0x32, 0x34, 0x31, 0x36, 0x20, 0x10]))
            inner_fr = _Frame()
            inner = _l3(rng, inner_fr, bool(rng.random() < 0.3), depth + 1) if rng.random() < 0.9 else payload
            opt = b""
            if flags & 7:
                n_ext = int(rng.integers(0, 3)) if flags & 4 else 0
                exts = b""
                for k in range(n_ext):
                    words = int(rng.integers(1, 4))
                    body = rng.integers(0, 256, words * 4 - 2, dtype=np.uint8).tobytes()
                    exts += bytes([words]) + body + bytes([0x85 if k + 1 < n_ext else 0])
                opt = struct.pack("!HBB", 0, 0, 0x85 if n_ext else 0) + exts
            teid = int(rng.integers(0, 1 << 32))
            payload = struct.pack("!BBHI", flags, 0xFF, len(opt) + len(inner), teid) + opt + inner
        hdr = struct.pack("!HHHH", int(rng.integers(1, 65536)), dport, 8 + len(payload), 0)
        return 17, hdr + payload
    if kind == 5:
        return (58 if v6 else 1), struct.pack("!BBHI", 8, 0, 0, 0) + payload
    return int(rng.choice([47, 50, 132, 2, 0, 255])), payload


def _l3(rng, fr: _Frame, v6: bool, depth: int) -> bytes:
    """An IPv4 or IPv6 packet (bytes), its length fields recorded in ``fr`` when ``depth == 0``."""
    proto, l4 = _ip_payload(rng, v6, depth)
    if not v6:
        ihl = int(rng.integers(5, 16)) if rng.random() < 0.2 else 5
        frag = 0
        r = rng.random()
        if r < 0.08:
            frag = 0x2000  # MF, first fragment
        elif r < 0.14:
            frag = int(rng.integers(1, 0x2000)) | int(rng.choice([0, 0x2000]))
        elif r < 0.5:
            frag = 0x4000  # DF
        hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(l4), int(rng.integers(0, 65536)),
                                    frag, int(rng.integers(0, 256)), proto, 0,
                                    rng.integers(0, 256, 4, dtype=np.uint8).tobytes(),
                                    rng.integers(0, 256, 4, dtype=np.uint8).tobytes()))
        hdr += bytes([1]) * ((ihl - 5) * 4)
        hdr[10:12] = struct.pack("!H", _csum(bytes(hdr)))
        if depth == 0:
            at = fr.add(bytes(hdr))
            fr.field(at, 1)
            fr.field(at + 2, 2)
            fr.field(at + 6, 2)
            _l4_fields(fr, proto, l4)
        return bytes(hdr) + l4
    exts = []
    for _ in range(int(rng.choice([0, 0, 0, 1, 2, 3, 9]))):
        t = int(rng.choice([0, 43, 60, 44]))
        exts.append(t)
    body = b""
    chain = exts + [proto]
    ext_at = []
    for k, t in enumerate(exts):
        if t == 44:
            word = int(rng.choice([0, 1, 8, 9, 0xFFF8, 6]))
            h = struct.pack("!BBHI", chain[k + 1], 0, word, 0)
        else:
            words = int(rng.integers(0, 3))
            h = bytes([chain[k + 1], words]) + bytes(6 + 8 * words)
        ext_at.append(len(body))
        body += h
    nh_first = chain[0]
    src = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    dst = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    hdr = struct.pack("!IHBB16s16s", 0x60000000, len(body) + len(l4), nh_first, 64, src, dst)
    if depth == 0:
        at = fr.add(hdr)
        fr.field(at + 4, 2)
        fr.field(at + 6, 1)
        for e in ext_at:
            fr.bounds.append(at + 40 + e)
            fr.field(at + 40 + e + 1, 1)
        fr.b += body
        fr.bounds.append(len(fr.b))
        _l4_fields(fr, proto, l4)
    return hdr + body + l4


def _l4_fields(fr: _Frame, proto: int, l4: bytes) -> None:
    at = len(fr.b)
    fr.b += l4
    if proto == 6 and len(l4) >= 20:
        fr.field(at + 12, 1)
        fr.bounds += [at + 20, at + (l4[12] >> 4) * 4]
    elif proto == 17 and len(l4) >= 8:
        fr.field(at + 4, 2)
        fr.field(at + 2, 2)
        fr.bounds += [at + 8, at + 16, at + 20, at + 30]
        if len(l4) >= 16:
            fr.field(at + 8, 1)  # GTP-U flags / VXLAN flags
            fr.field(at + 10, 2)  # GTP-U length
            fr.field(at + 19, 1)  # GTP-U next extension type
            fr.field(at + 20, 1)  # first GTP-U extension's length
    elif len(l4) >= 4:
        fr.bounds.append(at + 4)
    fr.bounds.append(len(fr.b))


def _build(rng, depth: int = 0) -> bytes:
    fr = _Frame()
    eth = rng.integers(0, 256, 12, dtype=np.uint8).tobytes()
    n_tags = int(rng.choice([0, 0, 0, 1, 2, 3]))
    tags = b""
    for _ in range(n_tags):
        tags += struct.pack("!HH", int(rng.choice([0x8100, 0x88A8])), int(rng.integers(0, 65536)))
    r = rng.random()
    et = 0x0800 if r < 0.55 else 0x86DD if r < 0.85 else int(rng.choice([0x0806, 0x88CC, 0x8100, 0]))
    fr.add(eth)
    for k in range(n_tags):
        fr.add(tags[4 * k : 4 * k + 4])
    fr.add(struct.pack("!H", et))
    if et in (0x0800, 0x86DD):
        if depth:
            return bytes(fr.b) + _l3(rng, fr, et == 0x86DD, depth)
        _l3(rng, fr, et == 0x86DD, depth)
    else:
        fr.add(rng.integers(0, 256, rng.integers(0, 64), dtype=np.uint8).tobytes())
    if depth:
        return bytes(fr.b)
    return fr


_BOUNDARY = (0, 0xFF, 0x7F, 0x80, 1)


def _mutate(rng, fr: _Frame) -> bytes:
    b = fr.b
    for _ in range(int(rng.choice([1, 1, 2, 3]))):
        kind = rng.choice([0, 0, 1, 2, 2, 3, 4, 5])
        if kind == 0 and b:  # a bit flip, mostly in the headers
            at = int(rng.integers(0, min(len(b), 96) if rng.random() < 0.8 else len(b)))
            b[at] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1 and b:
            at = int(rng.integers(0, min(len(b), 96)))
            b[at] = int(rng.choice(_BOUNDARY))
        elif kind == 2 and fr.fields:  # a length field that lies
            at, size, true = fr.fields[int(rng.integers(0, len(fr.fields)))]
            if at + size > len(b):
                continue
            top = (1 << (8 * size)) - 1
            v = int(rng.choice([0, top, true + 1, true - 1, true + 4, true - 4, int(rng.integers(0, top + 1))])) & top
            if size == 1 and rng.random() < 0.5:  # a nibble (IHL, data offset, version)
                v = (b[at] & 0xF0) | (v & 0x0F) if rng.random() < 0.5 else (v << 4 | (b[at] & 0x0F)) & 0xFF
            b[at : at + size] = v.to_bytes(size, "big")
        elif kind == 3 and fr.bounds:  # truncation at a header boundary
            cut = fr.bounds[int(rng.integers(0, len(fr.bounds)))] + int(rng.integers(-1, 2))
            del b[max(cut, 0) :]
        elif kind == 4:
            b += rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif kind == 5 and b:  # a cut anywhere
            del b[int(rng.integers(0, len(b) + 1)) :]
    return bytes(b[:MAX_FRAME_BYTES])


def frames(seed, n: int) -> list[bytes]:
    """``n`` frames for ``seed`` (an int or a sequence of ints): well-formed ones of every layout,
    seven in eight then mutated; one in fifty then padded with junk to 4016-4096 bytes (so that,
    placed at the end of a 4 KiB page, it leaves an encapsulating module almost no headroom)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        fr = _build(rng)
        f = bytes(fr.b[:MAX_FRAME_BYTES]) if rng.random() < 0.125 else _mutate(rng, fr)
        if rng.random() < 0.02:
            f += bytes(JUMBO_BYTES - int(rng.integers(0, 81)) - len(f))
        out.append(f)
    return out


# ------------------------------------------------------------------------------------------------
# capture files
# ------------------------------------------------------------------------------------------------
def _pcap(rng, frs: list[bytes], e: str) -> tuple[bytearray, list[tuple[int, int, int]], list[int]]:
    magic = int(rng.choice([0xA1B2C3D4, 0xA1B23C4D]))
    snap = int(rng.choice([65535, 0, 64, 262144]))
    linktype = int(rng.choice([1] * 12 + [1 | 0x10000000, 101]))
    b = bytearray(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snap, linktype))
    fields = [(16, 4, e), (20, 4, e), (4, 2, e)]
    bounds = [24]
    for f in frs:
        at = len(b)
        b += struct.pack(e + "IIII", int(rng.integers(0, 2**32)), int(rng.integers(0, 1_000_000_000)), len(f),
                         len(f) + int(rng.integers(0, 3)))
        b += f
        fields += [(at + 8, 4, e), (at + 12, 4, e), (at, 4, e), (at + 4, 4, e)]
        bounds += [at + 8, at + 16, len(b)]
    return b, fields, bounds


def _block(e: str, btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    total = 12 + len(body)
    return struct.pack(e + "II", btype, total) + body + struct.pack(e + "I", total)


def _pcapng(rng, frs: list[bytes], e: str):
    b = bytearray()
    fields, bounds = [], []

    def put(btype, body, extra=()):
        at = len(b)
        b.extend(_block(e, btype, body))
        fields.extend([(at + 4, 4, e), (len(b) - 4, 4, e)] + [(at + x, s, e) for x, s in extra])
        bounds.extend([at + 8, len(b) - 4, len(b)])

    put(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), [(8, 4)])
    n_if = int(rng.integers(1, 4))
    for k in range(n_if):
        opts = b""
        r = rng.random()
        if r < 0.1:
            opts += struct.pack(e + "HHB3x", 9, 1, int(rng.choice([6, 9, 0x80 | 10, 0x80 | 63, 19, 0x7F])))
        if rng.random() < 0.1:
            opts += struct.pack(e + "HHq", 14, 8, int(rng.choice([0, 1, -1, 1000, 2**62, 10**10])))
        if opts:
            opts += struct.pack(e + "HH", 0, 0)
        lt = 1 if k == 0 or rng.random() < 0.8 else int(rng.choice([101, 113]))
        snap = int(rng.choice([0, 65535, 64]))
        put(1, struct.pack(e + "HHI", lt, 0, snap) + opts, [(8, 2), (12, 4), (16, 2), (18, 2)])
    for f in frs:
        r = rng.random()
        if r < 0.75:
            iface = int(rng.integers(0, n_if))
            ts = int(rng.integers(0, 2**63)) if rng.random() < 0.05 else int(rng.integers(0, 2 * 10**15))
            put(6, struct.pack(e + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f)) + f,
                [(8, 4), (20, 4), (24, 4)])
        elif r < 0.85:
            put(3, struct.pack(e + "I", len(f)) + f, [(8, 4)])
        elif r < 0.92:
            put(2, struct.pack(e + "HHIIII", 0, 0, 0, 0, len(f), len(f)) + f, [(8, 2), (20, 4)])
        else:
            put(int(rng.choice([5, 4, 0x0BAD, 0x0A0D0D0A])), rng.integers(0, 256, 8, dtype=np.uint8).tobytes())
    return b, fields, bounds


def _mutate_file(rng, b: bytearray, fields, bounds) -> bytes:
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.integers(0, 5)
        if kind == 0 and fields:
            at, size, e = fields[int(rng.integers(0, len(fields)))]
            if at + size > len(b) or at < 0:
                continue
            top = (1 << (8 * size)) - 1
            true = int.from_bytes(b[at : at + size], "little" if e == "<" else "big")
            anything = int(rng.integers(0, top + 1))
            v = int(rng.choice([0, top, true + 1, true - 1, true + 4, true - 4, top >> 1, anything]))
            b[at : at + size] = (v & top).to_bytes(size, "little" if e == "<" else "big")
        elif kind == 1 and b:
            at = int(rng.integers(0, len(b)))
            b[at] ^= 1 << int(rng.integers(0, 8))
        elif kind == 2 and b:
            b[int(rng.integers(0, len(b)))] = int(rng.choice(_BOUNDARY))
        elif kind == 3 and bounds:
            cut = bounds[int(rng.integers(0, len(bounds)))] + int(rng.integers(-2, 3))
            del b[max(cut, 0) :]
        elif kind == 4:
            b += rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8).tobytes()
    return bytes(b)


def captures(seed, n: int) -> list[tuple[bytes, list[bytes] | None]]:
    """``n`` capture files for ``seed``: pcap and pcapng, both byte orders, 0-6 packets each
    (well-formed frames, some mutated), nine in ten files then mutated. Each comes as ``(file
    bytes, frames)``: ``frames`` are the packets a reader must return for an unmutated classic
    pcap of Ethernet frames, ``None`` for the others."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        frs = frames(int(rng.integers(0, 2**63)), int(rng.integers(0, 7)))
        e = "<" if rng.random() < 0.5 else ">"
        classic = rng.random() < 0.4
        b, fields, bounds = (_pcap if classic else _pcapng)(rng, frs, e)
        if rng.random() < 0.1:
            ethernet = classic and struct.unpack(e + "I", b[20:24])[0] & 0xFFFF == 1
            out.append((bytes(b), frs if ethernet else None))
        else:
            out.append((_mutate_file(rng, b, fields, bounds), None))
    return out
