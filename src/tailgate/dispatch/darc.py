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


def cores_for(demand: float) -> int:
    """The artifact's rounding: at least one core; round up only above half a core."""
    whole = math.floor(demand)
    if whole == 0:
        return 1
    return whole + 1 if demand - whole > 0.5 else whole


def reserve(types: Sequence[tuple[int, float, float]], n_workers: int) -> Reservation:
    """Reserve workers for ``types``, a list of ``(type_id, mean_ns, ratio)``."""
    if n_workers < 1:
        raise ArgError(f"DARC needs at least one worker, got {n_workers}")
    if not types:
        raise ArgError("DARC needs at least one request type to reserve workers for")
    for tid, mean, ratio in types:
        if not mean > 0 or ratio < 0:
            raise ArgError(f"DARC: type {tid} has mean {mean!r} ns and ratio {ratio!r}; need mean > 0, ratio >= 0")
    s_ns = sum(mean * ratio for _, mean, ratio in types)
    if s_ns <= 0:
        raise ArgError("DARC: no type has a positive share of requests")
    ordered = sorted(types, key=lambda t: t[1])
    spillway = n_workers - 1
    groups: list[Group] = []
    n_resas = 0
    i = 0
    while i < len(ordered):
        first_mean = ordered[i][1]
        j = i + 1
        while j < len(ordered) and ordered[j][1] - first_mean < GROUP_TOLERANCE * first_mean:
            j += 1
        members = ordered[i:j]
        demand = sum(m * r for _, m, r in members) / s_ns * n_workers
        k = cores_for(demand)
        if k > n_workers - n_resas:
            reserved = tuple(range(n_resas, n_workers))
            if spillway not in reserved:
                reserved += (spillway,)
            n_resas = n_workers
        else:
            reserved = tuple(range(n_resas, n_resas + k))
            n_resas += k
        groups.append(
            Group(
                types=tuple(t for t, _, _ in members),
                mean_ns=tuple(m for _, m, _ in members),
                demand=demand,
                reserved=reserved,
                stealable=tuple(range(n_resas, n_workers)),
            )
        )
        i = j
    return Reservation(n_workers=n_workers, spillway=spillway, groups=tuple(groups))


def reserve_for(workload, n_workers: int) -> Reservation:
    """:func:`reserve` with a :class:`~tailgate.dispatch.workloads.Workload`'s declared types."""
    return reserve([(t.type_id, t.service_ns, t.ratio) for t in workload.types], n_workers)
