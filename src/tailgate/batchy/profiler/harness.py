"""Batchy's module profiler: each network function's batch cost ``T(b) = T_0 + T_1·b`` on this machine.

Manual
------
What it measures
    For one network-function class, the wall-clock nanoseconds one ``process(batch)`` call takes
    on a batch of ``b`` packets, for ``b = 1 .. max_batch``, and the straight line through them:
    ``T_0`` (ns per batch, the part batching amortises) and ``T_1`` (ns per packet). Batchy uses
    the pair to decide which modules are worth a fractional buffer (batchiness
    ``β = T_1/(T_0+T_1) ≤ 0.5``, :mod:`tailgate.batchy.model`) and to estimate delays.

How
    The class's *fixture* (:mod:`tailgate.batchy.profiler.fixtures`) gives a realistic instance
    and its frames. The module runs unwired, outside any pipeline (as
    :func:`tailgate.dataplane.drive.drive` does) on a wall clock. Every sample builds a fresh batch
    of ``b`` packets from the fixture's frames (untimed: modules such as DecTTL change packets in
    place, encapsulations move them), times ``module.process(batch)`` alone with
    ``time.perf_counter_ns``, then frees whatever the module emitted (untimed). Headers are not
    pre-parsed, so the cost includes parsing the batch, as for every module that receives a
    fragment after a split or a buffer (``parsed=True`` parses first, untimed: the cost behind a
    module that passed the batch on whole).

    Samples come in *rounds*: one sample of every batch size, in a fresh random order, so that a
    slow patch of the machine hits all sizes alike. A few rounds run untimed first (numba
    kernels loaded, caches warm, a NAT's mappings made); then rounds go on until the module's
    time budget is spent (at least ``min_reps``, at most ``max_reps``), the garbage collector off.
    Per batch size the statistic is the **median** over the rounds. The same batch is first
    handed to an empty pass-through module (it only emits the batch); the median of those calls
    — timer reads, a method call and an emit — is subtracted, so the fit is the module's own cost
    (the original profiler's fit included its Timestamp/BatchMeasure modules; §17). Then a least
    squares fit of ``T(b)`` with ``T_0, T_1 ≥ 0`` (the best line on the boundary when the free
    fit has a negative coefficient, :func:`fit_linear`), and its R² over the points.

    A call costs microseconds, so a thousand samples per point take well under a second: the
    default profile of every fixture takes seconds per module (at most ``budget_s``; most reach
    ``max_reps`` first), not the original's hour. Other load on the machine shows up as noise
    (and a low R²); profile a quiet machine, and note that virtual CPUs distort results (§18). R²
    is low where the line is a poor model, not only where the machine is noisy: a split that
    sends a batch to ``g`` gates pays per emitted fragment, so its cost grows with
    ``min(b, gates)`` and then flattens; a module with a negligible ``T_1`` scatters around a
    flat line.

    What to expect: in tailgate a call's fixed cost (Python dispatch, numpy calls, the header
    parse) dwarfs the per-packet work of a numba kernel, so ``T_0 ≫ T_1`` and nearly every module
    comes out controllable (β ≪ 0.5), unlike BESS, where an ACL's per-packet walk dominated
    (reference §4).

How runs use it
    ``tailgate profile [MODULE ...]`` (or :func:`profile`) measures and merges the entries into
    the profile file (:mod:`tailgate.batchy.profiler.store`). A Batchy run on the wall clock takes
    each module's cost from it (:mod:`tailgate.batchy.costs`); under the virtual clock the model
    costs are used as given, and nothing is measured.

Example::

    from tailgate.batchy.profiler.harness import profile, profile_module
    profile_module("DecTTL", max_batch=16, reps=50)["T_0"]   # ns per batch, this machine
    new = profile(["IPv4Lookup", "DecTTL"], max_batch=32)     # measured and merged into the file
"""

from __future__ import annotations

import gc
import math
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from numba import njit

from tailgate.batchy.profiler.fixtures import (
    Fixture,
    fixture,
    resolve_module,
    resolve_modules,
)
from tailgate.batchy.profiler.store import load_profile, profile_path, save_profile
from tailgate.core.clock import WallClock
from tailgate.core.errors import ArgError
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.module import Module
from tailgate.packet.pool import Batch, PacketPool

MAX_BATCH_LIMIT = 1024
DEFAULT_BUDGET_S = 2.5


class _PassThrough(Module):
    """The empty module whose call is the measurement overhead: it only emits the batch."""

    def process(self, batch) -> None:
        self.emit(batch)


@njit(cache=True)
def _fill(data, offset, length, wire_len, idx, frames, lens, start):
    """Copy template frames ``start, start+1, ...`` (round-robin) into the slots ``idx``."""
    n_t = frames.shape[0]
    for k in range(idx.shape[0]):
        s = idx[k]
        t = (start + k) % n_t
        o = offset[s]
        n = lens[t]
        for j in range(n):
            data[s, o + j] = frames[t, j]
        length[s] = n
        wire_len[s] = n


def _check_max_batch(max_batch) -> int:
    if isinstance(max_batch, bool) or not isinstance(max_batch, (int, np.integer)) or not 2 <= max_batch <= MAX_BATCH_LIMIT:
        raise ArgError(f"max_batch must be an integer in 2..{MAX_BATCH_LIMIT}, got {max_batch!r}")
    return int(max_batch)


def fit_linear(points: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Least squares ``y = T_0 + T_1·b`` with ``T_0, T_1 ≥ 0``: ``(T_0, T_1, R²)``.

    When the free fit has a negative coefficient the best line on that boundary is taken (a flat
    line at the mean, or a line through the origin). R² is that line's, over the points, floored
    at 0 (a module that costs nothing measurable scatters around 0 and explains nothing)."""
    b = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    cands = []
    A = np.stack([np.ones_like(b), b], axis=1)
    (t0, t1), *_ = np.linalg.lstsq(A, y, rcond=None)
    if t0 >= 0 and t1 >= 0:
        cands.append((t0, t1))
    else:
        cands.append((max(float(y.mean()), 0.0), 0.0))
        cands.append((0.0, max(float(b @ y) / float(b @ b), 0.0)))
    best = min(cands, key=lambda c: float(((y - c[0] - c[1] * b) ** 2).sum()))
    ss_res = float(((y - best[0] - best[1] * b) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = (1.0 if ss_res <= 1e-12 else 0.0) if ss_tot <= 1e-12 else 1.0 - ss_res / ss_tot
    return float(best[0]), float(best[1]), max(r2, 0.0)


class _Bench:
    """A fixture's module and the empty pass-through, unwired on one pool and a wall clock, and
    the rounds that time them (see the manual)."""

    def __init__(self, fx: Fixture, max_batch: int, seed: int, parsed: bool) -> None:
        self.module = fx.module
        with Pipeline():
            self.base = _PassThrough(name="overhead")
        self.pool = PacketPool(n_slots=max(4096, 4 * max_batch))
        clock = WallClock()
        for mod in (self.module, self.base):
            mod.open_outputs(self.pool, igate=fx.igate, clock=clock)
        self.frames = np.ascontiguousarray(fx.frames)
        self.lens = np.ascontiguousarray(fx.lengths, dtype=np.int32)
        self.sizes = np.arange(1, max_batch + 1)
        self.parsed = parsed
        self.rng = np.random.default_rng(seed + 1)
        self.cursor = 0

    def one_round(self, t_mod: list[list[int]] | None, t_base: list[int] | None) -> None:
        """One call of each batch size in a fresh random order; the times go to ``t_mod`` (per
        size) and ``t_base`` when given. Only the two ``process`` calls are timed: everything
        else sits outside the clock readings (locals, so a reading brackets the call alone)."""
        m, base, pool, parsed = self.module, self.base, self.pool, self.parsed
        data, offset, length, wire_len = pool.data, pool.offset, pool.length, pool.wire_len
        frames, lens = self.frames, self.lens
        n_t = len(lens)
        clock_ns = time.perf_counter_ns
        cursor = self.cursor
        for b in self.rng.permutation(self.sizes).tolist():
            idx = pool.alloc_idx(b)
            _fill(data, offset, length, wire_len, idx, frames, lens, cursor)
            cursor = (cursor + b) % n_t
            batch = Batch(pool, idx)
            if parsed:
                batch.headers
            s0 = clock_ns()
            base.process(batch)
            s1 = clock_ns()
            base.drain_outputs()
            s2 = clock_ns()
            m.process(batch)
            s3 = clock_ns()
            for _, out in m.drain_outputs():
                out.free()
            if t_mod is not None:
                t_mod[b - 1].append(s3 - s2)
                t_base.append(s1 - s0)
        self.cursor = cursor

    def measure(self, reps: int | None, budget_s: float, min_reps: int, max_reps: int, warmup_rounds: int,
                progress: Callable[[float], None] | None) -> tuple[list[list[int]], list[int]]:
        """Warm-up rounds, then timed rounds (``reps`` of them, or until ``budget_s`` is spent
        within ``min_reps..max_reps``), the garbage collector off: (per-size times, base times)."""
        target = reps if reps is not None else max_reps
        gc_was = gc.isenabled()
        gc.disable()
        try:
            for _ in range(warmup_rounds):
                self.one_round(None, None)
            t_mod: list[list[int]] = [[] for _ in self.sizes]
            t_base: list[int] = []
            start = time.perf_counter()
            done = 0
            last_report = 0.0
            while done < target:
                self.one_round(t_mod, t_base)
                done += 1
                if reps is None:
                    elapsed = time.perf_counter() - start
                    if done >= min_reps and elapsed >= budget_s:
                        break
                    frac = max(elapsed / budget_s, done / target) if budget_s > 0 else done / target
                else:
                    frac = done / target
                if progress is not None and frac - last_report >= 0.02:
                    last_report = frac
                    progress(min(frac, 1.0))
        finally:
            if gc_was:
                gc.enable()
            if self.pool.n_used:  # a module that keeps packets (none of the fixtures): give them back
                for mod in (self.module, self.base):
                    for _, out in mod.drain_outputs():
                        out.free()
        return t_mod, t_base


def profile_module(
    class_name: str,
    max_batch: int = 32,
    reps: int | None = None,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    min_reps: int = 15,
    max_reps: int = 1000,
    warmup_rounds: int = 5,
    seed: int = 0,
    args: dict | None = None,
    parsed: bool = False,
    progress: Callable[[float], None] | None = None,
) -> dict:
    """Profile one class (see the module manual); returns its profile entry.

    ``reps`` fixes the number of timed rounds (one sample of every batch size each); without it
    rounds go on until ``budget_s`` seconds of measuring are spent, at least ``min_reps`` and at
    most ``max_reps`` of them. ``args`` override the fixture's module arguments. ``parsed=True``
    parses each batch's headers before timing (untimed), for the cost of a module that receives a
    batch an earlier module parsed; the default times the parse too. ``progress`` is called with
    the fraction of this module done (0..1).
    """
    max_batch = _check_max_batch(max_batch)
    if reps is not None and (isinstance(reps, bool) or not isinstance(reps, int) or reps < 1):
        raise ArgError(f"reps must be a positive integer, got {reps!r}")
    fx = fixture(resolve_module(class_name), seed=seed, **(args or {}))
    bench = _Bench(fx, max_batch, seed, parsed)
    t_mod, t_base = bench.measure(reps, budget_s, min_reps, max_reps, warmup_rounds, progress)
    fx.module.finish()
    overhead = float(np.median(t_base))
    points = [(int(b), float(np.median(t_mod[b - 1])) - overhead) for b in bench.sizes.tolist()]
    t0, t1, r2 = fit_linear(points)
    if progress is not None:
        progress(1.0)
    return {
        "T_0": round(t0, 2),
        "T_1": round(t1, 3),
        "r2": round(r2, 4),
        "stat": "median",
        "points": [[b, round(y, 1)] for b, y in points],
        "batches": [len(t) for t in t_mod],
        "overhead_ns": round(overhead, 1),
        "max_batch": max_batch,
        "fixture": fx.description,
        "headers": "parsed" if parsed else "fresh",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
    }


def profile(
    modules: list[str] | None = None,
    max_batch: int = 32,
    out: str | os.PathLike | None = None,
    progress: Callable[[int, int, str, float], None] | None = None,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    reps: int | None = None,
) -> dict[str, dict]:
    """Profile ``modules`` (class names; default every fixture), merge the entries into the
    profile file ``out`` (default :func:`~tailgate.batchy.profiler.store.profile_path`), write it,
    and return the new entries.

    ``progress(i, n, name, fraction)`` is called as module ``i`` of ``n`` goes. Unknown names are
    an ArgError listing the known ones; so is an existing profile file that cannot be read (it is
    left as it is), checked before anything is measured.
    """
    max_batch = _check_max_batch(max_batch)
    if not (isinstance(budget_s, (int, float)) and math.isfinite(budget_s) and budget_s > 0):
        raise ArgError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    names = resolve_modules(modules)
    path = Path(out).expanduser() if out is not None else profile_path()
    load_profile(path)  # a damaged file stops us before minutes of measuring, not after
    new: dict[str, dict] = {}
    for i, name in enumerate(names):
        if progress is not None:
            progress(i, len(names), name, 0.0)
        cb = (lambda f, i=i, name=name: progress(i, len(names), name, f)) if progress is not None else None
        new[name] = profile_module(name, max_batch, reps, budget_s=budget_s, progress=cb)
    save_profile(new, path)
    return new
