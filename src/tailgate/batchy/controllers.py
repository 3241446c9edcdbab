"""Batchy's controllers: they set every fractional buffer's trigger once per control round.

Manual
------
Pick one by name, in a script (``batchy.set_controller("projgrad")``) or on the command line
(``tailgate run examples/batchy/l2l3.py controller=onoff``). Names are case-insensitive; a
``TaskController``/``Controller`` suffix is ignored, as in Batchy.

=============  ====================================================================================
``null``       never buffer (every trigger 0): plain run-to-completion
``max``        always buffer to the largest trigger (32): most batching, objectives ignored
``fixedN``     every trigger N (``fix8`` also works), 1..1024
``onoff``      triggers in {0, 32}: push, recover (largest module delay first), pull when
               32·∂t/∂q fits the budget; no gradient step
``feasdir``    feasible directions, one module per round, round-robin: pull to b_in+4, push on
               full input batches, drop to 0 when a flow is 5 % over, else step toward lower cost
               within every flow's budget
``projgrad``   Batchy's one-step receding-horizon controller (below)
=============  ====================================================================================

**projgrad** (reference §7), each round, over the controlled modules of
:class:`~tailgate.batchy.state.ControlInput` with the model of :mod:`tailgate.batchy.model`:

1. *measure*: ``budget_f = D_f − delay_f`` per flow;
2. *push*: a buffered module whose input batches are already ≥ 0.7·32 goes to 0 (fixed; here only
   when its buffer saves little, below);
3. *recover*: per flow over its objective, walk its buffered modules by decreasing module delay
   ``t_v`` and cut ``q`` by ``⌈−budget/(∂t/∂q)⌉ + 1`` (to 0 below ``q_min = ⌊b_in⌋ + 4``),
   updating every flow through the module, until the budget is back; the flow is fixed;
4. *pull*: an unbuffered module with traffic, input batches below 0.7·32, on no fixed flow, is
   set to ``q_min`` when ``q_min·∂t/∂q`` is below the smallest budget of its flows (``PULLING``);
5. *gradient projection* (Rosen) over the other buffered modules: active rows are the tight
   delay constraints (delay ≥ 0.95·D, row ``∂t/∂q``), ``q ≥ q_min`` (only while some flow
   violates), ``q = 32``, and tight parent/child fill-rate rows ``q_u/R_u ≤ q_v/R_v``;
   ``d = −(I − Aᵀ(AAᵀ)⁺A)∇f``; with no increasing component the multipliers
   ``w = −(AAᵀ)⁺A∇f`` decide: all ≥ 0 is a **KKT point** (nothing changes), else the most
   negative row is dropped and the projection repeated (at most 3 times);
6. *step*: ``d`` normalised by its smallest non-zero component; per module, ``λ_v`` = the
   largest step that keeps each of *its* flows under 0.95·D and its fill-rate rows satisfied;
   ``q ← q + ⌊λ_v·d⌋ (+1 when increasing)``, clamped to ``[q_min, 32]``, then trimmed by one
   packet at a time while a flow would go above 0.95·D. The original used one λ for every module,
   bounded also by the box, so one module near 32 or one nearly tight flow held every other module
   to one packet per round (slow convergence), and its decreasing bound had the wrong sign, so a
   step could undershoot ``q_min``.

**Where tailgate departs from the original** (the measurements behind each are in
``docs/notes.md``, section *batchy: measurements behind the controllers*):

- *Chain absorption.* A controlled module that takes all of a controlled parent's traffic
  through one feeder (a chain: ACL → NAT → TTL → MAC → checksum) gets its input in the parent's
  batches already. The original buffered it too (pulled to ``b_in + 4``): with the child's
  trigger one above the parent's, a packet also waited for the parent's next batch. Here only
  the head of a chain is pulled (modules are visited upstream first), a buffered head's chain
  children are set to 0 (``ABSORBED``) and never pulled, and their costs count in the head's
  ``T0``/``T1``. The same holds through a merge point where every flow through a module reaches it from one controlled module
  at that module's rate (l3vrf: a next hop's TTL, past the shared port demux, to its flow's NF).
- *Noise-aware budgets* (:class:`DelayNoise`): each flow's readings are filtered across rounds
  with the model's predicted change, their round-to-round noise σ is measured, and the budget
  that every buffering rule reads (pull, tight rows, line search, trim) keeps 2σ of room.
  Recovery acts only when the *filtered* delay is over the objective itself, and cuts back to
  the objective; a flow inside its margin gives back one packet a round instead (``BACK OFF``).
  A deep cut hurts more than the flow it is for: on the wall clock it adds Python calls to every
  round of the task and lengthens every other flow's delay, which can set off their recoveries.

- *The task turnaround.* The reference's model moves a flow's delay only by the triggers on
  its own path. In a saturated task (its ingress queue backlogged: mean ingress batch ≥ 0.9·32)
  every wait is a number of task rounds, so a trigger that saves per-batch time anywhere in the
  task shortens every flow's delay. Here a change q → q' scales those flows by ``1 − S``,
  ``S = Σ_v R_v·T0_v·(1/q_v − 1/q'_v)`` (the share of the task's time saved), on top of the
  reference's own-path terms: in the tight rows (``∂d_f/∂q_v`` gains ``−d_f·R_v·T0_v/q_v²``
  for every module of the task), the line search, the trim, recovery's cut size, the slack
  bookkeeping and the noise filter's prediction. *Pull* first tries every candidate together
  (at most one new buffer per flow, the first on its path), which fits where no single pull does
  when many modules share the task (a 16-leaf tree), and otherwise goes one at a time.
- *Hold after a recovery to 0.* A module recovered to 0 is not pulled again for 2, 4, 8, ... (at
  most 32) rounds: a pull that the next round has to undo would otherwise repeat as soon as the
  budget is back.
- *At q_min inside the margin: unbuffer.* A flow inside its noise margin whose buffers are all
  at ``q_min`` already cannot back off by a packet; its largest-delay module goes to 0, as a
  recovery (and is held). Left there, the flow would sit between its margin and its objective,
  and every unlucky reading would be late.
- *A buffer's own cost.* On the wall clock a buffer that holds packets back costs Python time
  per arriving batch (:func:`tailgate.nf.fbuffer.hold_cost_ns`, measured at the first run,
  :attr:`ControlInput.buffer_cost_ns`); the model counts it in what a trigger saves, never
  pulls a module whose buffer could not pay for itself even at 32, and lets go of one already
  buffered. It is 0 on the virtual clock, where buffers are free, as in the reference's model.
- *Push only what saves little.* The reference pushes a buffer to 0 when its input batches
  reach 0.7·32 whatever the module costs; here only when what the buffer still saves,
  ``R_v·T0_v·(1/b_in − 1/q_v)``, is below 0.5 % of the task's time: a module with a large
  per-batch cost still saves much between nearly full batches and full ones.
- *No steps for nothing.* A gradient step that would save less than 0.5 % of the task's time
  (``STEP_GAIN_MIN``) is not taken: it is within tolerance of a KKT point, and taking it would
  move triggers round after round for nothing the rate shows.

**Infeasible objectives.** A flow that stays more than 5 % over its objective for two rounds
while nothing on its path is buffered cannot be helped by any trigger: the controller reports
it in :attr:`~tailgate.batchy.state.ControlDecision.infeasible` with the best delay it measured
that way, and the run loop logs it once by name (Batchy itself missed it silently).

Every change is logged at INFO with its reason, as in the seed's example output
(``module m: PULLING``, ``GRADIENT PROJECTION: setting: q[m]: 19 -> 32``,
``obtained a KKT point, doing nothing``).
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np

from tailgate.batchy import model
from tailgate.batchy.state import ControlDecision, ControlInput, FlowState
from tailgate.core.errors import ArgError
from tailgate.packet.pool import MAX_TRIGGER

log = logging.getLogger("tailgate.batchy")

MAX_PROJGRAD_ITERATIONS = 3
LAMBDA_MAX = 1e6
RATE_RATIO = 1.05           # a child "drains" its parent when R_child <= 1.05·R_parent
NOISE_Z = 2.0               # delay budgets keep this many standard deviations of measurement noise
NOISE_ALPHA = 0.5           # weight of the newest reading in the filtered delay
NOISE_GATE = 4.0            # a reading further than this many σ from the filtered delay is taken as it is
NOISE_VAR_ALPHA = 0.25      # weight of the newest round in the noise estimate (EWMA)
NOISE_MAX_STEP = 4          # packets of trigger change on a path beyond which a round says nothing of noise
NOISE_MARGIN_MAX = 0.25     # the margin never exceeds this share of the objective
STEP_GAIN_MIN = 0.005       # a gradient step that saves less CPU time than this share is not taken
SATURATED_B0 = 0.9          # a task whose ingress batches average this share of max_trigger is saturated
HOLD_MAX_ROUNDS = 32        # a module recovered to 0 is not pulled for 2, 4, 8, ... up to this many rounds


class Controller:
    """Base: a name, the per-round :meth:`control`, and the infeasibility bookkeeping."""

    name = "controller"

    def __init__(self) -> None:
        self._over_unbuffered: dict[str, int] = {}
        self._best: dict[str, float] = {}
        self.noise = DelayNoise()
        self._hold_until: dict[str, int] = {}     # module -> first round it may be pulled again
        self._flaps: dict[str, int] = {}

    def _held(self, rnd: int) -> set[str]:
        """Modules recovered to 0 recently: not pulled again until their hold ends. A pull that
        the next round has to undo (the model under-estimated the delay it adds) would otherwise
        be tried again as soon as the budget is back, and again: each repeat waits twice as long."""
        return {v for v, until in self._hold_until.items() if until > rnd}

    def _note_recoveries(self, rnd: int, q: dict[str, int], reasons: dict[str, str]) -> None:
        for v, why in reasons.items():
            if why.startswith("RECOVER") and q[v] == 0:
                k = self._flaps.get(v, 0) + 1
                self._flaps[v] = k
                self._hold_until[v] = rnd + 1 + min(2 ** k, HOLD_MAX_ROUNDS)

    def __repr__(self) -> str:
        return f"<controller {self.name}>"

    def control(self, inp: ControlInput) -> ControlDecision:
        raise NotImplementedError

    # -- shared pieces ----------------------------------------------------------------------------
    def _infeasible(self, inp: ControlInput, settled: bool = True) -> dict[str, float]:
        """Flows more than 5 % over their objective, with nothing on their path buffered, in two
        rounds in a row in which the controller changed nothing (``settled``): no trigger on the
        path is left to give up, and nothing the controller would do elsewhere (buffering other
        modules shortens the task's turnaround) is left to try. The best delay seen that way."""
        out = {}
        for f in inp.flows:
            if not f.delay_ns == f.delay_ns:      # no packet this period: no evidence
                continue
            unbuffered = all(inp.modules[v].q == 0 for v in f.path if v in inp.modules)
            if unbuffered and f.delay_ns > model.OVERDELAY_BOUND * f.delay_slo_ns:
                if not settled:
                    continue
                k = self._over_unbuffered.get(f.name, 0) + 1
                self._over_unbuffered[f.name] = k
                self._best[f.name] = min(self._best.get(f.name, math.inf), f.delay_ns)
                if k >= 2:
                    out[f.name] = self._best[f.name]
            else:
                self._over_unbuffered[f.name] = 0
                self._best.pop(f.name, None)
        return out

    def _log_errors(self, inp: ControlInput) -> None:
        by_task: dict[str, list[FlowState]] = {}
        for f in inp.flows:
            task = next((inp.modules[v].task for v in f.path if v in inp.modules), "-")
            by_task.setdefault(task, []).append(f)
        for task, flows in by_task.items():
            err = max(((f.delay_ns - f.delay_slo_ns) / f.delay_slo_ns for f in flows if f.delay_ns == f.delay_ns),
                      default=math.nan)
            dist = min((f.delay_slo_ns - f.delay_ns for f in flows if f.delay_ns == f.delay_ns), default=math.nan)
            log.info("CONTROL: %s: error=%.3f, dist=%.0f ns", task, err, dist)


class Fixed(Controller):
    """Every trigger the same: ``null`` (0), ``max`` (the largest), ``fixedN``."""

    def __init__(self, trigger: int | None, name: str) -> None:
        super().__init__()
        self.trigger = trigger          # None: the round's max_trigger
        self.name = name

    def control(self, inp: ControlInput) -> ControlDecision:
        q = inp.max_trigger if self.trigger is None else self.trigger
        trig = {v: q for v in inp.modules}
        reasons = {v: f"{self.name}: {m.q} -> {q}" for v, m in inp.modules.items() if m.q != q}
        for v, r in reasons.items():
            log.info("module %s: %s", v, r)
        return ControlDecision(trig, reasons, infeasible=self._infeasible(inp))


class DelayNoise:
    """Filters each flow's measured delay percentile across rounds and measures its noise.

    A percentile read over one control period is noisy (a few hundred packets per flow, in a few
    dozen batches whose fill times vary), and a controller that holds a flow at 0.95·D by the
    raw readings, as the original does, leaves it above 1.05·D now and then and cuts a trigger
    after every unlucky reading.

    Each round, per flow, the model's prediction of the change ``Σ ∂t/∂q·Δq`` (the triggers on
    its path since the last reading) carries the filtered delay forward, and the new reading is
    blended in: ``d̂ ← (1−α)(d̂ + Σ ∂t/∂q·Δq) + α·d`` with ``α = NOISE_ALPHA``, unless the reading
    is more than ``NOISE_GATE``·σ away from that prediction, or σ is not known yet: then the model
    or the traffic changed, not the luck, and ``d̂ = d``. Where the path's
    triggers moved by at most ``NOISE_MAX_STEP`` packets in all, the residual ``r = Δd − Σ
    ∂t/∂q·Δq`` between two readings (what the model does not explain) updates an EWMA of ``r²/2``,
    the variance σ² of one reading. The controller's budget is ``D − d̂ − NOISE_Z·σ`` (the margin
    at most ``NOISE_MARGIN_MAX·D``): every rule that buffers more (pull, the tight rows, the line
    search, the trim) keeps that much room; recovery reads ``D − d̂`` without the margin (see the
    manual: hysteresis and back-off), so a single unlucky reading cannot make it cut.
    Until a flow has two readings at nearly the same triggers, it has no margin and its readings
    are taken as they are, as in the original.
    """

    def __init__(self) -> None:
        self.prev: dict[str, tuple[float, float, dict[str, int]]] = {}   # flow -> (reading, d̂, triggers)
        self.var: dict[str, float] = {}

    def budgets(self, inp: ControlInput, q: dict[str, int], dtdq: dict[str, float],
                turnaround=None) -> dict[str, tuple[float, float]]:
        """Per flow with a reading: (filtered delay d̂, margin NOISE_Z·σ), both in ns.
        ``turnaround(flow, q_before)``, when given, is the factor by which the triggers' change
        since ``q_before`` has scaled the flow's task turnaround (1 where it does not apply)."""
        out = {}
        snapshot = dict(q)          # one copy per round, shared by every flow's state
        for f in inp.flows:
            if not f.delay_ns == f.delay_ns:        # no packet this period: keep the old state
                continue
            d = f.delay_ns
            dhat = d
            p = self.prev.get(f.name)
            if p is not None:
                d0, dhat0, q0 = p
                dq = {v: q[v] - q0.get(v, 0) for v in f.path if v in q}
                own = sum(dtdq[v] * x for v, x in dq.items() if x and math.isfinite(dtdq[v]))
                scale = turnaround(f.name, q0) if turnaround is not None else 1.0
                pred = scale * (dhat0 + own) - dhat0
                v0 = self.var.get(f.name)
                if v0 is not None and abs(d - dhat0 - pred) <= NOISE_GATE * math.sqrt(v0):
                    dhat = (1 - NOISE_ALPHA) * (dhat0 + pred) + NOISE_ALPHA * d
                if sum(abs(x) for x in dq.values()) <= NOISE_MAX_STEP and abs(scale - 1.0) <= 0.05:
                    s2 = (d - d0 - pred) ** 2 / 2
                    self.var[f.name] = s2 if v0 is None else (1 - NOISE_VAR_ALPHA) * v0 + NOISE_VAR_ALPHA * s2
            self.prev[f.name] = (d, dhat, snapshot)
            sigma = math.sqrt(self.var.get(f.name, 0.0))
            out[f.name] = (dhat, min(NOISE_Z * sigma, NOISE_MARGIN_MAX * f.delay_slo_ns))
        return out


class _Round:
    """One round's working state shared by onoff, feasdir and projgrad."""

    def __init__(self, inp: ControlInput, noise: "DelayNoise | None" = None, held: set[str] = frozenset()) -> None:
        self.inp = inp
        self.held = held
        self.Q = inp.max_trigger
        self.Tbuf = inp.buffer_cost_ns
        self.M = inp.modules
        self.q = {v: int(m.q) for v, m in self.M.items()}
        self.q0 = dict(self.q)
        self.on: dict[str, list[str]] = {v: [] for v in self.M}     # module -> the flows through it
        for f in inp.flows:
            for v in dict.fromkeys(f.path):
                if v in self.on:
                    self.on[v].append(f.name)
        self._find_chains(inp)
        self.T0, self.T1 = {}, {}
        for v in self.M:
            self._aggregate(v)
        self.dtdq = {v: model.delay_sensitivity(m.R_per_ns, self.T1[v]) for v, m in self.M.items()}
        self.qmin = {v: model.pull_target(m.b_in, self.Q) for v, m in self.M.items()}
        self.flows = {f.name: f for f in inp.flows}
        self._find_task_turnarounds(inp)
        self._flow_budgets(inp, noise)
        self.fixed_mod: set[str] = set()
        self.fixed_flow: set[str] = set()
        self.reasons: dict[str, str] = {}

    def _find_chains(self, inp: ControlInput) -> None:
        """The chain parent of each chain child (``chain_parent``) and its inverse (``chain_children``)."""
        # Chain children: a controlled child that takes (nearly) all of its controlled parent's
        # traffic through one feeder. While the parent is buffered the child's input arrives in
        # batches of the parent's trigger already; a buffer of its own only adds a fill wait
        # (with a trigger one above the parent's, a packet waits for the parent's next batch
        # too). So the child stays unbuffered and its costs count in the parent's aggregate.
        self.chain_parent: dict[str, str] = {}
        for u, mu in self.M.items():
            for c in mu.children:
                mc = self.M.get(c)
                if (mc is not None and not mc.merge_point and mu.R_per_ns > 0
                        and mc.R_per_ns * RATE_RATIO >= mu.R_per_ns):
                    self.chain_parent[c] = u
        # The same through a merge point: where every flow through c comes to it from u (the
        # nearest controlled module before it on each of them that is not shared with more
        # traffic: a shared demux in between passes u's batch on whole) and c takes nearly all of
        # u's traffic, c's packets are u's, in u's batches (l3vrf: a next hop's chain, past the
        # shared port demux, to its flow's NF; buffered too, the NF would wait for a second batch
        # of the chain's).
        feeder: dict[str, set[str]] = {v: set() for v in self.M}    # c -> its u on each flow ("" none)
        for f in inp.flows:
            ctl = [v for v in dict.fromkeys(f.path) if v in self.M]
            for i, c in enumerate(ctl):
                Rc = self.M[c].R_per_ns
                u = ""
                for w in reversed(ctl[:i]):
                    Rw = self.M[w].R_per_ns
                    if Rw > Rc * RATE_RATIO:            # shared with other flows: look further up
                        continue
                    if Rw * RATE_RATIO >= Rc:
                        u = w
                    break
                feeder[c].add(u)
        for c, us in feeder.items():
            if c in self.chain_parent or len(us) != 1 or "" in us:
                continue
            u = next(iter(us))
            if self.M[u].R_per_ns > 0 and set(self.on[c]) <= set(self.on[u]) and not self._upstream_of(c, u):
                self.chain_parent[c] = u
        self.chain_children: dict[str, list[str]] = {}
        for c, u in self.chain_parent.items():
            self.chain_children.setdefault(u, []).append(c)

    def _find_task_turnarounds(self, inp: ControlInput) -> None:
        """Each flow's task, which tasks are saturated, each task's chain heads and flows."""
        # The task turnaround. In a saturated task (its ingress queue backlogged) every wait is a
        # number of task rounds, so every flow's delay scales with the turnaround, and a trigger
        # that saves per-batch time anywhere in the task shortens every flow of it. The
        # reference's model leaves this out (a trigger moves only its own flows' delays); here a
        # change of triggers q -> q' scales a saturated task's flows by 1 − S, where
        # S = Σ_v R_v·T0_v·(1/q_v − 1/q'_v) is the share of the task's time it saves (b_in stands
        # for q of an unbuffered module; chain children count in their head's T0).
        self.task_of = {f.name: next((self.M[v].task for v in f.path if v in self.M), None) for f in inp.flows}
        self.sat = {t: 1.0 if b0 >= SATURATED_B0 * self.Q else 0.0 for t, b0 in inp.task_b0.items()}
        self.heads: dict[str | None, list[str]] = {}
        for v, m in self.M.items():
            if v not in self.chain_parent:
                self.heads.setdefault(m.task, []).append(v)
        self.task_flows: dict[str | None, list[str]] = {}
        for fname, t in self.task_of.items():
            self.task_flows.setdefault(t, []).append(fname)

    def _flow_budgets(self, inp: ControlInput, noise: "DelayNoise | None") -> None:
        """Each flow's slack, noise margin and filtered delay (``slack``, ``margin``, ``dhat``)."""
        # slack: D − d̂, what recovery acts on; budget(f) = slack less the noise margin, what every
        # rule that buffers more reads (hysteresis: a flow held at 0.95·D − margin is cut only
        # when its filtered delay is over D itself, not on every unlucky reading)
        self.slack = {f.name: (f.delay_slo_ns - f.delay_ns) if f.delay_ns == f.delay_ns else math.inf
                      for f in inp.flows}
        self.margin = dict.fromkeys(self.slack, 0.0)
        if noise is not None:
            for fname, (dhat, margin) in noise.budgets(inp, self.q, self.dtdq, self._turnaround_since).items():
                self.slack[fname] = self.flows[fname].delay_slo_ns - dhat
                self.margin[fname] = margin
        # the filtered delay each flow's turnaround coupling scales
        self.dhat = {f: (self.flows[f].delay_slo_ns - sl) if math.isfinite(sl) else 0.0 for f, sl in self.slack.items()}

    def _upstream_of(self, c: str, u: str) -> bool:
        """``c`` is already a chain ancestor of ``u`` (no cycles)."""
        while u is not None:
            if u == c:
                return True
            u = self.chain_parent.get(u)
        return False

    def _aggregate(self, v: str) -> tuple[float, float]:
        """(T0, T1) of ``v`` with its chain children's (recursively), per ``v``'s packet."""
        if v not in self.T0:
            m = self.M[v]
            t0, t1 = m.T0_ns, m.T1_ns
            for c in self.chain_children.get(v, ()):
                c0, c1 = self._aggregate(c)
                t0 += c0
                t1 += c1 * min(self.M[c].R_per_ns / m.R_per_ns, 1.0)
            self.T0[v], self.T1[v] = t0, t1
        return self.T0[v], self.T1[v]

    # -- the task turnaround ---------------------------------------------------------------------
    def eff(self, v: str, q: int) -> float:
        """The batch ``v`` runs on at trigger ``q`` (its input batch when unbuffered)."""
        return float(q) if q > 0 else max(self.M[v].b_in, 1.0)

    def share_saved(self, task, q_to: dict[str, int], q_from: dict[str, int] | None = None) -> float:
        """S: the share of ``task``'s time that moving its triggers from ``q_from`` (this round's,
        by default) to ``q_to`` saves, at this round's rates; 0 for a task that is not saturated."""
        if not self.sat.get(task):
            return 0.0
        q_from = self.q if q_from is None else q_from
        S = 0.0
        for v in self.heads.get(task, ()):
            a, b = q_from.get(v, 0), q_to.get(v, 0)
            if a != b:
                S += self.saving(v, a, b)
        return S

    def _turnaround_since(self, fname: str, q_before: dict[str, int]) -> float:
        """The factor by which the change from ``q_before`` to this round's triggers scaled the
        turnaround of ``fname``'s task, at this round's rates: 1/(1 + S)."""
        S = self.share_saved(self.task_of.get(fname), q_before, self.q)
        return 1.0 / (1.0 + S) if S > -0.5 else 1.0

    def coupling(self, fname: str, v: str) -> float:
        """∂delay_f/∂q_v through the turnaround (ns per packet, ≤ 0): −d̂_f·R_v·T0_v/q_v²."""
        m = self.M[v]
        if v in self.chain_parent or m.task != self.task_of.get(fname) or not self.sat.get(m.task):
            return 0.0
        q = self.eff(v, self.q[v])
        return -self.dhat[fname] * m.R_per_ns * self.T0[v] / (q * q)

    def predict(self, fname: str, q_to: dict[str, int], S: dict | None = None) -> float:
        """The change of ``fname``'s delay (ns) if this round's triggers became ``q_to``: its own
        modules' fill and per-packet terms, and its task's turnaround scaled by 1 − S. ``S``, when
        given, caches each task's share for this ``q_to`` (every flow of a task shares it)."""
        own = sum(self.dtdq[v] * (q_to[v] - self.q[v]) for v in self.flows[fname].path
                  if v in q_to and q_to[v] != self.q[v] and math.isfinite(self.dtdq[v]))
        task = self.task_of.get(fname)
        if S is None:
            S = {}
        if task not in S:
            S[task] = self.share_saved(task, q_to)
        S = S[task]
        return (1.0 - S) * (self.dhat[fname] + own) - self.dhat[fname]

    def budget(self, fname: str) -> float:
        """What flow ``fname`` has left for more buffering: its slack less its noise margin (ns)."""
        return self.slack[fname] - self.margin[fname]

    def tv(self, v: str) -> float:
        m = self.M[v]
        return model.module_delay_ns(m.x_per_ns, self.T0[v], self.T1[v], self.q[v])

    def absorbed(self, v: str) -> bool:
        """``v`` is a chain child of a buffered module (directly or through unbuffered links)."""
        u = self.chain_parent.get(v)
        while u is not None:
            if self.q[u] > 0:
                return True
            u = self.chain_parent.get(u)
        return False

    def absorb(self) -> None:
        """Unbuffer the chain children of buffered modules, and keep them from being pulled."""
        for v in self.M:
            if self.absorbed(v):
                if self.q[v] > 0:
                    self.set(v, 0, "ABSORBED (its input already comes in its chain parent's batches)", couple=False)
                    log.info("module %s: ABSORBED into the buffer of %s: q: %d -> 0", v, self.chain_parent[v],
                             self.q0[v])
                self.fixed_mod.add(v)

    def upstream_first(self) -> list[str]:
        """The controlled modules, each after every module before it on some flow's path."""
        rank = {v: 0 for v in self.M}
        for f in self.flows.values():
            for i, v in enumerate(f.path):
                if v in rank:
                    rank[v] = max(rank[v], i)
        return sorted(self.M, key=lambda v: rank[v])

    def set(self, v: str, new: int, why: str, couple: bool = True) -> None:
        old = self.q[v]
        new = int(min(max(new, 0), self.Q))
        if new == old:
            return
        d = self.dtdq[v]
        if math.isfinite(d):
            # (the whole q, not q − b_in: the 95th percentile waits longer than the mean fill)
            for f in self.on[v]:
                self.slack[f] -= (new - old) * d
        m = self.M[v]
        if couple and self.sat.get(m.task) and v not in self.chain_parent:
            S = self.saving(v, old, new)
            for f in self.task_flows.get(m.task, ()):
                self.slack[f] += S * self.dhat[f]
        self.q[v] = new
        self.reasons[v] = f"{why}: {self.q0[v]} -> {new}"

    def saving(self, v: str, q_from: int, q_to: int) -> float:
        """The share of the task's time that moving ``v``'s trigger from ``q_from`` to ``q_to``
        saves (negative when it costs): ``R_v·T0_v·(1/b − 1/b')`` over the batches it runs on
        (b_in when unbuffered), less the buffer's own work on each arriving batch while it holds
        packets back (``R_v/b_in·T_buf``, :attr:`ControlInput.buffer_cost_ns`: 0 on the virtual
        clock, where a buffer is free, measured on the wall clock)."""
        m = self.M[v]
        s = m.R_per_ns * self.T0[v] * (1.0 / self.eff(v, q_from) - 1.0 / self.eff(v, q_to))
        if self.Tbuf and (q_from > 0) != (q_to > 0):
            cost = m.R_per_ns / max(m.b_in, 1.0) * self.Tbuf
            s += cost if q_from > 0 else -cost
        return s

    def push(self) -> None:
        for v, m in self.M.items():
            # The reference pushes at b_in >= 0.7·32 whatever the module costs; a module with a
            # large per-batch cost still saves much between batches of 23 and of 32, so it is
            # pushed only when what its buffer saves is below STEP_GAIN_MIN.
            # (and, where a buffer costs time of its own, one that would lose time even at the
            # largest trigger, whatever its input: below 0, not below the pull's 0.5 %, so that a
            # round of little traffic does not push a buffer that the next round pulls again)
            if self.q[v] > 0 and ((m.b_in >= model.PUSH_RATIO * self.Q and self.saving(v, 0, self.q[v]) < STEP_GAIN_MIN)
                                  or (self.Tbuf and self.saving(v, 0, self.Q) < 0.0)):
                self.set(v, 0, "PUSH (input batches already full)")
                log.info("module %s: PUSHING: b_in=%.1f, q: %d -> 0", v, m.b_in, self.q0[v])
                self.fixed_mod.add(v)

    def recover(self, onoff: bool = False) -> None:
        for fname in sorted(self.slack, key=self.budget):
            if self.slack[fname] >= 0:
                if self.budget(fname) < 0 and not onoff:
                    self._back_off(fname)
                continue
            self.fixed_flow.add(fname)
            path = [v for v in self.flows[fname].path if v in self.M and self.q[v] > 0]
            for v in sorted(path, key=self.tv, reverse=True):
                if self.slack[fname] >= 0:
                    break
                over = -self.slack[fname]
                if onoff:
                    new = 0
                else:
                    d = self.dtdq[v]
                    if math.isfinite(d):
                        # a cut also lengthens the turnaround, which takes back part of what it gives
                        d = max(d + self.coupling(fname, v), 0.25 * d)
                    cut = (math.ceil(over / d) + 1) if math.isfinite(d) and d > 0 else self.q[v]
                    new = self.q[v] - cut
                    if new < self.qmin[v]:
                        new = 0
                self.set(v, new, f"RECOVER (flow {fname} {over:.0f} ns short of its budget)")
                log.info("module %s: RECOVERING flow %s (%.0f ns short of its budget): q: %d -> %d", v, fname, over,
                         self.q0[v], self.q[v])
                self.fixed_mod.add(v)

    def _back_off(self, fname: str) -> None:
        """A flow under its objective but inside its noise margin gives back one packet a round
        (the largest module delay on its path first, never below q_min): it drifts out of the
        margin without the deep cut of a recovery, which on the wall clock lengthens every other
        flow's rounds (more calls) and can set off theirs."""
        path = [v for v in self.flows[fname].path if v in self.M and self.q[v] > 0 and v not in self.fixed_mod]
        if not path:
            return
        above = [v for v in path if self.q[v] > self.qmin[v]]
        if above:
            v = max(above, key=self.tv)
            self.set(v, self.q[v] - 1, f"BACK OFF (flow {fname} inside its noise margin)")
            log.info("module %s: BACKING OFF for flow %s (inside its noise margin): q: %d -> %d", v, fname,
                     self.q0[v], self.q[v])
        else:
            # Every buffer on the path is at q_min already: one packet less is no buffer at all.
            # Left there, the flow sits between its margin and its objective and every unlucky
            # reading is late; as a recovery, the module is then held before it is pulled again.
            v = max(path, key=self.tv)
            self.set(v, 0, f"RECOVER (flow {fname} inside its noise margin at q_min)")
            log.info("module %s: RECOVERING flow %s (inside its noise margin at q_min): q: %d -> 0", v, fname,
                     self.q0[v])
        self.fixed_mod.add(v)

    def pullable(self, v: str) -> bool:
        m = self.M[v]
        return (self.q[v] == 0 and v not in self.fixed_mod and v not in self.held and m.R_per_ns > 0
                and (not self.Tbuf or self.saving(v, 0, self.Q) >= STEP_GAIN_MIN)
                and m.b_in < model.PUSH_RATIO * self.Q and not any(f in self.fixed_flow for f in self.on[v]))

    def min_budget(self, v: str) -> float:
        return min((self.budget(f) for f in self.on[v]), default=math.inf)

    def decision(self, ctl: Controller, kkt: bool = False) -> ControlDecision:
        ctl._note_recoveries(self.inp.round, self.q, self.reasons)
        infeasible = ctl._infeasible(self.inp, settled=not self.reasons)
        return ControlDecision(dict(self.q), dict(self.reasons), kkt=kkt, infeasible=infeasible)


class OnOff(Controller):
    """Triggers in {0, max}: push, recover, pull; no gradient step."""

    name = "onoff"

    def control(self, inp: ControlInput) -> ControlDecision:
        self._log_errors(inp)
        r = _Round(inp, self.noise, self._held(inp.round))
        r.push()
        r.recover(onoff=True)
        r.absorb()
        for v in r.upstream_first():
            if r.pullable(v) and not r.absorbed(v) and r.Q * r.dtdq[v] < r.min_budget(v):
                log.info("module %s: PULLING: q: 0 -> %d", v, r.Q)
                r.set(v, r.Q, "PULL")
        r.absorb()
        return r.decision(self)


class FeasDir(Controller):
    """Method of feasible directions on one module per round, round-robin."""

    name = "feasdir"

    def __init__(self) -> None:
        super().__init__()
        self._next = 0

    def control(self, inp: ControlInput) -> ControlDecision:
        self._log_errors(inp)
        r = _Round(inp, self.noise, self._held(inp.round))
        names = sorted(r.M)
        if names:
            v = names[self._next % len(names)]
            self._next += 1
            m, q, d = r.M[v], r.q[v], r.dtdq[v]
            budget = r.min_budget(v)
            over = any(r.flows[f].delay_ns > model.OVERDELAY_BOUND * r.flows[f].delay_slo_ns for f in r.on[v]
                       if r.flows[f].delay_ns == r.flows[f].delay_ns)
            if q > 0 and m.b_in >= model.PUSH_RATIO * r.Q:
                r.set(v, 0, "PUSH (input batches already full)")
            elif r.absorbed(v):       # its chain parent batches for it: never buffer it too
                if q > 0:
                    r.set(v, 0, "ABSORBED (its input already comes in its chain parent's batches)")
            elif q == 0:
                target = r.qmin[v]
                if m.R_per_ns > 0 and m.b_in < model.PUSH_RATIO * r.Q and target * d < budget:
                    log.info("module %s: PULLING: q: 0 -> %d", v, target)
                    r.set(v, target, "PULL")
            elif over and q <= r.qmin[v]:
                r.set(v, 0, "OVERDELAY at q_min")
            elif math.isfinite(d) and d > 0:
                if budget < 0:
                    step = math.floor(budget / d) - 1
                else:
                    step = min(r.Q - q, math.floor((budget - model.TOLERANCE * self._slo(r, v)) / d))
                new = max(q + step, r.qmin[v] if step < 0 else 0)
                if new != q:
                    log.info("FEASIBLE DIRECTION: setting: q[%s]: %d -> %d", v, q, new)
                    r.set(v, new, "FEASDIR step")
        return r.decision(self)

    @staticmethod
    def _slo(r: _Round, v: str) -> float:
        return min((r.flows[f].delay_slo_ns for f in r.on[v]), default=0.0)


class ProjGrad(Controller):
    """Batchy's projected-gradient controller (see the manual)."""

    name = "projgrad"

    def control(self, inp: ControlInput) -> ControlDecision:
        self._log_errors(inp)
        r = _Round(inp, self.noise, self._held(inp.round))
        r.push()
        r.recover()
        r.absorb()
        self._pull(r)
        r.absorb()
        V = [v for v in r.M if r.q[v] > 0 and v not in r.fixed_mod]
        kkt = False
        if V:
            kkt = self._project_and_step(r, V)
        elif not r.reasons:
            kkt = True
        if kkt and not r.reasons:
            log.info("obtained a KKT point, doing nothing")
        return r.decision(self, kkt=kkt and not r.reasons)

    @staticmethod
    def _pull(r: _Round) -> None:
        """Pull every candidate to q_min at once when that fits every flow's budget (in a
        saturated task buffering all of them shortens the turnaround that every flow waits in:
        simpletree's 16 leaves fit together where none fits alone), else one at a time."""
        cands: list[str] = []
        for v in r.upstream_first():
            if r.pullable(v) and not r.absorbed(v):
                u = r.chain_parent.get(v)
                while u is not None and u not in cands:
                    u = r.chain_parent.get(u)
                if u is None:          # not below a candidate (it would be absorbed)
                    cands.append(v)
        if not cands:
            return
        # Together: at most one new buffer per flow, the first on its path. A second buffer
        # behind a first one receives the first one's batches, which the model cannot know before
        # they exist (a per-flow NF pulled with its next hop's TTL would wait for a second batch
        # of the TTL's); it is considered next round, with its input batches measured.
        joint: list[str] = []
        taken: set[str] = set()
        for v in cands:
            if not any(f in taken for f in r.on[v]):
                joint.append(v)
                taken.update(r.on[v])
        if len(joint) > 1:
            q_to = dict(r.q)
            q_to.update({v: r.qmin[v] for v in joint})
            S: dict = {}
            if all(r.budget(f) - r.predict(f, q_to, S) > 0 for f in taken):
                for v in joint:
                    log.info("module %s: PULLING: q: 0 -> %d (with %d others, within every budget)", v, r.qmin[v],
                             len(joint) - 1)
                    r.set(v, r.qmin[v], "PULL")
                    r.fixed_mod.add(v)
                return
        for v in cands:
            if r.absorbed(v) or not r.pullable(v):
                continue
            q_to = dict(r.q)
            q_to[v] = r.qmin[v]
            S = {}
            extra = {f: r.predict(f, q_to, S) for f in r.on[v]}
            if all(r.budget(f) - x > 0 for f, x in extra.items()):
                log.info("module %s: PULLING: q: 0 -> %d (delay +%.0f ns within budget %.0f ns)", v, r.qmin[v],
                         max(extra.values(), default=0.0), r.min_budget(v))
                r.set(v, r.qmin[v], "PULL")
                r.fixed_mod.add(v)

    # -- Rosen's gradient projection --------------------------------------------------------------
    def _rows(self, r: _Round, V: list[str], drow: dict) -> tuple[list[np.ndarray], list[str]]:
        pos = {v: i for i, v in enumerate(V)}
        n = len(V)
        rows, kinds = [], []
        # q >= q_min rows while a flow violates: for the modules on such a flow's path only (the
        # reference adds one for every module, and drops at most 3 rows a round, so with an
        # infeasible flow elsewhere every other module stepped up one packet a round)
        on_violating = {v for f in r.slack if r.budget(f) < 0 for v in r.flows[f].path}
        for fname, f in r.flows.items():
            on = [v for v in f.path if v in pos]
            if not on or not math.isfinite(r.budget(fname)):
                continue
            if r.budget(fname) <= model.TOLERANCE * f.delay_slo_ns:      # delay >= 0.95·D: tight
                rows.append(self._delay_row(r, fname, V, pos, drow))
                kinds.append(f"delay {fname}")
        for v in V:
            if v in on_violating and r.q[v] <= r.qmin[v]:
                row = np.zeros(n)
                row[pos[v]] = -1.0
                rows.append(row)
                kinds.append(f"qmin {v}")
            if r.q[v] >= r.Q:
                row = np.zeros(n)
                row[pos[v]] = 1.0
                rows.append(row)
                kinds.append(f"qmax {v}")
        for u, c, g in self._ratio_pairs(r, V):
            if g >= -model.TOLERANCE * r.q[u] / r.M[u].R_per_ns:
                row = np.zeros(n)
                row[pos[u]] = 1.0 / r.M[u].R_per_ns
                row[pos[c]] = -1.0 / r.M[c].R_per_ns
                rows.append(row)
                kinds.append(f"ratio {u}/{c}")
        return rows, kinds

    @staticmethod
    def _delay_row(r: _Round, fname: str, V: list[str], pos: dict[str, int], drow: dict) -> np.ndarray:
        """∂delay_f/∂q over ``V``: its own modules' ∂t/∂q, and every module's turnaround term
        (kept in ``drow``: the tight rows and the line search read the same ones)."""
        if fname in drow:
            return drow[fname]
        row = np.array([r.coupling(fname, v) for v in V]) if r.sat.get(r.task_of.get(fname)) else np.zeros(len(V))
        for v in r.flows[fname].path:
            # a module without traffic this period has no delay to trade (its 1/R is inf)
            if v in pos and math.isfinite(r.dtdq[v]):
                row[pos[v]] += r.dtdq[v]
        drow[fname] = row
        return row

    @staticmethod
    def _ratio_pairs(r: _Round, V: list[str]):
        """(parent, child, q_u/R_u − q_c/R_c) for the fill-rate constraints among ``V``."""
        inV = set(V)
        for u in V:
            mu = r.M[u]
            for c in mu.children:
                mc = r.M.get(c)
                if c in inV and mc is not None and not mc.merge_point and mu.R_per_ns > 0 and mc.R_per_ns > 0 \
                        and mc.R_per_ns <= RATE_RATIO * mu.R_per_ns:
                    yield u, c, r.q[u] / mu.R_per_ns - r.q[c] / mc.R_per_ns

    def _project_and_step(self, r: _Round, V: list[str]) -> bool:
        """Returns True at a KKT point (nothing to do)."""
        grad = np.array([model.cost_gradient(r.M[v].x_per_ns, r.T0[v], r.q[v]) for v in V])
        if not np.any(grad):
            return True
        drow: dict[str, np.ndarray] = {}
        d = self._direction(r, V, grad, drow)
        if d is None:
            return True
        new = self._step(r, V, d, drow)
        self._trim(r, new)
        # A step whose predicted saving is below STEP_GAIN_MIN of the task's time is within the
        # tolerance of a KKT point: taking it moves triggers round after round for nothing the
        # rate shows.
        gain = sum(r.saving(v, r.q[v], new[v]) for v in V if new[v] > 0 and new[v] != r.q[v])
        if gain < STEP_GAIN_MIN and all(new[v] >= r.q[v] for v in V):
            log.info("GRADIENT PROJECTION: step saves %.2f %% of the task's time, below %.1f %%: holding", 100 * gain,
                     100 * STEP_GAIN_MIN)
            return True
        changed = False
        log.info("GRADIENT PROJECTION: step saves %.2f %% of the task's time", 100 * gain)
        for v in V:
            if new[v] != r.q[v]:
                log.info("GRADIENT PROJECTION: setting: q[%s]: %d -> %d", v, r.q[v], new[v])
                r.set(v, new[v], "GRADIENT PROJECTION")
                changed = True
        return not changed

    def _direction(self, r: _Round, V: list[str], grad: np.ndarray, drow: dict) -> np.ndarray | None:
        """The projected descent direction over ``V``, or None at a KKT point (Rosen: project
        onto the active rows; with no increasing component, drop the row with the most negative
        multiplier and project again, at most MAX_PROJGRAD_ITERATIONS times)."""
        rows, kinds = self._rows(r, V, drow)
        n = len(V)
        d = -grad
        for _ in range(MAX_PROJGRAD_ITERATIONS):
            if rows:
                A = np.array(rows)
                G = np.linalg.pinv(A @ A.T)
                d = -(grad - A.T @ (G @ (A @ grad)))
            else:
                d = -grad
            scale = np.max(np.abs(d)) if n else 0.0
            if scale > 0 and np.any(d > 1e-9 * scale) and np.max(np.abs(grad)) * 1e-9 < scale:
                break
            if not rows:
                return None
            w = -(G @ (A @ grad))
            if np.all(w >= -1e-12 * max(1.0, np.max(np.abs(w)))):
                return None
            k = int(np.argmin(w))
            log.debug("projgrad: dropping constraint %s (multiplier %.3g)", kinds[k], w[k])
            rows.pop(k)
            kinds.pop(k)
        else:
            return None
        return d

    def _step(self, r: _Round, V: list[str], d: np.ndarray, drow: dict) -> dict[str, int]:
        """The new trigger of every module of ``V`` one step along ``d``: normalised, a line
        search per module, rounded and clamped to the box."""
        nz = np.abs(d) > 1e-9 * np.max(np.abs(d))
        d = np.where(nz, d, 0.0) / np.min(np.abs(d[nz]))
        pos = {v: i for i, v in enumerate(V)}
        # Line search. λ is per module: the smallest of the bounds of the flows it is on (and of
        # the fill-rate rows it is in), so that one nearly tight flow elsewhere does not hold
        # every module to a one-packet step per round (with one λ for all, as in the original,
        # the modules of slack flows crept up by a packet a round). A module that decreases
        # takes the smallest λ of all (it decreases least), and the trim puts right any flow
        # that the mix would still push above 0.95·D. The box [q_min, 32] is a clamp per
        # module (the projection onto the box), not a bound on λ.
        lam_v = {v: LAMBDA_MAX for v in V}
        for fname, f in r.flows.items():
            on = [v for v in f.path if v in pos]
            if not on:
                continue
            dd = float(self._delay_row(r, fname, V, pos, drow) @ d)
            if dd > 0 and math.isfinite(r.budget(fname)):
                slack = r.budget(fname) - model.TOLERANCE * f.delay_slo_ns
                for v in on:
                    lam_v[v] = min(lam_v[v], max(slack, 0.0) / dd)
        for u, c, g in self._ratio_pairs(r, V):
            rate = d[pos[u]] / r.M[u].R_per_ns - d[pos[c]] / r.M[c].R_per_ns
            if rate > 0:
                for v in (u, c):
                    lam_v[v] = min(lam_v[v], max(-g, 0.0) / rate)
        lam_all = min(lam_v.values())
        new = {}
        for v in V:
            step = d[pos[v]] * (lam_v[v] if d[pos[v]] > 0 else lam_all)
            if d[pos[v]] > 0:
                nq = min(r.q[v] + math.floor(step) + 1, r.Q)
            elif d[pos[v]] < 0:
                # never below q_min in one step (the original's line search had this bound's sign
                # wrong, so it never bound)
                nq = max(r.q[v] + math.floor(step), min(r.qmin[v], r.q[v]))
            else:
                nq = r.q[v]
            new[v] = int(min(max(nq, 0), r.Q))
        return new

    @staticmethod
    def _trim(r: _Round, new: dict[str, int]) -> None:
        """Trim the increases in ``new`` one packet a pass, on the path of every flow the step
        would take above 0.95·D by the model (its own modules and its task's turnaround, see
        :meth:`_Round.predict`)."""
        for _ in range(r.Q + 1):
            q_to = dict(r.q)
            q_to.update(new)
            trimmed = False
            S = {}
            for fname, f in r.flows.items():
                if not math.isfinite(r.budget(fname)) or not any(v in new for v in f.path):
                    continue
                extra = r.predict(fname, q_to, S)
                if extra > 0 and r.budget(fname) - extra < model.TOLERANCE * f.delay_slo_ns:
                    for v in f.path:
                        if v in new and new[v] > r.q[v] and new[v] == q_to[v]:
                            new[v] -= 1
                            trimmed = True
            if not trimmed:
                break


_NAMES = f"null, max, fixedN (N = 1..{MAX_TRIGGER}, also fixN), onoff, feasdir, projgrad"


def resolve_controller(name: str) -> Controller:
    """A new controller by name (case-insensitive, a TaskController/Controller suffix ignored)."""
    if not isinstance(name, str) or not name.strip():
        raise ArgError(f"controller: give a name ({_NAMES}), got {name!r}")
    key = name.strip().lower()
    for suffix in ("taskcontroller", "controller"):
        if key.endswith(suffix) and key != suffix:
            key = key[: -len(suffix)]
    key = {"projgradient": "projgrad", "feasibledirection": "feasdir", "feasdirection": "feasdir"}.get(key, key)
    if key == "null":
        return Fixed(0, "null")
    if key == "max":
        return Fixed(None, "max")
    m = re.fullmatch(r"fix(?:ed)?(\d+)", key)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= MAX_TRIGGER:   # what a buffer accepts; the others stop at ControlInput.max_trigger
            raise ArgError(f"controller {name!r}: the fixed trigger must be 1..{MAX_TRIGGER}, got {n}")
        return Fixed(n, f"fixed{n}")
    if key == "onoff":
        return OnOff()
    if key == "feasdir":
        return FeasDir()
    if key == "projgrad":
        return ProjGrad()
    raise ArgError(f"unknown controller {name!r}: choose {_NAMES}")
