"""The graph a Batchy script becomes: sources, sinks, the buffers in front of controlled modules.

Manual
------
What a script's ``batchy`` calls add to the pipeline (:mod:`tailgate.batchy.api`):

- **sources** (:func:`add_flow_sources`): per task, one QoS source (rate = the sum of its flows'
  rate objectives) and one bulk source (no rate limit), each mixing its flows' templates packet by
  packet, as Batchy's multi-sources do (one source per flow would hand the pipeline unfragmented
  batches). Behind each, a flow-id rewriter turns a template's index into its flow's, so that
  flows are told apart where they leave. A task whose flows have no ``source_params`` gets one
  unlimited Source of 64 random flows. :func:`add_pcap_source` replays a capture instead.
- **sinks** (:func:`add_sinks`): a Measure and a Sink after each flow's last module, on every one
  of its output gates that is still open (flows leaving through one module share its Measure,
  one row each), and a Sink on every other open gate.
- **scheduling** (:func:`schedule`): each task's ingress queue on its worker; the sources on a
  worker of their own (``batchy_sources``), as Batchy's traffic generator is.
- **buffers** (:func:`splice_buffers`): in an RTC task, a FractionalBuffer spliced in front of
  every controlled module (:meth:`~tailgate.dataplane.module.Module.splice_in_front`), its flush
  timeout the tightest delay objective of the flows through the module (1 ms when none passes);
  in a WFQ task, a Queue (64, no backpressure) instead, run as its own task. A task's first
  module sits right behind the task's queue and is never buffered.
- **controlled descendants** (:func:`controlled_descendants`): per controlled module, the
  uncontrolled modules behind it up to the next controlled one (their costs count in its
  aggregate ``T0``/``T1``) and its controlled children.

Example::

    sources: list = []
    add_flow_sources(flows, mods, tasks, sources, rate_pps=0.0, seed=1, size_bytes=64)
    add_sinks(flows, mods)
    schedule(script, tasks, sources)
    splice_buffers(mods, flows, wfq=False)
    controlled_descendants(mods)   # {"nf1": {"desc": [...], "children": [...]}, ...}
"""

from __future__ import annotations

import numpy as np

from tailgate.batchy.spec import Flow, ModuleSpec
from tailgate.core.args import Arg, any_value
from tailgate.core.errors import ArgError
from tailgate.dataplane.module import Module
from tailgate.nf.basic import PcapSource, Queue, Sink, Source
from tailgate.nf.fbuffer import FractionalBuffer
from tailgate.nf.measure import Measure
from tailgate.packet.synth import FlowTemplate

#: the ingress queue of a task, and the queue in front of a controlled module of a WFQ task (packets)
INGRESS_QUEUE_SIZE = 64
#: flush timeout of a buffer that no flow passes through (one with flows gets their tightest objective)
DEFAULT_FLUSH_TIMEOUT_NS = 1_000_000
#: the flush timeout is kept within these bounds (ns)
MIN_FLUSH_TIMEOUT_NS = 1_000
MAX_FLUSH_TIMEOUT_NS = 10**12


class _FlowIdMap(Module):
    """Rewrites ``flow_id`` (a source's template index) to the flow's index (per batch, numpy)."""

    cost_ns = (0.0, 0.0)
    args = (Arg("lut", any_value, unit="-", help="the flow index of each template index"),)

    def setup(self) -> None:
        self._lut = np.asarray(self.lut, dtype=np.int32)

    def process(self, batch) -> None:
        fid = batch.pool.flow_id
        idx = batch.idx
        fid[idx] = self._lut[np.clip(fid[idx], 0, len(self._lut) - 1)]
        self.emit(batch)


def add_flow_sources(flows: list[Flow], mods: dict[str, ModuleSpec], tasks: list, sources: list, *,
                     rate_pps: float, seed: int, size_bytes: int) -> None:
    """Sources for every flow, appended to ``sources`` (see the manual)."""
    fed = set()
    groups: dict[tuple[str, str], list[int]] = {}
    for k, f in enumerate(flows):
        if not f.source_params:
            continue
        task = mods[f.path[0].name].task
        qos = f.rate_slo_pps is not None or (f.source_params or {}).get("rate_pps")
        groups.setdefault((task.name, "qos" if qos else "bulk"), []).append(k)
    for (tname, kind), ks in groups.items():
        task = next(t for t in tasks if t.name == tname)
        templates, lut, rate, extra = [], [], 0.0, {}
        for k in ks:
            f = flows[k]
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
                     seed=seed + len(sources), **extra)
        # template index -> flow index, so that flows are told apart where they leave
        src >> _FlowIdMap(name=f"fid_{tname}_{kind}", lut=lut) >> task.queue
        sources.append(src)
        fed.add(tname)
    for t in tasks:
        if t.name not in fed:
            src = Source(name=f"src_{t.name}", rate_pps=rate_pps, seed=seed, size_bytes=size_bytes, flows=64)
            src >> t.queue
            sources.append(src)


def add_pcap_source(path: str, task, sources: list, *, loop: bool) -> None:
    """A PcapSource replaying ``path`` into ``task``'s ingress queue, appended to ``sources``."""
    kw = {"path": path}
    if loop and any(a.name == "loop" for a in PcapSource.args):
        kw["loop"] = True
    src = PcapSource(name=f"pcap_{task.name}", **kw)
    src >> task.queue
    sources.append(src)


def add_sinks(flows: list[Flow], mods: dict[str, ModuleSpec]) -> None:
    """A Measure + Sink after every flow, a Sink on every other open gate (see the manual)."""
    by_egress: dict[str, list[Flow]] = {}
    for f in flows:
        by_egress.setdefault(f.path[-1].name, []).append(f)
    for egress, egress_flows in by_egress.items():
        last = egress_flows[0].path[-1]
        if len(egress_flows) > 1 and any(f.row == 0 for f in egress_flows):
            raise ArgError(f"flows {', '.join(f.name for f in egress_flows)} all leave through {egress}: give each "
                           "its own source (source_params) so that they can be told apart there")
        open_gates = last.open_ogates()
        if not open_gates:
            raise ArgError(f"flow {egress_flows[0].name}: its last module {egress} has no open output gate for the "
                           "flow's measurement; end the path at the module whose output leaves the graph")
        m = Measure(name=f"measure_{egress}", cost_ns=(0.0, 0.0), max_flows=len(flows))
        for g in open_gates:
            last[g] >> m
        m >> Sink(name=f"sink_{egress}")
        for f in egress_flows:
            f.measure = m
    k = 0
    for info in list(mods.values()):
        mod = info.module
        for g in mod.open_ogates():
            if g not in getattr(mod, "optional_ogates", ()):
                mod[g] >> Sink(name=f"sink_open{k}")
                k += 1


def schedule(script, tasks: list, sources: list) -> None:
    """Each task's ingress queue on its worker; the sources on a worker of their own."""
    for t in tasks:
        t.worker.worker.add_task(t.queue)
    source_worker = None
    for s in sources:
        if source_worker is None:
            source_worker = script.add_worker("batchy_sources")
        source_worker.add_task(s)


def flush_timeout_ns(module, flows: list[Flow]) -> int:
    """The flush timeout of the buffer in front of ``module``: the tightest objective of the flows
    through it. A packet never waits in a buffer longer than that: past it, it has missed its
    objective anyway, and a shorter timeout flushes slow branches before they fill (a fixed 1 ms
    released fragments, one call each, on branches that see a few hundred packets a second)."""
    slos = [f.delay_slo_ns for f in flows if any(m is module for m in f.path)]
    if not slos:
        return DEFAULT_FLUSH_TIMEOUT_NS
    return int(min(max(min(slos), MIN_FLUSH_TIMEOUT_NS), MAX_FLUSH_TIMEOUT_NS))


def splice_buffers(mods: dict[str, ModuleSpec], flows: list[Flow], *, wfq: bool) -> None:
    """A buffer in front of every controlled module, kept in its ``ModuleSpec.buffer`` (see the
    manual); a task's first module is marked uncontrolled instead."""
    for name, info in mods.items():
        if not info.controlled:
            continue
        if info.module is info.task.modules[0]:
            # the ingress sits right behind the task's queue: a buffer there only re-batches
            # what the queue already hands out in bursts
            info.controlled = False
            continue
        if wfq:
            buf = Queue(name=f"q_{name}", size=INGRESS_QUEUE_SIZE, backpressure=False)
            info.module.splice_in_front(buf)
            info.task.worker.worker.add_task(buf, share=1.0)
        else:
            buf = FractionalBuffer(name=f"fb_{name}", trigger=0, flush_timeout_ns=flush_timeout_ns(info.module, flows))
            info.module.splice_in_front(buf)
        info.buffer = buf


def controlled_descendants(mods: dict[str, ModuleSpec]) -> dict[str, dict]:
    """Per controlled module: its uncontrolled descendants (up to the next controlled module,
    within the task) and its controlled children."""
    out = {}
    for name, info in mods.items():
        if not info.controlled:
            continue
        desc, children, seen = [], [], {name}
        stack = [info.module]
        while stack:
            m = stack.pop()
            for _g, dst, _ig in m.connected_ogates():
                if type(dst).__name__ == "FractionalBuffer":
                    dst = dst.connected_ogates()[0][1]
                if dst.name in seen or dst.name not in mods:
                    continue
                seen.add(dst.name)
                di = mods[dst.name]
                if di.controlled:
                    children.append(dst.name)
                else:
                    desc.append(dst.name)
                    stack.append(dst)
        out[name] = {"desc": desc, "children": children}
    return out
