"""Basic network functions: sources, sinks, queues, synthetic cost, merge, metadata.

Each class docstring is its manual. Task roots (``Source``, ``PcapSource``, ``Queue``) own a task;
everything else runs when fed.
"""

from __future__ import annotations

import time

import numpy as np

from tailgate.core.args import Arg, any_value
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.packet import synth
from tailgate.packet.pcap import PcapError, PcapReader, PcapWriter
from tailgate.packet.pool import ANNO_CAPTURE_TS, ANNO_TIMESTAMP


def _parse_size_dist(owner: str, spec: str, size_bytes: int):
    s = spec.strip().lower()
    try:
        if s == "fixed":
            return synth.FixedSize(size_bytes)
        if s == "imix":
            return synth.IMIX
        if s.startswith("uniform:"):
            _, lo, hi = s.split(":")
            return synth.UniformSize(int(lo), int(hi))
        if s.startswith("choice:"):
            sizes = [int(x) for x in s.split(":", 1)[1].split("/")]
            return synth.ChoiceSize(sizes, [1.0] * len(sizes))
    except (ValueError, TypeError) as e:
        raise ArgError(f"{owner}: argument 'size_dist': {e}") from None
    raise ArgError(f"{owner}: argument 'size_dist' must be fixed, imix, uniform:LO:HI or choice:A/B/C; got {spec!r}")


class Source(Module):
    """Source — synthetic traffic generator (task root).

    Gates: 0 in / 1 out. Makes packets from flow templates (:mod:`tailgate.packet.synth`): by
    default ``flows`` random IPv4/UDP flows, or the ``templates`` given.

    Arguments:
        rate_pps (pps, 0): offered rate; 0 means as fast as the pipeline takes packets. Packets
            carry their *scheduled* send time in ``arrival_ns``, so queueing behind a busy
            pipeline shows up as latency.
        flows (int, 16): number of random flows when no templates are given.
        templates (list of FlowTemplate, None): explicit flows.
        size_bytes (bytes, 64): frame size (without FCS) for ``size_dist=fixed``.
        size_dist (str, "fixed"): fixed, imix, uniform:LO:HI or choice:A/B/C.
        proto (str, "udp"): udp, tcp or icmp for random flows.
        dst_prefix (str, None): draw random flows' destinations from this IPv4 prefix.
        seed (int, 0): random seed; same seed, same packets.
        packets (int, 0): stop after this many packets (0: never).
        backpressure (bool, True): yield while a downstream queue is overloaded.

    Example::

        src = Source(rate_pps=1e6, flows=64, size_dist="imix")
        src >> CheckIPHeader() >> Sink()

    See also: PcapSource, Queue.
    """

    n_igates = 0
    task_root = True
    drop_reasons = ("pool_exhausted",)
    args = (
        Arg("rate_pps", float, 0.0, unit="pps", help="offered rate, 0 = unlimited", min=0),
        Arg("flows", int, 16, help="random flows", min=1, max=1 << 20),
        Arg("templates", any_value, None, help="list of FlowTemplate"),
        Arg("size_bytes", int, 64, unit="bytes", min=42, max=9000),
        Arg("size_dist", str, "fixed"),
        Arg("proto", str, "udp", choices=("udp", "tcp", "icmp")),
        Arg("dst_prefix", str, None),
        Arg("seed", int, 0),
        Arg("packets", int, 0, help="stop after this many packets, 0 = never", min=0),
        Arg("backpressure", bool, True),
    )

    def setup(self) -> None:
        try:
            if self.templates is not None:
                self._flows = list(self.templates)
                if not self._flows:
                    raise ValueError("templates is empty")
            else:
                self._flows = synth.random_flows(
                    self.flows, seed=self.seed, proto=self.proto, size_bytes=self.size_bytes, dst_prefix=self.dst_prefix
                )
        except (ValueError, TypeError) as e:
            raise ArgError(f"{self.label}: {e}") from None
        self._size_dist = None if self.size_dist == "fixed" and self.templates is not None else _parse_size_dist(
            self.label, self.size_dist, self.size_bytes
        )
        self._gen = None
        self.sent = 0
        self.start_ns = 0

    def _make_gen(self, start_ns: int):
        self.start_ns = start_ns
        return synth.TrafficGen(
            self._flows, size_dist=self._size_dist, rate_pps=self.rate_pps or None, seed=self.seed, start_ns=start_ns
        )

    def on_set(self, name: str) -> None:
        if name == "rate_pps" and self._gen is not None:
            # Restart the schedule from now at the new rate.
            self._gen = self._make_gen(self.clock.now_ns())
            self._sent_at_restart = self.sent

    def run_task(self, burst: int) -> int:
        now = self.clock.now_ns()
        gen = self._gen
        if gen is None:
            gen = self._gen = self._make_gen(now)
            self._sent_at_restart = 0
        n = burst
        if self.packets:
            n = min(n, self.packets - self.sent)
        if self.rate_pps:
            due = int((now - self.start_ns) * self.rate_pps / 1e9) + 1 - (self.sent - self._sent_at_restart)
            if due < n:
                n = due
        else:
            # No rate: the generator stamps every packet with its start time, so moving that to now
            # gives the right arrival_ns without a second pass over the batch.
            gen.start_ns = now
        if n <= 0:
            return 0
        pool = self.pool
        free = pool.n_free
        if free < n:
            self.drop_counts[0] += n - free
            n = free
            if n == 0:
                return 0
        batch = gen.generate(pool, n)
        self.sent += n
        self.emit(batch)
        return n

    def next_event_ns(self) -> int | None:
        if self.exhausted():
            return None
        if not self.rate_pps or self._gen is None:
            return self.clock.now_ns()
        return self.start_ns + int((self.sent - self._sent_at_restart) * 1e9 / self.rate_pps)

    def exhausted(self) -> bool:
        return bool(self.packets) and self.sent >= self.packets

    def extra_counters(self) -> dict:
        return {"sent": self.sent}


class PcapSource(Module):
    """PcapSource — replays a pcap or pcapng capture (task root).

    Gates: 0 in / 1 out. Packets enter as fast as the pipeline takes them (or at ``rate_pps``);
    ``arrival_ns`` is the clock time they entered, and the capture timestamp is kept in annotation
    ``ANNO_CAPTURE_TS`` (PcapSink writes it back out by default).

    Arguments:
        path (str, required): the capture file.
        loops (int, 1): replay the file this many times.
        rate_pps (pps, 0): pace the replay; 0 = as fast as possible.
        backpressure (bool, True): yield while a downstream queue is overloaded.

    A corrupt or truncated capture stops the replay where the damage starts; the packets before it
    are processed, and the error (naming the file and byte offset) is kept in ``error`` and shown
    in the run summary.
    """

    n_igates = 0
    task_root = True
    args = (
        Arg("path", str, help="pcap or pcapng file"),
        Arg("loops", int, 1, min=1),
        Arg("rate_pps", float, 0.0, unit="pps", min=0),
        Arg("backpressure", bool, True),
    )

    def setup(self) -> None:
        self.error = None
        self.sent = 0
        self._loop = 0
        self._done = False
        self._start_ns = None
        self._reader = self._open()

    def _open(self):
        try:
            return PcapReader(self.path)
        except FileNotFoundError:
            raise ArgError(f"{self.label}: capture file not found: {self.path}") from None
        except PcapError as e:
            raise ArgError(f"{self.label}: {e}") from None
        except OSError as e:
            raise ArgError(f"{self.label}: cannot read {self.path}: {e.strerror}") from None

    def run_task(self, burst: int) -> int:
        if self._done:
            return 0
        now = self.clock.now_ns()
        if self._start_ns is None:
            self._start_ns = now
        n = burst
        if self.rate_pps:
            n = min(n, int((now - self._start_ns) * self.rate_pps / 1e9) + 1 - self.sent)
            if n <= 0:
                return 0
        n = min(n, self.pool.n_free)
        if n <= 0:
            return 0
        try:
            batch = self._reader.read(self.pool, n)
        except PcapError as e:
            self.error = str(e)
            self._done = True
            return 0
        if not len(batch):
            self._loop += 1
            if self._reader.error is not None:
                self.error = str(self._reader.error)
                self._done = True
                return 0
            if self._loop >= self.loops:
                self._done = True
                return 0
            self._reader.close()
            self._reader = self._open()
            return 0
        batch.set_anno(ANNO_CAPTURE_TS, batch.arrival_ns)
        batch.arrival_ns = now
        self.sent += len(batch)
        self.emit(batch)
        return len(batch)

    def next_event_ns(self) -> int | None:
        if self._done:
            return None
        if self.rate_pps and self._start_ns is not None:
            return self._start_ns + int(self.sent * 1e9 / self.rate_pps)
        return self.clock.now_ns()

    def exhausted(self) -> bool:
        return self._done

    def finish(self) -> None:
        self._reader.close()

    def extra_counters(self) -> dict:
        return {"sent": self.sent, "capture_errors": int(self.error is not None)}


class Sink(Module):
    """Sink — frees every packet it gets and counts them. Gates: 1 in / 0 out."""

    n_ogates = 0

    def process(self, batch) -> None:
        batch.free()


class Drop(Module):
    """Drop — drops every packet under reason ``dropped`` (counted as drops). Gates: 1 in / 0 out."""

    n_ogates = 0
    drop_reasons = ("dropped",)

    def process(self, batch) -> None:
        self.drop(batch, 0)


class PcapSink(Module):
    """PcapSink — writes packets to a pcap or pcapng file, then frees them. Gates: 1 in / 0 out.

    Arguments:
        path (str, required): output file (overwritten).
        format (str, "pcap"): pcap or pcapng.
        nanosecond (bool, True): nanosecond timestamps.
        snaplen (bytes, 65535): bytes kept per packet.
        timestamps (str, "capture"): ``capture`` writes the capture timestamp when the packet came
            from a pcap (else the clock time), ``clock`` always writes the clock's ``arrival_ns``.
    """

    n_ogates = 0
    args = (
        Arg("path", str),
        Arg("format", str, "pcap", choices=("pcap", "pcapng")),
        Arg("nanosecond", bool, True),
        Arg("snaplen", int, 65535, unit="bytes", min=1, max=262144),
        Arg("timestamps", str, "capture", choices=("capture", "clock")),
    )

    def setup(self) -> None:
        try:
            self._writer = PcapWriter(self.path, format=self.format, nanosecond=self.nanosecond, snaplen=self.snaplen)
        except OSError as e:
            raise ArgError(f"{self.label}: cannot write {self.path}: {e.strerror}") from None

    def process(self, batch) -> None:
        self._writer.write(batch, ANNO_CAPTURE_TS if self.timestamps == "capture" else -1)
        batch.free()

    def finish(self) -> None:
        self._writer.close()


class Bypass(Module):
    """Bypass — synthetic cost: busy-waits ``t0_ns`` per batch plus ``t1_ns`` per packet (as in Batchy).

    Gates: 1 in / ``gates`` out (packets leave on gate 0; extra gates exist for building test graphs).
    Under the virtual clock it does not spin: its modeled cost defaults to ``(t0_ns, t1_ns)``.

    Arguments:
        t0_ns (ns, 0): cost per batch.
        t1_ns (ns, 0): cost per packet.
    """

    args = (
        Arg("t0_ns", float, 0.0, unit="ns", min=0),
        Arg("t1_ns", float, 0.0, unit="ns", min=0),
    )

    def setup(self) -> None:
        if "cost_ns" not in self.__dict__:
            self.cost_ns = (self.t0_ns, self.t1_ns)

    def on_set(self, name: str) -> None:
        self.cost_ns = (self.t0_ns, self.t1_ns)

    def process(self, batch) -> None:
        if not self.clock.virtual:
            end = time.perf_counter_ns() + int(self.t0_ns + self.t1_ns * len(batch))
            while time.perf_counter_ns() < end:
                pass
        self.emit(batch)


class Queue(Module):
    """Queue — a bounded FIFO that starts a new task (task root), with backpressure.

    Gates: 1 in / 1 out. ``process`` enqueues (in the upstream task); the queue's own task dequeues
    up to a burst per round. Packets beyond ``size`` are dropped as ``queue_full``. Above
    ``high_water`` of capacity the queue signals overload, and upstream tasks whose root honours
    backpressure yield until it falls below ``low_water`` (as BESS does at 90 % / 15 %).

    Arguments:
        size (packets, 1024): capacity.
        backpressure (bool, True): signal overload upstream.
        high_water (fraction, 0.9), low_water (fraction, 0.15).
    """

    task_root = True
    drop_reasons = ("queue_full",)
    cost_ns = (20.0, 2.0)
    args = (
        Arg("size", int, 1024, unit="packets", min=1, max=1 << 26),
        Arg("backpressure", bool, True),
        Arg("high_water", float, 0.9, min=0.0, max=1.0),
        Arg("low_water", float, 0.15, min=0.0, max=1.0),
    )

    def setup(self) -> None:
        if self.low_water > self.high_water:
            raise ArgError(f"{self.label}: low_water {self.low_water} is above high_water {self.high_water}")
        self._ring = np.zeros(self.size, dtype=np.int32)
        self._head = 0  # next slot to dequeue
        self._count = 0
        self._over = False
        self.max_fill = 0

    def __len__(self) -> int:
        return self._count

    def process(self, batch) -> None:
        n = len(batch)
        room = self.size - self._count
        if n > room:
            self.drop(batch.select(slice(room, None)), 0)
            batch = batch.select(slice(0, room))
            n = room
        if n:
            tail = (self._head + self._count) % self.size
            first = min(n, self.size - tail)
            self._ring[tail : tail + first] = batch.idx[:first]
            if first < n:
                self._ring[: n - first] = batch.idx[first:]
            self._count += n
            self.max_fill = max(self.max_fill, self._count)
        if self.backpressure and self._count >= self.high_water * self.size:
            self._over = True

    def run_task(self, burst: int) -> int:
        n = min(burst, self._count)
        if n == 0:
            return 0
        h = self._head
        first = min(n, self.size - h)
        idx = self._ring[h : h + first]
        if first < n:
            idx = np.concatenate([idx, self._ring[: n - first]])
        else:
            idx = idx.copy()
        self._head = (h + n) % self.size
        self._count -= n
        if self._over and self._count <= self.low_water * self.size:
            self._over = False
        self.emit(self.pool.batch(idx))
        return n

    def overloaded(self) -> bool:
        return self._over

    def exhausted(self) -> bool:
        return self._count == 0

    def extra_counters(self) -> dict:
        return {"occupancy": self._count, "max_occupancy": self.max_fill}


class Merge(Module):
    """Merge — joins ``inputs`` input gates into output gate 0 (batches arriving in one round merge).

    Gates: ``inputs`` in / 1 out. Several upstream gates may also feed one input gate directly; Merge
    makes the join point explicit and countable.
    """

    args = (Arg("inputs", int, 2, min=1, max=64),)

    def setup(self) -> None:
        self.n_igates = self.inputs

    def process(self, batch) -> None:
        self.emit(batch)


_META_FIELDS = ("flow_id", "in_port", "out_port") + tuple(f"anno{k}" for k in range(8))


class SetMetadata(Module):
    """SetMetadata — sets one metadata column of every packet to ``value``.

    Gates: 1 in / 1 out. ``field`` is flow_id, in_port, out_port or anno0..anno7.
    """

    args = (
        Arg("field", str, choices=_META_FIELDS),
        Arg("value", int, 0),
    )

    def process(self, batch) -> None:
        f = self.field
        if f.startswith("anno"):
            batch.set_anno(int(f[4:]), self.value)
        else:
            setattr(batch, f, self.value)
        self.emit(batch)


class Timestamp(Module):
    """Timestamp — writes the clock's current time (ns) into annotation ``ANNO_TIMESTAMP``.

    Gates: 1 in / 1 out. A later ``Measure(since="timestamp")`` measures delay from here.
    """

    def process(self, batch) -> None:
        batch.set_anno(ANNO_TIMESTAMP, self.clock.now_ns())
        self.emit(batch)
