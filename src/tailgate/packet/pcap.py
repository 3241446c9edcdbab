"""Reading and writing pcap and pcapng capture files, straight into and out of a packet pool.

Manual
------
What it does
    :class:`PcapReader` reads classic pcap (either byte order, microsecond magic ``0xa1b2c3d4``
    or nanosecond magic ``0xa1b23c4d``) and pcapng (sections in either byte order, Interface
    Description Blocks with ``if_tsresol`` -- powers of 10 *and* of 2 -- and ``if_tsoffset``,
    Enhanced Packet Blocks, Simple Packet Blocks and the obsolete Packet Block; every other
    block type is skipped by its length). The file's first interface must be link type 1
    (Ethernet); the packets of a later pcapng interface of another link type are skipped and
    counted. Only a regular file is read: a FIFO, a device or a socket is refused when opened
    (never waited on).

    :class:`PcapWriter` writes classic pcap or pcapng (SHB + one IDB + EPBs), little-endian.

How it is fast
    The file is memory-mapped as one ``uint8`` numpy array. For classic pcap each
    :meth:`PcapReader.read` is one numba call that walks the next record headers, takes a slot
    per record from the pool's free stack (as ``PacketPool.alloc_idx`` does) and copies the
    frame in, asking the cache for the file's bytes 4 KiB ahead: the file is read once (an index
    of a chunk first, then the copies, would read every byte twice).
    pcapng, whose blocks need Python between sections, is walked a chunk at a time into an index
    (data offset, captured length, original length, timestamp in ns, interface) and each read
    then allocates slots and copies the next records with two more calls; so is a classic pcap
    read that asks for more packets than the pool has free (it then raises ``PoolExhausted``
    exactly when the file has that many more). Writing builds the whole batch's output bytes
    (record headers, frame bytes, pcapng padding and trailers) in one numpy buffer with one
    numba call, then issues one ``write``.

API
    ``PcapError(path, offset, reason)``
        ``str()`` is ``"FILE: byte OFFSET: reason"``; ``offset`` is the byte offset in the file of
        the bad record / block (0 for a bad file header).
    ``PcapReader(path)`` -- context manager; attributes ``path``, ``format`` (``"pcap"`` or
    ``"pcapng"``), ``linktype``, ``snaplen``, ``ts_resolution_ns`` (float, e.g. 1000.0 for
    microseconds), ``nanosecond`` (bool), ``packets_read``, ``bytes_read`` (captured bytes of the
    records read, as in the file), ``truncated_to_slot`` (frames longer than a slot's room,
    clipped), ``longer_than_snaplen`` (records whose captured length exceeds their snap length:
    read whole, as Wireshark does), ``skipped_not_ethernet`` (pcapng packets on a later
    non-Ethernet interface, not returned), ``error`` (the :class:`PcapError` the reading has
    reached, else ``None``). The two counts grow as the reader walks the file, which it does up
    to 65,536 records ahead of the packets returned.

        - ``read(pool, max_packets=32) -> Batch`` -- up to ``max_packets`` next packets; empty
          batch at end of file. Columns set: frame bytes at ``pool.offset`` (the headroom),
          ``length`` (captured length, clipped to the slot), ``wire_len`` (original length, at
          least ``length``), ``arrival_ns`` (integer ns since the epoch), ``in_port`` (pcapng
          interface id, 0 for pcap).
        - ``read_all(pool) -> Batch``, ``iter_batches(pool, burst=32)`` (generator).

    ``file_kind(st_mode) -> str`` -- what a path is, for a message: ``"a FIFO (named pipe)"``,
    ``"a directory"``, ``"a character device"``, ...

    ``PcapWriter(path, *, format="pcap", nanosecond=True, snaplen=65535, linktype=1)`` --
    context manager; ``write(batch)`` (captured length = ``length`` clipped to ``snaplen``,
    original length = ``wire_len``, or ``length`` where ``wire_len`` is 0, timestamp =
    ``arrival_ns``), ``flush()``, ``close()``, ``packets_written``, ``bytes_written``.

Corrupt and truncated files
    A path that is not a regular file, a file too short for its header, an unknown magic or a
    first interface that is not Ethernet raise :class:`PcapError` when opened; so does, in a
    pcapng, anything wrong in the blocks in front of the first packet (the section header, a bad
    block length, an interface option). Later problems (a record header cut short, a captured
    length past the end of the file or above 262144 bytes -- libpcap's and Wireshark's limit; a
    length above the snap length but below that is read and counted -- a pcapng block length
    that is not a multiple of 4, too small, past the end of the file or different from its
    trailing copy, a packet on an undefined interface, a bad section header, a timestamp out of
    range) are found while reading: every record
    *before* the bad one is returned normally, the ``read`` that reaches the bad point returns
    what it could (possibly nothing -- then it raises) and sets ``reader.error``, and every
    later ``read`` raises that :class:`PcapError`, whose ``offset`` is the first byte of the bad
    record or block.

Timestamps
    ``arrival_ns`` is int64 nanoseconds since the epoch, which ends in April 2262. An
    ``if_tsoffset`` beyond +-9,223,372,036 s is refused at its interface block; a packet whose
    timestamp plus its interface's offset lies past the end of int64 is refused at its block
    (never wrapped). Within range every resolution is exact, also for timestamps of 2**63 units
    and more.

Many interfaces
    A pcapng may define any number of interfaces, each before its first packet: the per-interface
    tables grow by doubling, so reading a file with n interface blocks takes time linear in n.

Documented choices
    - A Simple Packet Block has no timestamp: it gets the timestamp of the packet before it in
      the file (0 if none) and interface 0; its captured length is the smaller of the original
      length, the block's room and the interface snap length.
    - pcap's ``thiszone`` field is ignored (as libpcap does). Link type is the low 16 bits of
      the header's link-type field (the upper bits carry FCS information).
    - The writer clips negative timestamps to 0 and always writes little-endian files.

Example::

    pool = PacketPool(n_slots=4096)
    with PcapReader("in.pcapng") as rd, PcapWriter("out.pcap", nanosecond=True) as wr:
        for batch in rd.iter_batches(pool, burst=256):
            wr.write(batch)
            batch.free()
"""

from __future__ import annotations

import errno
import functools
import mmap
import os
import stat
import struct
from typing import Iterator

import numpy as np
from numba import njit

from tailgate.core.errors import TailgateError
from tailgate.packet.pool import Batch, PacketPool, take_slot
from tailgate.packet.wide import (
    ld_be16,
    ld_be32,
    ld_le16,
    ld_le32,
    prefetch_byte,
    slot_row,
)

__all__ = ["LINKTYPE_ETHERNET", "MAX_CAPLEN_BYTES", "PcapError", "PcapReader", "PcapWriter", "file_kind"]

LINKTYPE_ETHERNET = 1
MAX_CAPLEN_BYTES = 262144  # libpcap's MAXIMUM_SNAPLEN: anything larger is corruption

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
PCAPNG_IDB = 0x00000001
PCAPNG_PB = 0x00000002  # obsolete Packet Block
PCAPNG_SPB = 0x00000003
PCAPNG_EPB = 0x00000006
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14

_INDEX_CHUNK = 65536  # records indexed per walk of the file
_PREFETCH_BYTES = 4096  # how far ahead of the record being read the reader asks for the file's bytes
_REC_COLS = 5  # data offset, caplen, wirelen, ts_ns, iface
_NS_PER_S = 1_000_000_000

# status codes returned by the walking kernels
_ST_OK = 0  # chunk full or end of file
_ST_META = -1  # pcapng: stopped at an SHB or IDB for Python to parse
_ST_END = -2  # (record parser) end of the file, at a record boundary
_ST_OVER_SNAP = -3  # (record parser) a good record whose captured length exceeds the snap length
_E_REC_HDR = 1
_E_REC_DATA = 2
_E_CAPLEN = 3
_E_BLK_HDR = 4
_E_BLK_ALIGN = 5
_E_BLK_SMALL = 6
_E_BLK_EOF = 7
_E_BLK_TRAILER = 8
_E_IFACE = 9
_E_CAP_BLOCK = 10
_E_TS_RANGE = 11

_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1
_MAX_TSOFFSET_S = _INT64_MAX // _NS_PER_S  # 9,223,372,036 s: int64 nanoseconds end in April 2262
_IF_COLS = 4  # per pcapng interface: timestamp mode (-1: not Ethernet, skipped), param, offset ns, snap cap
_IF_SKIP = -1


_REASONS = {
    _E_REC_HDR: "record header cut short ({a} of 16 bytes before end of file)",
    _E_REC_DATA: "captured length {a} runs past end of file ({b} bytes left)",
    _E_CAPLEN: "captured length {a} exceeds the limit of {b} bytes (no capture holds records that long)",
    _E_BLK_HDR: "block header cut short ({a} of 12 bytes before end of file)",
    _E_BLK_ALIGN: "block length {a} is not a multiple of 4",
    _E_BLK_SMALL: "block length {a} is too small for block type {b:#x}",
    _E_BLK_EOF: "block length {a} runs past end of file ({b} bytes left)",
    _E_BLK_TRAILER: "trailing block length {a} does not match block length {b}",
    _E_IFACE: "packet on interface {a}, but only {b} interfaces are defined",
    _E_CAP_BLOCK: "captured length {a} does not fit its block ({b} bytes of room)",
    _E_TS_RANGE: "timestamp {a} (in interface {b}'s units), plus the interface's if_tsoffset, is past the year "
    "2262: beyond 64-bit nanoseconds",
}


def file_kind(st_mode: int) -> str:
    """What a file is, from its ``st_mode``, for an error message: ``"a FIFO (named pipe)"``, ..."""
    for test, kind in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(st_mode):
            return kind
    return "not a regular file"


def _reason(code: int, a: int, b: int) -> str:
    """The message for an error code reported by a walk kernel, with its two numbers."""
    if code == _E_TS_RANGE:
        a &= _UINT64_MAX  # the kernel hands the unsigned 64-bit timestamp over as int64
    return _REASONS.get(code, "corrupt file (code {code})").format(a=a, b=b, code=code)


class PcapError(TailgateError):
    """A malformed capture file: ``path``, byte ``offset`` of the bad part, ``reason`` (a
    :class:`~tailgate.core.errors.TailgateError`: one line, no traceback)."""

    def __init__(self, path, offset: int, reason: str) -> None:
        self.path = str(path)
        self.offset = int(offset)
        self.reason = str(reason)
        super().__init__(f"{self.path}: byte {self.offset}: {self.reason}")

    def __reduce__(self):
        return (PcapError, (self.path, self.offset, self.reason))


# ------------------------------------------------------------------------------------------------
# numba kernels
# ------------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _u16(b, p, swap):
    """The 16-bit field at ``b[p:]`` in the file's byte order (one unaligned load)."""
    if swap:
        return ld_be16(b, p)
    return ld_le16(b, p)


@njit(cache=True, inline="always")
def _u32(b, p, swap):
    if swap:
        return ld_be32(b, p)
    return ld_le32(b, p)


@njit(cache=True, inline="always")
def _pcap_record(buf, pos, end, swap, frac_ns, snap):
    """The classic-pcap record header at ``pos``: ``(status, a, b, caplen, wirelen, ts_ns)``.

    ``status`` is ``_ST_OK`` with the fields (``_ST_OVER_SNAP`` where the captured length exceeds
    the snap length ``snap``: a good record, counted), ``_ST_END`` at the end of the file, else an
    error code with its two numbers ``a``, ``b`` (see ``_REASONS``).
    """
    left = end - pos
    if left == 0:
        return _ST_END, 0, 0, 0, 0, 0
    if left < 16:
        return _E_REC_HDR, left, 0, 0, 0, 0
    # (no view of the record header: a view per record costs two atomic operations)
    caplen = _u32(buf, pos + 8, swap)
    st = _ST_OK
    if caplen > snap:  # (one comparison on the common path: snap <= MAX_CAPLEN_BYTES)
        if caplen > MAX_CAPLEN_BYTES:
            return _E_CAPLEN, caplen, MAX_CAPLEN_BYTES, 0, 0, 0
        st = _ST_OVER_SNAP
    if caplen > left - 16:
        return _E_REC_DATA, caplen, left - 16, 0, 0, 0
    ts_ns = _u32(buf, pos, swap) * 1_000_000_000 + _u32(buf, pos + 4, swap) * frac_ns
    return st, 0, 0, caplen, _u32(buf, pos + 12, swap), ts_ns


@njit(cache=True)
def _walk_pcap(buf, pos, end, swap, frac_ns, snap, rec, n0):
    """Index classic-pcap records from ``pos`` into ``rec[n0:]``.

    Returns ``(n_total, pos, status, a, b, over_snap)``; on an error ``pos`` is the bad record's
    offset. ``over_snap`` counts the records indexed whose captured length exceeds ``snap``.
    """
    n = n0
    over = 0
    while n < rec.shape[0]:
        st, a, b, caplen, wirelen, ts_ns = _pcap_record(buf, pos, end, swap, frac_ns, snap)
        if st != _ST_OK:
            if st == _ST_END:
                break
            if st != _ST_OVER_SNAP:
                return n, pos, st, a, b, over
            over += 1
        # (rec[n, j], not a row view ``rec[n]``: a view costs two atomic operations)
        rec[n, 0] = pos + 16
        rec[n, 1] = caplen
        rec[n, 2] = wirelen
        rec[n, 3] = ts_ns
        rec[n, 4] = 0
        n += 1
        pos += 16 + caplen
    return n, pos, _ST_OK, 0, 0, over


@njit(cache=True)
def _read_pcap(
    buf, pos, end, swap, frac_ns, snap, idx, data,
    free, n_free, offset, length, wire_len, arrival_ns, in_port, out_port, flow_id, anno, in_use, headroom,
):  # fmt: skip
    """Walk classic-pcap records from ``pos`` and copy each straight into a slot taken from the
    pool's free stack, up to ``len(idx)`` records: one pass over the file's bytes, where indexing
    a chunk and then copying it read them twice (and the index itself once more).

    Returns ``(n, pos, status, a, b, clipped, captured_bytes)``; the slots taken are ``idx[:n]``
    (the caller lowers the pool's free count by ``n``). On an error ``pos`` is the bad record's
    offset and the records before it are delivered. It stops with status ``_ST_OVER_SNAP`` in
    front of a record longer than ``snap`` (the caller goes on with ``_read_pcap_counting``):
    counting such records here would cost every record of every file.
    """
    n = 0
    clipped = 0
    nbytes = 0
    st, a, b = _ST_OK, 0, 0
    while n < idx.shape[0]:
        st, a, b, caplen, wirelen, ts_ns = _pcap_record(buf, pos, end, swap, frac_ns, snap)
        if st != _ST_OK:
            if st == _ST_END:
                st = _ST_OK
            break
        prefetch_byte(buf, pos + _PREFETCH_BYTES)
        s = take_slot(free, n_free, n, offset, length, wire_len, arrival_ns, in_port, out_port, flow_id, anno, in_use, headroom)
        idx[n] = s
        clipped += _copy_frame(buf, pos + 16, caplen, wirelen, ts_ns, 0, data, s, offset, length, wire_len, arrival_ns, in_port)
        nbytes += caplen
        n += 1
        pos += 16 + caplen
    return n, pos, st, a, b, clipped, nbytes


@njit(cache=True)
def _read_pcap_counting(
    buf, pos, end, swap, frac_ns, snap, idx, data,
    free, n_free, offset, length, wire_len, arrival_ns, in_port, out_port, flow_id, anno, in_use, headroom,
):  # fmt: skip
    """``_read_pcap`` for a file that has records longer than its snap length: reads them too and
    returns their count as an eighth value, ``over_snap``."""
    n = 0
    clipped = 0
    nbytes = 0
    over = 0
    st, a, b = _ST_OK, 0, 0
    while n < idx.shape[0]:
        st, a, b, caplen, wirelen, ts_ns = _pcap_record(buf, pos, end, swap, frac_ns, snap)
        if st != _ST_OK:
            if st != _ST_OVER_SNAP:
                if st == _ST_END:
                    st = _ST_OK
                break
            st = _ST_OK
            over += 1
        prefetch_byte(buf, pos + _PREFETCH_BYTES)
        s = take_slot(free, n_free, n, offset, length, wire_len, arrival_ns, in_port, out_port, flow_id, anno, in_use, headroom)
        idx[n] = s
        clipped += _copy_frame(buf, pos + 16, caplen, wirelen, ts_ns, 0, data, s, offset, length, wire_len, arrival_ns, in_port)
        nbytes += caplen
        n += 1
        pos += 16 + caplen
    return n, pos, st, a, b, clipped, nbytes, over


@njit(cache=True, inline="always")
def _ng_ts_ns(ts, mode, param, off_ns):
    """pcapng timestamp ``ts`` (uint64, interface units) -> int64 ns.

    mode 0: ``ts*param``, 1: ``ts//param``, 2: units of ``2**-param`` s; plus ``off_ns``. The caller
    has checked ``ts`` against the interface's limit (``_ts_limit``), so the true result fits
    int64; the arithmetic wraps, so a product past int64 that a negative offset brings back is
    still exact.
    """
    if mode == 0:
        return np.int64(ts) * param + off_ns
    if mode == 1:
        return np.int64(ts // np.uint64(param)) + off_ns
    sec = np.int64(ts >> np.uint64(param))
    frac = np.int64(ts & ((np.uint64(1) << np.uint64(param)) - np.uint64(1)))
    if param > 33:
        frac = frac >> (param - 33)
        param = 33
    return sec * 1_000_000_000 + ((frac * 1_000_000_000) >> param) + off_ns


@njit(cache=True)
def _walk_pcapng(buf, pos, end, swap, ifs, if_maxts, n_if, last_ts, rec, n0):
    """Index pcapng packet blocks from ``pos`` into ``rec[n0:]``; skip unknown blocks.

    ``ifs[i]`` is interface ``i``'s (timestamp mode or ``_IF_SKIP``, param, offset ns, snap cap)
    and ``if_maxts[i]`` the largest timestamp (uint64 units) whose ns fit int64. Packets on a
    ``_IF_SKIP`` interface are checked for structure, counted and not indexed.
    Stops (status ``_ST_META``) in front of an SHB or IDB for Python to parse.
    Returns ``(n_total, pos, status, a, b, last_ts, over_snap, skipped)``.
    """
    n = n0
    over = 0
    skipped = 0
    cap_rows = rec.shape[0]
    while n < cap_rows:
        left = end - pos
        if left == 0:
            return n, pos, _ST_OK, 0, 0, last_ts, over, skipped
        if left < 12:
            return n, pos, _E_BLK_HDR, left, 0, last_ts, over, skipped
        btype = _u32(buf, pos, swap)
        if btype == PCAPNG_SHB or btype == PCAPNG_IDB:
            return n, pos, _ST_META, 0, 0, last_ts, over, skipped
        blen = _u32(buf, pos + 4, swap)
        if blen % 4 != 0:
            return n, pos, _E_BLK_ALIGN, blen, 0, last_ts, over, skipped
        if blen < 12:
            return n, pos, _E_BLK_SMALL, blen, btype, last_ts, over, skipped
        if blen > left:
            return n, pos, _E_BLK_EOF, blen, left, last_ts, over, skipped
        trailer = _u32(buf, pos + blen - 4, swap)
        if trailer != blen:
            return n, pos, _E_BLK_TRAILER, trailer, blen, last_ts, over, skipped
        if btype == PCAPNG_EPB or btype == PCAPNG_PB:
            if blen < 32:
                return n, pos, _E_BLK_SMALL, blen, btype, last_ts, over, skipped
            if btype == PCAPNG_EPB:
                ifid = _u32(buf, pos + 8, swap)
            else:
                ifid = _u16(buf, pos + 8, swap)
            if ifid >= n_if:
                return n, pos, _E_IFACE, ifid, n_if, last_ts, over, skipped
            caplen = _u32(buf, pos + 20, swap)
            wirelen = _u32(buf, pos + 24, swap)
            if caplen > blen - 32:
                return n, pos, _E_CAP_BLOCK, caplen, blen - 32, last_ts, over, skipped
            mode = ifs[ifid, 0]
            if mode == _IF_SKIP:
                skipped += 1
                pos += blen
                continue
            if caplen > MAX_CAPLEN_BYTES:
                return n, pos, _E_CAPLEN, caplen, MAX_CAPLEN_BYTES, last_ts, over, skipped
            ts = (np.uint64(_u32(buf, pos + 12, swap)) << np.uint64(32)) | np.uint64(_u32(buf, pos + 16, swap))
            if ts > if_maxts[ifid]:
                return n, pos, _E_TS_RANGE, np.int64(ts), ifid, last_ts, over, skipped
            if caplen > ifs[ifid, 3]:
                over += 1
            last_ts = _ng_ts_ns(ts, mode, ifs[ifid, 1], ifs[ifid, 2])
            rec[n, 0] = pos + 28
            rec[n, 1] = caplen
            rec[n, 2] = wirelen
            rec[n, 3] = last_ts
            rec[n, 4] = ifid
            n += 1
        elif btype == PCAPNG_SPB:
            if blen < 16:
                return n, pos, _E_BLK_SMALL, blen, btype, last_ts, over, skipped
            if n_if < 1:
                return n, pos, _E_IFACE, 0, n_if, last_ts, over, skipped
            if ifs[0, 0] == _IF_SKIP:
                skipped += 1
                pos += blen
                continue
            wirelen = _u32(buf, pos + 8, swap)
            caplen = min(wirelen, blen - 16, ifs[0, 3])
            rec[n, 0] = pos + 12
            rec[n, 1] = caplen
            rec[n, 2] = wirelen
            rec[n, 3] = last_ts
            rec[n, 4] = 0
            n += 1
        pos += blen
    return n, pos, _ST_OK, 0, 0, last_ts, over, skipped


@njit(cache=True, inline="always")
def _copy_frame(buf, src, caplen, wirelen, ts_ns, port, data, s, offset, length, wire_len, arrival_ns, in_port):
    """Copy ``caplen`` bytes at ``buf[src]`` into slot ``s`` at its offset and set its metadata;
    returns 1 if the frame was clipped to the slot, else 0."""
    o = offset[s]
    c = caplen
    clipped = 0
    room = data.shape[1] - o
    if c > room:
        c = room
        clipped = 1
    # Unsigned indices (no wraparound checks, so LLVM vectorizes the loop) into a slot row that
    # is not reference counted: slices of ``data`` and ``buf`` here cost two atomic operations
    # each, per packet.
    row = slot_row(data, s)
    for i in range(c):
        row[np.uint64(o + i)] = buf[np.uint64(src + i)]
    length[s] = c
    w = wirelen
    if w < c:
        w = c
    if w > 0x7FFFFFFF:
        w = 0x7FFFFFFF
    wire_len[s] = w
    arrival_ns[s] = ts_ns
    in_port[s] = port
    return clipped


@njit(cache=True, inline="always")
def _copy_record(buf, rec, r, data, s, offset, length, wire_len, arrival_ns, in_port):
    """Copy indexed record ``r`` into slot ``s``; returns (captured bytes, clipped 0/1)."""
    caplen = rec[r, 1]
    clipped = _copy_frame(buf, rec[r, 0], caplen, rec[r, 2], rec[r, 3], rec[r, 4], data, s, offset, length, wire_len, arrival_ns, in_port)
    return caplen, clipped


@njit(cache=True)
def _fill_slots(buf, rec, start, data, offset, length, wire_len, arrival_ns, in_port, slots):
    """Copy records ``rec[start:start+len(slots)]`` into already allocated slots.

    Returns ``(clipped, captured_bytes)``.
    """
    clipped = 0
    nbytes = 0
    for k in range(slots.shape[0]):
        b, c = _copy_record(buf, rec, start + k, data, slots[k], offset, length, wire_len, arrival_ns, in_port)
        nbytes += b
        clipped += c
    return clipped, nbytes


@njit(cache=True, inline="always")
def _put_u32le(out, p, v):
    out[p] = v & 0xFF
    out[p + 1] = (v >> 8) & 0xFF
    out[p + 2] = (v >> 16) & 0xFF
    out[p + 3] = (v >> 24) & 0xFF


@njit(cache=True)
def _build_records(data, offset, length, wire_len, arrival_ns, anno, ts_anno, slots, snaplen, nanosecond, ng, out):
    """Write every packet's record (pcap header or pcapng EPB, then the bytes) into ``out``.

    Returns the bytes written, or ``-needed`` when ``out`` is too small (nothing written then).
    The timestamp is ``arrival_ns``, or ``anno[slot, ts_anno]`` where that is set (ts_anno >= 0).
    """
    n = slots.shape[0]
    need = 0
    for k in range(n):
        c = min(np.int64(length[slots[k]]), snaplen)
        need += (32 + ((c + 3) & ~3)) if ng else (16 + c)
    if need > out.shape[0]:
        return -need
    p = 0
    for k in range(n):
        s = slots[k]
        full = np.int64(length[s])
        c = min(full, snaplen)
        w = np.int64(wire_len[s])
        if w <= 0:
            w = full
        t = np.int64(arrival_ns[s])
        if ts_anno >= 0 and anno[s, ts_anno] != 0:
            t = np.int64(anno[s, ts_anno])
        if t < 0:
            t = 0
        if ng:
            units = t if nanosecond else t // 1000
            blen = 32 + ((c + 3) & ~3)
            _put_u32le(out, p, PCAPNG_EPB)
            _put_u32le(out, p + 4, blen)
            _put_u32le(out, p + 8, 0)
            _put_u32le(out, p + 12, units >> 32)
            _put_u32le(out, p + 16, units & 0xFFFFFFFF)
            _put_u32le(out, p + 20, c)
            _put_u32le(out, p + 24, w)
            d = p + 28
            for i in range(c, (c + 3) & ~3):
                out[d + i] = 0
            _put_u32le(out, p + blen - 4, blen)
            p += blen
        else:
            _put_u32le(out, p, t // _NS_PER_S)
            _put_u32le(out, p + 4, (t % _NS_PER_S) if nanosecond else (t % _NS_PER_S) // 1000)
            _put_u32le(out, p + 8, c)
            _put_u32le(out, p + 12, w)
            d = p + 16
            p += 16 + c
        o = offset[s]
        out[d : d + c] = data[s, o : o + c]  # a slice copy compiles to a memcpy; a byte loop does not
    return p


@functools.lru_cache(maxsize=256)
def _ts_limit(mode: int, param: int, off_ns: int) -> int:
    """The largest pcapng timestamp (in interface units, at most 2**64 - 1) whose nanoseconds
    since the epoch, ``off_ns`` included, fit int64 (exact integers, as ``_ng_ts_ns`` computes)."""
    room = _INT64_MAX - off_ns  # >= 0: the offset itself fits
    if mode == _IF_SKIP:
        return _UINT64_MAX
    if mode == 0:
        return min(room // param, _UINT64_MAX)
    if mode == 1:
        return min(room * param + param - 1, _UINT64_MAX)

    def ns(ts: int) -> int:
        sec, frac, p = ts >> param, ts & ((1 << param) - 1), param
        if p > 33:
            frac, p = frac >> (p - 33), 33
        return sec * _NS_PER_S + ((frac * _NS_PER_S) >> p)

    if ns(_UINT64_MAX) <= room:
        return _UINT64_MAX
    lo, hi = 0, _UINT64_MAX  # ns(lo) <= room < ns(hi); ns never decreases as ts grows
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ns(mid) <= room:
            lo = mid
        else:
            hi = mid
    return lo


# ------------------------------------------------------------------------------------------------
# reader
# ------------------------------------------------------------------------------------------------
class PcapReader:
    """Reads a pcap or pcapng file of Ethernet frames into pool batches (see the module manual)."""

    def __init__(self, path) -> None:
        self.path = os.fspath(path)
        self.format: str = ""
        self.linktype: int | None = None
        self.snaplen = 0
        self.ts_resolution_ns = 1000.0
        self.nanosecond = False
        self.packets_read = 0
        self.bytes_read = 0
        self.truncated_to_slot = 0
        self.longer_than_snaplen = 0
        self.skipped_not_ethernet = 0
        self.error: PcapError | None = None
        self._pending: PcapError | None = None  # found by the indexer, not yet reached by read()
        self._pool_cols = None  # (pool.data, columns...) of the pool last read into
        self._mm = None
        self._fh = None
        self._buf = np.zeros(0, dtype=np.uint8)
        self._end = 0
        self._pos = 0  # next file byte to index
        self._swap = False
        self._eof = False  # the indexer reached the end of the file or an error
        self._rec = np.zeros((0, _REC_COLS), dtype=np.int64)  # sized in _index_more
        self._rec_n = 0
        self._rec_cur = 0
        # pcap
        self._frac_ns = 1000
        self._snap = MAX_CAPLEN_BYTES  # the snap length (MAX_CAPLEN_BYTES where the header says 0)
        self._over_snap_seen = False  # a record longer than the snap length was met: read by the counting kernel
        # pcapng interfaces of the current section: rows [:_n_if] of arrays that grow by doubling
        self._ifs = np.zeros((8, _IF_COLS), dtype=np.int64)
        self._if_maxts = np.zeros(8, dtype=np.uint64)
        self._n_if = 0
        self._last_ts = 0
        self._open()

    # -- opening ---------------------------------------------------------------------------------
    def _open(self) -> None:
        # O_NONBLOCK: opening a FIFO that no one writes to would otherwise wait forever
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), self.path)
            if not stat.S_ISREG(mode):
                raise PcapError(self.path, 0, f"not a regular file but {file_kind(mode)}: a capture must be a file")
            self._fh = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        try:
            size = os.fstat(self._fh.fileno()).st_size
            if size > 0:
                self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
                self._buf = np.frombuffer(self._mm, dtype=np.uint8)
            self._end = size
            if size < 4:
                raise PcapError(self.path, 0, f"file too short for a capture header ({size} bytes)")
            head = bytes(self._buf[:4])
            magic_le = struct.unpack("<I", head)[0]
            if magic_le == PCAPNG_SHB:
                self.format = "pcapng"
                self._open_pcapng()
            elif magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or struct.unpack(">I", head)[0] in (
                PCAP_MAGIC_US,
                PCAP_MAGIC_NS,
            ):
                self.format = "pcap"
                self._open_pcap()
            else:
                raise PcapError(self.path, 0, f"unknown magic number 0x{head.hex()} (not pcap or pcapng)")
        except BaseException:
            self.close()
            raise

    def _open_pcap(self) -> None:
        if self._end < 24:
            raise PcapError(self.path, 0, f"file too short for the 24-byte pcap header ({self._end} bytes)")
        hdr = bytes(self._buf[:24])
        if struct.unpack("<I", hdr[:4])[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            e, self._swap = "<", False
        else:
            e, self._swap = ">", True
        magic, _vmaj, _vmin, _zone, _sigfigs, snaplen, network = struct.unpack(e + "IHHiIII", hdr)
        self.nanosecond = magic == PCAP_MAGIC_NS
        self._frac_ns = 1 if self.nanosecond else 1000
        self.ts_resolution_ns = float(self._frac_ns)
        self.snaplen = snaplen
        self.linktype = network & 0xFFFF
        if self.linktype != LINKTYPE_ETHERNET:
            raise PcapError(self.path, 20, f"unsupported link type {self.linktype} (only 1, Ethernet, is accepted)")
        self._snap = min(snaplen, MAX_CAPLEN_BYTES) if snaplen > 0 else MAX_CAPLEN_BYTES
        self._pos = 24

    def _open_pcapng(self) -> None:
        self._pos = self._parse_shb(0)
        # Parse the blocks in front of the first packet, so that linktype/snaplen are known
        # at open and a broken header raises here.
        first_idb = True
        while self._pos < self._end:
            if self._end - self._pos >= 4:
                (btype,) = struct.unpack(">I" if self._swap else "<I", bytes(self._buf[self._pos : self._pos + 4]))
                if btype in (PCAPNG_EPB, PCAPNG_SPB, PCAPNG_PB):
                    break  # packet blocks are validated by the indexing kernel
            btype, blen = self._block_header(self._pos)
            if btype == PCAPNG_SHB:
                self._pos = self._parse_shb(self._pos)
            elif btype == PCAPNG_IDB:
                self._pos = self._parse_idb(self._pos)
                if first_idb:
                    first_idb = False
                    self._set_first_iface_attrs()
            else:
                self._pos += blen

    def _set_first_iface_attrs(self) -> None:
        mode, param = int(self._ifs[0, 0]), int(self._ifs[0, 1])
        if mode == 0:
            self.ts_resolution_ns = float(param)
        elif mode == 1:
            self.ts_resolution_ns = 1.0 / param
        else:
            self.ts_resolution_ns = 1e9 / float(2**param)
        self.nanosecond = self.ts_resolution_ns <= 1.0

    # -- pcapng metadata blocks (Python: rare) ---------------------------------------------------
    def _block_header(self, pos: int) -> tuple[int, int]:
        """Validate the block at ``pos`` (length, alignment, trailer); return (type, length)."""
        left = self._end - pos
        if left < 12:
            raise PcapError(self.path, pos, _reason(_E_BLK_HDR, left, 0))
        e = ">" if self._swap else "<"
        btype, blen = struct.unpack(e + "II", bytes(self._buf[pos : pos + 8]))
        if blen % 4:
            raise PcapError(self.path, pos, _reason(_E_BLK_ALIGN, blen, 0))
        if blen < 12:
            raise PcapError(self.path, pos, _reason(_E_BLK_SMALL, blen, btype))
        if blen > left:
            raise PcapError(self.path, pos, _reason(_E_BLK_EOF, blen, left))
        (trailer,) = struct.unpack(e + "I", bytes(self._buf[pos + blen - 4 : pos + blen]))
        if trailer != blen:
            raise PcapError(self.path, pos, _reason(_E_BLK_TRAILER, trailer, blen))
        return btype, blen

    def _parse_shb(self, pos: int) -> int:
        left = self._end - pos
        if left < 12:
            raise PcapError(self.path, pos, f"section header block cut short ({left} bytes)")
        bom = bytes(self._buf[pos + 8 : pos + 12])
        if bom == b"\x4d\x3c\x2b\x1a":
            self._swap = False
        elif bom == b"\x1a\x2b\x3c\x4d":
            self._swap = True
        else:
            raise PcapError(self.path, pos, f"bad pcapng byte-order magic 0x{bom.hex()}")
        btype, blen = self._block_header(pos)
        if blen < 28:
            raise PcapError(self.path, pos, _reason(_E_BLK_SMALL, blen, btype))
        e = ">" if self._swap else "<"
        (major,) = struct.unpack(e + "H", bytes(self._buf[pos + 12 : pos + 14]))
        if major != 1:
            raise PcapError(self.path, pos, f"unsupported pcapng major version {major}")
        # interface ids are per section
        self._n_if = 0
        return pos + blen

    def _parse_idb(self, pos: int) -> int:
        btype, blen = self._block_header(pos)
        if blen < 20:
            raise PcapError(self.path, pos, _reason(_E_BLK_SMALL, blen, btype))
        e = ">" if self._swap else "<"
        linktype, _res, snaplen = struct.unpack(e + "HHI", bytes(self._buf[pos + 8 : pos + 16]))
        ethernet = linktype == LINKTYPE_ETHERNET
        if not ethernet and self.linktype is None:
            raise PcapError(self.path, pos, f"unsupported link type {linktype} (only 1, Ethernet, is accepted)")
        tsresol = 6
        tsoffset_s = 0
        p, opt_end = pos + 16, pos + blen - 4
        while p + 4 <= opt_end:
            code, olen = struct.unpack(e + "HH", bytes(self._buf[p : p + 4]))
            if code == 0:
                break
            if p + 4 + olen > opt_end:
                raise PcapError(self.path, pos, f"interface option {code} of {olen} bytes runs past its block")
            val = bytes(self._buf[p + 4 : p + 4 + olen])
            if code == _OPT_IF_TSRESOL and olen >= 1:
                tsresol = val[0]
            elif code == _OPT_IF_TSOFFSET and olen == 8:
                (tsoffset_s,) = struct.unpack(e + "q", val)
            p += 4 + ((olen + 3) & ~3)
        if not ethernet:  # a later non-Ethernet interface: its packets are skipped and counted
            mode, param, tsoffset_s = _IF_SKIP, 1, 0
        elif tsresol & 0x80:
            shift = tsresol & 0x7F
            if shift > 62:
                raise PcapError(self.path, pos, f"unsupported if_tsresol 2^-{shift}")
            mode, param = 2, shift
        elif tsresol <= 9:
            mode, param = 0, 10 ** (9 - tsresol)
        elif tsresol <= 18:
            mode, param = 1, 10 ** (tsresol - 9)
        else:
            raise PcapError(self.path, pos, f"unsupported if_tsresol 10^-{tsresol}")
        if abs(tsoffset_s) > _MAX_TSOFFSET_S:
            raise PcapError(
                self.path, pos, f"if_tsoffset {tsoffset_s} s is out of range: timestamps are 64-bit nanoseconds, "
                f"which hold at most {_MAX_TSOFFSET_S} s (the years 1677 to 2262)",
            )  # fmt: skip
        if self.linktype is None:  # the attributes describe the file's first interface
            self.linktype = linktype
            self.snaplen = snaplen
        i = self._n_if
        if i == self._ifs.shape[0]:  # grow by doubling: appending n interfaces costs O(n)
            self._ifs = np.concatenate([self._ifs, np.zeros_like(self._ifs)])
            self._if_maxts = np.concatenate([self._if_maxts, np.zeros_like(self._if_maxts)])
        off_ns = tsoffset_s * _NS_PER_S
        self._ifs[i] = (mode, param, off_ns, min(snaplen, MAX_CAPLEN_BYTES) if snaplen > 0 else MAX_CAPLEN_BYTES)
        self._if_maxts[i] = _ts_limit(mode, param, off_ns)
        self._n_if = i + 1
        return pos + blen

    # -- indexing --------------------------------------------------------------------------------
    def _index_more(self, want: int) -> None:
        """Make at least ``want`` records available in the index unless the file ends first."""
        avail = self._rec_n - self._rec_cur
        if self._eof or avail >= want:
            return
        # a small file gets a small index (a record takes at least 16 bytes of file)
        rows = max(min(_INDEX_CHUNK, (self._end - self._pos) // 16 + 1), want)
        if self._rec.shape[0] < rows:
            new = np.empty((rows, _REC_COLS), dtype=np.int64)
            new[:avail] = self._rec[self._rec_cur : self._rec_n]
            self._rec = new
        elif avail:
            self._rec[:avail] = self._rec[self._rec_cur : self._rec_n].copy()
        self._rec_cur = 0
        self._rec_n = avail
        while self._rec_n < self._rec.shape[0]:
            if self.format == "pcap":
                n, pos, st, a, b, over = _walk_pcap(
                    self._buf, self._pos, self._end, self._swap, self._frac_ns, self._snap, self._rec, self._rec_n
                )
            else:
                n, pos, st, a, b, self._last_ts, over, skipped = _walk_pcapng(
                    self._buf, self._pos, self._end, self._swap, self._ifs, self._if_maxts, self._n_if,
                    self._last_ts, self._rec, self._rec_n,
                )  # fmt: skip
                self.skipped_not_ethernet += skipped
            self.longer_than_snaplen += over
            self._rec_n, self._pos = int(n), int(pos)
            if st == _ST_META:
                try:
                    btype = int(self._buf[pos])  # first byte: 0x0a for an SHB in either order, never for an IDB
                    if btype == (PCAPNG_SHB & 0xFF):
                        self._pos = self._parse_shb(self._pos)
                    else:
                        self._pos = self._parse_idb(self._pos)
                except PcapError as exc:
                    self._pending = exc
                    self._eof = True
                    return
                continue
            if st != _ST_OK:
                self._pending = PcapError(self.path, pos, _reason(int(st), int(a), int(b)))
                self._eof = True
            elif self._pos >= self._end:
                self._eof = True
            return

    # -- reading -----------------------------------------------------------------------------------
    def read(self, pool: PacketPool, max_packets: int = 32) -> Batch:
        """Up to ``max_packets`` next packets as a new batch of ``pool``; an empty batch at EOF."""
        if self.error is not None:
            raise self.error
        if max_packets <= 0:
            return pool.empty_batch()
        if self._rec_cur == self._rec_n and self.format == "pcap" and not self._eof and max_packets <= pool.n_free:
            return self._read_direct(pool, max_packets)
        if self._rec_n - self._rec_cur < max_packets:
            self._index_more(max_packets)
        n = min(max_packets, self._rec_n - self._rec_cur)
        if n < max_packets and self._pending is not None:
            self.error = self._pending
            if n == 0:
                raise self.error
        if n == 0:
            return pool.empty_batch()
        start = self._rec_cur
        cols = self._pool_cols
        if cols is None or cols[0] is not pool.data:
            cols = self._pool_cols = self._columns_for(pool)
        idx = pool.alloc_idx(n)  # raises PoolExhausted when the pool is short
        clipped, nbytes = _fill_slots(self._buf, self._rec, start, *cols, idx)
        self.truncated_to_slot += clipped
        self._rec_cur = start + n
        self.packets_read += n
        self.bytes_read += nbytes
        return Batch(pool, idx)

    def _read_direct(self, pool: PacketPool, max_packets: int) -> Batch:
        """Classic pcap with nothing indexed ahead: walk and copy in one kernel call."""
        idx = np.empty(max_packets, np.int32)
        if self._over_snap_seen:
            n, pos, st, a, b, clipped, nbytes = self._read_counting(pool, self._pos, idx)
        else:
            n, pos, st, a, b, clipped, nbytes = _read_pcap(
                self._buf, self._pos, self._end, self._swap, self._frac_ns, self._snap, idx, pool.data,
                *pool.slot_columns(),
            )  # fmt: skip
            if st == _ST_OVER_SNAP:  # the file has longer records: from here on, read and count them
                self._over_snap_seen = True
                m, pos, st, a, b, clipped2, nbytes2 = self._read_counting(pool, pos, idx[n:], n_taken=n)
                n, clipped, nbytes = n + m, clipped + clipped2, nbytes + nbytes2
        pool._n_free -= n
        self._pos = pos
        if st != _ST_OK:
            self.error = PcapError(self.path, pos, _reason(int(st), int(a), int(b)))
            self._eof = True
        elif pos >= self._end:
            self._eof = True
        self.truncated_to_slot += clipped
        self.packets_read += n
        self.bytes_read += nbytes
        if n == 0:
            if self.error is not None:
                raise self.error
            return pool.empty_batch()
        return Batch(pool, idx if n == max_packets else idx[:n])

    def _read_counting(self, pool: PacketPool, pos: int, idx: np.ndarray, n_taken: int = 0) -> tuple:
        """``_read_pcap_counting`` from ``pos`` into ``idx``, after ``n_taken`` slots already taken
        from the pool by this read; counts the records longer than the snap length."""
        free, n_free, *cols = pool.slot_columns()
        n, pos, st, a, b, clipped, nbytes, over = _read_pcap_counting(
            self._buf, pos, self._end, self._swap, self._frac_ns, self._snap, idx, pool.data, free, n_free - n_taken, *cols
        )  # fmt: skip
        self.longer_than_snaplen += over
        return n, pos, st, a, b, clipped, nbytes

    @staticmethod
    def _columns_for(pool: PacketPool) -> tuple:
        return (pool.data, pool.offset, pool.length, pool.wire_len, pool.arrival_ns, pool.in_port)

    def iter_batches(self, pool: PacketPool, burst: int = 32) -> Iterator[Batch]:
        """Yield batches of up to ``burst`` packets until end of file (raises at a corrupt point)."""
        while True:
            b = self.read(pool, burst)
            if not len(b):
                return
            yield b

    def read_all(self, pool: PacketPool) -> Batch:
        """Every remaining packet as one batch. On a corrupt file the slots taken are given back
        and the :class:`PcapError` is raised."""
        parts: list[Batch] = []
        try:
            while True:
                b = self.read(pool, _INDEX_CHUNK)
                if not len(b):
                    break
                parts.append(b)
        except BaseException:
            for b in parts:
                b.free()
            raise
        if not parts:
            return pool.empty_batch()
        return Batch.merge(parts)

    # -- lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        self._buf = np.zeros(0, dtype=np.uint8)
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a view is still alive somewhere; the GC will unmap it
                pass
            self._mm = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "PcapReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PcapReader({self.path!r}, format={self.format!r}, packets_read={self.packets_read})"


# ------------------------------------------------------------------------------------------------
# writer
# ------------------------------------------------------------------------------------------------
class PcapWriter:
    """Writes batches to a classic pcap or pcapng file (see the module manual)."""

    def __init__(
        self,
        path,
        *,
        format: str = "pcap",  # noqa: A002 - the public name asked for
        nanosecond: bool = True,
        snaplen: int = 65535,
        linktype: int = LINKTYPE_ETHERNET,
    ) -> None:
        if format not in ("pcap", "pcapng"):
            raise ValueError(f"PcapWriter: format must be 'pcap' or 'pcapng', got {format!r}")
        if not 0 < snaplen <= 0xFFFFFFFF:
            raise ValueError(f"PcapWriter: snaplen must be a positive 32-bit number, got {snaplen}")
        self.path = os.fspath(path)
        self.format = format
        self.nanosecond = bool(nanosecond)
        self.snaplen = int(snaplen)
        self.linktype = int(linktype)
        self.packets_written = 0
        self._out = np.empty(1 << 16, dtype=np.uint8)
        self.bytes_written = 0
        self._f = open(self.path, "wb")
        self._write_header()

    def _write_header(self) -> None:
        if self.format == "pcap":
            magic = PCAP_MAGIC_NS if self.nanosecond else PCAP_MAGIC_US
            hdr = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, self.snaplen, self.linktype)
        else:
            shb = struct.pack("<IIIHHqI", PCAPNG_SHB, 28, PCAPNG_BOM, 1, 0, -1, 28)
            opts = struct.pack("<HHB3xHH", _OPT_IF_TSRESOL, 1, 9, 0, 0) if self.nanosecond else b""
            blen = 20 + len(opts)
            idb = struct.pack("<IIHHI", PCAPNG_IDB, blen, self.linktype, 0, self.snaplen) + opts + struct.pack("<I", blen)
            hdr = shb + idb
        self._f.write(hdr)
        self.bytes_written += len(hdr)

    def write(self, batch: Batch, ts_anno: int = -1) -> None:
        """Write every packet of ``batch``: one numba kernel builds the records, one ``write``.

        Timestamps come from ``arrival_ns``; with ``ts_anno >= 0`` from that annotation column
        instead, where it is set (PcapSink uses it to write capture timestamps back out).
        """
        n = len(batch)
        if n == 0:
            return
        if self._f is None:
            raise ValueError(f"PcapWriter({self.path!r}) is closed")
        pool = batch.pool
        args = (pool.data, pool.offset, pool.length, pool.wire_len, pool.arrival_ns, pool.anno, ts_anno, batch.idx,
                self.snaplen, self.nanosecond, self.format == "pcapng")
        nbytes = _build_records(*args, self._out)
        if nbytes < 0:
            # The output buffer is reused across batches; grow it (with room to spare) when short.
            self._out = np.empty(max(-nbytes, 2 * self._out.shape[0]), dtype=np.uint8)
            nbytes = _build_records(*args, self._out)
        self._f.write(self._out[:nbytes].data)
        self.packets_written += n
        self.bytes_written += nbytes

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PcapWriter({self.path!r}, format={self.format!r}, packets_written={self.packets_written})"
