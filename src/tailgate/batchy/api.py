"""Batchy in tailgate: the ``batchy`` global of a script — workers, tasks, flows, sources, sinks, controllers.

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
that schedules weighted-fair by time (only the ``null`` controller drives WFQ tasks). See
:mod:`tailgate.batchy.build`.

**Costs.** A module's ``T0``/``T1`` (ns): a Bypass costs its own ``t0_ns``/``t1_ns`` on either
clock. Under the virtual clock, ``add_module(..., T_0=, T_1=)`` (which the clock then charges),
else the module's ``cost_ns``. Under the wall clock, what this machine's profile
(``tailgate profile``, :mod:`tailgate.batchy.profiler`) measured; a class missing from it is
profiled on the spot (about a second) and added to it; only when that cannot be done, the given
or nominal cost with a warning, and 0/0 (uncontrolled) with a warning naming the module
(:mod:`tailgate.batchy.costs`). A module is controlled when its batchiness β = T1/(T0+T1) ≤ 0.5,
unless ``controlled=`` says.

**Flows.** ``add_flow(name, path, delay_slo_ns, rate_slo=None, percentile=95, source_params=None)``:
``path`` is the modules the flow crosses, in order (or the seed's form
``[{"task": t, "path": [...]}]``); consecutive modules must be connected. ``rate_slo`` is pps, or
``{"packet": pps}`` / ``{"bit": bps}`` (:mod:`tailgate.batchy.spec`). ``add_sink()`` puts a
Measure and a Sink after each flow's last module (on every one of its output gates that is still
open) and a Sink on every other open gate; the flow's delay is the chosen percentile of (time it
left − time its source scheduled it), so the ingress queue's wait counts.

**Sources.** ``add_source()`` gives each flow with ``source_params`` (``templates`` =
FlowTemplate list, ``rate_pps``, ``size_bytes``...) its own Source, rate-limited to its rate
objective when it has one; a task whose flows have no source parameters gets one unlimited Source
of random flows. ``add_pcap_source(path, task, loop=True)`` replays a capture instead.

**The loop.** ``run(rounds, control_period_s, warmup=True)``: warm up (``warmup_s``; the rows
leave it out), then each round: note the counters, run one control period of the run's clock, read
every buffer, module and flow, call the controller, apply its triggers, log the round at INFO
(``*** CONTROL ROUND: n..., cumulative flow rate: X Mpps`` and the controller's lines) and keep a
row (:mod:`tailgate.batchy.loop`). Module counters are not reset between rounds: a round is what
they gained in it, so the run's summary, ``counters.csv`` and the table at the end cover the whole
run (warm-up included). When the script ends, what the buffers still hold goes on through the rest
of its task to its sink (:meth:`Batchy.stop`), so it is neither lost nor counted as a drop.
``dump(csv)`` writes one row per round (columns as the reference sheet §14, comma separated);
``plot(png)`` draws three panels (triggers, flow delay vs estimate vs objective, rates);
``summary()`` the means of the second half (:mod:`tailgate.batchy.output`; ``tailgate run`` puts
it in ``summary.json`` as ``batchy``). Under the virtual clock the controller's dead time is recorded
as 0, so the same script and seed give the same CSV byte for byte.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tailgate.batchy import output
from tailgate.batchy.build import (
    INGRESS_QUEUE_SIZE,
    add_flow_sources,
    add_pcap_source,
    add_sinks,
    controlled_descendants,
    schedule,
    splice_buffers,
)
from tailgate.batchy.controllers import resolve_controller
from tailgate.batchy.costs import CostBook
from tailgate.batchy.loop import ControlLoop
from tailgate.batchy.model import is_controllable
from tailgate.batchy.spec import Flow, ModuleSpec, make_flow
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.nf.basic import Queue

log = logging.getLogger("tailgate.batchy")

DEFAULT_CONTROL_PERIOD_S = 0.1
DEFAULT_WARMUP_S = 0.5
MODULE_TYPES = (None, "ingress", "internal", "egress", "native", "bess")


class BatchyTask:
    """A task: an ingress queue and the modules behind it (see the manual)."""

    def __init__(self, batchy: "Batchy", worker: "BatchyWorker", name: str, type_: str, queue_size: int) -> None:
        self.batchy = batchy
        self.worker = worker
        self.name = name
        self.type = type_

        self.queue = Queue(name=f"{name}_ingress", size=queue_size, backpressure=True)
        self.modules: list = []

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
        if type not in MODULE_TYPES:
            raise ArgError(f"module {module.name}: type must be ingress, internal, egress or native, got {type!r}")
        T0, T1, src = b._costs.costs(module, T_0, T_1, virtual=b._script.clock.virtual)
        if type in ("native", "bess"):
            ctrl = False
        elif controlled is None:
            ctrl = (T0 > 0 or T1 > 0) and is_controllable(T0, T1)
        else:
            ctrl = bool(controlled)
        if not self.modules:
            self.queue >> module
        self.modules.append(module)
        b._mods[module.name] = ModuleSpec(module, self, T0, T1, ctrl, src)
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
        self._mods: dict[str, ModuleSpec] = {}
        self.flows: list[Flow] = []
        self.controller_name = "null"
        self._built = False
        self._sources: list = []
        self._sinks_added = False
        self._costs = CostBook()
        #: the control rounds and what they recorded (rows, infeasible flows, ...)
        self.loop = ControlLoop(script, self._mods, self._tasks, self.flows)

    @property
    def controller(self):
        return self.loop.controller

    @property
    def rows(self) -> list[dict]:
        return self.loop.rows

    # -- declaring ------------------------------------------------------------------------------
    def _check_not_built(self, what: str) -> None:
        if self._built:
            raise ArgError(f"{what}() must come before the first run()")

    def add_worker(self, name: str | None = None) -> BatchyWorker:
        self._check_not_built("add_worker")
        w = BatchyWorker(self, name or f"w{len(self._workers)}")
        self._workers.append(w)
        return w

    def add_flow(self, name: str, path, delay_slo_ns: float | None = None, rate_slo=None,
                 source_params: dict | None = None, percentile: float = 95.0, delay_slo: float | None = None):
        """Declare a flow (see the manual). ``delay_slo`` is the seed's spelling of ``delay_slo_ns``."""
        self._check_not_built("add_flow")
        if any(f.name == name for f in self.flows):
            raise ArgError(f"add_flow: a flow named {name!r} already exists")
        f = make_flow(name, path, delay_slo_ns if delay_slo_ns is not None else delay_slo, rate_slo=rate_slo,
                      percentile=percentile, source_params=source_params, added=self._mods)
        self.flows.append(f)
        return f

    def add_source(self, rate_pps: float = 0.0, seed: int = 1, size_bytes: int = 64) -> None:
        """Traffic for every flow (see the manual); call after the flows."""
        self._check_not_built("add_source")
        add_flow_sources(self.flows, self._mods, self._tasks, self._sources, rate_pps=rate_pps, seed=seed,
                         size_bytes=size_bytes)

    def add_pcap_source(self, path: str, task: BatchyTask | None = None, loop: bool = True) -> None:
        """Replay a capture into ``task``'s ingress (the first task by default)."""
        self._check_not_built("add_pcap_source")
        task = task or (self._tasks[0] if self._tasks else None)
        if task is None:
            raise ArgError("add_pcap_source: add a task first")
        add_pcap_source(path, task, self._sources, loop=loop)

    def add_sink(self) -> None:
        """A Measure + Sink after every flow, a Sink on every other open gate."""
        self._check_not_built("add_sink")
        add_sinks(self.flows, self._mods)
        self._sinks_added = True

    def resolve_controller(self, name: str):
        return resolve_controller(name)

    # the seed's spelling
    resolve_task_controller = resolve_controller

    def set_controller(self, controller) -> None:
        if isinstance(controller, str):
            controller = self.resolve_controller(controller)
        self.loop.controller = controller
        self.controller_name = getattr(controller, "name", type(controller).__name__)

    # -- building and running -------------------------------------------------------------------
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
        schedule(self._script, self._tasks, self._sources)
        splice_buffers(self._mods, self.flows, wfq=wfq)
        self._built = True
        self.loop.downstream = controlled_descendants(self._mods)
        ctl = self._controlled()
        log.info("batchy: %d tasks, %d modules (%d controlled: %s), %d flows, controller %s",
                 len(self._tasks), len(self._mods), len(ctl), ", ".join(ctl) or "none", len(self.flows),
                 self.controller_name)

    def run(self, rounds: int = 10, control_period_s: float = DEFAULT_CONTROL_PERIOD_S, warmup: bool = True,
            warmup_s: float = DEFAULT_WARMUP_S, control_period: float | None = None) -> dict:
        """Warm up, then ``rounds`` control rounds of ``control_period_s`` each (clock time);
        returns :meth:`summary`."""
        if control_period is not None:       # the seed's spelling
            control_period_s = control_period
        if not isinstance(rounds, int) or rounds < 1:
            raise ArgError(f"run: rounds must be a positive integer, got {rounds!r}")
        if not control_period_s > 0:
            raise ArgError(f"run: control_period_s must be > 0, got {control_period_s!r}")
        if not self._built:
            self._script.check_unknown_args()
            self._build()
        self.loop.run(rounds, control_period_s, warmup, warmup_s)
        return self.summary()

    def stop(self) -> int:
        """The script has ended: release what the buffers still hold through the rest of their tasks
        (:meth:`tailgate.batchy.loop.ControlLoop.flush_buffers`); returns the packets released.
        ``tailgate run`` calls it before it writes the results; nothing to do before the first run."""
        if not self._built:
            return 0
        if self.loop.rows:
            s = self.summary()
            first, last = s["mean_of_rounds"]
            log.info("batchy: controller %s, %d rounds; flows %.4g Mpps (mean of rounds %d-%d); the run's packets "
                     "and rate count the whole run, warm-up included", self.controller_name, s["rounds"],
                     s["sum_fpps"] / 1e6, first, last)
        return self.loop.flush_buffers()

    # -- results --------------------------------------------------------------------------------
    def _controlled(self) -> list[str]:
        return [n for n, i in self._mods.items() if i.controlled]

    def _path(self, p) -> Path:
        p = Path(p)
        return p if p.is_absolute() else Path(self._script.out_dir) / p

    def dump(self, path="batchy.csv") -> Path:
        """One row per control round, comma separated; returns the file written."""
        return output.dump_csv(self.loop.rows, self._path(path))

    def plot(self, path="batchy.png") -> Path:
        """Three panels against the round: triggers, flow delay vs estimate vs objective, rates."""
        return output.plot(self.loop.rows, self.flows, self._controlled(), self.controller_name, self._path(path))

    def summary(self, last: int | None = None) -> dict:
        """Means over the last ``last`` rounds (default: the second half) per flow and in total."""
        return output.summary(self.loop.rows, self.flows, controlled=self._controlled(),
                              controller_name=self.controller_name, infeasible=self.loop.infeasible, last=last)

    def rate_settled_round(self, tolerance: float = output.RATE_SETTLED_TOLERANCE) -> int | None:
        """See :func:`tailgate.batchy.output.rate_settled_round`."""
        return output.rate_settled_round(self.loop.rows, tolerance)

    def converged_round(self, tolerance: int = output.CONVERGED_TOLERANCE) -> int | None:
        """See :func:`tailgate.batchy.output.converged_round`."""
        return output.converged_round(self.loop.rows, self._controlled(), tolerance)
