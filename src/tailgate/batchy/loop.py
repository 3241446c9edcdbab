"""Batchy's control loop: run a control period, measure it, ask the controller, apply its triggers.

Manual
------
:meth:`ControlLoop.run` warms the pipeline up (``warmup_s`` of clock time, which no row
counts) and runs ``rounds`` control rounds. Each round:

1. the counters the period will be measured from are noted (:meth:`ControlLoop.mark`) and one
   control period (``control_period_s`` of the run's clock) runs. Counters are never reset: a
   period is what they gained during it, so the modules' counters, the Measure histograms and the
   run's summary cover the whole run (warm-up included), the per-round rows each one period;
2. the clock is paused and the period is measured (:meth:`ControlLoop.control_round`): per
   controlled module a :class:`~tailgate.batchy.state.ModuleState` (its rates, batch sizes, the
   aggregated ``T0``/``T1`` of it and its uncontrolled descendants, its trigger), per flow a
   :class:`~tailgate.batchy.state.FlowState` (its delay percentile from its Measure row, its rate,
   the model's estimate, :func:`tailgate.batchy.model.flow_estimate_ns`), per task its turnaround
   and mean ingress batch;
3. the controller's decision is applied: each changed trigger is set on its buffer, an infeasible
   flow is logged once by name with the best delay reachable (and again when it meets its objective);
4. the round is logged at INFO (``*** CONTROL ROUND: n..., cumulative flow rate: X Mpps``) and
   kept as a row (:mod:`tailgate.batchy.output`); the clock resumes.

The clock stands still while the controller works. Batchy's controller runs on a core of its own
beside the data plane; here it shares the one core, and on the wall clock every packet waiting in
a queue or a buffer would otherwise age by the control round, which is long against objectives of
a fraction of a millisecond. Under the virtual clock the controller's dead time is recorded as 0,
so the same script and seed give the same rows. Everything built before the first round lives
for the whole run, so it is moved out of the cyclic garbage collector's reach (``gc.freeze``)
while the rounds run: a full collection walking it in the middle of a period would stall the
pipeline for much of that period.

On the wall clock, before the first round, what a buffer holding packets costs per arriving batch
is measured once (:func:`tailgate.nf.fbuffer.hold_cost_ns`) and handed to the controllers.

When the script ends, :meth:`ControlLoop.flush_buffers` releases what the buffers still hold
through the rest of their tasks (one task round each, triggers at 0, then put back), so those
packets reach their sinks instead of being counted as lost; the clock advances by what that
costs, after the last round was recorded.

Example::

    loop = ControlLoop(script, mods, tasks, flows)
    loop.controller = resolve_controller("projgrad")
    loop.downstream = controlled_descendants(mods)
    loop.run(rounds=40, control_period_s=0.01, warmup=True, warmup_s=0.5)
    loop.rows[-1]["sum_fpps"]
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import numpy as np

from tailgate.batchy import model
from tailgate.batchy.spec import Flow, ModuleSpec
from tailgate.batchy.state import ControlDecision, ControlInput, FlowState, ModuleState
from tailgate.measure.hist import percentile_of_rows
from tailgate.nf.fbuffer import FractionalBuffer, hold_cost_ns
from tailgate.packet.pool import DEFAULT_BURST

log = logging.getLogger("tailgate.batchy")

#: at the end, task rounds to release what the buffers hold (one does it unless a round yields)
FLUSH_ROUNDS = 8


class ControlLoop:
    """The control rounds of one Batchy run, and what they recorded (see the manual)."""

    def __init__(self, script, mods: dict[str, ModuleSpec], tasks: list, flows: list[Flow]) -> None:
        self.script = script
        self.mods = mods
        self.tasks = tasks
        self.flows = flows
        self.controller = None
        self.downstream: dict[str, dict] = {}   # per controlled module: {"desc": [...], "children": [...]}
        self.rows: list[dict] = []
        self.round = 0
        self.buffer_cost_ns: float | None = None    # wall clock: measured at the first run
        self.infeasible: dict[str, float] = {}          # flow -> best delay reachable (ns), now
        self.infeasible_rounds: dict[str, list[int]] = {}  # flow -> rounds it was declared infeasible
        self.infeasible_best_ns: dict[str, float] = {}   # flow -> best delay reachable when last declared (ns)
        # where the current period's counters start (mark): module -> (packets_in, batches_in), by
        # module name (the controlled modules' buffers under "buffer:NAME"); per Measure (by id) its
        # flow_packets and hist
        self.base: dict[str, tuple[int, int]] = {}
        self.base_measure: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # -- the rounds -----------------------------------------------------------------------------
    def run(self, rounds: int, control_period_s: float, warmup: bool, warmup_s: float) -> None:
        """Warm up, then ``rounds`` control rounds of ``control_period_s`` each (clock time)."""
        sr = self.script
        if warmup and warmup_s > 0:
            log.info("*** WARMUP... ***")
            sr.run(seconds=warmup_s)
        clock = sr.clock
        clock.pause()
        if not clock.virtual and self.buffer_cost_ns is None and sr.runtime is not None:
            self.buffer_cost_ns = hold_cost_ns(sr.runtime.pool)
            log.info("a buffer holding packets costs %.0f ns per arriving batch on this machine", self.buffer_cost_ns)
        gc.collect()
        gc.freeze()    # (unfrozen afterwards, so that what the run leaves behind can be collected)
        try:
            for _ in range(rounds):
                self.mark()
                clock.resume()
                t0 = clock.now_ns()
                sr.run(seconds=control_period_s, summary=False)
                period_ns = max(clock.now_ns() - t0, 1)
                clock.pause()
                self.round += 1
                self.control_round(period_ns)
        finally:
            clock.resume()
            gc.unfreeze()

    def mark(self) -> None:
        """Note the counters the next period is measured from (a period is what they gain)."""
        base = self.base
        for name, info in self.mods.items():
            m = info.module
            base[name] = (m.packets_in, m.batches_in)
            buf = info.buffer
            if buf is not None:
                base["buffer:" + name] = (buf.packets_in, buf.batches_in)
        rows: dict[int, set[int]] = {}
        for f in self.flows:            # (flows share an egress's Measure, one row each)
            rows.setdefault(id(f.measure), set()).add(f.row)
        for f in self.flows:
            m = f.measure
            if id(m) in rows:
                r = np.array(sorted(rows.pop(id(m))), dtype=np.intp)
                # only the flows' rows of the histogram: copying every row each round would cost
                # what zeroing them did (docs/notes.md)
                self.base_measure[id(m)] = (m.flow_packets.copy(), r, m.hist[r])

    def _gained(self, key: str, module) -> tuple[int, int]:
        """(packets, batches) that ``module`` took in since :meth:`mark`."""
        pk0, bt0 = self.base.get(key, (0, 0))
        return module.packets_in - pk0, module.batches_in - bt0

    def flush_buffers(self) -> int:
        """Release the packets the fractional buffers still hold through the rest of their tasks
        (the script has ended): each holding buffer's trigger goes to 0, its task runs a round (or
        a few, should one yield), the trigger is put back. Returns the packets released."""
        rt = self.script.runtime
        if rt is None:
            return 0
        buffers = [(info, info.buffer) for info in self.mods.values() if isinstance(info.buffer, FractionalBuffer)]
        holding = [(info, buf) for info, buf in buffers if len(buf)]
        if not holding:
            return 0
        held = sum(len(buf) for _info, buf in holding)
        # every buffer passes packets through meanwhile: what the round takes from the task's
        # queue must not stop in a buffer further on
        triggers = [(buf, int(buf.trigger)) for _info, buf in buffers]
        for buf, _q in triggers:
            buf.set("trigger", 0)
        try:
            tasks = {info.task.queue.name: rt.tasks[info.task.queue.name] for info, _buf in holding}
            for _ in range(FLUSH_ROUNDS):
                if not any(len(buf) for _info, buf in buffers):
                    break
                for task in tasks.values():
                    task.run_round()
            rt.stopped_ns = max(rt.stopped_ns, rt.clock.now_ns())    # the run's clock went on
        finally:
            for buf, q in triggers:
                buf.set("trigger", q)
        left = sum(len(buf) for _info, buf in buffers)
        log.info("stop: %d packets held in buffers went on through their tasks%s", held - left,
                 f" ({left} could not and stay held)" if left else "")
        return held - left

    def control_round(self, period_ns: int) -> None:
        """Measure the period that just ran, call the controller, apply it, keep the row."""
        virtual = self.script.clock.virtual
        w0 = time.perf_counter()
        raw: dict[str, dict] = {}
        for name, info in self.mods.items():
            pk, bt = self._gained(name, info.module)
            raw[name] = {"pk": pk, "bt": bt}
        task_pk = {t.name: raw[t.modules[0].name]["pk"] for t in self.tasks}
        task_bt = {t.name: raw[t.modules[0].name]["bt"] for t in self.tasks}
        mstates = self._module_states(period_ns, raw, task_pk)
        task_t0 = {t: (period_ns / bt if bt else float("nan")) for t, bt in task_bt.items()}
        task_b0 = {t: (task_pk[t] / bt if bt else 0.0) for t, bt in task_bt.items()}
        fstates, total_pps = self._flow_states(period_ns, mstates, raw)
        log.info("*** CONTROL ROUND: %d..., cumulative flow rate: %.6g Mpps", self.round, total_pps / 1e6)
        inp = ControlInput(round=self.round, period_ns=float(period_ns), modules=mstates, flows=fstates,
                           max_trigger=DEFAULT_BURST, task_t0_ns=task_t0, task_b0=task_b0,
                           buffer_cost_ns=self.buffer_cost_ns or 0.0)
        decision = self.controller.control(inp)
        if decision is not None:
            self._apply(decision)
        dead_s = 0.0 if virtual else time.perf_counter() - w0
        row = self._row(period_ns, mstates, fstates, raw, task_pk, task_bt, task_t0, task_b0)
        row["sum_fpps"] = total_pps
        row["ctrlr_deadtime"] = dead_s
        self.rows.append(row)

    # -- measuring a period ---------------------------------------------------------------------
    def _module_states(self, period_ns: int, raw: dict, task_pk: dict) -> dict[str, ModuleState]:
        """Per controlled module, what the period measured, with its descendants' costs folded in."""
        mstates: dict[str, ModuleState] = {}
        for name, info in self.mods.items():
            if not info.controlled:
                continue
            buf = info.buffer
            pk, bt = raw[name]["pk"], raw[name]["bt"]
            R = pk / period_ns
            x = bt / period_ns
            b_v = pk / bt if bt else 0.0
            buf_pk, buf_bt = self._gained("buffer:" + name, buf)
            b_in = buf_pk / buf_bt if buf_bt else 0.0
            d = self.downstream[name]
            T0 = info.T0_ns + sum(self.mods[u].T0_ns for u in d["desc"])
            T1 = info.T1_ns + sum((raw[u]["pk"] / pk if pk else 1.0) * self.mods[u].T1_ns for u in d["desc"])
            q = int(buf.trigger) if hasattr(buf, "trigger") else 0
            tpk = task_pk[info.task.name]
            mstates[name] = ModuleState(
                name=name, T0_ns=T0, T1_ns=T1, q=q, x_per_ns=x, R_per_ns=R, b_v=b_v, b_in=b_in,
                r_v=pk / tpk if tpk else 0.0, task=info.task.name,
                merge_point=len(buf.feeders(0)) > 1, children=list(d["children"]),
            )
        return mstates

    def _flow_states(self, period_ns: int, mstates: dict[str, ModuleState], raw: dict) -> tuple[list[FlowState], float]:
        """Per flow, its delay percentile, rate and the model's estimate; and the total rate (pps)."""
        costs: dict[str, float] = {}        # per round: module -> batch cost; task -> turnaround
        turnarounds: dict[str, float] = {}
        delays = self._delays()
        fstates = []
        total_pps = 0.0
        for f in self.flows:
            meas = f.measure
            n = int(meas.flow_packets[f.row] - self.base_measure[id(meas)][0][f.row])
            delay = delays[f.name] if n else float("nan")
            pps = n * 1e9 / period_ns
            total_pps += pps
            ctl_path = [m.name for m in f.path if self.mods[m.name].controlled]
            fs = FlowState(name=f.name, path=ctl_path, delay_slo_ns=f.delay_slo_ns, delay_ns=delay, rate_pps=pps,
                           rate_slo_pps=f.rate_slo_pps)
            fs.estimate_ns = self._estimate(f, mstates, raw, costs, turnarounds)
            fstates.append(fs)
        return fstates, total_pps

    def _delays(self) -> dict[str, float]:
        """Every flow's delay percentile (ns), in one pass per (Measure, percentile)."""
        groups: dict[tuple[int, float], list] = {}
        for f in self.flows:
            groups.setdefault((id(f.measure), f.percentile), []).append(f)
        delays: dict[str, float] = {}
        for (_m, pct), fl in groups.items():
            meas = fl[0].measure
            rows = [f.row for f in fl]
            _pk0, base_rows, base_hist = self.base_measure[id(meas)]
            gained = meas.hist[rows] - base_hist[np.searchsorted(base_rows, rows)]
            for f, d in zip(fl, percentile_of_rows(gained, pct)):
                delays[f.name] = float(d)
        return delays

    def _estimate(self, f: Flow, mstates, raw, costs: dict, turnarounds: dict) -> float:
        """The model's delay estimate of a flow (reference §6, :func:`model.flow_estimate_ns`);
        ``costs`` and ``turnarounds`` cache each module's batch cost and each task's turnaround
        for the round (every flow of a task shares them)."""

        task = self.mods[f.path[0].name].task

        def cost(name):
            c = costs.get(name)
            if c is None:
                info = self.mods[name]
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

    # -- acting on the decision and keeping the round -------------------------------------------
    def _apply(self, decision: ControlDecision) -> None:
        for name, q in decision.triggers.items():
            buf = self.mods[name].buffer
            if hasattr(buf, "trigger") and int(q) != int(buf.trigger):
                buf.set("trigger", int(q))
        for fname, best in decision.infeasible.items():
            if fname not in self.infeasible:
                log.warning("flow %s: delay objective %.0f ns is infeasible; the best delay reachable is "
                            "about %.0f ns", fname, next(f.delay_slo_ns for f in self.flows if f.name == fname),
                            best)
                self.infeasible_rounds.setdefault(fname, []).append(self.round)
                self.infeasible_best_ns[fname] = float(best)
        for fname in set(self.infeasible) - set(decision.infeasible):
            log.info("flow %s: meets its objective again", fname)
        # the current verdict: a flow that meets its objective again is no longer listed
        self.infeasible = {k: float(v) for k, v in decision.infeasible.items()}

    def _row(self, period_ns: int, mstates: dict[str, ModuleState], fstates: list[FlowState], raw: dict,
             task_pk: dict, task_bt: dict, task_t0: dict, task_b0: dict) -> dict[str, Any]:
        """The round's row (columns: see :mod:`tailgate.batchy.output`), up to the totals."""
        row: dict[str, Any] = {"t": self.round}
        for name, ms in mstates.items():
            buf = self.mods[name].buffer
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
        for t in self.tasks:
            pk, bt = task_pk[t.name], task_bt[t.name]
            busy = sum(self.mods[m.name].T0_ns * (raw[m.name]["bt"]) + self.mods[m.name].T1_ns * raw[m.name]["pk"]
                       for m in t.modules)
            row[f"{t.name}:task_pps"] = pk * 1e9 / period_ns
            row[f"{t.name}:t_0"] = task_t0[t.name]
            row[f"{t.name}:t_0_estimate"] = busy / bt if bt else float("nan")
            row[f"{t.name}:b_0"] = task_b0[t.name]
            row[f"{t.name}:cyc_per_packet"] = (busy / pk * model.BYPASS_RATIO) if pk else float("nan")
        return row
