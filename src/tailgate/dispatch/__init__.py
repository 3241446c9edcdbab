"""Dispatch: typed request scheduling (Perséphone's DARC and its rivals), simulated and live.

Modules, in the order a request meets them:

* :mod:`~tailgate.dispatch.workloads` — request types, service-time distributions, named and
  YAML workloads; :mod:`~tailgate.dispatch.requests` — open-loop Poisson request streams;
* :mod:`~tailgate.dispatch.policy` — the policies (darc, cfcfs, dfcfs, steal, sjf, edf, ts)
  behind one interface; :mod:`~tailgate.dispatch.darc` — DARC's core reservation;
* :mod:`~tailgate.dispatch.sim` — the compiled discrete-event simulator;
  :mod:`~tailgate.dispatch.sweep` — load sweeps, CSV/JSON/plots; :mod:`~tailgate.dispatch.metrics`
  — latency, slowdown, goodput, saturation; :mod:`~tailgate.dispatch.simpy_model` — the SimPy
  baseline; :mod:`~tailgate.dispatch.bench` — their speed;
* :mod:`~tailgate.dispatch.server`, :mod:`~tailgate.dispatch.loadgen`,
  :mod:`~tailgate.dispatch.wire`, :mod:`~tailgate.dispatch.ring` — the live server and client;
* :mod:`~tailgate.dispatch.report` and :mod:`~tailgate.dispatch.live_report` — ``docs/persephone.md``.

The command is ``tailgate sched`` (:mod:`tailgate.cli_sched`).
"""
