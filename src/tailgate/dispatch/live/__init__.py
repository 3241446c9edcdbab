"""The live request path: a UDP server (one dispatcher process, worker processes, shared-memory
rings between them) and an open-loop load client, speaking Perséphone's PSP wire format.

Manual
------
Run it::

    tailgate sched serve --policy darc --workload disp2 --workers 4 --port 9100 [--kind spin|sleep|rocksdb]
    tailgate sched load  --workload disp2 --load 0.5 --workers 4 --port 9100 --duration 5

or from Python: :func:`~tailgate.dispatch.live.process.serve` (until Ctrl-C),
:class:`~tailgate.dispatch.live.process.ServerProcess` (in a child, for tests and reports) and
:func:`~tailgate.dispatch.live.loadgen.load` with a
:class:`~tailgate.dispatch.live.loadgen.LoadConfig`.

The design, the artifact's (reference sheet §2) with processes instead of pinned cores. The
dispatcher receives bursts of up to ``burst`` (64) datagrams with one ``recvmmsg`` and runs the
same policy kernels as the simulator (:mod:`tailgate.dispatch.policy`); without time slicing the
whole round after the receive is one compiled call that keeps cycling — notices, completions,
assignments — while requests run and something moved within ``cycle_idle_ns`` (20 µs), at most
``cycle_budget_ns`` (200 µs), so a zero-work request costs a hand-off through shared memory, not
a trip through the Python loop. Workers pop one request at a time from their own ring and post a
completion notice; the dispatcher sends the responses (``reply='dispatcher'``, default: the
worker makes no socket call, so a ``spin`` worker runs compiled) or each worker does
(``reply='worker'``, as the artifact). An idle worker polls ``worker_spin_ns``, then parks on its
semaphore (``worker_idle='block'``; ``'poll'`` never parks); an idle dispatcher polls
``idle_spin_ns`` (20 µs), then sleeps in ``select`` on its socket and the workers' doorbell pipe.
``pin=True`` puts the dispatcher on the first CPU and the workers on the others, so that waking a
worker does not preempt the dispatcher on its own core. Time slicing (policy ``ts``) is
cooperative: a worker watches a per-worker preempt word. Measurements behind these choices:
``docs/notes.md``.

Under overload and faults: a request that waited longer than its queueing-delay limit
(``max_queue_delay_us``, ``--max-queue-delay-us``; by default 20 × the longest mean run time per
type, at least 1 s) is shed — answered as dropped and counted — instead of run seconds late; a
worker that dies is restarted and the request it held counted ``abandoned``; and whatever stops
the server, its final counters show ``accepted = completed + dropped + abandoned``
(:mod:`~tailgate.dispatch.live.dispatcher`, :mod:`~tailgate.dispatch.live.counters`). The client
first asks the server for its configuration (a hello) and refuses a server it is not sized for
unless forced (:mod:`~tailgate.dispatch.live.loadgen`).

Modules, in the order a request meets them:

* :mod:`~tailgate.dispatch.live.wire` — the PSP format and batched UDP I/O (``recvmmsg``/``sendmmsg``,
  also callable from compiled code);
* :mod:`~tailgate.dispatch.live.dispatcher` — the dispatcher (:class:`Server`): receive, policy, send;
  :mod:`~tailgate.dispatch.live.fastpath` — its compiled kernels; :mod:`~tailgate.dispatch.live.pypath`
  — its Python path (time slicing); :mod:`~tailgate.dispatch.live.tables` — its request table and
  workers' assignments; :mod:`~tailgate.dispatch.live.replies` — the answers it sends;
  :mod:`~tailgate.dispatch.live.counters` — its counters and stats;
  :mod:`~tailgate.dispatch.live.build` — its argument checks, socket, rings and doorbell;
* :mod:`~tailgate.dispatch.live.ring` — single-producer single-consumer rings in shared memory;
  :mod:`~tailgate.dispatch.live.layout` — what dispatcher and workers write in them;
* :mod:`~tailgate.dispatch.live.worker` — the worker processes and their loops;
* :mod:`~tailgate.dispatch.live.cpu` — memory fence, cycle counter, pinning;
* :mod:`~tailgate.dispatch.live.process` — ``serve`` and ``ServerProcess``;
  :mod:`~tailgate.dispatch.live.console` — what server and client print;
* :mod:`~tailgate.dispatch.live.loadgen` — the open-loop client; :mod:`~tailgate.dispatch.live.sender`
  — its send-and-receive round.
"""
