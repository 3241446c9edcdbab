"""Log-linear latency histograms in integer nanoseconds, numpy-backed and mergeable.

Manual
------
Values below 64 ns get one bucket each; above, every power of two is cut into 32 equal buckets, so a
reported percentile is within 1/32 (about 3 %) of the true value. Values up to 2^47 ns (about 39
hours) are kept; larger ones land in the last bucket. A percentile is reported as the *upper edge*
of its bucket, so an SLO check errs on the safe side.

::

    h = LatencyHistogram()
    h.record(latencies_ns)            # numpy array, one numba call
    h.percentile(99.0)                # ns
    h.merge(other)                    # add another histogram's counts
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tailgate.measure.percentile import nearest_ranks

LINEAR = 64          # values 0..63 have one bucket each
SUB_BITS = 5         # 32 buckets per power of two above that
SUB = 1 << SUB_BITS
MAX_MSB = 47
N_BUCKETS = LINEAR + (MAX_MSB - 5) * SUB


@njit(cache=True)
def bucket_index(v):
    if v < LINEAR:
        return max(v, 0)
    msb = 63
    while (v >> msb) == 0:
        msb -= 1
    if msb > MAX_MSB:
        return N_BUCKETS - 1
    shift = msb - SUB_BITS
    return LINEAR + (msb - 6) * SUB + ((v >> shift) - SUB)


@njit(cache=True)
def _record(counts, values):
    for k in range(values.shape[0]):
        counts[bucket_index(values[k])] += 1


def bucket_upper_ns(i: np.ndarray | int) -> np.ndarray:
    """Largest value that falls in bucket ``i``."""
    i = np.asarray(i, dtype=np.int64)
    lin = i < LINEAR
    j = np.maximum(i - LINEAR, 0)
    msb = j // SUB + 6
    shift = msb - SUB_BITS
    lo = ((j % SUB) + SUB) << shift
    hi = lo + (np.int64(1) << shift) - 1
    return np.where(lin, i, hi)


def percentiles_from_counts(counts: np.ndarray, pcts) -> np.ndarray:
    """Percentiles (upper bucket edges, ns) of one histogram's counts; NaN where empty."""
    total = counts.sum()
    pcts = np.atleast_1d(np.asarray(pcts, dtype=np.float64))
    if total == 0:
        return np.full(len(pcts), np.nan)
    cum = np.cumsum(counts)
    # Rank of the percentile: the smallest value with at least p% of samples at or below it.
    ranks = nearest_ranks(total, pcts)
    idx = np.searchsorted(cum, ranks, side="left")
    return bucket_upper_ns(idx).astype(np.float64)


def percentile_of_rows(counts: np.ndarray, pct: float) -> np.ndarray:
    """One percentile (upper bucket edge, ns) of each row of a 2-D array of histogram counts, in
    one pass (a control loop reads every flow's row each round); NaN where a row is empty."""
    counts = np.atleast_2d(counts)
    cum = np.cumsum(counts, axis=1)
    total = cum[:, -1]
    ranks = nearest_ranks(total, pct)
    idx = (cum < ranks[:, None]).sum(axis=1)          # first bucket reaching the rank
    out = bucket_upper_ns(np.minimum(idx, counts.shape[1] - 1)).astype(np.float64)
    out[total == 0] = np.nan
    return out


class LatencyHistogram:
    def __init__(self) -> None:
        self.counts = np.zeros(N_BUCKETS, dtype=np.int64)
        self.sum_ns = 0
        self.min_ns = None
        self.max_ns = None

    def record(self, values_ns: np.ndarray) -> None:
        values_ns = np.asarray(values_ns, dtype=np.int64)
        if len(values_ns) == 0:
            return
        _record(self.counts, values_ns)
        self.sum_ns += int(values_ns.sum())
        lo, hi = int(values_ns.min()), int(values_ns.max())
        self.min_ns = lo if self.min_ns is None else min(self.min_ns, lo)
        self.max_ns = hi if self.max_ns is None else max(self.max_ns, hi)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def mean_ns(self) -> float:
        n = self.count
        return self.sum_ns / n if n else float("nan")

    def percentile(self, pct: float) -> float:
        return float(percentiles_from_counts(self.counts, [pct])[0])

    def percentiles(self, pcts) -> np.ndarray:
        return percentiles_from_counts(self.counts, pcts)

    def merge(self, other: "LatencyHistogram") -> None:
        self.counts += other.counts
        self.sum_ns += other.sum_ns
        if other.min_ns is not None:
            self.min_ns = other.min_ns if self.min_ns is None else min(self.min_ns, other.min_ns)
            self.max_ns = other.max_ns if self.max_ns is None else max(self.max_ns, other.max_ns)

    def clear(self) -> None:
        self.counts[:] = 0
        self.sum_ns = 0
        self.min_ns = self.max_ns = None

    def summary(self) -> dict:
        p = self.percentiles([50, 95, 99, 99.9])
        f = lambda x: None if np.isnan(x) else float(x)  # noqa: E731
        return {
            "count": self.count,
            "mean_ns": f(self.mean_ns()),
            "min_ns": self.min_ns,
            "p50_ns": f(p[0]),
            "p95_ns": f(p[1]),
            "p99_ns": f(p[2]),
            "p999_ns": f(p[3]),
            "max_ns": self.max_ns,
        }
