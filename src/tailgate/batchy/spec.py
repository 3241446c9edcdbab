"""What a Batchy script declares: its flows and, per module, its cost and whether it is controlled.

Manual
------
:class:`Flow` is one ``batchy.add_flow(...)``: the modules it crosses in order, its delay objective
(a percentile of the time from the source's schedule to the exit, ns), an optional rate objective
(pps or bps) and what its traffic looks like. :func:`make_flow` checks a declaration and names the
flow in every error:

- ``delay_slo_ns`` is required and > 0;
- ``percentile`` in (0, 100);
- ``rate_slo`` is pps, or ``{"packet": pps}`` / ``{"bit": bps}``, each > 0;
- ``path`` is a list of modules, or the seed's ``[{"task": t, "path": [...]}]``; each module was
  added to a task, and consecutive ones are connected.

:class:`ModuleSpec` is one ``task.add_module(...)``: the module, its task, its ``T0``/``T1`` (ns)
and where they came from (:mod:`tailgate.batchy.costs`), whether a buffer goes in front of it,
and that buffer once the graph is built (:mod:`tailgate.batchy.build`). The graph build, the
control loop and the output read both.

*Plumbing* (sources, sinks, queues, Measure, buffers, merges: :func:`is_plumbing`) never gets a
buffer and costs 0 in the model.

Example::

    f = make_flow("flow1", [split, nf1], 15_000, added={"split", "nf1"})
    f.delay_slo_ns, f.rate_slo_pps     # 15000.0, None
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from tailgate.core.errors import ArgError

#: modules that never get a buffer and cost 0 in the model (measurement plumbing); by class name,
#: so that the flow-id rewriter that Batchy puts behind its sources counts too
PLUMBING = ("Source", "PcapSource", "Sink", "Measure", "Timestamp", "Queue", "FractionalBuffer", "Drop", "Merge",
            "_FlowIdMap")


def is_plumbing(m) -> bool:
    return type(m).__name__ in PLUMBING


@dataclass
class ModuleSpec:
    module: Any
    task: Any                   # the BatchyTask it was added to (its name, modules, worker)
    T0_ns: float
    T1_ns: float
    controlled: bool
    cost_source: str            # "given", "cost_ns", "profile", "plumbing" or "none"
    buffer: Any = None          # FractionalBuffer (RTC) or Queue (WFQ) in front, once built


@dataclass
class Flow:
    name: str
    path: list
    delay_slo_ns: float
    rate_slo_pps: float | None
    rate_slo_bps: float | None
    percentile: float
    source_params: dict | None
    measure: Any = None
    row: int = 0          # the Measure row: 0 = every packet there, k+1 = flow id k


def make_flow(name: str, path, delay_slo_ns, *, rate_slo=None, percentile: float = 95.0,
              source_params: dict | None = None, added: Container[str]) -> Flow:
    """A checked :class:`Flow` (see the manual); ``added`` holds the names of the modules added
    to tasks."""
    delay_slo_ns = _delay_objective(name, delay_slo_ns)
    if not 0 < float(percentile) < 100:
        raise ArgError(f"flow {name}: percentile must be in (0, 100), got {percentile!r}")
    pps, bps = _rate_objective(name, rate_slo)
    mods = _path_modules(name, path, added)
    return Flow(name, mods, delay_slo_ns, None if pps is None else float(pps), None if bps is None else float(bps),
                float(percentile), source_params)


def _delay_objective(name: str, delay_slo_ns) -> float:
    if delay_slo_ns is None:
        raise ArgError(f"flow {name}: delay_slo_ns is required")
    try:
        delay_slo_ns = float(delay_slo_ns)
    except (TypeError, ValueError):
        raise ArgError(f"flow {name}: delay_slo_ns must be a number of ns, got {delay_slo_ns!r}") from None
    if not delay_slo_ns > 0:
        raise ArgError(f"flow {name}: delay objective must be > 0 ns, got {delay_slo_ns:g}")
    return delay_slo_ns


def _rate_objective(name: str, rate_slo) -> tuple[Any, Any]:
    """(pps, bps) as given, either None."""
    pps = bps = None
    if rate_slo is not None:
        if isinstance(rate_slo, dict):
            unknown = set(rate_slo) - {"packet", "bit"}
            if unknown:
                raise ArgError(f"flow {name}: rate_slo keys are 'packet' (pps) or 'bit' (bps), got {sorted(unknown)}")
            pps, bps = rate_slo.get("packet"), rate_slo.get("bit")
        else:
            pps = rate_slo
        for v, unit in ((pps, "pps"), (bps, "bps")):
            if v is not None and not (isinstance(v, (int, float)) and v > 0):
                raise ArgError(f"flow {name}: rate objective must be > 0 {unit}, got {v!r}")
    return pps, bps


def _path_modules(name: str, path, added: Container[str]) -> list:
    mods = []
    for seg in path if isinstance(path, (list, tuple)) else [path]:
        if isinstance(seg, dict):
            mods.extend(seg.get("path", []))
        else:
            mods.append(seg)
    if not mods:
        raise ArgError(f"flow {name}: the path is empty")
    for m in mods:
        if getattr(m, "name", None) not in added:
            raise ArgError(f"flow {name}: {m!r} on its path was not added to a task (task.add_module)")
    for a, b in zip(mods, mods[1:]):
        if not any(dst is b for _g, dst, _ig in a.connected_ogates()):
            raise ArgError(f"flow {name}: {a.name} -> {b.name} is not a connection in the graph, "
                           "so the path is not a path")
    return mods
