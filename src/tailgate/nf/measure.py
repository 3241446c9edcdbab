"""Measure: per-flow latency histograms and rates (the class docstring is the manual)."""

from __future__ import annotations

import numpy as np
from numba import njit

from tailgate.core.args import Arg
from tailgate.dataplane.module import Module
from tailgate.measure.hist import N_BUCKETS, bucket_index, percentiles_from_counts
from tailgate.packet.pool import ANNO_TIMESTAMP


@njit(cache=True)
def _measure_kernel(hist, flow_packets, flow_bytes, arrival_ns, anno, ts_anno, flow_id, length, slots, now):
    """Record each packet's delay in row 0 (all) and row 1 + flow id (flows below the row count)."""
    n_flows = hist.shape[0] - 1
    for k in range(slots.shape[0]):
        s = slots[k]
        t0 = anno[s, ts_anno] if ts_anno >= 0 else arrival_ns[s]
        b = bucket_index(max(now - t0, 0))
        size = length[s]
        hist[0, b] += 1
        flow_packets[0] += 1
        flow_bytes[0] += size
        f = flow_id[s]
        if 0 <= f < n_flows:
            hist[f + 1, b] += 1
            flow_packets[f + 1] += 1
            flow_bytes[f + 1] += size


class Measure(Module):
    """Measure — records each packet's delay and the rate, overall and per flow; passes packets on.

    Gates: 1 in / 1 out. Delay is ``now - arrival_ns`` (``since="arrival"``, the time the source
    scheduled the packet) or ``now - annotation ANNO_TIMESTAMP`` (``since="timestamp"``, set by a
    Timestamp module). Per-flow rows are kept for flow ids ``0..max_flows-1``; other ids (and
    packets without a flow id) are counted in the overall histogram only. Packets measured before
    the clock reaches ``warmup_ns`` pass uncounted.

    Read with ``summary()`` (counts, rates, p50/p95/p99/p99.9 in ns) or counters such as
    ``m.counter("p99_ns")``; ``clear()`` starts a new measurement period. Percentiles come from a
    log-bucket histogram, so they are close to the delays, not exact.

    Example: two packets that arrived at 0 ns, measured at 2 us.

    >>> from tailgate.core.clock import VirtualClock
    >>> from tailgate.dataplane.drive import drive
    >>> from tailgate.nf import Measure
    >>> from tailgate.packet.craft import frame
    >>> m = Measure()
    >>> m.clock = VirtualClock(2000)            # the runtime sets the clock
    >>> _ = drive(m, [frame(), frame()])
    >>> s = m.summary()["all"]
    >>> s["packets"], s["bytes"], 1900 < s["p50_ns"] < 2100
    (2, 128, True)
    """

    cost_ns = (40.0, 6.0)
    args = (
        Arg("since", str, "arrival", unit="-", help="delay since arrival_ns, or since a Timestamp module",
            choices=("arrival", "timestamp")),
        Arg("max_flows", int, 64, unit="-", help="flows (ids 0..max_flows-1) with a histogram of their own",
            min=0, max=4096),
        Arg("warmup_ns", int, 0, unit="ns", help="clock time before which packets are not counted", min=0),
    )

    def setup(self) -> None:
        # Row 0 is every packet; row 1 + f is flow f.
        self.hist = np.zeros((self.max_flows + 1, N_BUCKETS), dtype=np.int64)
        self.flow_packets = np.zeros(self.max_flows + 1, dtype=np.int64)
        self.flow_bytes = np.zeros(self.max_flows + 1, dtype=np.int64)
        self.first_ns = None
        self.last_ns = None

    def clear(self) -> None:
        # Only the rows that counted a packet have anything in them (every histogram increment
        # comes with its row's packet count), and zeroing every row of buckets each control round
        # would be most of a Batchy round's dead time on a pipeline of many flows (docs/notes.md).
        rows = np.flatnonzero(self.flow_packets)
        if len(rows):
            self.hist[rows] = 0
        self.flow_packets[:] = 0
        self.flow_bytes[:] = 0
        self.first_ns = self.last_ns = None

    def process(self, batch) -> None:
        now = self.clock.now_ns()
        if len(batch.idx) and now >= self.warmup_ns:
            pool = batch.pool
            ts_anno = ANNO_TIMESTAMP if self.since == "timestamp" else -1
            _measure_kernel(
                self.hist, self.flow_packets, self.flow_bytes, pool.arrival_ns, pool.anno, ts_anno,
                pool.flow_id, pool.length, batch.idx, now,
            )
            if self.first_ns is None:
                self.first_ns = now
            self.last_ns = now
        self.emit(batch)

    def _row_summary(self, r: int, span_ns: int) -> dict:
        p = percentiles_from_counts(self.hist[r], [50, 95, 99, 99.9])
        pk = int(self.flow_packets[r])
        f = lambda x: None if np.isnan(x) else float(x)  # noqa: E731
        return {
            "packets": pk,
            "bytes": int(self.flow_bytes[r]),
            "rate_pps": pk * 1e9 / span_ns if span_ns > 0 else None,
            "rate_bps": self.flow_bytes[r] * 8e9 / span_ns if span_ns > 0 else None,
            "p50_ns": f(p[0]),
            "p95_ns": f(p[1]),
            "p99_ns": f(p[2]),
            "p999_ns": f(p[3]),
        }

    def summary(self) -> dict:
        span = (self.last_ns - self.first_ns) if self.first_ns is not None else 0
        out = {"all": self._row_summary(0, span), "flows": {}}
        for f in np.nonzero(self.flow_packets[1:])[0]:
            out["flows"][int(f)] = self._row_summary(int(f) + 1, span)
        return out

    def percentile_ns(self, pct: float, flow: int | None = None) -> float:
        r = 0 if flow is None else flow + 1
        return float(percentiles_from_counts(self.hist[r], [pct])[0])

    def extra_counters(self) -> dict:
        s = self._row_summary(0, (self.last_ns - self.first_ns) if self.first_ns is not None else 0)
        return {k: v for k, v in s.items() if k in ("p50_ns", "p95_ns", "p99_ns", "p999_ns", "rate_pps") and v is not None}
