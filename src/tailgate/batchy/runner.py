"""Batchy in tailgate: workers, tasks, flows, sources, sinks, controllers and the control loop.

Manual
------
A Batchy script is a ``tailgate run`` script that uses the ``batchy`` global (the seed's API,
adapted)::

    rounds = get_arg("rounds", 100, int)
    slo1 = get_arg("delay_slo1", 15_000, float)
    w = batchy.add_worker("w0")
    t = w.add_task("task0", type="RTC")                  # or "WFQ" (the NFVnice-like baseline)
    split = t.add_module(RandomSplit(gates=2))           # the first module is the task's ingress
    nf1 = t.add_module(Bypass(t0_ns=400, t1_ns=40))
    nf2 = t.add_module(Bypass(t0_ns=400, t1_ns=40))
    split[0] >> nf1
    split[1] >> nf2
    batchy.add_flow("flow1", [split, nf1], delay_slo_ns=slo1)
    batchy.add_flow("flow2", [split, nf2], delay_slo_ns=100_000)
    batchy.add_source()
    batchy.add_sink()
    batchy.set_controller(get_arg("controller", "projgrad", str))
    batchy.run(rounds, control_period_s=0.1)
    batchy.plot("stats.png"); batchy.dump("stats.csv")    # relative paths: the results directory

**Tasks.** Each task gets an ingress :class:`~tailgate.nf.basic.Queue` (64 packets,
backpressure) in front of its first module, as Batchy's tasks do. In an ``RTC`` task every
*controlled* module gets a :class:`~tailgate.nf.fbuffer.FractionalBuffer` spliced in front of it
when the first ``run`` builds the graph, whose flush timeout is the tightest delay objective of
the flows through the module (1 ms if none passes): no packet waits in a buffer for longer than
its flow may take in all. A ``WFQ`` task instead puts a Queue (64, no
backpressure) in front of each controlled module, which then runs as its own task on a worker
that schedules weighted-fair by time (only the ``null`` controller drives WFQ tasks).

**Costs.** A module's ``T0``/``T1`` (ns): a Bypass costs its own ``t0_ns``/``t1_ns`` on either
clock. Under the virtual clock, ``add_module(..., T_0=, T_1=)`` (which the clock then charges),
else the module's ``cost_ns``. Under the wall clock, what this machine's profile
(``tailgate profile``, :mod:`tailgate.batchy.profiler`) measured; a class missing from it is
profiled on the spot (about a second) and added to it; only when that cannot be done, the given
or nominal cost with a warning, and 0/0 (uncontrolled) with a warning naming the module.
A module is controlled when its batchiness β = T1/(T0+T1) ≤ 0.5, unless ``controlled=`` says.

**Flows.** ``add_flow(name, path, delay_slo_ns, rate_slo=None, percentile=95, source_params=None)``:
``path`` is the modules the flow crosses, in order (or the seed's form
``[{"task": t, "path": [...]}]``); consecutive modules must be connected. ``rate_slo`` is pps, or
``{"packet": pps}`` / ``{"bit": bps}``. ``add_sink()`` puts a Measure and a Sink after each
flow's last module (on every one of its output gates that is still open) and a Sink on every
other open gate; the flow's delay is the chosen percentile of (time it left − time its source
scheduled it), so the ingress queue's wait counts.

**Sources.** ``add_source()`` gives each flow with ``source_params`` (``templates`` =
FlowTemplate list, ``rate_pps``, ``size_bytes``...) its own Source, rate-limited to its rate
objective when it has one; a task whose flows have no source parameters gets one unlimited Source
of random flows. ``add_pcap_source(path, task, loop=True)`` replays a capture instead.

**The loop.** ``run(rounds, control_period_s, warmup=True)``: warm up (``warmup_s``, counters
then reset), then each round: reset counters, run one control period of the run's clock, read
every buffer, module and flow, call the controller, apply its triggers, log the round at INFO
(``*** CONTROL ROUND: n..., cumulative flow rate: X Mpps`` and the controller's lines) and keep a
row. ``dump(csv)`` writes one row per round (columns as the reference sheet §14, comma
separated); ``plot(png)`` draws three panels (triggers, flow delay vs estimate vs objective,
rates). Under the virtual clock the controller's dead time is recorded as 0, so the same script
and seed give the same CSV byte for byte.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailgate.batchy import model, profiler
from tailgate.batchy.controllers import resolve_controller
from tailgate.batchy.model import is_controllable
from tailgate.batchy.state import ControlInput, FlowState, ModuleState
from tailgate.core.args import Arg, any_value
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.measure.hist import percentile_of_rows
from tailgate.nf.basic import PcapSource, Queue, Sink, Source
from tailgate.nf.fbuffer import FractionalBuffer, hold_cost_ns
from tailgate.nf.measure import Measure
from tailgate.packet.synth import FlowTemplate

log = logging.getLogger("tailgate.batchy")

INGRESS_QUEUE_SIZE = 64
DEFAULT_CONTROL_PERIOD_S = 0.1
DEFAULT_WARMUP_S = 0.5
MAX_TRIGGER = 32
#: flush timeout of a buffer that no flow passes through (one with flows gets their tightest objective)
DEFAULT_FLUSH_TIMEOUT_NS = 1_000_000
#: a run has converged from the round after which no trigger moves more than this (10 % of 32)
CONVERGED_TOLERANCE = 3
#: the total rate counts as settled within this fraction of its second-half mean
RATE_SETTLED_TOLERANCE = 0.05
#: modules that never get a buffer and cost 0 in the model (measurement plumbing)
_PLUMBING = ("Source", "PcapSource", "Sink", "Measure", "Timestamp", "Queue", "FractionalBuffer", "Drop", "Merge",
             "_FlowIdMap")


def _is_plumbing(m) -> bool:
    return type(m).__name__ in _PLUMBING


@dataclass
class _ModInfo:
    module: Any
    task: "BatchyTask"
    T0_ns: float
    T1_ns: float
    controlled: bool
    cost_source: str
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


class BatchyTask:
    """A task: an ingress queue and the modules behind it (see the manual)."""

    def __init__(self, batchy: "Batchy", worker: "BatchyWorker", name: str, type_: str, queue_size: int) -> None:
        self.batchy = batchy
        self.worker = worker
        self.name = name
        self.type = type_

        self.queue = Queue(name=f"{name}_ingress", size=queue_size, backpressure=True)
        self.modules: list[Any] = []

    def __repr__(self) -> str:
        return f"BatchyTask({self.name}, {self.type})"

    def add_module(self, module, type: str | None = None, controlled: bool | None = None,  # noqa: A002
                   T_0: float | None = None, T_1: float | None = None):
        """Put ``module`` in this task; the first one added is the ingress. Returns the module."""
        b = self.batchy
        b._check_not_built("add_module")

        if not isinstance(module, Module):
            raise ArgError(f"task {self.name}: add_module wants a module, got {module!r}")
        if module.name in b._mods:
            raise ArgError(f"task {self.name}: module {module.name} was already added")
        if type not in (None, "ingress", "internal", "egress", "native", "bess"):
            raise ArgError(f"module {module.name}: type must be ingress, internal, egress or native, got {type!r}")
        T0, T1, src = b._costs(module, T_0, T_1)
        if type in ("native", "bess"):
            ctrl = False
        elif controlled is None:
            ctrl = (T0 > 0 or T1 > 0) and is_controllable(T0, T1)
        else:
            ctrl = bool(controlled)
        if not self.modules:
            self.queue >> module
        self.modules.append(module)
        b._mods[module.name] = _ModInfo(module, self, T0, T1, ctrl, src)
        return module


class BatchyWorker:
    def __init__(self, batchy: "Batchy", name: str) -> None:
        self.batchy = batchy
        self.name = name
        self.worker = batchy._script.add_worker(name)
        self.tasks: list[BatchyTask] = []

    def __repr__(self) -> str:
        return f"BatchyWorker({self.name})"

    def add_task(self, name: str | None = None, type: str = "RTC", queue_size: int = INGRESS_QUEUE_SIZE):  # noqa: A002
        b = self.batchy
        b._check_not_built("add_task")
        kind = str(type).upper()
        if kind not in ("RTC", "WFQ"):
            raise ArgError(f"add_task: type must be 'RTC' or 'WFQ', got {type!r}")
        if b._tasks and any(t.type != kind for t in b._tasks):
            raise ArgError(f"add_task: RTC and WFQ tasks cannot be mixed (task {name or len(b._tasks)} is {kind})")
        name = name or f"task{len(b._tasks)}"
        if any(t.name == name for t in b._tasks):
            raise ArgError(f"add_task: a task named {name!r} already exists")
        t = BatchyTask(b, self, name, kind, queue_size)
        self.tasks.append(t)
        b._tasks.append(t)
        if kind == "WFQ":
            self.worker.policy, self.worker.resource = "wfq", "time"
        return t

    # the seed's spelling
    def set_task_controller(self, controller) -> None:
        self.batchy.set_controller(controller)


class Batchy:
    """The ``batchy`` global of a script (see the manual)."""

    def __init__(self, script) -> None:
        self._script = script
        self._workers: list[BatchyWorker] = []
        self._tasks: list[BatchyTask] = []
        self._mods: dict[str, _ModInfo] = {}
        self.flows: list[Flow] = []
        self.controller = None
        self.controller_name = "null"
        self._built = False
        self._sources: list[Any] = []
        self._sinks_added = False
        self.rows: list[dict] = []
        self.round = 0
        self.buffer_cost_ns: float | None = None    # wall clock: measured at the first run (fbuffer.hold_cost_ns)
        self.infeasible: dict[str, float] = {}          # flow -> best delay reachable (ns), now
        self.infeasible_rounds: dict[str, list[int]] = {}  # flow -> rounds it was declared infeasible
        self._profile = None
        self._profile_failed: set[str] = set()

    # -- building -----------------------------------------------------------------------------
    def _check_not_built(self, what: str) -> None:
        if self._built:
            raise ArgError(f"{what}() must come before the first run()")

    def add_worker(self, name: str | None = None) -> BatchyWorker:
        self._check_not_built("add_worker")
        w = BatchyWorker(self, name or f"w{len(self._workers)}")
        self._workers.append(w)
        return w

    def _costs(self, module, T_0, T_1) -> tuple[float, float, str]:
        """(T0, T1, where they came from) for a module being added (see the manual's **Costs**)."""
        if (T_0 is None) != (T_1 is None):
            raise ArgError(f"module {module.name}: give both T_0 and T_1 (ns) or neither")
        if T_0 is not None:
            T0, T1 = float(T_0), float(T_1)
            if T0 < 0 or T1 < 0:
                raise ArgError(f"module {module.name}: T_0 and T_1 must not be negative, got {T_0}, {T_1}")
        if _is_plumbing(module):
            return 0.0, 0.0, "plumbing"
        cls = type(module).__name__
        virtual = self._script.clock.virtual
        if cls == "Bypass":
            # it spins exactly its own t0/t1 on the wall clock and is charged them on the virtual one
            return float(module.cost_ns[0]), float(module.cost_ns[1]), "cost_ns"
        if virtual:
            if T_0 is not None:
                module.cost_ns = (T0, T1)       # the virtual clock charges what the model assumes
                return T0, T1, "given"
            if any(module.cost_ns):
                return float(module.cost_ns[0]), float(module.cost_ns[1]), "cost_ns"
        # The wall clock: what this module costs on this machine, measured. A class that the
        # profile lacks is profiled now (a second or two), as the "fall back to profiling".
        cost = self._profiled(cls)
        if cost is not None:
            return float(cost[0]), float(cost[1]), "profile"
        if T_0 is not None:
            log.warning("module %s (%s): no profile on this machine; the given T_0/T_1 (%g/%g ns) model "
                        "other hardware", module.name, cls, T0, T1)
            return T0, T1, "given"
        if any(module.cost_ns):
            log.warning("module %s (%s): no profile on this machine; using its nominal cost %s ns",
                        module.name, cls, tuple(module.cost_ns))
            return float(module.cost_ns[0]), float(module.cost_ns[1]), "cost_ns"
        log.warning("module %s (%s): no cost given and no profile for it (run `tailgate profile %s`); "
                    "modeled as 0/0 ns and not controlled", module.name, cls, cls)
        return 0.0, 0.0, "none"

    def _profiled(self, cls: str) -> tuple[float, float] | None:
        if self._profile is None:
            try:
                self._profile = profiler.load_profile()
            except Exception as e:   # a broken profile file: say so once, run unprofiled
                log.warning("cannot read the module profile (%s); unprofiled modules cost 0", e)
                self._profile = {}
        cost = profiler.module_cost(cls, self._profile)
        if cost is None and cls in profiler.known_modules() and cls not in self._profile_failed:
            log.warning("module class %s is not in the profile %s: profiling it now (`tailgate profile %s`)",
                        cls, profiler.profile_path(), cls)
            try:
                self._profile.update(profiler.profile([cls], budget_s=1.0))
            except Exception as e:
                log.warning("profiling %s failed (%s); it is modeled without a profile", cls, e)
                self._profile_failed.add(cls)
            cost = profiler.module_cost(cls, self._profile)
        return cost

    def add_flow(self, name: str, path, delay_slo_ns: float | None = None, rate_slo=None,
                 source_params: dict | None = None, percentile: float = 95.0, delay_slo: float | None = None):
        """Declare a flow (see the manual). ``delay_slo`` is the seed's spelling of ``delay_slo_ns``."""
        self._check_not_built("add_flow")
        if any(f.name == name for f in self.flows):
            raise ArgError(f"add_flow: a flow named {name!r} already exists")
        if delay_slo_ns is None:
            delay_slo_ns = delay_slo
        if delay_slo_ns is None:
            raise ArgError(f"flow {name}: delay_slo_ns is required")
        try:
            delay_slo_ns = float(delay_slo_ns)
        except (TypeError, ValueError):
            raise ArgError(f"flow {name}: delay_slo_ns must be a number of ns, got {delay_slo_ns!r}") from None
        if not delay_slo_ns > 0:
            raise ArgError(f"flow {name}: delay objective must be > 0 ns, got {delay_slo_ns:g}")
        if not 0 < float(percentile) < 100:
            raise ArgError(f"flow {name}: percentile must be in (0, 100), got {percentile!r}")
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
        mods = []
        for seg in path if isinstance(path, (list, tuple)) else [path]:
            if isinstance(seg, dict):
                mods.extend(seg.get("path", []))
            else:
                mods.append(seg)
        if not mods:
            raise ArgError(f"flow {name}: the path is empty")
        for m in mods:
            if getattr(m, "name", None) not in self._mods:
                raise ArgError(f"flow {name}: {m!r} on its path was not added to a task (task.add_module)")
        for a, b in zip(mods, mods[1:]):
            if not any(dst is b for _g, dst, _ig in a.connected_ogates()):
                raise ArgError(f"flow {name}: {a.name} -> {b.name} is not a connection in the graph, "
                               "so the path is not a path")
        f = Flow(name, mods, delay_slo_ns, None if pps is None else float(pps), None if bps is None else float(bps),
                 float(percentile), source_params)
        self.flows.append(f)
        return f

    def add_source(self, rate_pps: float = 0.0, seed: int = 1, size_bytes: int = 64) -> None:
        """Traffic for every flow (see the manual); call after the flows."""
        self._check_not_built("add_source")

        fed = set()
        # Per task, one QoS source (rate = the sum of its flows' rate objectives) and one bulk
        # source (no rate limit), each mixing its flows' templates packet by packet, as Batchy's
        # multi-sources do: one source per flow would hand the pipeline unfragmented batches.
        groups: dict[tuple[str, str], list[int]] = {}
        for k, f in enumerate(self.flows):
            if not f.source_params:
                continue
            task = self._mods[f.path[0].name].task
            qos = f.rate_slo_pps is not None or (f.source_params or {}).get("rate_pps")
            groups.setdefault((task.name, "qos" if qos else "bulk"), []).append(k)
        for (tname, kind), ks in groups.items():
            task = next(t for t in self._tasks if t.name == tname)
            templates, lut, rate, extra = [], [], 0.0, {}
            for k in ks:
                f = self.flows[k]
                p = dict(f.source_params)
                tmpl = p.pop("templates", None)
                if not tmpl:
                    raise ArgError(f"flow {f.name}: source_params needs 'templates' (a list of FlowTemplate)")
                tmpl = [t if isinstance(t, FlowTemplate) else FlowTemplate(**t) for t in tmpl]
                r = p.pop("rate_pps", None)
                rate += float(r if r is not None else (f.rate_slo_pps or 0.0))
                extra.update(p)
                templates += tmpl
                lut += [k] * len(tmpl)
                f.row = k + 1
            src = Source(name=f"src_{tname}_{kind}", templates=templates, rate_pps=rate if kind == "qos" else 0.0,
                         seed=seed + len(self._sources), **extra)
            # template index -> flow index, so that flows are told apart where they leave
            src >> _FlowIdMap(name=f"fid_{tname}_{kind}", lut=lut) >> task.queue
            self._sources.append(src)
            fed.add(tname)
        for t in self._tasks:
            if t.name not in fed:
                src = Source(name=f"src_{t.name}", rate_pps=rate_pps, seed=seed, size_bytes=size_bytes, flows=64)
                src >> t.queue
                self._sources.append(src)

    def add_pcap_source(self, path: str, task: BatchyTask | None = None, loop: bool = True) -> None:
        """Replay a capture into ``task``'s ingress (the first task by default)."""
        self._check_not_built("add_pcap_source")

        task = task or (self._tasks[0] if self._tasks else None)
        if task is None:
            raise ArgError("add_pcap_source: add a task first")
        kw = {"path": path}
        if loop and any(a.name == "loop" for a in PcapSource.args):
            kw["loop"] = True
        src = PcapSource(name=f"pcap_{task.name}", **kw)
        src >> task.queue
        self._sources.append(src)

    def add_sink(self) -> None:
        """A Measure + Sink after every flow, a Sink on every other open gate."""
        self._check_not_built("add_sink")

        by_egress: dict[str, list[Flow]] = {}
        for f in self.flows:
            by_egress.setdefault(f.path[-1].name, []).append(f)
        for egress, flows in by_egress.items():
            last = flows[0].path[-1]
            if len(flows) > 1 and any(f.row == 0 for f in flows):
                raise ArgError(f"flows {', '.join(f.name for f in flows)} all leave through {egress}: give each "
                               "its own source (source_params) so that they can be told apart there")
            open_gates = [g for g in range(last.n_ogates) if last._ogates[g] is None]
            if not open_gates:
                raise ArgError(f"flow {flows[0].name}: its last module {egress} has no open output gate for the "
                               "flow's measurement; end the path at the module whose output leaves the graph")
            m = Measure(name=f"measure_{egress}", cost_ns=(0.0, 0.0), max_flows=len(self.flows))
            for g in open_gates:
                last[g] >> m
            m >> Sink(name=f"sink_{egress}")
            for f in flows:
                f.measure = m
        k = 0
        for info in list(self._mods.values()):
            mod = info.module
            for g in range(mod.n_ogates):
                if mod._ogates[g] is None and g not in getattr(mod, "optional_ogates", ()):
                    mod[g] >> Sink(name=f"sink_open{k}")
                    k += 1
        self._sinks_added = True

    def resolve_controller(self, name: str):
        return resolve_controller(name)

    # the seed's spelling
    resolve_task_controller = resolve_controller

    def set_controller(self, controller) -> None:
        if isinstance(controller, str):
            controller = self.resolve_controller(controller)
        self.controller = controller
        self.controller_name = getattr(controller, "name", type(controller).__name__)

    # -- build ----------------------------------------------------------------------------------
    def _build(self) -> None:

        if not self._tasks:
            raise ArgError("batchy: add a worker and a task with modules before run()")
        for t in self._tasks:
            if not t.modules:
                raise ArgError(f"task {t.name}: it has no modules (task.add_module)")
        if not self.flows:
            raise ArgError("batchy: declare at least one flow (batchy.add_flow) before run()")
        if not self._sources:
            self.add_source()
        if not self._sinks_added:
            self.add_sink()
        if self.controller is None:
            self.set_controller("null")
        wfq = self._tasks[0].type == "WFQ"
        if wfq and self.controller_name not in ("null",):
            raise ArgError(f"controller {self.controller_name}: WFQ tasks run with the null controller only")
        for t in self._tasks:
            t.worker.worker.add_task(t.queue)
        for s in self._sources:
            self._src_worker().add_task(s)
        for name, info in self._mods.items():
            if not info.controlled:
                continue
            if info.module is info.task.modules[0]:
                # the ingress sits right behind the task's queue: a buffer there only re-batches
                # what the queue already hands out in bursts
                info.controlled = False
                continue
            if wfq:
                buf = Queue(name=f"q_{name}", size=INGRESS_QUEUE_SIZE, backpressure=False)
                _splice_before(info.module, buf)
                info.task.worker.worker.add_task(buf, share=1.0)
            else:
                # A packet never waits in a buffer longer than the tightest objective of the flows
                # through it: past that it has missed its objective anyway, and a shorter timeout
                # flushes slow branches before they fill (on the wall clock, L2L3's next hops get
                # a few hundred packets a second: a 32-packet batch takes ~100 ms, and the former
                # fixed 1 ms timeout released fragments, one call each, below null's throughput).
                slos = [f.delay_slo_ns for f in self.flows if any(m is info.module for m in f.path)]
                timeout_ns = int(min(max(min(slos), 1_000), 10**12)) if slos else DEFAULT_FLUSH_TIMEOUT_NS
                buf = FractionalBuffer(name=f"fb_{name}", trigger=0, flush_timeout_ns=timeout_ns)
                _splice_before(info.module, buf)
            info.buffer = buf
        self._built = True
        self._downstream = self._controlled_descendants()
        ctl = [n for n, i in self._mods.items() if i.controlled]
        log.info("batchy: %d tasks, %d modules (%d controlled: %s), %d flows, controller %s",
                 len(self._tasks), len(self._mods), len(ctl), ", ".join(ctl) or "none", len(self.flows),
                 self.controller_name)

    def _src_worker(self):
        # sources run on a worker of their own, as Batchy's traffic generator does
        if not hasattr(self, "_srcw"):
            self._srcw = self._script.add_worker("batchy_sources")
        return self._srcw

    def _controlled_descendants(self) -> dict[str, dict]:
        """Per controlled module: its uncontrolled descendants (up to the next controlled module,
        within the task) and its controlled children."""
        out = {}
        for name, info in self._mods.items():
            if not info.controlled:
                continue
            desc, children, seen = [], [], {name}
            stack = [info.module]
            while stack:
                m = stack.pop()
                for _g, dst, _ig in m.connected_ogates():
                    if type(dst).__name__ == "FractionalBuffer":
                        dst = dst.connected_ogates()[0][1]
                    if dst.name in seen or dst.name not in self._mods:
                        continue
                    seen.add(dst.name)
                    di = self._mods[dst.name]
                    if di.controlled:
                        children.append(dst.name)
                    else:
                        desc.append(dst.name)
                        stack.append(dst)
            out[name] = {"desc": desc, "children": children}
        return out

    # -- running --------------------------------------------------------------------------------
    def _reset(self) -> None:
        for m in self._script.pipeline:
            m.reset_counters()
        for m in {id(f.measure): f.measure for f in self.flows}.values():   # (flows share an egress's)
            m.clear()

    def _clock(self):
        return self._script.clock

    def run(self, rounds: int = 10, control_period_s: float = DEFAULT_CONTROL_PERIOD_S, warmup: bool = True,
            warmup_s: float = DEFAULT_WARMUP_S, control_period: float | None = None) -> dict:
        """Warm up, then ``rounds`` control rounds of ``control_period_s`` each (clock time)."""
        if control_period is not None:       # the seed's spelling
            control_period_s = control_period
        if not isinstance(rounds, int) or rounds < 1:
            raise ArgError(f"run: rounds must be a positive integer, got {rounds!r}")
        if not control_period_s > 0:
            raise ArgError(f"run: control_period_s must be > 0, got {control_period_s!r}")
        if not self._built:
            self._script.check_unknown_args()
            self._build()
        sr = self._script
        if warmup and warmup_s > 0:
            log.info("*** WARMUP... ***")
            sr.run(seconds=warmup_s)
        # Everything built so far lives for the whole run: move it out of the cyclic collector's
        # reach, so that a full collection does not walk hundreds of thousands of long-lived
        # objects (numba, matplotlib, the graph) in the middle of a control period. On the wall
        # clock such a pass stalled the pipeline for most of a 20 ms period now and then (L2L3:
        # 0.03 against 0.17 Mpps in that round, and a burst of late flows after it).
        # (Unfrozen afterwards, so that what the run leaves behind can be collected.)
        clock = self._clock()
        clock.pause()
        if not clock.virtual and self.buffer_cost_ns is None and sr.runtime is not None:
            self.buffer_cost_ns = hold_cost_ns(sr.runtime.pool)
            log.info("a buffer holding packets costs %.0f ns per arriving batch on this machine", self.buffer_cost_ns)
        gc.collect()
        gc.freeze()
        # The pipeline's clock stands still while the controller works (and the counters are
        # reset). Batchy's controller runs on a core of its own beside the data plane; here it
        # shares the one core, and on the wall clock every packet in a queue or a buffer would
        # otherwise age by the control round (1-5 ms against objectives of 0.1-1.5 ms): the ingress
        # queue's 64 and each buffer's up to 32 are several % of a flow's packets in a 20 ms
        # period, right at its 95th percentile. l3vrf, wall clock, projgrad: 6 late flow-rounds
        # and triggers that never settled without the pause, 1 late and settled at round 5 with
        # it. (ctrlr_deadtime still records what each round took.)
        try:
            for _ in range(rounds):
                self._reset()
                clock.resume()
                t0 = clock.now_ns()
                sr.run(seconds=control_period_s, summary=False)
                period_ns = max(clock.now_ns() - t0, 1)
                clock.pause()
                self.round += 1
                self._control_round(period_ns)
        finally:
            clock.resume()
            gc.unfreeze()
        return self.summary()

    def _control_round(self, period_ns: int) -> None:
        virtual = self._clock().virtual
        w0 = time.perf_counter()
        mstates: dict[str, ModuleState] = {}
        raw: dict[str, dict] = {}
        for name, info in self._mods.items():
            m = info.module
            raw[name] = {"pk": m.packets_in, "bt": m.batches_in}
        task_pk = {t.name: t.modules[0].packets_in for t in self._tasks}
        task_bt = {t.name: t.modules[0].batches_in for t in self._tasks}
        for name, info in self._mods.items():
            if not info.controlled:
                continue
            m, buf = info.module, info.buffer
            pk, bt = raw[name]["pk"], raw[name]["bt"]
            R = pk / period_ns
            x = bt / period_ns
            b_v = pk / bt if bt else 0.0
            b_in = buf.packets_in / buf.batches_in if buf.batches_in else 0.0
            d = self._downstream[name]
            T0 = info.T0_ns + sum(self._mods[u].T0_ns for u in d["desc"])
            T1 = info.T1_ns + sum((raw[u]["pk"] / pk if pk else 1.0) * self._mods[u].T1_ns for u in d["desc"])
            q = int(buf.trigger) if hasattr(buf, "trigger") else 0
            tpk = task_pk[info.task.name]
            mstates[name] = ModuleState(
                name=name, T0_ns=T0, T1_ns=T1, q=q, x_per_ns=x, R_per_ns=R, b_v=b_v, b_in=b_in,
                r_v=pk / tpk if tpk else 0.0, task=info.task.name,
                merge_point=len(buf._feeders[0]) > 1, children=list(d["children"]),
            )
        task_t0 = {t: (period_ns / bt if bt else float("nan")) for t, bt in task_bt.items()}
        task_b0 = {t: (task_pk[t] / bt if bt else 0.0) for t, bt in task_bt.items()}
        fstates = []
        total_pps = 0.0
        costs: dict[str, float] = {}        # per round: module -> batch cost; task -> turnaround
        turnarounds: dict[str, float] = {}
        # every flow's percentile in one pass per (Measure, percentile)
        groups: dict[tuple[int, float], list] = {}
        for f in self.flows:
            groups.setdefault((id(f.measure), f.percentile), []).append(f)
        delays: dict[str, float] = {}
        for (_m, pct), fl in groups.items():
            meas = fl[0].measure
            rows = [f.row for f in fl]
            for f, d in zip(fl, percentile_of_rows(meas.hist[rows], pct)):
                delays[f.name] = float(d)
        for f in self.flows:
            meas = f.measure
            n = int(meas.flow_packets[f.row])
            delay = delays[f.name] if n else float("nan")
            pps = n * 1e9 / period_ns
            total_pps += pps
            ctl_path = [m.name for m in f.path if self._mods[m.name].controlled]
            fs = FlowState(name=f.name, path=ctl_path, delay_slo_ns=f.delay_slo_ns, delay_ns=delay, rate_pps=pps,
                           rate_slo_pps=f.rate_slo_pps)
            fs.estimate_ns = self._estimate(f, mstates, raw, costs, turnarounds)
            fstates.append(fs)
        log.info("*** CONTROL ROUND: %d..., cumulative flow rate: %.6g Mpps", self.round, total_pps / 1e6)
        inp = ControlInput(round=self.round, period_ns=float(period_ns), modules=mstates, flows=fstates,
                           max_trigger=MAX_TRIGGER, task_t0_ns=task_t0, task_b0=task_b0,
                           buffer_cost_ns=self.buffer_cost_ns or 0.0)
        decision = self.controller.control(inp)
        if decision is not None:
            for name, q in decision.triggers.items():
                buf = self._mods[name].buffer
                if hasattr(buf, "trigger") and int(q) != int(buf.trigger):
                    buf.set("trigger", int(q))
            for fname, best in decision.infeasible.items():
                if fname not in self.infeasible:
                    log.warning("flow %s: delay objective %.0f ns is infeasible; the best delay reachable is "
                                "about %.0f ns", fname, next(f.delay_slo_ns for f in self.flows if f.name == fname),
                                best)
                    self.infeasible_rounds.setdefault(fname, []).append(self.round)
            for fname in set(self.infeasible) - set(decision.infeasible):
                log.info("flow %s: meets its objective again", fname)
            # the current verdict: a flow that meets its objective again is no longer listed
            self.infeasible = {k: float(v) for k, v in decision.infeasible.items()}
        dead_s = 0.0 if virtual else time.perf_counter() - w0
        row: dict[str, Any] = {"t": self.round}
        for name, ms in mstates.items():
            buf = self._mods[name].buffer
            row[f"{name}:control"] = int(getattr(buf, "trigger", 0))
            row[f"{name}:x_v"] = ms.x_per_ns * 1e9
            row[f"{name}:R_v"] = ms.R_per_ns * 1e9
            row[f"{name}:b_v"] = ms.b_v
            row[f"{name}:b_in"] = ms.b_in
        for fs in fstates:
            row[f"{fs.name}:delay"] = fs.delay_ns
            row[f"{fs.name}:delay_estimate"] = fs.estimate_ns
        for fs in fstates:
            row[f"{fs.name}:pps"] = fs.rate_pps
        for t in self._tasks:
            pk, bt = task_pk[t.name], task_bt[t.name]
            busy = sum(self._mods[m.name].T0_ns * (raw[m.name]["bt"]) + self._mods[m.name].T1_ns * raw[m.name]["pk"]
                       for m in t.modules)
            row[f"{t.name}:task_pps"] = pk * 1e9 / period_ns
            row[f"{t.name}:t_0"] = task_t0[t.name]
            row[f"{t.name}:t_0_estimate"] = busy / bt if bt else float("nan")
            row[f"{t.name}:b_0"] = task_b0[t.name]
            row[f"{t.name}:cyc_per_packet"] = (busy / pk * 2.5) if pk else float("nan")   # BYPASS_RATIO 2.5
        row["sum_fpps"] = total_pps
        row["ctrlr_deadtime"] = dead_s
        self.rows.append(row)

    def _estimate(self, f: Flow, mstates, raw, costs: dict, turnarounds: dict) -> float:
        """The model's delay estimate of a flow (reference §6, :func:`model.flow_estimate_ns`);
        ``costs`` and ``turnarounds`` cache each module's batch cost and each task's turnaround
        for the round (every flow of a task shares them)."""

        task = self._mods[f.path[0].name].task

        def cost(name):
            c = costs.get(name)
            if c is None:
                info = self._mods[name]
                st = mstates.get(name)
                b = st.b_v if st is not None else (raw[name]["pk"] / raw[name]["bt"] if raw[name]["bt"] else 0.0)
                c = costs[name] = model.batch_cost_ns(info.T0_ns, info.T1_ns, b)
            return c

        turnaround = turnarounds.get(task.name)
        if turnaround is None:
            turnaround = turnarounds[task.name] = sum(cost(m.name) for m in task.modules)
        waits = [1.0 / mstates[m.name].x_per_ns for m in f.path
                 if m.name in mstates and mstates[m.name].q > 0 and mstates[m.name].x_per_ns > 0]
        return model.flow_estimate_ns(turnaround, [cost(m.name) for m in f.path], waits)

    # -- results --------------------------------------------------------------------------------
    def _path(self, p) -> Path:
        p = Path(p)
        return p if p.is_absolute() else Path(self._script.out_dir) / p

    def dump(self, path="batchy.csv") -> Path:
        """One row per control round, comma separated; returns the file written."""
        out = self._path(path)
        cols: list[str] = []
        for r in self.rows:
            for k in r:
                if k not in cols:
                    cols.append(k)
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(",".join(cols) + "\n")
            for r in self.rows:
                fh.write(",".join(_fmt(r.get(c)) for c in cols) + "\n")
        log.info('dump: dumping statistics to CSV file: "%s"', out)
        return out

    def plot(self, path="batchy.png") -> Path:
        """Three panels against the round: triggers, flow delay vs estimate vs objective, rates."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = self._path(path)
        rounds = [r["t"] for r in self.rows]
        fig, ax = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
        for name, info in self._mods.items():
            if info.controlled:
                ax[0].step(rounds, [r.get(f"{name}:control", 0) for r in self.rows], where="post", label=name)
        ax[0].set_ylabel("trigger (packets)")
        ax[0].set_title(f"controller {self.controller_name}")
        for k, f in enumerate(self.flows):
            c = f"C{k % 10}"
            ax[1].plot(rounds, [r.get(f"{f.name}:delay", math.nan) / 1e3 for r in self.rows], color=c,
                       label=f"{f.name} p{f.percentile:g}")
            ax[1].plot(rounds, [r.get(f"{f.name}:delay_estimate", math.nan) / 1e3 for r in self.rows], color=c,
                       ls=":", label=f"{f.name} estimate")
            ax[1].axhline(f.delay_slo_ns / 1e3, color=c, ls="--", lw=0.8)
            ax[2].plot(rounds, [r.get(f"{f.name}:pps", 0) / 1e6 for r in self.rows], color=c, label=f.name)
        ax[2].plot(rounds, [r["sum_fpps"] / 1e6 for r in self.rows], color="k", lw=2, label="total")
        ax[1].set_ylabel("delay (µs; dashed: objective)")
        ax[1].set_yscale("log")
        ax[2].set_ylabel("rate (Mpps)")
        ax[2].set_xlabel("control round")
        for a in ax:
            if len(a.get_legend_handles_labels()[0]) <= 12:
                a.legend(fontsize=7, loc="best")
            a.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out, dpi=100)
        plt.close(fig)
        log.info('plot: plotting statistics to file: "%s"', out)
        return out

    def summary(self, last: int | None = None) -> dict:
        """Means over the last ``last`` rounds (default: the second half) per flow and in total."""
        if not self.rows:
            return {}
        n = last or max(1, len(self.rows) // 2)
        tail = self.rows[-n:]
        out = {"controller": self.controller_name, "rounds": len(self.rows), "sum_fpps": _mean(r["sum_fpps"] for r in tail),
               "flows": {}, "infeasible": dict(self.infeasible)}
        for f in self.flows:
            ds = [r.get(f"{f.name}:delay", math.nan) for r in tail]
            out["flows"][f.name] = {
                "delay_slo_ns": f.delay_slo_ns, "percentile": f.percentile,
                "delay_ns": _mean(ds), "delay_max_ns": max((d for d in ds if d == d), default=math.nan),
                "pps": _mean(r.get(f"{f.name}:pps", 0) for r in tail),
                "violations": sum(1 for d in ds if d == d and d > f.delay_slo_ns * 1.05),
            }
        out["triggers"] = {n: self.rows[-1].get(f"{n}:control") for n, i in self._mods.items() if i.controlled}
        out["converged_round"] = self.converged_round()
        out["rate_settled_round"] = self.rate_settled_round()
        return out

    def rate_settled_round(self, tolerance: float = RATE_SETTLED_TOLERANCE) -> int | None:
        """The round from which the total flow rate stays within ``tolerance`` (±5 %: wall-clock
        rates wander by a few %) of its mean over the second half of the run, to the end:
        convergence of what the controller optimizes, where :meth:`converged_round` asks it of
        every trigger."""
        if not self.rows:
            return None
        ref = _mean(r["sum_fpps"] for r in self.rows[len(self.rows) // 2:])
        if not ref > 0:
            return None
        last = len(self.rows)
        for k in range(len(self.rows) - 1, -1, -1):
            if abs(self.rows[k]["sum_fpps"] / ref - 1) > tolerance:
                break
            last = k
        return self.rows[last]["t"] if last < len(self.rows) else None

    def converged_round(self, tolerance: int = CONVERGED_TOLERANCE) -> int | None:
        """The round from which no trigger moved by more than ``tolerance`` packets (10 % of the
        largest trigger) from one round to the next, to the end of the run."""
        names = [n for n, i in self._mods.items() if i.controlled]
        if not self.rows:
            return None
        last = len(self.rows)
        for k in range(len(self.rows) - 1, 0, -1):
            a, b = self.rows[k - 1], self.rows[k]
            if any(abs(a.get(f"{n}:control", 0) - b.get(f"{n}:control", 0)) > tolerance for n in names):
                break
            last = k
        return self.rows[last - 1]["t"]


def _mean(xs) -> float:
    v = [x for x in xs if x == x]
    return sum(v) / len(v) if v else math.nan


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.6g}"
    return str(v)


def _make_flow_id_map():
    import numpy as np


    class _FlowIdMap(Module):
        """Rewrites ``flow_id`` (a source's template index) to the flow's index (per batch, numpy)."""

        cost_ns = (0.0, 0.0)
        args = (Arg("lut", any_value),)

        def setup(self) -> None:
            self._lut = np.asarray(self.lut, dtype=np.int32)

        def process(self, batch) -> None:
            fid = batch.pool.flow_id
            idx = batch.idx
            fid[idx] = self._lut[np.clip(fid[idx], 0, len(self._lut) - 1)]
            self.emit(batch)

    return _FlowIdMap


def _FlowIdMap(**kw):  # noqa: N802 - builds the module class on first use (no Module class at import)
    global _FLOW_ID_MAP
    if _FLOW_ID_MAP is None:
        _FLOW_ID_MAP = _make_flow_id_map()
    return _FLOW_ID_MAP(**kw)


_FLOW_ID_MAP = None


def _splice_before(module, buf) -> None:
    """Re-wire every feeder of ``module``'s input 0 to ``buf``, then ``buf >> module``."""
    feeders = list(module._feeders[0])
    for up, og in feeders:
        up._ogates[og] = (buf, 0)
        up._ogate_pending[og] = buf._pending[0]
        buf._feeders[0].append((up, og))
    module._feeders[0] = []
    buf >> module
