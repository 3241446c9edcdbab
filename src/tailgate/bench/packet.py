"""``tailgate bench``: the data plane against per-packet Python baselines, measured in one run.

Manual
------
:func:`run_bench` returns a list of records ``{name, impl, batch, mpps, packets, seconds}`` (plus
``x_dpkt``, the ratio to the dpkt baseline measured in the same run, where one exists):

- ``pcap_read_parse`` — read a capture of 64-byte IPv4/UDP frames into the pool and parse every
  header (tailgate: ``PcapReader`` + protocol view, batch 256 and 1024; dpkt: ``pcap.Reader`` + ``Ethernet``).
- ``l2l3`` — CheckIPHeader → IPv4Lookup (10 000+ random prefixes) → DecTTL → MACRewrite →
  IPChecksum through the runtime (task rounds, gates, counters, wall-clock timing of every module)
  at batch 32, 64, 256 and 1024, on frames already in memory (an 8192-frame ring in the pool,
  replayed, as a NIC receive ring recycles its buffers), as the baselines get them: the same chain written per packet with dpkt and with scapy (with a Python
  dict-per-prefix-length LPM).
- ``l2l3_gen`` — the same chain at batch 256 behind a synthetic Source that builds every frame
  (and a Sink that frees it): the cost of the traffic generator included.

Absolute numbers on a shared machine are noisy; the ratios within one run are what to compare.
``quick=True`` uses fewer packets (for tests and CI).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import struct
import tempfile
import time

import numpy as np

from tailgate.core.clock import WallClock
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.module import Module
from tailgate.dataplane.runtime import Runtime
from tailgate.nf import (
    CheckIPHeader,
    DecTTL,
    IPChecksum,
    IPv4Lookup,
    MACRewrite,
    Sink,
    Source,
)
from tailgate.packet.pcap import PcapReader, PcapWriter
from tailgate.packet.pool import Batch, PacketPool
from tailgate.packet.synth import FlowTemplate, TrafficGen

FRAME_BYTES = 64
N_PREFIXES = 10_000
N_FLOWS = 4096
RING_FRAMES = 8192


def _random_table(rng: np.random.Generator, n: int) -> list[tuple[str, int]]:
    """A BGP-like mix of prefix lengths (mostly /24), all to next hop (gate) 0."""
    lengths = rng.choice([8, 12, 16, 20, 22, 24, 26, 28, 32], size=n, p=[0.01, 0.02, 0.07, 0.1, 0.1, 0.6, 0.05, 0.03, 0.02])
    addrs = rng.integers(1 << 24, 224 << 24, size=n, dtype=np.int64)
    masks = ((1 << 32) - 1) ^ ((1 << (32 - lengths)) - 1)
    addrs &= masks
    out = {}
    for a, l in zip(addrs.tolist(), lengths.tolist()):
        out[(a, l)] = 0
    return [(f"{socket.inet_ntoa(struct.pack('!I', a))}/{l}", g) for (a, l), g in out.items()]


def _flows(rng: np.random.Generator, table: list[tuple[str, int]]):
    """Flows whose destinations fall inside table prefixes (every lookup hits)."""

    picks = rng.choice(len(table), size=N_FLOWS)
    flows = []
    for k, p in enumerate(picks.tolist()):
        net, ln = table[p][0].split("/")
        base = struct.unpack("!I", socket.inet_aton(net))[0]
        host = int(rng.integers(0, 1 << (32 - int(ln)))) if int(ln) < 32 else 0
        dst = socket.inet_ntoa(struct.pack("!I", base | host))
        flows.append(
            FlowTemplate(src_ip=f"10.{k >> 8 & 255}.{k & 255}.1", dst_ip=dst, proto="udp", sport=1024 + k, dport=53, size_bytes=FRAME_BYTES)
        )
    return flows


class _PyLPM:
    """The per-packet baseline's route table: one dict per prefix length, longest first."""

    def __init__(self, table):
        by_len: dict[int, dict[int, int]] = {}
        for pfx, gate in table:
            net, ln = pfx.split("/")
            ln = int(ln)
            by_len.setdefault(ln, {})[struct.unpack("!I", socket.inet_aton(net))[0]] = gate
        self.levels = [((0xFFFFFFFF << (32 - ln)) & 0xFFFFFFFF, d) for ln, d in sorted(by_len.items(), reverse=True)]

    def lookup(self, addr: int) -> int:
        for mask, d in self.levels:
            g = d.get(addr & mask)
            if g is not None:
                return g
        return -1


def _dpkt_l2l3(frames: list[bytes], lpm: _PyLPM) -> int:
    import dpkt

    out = 0
    new_src, new_dst = b"\x02\x00\x00\x00\x01\x01", b"\x02\x00\x00\x00\x02\x02"
    for raw in frames:
        eth = dpkt.ethernet.Ethernet(raw)
        ip = eth.data
        if not isinstance(ip, dpkt.ip.IP) or ip.v != 4 or ip.hl < 5 or ip.len > len(raw) - 14:
            continue
        hdr = bytes(raw[14 : 14 + ip.hl * 4])
        if dpkt.dpkt.in_cksum(hdr) != 0:
            continue
        if lpm.lookup(struct.unpack("!I", ip.dst)[0]) < 0 or ip.ttl <= 1:
            continue
        ip.ttl -= 1
        eth.src, eth.dst = new_src, new_dst
        ip.sum = 0
        bytes(eth)  # serializing recomputes the checksum, as the IPChecksum module does
        out += 1
    return out


def _scapy_l2l3(frames: list[bytes], lpm: _PyLPM) -> int:
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    out = 0
    for raw in frames:
        eth = Ether(raw)
        if IP not in eth:
            continue
        ip = eth[IP]
        if ip.version != 4 or ip.ihl < 5 or ip.len > len(raw) - 14:
            continue
        if lpm.lookup(struct.unpack("!I", socket.inet_aton(ip.dst))[0]) < 0 or ip.ttl <= 1:
            continue
        ip.ttl -= 1
        eth.src, eth.dst = "02:00:00:00:01:01", "02:00:00:00:02:02"
        del ip.chksum
        bytes(eth)
        out += 1
    return out


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _replay_modules():
    """Bench-only modules, made on first use so importing this file builds no classes of Module."""

    class Replay(Module):
        """Task root handing out consecutive slices of frames already in the pool, as a NIC ring
        filled by DMA would: nothing is allocated or copied per packet."""

        n_igates = 0
        task_root = True

        def setup(self) -> None:
            self.idx = np.zeros(0, np.int32)
            self.pos = 0

        def run_task(self, burst: int) -> int:
            i = self.pos
            if i + burst > len(self.idx):
                i = 0
            self.pos = i + burst
            # (the ring's slice is already int32: no pool.batch conversion)
            self.emit(Batch(self.pool, self.idx[i : i + burst]))
            return burst

    class Recycle(Module):
        """Sink that leaves the frames in place for the next pass of Replay."""

        n_ogates = 0

        def process(self, batch) -> None:
            pass

    return Replay, Recycle


def _l2l3_pipeline(flows, table, burst: int, n_packets: int, source: str) -> tuple[float, int, int]:
    """(seconds, packets in, packets out) for about ``n_packets`` through the L2L3 chain.

    ``source="memory"``: frames already in the pool (what the dpkt and scapy baselines get too);
    ``source="generator"``: a synthetic Source builds every frame and the Sink frees it.
    """

    pool = PacketPool(n_slots=1 << 16)
    with Pipeline() as p:
        if source == "memory":
            Replay, Recycle = _replay_modules()
            src, sink = Replay(), Recycle(name="out")
            # A ring of 8192 frames (16 MiB of slots) replayed, as a NIC receive ring recycles its
            # buffers. Each pass lowers the TTL by one, so these frames start at 255.
            ring = [dataclasses.replace(f, ttl=255) for f in flows]
            batch = TrafficGen(ring, seed=1).generate(pool, RING_FRAMES)
            src.idx = batch.idx
        else:
            src, sink = Source(templates=flows, seed=1), Sink(name="out")
        lookup = IPv4Lookup(routes_list=table, gates=1)
        mac = MACRewrite(src="02:00:00:00:01:01", dst="02:00:00:00:02:02")
        src >> CheckIPHeader() >> lookup >> DecTTL() >> mac >> IPChecksum() >> sink
        rt = Runtime(p, WallClock(), burst=burst, pool=pool)
        rt.run(max_packets=min(n_packets // 10, 50 * burst))  # warm up: numba caches, pool pages
        out0, in0 = sink.packets_in, rt.packets
        t = time.perf_counter()
        rt.run(max_packets=n_packets)
        dt = time.perf_counter() - t
        out, sent = sink.packets_in - out0, rt.packets - in0
        rt.finish()
    return dt, sent, out


def run_bench(quick: bool = False) -> list[dict]:

    rng = np.random.default_rng(2026)
    table = _random_table(rng, N_PREFIXES)
    flows = _flows(rng, table)
    n_fast = 200_000 if quick else 2_000_000
    n_dpkt = 5_000 if quick else 50_000
    n_scapy = 500 if quick else 3_000
    repeats = 1 if quick else 3
    records: list[dict] = []

    def rec(name, impl, batch, packets, seconds, **extra):
        records.append({"name": name, "impl": impl, "batch": batch, "mpps": packets / seconds / 1e6,
                        "packets": packets, "seconds": seconds, **extra})

    # -- the stream, as a capture --------------------------------------------------------------
    pool = PacketPool(n_slots=8192)
    gen = TrafficGen(flows, seed=7)
    n_file = min(n_fast, 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stream.pcap")
        frames: list[bytes] = []
        with PcapWriter(path) as w:
            left = n_file
            while left:
                b = gen.generate(pool, min(4096, left))
                w.write(b)
                if len(frames) < n_dpkt:
                    frames.extend(b.frames()[: n_dpkt - len(frames)])
                left -= len(b)
                b.free()

        def tg_read(burst: int):
            with PcapReader(path) as r:
                while True:
                    b = r.read(pool, burst)
                    if not len(b):
                        break
                    b.headers  # noqa: B018 - parse every header, as a pipeline's first module would
                    b.free()

        def dpkt_read():
            import dpkt

            with open(path, "rb") as f:
                for k, (_, raw) in enumerate(dpkt.pcap.Reader(f)):
                    if k == n_dpkt:
                        break
                    eth = dpkt.ethernet.Ethernet(raw)
                    eth.data.dst, eth.data.data.dport  # noqa: B018

        t_dp = _best_of(dpkt_read, repeats)
        rec("pcap_read_parse", "dpkt", 1, n_dpkt, t_dp)
        for burst in (256, 1024):
            tg_read(burst)  # compile, warm the page cache
            t_tg = _best_of(lambda: tg_read(burst), repeats)
            rec("pcap_read_parse", "tailgate", burst, n_file, t_tg, x_dpkt=(n_file / t_tg) / (n_dpkt / t_dp))

    # -- L2L3 chain -----------------------------------------------------------------------------
    lpm = _PyLPM(table)
    t_dp = _best_of(lambda: _dpkt_l2l3(frames, lpm), repeats)
    dpkt_mpps = len(frames) / t_dp / 1e6
    rec("l2l3", "dpkt", 1, len(frames), t_dp)
    sc = frames[:n_scapy]
    t_sc = _best_of(lambda: _scapy_l2l3(sc, lpm), 1)
    rec("l2l3", "scapy", 1, len(sc), t_sc, x_dpkt=(len(sc) / t_sc / 1e6) / dpkt_mpps)
    runs = [("l2l3", "memory", b) for b in (32, 64, 256, 1024)] + [("l2l3_gen", "generator", 256)]
    for name, source, burst in runs:
        n = max(n_fast // (8 if burst <= 64 else 2), 64 * burst)
        best = None
        for _ in range(repeats):
            dt, sent, out = _l2l3_pipeline(flows, table, burst, n, source)
            if out != sent:
                raise RuntimeError(f"bench {name}: {sent - out} of {sent} packets did not come out (every lookup should hit)")
            if best is None or dt / sent < best[0] / best[1]:
                best = (dt, sent)
        dt, n = best
        rec(name, "tailgate", burst, n, dt, x_dpkt=(n / dt / 1e6) / dpkt_mpps)
    return records
