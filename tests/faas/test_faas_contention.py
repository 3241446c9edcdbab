"""Processor sharing over a whole run (tailgate.faas.contention)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from tailgate.faas import contention
from tailgate.faas.contention import ps_exact


def test_manual_example_runs():
    assert doctest.testmod(contention).failed == 0


@pytest.mark.parametrize("cores", [1, 2, 8])
def test_uncapped_heap_agrees_with_the_event_loop(cores):
    rng = np.random.default_rng(cores)
    start = np.sort(rng.uniform(0, 5, 500))
    work = rng.exponential(0.3, 500)
    work[::50] = 0.0  # zero work ends where it starts
    fast = ps_exact(start, work, np.full(500, -1), 0.0, cores)
    slow = ps_exact(start, work, np.zeros(500, dtype=np.int64), 1e9, cores)  # a cap that never binds
    assert np.allclose(fast, slow, atol=1e-9)
    assert np.all(fast >= start + work - 1e-9)  # never faster than alone
    assert np.all(fast[work == 0] == start[work == 0])
    # work is conserved: started together, the last ends no sooner than all the work spread over the
    # cores, and on one core (never idle while work waits) exactly then
    together = ps_exact(np.zeros(500), work, np.full(500, -1), 0.0, cores)
    assert together.max() >= work.sum() / cores - 1e-9
    if cores == 1:
        assert together.max() == pytest.approx(work.sum(), rel=1e-9)


def test_a_sandbox_cap_holds_its_jobs_back():
    # 4 cores, 2 jobs of 1 s in one sandbox capped at 1 core, 1 job in another: the pair shares one core
    fin = ps_exact(np.zeros(3), np.ones(3), np.array([0, 0, 1]), 1.0, 4)
    assert np.allclose(fin, [2.0, 2.0, 1.0])
