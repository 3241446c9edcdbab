"""What a Batchy controller sees each control round, and what it returns.

Manual
------
The control loop (:mod:`tailgate.batchy.loop`) measures one control period and hands a controller a
:class:`ControlInput`: one :class:`ModuleState` per *controlled* module (a module with a
fractional buffer in front of it) and one :class:`FlowState` per flow. Every rate is per
nanosecond and every time in nanoseconds, as in the reference sheet's formulas (``x = x_v`` and
``R = R_v`` "in per-ns units"). The controller returns the new trigger of every controlled module
(0 = not buffered, otherwise 1..``max_trigger``) and a short reason per change; the run loop
applies them to the buffers and logs them.

Aggregation (reference §7): ``T0_ns``/``T1_ns`` of a controlled module already include its
uncontrolled descendants up to the next controlled module (``T0 = Σ T_0(m)``,
``T1 = Σ (r_m/r_v)·T_1(m)``), so a controller never walks the graph itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tailgate.packet.pool import DEFAULT_BURST


@dataclass
class ModuleState:
    """One controlled module, measured over the last control period."""

    name: str
    T0_ns: float                 # aggregated per-batch cost (ns), see the manual
    T1_ns: float                 # aggregated per-packet cost (ns)
    q: int                       # current trigger: 0 = unbuffered, else 1..max_trigger
    x_per_ns: float              # batches/ns the module processed (x_v)
    R_per_ns: float              # packets/ns the module processed (R_v)
    b_v: float                   # mean batch size the module processed
    b_in: float                  # mean batch size arriving at its buffer
    r_v: float = 1.0             # module packets / task packets
    task: str = ""               # the task the module runs in
    merge_point: bool = False    # more than one upstream gate feeds it
    # controlled modules downstream of this one (same task), nearest first: used by the
    # parent/child fill-rate rows (q_u/R_u <= q_v/R_v)
    children: list[str] = field(default_factory=list)


@dataclass
class FlowState:
    """One flow, measured over the last control period."""

    name: str
    path: list[str]              # the controlled modules on the flow's path, in order
    delay_slo_ns: float          # objective D_f on the delay percentile
    delay_ns: float              # measured delay percentile (nan: no packet this period)
    rate_pps: float              # measured rate
    estimate_ns: float = float("nan")   # the model's delay estimate (logged, see model.py)
    rate_slo_pps: float | None = None


@dataclass
class ControlInput:
    round: int
    period_ns: float
    modules: dict[str, ModuleState]
    flows: list[FlowState]
    max_trigger: int = DEFAULT_BURST    # the largest trigger a controller sets: the data plane's burst
    # per task: turnaround t_0 (ns between task runs that carried packets) and its ingress batch
    task_t0_ns: dict[str, float] = field(default_factory=dict)
    # per task: the mean batch taken from its ingress queue (b_0); near max_trigger the queue is
    # backlogged and the task saturated, so every flow's delay scales with its turnaround
    task_b0: dict[str, float] = field(default_factory=dict)
    # what a buffer that holds packets back costs per arriving batch (ns): 0 on the virtual
    # clock (Batchy's model counts buffers as free), measured on the wall clock
    buffer_cost_ns: float = 0.0


@dataclass
class ControlDecision:
    triggers: dict[str, int]                 # new trigger per controlled module (all of them)
    reasons: dict[str, str] = field(default_factory=dict)   # module -> why it changed
    kkt: bool = False                        # projgrad: a KKT point, nothing changed
    infeasible: dict[str, float] = field(default_factory=dict)  # flow -> best delay reachable (ns)
