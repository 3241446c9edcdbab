"""The dispatcher's counters and the stats it reports when it stops.

Manual
------
:class:`ServerCounters` holds what the Python side counts (``c``: received, accepted, bad input
by reason, drops, the Python path's dispatches and completions, loops, idle waits, responses
sent); the compiled fast loop counts in its registers (``reg``, :data:`R_*
<tailgate.dispatch.live.fastpath.R_N>`). :meth:`ServerCounters.snapshot` adds the two;
:meth:`ServerCounters.stats` adds the rates, the policy's counters and reservation, and the
workers' totals (JSON-able). What each counter means: the manual of
:mod:`~tailgate.dispatch.live.dispatcher`.

Every accepted request ends in exactly one of three counters, so that at any stop
``accepted == completed + dropped + abandoned`` (``stats["accounted"]`` says whether it holds):

* ``completed`` — run and answered;
* ``dropped`` — answered ``SIZE_DROPPED`` instead, by reason (``dropped_by_reason``):
  ``queue_full`` (the policy's queue), ``table_full`` (the request table), ``shed`` (it waited
  longer than its queueing-delay limit);
* ``abandoned`` — still queued or running when the server stopped, or running on a worker that
  died, by reason (``abandoned_by_reason``: ``queued at stop``, ``running at stop``,
  ``worker 2 died (SIGKILL)``, ...): :meth:`ServerCounters.abandon`.

Example::

    counts = ServerCounters(reg)
    counts.add_staged(stage_counts)      # after a stage_requests call
    counts.snapshot()["dispatched"]
"""

from __future__ import annotations

import numpy as np

from tailgate.dispatch.live.fastpath import (
    K_BAD_RUN,
    K_OVERSIZE,
    K_SHORT,
    K_TABLE_FULL,
    K_UNKNOWN,
    R_COMPLETED,
    R_CYCLES,
    R_DISPATCHED,
    R_DROPPED,
    R_RING_FULL,
    R_SHED,
    R_STALE,
)
from tailgate.dispatch.live.wire import REASONS

#: The Python side's counters, in the order stats print them.
COUNTER_NAMES = ("rx_datagrams", "accepted", "malformed", "unknown_type", "dropped", "drop_answers", "dispatched",
                 "completed", "abandoned", "shed", "preempted", "stale_notices", "ring_full", "table_full", "loops",
                 "idle_waits", "dispatcher_sent", "dispatcher_send_errors", "hellos", "worker_deaths",
                 "worker_restarts")

#: counter <- fast-loop register, added by snapshot() (a fast-loop drop is answered, so it counts twice)
_FROM_REGISTERS = (("dispatched", R_DISPATCHED), ("completed", R_COMPLETED), ("stale_notices", R_STALE),
                   ("dropped", R_DROPPED), ("drop_answers", R_DROPPED), ("ring_full", R_RING_FULL),
                   ("shed", R_SHED), ("dropped", R_SHED), ("drop_answers", R_SHED))


class ServerCounters:
    """The Python side's counters, the fast loop's registers, and the active interval."""

    def __init__(self, reg: np.ndarray):
        self.reg = reg
        self.c = dict.fromkeys(COUNTER_NAMES, 0)
        self.malformed = {r: 0 for r in REASONS[1:]}
        self.abandoned: dict[str, int] = {}     # by reason
        self.first_rx_ns = 0          # the first receive (the active interval's start)
        self.last_event_ns = 0        # the last arrival or completion (its end)

    def add_staged(self, counts: np.ndarray) -> None:
        """Count what a ``stage_requests`` call refused (its ``K_*`` counts)."""
        c = self.c
        for reason, i in (("short", K_SHORT), ("oversize", K_OVERSIZE), ("bad_run_ns", K_BAD_RUN)):
            self.malformed[reason] += int(counts[i])
        c["malformed"] += int(counts[K_SHORT] + counts[K_OVERSIZE] + counts[K_BAD_RUN])
        c["unknown_type"] += int(counts[K_UNKNOWN])
        c["table_full"] += int(counts[K_TABLE_FULL])

    def abandon(self, n: int, reason: str) -> None:
        """Count ``n`` accepted requests that will neither complete nor be dropped, and why."""
        if n:
            self.c["abandoned"] += n
            self.abandoned[reason] = self.abandoned.get(reason, 0) + n

    def snapshot(self) -> dict:
        """The counters so far: the Python path's and the fast loop's together."""
        c = dict(self.c)
        reg = self.reg
        for key, r in _FROM_REGISTERS:
            c[key] += int(reg[r])
        c["fast_cycles"] = int(reg[R_CYCLES])
        return c

    def stats(self, header: dict, pol, worker_totals: dict | None) -> dict:
        """Counters and rates so far (JSON-able): ``header`` (reply mode, policy, workload, ...)
        in the order the dispatcher gives it, then the rates, the policy's side and, with
        ``worker_totals``, the responses sent by whoever sent them and the workers' busy time."""
        s: dict = self.snapshot()
        s["reply"] = header["reply"]
        s["malformed_by_reason"] = {k: v for k, v in self.malformed.items() if v}
        s["dropped_by_reason"] = {"queue_full": s["dropped"] - s["table_full"] - s["shed"],
                                  "table_full": s["table_full"], "shed": s["shed"]}
        s["abandoned_by_reason"] = dict(self.abandoned)
        s["accounted"] = s["accepted"] == s["completed"] + s["dropped"] + s["abandoned"]
        for k in ("policy", "workload", "n_workers", "worker_kind", "port"):
            s[k] = header[k]
        active_ns = self.last_event_ns - self.first_rx_ns
        s["active_s"] = round(active_ns / 1e9, 6) if active_ns > 0 else 0.0
        s["dispatch_rate_rps"] = round(s["dispatched"] / (active_ns / 1e9), 1) if active_ns > 0 else 0.0
        s["policy_counters"] = pol.counters()
        res = pol.reservation()
        s["reservation"] = res.table() if res is not None else None
        if worker_totals:
            # served responses, whoever sent them (the fast loop's drop answers go out with them)
            s["responses_sent"] = (worker_totals["sent"] + s["dispatcher_sent"] - int(self.reg[R_DROPPED])
                                   - int(self.reg[R_SHED]))
            s["response_send_errors"] = worker_totals["send_err"] + s["dispatcher_send_errors"]
            s["worker_busy_s"] = round(worker_totals["busy_ns"] / 1e9, 6)
        return s
