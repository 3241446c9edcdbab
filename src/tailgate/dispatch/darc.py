"""DARC's core reservation: which workers are reserved for which group of request types.

Manual
------
:func:`reserve` follows the Perséphone reference sheet (§6), given each type's mean service time
and share of requests (from a profiling window, or declared) and the number of workers ``N``:

1. Sort the types by mean service time, shortest first.
2. Group them: a type opens a group, and each following type joins while its mean is within 20 %
   of the group's first (shortest) type; the first that is not closes the group.
3. Give groups cores in ascending order. A group's demand is ``Σ mean·ratio / S · N`` with
   ``S = Σ mean·ratio`` over all types. It gets ``k = 1`` core if ``⌊demand⌋ = 0``, else
   ``⌊demand⌋`` when the fractional part is ≤ 0.5 and ``⌈demand⌉`` above. The cores are the next
   ``k`` unreserved workers in index order; a group that wants more than remain takes all that
   remain plus the *spillway* worker ``N - 1``.
4. A group may *steal* idle workers with an index at or beyond the first one still unreserved
   after its own reservation: the cores of longer groups (and unreserved ones), never those of
   shorter groups. The longest group steals nothing.

The spillway worker also serves requests of unknown type. Types without samples should be given a
huge mean (the artifact uses 1e9 ns) and a ratio of 0: they sort last and still get a core while
cores remain.

Example (High Bimodal, 14 workers)::

    r = reserve([(1, 1_000, 0.5), (2, 100_000, 0.5)], 14)
    r.groups[0].reserved   # (0,)       SHORT: demand 0.139 -> 1 core, may steal 1..13
    r.groups[1].reserved   # (1, ..., 13) LONG: demand 13.86 -> 14 > 13 left: all + spillway
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numba import njit

from tailgate.core.errors import ArgError

#: A type joins a group while its mean is below (1 + GROUP_TOLERANCE) × the group's shortest.
GROUP_TOLERANCE = 0.2


@dataclass(frozen=True)
class Group:
    types: tuple[int, ...]          # type ids, shortest mean first
    mean_ns: tuple[float, ...]      # their mean service times
    demand: float                   # cores' worth of work
    reserved: tuple[int, ...]       # worker indices reserved for the group
    stealable: tuple[int, ...]      # idle workers it may borrow


@dataclass(frozen=True)
class Reservation:
    n_workers: int
    spillway: int
    groups: tuple[Group, ...]

    def group_of(self, type_id: int) -> Group | None:
        """The group serving ``type_id`` (None: unknown type, served by the spillway worker)."""
        for g in self.groups:
            if type_id in g.types:
                return g
        return None

    def table(self) -> list[dict]:
        """One row per group, for JSON summaries and logs."""
        return [
            {"types": list(g.types), "mean_ns": list(g.mean_ns), "demand": round(g.demand, 4),
             "reserved": list(g.reserved), "stealable": list(g.stealable)}
            for g in self.groups
        ]


@njit(cache=True)
def cores_for(demand: float) -> int:
    """The artifact's rounding: at least one core; round up only above half a core."""
    whole = math.floor(demand)
    if whole == 0:
        return 1
    return whole + 1 if demand - whole > 0.5 else whole


@njit(cache=True)
def reserve_kernel(mean_ns, ratio, active, n_workers, tolerance, group_of, reserved, stealable, demand):
    """The reservation on type indices; returns the number of groups.

    ``mean_ns``, ``ratio`` and ``active`` are per type; inactive types get group -1 and no cores.
    Outputs (preallocated, overwritten): ``group_of[t]``, and per group ``g`` (numbered shortest
    first) ``reserved[g, w]`` / ``stealable[g, w]`` as 0/1 and ``demand[g]`` in cores. The policy
    objects call this on every re-reservation, so it is compiled and allocation-light.
    """
    n_types = mean_ns.shape[0]
    group_of[:] = -1
    reserved[:, :] = 0
    stealable[:, :] = 0
    s_ns = 0.0
    for t in range(n_types):
        if active[t]:
            s_ns += mean_ns[t] * ratio[t]
    order = np.argsort(mean_ns, kind="mergesort")
    spillway = n_workers - 1
    n_resas = 0
    n_groups = 0
    i = 0
    while i < n_types:
        first = order[i]
        if not active[first]:
            i += 1
            continue
        work_ns = mean_ns[first] * ratio[first]
        group_of[first] = n_groups
        j = i + 1
        while j < n_types and mean_ns[order[j]] - mean_ns[first] < tolerance * mean_ns[first]:
            if active[order[j]]:
                group_of[order[j]] = n_groups
                work_ns += mean_ns[order[j]] * ratio[order[j]]
            j += 1
        d = work_ns / s_ns * n_workers if s_ns > 0 else 0.0
        demand[n_groups] = d
        k = cores_for(d)
        if k > n_workers - n_resas:
            reserved[n_groups, n_resas:n_workers] = 1
            reserved[n_groups, spillway] = 1
            n_resas = n_workers
        else:
            reserved[n_groups, n_resas:n_resas + k] = 1
            n_resas += k
        stealable[n_groups, n_resas:n_workers] = 1
        n_groups += 1
        i = j
    return n_groups


def reserve(types: Sequence[tuple[int, float, float]], n_workers: int) -> Reservation:
    """Reserve workers for ``types``, a list of ``(type_id, mean_ns, ratio)``."""
    if n_workers < 1:
        raise ArgError(f"DARC needs at least one worker, got {n_workers}")
    if not types:
        raise ArgError("DARC needs at least one request type to reserve workers for")
    for tid, mean, ratio in types:
        if not mean > 0 or ratio < 0:
            raise ArgError(f"DARC: type {tid} has mean {mean!r} ns and ratio {ratio!r}; need mean > 0, ratio >= 0")
    if sum(mean * ratio for _, mean, ratio in types) <= 0:
        raise ArgError("DARC: no type has a positive share of requests")
    ids = [t for t, _, _ in types]
    mean_ns = np.array([m for _, m, _ in types], dtype=np.float64)
    n = len(types)
    group_of = np.empty(n, np.int64)
    res = np.empty((n, n_workers), np.int8)
    steal = np.empty((n, n_workers), np.int8)
    demand = np.zeros(n, np.float64)
    n_groups = reserve_kernel(mean_ns, np.array([r for _, _, r in types], dtype=np.float64),
                              np.ones(n, np.bool_), n_workers, GROUP_TOLERANCE, group_of, res, steal, demand)
    return reservation_from(ids, mean_ns, group_of, res, steal, demand, n_groups, n_workers)


def reservation_from(ids, mean_ns, group_of, reserved, stealable, demand, n_groups, n_workers) -> Reservation:
    """Build the inspectable :class:`Reservation` from :func:`reserve_kernel`'s arrays."""
    groups = []
    for g in range(n_groups):
        members = sorted((i for i in range(len(ids)) if group_of[i] == g), key=lambda i: (mean_ns[i], i))
        groups.append(Group(
            types=tuple(int(ids[i]) for i in members),
            mean_ns=tuple(float(mean_ns[i]) for i in members),
            demand=float(demand[g]),
            reserved=tuple(int(w) for w in np.flatnonzero(reserved[g])),
            stealable=tuple(int(w) for w in np.flatnonzero(stealable[g])),
        ))
    return Reservation(n_workers=n_workers, spillway=n_workers - 1, groups=tuple(groups))


def reserve_for(workload, n_workers: int) -> Reservation:
    """:func:`reserve` with a :class:`~tailgate.dispatch.workloads.Workload`'s declared types."""
    return reserve([(t.type_id, t.service_ns, t.ratio) for t in workload.types], n_workers)
