"""Processor sharing over a whole run: when each CPU job ends, given when it started and its work.

Manual
------
::

    finish_s = ps_exact(start_s, work_s, box, box_cores=1.0, cores=2)

Jobs ``i`` need ``work_s[i]`` seconds of one core from ``start_s[i]`` on. While ``n`` jobs run,
each progresses at ``min(1, cores / n)`` (``cores`` 0: no machine limit), and a job of sandbox
``box[i]`` (-1: none) at most at ``box_cores / k`` while ``k`` jobs of its sandbox run
(``box_cores`` one cap for all, or one per job, the same for the jobs of a sandbox; 0: no cap; the cap does not hand its unused share to the others, a simplification
of the kernel's fair scheduler). Unlike a slowdown fixed when a job starts, a job here is slowed by
every job that overlaps it, also those that start after it: a burst of equal jobs all end
together. The simulator (:mod:`tailgate.faas.sim`) uses it for its fixed point: simulate, run the
jobs it started through this, simulate again with each job's slowdown, and so on.

One compiled pass over the start and finish events (numba): O(n log n) without a cap (all running
jobs progress at one rate), O(events × running jobs) with one.

>>> import numpy as np
>>> ps_exact(np.array([0.0, 0.0, 0.5]), np.array([1.0, 1.0, 0.25]), np.array([-1, -1, -1]), 0.0, 1).round(3)
array([2.25, 2.25, 1.25])
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _ps_exact(start: np.ndarray, work: np.ndarray, box: np.ndarray, box_cores: np.ndarray, cores: float,
              n_boxes: int) -> np.ndarray:
    n = len(start)
    order = np.argsort(start)
    finish = np.empty(n)
    rem = work.copy()
    rate = np.zeros(n)
    active = np.empty(n, np.int64)
    per_box = np.zeros(max(n_boxes, 1), np.int64)
    na = 0
    nxt = 0
    t = 0.0
    while nxt < n or na > 0:
        if na == 0 and start[order[nxt]] > t:
            t = start[order[nxt]]
        while nxt < n and start[order[nxt]] <= t:
            j = order[nxt]
            nxt += 1
            if rem[j] <= 0.0:
                finish[j] = start[j]
                continue
            active[na] = j
            na += 1
            if box[j] >= 0:
                per_box[box[j]] += 1
        if na == 0:
            continue
        base = 1.0 if cores <= 0 else min(1.0, cores / na)
        dt = np.inf
        for i in range(na):
            j = active[i]
            r = base
            if box_cores[j] > 0.0 and box[j] >= 0:
                r = min(r, box_cores[j] / per_box[box[j]])
            rate[j] = r
            dt = min(dt, rem[j] / r)
        if nxt < n:
            dt = min(dt, start[order[nxt]] - t)
        t += dt
        i = 0
        while i < na:
            j = active[i]
            rem[j] -= rate[j] * dt
            if rem[j] <= 1e-12 * max(work[j], 1.0):
                finish[j] = t
                if box[j] >= 0:
                    per_box[box[j]] -= 1
                na -= 1
                active[i] = active[na]
            else:
                i += 1
    return finish


@njit(cache=True)
def _heap_push(key: np.ndarray, val: np.ndarray, size: int, k: float, v: int) -> int:
    i = size
    key[i], val[i] = k, v
    while i > 0:
        p = (i - 1) // 2
        if key[p] <= key[i]:
            break
        key[p], key[i] = key[i], key[p]
        val[p], val[i] = val[i], val[p]
        i = p
    return size + 1


@njit(cache=True)
def _heap_pop(key: np.ndarray, val: np.ndarray, size: int) -> int:
    size -= 1
    key[0], val[0] = key[size], val[size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and key[c + 1] < key[c]:
            c += 1
        if key[i] <= key[c]:
            break
        key[c], key[i] = key[i], key[c]
        val[c], val[i] = val[i], val[c]
        i = c
    return size


@njit(cache=True)
def _ps_uncapped(start: np.ndarray, work: np.ndarray, cores: float) -> np.ndarray:
    """Every running job progresses at the same rate: track the work each has received since the
    start (one number, ``served``) and end jobs in order of served-at-start + work (a heap)."""
    n = len(start)
    order = np.argsort(start)
    finish = np.empty(n)
    key = np.empty(n)
    val = np.empty(n, np.int64)
    size = 0
    served = 0.0
    t = 0.0
    nxt = 0
    while nxt < n or size > 0:
        if size == 0:
            t = max(t, start[order[nxt]])
        while nxt < n and start[order[nxt]] <= t:
            j = order[nxt]
            nxt += 1
            if work[j] <= 0.0:
                finish[j] = start[j]
            else:
                size = _heap_push(key, val, size, served + work[j], j)
        if size == 0:
            continue
        r = 1.0 if cores <= 0 else min(1.0, cores / size)
        dt = (key[0] - served) / r
        if nxt < n and start[order[nxt]] - t < dt:
            dt = start[order[nxt]] - t
            served += r * dt
            t += dt
            continue
        t += dt
        served = key[0]
        while size > 0 and key[0] <= served + 1e-12 * max(served, 1.0):
            finish[val[0]] = t
            size = _heap_pop(key, val, size)
    return finish


def ps_exact(start_s: np.ndarray, work_s: np.ndarray, box: np.ndarray, box_cores: float | np.ndarray,
             cores: float) -> np.ndarray:
    """Each job's finish time (s) under processor sharing (module manual)."""
    start = np.ascontiguousarray(start_s, dtype=np.float64)
    work = np.ascontiguousarray(work_s, dtype=np.float64)
    boxes = np.ascontiguousarray(box, dtype=np.int64)
    caps = np.ascontiguousarray(np.broadcast_to(np.asarray(box_cores, dtype=np.float64), start.shape))
    if len(start) == 0:
        return np.empty(0)
    if not (caps > 0.0).any():  # no cap: equal rates, a heap of finishing points (O(n log n))
        return _ps_uncapped(start, work, float(cores))
    return _ps_exact(start, work, boxes, caps, float(cores), int(boxes.max()) + 1 if len(boxes) else 1)
