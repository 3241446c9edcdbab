"""What a load point measured: latency and slowdown percentiles, drops, goodput, saturation.

Manual
------
:func:`summarize` turns per-request records — from the simulator or from the live load client — into
one JSON-ready dict, following the Perséphone reference sheet (§11)::

    s = summarize(reqs.type_idx, reqs.arrival_ns, completion_ns, reqs.nominal_ns,
                  reqs.type_names, reqs.offered_rps)
    s["slowdown"]["p99.9"], s["types"]["SHORT"]["latency_ns"]["p99.9"], s["saturated"]

(:func:`summarize_requests` does the same from a :class:`~tailgate.dispatch.requests.Requests`.)

* **Records.** One element per request: its type index (into ``nominal_ns`` / ``type_names``), its
  arrival (send) time and its completion time in ns; a completion of ``-1`` marks a dropped request.
* **Warm-up.** Requests are put in arrival order and the first ``warmup_frac`` (10 %) of them are
  discarded; everything below is over the remaining *measured* requests.
* **Latency** = completion − arrival; **slowdown** = latency ÷ the type's nominal service time.
  Percentiles p50, p99, p99.9 (and the mean) overall and per type; the overall slowdown percentile
  is taken over the merged per-request slowdowns. Percentiles are nearest-rank (the
  ``ceil(q·n)``-th smallest, :func:`tailgate.measure.percentile.percentiles` with ``snap``):
  always a value some request really saw. Dropped requests have no
  latency; they are counted (``dropped``) and pull goodput down instead. A type with no completed
  request reports ``None`` for its percentiles.
* **Rates.** ``offered_rps`` is the rate the caller says it offered. ``arrival_rps`` is the rate
  that really arrived in the measured window ((n − 1) ÷ the span of arrivals).
  ``achieved_rps`` (goodput) is completed requests ÷ (last completion − first arrival).
* **Saturation.** The reference marks a point saturated when goodput < 99.9 % of offered. Against
  the *nominal* offered rate that test is noise-bound: a Poisson stream of n requests strays from its
  rate by 1/√n, which is 0.3 % at 100 000 requests, and the last, slowest completion stretches
  ``achieved_rps``'s span by a tail latency. So the test compares counts over one window instead:
  ``goodput_ratio`` = requests completed by the last measured arrival ÷ requests that arrived in the
  measured window, and ``saturated = goodput_ratio < 0.999``. A stable system falls short of 1 by
  only the few requests in flight at the end (Little's L, O(1)); an overloaded one by its growing
  backlog (O(n)); a dropping one by its drops. The reference then reports p99.9 as 1e9: this dict
  keeps the true measured numbers and only sets the flag, so callers decide how to plot it.

:func:`max_sustainable_load` reads a sweep: the highest load that meets a p99.9-slowdown target,
with every lower load meeting it too.

Everything is vectorized numpy; 10 million records take a few seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tailgate.core.errors import ArgError
from tailgate.measure.percentile import percentiles

#: Percentiles reported, as (key, percent).
PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9))

#: A point is saturated when its goodput falls below this fraction of what arrived.
SATURATION_GOODPUT = 0.999


def _stats(values: np.ndarray) -> dict[str, float | None]:
    """Nearest-rank percentiles and mean of ``values`` (None each when there are none)."""
    if len(values) == 0:
        return {key: None for key, _ in PERCENTILES} | {"mean": None}
    # Nearest rank, snapped: 99.9 % of 1000 values is the 999th, not the 1000th that q·n computed
    # in binary floating point would give.
    got = percentiles(values, [q for _, q in PERCENTILES], snap=True)
    out: dict[str, float | None] = {key: float(v) for (key, _), v in zip(PERCENTILES, got)}
    out["mean"] = float(values.mean())
    return out


def summarize(
    type_idx: np.ndarray,
    arrival_ns: np.ndarray,
    completion_ns: np.ndarray,
    nominal_ns: Sequence[float] | np.ndarray,
    type_names: Sequence[str],
    offered_rps: float,
    warmup_frac: float = 0.1,
) -> dict[str, Any]:
    """The metrics of one load point (layout in the module manual)."""
    type_idx = np.asarray(type_idx)
    arrival_ns = np.asarray(arrival_ns, dtype=np.int64)
    completion_ns = np.asarray(completion_ns, dtype=np.int64)
    nominal = np.asarray(nominal_ns, dtype=np.float64)
    names = [str(n) for n in type_names]
    n = len(arrival_ns)
    if not len(type_idx) == n == len(completion_ns):
        raise ArgError(
            f"records differ in length: {len(type_idx)} types, {n} arrivals, {len(completion_ns)} completions"
        )
    if n == 0:
        raise ArgError("no requests to summarize")
    if len(nominal) != len(names):
        raise ArgError(f"{len(nominal)} nominal service times for {len(names)} type names")
    if len(set(names)) != len(names):
        raise ArgError(f"type names must be distinct, got {names}")
    if not np.all(nominal > 0):
        raise ArgError(f"nominal service times must be > 0, got {nominal.tolist()}")
    if not 0 <= warmup_frac < 1:
        raise ArgError(f"warm-up fraction {warmup_frac!r} is outside [0, 1)")
    if type_idx.min() < 0 or type_idx.max() >= len(names):
        raise ArgError(f"type indices must lie in 0..{len(names) - 1}, got {type_idx.min()}..{type_idx.max()}")

    if np.any(arrival_ns[1:] < arrival_ns[:-1]):
        # Live records come in completion order; the warm-up is defined by arrival order.
        order = np.argsort(arrival_ns, kind="stable")
        type_idx, arrival_ns, completion_ns = type_idx[order], arrival_ns[order], completion_ns[order]
    skip = int(n * warmup_frac)
    type_idx, arrival_ns, completion_ns = type_idx[skip:], arrival_ns[skip:], completion_ns[skip:]
    measured = len(arrival_ns)

    done = completion_ns >= 0
    if np.any(completion_ns[done] < arrival_ns[done]):
        bad = int(np.count_nonzero(done & (completion_ns < arrival_ns)))
        raise ArgError(f"{bad} requests complete before they arrive; the records are inconsistent")
    done_type = type_idx[done]
    latency = completion_ns[done] - arrival_ns[done]
    slowdown = latency / nominal[done_type]
    completed = len(latency)

    first_arrival, last_arrival = int(arrival_ns[0]), int(arrival_ns[-1])
    arrival_span = last_arrival - first_arrival
    done_span = int(completion_ns[done].max()) - first_arrival if completed else 0
    in_window = int(np.count_nonzero(done & (completion_ns <= last_arrival)))
    goodput_ratio = in_window / measured

    per_type: dict[str, Any] = {}
    for k, name in enumerate(names):
        mine = done_type == k
        count = int(np.count_nonzero(type_idx == k))
        finished = int(np.count_nonzero(mine))
        per_type[name] = {
            "nominal_ns": float(nominal[k]),
            "measured": count,
            "completed": finished,
            "dropped": count - finished,
            "latency_ns": _stats(latency[mine]),
            "slowdown": _stats(slowdown[mine]),
        }
    return {
        "requests": n,
        "warmup": skip,
        "measured": measured,
        "completed": completed,
        "dropped": measured - completed,
        "offered_rps": float(offered_rps),
        "arrival_rps": (measured - 1) / arrival_span * 1e9 if arrival_span > 0 else None,
        "achieved_rps": completed / done_span * 1e9 if done_span > 0 else None,
        "goodput_ratio": goodput_ratio,
        "saturated": bool(goodput_ratio < SATURATION_GOODPUT),
        "latency_ns": _stats(latency),
        "slowdown": _stats(slowdown),
        "types": per_type,
    }


def summarize_requests(requests, completion_ns: np.ndarray, warmup_frac: float = 0.1) -> dict[str, Any]:
    """:func:`summarize` of a :class:`~tailgate.dispatch.requests.Requests` and its completions."""
    return summarize(
        requests.type_idx, requests.arrival_ns, completion_ns, requests.nominal_ns,
        requests.type_names, requests.offered_rps, warmup_frac,
    )


def max_sustainable_load(points: Sequence[tuple[float, dict]], slowdown_target: float) -> float | None:
    """The highest load of one policy's sweep that it sustains under ``slowdown_target``.

    A point *meets* the target when it is not saturated and its overall p99.9 slowdown is
    ``<= slowdown_target``. Walking the points in ascending load, the answer is the last load before
    the first point that misses — so a lucky point above a failure does not count, and "sustains
    0.7" means every swept load up to 0.7 met the target. None when even the lowest load misses.
    """
    best = None
    for load, summary in sorted(points, key=lambda p: p[0]):
        p999 = summary["slowdown"]["p99.9"]
        if summary["saturated"] or p999 is None or p999 > slowdown_target:
            break
        best = float(load)
    return best
