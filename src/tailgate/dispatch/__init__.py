"""Dispatch: typed request scheduling (Perséphone's DARC and its rivals), simulated and live.

Modules, in the order a request meets them:

* :mod:`~tailgate.dispatch.workloads` — request types, service-time distributions, named and
  YAML workloads; :mod:`~tailgate.dispatch.requests` — open-loop Poisson request streams;
* :mod:`~tailgate.dispatch.policy` — the policies (darc, cfcfs, dfcfs, steal, sjf, edf, ts)
  behind one interface; :mod:`~tailgate.dispatch.darc` — DARC's core reservation;
* :mod:`~tailgate.dispatch.sim` — the compiled discrete-event simulator;
  :mod:`~tailgate.dispatch.sweep` — load sweeps, CSV/JSON/plots; :mod:`~tailgate.dispatch.metrics`
  — latency, slowdown, goodput, saturation; :mod:`~tailgate.dispatch.simpy_model` — the SimPy
  baseline; :mod:`~tailgate.bench.sched` — their speed;
* :mod:`tailgate.dispatch.live` — the live server (dispatcher, workers, rings) and load client;
* :mod:`~tailgate.bench.sched_report` and :mod:`~tailgate.bench.sched_report_live` — ``docs/persephone.md``.

The command is ``tailgate sched`` (:mod:`tailgate.cli.sched`).
"""
