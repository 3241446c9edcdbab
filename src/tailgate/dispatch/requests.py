"""Open-loop request streams: when each request arrives, its type, and how long it takes.

Manual
------
:func:`generate` draws the whole send schedule up front, as the Perséphone load generator does
(reference sheet §11), fully vectorized and deterministic for a seed::

    reqs = generate(get_workload("disp2"), load=0.8, n_workers=14, n_requests=1_000_000, seed=1)
    reqs.arrival_ns      # int64, sorted: a Poisson process at workload.rate_rps(0.8, 14)
    reqs.type_idx        # int64 index into reqs.types, drawn i.i.d. by each type's ratio
    reqs.service_ns      # int64 >= 1, drawn from each type's distribution (fixed, exp, ...)
    reqs.offered_rps     # the rate the arrivals were drawn at

* **Arrivals** are open loop: exponential gaps with mean ``1e9 / rate_rps`` ns, summed from time 0
  (so the first request arrives one gap after 0) and floored to whole ns. Flooring a running sum
  keeps the times sorted; several requests may share a nanosecond.
* **Types** are drawn i.i.d. by ratio; a type with ratio 0 never appears.
* **Service times** come from :meth:`~tailgate.dispatch.workloads.RequestType.sample_ns`, whole ns
  and at least 1.
* The draws happen in that order from one ``numpy.random.default_rng(seed)``, so the same seed gives
  the same arrays, and changing ``n_requests`` changes every array (no prefix property is promised).

:func:`generate_phased` strings phases together for the phase-changing schedule
(``workloads.PHASED``: (seconds, load, workload) each). Phase ``k`` covers
``[start_k, start_k + seconds·scale)`` with its own rate, mix and service times; ``scale`` shrinks
(or stretches) every phase's duration, e.g. ``scale=0.01`` turns 4 × 5 s into 4 × 50 ms.
A Poisson process is memoryless, so restarting the gaps at each boundary is exact.

How ``type_idx`` indexes a **merged type list** in a phased stream: ``reqs.types`` holds one entry
for each distinct *kind* of request over all phases — same name, id and service-time distribution
(the ratio aside) is the same kind, e.g. phases 2 and 3 of PHASED share SHORT 1 µs and LONG 100 µs.
Different kinds that carry the same id stay separate entries: phase 1's "SHORT" (id 1, 100 µs) is not
phase 2's "SHORT" (id 1, 1 µs). That is on purpose: a scheduler sees only the id (``reqs.type_ids``)
and must notice the change by profiling, while slowdown divides each request by its own nominal
service time (``reqs.nominal_ns``). Entries whose names collide are renamed ``NAME@<service>``
(``SHORT@100us``, ``SHORT@1us``, ``SHORT@3.5us``) so per-type metrics stay apart; an entry's ``ratio`` is
its realised share of the whole stream. ``reqs.phase_starts_ns`` gives each phase's start.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tailgate.core.errors import ArgError
from tailgate.dispatch.workloads import RequestType, Workload


@dataclass(frozen=True, eq=False)
class Requests:
    """One request stream (arrays of equal length, one element per request, in arrival order)."""

    arrival_ns: np.ndarray              # int64, sorted
    type_idx: np.ndarray                # int64 index into ``types``
    service_ns: np.ndarray              # int64 >= 1: how long the request runs
    offered_rps: float                  # the (time-averaged) rate the arrivals were drawn at
    types: tuple[RequestType, ...]      # what ``type_idx`` indexes
    phase_starts_ns: tuple[int, ...] = (0,)

    def __len__(self) -> int:
        return len(self.arrival_ns)

    @property
    def type_ids(self) -> np.ndarray:
        """int64, one per entry of ``types``: the id a scheduler sees (``type_ids[type_idx]`` per request)."""
        return np.array([t.type_id for t in self.types], dtype=np.int64)

    @property
    def nominal_ns(self) -> np.ndarray:
        """float64, one per entry of ``types``: the nominal service time slowdown divides by."""
        return np.array([t.service_ns for t in self.types], dtype=np.float64)

    @property
    def type_names(self) -> list[str]:
        return [t.name for t in self.types]


def check_count(what: str, value: int, low: int = 1) -> int:
    """``value`` as an int if it is a whole number >= ``low`` (not a bool), else an ArgError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ArgError(f"{what} must be an integer >= {low}, got {value!r}")
    return int(value)


def _draw_types(rng: np.random.Generator, ratios: Sequence[float], n: int) -> np.ndarray:
    """``n`` i.i.d. type indices with probabilities ``ratios`` (normalised)."""
    cum = np.cumsum(np.asarray(ratios, dtype=np.float64))
    cum /= cum[-1]
    # side="right" puts u in [cum[i-1], cum[i]) at i, so a zero-ratio type (empty interval) never
    # appears; the clip guards u landing on the last edge through rounding.
    idx = np.searchsorted(cum, rng.random(n), side="right")
    return np.minimum(idx, len(cum) - 1).astype(np.int64)


def _draw_service(rng: np.random.Generator, types: Sequence[RequestType], type_idx: np.ndarray) -> np.ndarray:
    service = np.empty(len(type_idx), dtype=np.int64)
    for k, t in enumerate(types):
        mask = type_idx == k
        count = int(np.count_nonzero(mask))
        if count:
            service[mask] = t.sample_ns(rng, count)
    return service


def generate(workload: Workload, load: float, n_workers: int, n_requests: int, seed: int) -> Requests:
    """``n_requests`` open-loop Poisson requests of ``workload`` at ``load`` for ``n_workers``."""
    n_workers = check_count("the number of workers", n_workers)
    n_requests = check_count("the number of requests", n_requests)
    rate_rps = workload.rate_rps(load, n_workers)   # refuses a load outside (0, 1.5]
    rng = np.random.default_rng(seed)
    times_ns = np.cumsum(rng.exponential(1e9 / rate_rps, n_requests))
    arrival_ns = np.floor(times_ns, out=times_ns).astype(np.int64)
    type_idx = _draw_types(rng, [t.ratio for t in workload.types], n_requests)
    service_ns = _draw_service(rng, workload.types, type_idx)
    return Requests(arrival_ns, type_idx, service_ns, float(rate_rps), tuple(workload.types))


def _poisson_times(rng: np.random.Generator, rate_rps: float, duration_ns: float) -> np.ndarray:
    """Arrival offsets (float ns, sorted) of a Poisson process on ``[0, duration_ns)``."""
    mean_gap_ns = 1e9 / rate_rps
    expected = duration_ns / mean_gap_ns
    # Draw enough gaps at once to pass the end almost always (mean + 8 sigma), and more if not.
    chunk = int(expected + 8 * math.sqrt(expected) + 16)
    times = np.cumsum(rng.exponential(mean_gap_ns, chunk))
    while times[-1] < duration_ns:
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(mean_gap_ns, chunk))])
    return times[: np.searchsorted(times, duration_ns, side="left")]


def _kind(t: RequestType) -> tuple:
    """What makes two phases' types the same kind of request: everything but the ratio."""
    return (t.name, t.type_id, t.service_ns, t.dist, t.sigma, t.samples_ns)


def _label(service_ns: float) -> str:
    return f"{service_ns / 1000:g}us" if service_ns >= 1000 else f"{service_ns:g}ns"


def generate_phased(
    phases: Sequence[tuple[float, float, Workload]], n_workers: int, seed: int, scale: float = 1.0
) -> Requests:
    """Requests of consecutive phases ``(seconds, load, workload)``, each ``seconds · scale`` long."""
    n_workers = check_count("the number of workers", n_workers)
    if not phases:
        raise ArgError("a phased schedule needs at least one phase")
    if not (scale > 0 and math.isfinite(scale)):
        raise ArgError(f"the phase duration scale must be > 0, got {scale!r}")
    rng = np.random.default_rng(seed)
    kinds: dict[tuple, int] = {}
    merged: list[RequestType] = []
    arrivals, type_idx, service, starts = [], [], [], []
    start_ns = 0.0
    expected_requests = 0.0
    for k, (seconds, load, workload) in enumerate(phases):
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ArgError(f"phase {k + 1} ({workload.name}): duration {seconds!r} s must be > 0")
        duration_ns = seconds * scale * 1e9
        rate_rps = workload.rate_rps(load, n_workers)
        expected_requests += rate_rps * duration_ns / 1e9
        # This phase's type index -> its entry in the merged list.
        for t in workload.types:
            if _kind(t) not in kinds:
                kinds[_kind(t)] = len(merged)
                merged.append(t)
        to_merged = np.array([kinds[_kind(t)] for t in workload.types], dtype=np.int64)
        offsets = _poisson_times(rng, rate_rps, duration_ns)
        local = _draw_types(rng, [t.ratio for t in workload.types], len(offsets))
        starts.append(math.floor(start_ns))
        arrivals.append(np.floor(start_ns + offsets).astype(np.int64))
        type_idx.append(to_merged[local])
        service.append(_draw_service(rng, workload.types, local))
        start_ns += duration_ns
    all_idx = np.concatenate(type_idx)
    if len(all_idx) == 0:
        raise ArgError(f"the phased schedule drew no requests at scale {scale!r}; use a larger scale")
    share = np.bincount(all_idx, minlength=len(merged)) / len(all_idx)
    names = [t.name for t in merged]
    merged = [
        dataclasses.replace(
            t,
            name=t.name if names.count(t.name) == 1 else f"{t.name}@{_label(t.service_ns)}",
            ratio=float(share[i]),
        )
        for i, t in enumerate(merged)
    ]
    return Requests(
        np.concatenate(arrivals),
        all_idx,
        np.concatenate(service),
        offered_rps=expected_requests / (start_ns / 1e9),
        types=tuple(merged),
        phase_starts_ns=tuple(starts),
    )
