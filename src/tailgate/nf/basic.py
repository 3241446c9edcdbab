"""Basic network functions: sources, sinks, queues, synthetic cost, merge, metadata.

Each class docstring is its manual (``tailgate modules NAME`` adds the argument table generated
from its declarations), and its example runs as a test. Task roots (``Source``, ``PcapSource``,
``Queue``) own a task; everything else runs when fed.
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
    default ``flows`` random flows of ``proto``, or the ``templates`` given. ``size_dist`` is
    ``fixed`` (every frame ``size_bytes``), ``imix``, ``uniform:LO:HI`` or ``choice:A/B/C``.

    Packets carry their *scheduled* send time in ``arrival_ns`` (``1 / rate_pps`` apart), so
    queueing behind a busy pipeline shows up as latency; with ``rate_pps=0`` the source sends as
    fast as the pipeline takes packets. Drop reason ``pool_exhausted``: the packet pool had no
    free slot for a packet that was due.

    Example: 1000 IMIX packets at 1 Mpps on the virtual clock; the last one is due at 999 us.

    >>> from tailgate.core.clock import VirtualClock
    >>> from tailgate.dataplane.graph import Pipeline
    >>> from tailgate.dataplane.runtime import Runtime
    >>> from tailgate.nf import Sink, Source
    >>> with Pipeline() as p:
    ...     src = Source(rate_pps=1e6, flows=4, size_dist="imix", packets=1000)
    ...     sink = src >> Sink()
    >>> rt = Runtime(p, VirtualClock())
    >>> rt.run()
    'input exhausted'
    >>> sink.packets_in, rt.clock.now_ns()
    (1000, 999000)

    See also: PcapSource, Queue.
    """

    n_igates = 0
    task_root = True
    drop_reasons = ("pool_exhausted",)
    args = (
        Arg("rate_pps", float, 0.0, unit="pps", help="offered rate; 0 = as fast as the pipeline takes packets", min=0),
        Arg("flows", int, 16, unit="-", help="random flows made when no templates are given", min=1, max=1 << 20),
        Arg("templates", any_value, None, unit="-",
            help="explicit flows (a list of FlowTemplate) instead of random ones"),
        Arg("size_bytes", int, 64, unit="bytes", help="frame size without FCS (size_dist=fixed)", min=42, max=9000),
        Arg("size_dist", str, "fixed", unit="-", help="frame sizes: fixed, imix, uniform:LO:HI or choice:A/B/C"),
        Arg("proto", str, "udp", unit="-", help="protocol of the random flows", choices=("udp", "tcp", "icmp")),
        Arg("dst_prefix", str, None, unit="-", help="IPv4 prefix the random flows' destinations come from"),
        Arg("seed", int, 0, unit="-", help="random seed; the same seed gives the same packets"),
        Arg("packets", int, 0, unit="packets", help="stop after this many packets; 0 = never", min=0),
        Arg("backpressure", bool, True, unit="-", help="yield while a downstream queue is overloaded"),
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

    def offered_and_sent(self, now_ns: int) -> tuple[int, int, int]:
        """``(due_packets, sent_packets, span_ns)`` since ``rate_pps`` was last set: packets due by
        ``now_ns`` at that rate (at most what ``packets`` leaves), packets sent, and the clock time
        between; all 0 without a rate or before the first round. Fewer sent than due means the
        source fell behind its offered rate (the run summary warns)."""
        if not self.rate_pps or self._gen is None:
            return 0, 0, 0
        span_ns = max(int(now_ns) - self.start_ns, 0)
        due = int(span_ns * self.rate_pps / 1e9) + 1
        if self.packets:
            due = min(due, self.packets - self._sent_at_restart)
        return due, self.sent - self._sent_at_restart, span_ns

    def extra_counters(self) -> dict:
        return {"sent": self.sent}


class PcapSource(Module):
    """PcapSource — replays a pcap or pcapng capture (task root).

    Gates: 0 in / 1 out. Packets enter as fast as the pipeline takes them (or at ``rate_pps``);
    ``arrival_ns`` is the clock time they entered, and the capture timestamp is kept in annotation
    ``ANNO_CAPTURE_TS`` (PcapSink writes it back out by default).

    A corrupt or truncated capture stops the replay where the damage starts; the packets before it
    are processed, and the error (naming the file and byte offset) is kept in ``error`` and shown
    in the run summary. Records longer than the file's snap length are replayed whole, and packets
    on a pcapng's later non-Ethernet interfaces are skipped: both are counted
    (``longer_than_snaplen``, ``skipped_not_ethernet``) and named in the summary's warnings
    (``capture_warnings``).

    Example: write three frames with PcapSink, then replay the file twice.

    >>> import os, tempfile
    >>> from tailgate.core.clock import VirtualClock
    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.dataplane.graph import Pipeline
    >>> from tailgate.dataplane.runtime import Runtime
    >>> from tailgate.nf import PcapSink, PcapSource, Sink
    >>> from tailgate.packet.craft import frame
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "in.pcap")
    >>> with Pipeline():
    ...     writer = PcapSink(path=path)
    >>> _ = drive(writer, [frame(sport=port) for port in (1, 2, 3)])
    >>> writer.finish()
    >>> with Pipeline() as p:
    ...     src = PcapSource(path=path, loops=2)
    ...     sink = src >> Sink()
    >>> Runtime(p, VirtualClock()).run()
    'input exhausted'
    >>> src.sent, sink.packets_in, src.error
    (6, 6, None)
    >>> tmp.cleanup()

    See also: PcapSink, Source.
    """

    n_igates = 0
    task_root = True
    args = (
        Arg("path", str, unit="-", help="the capture file, pcap or pcapng"),
        Arg("loops", int, 1, unit="-", help="replay the file this many times", min=1),
        Arg("rate_pps", float, 0.0, unit="pps", help="pace of the replay; 0 = as fast as the pipeline takes packets",
            min=0),
        Arg("backpressure", bool, True, unit="-", help="yield while a downstream queue is overloaded"),
    )

    def setup(self) -> None:
        self.error = None
        self.sent = 0
        self._loop = 0
        self._done = False
        self._start_ns = None
        self._replayed = {"longer_than_snaplen": 0, "skipped_not_ethernet": 0}  # by readers closed
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
            for k in self._replayed:
                self._replayed[k] += getattr(self._reader, k)
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
        out = {"sent": self.sent, "capture_errors": int(self.error is not None)}
        reader = getattr(self, "_reader", None)  # (None when the file could not be opened)
        for k, v in self._replayed.items():
            out[k] = v + getattr(reader, k, 0)
        return out

    @property
    def capture_warnings(self) -> list[str]:
        """What the replay read in spite of the file (one line each, naming it); [] when nothing."""
        c = self.extra_counters()
        out = []
        if c["longer_than_snaplen"]:
            out.append(f"{self.path}: {c['longer_than_snaplen']} records longer than the snap length, replayed whole")
        if c["skipped_not_ethernet"]:
            out.append(f"{self.path}: {c['skipped_not_ethernet']} packets on non-Ethernet interfaces skipped")
        return out


class Sink(Module):
    """Sink — frees every packet it gets and counts them. Gates: 1 in / 0 out.

    Example:

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import Sink
    >>> from tailgate.packet.craft import frame
    >>> out, pool = drive(Sink(), [frame(), frame()])
    >>> out, pool.n_used                # nothing leaves; both slots are back in the pool
    ({}, 0)
    """

    n_ogates = 0

    def process(self, batch) -> None:
        batch.free()


class Drop(Module):
    """Drop — drops every packet under reason ``dropped`` (counted as drops). Gates: 1 in / 0 out.

    Example:

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import Drop
    >>> from tailgate.packet.craft import frame
    >>> drop = Drop()
    >>> out, pool = drive(drop, [frame(), frame()])
    >>> drop.counter("drops.dropped"), pool.n_used
    (2, 0)
    """

    n_ogates = 0
    drop_reasons = ("dropped",)

    def process(self, batch) -> None:
        self.drop(batch, 0)


class PcapSink(Module):
    """PcapSink — writes packets to a pcap or pcapng file, then frees them. Gates: 1 in / 0 out.

    The file is overwritten, and complete once the run ends (``finish``). With
    ``timestamps="capture"`` a packet that came from a capture keeps its capture timestamp and
    any other gets its ``arrival_ns``; ``timestamps="clock"`` always writes ``arrival_ns``.

    Example: three 64-byte frames make a 24-byte file header and three 16-byte record headers
    with their frames.

    >>> import os, tempfile
    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import PcapSink
    >>> from tailgate.packet.craft import frame
    >>> tmp = tempfile.TemporaryDirectory()
    >>> sink = PcapSink(path=os.path.join(tmp.name, "out.pcap"))
    >>> out, pool = drive(sink, [frame(sport=port) for port in (1, 2, 3)])
    >>> sink.finish()
    >>> os.path.getsize(sink.path), pool.n_used
    (264, 0)
    >>> tmp.cleanup()

    See also: PcapSource.
    """

    n_ogates = 0
    args = (
        Arg("path", str, unit="-", help="output file (overwritten)"),
        Arg("format", str, "pcap", unit="-", help="file format", choices=("pcap", "pcapng")),
        Arg("nanosecond", bool, True, unit="-", help="nanosecond timestamps (else microseconds)"),
        Arg("snaplen", int, 65535, unit="bytes", help="bytes kept of each packet", min=1, max=262144),
        Arg("timestamps", str, "capture", unit="-", help="capture: keep capture timestamps; clock: arrival_ns",
            choices=("capture", "clock")),
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

    Gates: 1 in / 1 out. Under the virtual clock it does not spin: its modeled cost defaults to
    ``(t0_ns, t1_ns)``, and changing either argument while running changes the model too.

    Example:

    >>> from tailgate.core.clock import VirtualClock
    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import Bypass
    >>> from tailgate.packet.craft import frame
    >>> bypass = Bypass(t0_ns=100, t1_ns=10)
    >>> bypass.cost_ns                  # what the virtual clock charges a batch of b: T0 + T1·b
    (100.0, 10.0)
    >>> bypass.clock = VirtualClock()   # the runtime sets the clock; this one never spins
    >>> out, _ = drive(bypass, [frame(), frame()])
    >>> len(out[0])
    2
    """

    args = (
        Arg("t0_ns", float, 0.0, unit="ns", help="cost of each batch", min=0),
        Arg("t1_ns", float, 0.0, unit="ns", help="cost of each packet", min=0),
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

    Example: six packets into a queue of four.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import Queue
    >>> from tailgate.packet.craft import frame
    >>> q = Queue(size=4)
    >>> _ = drive(q, [frame(sport=port) for port in range(6)])
    >>> len(q), q.counter("drops.queue_full"), q.overloaded()
    (4, 2, True)
    """

    task_root = True
    drop_reasons = ("queue_full",)
    cost_ns = (20.0, 2.0)
    args = (
        Arg("size", int, 1024, unit="packets", help="capacity", min=1, max=1 << 26),
        Arg("backpressure", bool, True, unit="-", help="signal overload to upstream tasks"),
        Arg("high_water", float, 0.9, unit="fraction", help="share of size above which the queue is overloaded",
            min=0.0, max=1.0),
        Arg("low_water", float, 0.15, unit="fraction", help="share of size below which the overload ends",
            min=0.0, max=1.0),
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
    """Merge — joins its input gates into output gate 0 (batches arriving in one round merge).

    Gates: ``inputs`` in / 1 out. Several upstream gates may also feed one input gate directly; Merge
    makes the join point explicit and countable.

    Example:

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import Merge
    >>> from tailgate.packet.craft import frame
    >>> merge = Merge(inputs=3)
    >>> out, _ = drive(merge, [frame()], igate=2)       # what comes in on any gate leaves on 0
    >>> len(out[0])
    1
    """

    args = (Arg("inputs", int, 2, unit="-", help="input gates", min=1, max=64),)

    def setup(self) -> None:
        self.n_igates = self.inputs

    def process(self, batch) -> None:
        self.emit(batch)


_META_FIELDS = ("flow_id", "in_port", "out_port") + tuple(f"anno{k}" for k in range(8))


class SetMetadata(Module):
    """SetMetadata — sets one metadata column of every packet to a fixed value.

    Gates: 1 in / 1 out. The packet bytes do not change; later modules read the column.

    Example: the column is in the pool, beside the frames that left.

    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import SetMetadata
    >>> from tailgate.packet.craft import frame
    >>> out, pool = drive(SetMetadata(field="out_port", value=3), [frame(), frame()])
    >>> pool.out_port[pool.in_use].tolist()
    [3, 3]
    """

    args = (
        Arg("field", str, unit="-", help="metadata column: flow_id, in_port, out_port or anno0..anno7",
            choices=_META_FIELDS),
        Arg("value", int, 0, unit="-", help="the value written"),
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

    Example:

    >>> from tailgate.core.clock import VirtualClock
    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import Timestamp
    >>> from tailgate.packet.craft import frame
    >>> from tailgate.packet.pool import ANNO_TIMESTAMP
    >>> ts = Timestamp()
    >>> ts.clock = VirtualClock(5000)               # the runtime sets the clock
    >>> out, pool = drive(ts, [frame()])
    >>> pool.anno[pool.in_use, ANNO_TIMESTAMP].tolist()
    [5000]
    """

    def process(self, batch) -> None:
        batch.set_anno(ANNO_TIMESTAMP, self.clock.now_ns())
        self.emit(batch)
