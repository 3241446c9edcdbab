"""Batchy's cost and delay model: batchiness, module delay, its sensitivities, flow estimates.

Manual
------
A module ``v`` costs ``T_v(b) = T0 + T1·b`` ns for a batch of ``b`` packets (the profiler's fit,
:mod:`tailgate.batchy.profiler`, or ``cost_ns``). From that and what one control period measured
(``x_v`` batches/ns and ``R_v`` packets/ns through the module, reference §6-§7):

- **batchiness** ``β = T1 / (T0 + T1)`` (1.0 when both are 0): the share of the cost that does
  not shrink with batching. A module is worth a buffer when ``β ≤ 0.5``
  (:data:`CONTROLLABLE_BOUND`): most of its cost is per batch.
- **module delay** ``t_v = 1/x_v + T0 + T1·q_v``: wait for the batch to fill, then process it.
- **delay sensitivity** ``∂t/∂q_v = 1/R_v + T1``: one more packet in the trigger costs one
  inter-arrival time plus its own per-packet work.
- **cost gradient** ``∂f/∂q_v = −x_v·T0/q_v``: the per-batch overhead ``R_v·T0/q_v`` that one
  more packet of trigger saves (the objective ``f`` is CPU time per ns of traffic).
- **queue fill time** ``q/R``: how long a trigger of ``q`` waits at rate ``R``.
- **flow estimate** (reference §6, logged beside the measured delay): task turnaround + path
  processing + the fill time of every buffered module on the path.

Everything is per nanosecond and in nanoseconds; a rate of 0 (no traffic) gives infinite
sensitivities, which the controllers read as "do not buffer here".
"""

from __future__ import annotations

import math

from tailgate.packet.pool import DEFAULT_BURST

#: a module is controlled (gets a fractional buffer) when its batchiness is at most this
CONTROLLABLE_BOUND = 0.5
#: the pull target above the arriving batch size (DEFAULT_BUFFER_PULL)
BUFFER_PULL = 4
#: a module whose arriving batches are this full (× max trigger) is not buffered (DEFAULT_PUSH_RATIO)
PUSH_RATIO = 0.7
#: a delay constraint is tight above (1 − TOLERANCE)·objective (DEFAULT_TOLERANCE)
TOLERANCE = 0.05
#: a flow this far over its objective is "violating" for feasdir (OVERDELAY_BOUND)
OVERDELAY_BOUND = 1.05
#: cycles per ns the reference configs assume (BYPASS_RATIO): their Bypass modules spin cycles
BYPASS_RATIO = 2.5


def batchiness(T0_ns: float, T1_ns: float) -> float:
    """β = T1/(T0+T1); 1.0 (nothing to gain) when the module costs nothing."""
    total = T0_ns + T1_ns
    return 1.0 if total <= 0 else T1_ns / total


def is_controllable(T0_ns: float, T1_ns: float, bound: float = CONTROLLABLE_BOUND) -> bool:
    """True when batching pays: β ≤ ``bound``."""
    return batchiness(T0_ns, T1_ns) <= bound


def batch_cost_ns(T0_ns: float, T1_ns: float, b: float) -> float:
    """T(b) = T0 + T1·b."""
    return T0_ns + T1_ns * b


def fill_time_ns(q: float, R_per_ns: float) -> float:
    """Time for ``q`` packets to arrive at ``R`` packets/ns (inf without traffic)."""
    if q <= 0:
        return 0.0
    return math.inf if R_per_ns <= 0 else q / R_per_ns


def module_delay_ns(x_per_ns: float, T0_ns: float, T1_ns: float, q: float) -> float:
    """t_v = 1/x_v + T0 + T1·q_v."""
    wait = math.inf if x_per_ns <= 0 else 1.0 / x_per_ns
    return wait + T0_ns + T1_ns * q


def delay_sensitivity(R_per_ns: float, T1_ns: float) -> float:
    """∂t_v/∂q_v = 1/R_v + T1 (ns per packet of trigger)."""
    return math.inf if R_per_ns <= 0 else 1.0 / R_per_ns + T1_ns


def cost_gradient(x_per_ns: float, T0_ns: float, q: float) -> float:
    """∂f/∂q_v = −x_v·T0/q_v (negative: a larger trigger saves per-batch overhead)."""
    return -x_per_ns * T0_ns / max(q, 1.0)


def pull_target(b_in: float, max_trigger: int = DEFAULT_BURST) -> int:
    """q_min = ⌊b_in⌋ + 4, capped at the largest trigger."""
    return int(min(max_trigger, math.floor(max(b_in, 0.0)) + BUFFER_PULL))


def flow_estimate_ns(turnaround_ns: float, path_costs_ns, fill_waits_ns) -> float:
    """Task turnaround + Σ path module costs + Σ fill waits of the buffered modules on the path."""
    return turnaround_ns + sum(path_costs_ns) + sum(fill_waits_ns)

