"""Every benchmark and reproduction report, each against a baseline measured in the same run.

* :mod:`~tailgate.bench.packet` — parsing and the L2L3 pipeline against dpkt and scapy;
* :mod:`~tailgate.bench.sched` — the request-scheduling simulator against a SimPy model;
* :mod:`~tailgate.bench.live` — the live server's zero-work dispatch rate;
* :mod:`~tailgate.bench.faas` — the FaaS simulator against a per-invocation event loop;
* :mod:`~tailgate.bench.markdown` — several runs of those four as one dated file (``docs/bench.md``);
* :mod:`~tailgate.bench.batchy_report` — Batchy's reproduction (``docs/batchy.md``);
* :mod:`~tailgate.bench.sched_report` and :mod:`~tailgate.bench.sched_report_live` — Perséphone's
  reproduction (``docs/persephone.md``);
* :mod:`~tailgate.bench.faas_report` — FaaSBatch's reproduction (``docs/faasbatch.md``).

Reports run whole pipelines and servers, so they sit above the seed packages, beside ``run/``.
"""
