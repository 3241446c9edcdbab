"""The crash-prone half of the fuzz tests, run in a child process so that a SIGSEGV (a read past a
frame into its guard page) ends this process, not pytest; ``test_fuzz.py`` then finds and names
the frame.

Usage (from the repository root)::

    python tests/fuzz/fuzz_worker.py frames SEED FIRST_BATCH N_BATCHES BATCH_SIZE [--single]
    python tests/fuzz/fuzz_worker.py captures SEED FIRST_CHUNK N_CHUNKS CHUNK_SIZE DIR

Frames: batch ``k`` holds ``fuzz_inputs.frames((SEED, k), BATCH_SIZE)``, each frame against a guard
page (:mod:`fuzz_guard`). Each batch is parsed and compared field by field with :mod:`refparse`,
checked against the invariants of ``oracles.assert_offsets_inside``, has every field accessor,
checksum check and the flow hash run on it, and is pushed through every network function alone
(``IPChecksum(l4=True)``'s output must carry right L4 checksums) and through the router chain
(CheckIPHeader, IPv4Lookup, DecTTL, MACRewrite, IPChecksum), whose output must carry right IPv4
header checksums (both recomputed with dpkt). ``--single`` processes the
frames of one batch one at a time, to find which one crashes.

Captures: chunk ``c`` is ``fuzz_inputs.captures((SEED, c), CHUNK_SIZE)``; each file is written to
``DIR`` and read whole by ``PcapReader`` and by ``pcap_info``: it must read, or raise
``PcapError`` (a ``TailgateError``) whose message names the file and a byte offset inside it,
within 5 s; an intact classic pcap must give back exactly the frames written. A file or batch
still running after ``HANG_S`` seconds is a hang: the child's watchdog (faulthandler) prints the
stack and ends the child.

Output: ``B k`` / ``frame i`` / ``F c i`` progress lines (flushed, so the parent knows where a
crash happened), ``FAIL ...`` lines, and ``DONE items=N seconds=S`` at the end. Exit 1 if any FAIL.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import dpkt
import fuzz_inputs
import numpy as np
import refparse
from fuzz_guard import PAGE_BYTES, GuardedRows
from oracles import assert_offsets_inside

from tailgate.core.errors import TailgateError
from tailgate.nf import (
    ACL,
    NAPT,
    CheckIPHeader,
    DecTTL,
    ExactMatch,
    GTPUDecap,
    GTPUEncap,
    HashSplit,
    IPChecksum,
    IPv4Lookup,
    IPv6Lookup,
    MACRewrite,
    SetIPv4,
    StaticNAT,
    UpdateTTL,
    VLANPop,
    VLANPush,
    VLANSplit,
    VXLANDecap,
    VXLANEncap,
)
from tailgate.packet.pcap import PcapError, PcapReader
from tailgate.packet.pcapinfo import pcap_info
from tailgate.packet.pool import Batch, PacketPool

#: the time one small capture may take to read twice (the child's first, which loads the compiled
#: kernels, is exempt)
FILE_SECONDS_MAX = 5.0
#: a batch or file still running after this long is a hang: the child dumps its stack and exits
HANG_S = float(os.environ.get("FUZZ_HANG_S", "60"))
COLUMNS = ("l2_off", "l3_off", "l4_off", "l4_end", "tun_off", "inner_l2_off", "inner_l3_off")
FAILS: list[str] = []


def fail(msg: str) -> None:
    FAILS.append(msg)
    print("FAIL " + msg, flush=True)


# ------------------------------------------------------------------------------------------------
# frames
# ------------------------------------------------------------------------------------------------
def modules():
    """Every network function that reads packet bytes, each configured to do some work."""
    return [
        CheckIPHeader(),
        CheckIPHeader(verify_checksum=False),
        IPv4Lookup(routes_list=[("10.0.0.0/8", 1), ("192.0.2.0/24", 2), ("0.0.0.0/0", 0)]),
        IPv6Lookup(routes_list=[("2001:db8::/32", 1), ("::/0", 0)]),
        DecTTL(),
        UpdateTTL(ttl=9),
        MACRewrite(src="02:00:00:00:00:fe", dst="02:00:00:00:01:01"),
        IPChecksum(l4=True),
        SetIPv4(field="dst", value="10.9.9.9"),
        ACL(rules=[dict(src="10.0.0.0/8", proto="udp", dport=53, action="accept"),
                   dict(dst="192.0.2.0/24", proto="tcp", dport="1000-2000", action=1),
                   dict(proto="icmp", action="drop")], default_action="accept"),
        StaticNAT(rules=[("10.0.0.1", "198.18.0.1")]),
        NAPT(external_ip="198.18.0.1", port_min=20000, port_max=29999, timeout_s=120),
        ExactMatch(field="udp.dport", rules={53: 0, 4789: 1}, default_gate=2),
        HashSplit(gates=4, seed=7),
        VLANPop(),
        VLANPush(vid=100),
        VLANSplit(vids=[10, 20], pop=True),
        VXLANDecap(vni_anno=1),
        VXLANEncap(src_ip="192.0.2.1", dst_ip="192.0.2.2", vni=5001),
        GTPUDecap(),
        GTPUEncap(src_ip="192.0.2.1", dst_ip="192.0.2.2", teid=7),
    ]


def router():
    return [
        CheckIPHeader(),
        IPv4Lookup(routes_list=[("10.0.0.0/8", 1), ("0.0.0.0/0", 0)]),
        DecTTL(),
        MACRewrite(src="02:00:00:00:00:fe", dst="02:00:00:00:01:01"),
        IPChecksum(),
    ]


def compare(where: str, frames: list[bytes], batch: Batch) -> None:
    """tailgate's parse of ``batch`` against the reference parser, frame by frame."""
    hv = batch.headers
    base = batch.offsets.astype(np.int64)
    got = np.empty((len(frames), 12), np.int64)
    for j, name in enumerate(COLUMNS):
        col = getattr(hv, name).astype(np.int64)
        got[:, j] = np.where(col >= 0, col - base, -1)
    got[:, 7] = hv.flags
    got[:, 8] = hv.n_vlan
    got[:, 9] = hv.ethertype
    got[:, 10] = hv.ip_proto
    got[:, 11] = hv.malformed
    want = np.array([refparse.parse_frame(f) for f in frames], dtype=np.int64).reshape(len(frames), 12)
    for i in np.flatnonzero((got != want).any(axis=1))[:5]:
        diff = {refparse.Ref._fields[j]: (int(got[i, j]), int(want[i, j])) for j in np.flatnonzero(got[i] != want[i])}
        fail(f"{where} frame {i}: tailgate vs reference {diff}: {frames[i].hex()}")
    try:
        assert_offsets_inside(batch, hv)
    except AssertionError as e:
        fail(f"{where}: parse invariant {e}: frames {[f.hex() for f in frames][:3]}")


def touch_everything(batch: Batch) -> None:
    """Every read-only accessor of the parse: each must stay inside the frames."""
    hv = batch.headers
    for view in ("eth", "vlan", "ipv4", "ipv6", "udp", "tcp", "icmp", "vxlan", "gtpu"):
        v = getattr(hv, view)
        for name in dir(type(v)):
            if not name.startswith("_"):
                getattr(v, name)
    _ = (hv.sport, hv.dport)
    hv.ipv4_checksum_ok()
    hv.l4_checksum_ok()
    hv.flow_hash(3)
    hv.malformed_counts()


def l4_sum_ok(f: bytes, l3: int, l4: int, l4_end: int, proto: int) -> bool:
    """The TCP/UDP/ICMP/ICMPv6 checksum of one segment, recomputed with dpkt's one's-complement
    sum and an IPv4 or IPv6 pseudo-header built here (never with tailgate's code)."""
    seg = bytearray(f[l4:l4_end])
    at = {6: 16, 17: 6, 1: 2, 58: 2}[proto]
    if at + 2 > len(seg):
        return True  # (no checksum field in the segment: nothing to check)
    stored = int.from_bytes(seg[at : at + 2], "big")
    v6 = f[l3] >> 4 == 6
    if proto == 17 and stored == 0 and not v6:
        return True
    seg[at : at + 2] = b"\0\0"
    s = 0
    if proto != 1:
        if v6:
            pseudo = f[l3 + 8 : l3 + 40] + len(seg).to_bytes(4, "big") + bytes([0, 0, 0, proto])
        else:
            pseudo = f[l3 + 12 : l3 + 20] + bytes([0, proto]) + len(seg).to_bytes(2, "big")
        s = dpkt.in_cksum_add(0, pseudo)
    s = dpkt.in_cksum_done(dpkt.in_cksum_add(s, bytes(seg)))
    if proto == 17 and s == 0:
        s = 0xFFFF
    return s == stored


def check_l4_sums(where: str, b: Batch) -> None:
    """After ``IPChecksum(l4=True)``: every complete, unfragmented L4 segment sums right."""
    hv = b.headers
    todo = (hv.is_tcp | hv.is_udp | hv.is_icmp) & ~hv.is_fragment
    off = b.offsets
    for i in np.flatnonzero(todo):
        f = b.frame(int(i))
        l3, l4, end = (int(c[i] - off[i]) for c in (hv.l3_off, hv.l4_off, hv.l4_end))
        if not l4_sum_ok(f, l3, l4, end, int(hv.ip_proto[i])):
            fail(f"{where}: IPChecksum(l4=True) output with a wrong L4 checksum: {f.hex()}")


def check_outputs(where: str, n_in: int, m, outs, pool: PacketPool) -> int:
    n_out = 0
    for _gate, b in outs:
        n_out += len(b)
        off = b.offsets.astype(np.int64)
        if np.any(off < 0) or np.any(off + b.lengths > PAGE_BYTES):
            fail(f"{where} {m.label}: an output frame leaves its slot")
        b.invalidate_headers()
        try:
            assert_offsets_inside(b, b.headers)
        except AssertionError as e:
            fail(f"{where} {m.label}: output parse invariant {e}")
        if isinstance(m, IPChecksum) and m.l4:
            check_l4_sums(f"{where} {m.label}", b)
    drops = m.counters()["drops"]
    if n_out + drops != n_in:
        fail(f"{where} {m.label}: {n_in} packets in, {n_out} out + {drops} dropped")
    return n_out


def run_frames(where: str, frames: list[bytes], rows: GuardedRows, mods, chain) -> None:
    pool = rows.pool
    batch = rows.load(frames)
    compare(where, frames, batch)
    touch_everything(batch)
    batch.headers.fix_l4_checksum()
    batch.headers.fix_ipv4_checksum()
    batch.free()
    for m in mods:
        m.reset_counters()
        batch = rows.load(frames)
        m.open_outputs(pool)
        m.process(batch)
        outs = m.drain_outputs()
        check_outputs(where, len(frames), m, outs, pool)
        for _g, b in outs:
            b.free()
    batch = rows.load(frames)
    for m in chain:
        m.reset_counters()
        m.open_outputs(pool)
        n_in = len(batch)
        if n_in:
            m.process(batch)
        outs = m.drain_outputs()
        check_outputs(where, n_in, m, outs, pool)
        batch = Batch.merge([b for _g, b in outs]) if any(len(b) for _g, b in outs) else pool.empty_batch()
    hv = batch.headers
    for i in range(len(batch)):
        f = batch.frame(i)
        l3 = int(hv.l3_off[i] - batch.offsets[i])
        hdr = f[l3 : l3 + (f[l3] & 15) * 4]
        if dpkt.in_cksum(hdr) != 0:
            fail(f"{where}: router output with a bad IPv4 header checksum: {f.hex()}")
    batch.free()
    if pool.n_used:
        fail(f"{where}: {pool.n_used} slots still in use after the batch (a leak)")
        pool.free_idx(np.flatnonzero(pool.in_use).astype(np.int32))


def overread(rows: GuardedRows) -> None:
    """The harness's own check (``FUZZ_OVERREAD=K:I``): read one byte past a frame, as a parser
    bug would, so that the parent test can show it names batch K frame I."""
    batch = rows.load([b"\x00" * 60])
    s, o = int(batch.idx[0]), int(batch.offsets[0])
    print(int(rows.pool.data[s, o + 60]), flush=True)


def run_guarded(where: str, frames: list[bytes], rows: GuardedRows, mods, chain, raise_on: bytes | None) -> None:
    """:func:`run_frames`, with an exception (a module or the parser raising on hostile input) turned
    into a FAIL that names the frame: the batch is run again a frame at a time to find it."""
    try:
        if raise_on is not None and raise_on in frames:  # the harness's own check (FUZZ_RAISE)
            raise RuntimeError("a deliberate exception")
        run_frames(where, frames, rows, mods, chain)
        return
    except Exception as e:  # noqa: BLE001 - every exception is a finding
        if len(frames) == 1:
            fail(f"{where}: {type(e).__name__}: {e} ({traceback.format_exc(limit=-1).splitlines()[-3].strip()}): "
                 f"{frames[0].hex()}")
        rows.pool.free_idx(np.flatnonzero(rows.pool.in_use).astype(np.int32))
        if len(frames) == 1:
            return
    for i, f in enumerate(frames):
        run_guarded(f"{where} frame {i}", [f], rows, mods, chain, raise_on)


def frames_main(seed: int, first: int, n_batches: int, size: int, single: bool) -> int:
    rows = GuardedRows(max(4 * size, 64))
    mods, chain = modules(), router()
    bad_k, _, bad_i = os.environ.get("FUZZ_OVERREAD", "-1:-1").partition(":")
    raise_k, _, raise_i = os.environ.get("FUZZ_RAISE", "-1:-1").partition(":")
    count = 0
    for k in range(first, first + n_batches):
        print(f"B {k}", flush=True)
        faulthandler.dump_traceback_later(HANG_S, exit=True)
        frames = fuzz_inputs.frames([seed, k], size)
        raise_on = frames[int(raise_i)] if k == int(raise_k) else None
        if single:
            for i, f in enumerate(frames):
                print(f"frame {i}", flush=True)
                if k == int(bad_k) and i == int(bad_i):
                    overread(rows)
                run_guarded(f"seed {seed} batch {k} frame {i}", [f], rows, mods, chain, raise_on)
        else:
            if k == int(bad_k):
                overread(rows)
            run_guarded(f"seed {seed} batch {k}", frames, rows, mods, chain, raise_on)
        count += len(frames)
        if len(FAILS) > 20:
            break
    return count


# ------------------------------------------------------------------------------------------------
# capture files
# ------------------------------------------------------------------------------------------------
def check_refusal(where: str, path: str, size: int, e: BaseException) -> None:
    if not isinstance(e, TailgateError) or not isinstance(e, PcapError):
        fail(f"{where}: {type(e).__name__} instead of a PcapError: {e!r}: {traceback.format_exc(limit=-3)}")
        return
    msg = str(e)
    if "\n" in msg or not msg.startswith(f"{path}: byte {e.offset}: ") or not 0 <= e.offset <= size:
        fail(f"{where}: refusal without file and offset in range (file {size} bytes): {msg!r}")


def read_capture(
    where: str, path: str, size: int, pool: PacketPool, expect: list[bytes] | None, first: bool = False
) -> None:
    t0 = time.perf_counter()
    got: list[bytes] = []
    try:
        with PcapReader(path) as rd:
            while True:
                b = rd.read(pool, 64)
                if not len(b):
                    break
                try:
                    assert_offsets_inside(b, b.headers)
                except AssertionError as e:
                    fail(f"{where}: parse invariant {e}")
                if expect is not None:
                    got += b.frames()
                b.free()
    except Exception as e:  # noqa: BLE001 - every exception is looked at
        check_refusal(where + " (PcapReader)", path, size, e)
    if expect is not None and got != expect:
        fail(f"{where}: an intact capture read {len(got)} frames, not the {len(expect)} written (or other bytes)")
    try:
        info = pcap_info(path, batch=64)
        if info["error"] is not None and not info["error"].startswith(f"{path}: byte "):
            fail(f"{where}: pcap_info error without file and offset: {info['error']!r}")
    except Exception as e:  # noqa: BLE001
        check_refusal(where + " (pcap_info)", path, size, e)
    took = time.perf_counter() - t0
    if took > FILE_SECONDS_MAX and not first:
        fail(f"{where}: took {took:.1f} s (bound {FILE_SECONDS_MAX} s)")
    if pool.n_used:
        fail(f"{where}: {pool.n_used} slots left in use")
        pool.free_idx(np.flatnonzero(pool.in_use).astype(np.int32))


def captures_main(seed: int, first: int, n_chunks: int, size: int, out_dir: str) -> int:
    pool = PacketPool(n_slots=256, slot_bytes=8192)  # room for the fuzzer's 4 KiB frames
    count = 0
    for c in range(first, first + n_chunks):
        for i, (data, expect) in enumerate(fuzz_inputs.captures([seed, c], size)):
            print(f"F {c} {i}", flush=True)
            faulthandler.dump_traceback_later(HANG_S + (60 if count == 0 else 0), exit=True)  # (+ kernel loading)
            if os.environ.get("FUZZ_HANG") == f"{c}:{i}":  # the harness's own check: a reader that hangs
                time.sleep(10 * HANG_S)
            path = os.path.join(out_dir, "fuzz.pcap")
            with open(path, "wb") as fh:
                fh.write(data)
            read_capture(f"seed {seed} chunk {c} file {i}", path, len(data), pool, expect, first=count == 0)
            count += 1
        if len(FAILS) > 20:
            break
    return count


def main(argv: list[str]) -> int:
    faulthandler.enable()
    t0 = time.perf_counter()
    kind, seed, first, n, size = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), int(argv[4])
    if kind == "frames":
        count = frames_main(seed, first, n, size, "--single" in argv)
    else:
        count = captures_main(seed, first, n, size, argv[5])
    faulthandler.cancel_dump_traceback_later()
    print(f"DONE items={count} seconds={time.perf_counter() - t0:.1f}", flush=True)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
