"""CPU primitives for the live path: a memory fence and the cycle counter in compiled code, pinning.

Manual
------
* :func:`fence` (numba intrinsic): a full memory barrier — a locked instruction on x86 — that the
  compiler does not move loads or stores across either, so shared-memory words are read afresh
  after it. The compiled dispatcher and workers put one between writing a ring entry and
  publishing its tail, and between reading a tail and reading the entries below it.
* :func:`rdtsc` (numba intrinsic): the CPU's cycle counter (0 where there is none), ~10 ns a
  read: the compiled loops' clock. :func:`tsc` reads it from Python; :func:`ns_per_tick`
  calibrates it against ``time.perf_counter_ns`` (0.0 where there is no counter).
* :func:`pin` puts this process on some CPUs (silently nothing where that is not possible);
  :func:`split_cpus` gives the dispatcher the first of this process's CPUs and the workers the rest.

Example::

    scale = ns_per_tick()                   # ns per cycle-counter tick, e.g. 0.36
    t0 = tsc(); ...; elapsed_ns = (tsc() - t0) * scale
"""

from __future__ import annotations

import os
import time

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def fence(typingctx):
    """A full memory barrier (see the module manual)."""
    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def rdtsc(typingctx):
    """The CPU's cycle counter (0 where there is none)."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@njit(cache=True)
def tsc():
    return rdtsc()


def ns_per_tick(sample_s: float = 0.01) -> float:
    """Nanoseconds per cycle-counter tick, measured over ``sample_s``; 0.0 without a counter."""
    c0, t0 = tsc(), time.perf_counter_ns()
    time.sleep(sample_s)
    c1, t1 = tsc(), time.perf_counter_ns()
    return (t1 - t0) / (c1 - c0) if c1 > c0 else 0.0


def pin(cpus) -> None:
    """Run this process on ``cpus`` only (nothing happens where that is impossible)."""
    try:
        os.sched_setaffinity(0, set(cpus))
    except (AttributeError, OSError, ValueError):
        pass          # not Linux, or those CPUs are not ours: run unpinned


def split_cpus() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(dispatcher's CPUs, workers' CPUs)``: the first of this process's CPUs and the others;
    two empty tuples with fewer than two CPUs (or no affinity API)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return (), ()
    return tuple(cpus[:1]), tuple(cpus[1:])
