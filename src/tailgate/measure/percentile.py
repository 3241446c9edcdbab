"""Percentiles by nearest rank: the one percentile rule of tailgate.

Manual
------
The p-th percentile of n values is the k-th smallest of them, ``k = ceil(p/100 · n)`` clipped to
1..n: always a value some sample really had, never an interpolation between two (numpy calls it
``method="inverted_cdf"``). :func:`nearest_ranks` computes k; :func:`percentiles` picks the values
(one partial sort serves every percentile); the histograms (:mod:`tailgate.measure.hist`) apply the
same ranks to bucket counts.

``p/100 · n`` is computed in binary floating point, and where it should be an integer it can land
just above one: 99.9 % of 1000 is 999.0000000000001, so the plain rule picks the 1000th value.
``snap=True`` treats a product within 1e-9 of an integer as that integer (the 999th). The
simulator's metrics (:mod:`tailgate.dispatch.metrics`) snap; the histograms and the live client's
send lag do not — each keeps the rule its recorded results were computed with.

Example::

    percentiles(np.array([5, 1, 4, 2, 3]), [50, 99])        # array([3, 5])
    nearest_ranks(1000, [99.9]), nearest_ranks(1000, [99.9], snap=True)   # [1000], [999]
"""

from __future__ import annotations

import numpy as np

#: With ``snap``, how close to an integer ``p/100 · n`` must be to count as that integer.
SNAP_TOLERANCE = 1e-9


def nearest_ranks(n, pcts, *, snap: bool = False) -> np.ndarray:
    """1-based ranks ``ceil(p/100 · n)`` of the percentiles ``pcts`` among ``n`` values, clipped to
    1..n (an int64 array; ``n`` may be an array of counts, broadcast against ``pcts``)."""
    n = np.asarray(n)
    x = np.asarray(pcts, dtype=np.float64) / 100.0 * n
    if snap:
        x = x - SNAP_TOLERANCE
    return np.maximum(np.minimum(np.ceil(x), n), 1).astype(np.int64)


def percentiles(values: np.ndarray, pcts, *, snap: bool = False) -> np.ndarray:
    """The nearest-rank percentiles ``pcts`` (in %) of ``values`` (non-empty), in their dtype."""
    values = np.asarray(values)
    if len(values) == 0:
        raise ValueError("percentiles of no values")
    idx = nearest_ranks(len(values), pcts, snap=snap) - 1
    return np.partition(values, idx)[idx]
