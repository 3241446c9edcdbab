"""pcap / pcapng reading and writing, checked against independent readers and writers.

Independent references: dpkt's and scapy's pcap/pcapng readers and writers, tshark, and the
hand-made file builders below (``struct`` only, either byte order).
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import threading
import time

import dpkt
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.utils import RawPcapNgReader, RawPcapReader

from tailgate.packet.pcap import PcapError, PcapReader, PcapWriter
from tailgate.packet.pcapinfo import info_lines, pcap_info
from tailgate.packet.pool import PacketPool, PoolExhausted

TS0_NS = 1_700_000_000_123_456_789


@pytest.fixture
def pool():
    return PacketPool(n_slots=2048)


def random_frames(n: int, seed: int = 1, lo: int = 14, hi: int = 1500) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, int(k), dtype=np.uint8).tobytes() for k in rng.integers(lo, hi + 1, n)]


def read_everything(path, pool, burst=32):
    """(frames, wire_lens, arrival_ns, in_port) of every packet, freeing the slots."""
    frames, wire, ts, port = [], [], [], []
    with PcapReader(path) as rd:
        for b in rd.iter_batches(pool, burst=burst):
            frames += b.frames()
            wire += b.wire_lens.tolist()
            ts += b.arrival_ns.tolist()
            port += b.in_port.tolist()
            b.free()
        assert rd.error is None
        assert rd.packets_read == len(frames)
        assert rd.bytes_read == sum(len(f) for f in frames)
    return frames, wire, ts, port


# ------------------------------------------------------------------------------------------------
# hand-made files (independent of the writer under test)
# ------------------------------------------------------------------------------------------------
def pcap_bytes(records, *, e="<", nano=False, snaplen=65535, linktype=1) -> bytes:
    """records: (ts_sec, ts_frac, data, wirelen)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, wire in records:
        out.append(struct.pack(e + "IIII", sec, frac, len(data), wire) + data)
    return b"".join(out)


def ng_block(e: str, btype: int, body: bytes) -> bytes:
    body = body + b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def ng_shb(e: str) -> bytes:
    return ng_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def ng_idb(e: str, *, linktype=1, snaplen=0, tsresol=None, tsoffset=None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += struct.pack(e + "HHB3x", 9, 1, tsresol)
    if tsoffset is not None:
        opts += struct.pack(e + "HHq", 14, 8, tsoffset)
    if opts:
        opts += struct.pack(e + "HH", 0, 0)
    return ng_block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def ng_epb(e: str, iface: int, ts_units: int, data: bytes, wire: int | None = None) -> bytes:
    wire = len(data) if wire is None else wire
    return ng_block(e, 6, struct.pack(e + "IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), wire) + data)


def ng_spb(e: str, data: bytes) -> bytes:
    return ng_block(e, 3, struct.pack(e + "I", len(data)) + data)


def ng_pb(e: str, iface: int, ts_units: int, data: bytes) -> bytes:
    return ng_block(e, 2, struct.pack(e + "HHIIII", iface, 0, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), len(data)) + data)


# ------------------------------------------------------------------------------------------------
# round trips, checked by dpkt and scapy
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("nano", [True, False])
def test_round_trip_against_dpkt_and_scapy(tmp_path, pool, fmt, nano):
    frames = random_frames(300, seed=2)
    ts = TS0_NS + np.arange(len(frames), dtype=np.int64) * 1_000_003
    batch = pool.from_frames(frames, arrival_ns=ts)
    path = tmp_path / f"rt.{fmt}"
    with PcapWriter(path, format=fmt, nanosecond=nano) as wr:
        wr.write(batch.select(np.arange(0, 100)))
        wr.write(batch.select(np.arange(100, 300)))
        assert wr.packets_written == 300
    batch.free()
    exp_ts = ts if nano else ts // 1000 * 1000

    # ours
    got, wire, got_ts, port = read_everything(path, pool, burst=37)
    assert got == frames
    assert wire == [len(f) for f in frames]
    assert got_ts == exp_ts.tolist()
    assert port == [0] * len(frames)

    # dpkt (float timestamps)
    with open(path, "rb") as f:
        rd = dpkt.pcapng.Reader(f) if fmt == "pcapng" else dpkt.pcap.Reader(f)
        pkts = list(rd)
    assert [bytes(b) for _, b in pkts] == frames
    assert np.allclose([float(t) for t, _ in pkts], exp_ts / 1e9, rtol=0, atol=2e-6)

    # scapy (exact integer timestamps)
    if fmt == "pcap":
        with RawPcapReader(str(path)) as rr:
            recs = list(rr)
        scapy_ts = [m.sec * 10**9 + m.usec * (1 if nano else 1000) for _, m in recs]
    else:
        with RawPcapNgReader(str(path)) as rr:
            recs = list(rr)
        assert {m.tsresol for _, m in recs} == {10**9 if nano else 10**6}
        scapy_ts = [((m.tshigh << 32) | m.tslow) * (10**9 // m.tsresol) for _, m in recs]
    assert [d for d, _ in recs] == frames
    assert [m.wirelen for _, m in recs] == [len(f) for f in frames]
    assert scapy_ts == exp_ts.tolist()


def test_reads_files_written_by_dpkt(tmp_path, pool):
    frames = random_frames(40, seed=3)
    for fmt in ("pcap", "pcapng"):
        path = tmp_path / f"dpkt.{fmt}"
        with open(path, "wb") as f:
            wr = dpkt.pcapng.Writer(f, snaplen=65535) if fmt == "pcapng" else dpkt.pcap.Writer(f, snaplen=65535, nano=True)
            for i, fr in enumerate(frames):
                wr.writepkt(fr, ts=1_700_000_000 + i * 0.25)
        got, wire, ts, _ = read_everything(path, pool)
        assert got == frames
        assert ts == [1_700_000_000 * 10**9 + i * 250_000_000 for i in range(len(frames))]
        with PcapReader(path) as rd:
            assert rd.format == fmt and rd.linktype == 1


def test_snaplen_shorter_than_packets_keeps_wire_len(tmp_path, pool):
    frames = random_frames(50, seed=4, lo=60, hi=1500)
    batch = pool.from_frames(frames, arrival_ns=TS0_NS)
    for fmt in ("pcap", "pcapng"):
        path = tmp_path / f"snap.{fmt}"
        with PcapWriter(path, format=fmt, snaplen=96) as wr:
            wr.write(batch)
        got, wire, _, _ = read_everything(path, pool)
        assert got == [f[:96] for f in frames]
        assert wire == [len(f) for f in frames]
        with PcapReader(path) as rd:
            assert rd.snaplen == 96
        with open(path, "rb") as f:
            rd = dpkt.pcapng.Reader(f) if fmt == "pcapng" else dpkt.pcap.Reader(f)
            assert [bytes(b) for _, b in rd] == [f[:96] for f in frames]
    batch.free()


def test_wire_len_zero_falls_back_to_length(tmp_path, pool):
    batch = pool.from_frames(random_frames(5, seed=5))
    batch.wire_lens = 0
    path = tmp_path / "w.pcap"
    with PcapWriter(path) as wr:
        wr.write(batch)
    with RawPcapReader(str(path)) as rr:
        assert [m.wirelen for _, m in rr] == batch.lengths.tolist()


@pytest.mark.parametrize("nano", [True, False])
def test_big_endian_pcap(tmp_path, pool, nano):
    frames = random_frames(20, seed=6)
    recs = [(1_600_000_000 + i, 999_999 - i, fr, len(fr) + 4) for i, fr in enumerate(frames)]
    path = tmp_path / "be.pcap"
    path.write_bytes(pcap_bytes(recs, e=">", nano=nano, snaplen=4000))
    got, wire, ts, _ = read_everything(path, pool, burst=7)
    assert got == frames
    assert wire == [len(f) + 4 for f in frames]
    mult = 1 if nano else 1000
    assert ts == [s * 10**9 + fr * mult for s, fr, _, _ in recs]
    with PcapReader(path) as rd:
        assert (rd.format, rd.snaplen, rd.nanosecond, rd.ts_resolution_ns) == ("pcap", 4000, nano, float(mult))
    # scapy agrees on the hand-made file
    with RawPcapReader(str(path)) as rr:
        assert [d for d, _ in rr] == frames


@pytest.mark.parametrize("e", ["<", ">"])
def test_pcapng_blocks_interfaces_and_resolutions(tmp_path, pool, e):
    f = random_frames(8, seed=7)
    custom = ng_block(e, 0x00000BAD, b"unknown block, skipped by length")
    data = b"".join(
        [
            ng_shb(e),
            custom,
            ng_idb(e, tsresol=9, snaplen=65535),  # iface 0: ns
            ng_idb(e, tsresol=0x80 | 20, snaplen=4096),  # iface 1: 2^-20 s
            ng_idb(e, tsresol=3, tsoffset=1000),  # iface 2: ms, +1000 s
            ng_epb(e, 0, 1_700_000_000_000_000_001, f[0], wire=len(f[0]) + 10),
            ng_epb(e, 1, (1_700_000_000 << 20) + (1 << 19), f[1]),
            ng_epb(e, 2, 5_500, f[2]),
            custom,
            ng_spb(e, f[3]),
            ng_pb(e, 1, (1 << 20) * 7, f[4]),
            # a second section in the other byte order redefines the interfaces
            ng_shb("<" if e == ">" else ">"),
        ]
    )
    e2 = "<" if e == ">" else ">"
    data += ng_idb(e2) + ng_epb(e2, 0, 1_234_567, f[5])
    path = tmp_path / "blocks.pcapng"
    path.write_bytes(data)
    with PcapReader(path) as rd:
        assert (rd.format, rd.linktype, rd.nanosecond, rd.ts_resolution_ns) == ("pcapng", 1, True, 1.0)
    got, wire, ts, port = read_everything(path, pool, burst=3)
    assert got == f[:6]
    assert wire == [len(f[0]) + 10] + [len(x) for x in f[1:6]]
    assert ts == [
        1_700_000_000_000_000_001,
        1_700_000_000_500_000_000,
        1005 * 10**9 + 500_000_000,  # 5500 ms + if_tsoffset 1000 s
        1005 * 10**9 + 500_000_000,  # SPB: no timestamp of its own, the previous one
        7 * 10**9,
        1_234_567_000,
    ]
    assert port == [0, 1, 2, 0, 1, 0]
    # scapy reads the same packets from the hand-made file
    if e == "<":
        with RawPcapNgReader(str(path)) as rr:
            assert [d for d, _ in rr] == f[:6]


def test_power_of_two_resolution_attributes(tmp_path):
    path = tmp_path / "p2.pcapng"
    path.write_bytes(ng_shb("<") + ng_idb("<", tsresol=0x80 | 30))
    with PcapReader(path) as rd:
        assert rd.nanosecond and rd.ts_resolution_ns == pytest.approx(1e9 / 2**30)


def test_slot_truncation_is_clipped_and_counted(tmp_path):
    pool = PacketPool(n_slots=64, slot_bytes=256, headroom_bytes=64)
    frames = [bytes(range(256)) * 2, b"\x01" * 100, b"\x02" * 192, b"\x03" * 193]
    path = tmp_path / "big.pcap"
    path.write_bytes(pcap_bytes([(0, 0, f, len(f)) for f in frames]))
    with PcapReader(path) as rd:
        b = rd.read(pool, 10)
        assert rd.truncated_to_slot == 2
        assert b.frames() == [frames[0][:192], frames[1], frames[2], frames[3][:192]]
        assert b.wire_lens.tolist() == [512, 100, 192, 193]
        assert rd.bytes_read == sum(len(f) for f in frames)


def test_read_all_iter_batches_and_eof(tmp_path, pool):
    frames = random_frames(100, seed=8)
    path = tmp_path / "all.pcap"
    path.write_bytes(pcap_bytes([(1, i, f, len(f)) for i, f in enumerate(frames)]))
    with PcapReader(path) as rd:
        b = rd.read_all(pool)
        assert b.frames() == frames
        assert len(rd.read(pool)) == 0 and len(rd.read(pool)) == 0
        b.free()
    with PcapReader(path) as rd:
        sizes = [len(b) for b in rd.iter_batches(pool, burst=32)]
        assert sizes == [32, 32, 32, 4]
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(pcap_bytes([]))
    with PcapReader(empty) as rd:
        assert len(rd.read(pool)) == 0 and rd.error is None


def test_read_allocates_like_pool_alloc(tmp_path):
    """The reader takes its slots with ``pool.alloc_idx``: same slots, same metadata resets, as
    allocating by hand and filling the frames in."""
    frames = random_frames(70, seed=9)
    path = tmp_path / "f.pcap"
    path.write_bytes(pcap_bytes([(5, i, f, len(f) + 1) for i, f in enumerate(frames)]))
    pools = [PacketPool(n_slots=128), PacketPool(n_slots=128)]
    for p in pools:  # dirty some state first
        junk = p.alloc(50)
        junk.flow_id = 7
        junk.out_port = 3
        junk.set_anno(2, 99)
        junk.offsets = 10
        junk.select(np.arange(0, 50, 2)).free()
    a, b = pools
    with PcapReader(path) as rd:
        keep = [rd.read(a, 16) for _ in range(3)]
        keep[1].free()
        keep.append(rd.read(a, 40))
    by_hand = []
    for first, n in ((0, 16), (16, 16), (32, 16), (48, 22)):  # the file has 70 records
        if first == 48:
            by_hand[1].free()  # freed where the reader's second batch was
        batch = b.alloc(n)
        recs = range(first, first + n)
        batch.set_frames([frames[i] for i in recs])
        batch.wire_lens = np.array([len(frames[i]) + 1 for i in recs], dtype=np.int32)
        batch.arrival_ns = np.array([5_000_000_000 + 1000 * i for i in recs], dtype=np.int64)
        by_hand.append(batch)
    assert [x.idx.tolist() for x in keep] == [y.idx.tolist() for y in by_hand]
    for col in ("data", "offset", "length", "wire_len", "arrival_ns", "in_port", "out_port", "flow_id", "anno", "in_use"):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col
    assert a.n_free == b.n_free
    assert np.array_equal(a._free[: a.n_free], b._free[: b.n_free])


def test_pool_exhausted_leaves_reader_usable(tmp_path):
    pool = PacketPool(n_slots=10)
    frames = random_frames(12, seed=10)
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_bytes([(0, 0, f, len(f)) for f in frames]))
    with PcapReader(path) as rd:
        first = rd.read(pool, 8)
        with pytest.raises(PoolExhausted):
            rd.read(pool, 4)
        first.free()
        assert rd.read(pool, 4).frames() == frames[8:12]


@pytest.mark.parametrize("e", ["<", ">"])
def test_direct_and_indexed_reads_agree(tmp_path, e):
    """Classic pcap is read by one kernel that walks and copies (the direct path); pcapng, and a
    pcap read after a pool ran short, through the record index. Both give the same packets,
    metadata, counters and error, on snapped, oversized and cut-short records."""
    frames = random_frames(40, seed=12, hi=400)
    data = pcap_bytes([(3, 7 * i, f, len(f) + (i % 3)) for i, f in enumerate(frames)], e=e)
    path = tmp_path / "d.pcap"
    path.write_bytes(data[:-5])  # the last record is cut short
    results = []
    for indexed in (False, True):
        pool = PacketPool(n_slots=64, slot_bytes=256, headroom_bytes=64)
        got = []
        with PcapReader(path) as rd:
            if indexed:
                rd._index_more(1000)  # everything indexed ahead: read() then takes the index
            with pytest.raises(PcapError) as err:
                while True:
                    b = rd.read(pool, 7)
                    assert len(b)
                    got.append((b.frames(), b.wire_lens.tolist(), b.arrival_ns.tolist(), b.idx.tolist()))
                    b.free()
            results.append((got, rd.packets_read, rd.bytes_read, rd.truncated_to_slot, err.value.offset, err.value.reason))
    assert results[0] == results[1]
    got, n, _, clipped, _, _ = results[0]
    assert n == 39 and clipped == sum(len(f) > 192 for f in frames[:39])
    assert [f for batch in got for f in batch[0]] == [f[:192] for f in frames[:39]]


# ------------------------------------------------------------------------------------------------
# tshark
# ------------------------------------------------------------------------------------------------
@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (apt-get install tshark)")
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_tshark_reads_our_files(tmp_path, pool, fmt):
    frames = random_frames(30, seed=11, lo=60)
    batch = pool.from_frames(frames, arrival_ns=TS0_NS + np.arange(30) * 1000)
    path = tmp_path / f"ts.{fmt}"
    with PcapWriter(path, format=fmt, snaplen=200) as wr:
        wr.write(batch)
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.time_epoch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [int(r[0]) for r in rows] == [len(f) for f in frames]
    assert [int(r[1]) for r in rows] == [min(len(f), 200) for f in frames]
    assert rows[1][2].startswith("1700000000.12345")


# ------------------------------------------------------------------------------------------------
# corrupt and truncated files
# ------------------------------------------------------------------------------------------------
def test_error_str_and_attributes():
    err = PcapError("/x/y.pcap", 1234, "captured length 999999 runs past end of file")
    assert str(err) == "/x/y.pcap: byte 1234: captured length 999999 runs past end of file"
    assert (err.path, err.offset, err.reason) == ("/x/y.pcap", 1234, "captured length 999999 runs past end of file")
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    "content",
    [b"", b"\xd4\xc3", b"\xd4\xc3\xb2\xa1" + b"\0" * 10, b"GIF89a" + b"\0" * 40, b"\0" * 64],
)
def test_short_file_or_wrong_magic_raises_at_open(tmp_path, content):
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(PcapError) as ei:
        PcapReader(path)
    assert ei.value.offset == 0 and str(path) in str(ei.value)


def test_unknown_link_type(tmp_path):
    path = tmp_path / "lt.pcap"
    path.write_bytes(pcap_bytes([(0, 0, b"x" * 20, 20)], linktype=105))
    with pytest.raises(PcapError) as ei:
        PcapReader(path)
    assert "105" in ei.value.reason and str(path) in str(ei.value) and ei.value.offset == 20
    ng = tmp_path / "lt.pcapng"
    ng.write_bytes(ng_shb("<") + ng_idb("<", linktype=127) + ng_epb("<", 0, 0, b"x" * 20))
    with pytest.raises(PcapError) as ei:
        PcapReader(ng)
    assert "127" in ei.value.reason and ei.value.offset == 28
    # (a later non-Ethernet interface is skipped: test_later_non_ethernet_interface_is_skipped)


def _check_partial_then_error(path, pool, good_frames, bad_offset, burst, reason_part):
    got = []
    with PcapReader(path) as rd:
        while True:
            try:
                b = rd.read(pool, burst)
            except PcapError as exc:
                err = exc
                break
            assert len(b) > 0, "reached the end without the expected error"
            got += b.frames()
            n = len(b)
            b.free()
            if n < burst:  # the read that reached the bad point: error recorded, next raises
                assert rd.error is not None
        assert got == good_frames
        assert err.offset == bad_offset and reason_part in err.reason
        assert rd.error is err
        with pytest.raises(PcapError):  # keeps raising
            rd.read(pool, burst)


@pytest.mark.parametrize("burst", [1, 3, 5, 64])
def test_pcap_bad_caplen(tmp_path, pool, burst):
    frames = random_frames(5, seed=12, lo=60, hi=200)
    good = pcap_bytes([(0, 0, f, len(f)) for f in frames], snaplen=1000)
    bad_rec = struct.pack("<IIII", 0, 0, 300_000, 300_000) + b"z" * 100
    path = tmp_path / "cap.pcap"
    path.write_bytes(good + bad_rec)
    _check_partial_then_error(path, pool, frames, len(good), burst, "300000")
    # (a caplen above the file's snap length is read: test_records_longer_than_snaplen_are_read)


@pytest.mark.parametrize("burst", [1, 2, 64])
@pytest.mark.parametrize("kind", ["align", "trailer", "small", "past_eof", "iface", "bom"])
def test_pcapng_corrupt_block(tmp_path, pool, burst, kind):
    frames = random_frames(4, seed=13, lo=60, hi=200)
    head = ng_shb("<") + ng_idb("<") + b"".join(ng_epb("<", 0, i, f) for i, f in enumerate(frames))
    blk = bytearray(ng_epb("<", 0, 9, b"q" * 64))
    reason = {
        "align": "multiple of 4",
        "trailer": "does not match",
        "small": "too small",
        "past_eof": "past end of file",
        "iface": "interface 5",
        "bom": "byte-order magic",
    }[kind]
    if kind == "align":
        blk[4:8] = struct.pack("<I", len(blk) - 2)
    elif kind == "trailer":
        blk[-4:] = struct.pack("<I", len(blk) + 4)
    elif kind == "small":
        blk[4:8] = struct.pack("<I", 8)
    elif kind == "past_eof":
        blk[4:8] = struct.pack("<I", 4096)
    elif kind == "iface":
        blk[8:12] = struct.pack("<I", 5)
    elif kind == "bom":
        blk = bytearray(ng_shb("<"))
        blk[8:12] = b"\x01\x02\x03\x04"
    path = tmp_path / "corrupt.pcapng"
    path.write_bytes(head + bytes(blk) + ng_epb("<", 0, 10, b"after"))
    _check_partial_then_error(path, pool, frames, len(head), burst, reason)


def _truncation_case(tmp_path, fmt, n_frames=6, seed=14):
    frames = random_frames(n_frames, seed=seed, lo=14, hi=90)
    if fmt == "pcap":
        data = pcap_bytes([(100, i, f, len(f)) for i, f in enumerate(frames)], nano=True)
        starts, pos = [], 24
        for f in frames:
            starts.append(pos)
            pos += 16 + len(f)
        header_end = 24
    else:
        head = ng_shb("<") + ng_idb("<", tsresol=9)
        blocks = [ng_epb("<", 0, 1000 + i, f) for i, f in enumerate(frames)]
        data = head + b"".join(blocks)
        starts, pos = [], len(head)
        for b in blocks:
            starts.append(pos)
            pos += len(b)
        header_end = len(head)
    return frames, data, starts, header_end


def _check_cut(path, data, cut, frames, starts, header_end, fmt, burst):
    """Read a file cut at ``cut`` bytes: whole records come back, then a PcapError at the cut one."""
    path.write_bytes(data[:cut])
    pool = PacketPool(n_slots=64)
    got, err, at_open = [], None, False
    try:
        rd = PcapReader(path)
    except PcapError as exc:
        err, at_open = exc, True
    else:
        with rd:
            while True:
                try:
                    b = rd.read(pool, burst)
                except PcapError as exc:
                    err = exc
                    break
                if not len(b):
                    break
                got += b.frames()
                b.free()
    ends = [s + (16 + len(f) if fmt == "pcap" else 0) for s, f in zip(starts, frames)]
    if fmt == "pcapng":
        ends = starts[1:] + [len(data)]
    whole = [i for i in range(len(frames)) if ends[i] <= cut]
    assert got == [frames[i] for i in whole]
    clean = set(starts) | {len(data), header_end} | ({28} if fmt == "pcapng" else set())
    if cut in clean:
        assert err is None, f"cut at {cut}: {err}"
        return
    assert err is not None, f"cut at {cut} gave no error"
    if cut < header_end:  # inside the file header (pcap) or the SHB (0) / IDB (28) of a pcapng
        expected = 0 if (fmt == "pcap" or cut < 28) else 28
    else:
        expected = starts[len(whole)]
    assert err.offset == expected, f"cut at {cut}: {err}"
    assert not at_open or not whole  # an error at open only when no packet comes before it
    assert str(path) in str(err)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_truncated_at_every_cut_point(tmp_path, fmt):
    frames, data, starts, header_end = _truncation_case(tmp_path, fmt)
    path = tmp_path / f"cut.{fmt}"
    for cut in range(len(data) + 1):
        _check_cut(path, data, cut, frames, starts, header_end, fmt, burst=2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(["pcap", "pcapng"]),
    seed=st.integers(0, 1000),
    n_frames=st.integers(1, 12),
    cut_frac=st.floats(0, 1),
    burst=st.integers(1, 16),
)
def test_truncation_property(tmp_path, fmt, seed, n_frames, cut_frac, burst):
    frames, data, starts, header_end = _truncation_case(tmp_path, fmt, n_frames, seed)
    cut = int(round(cut_frac * len(data)))
    _check_cut(tmp_path / f"prop.{fmt}", data, cut, frames, starts, header_end, fmt, burst)


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="format"):
        PcapWriter(tmp_path / "a", format="erf")
    with pytest.raises(ValueError, match="snaplen"):
        PcapWriter(tmp_path / "b", snaplen=0)


def test_pcapng_writer_layout(tmp_path, pool):
    """Block lengths, padding and trailers of the writer's pcapng, parsed here by hand."""
    frames = [b"a" * 61, b"b" * 62, b"c" * 63, b"d" * 64, b"e" * 14]
    batch = pool.from_frames(frames, arrival_ns=TS0_NS)
    path = tmp_path / "lay.pcapng"
    with PcapWriter(path, format="pcapng", nanosecond=True) as wr:
        wr.write(batch)
    buf = io.BytesIO(path.read_bytes())
    types = []
    while True:
        hdr = buf.read(8)
        if not hdr:
            break
        btype, blen = struct.unpack("<II", hdr)
        assert blen % 4 == 0
        body = buf.read(blen - 12)
        assert struct.unpack("<I", buf.read(4))[0] == blen
        types.append(btype)
        if btype == 1:
            assert struct.pack("<HHB", 9, 1, 9) in body  # if_tsresol = 9
        if btype == 6:
            caplen = struct.unpack("<I", body[12:16])[0]
            assert blen == 32 + (caplen + 3) // 4 * 4
            assert body[20 + caplen :] == b"\0" * (blen - 32 - caplen)
    assert types == [0x0A0D0D0A, 1, 6, 6, 6, 6, 6]


# ------------------------------------------------------------------------------------------------
# hostile files: timestamps past int64, many interfaces, records over the snap length, other link
# types, files that are not files
# ------------------------------------------------------------------------------------------------
INT64_MAX = (1 << 63) - 1


def test_if_tsoffset_beyond_int64_ns_is_refused_naming_file_and_offset(tmp_path, pool):
    path = tmp_path / "off.pcapng"
    path.write_bytes(ng_shb("<") + ng_idb("<", tsoffset=9_300_000_000) + ng_epb("<", 0, 5, b"x" * 60))
    with pytest.raises(PcapError) as ei:
        PcapReader(path)
    assert ei.value.offset == 28 and "if_tsoffset 9300000000 s" in ei.value.reason and str(path) in str(ei.value)
    with pytest.raises(PcapError):  # also negative
        path.write_bytes(ng_shb("<") + ng_idb("<", tsoffset=-9_300_000_000) + ng_epb("<", 0, 5, b"x" * 60))
        PcapReader(path)
    # an interface defined after the first packets: those packets are read, then the error
    head = ng_shb("<") + ng_idb("<") + ng_epb("<", 0, 5, b"y" * 60)
    path.write_bytes(head + ng_idb("<", tsoffset=2**62) + ng_epb("<", 1, 5, b"z" * 60))
    _check_partial_then_error(path, pool, [b"y" * 60], len(head), 4, "if_tsoffset")
    info = pcap_info(str(path))
    assert info["packets"] == 1 and "if_tsoffset" in info["error"] and info["error_offset"] == len(head)


def _exact_ns(tsresol: int, off_s: int, ts: int) -> int:
    """pcapng timestamp -> ns since the epoch, in exact integers (the reference)."""
    if tsresol & 0x80:
        p = tsresol & 0x7F
        sec, frac = ts >> p, ts & ((1 << p) - 1)
        if p > 33:
            frac, p = frac >> (p - 33), 33
        return sec * 10**9 + ((frac * 10**9) >> p) + off_s * 10**9
    if tsresol <= 9:
        return ts * 10 ** (9 - tsresol) + off_s * 10**9
    return ts // 10 ** (tsresol - 9) + off_s * 10**9


@pytest.mark.parametrize(
    "tsresol, off_s, ts",
    [
        (6, 9_000_000_000, 100_000_000 * 10**6),  # 9.1e9 s: fits
        (6, 9_000_000_000, 1_700_000_000 * 10**6),  # 1.07e10 s: used to wrap to the year 1724
        (6, 9_000_000_000, (INT64_MAX - 9 * 10**18) // 1000),  # the last microsecond that fits
        (6, 9_000_000_000, (INT64_MAX - 9 * 10**18) // 1000 + 1),  # the first that does not
        (9, 0, 2**64 - 1),  # 1.8e19 ns
        (12, 0, 2**64 - 1),  # picoseconds: 2^64-1 units (above 2^63) are 1.8e7 s
        (12, -9_000_000_000, 2**63 + 5),
        (0x80, -9_000_000_000, 18_000_000_000),  # 1.8e19 ns, brought back by the offset: exact
        (0x80, -9_000_000_000, 18_300_000_000),
        (0x80 | 40, 0, 2**64 - 1),  # 2^-40 s units: 1.68e7 s
        (0x80 | 3, 1_000, 2**64 - 1),  # 1/8 s units: 2.3e18 s
    ],
)
def test_pcapng_timestamps_are_exact_or_refused_never_wrapped(tmp_path, pool, tsresol, off_s, ts):
    path = tmp_path / "ts.pcapng"
    head = ng_shb("<") + ng_idb("<", tsresol=tsresol, tsoffset=off_s) + ng_epb("<", 0, 0, b"a" * 60)
    path.write_bytes(head + ng_epb("<", 0, ts, b"b" * 60))
    want = _exact_ns(tsresol, off_s, ts)
    if want <= INT64_MAX:
        _, _, got, _ = read_everything(path, pool)
        assert got == [off_s * 10**9, want]
    else:
        _check_partial_then_error(path, pool, [b"a" * 60], len(head), 8, "past the year 2262")


def test_many_interfaces_are_read_in_linear_time(tmp_path, pool):
    """30,000 interfaces, each defined just before its one packet: a reader that rebuilt its
    per-interface tables at every interface took ~40 s; a linear one takes about 1 s."""
    n = 30_000
    frame = b"f" * 60
    path = tmp_path / "ifaces.pcapng"
    path.write_bytes(ng_shb("<") + b"".join(ng_idb("<") + ng_epb("<", i, i, frame) for i in range(n)))
    small = tmp_path / "small.pcapng"
    small.write_bytes(ng_shb("<") + ng_idb("<") + ng_epb("<", 0, 0, frame))
    read_everything(small, pool)  # compile the kernels outside the clock
    t0 = time.perf_counter()
    _, _, ts, port = read_everything(path, pool, burst=256)
    elapsed_s = time.perf_counter() - t0
    assert port == list(range(n)) and ts == [i * 1000 for i in range(n)]
    assert elapsed_s < 8.0, f"{n} interfaces took {elapsed_s:.1f} s"


@pytest.mark.parametrize("burst", [1, 7, 4096])
def test_records_longer_than_snaplen_are_read(tmp_path, burst):
    """Wireshark reads a record longer than the snap length; so do we, and count it."""
    frames = random_frames(6, seed=21, lo=60, hi=200)
    frames[2], frames[5] = b"L" * 1500, b"M" * 1001
    path = tmp_path / "over.pcap"
    path.write_bytes(pcap_bytes([(1, 2, f, len(f)) for f in frames], snaplen=1000))
    pool = PacketPool(n_slots=8 if burst == 4096 else 64)  # 4096 > free slots: the indexed path
    got = []
    with PcapReader(path) as rd:
        while True:
            try:
                b = rd.read(pool, min(burst, pool.n_free))
            except PoolExhausted:
                break
            if not len(b):
                break
            assert len(set(b.idx.tolist())) == len(b)  # each slot taken once
            got += b.frames()
            b.free()
        assert got == frames and rd.error is None and rd.longer_than_snaplen == 2
        assert pool.n_free == pool.n_slots
    ng = tmp_path / "over.pcapng"
    epbs = b"".join(ng_epb("<", 0, i, f) for i, f in enumerate(frames))
    ng.write_bytes(ng_shb("<") + ng_idb("<", snaplen=100) + epbs)
    with PcapReader(ng) as rd:
        assert rd.read_all(PacketPool(n_slots=64)).frames() == frames
        assert rd.longer_than_snaplen == 6 and rd.error is None
    info = pcap_info(str(ng))
    assert info["packets"] == 6 and info["longer_than_snaplen"] == 6 and info["error"] is None
    assert ("warning", "6 records are longer than the snap length (read whole)") in info_lines(info)
    if shutil.which("tshark"):  # the reference reads them too
        out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.cap_len"],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert [int(x) for x in out.stdout.split()] == [len(f) for f in frames]


def test_later_non_ethernet_interface_is_skipped(tmp_path, pool):
    e = "<"
    a, b, c, d, f = (bytes([k]) * 40 for k in b"abcdf")
    data = (
        ng_shb(e) + ng_idb(e) + ng_epb(e, 0, 1, a)
        + ng_idb(e, linktype=113) + ng_epb(e, 1, 2, b"x" * 40) + ng_epb(e, 0, 3, b)
        + ng_shb(e) + ng_idb(e, linktype=101, tsresol=200) + ng_spb(e, b"y" * 40)  # (its tsresol is not used)
        + ng_idb(e) + ng_epb(e, 1, 4, c) + ng_pb(e, 0, 5, b"z" * 40) + ng_epb(e, 1, 6, d)
        + ng_shb(e) + ng_idb(e) + ng_spb(e, f)
    )  # fmt: skip
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(data)
    frames, _, ts, port = read_everything(path, pool, burst=2)
    assert frames == [a, b, c, d, f] and port == [0, 0, 1, 1, 0] and ts == [1000, 3000, 4000, 6000, 6000]
    with PcapReader(path) as rd:
        rd.read_all(pool).free()
        assert rd.skipped_not_ethernet == 3 and rd.linktype == 1
    info = pcap_info(str(path))
    assert info["packets"] == 5 and info["skipped_not_ethernet"] == 3 and info["error"] is None
    assert ("warning", "3 packets on non-Ethernet interfaces were skipped") in info_lines(info)


def _open_without_hanging(fn, path):
    """``fn(path)`` in a thread; a FIFO that blocks it is released by opening its write end."""
    result = {}

    def target():
        try:
            result["value"] = fn(path)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["exc"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(10)
    hung = th.is_alive()
    if hung:
        os.close(os.open(path, os.O_RDWR))  # unblock it
        th.join(10)
    assert not hung, f"{fn.__name__}({path}) hung"
    return result


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_capture_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "cap.fifo"
    os.mkfifo(fifo)
    res = _open_without_hanging(PcapReader, fifo)
    exc = res.get("exc")
    assert isinstance(exc, PcapError), res
    assert str(exc) == f"{fifo}: byte 0: not a regular file but a FIFO (named pipe): a capture must be a file"
    with pytest.raises(PcapError, match="character device"):
        PcapReader("/dev/null")
    with pytest.raises(IsADirectoryError):
        PcapReader(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_pcap_info_on_hostile_files_says_one_line(tmp_path):
    """``tailgate pcap info`` on a FIFO or an out-of-range if_tsoffset: exit 2, one line, no traceback."""
    fifo = tmp_path / "cap.fifo"
    os.mkfifo(fifo)
    off = tmp_path / "off.pcapng"
    off.write_bytes(ng_shb("<") + ng_idb("<", tsoffset=-(2**62)) + ng_epb("<", 0, 5, b"x" * 60))
    tailgate = os.path.join(os.path.dirname(sys.executable), "tailgate")
    for path, msg in ((fifo, "not a regular file but a FIFO"), (off, "byte 28: if_tsoffset -4611686018427387904 s")):
        cmd = [tailgate, "pcap", "info", str(path)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        err = res.stderr.strip()
        assert res.returncode == 2 and "\n" not in err and "Traceback" not in err, res.stderr
        assert err.startswith(f"error: {path}: ") and msg in err, err
