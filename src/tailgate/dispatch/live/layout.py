"""What the dispatcher and its workers write to each other in shared memory.

Manual
------
Two ring sets (:mod:`tailgate.dispatch.live.ring`) join them, one ring per worker in each:

* dispatcher → worker ``w``: requests to run, ``TX_N`` int64 fields each — ``TX_SEQ`` (a number
  the dispatcher gives every assignment), ``TX_REQ_ID`` and ``TX_TYPE`` (from the wire),
  ``TX_RUN_NS`` (work to do), ``TX_IP``/``TX_PORT`` (the client, for worker replies), ``TX_RID``
  (the request's slot id in the dispatcher's table);
* worker ``w`` → dispatcher: completion notices, ``RX_N`` fields — ``RX_SEQ`` (the assignment's),
  ``RX_STATUS`` (``DONE`` or ``PREEMPTED``), ``RX_LEFT_NS`` (work left when preempted),
  ``RX_END_NS`` (when it stopped), ``RX_RID``.

The dispatcher → worker set's extra words are the control words: flags first (``C_STOP``: workers
exit; ``C_DISP_SLEEPING``: the dispatcher sleeps, so ring its doorbell; ``C_SLICE_NS``: the time
slice, 0 without time slicing), then one array of ``n`` words per purpose at the offsets
:func:`ctl_offsets` gives: ``preempt`` (the sequence number a worker must stop), ``ready``,
``sent``/``send_err``/``busy_ns`` (a worker's counters) and ``parked`` (the worker sleeps on its
semaphore).

Example::

    off = ctl_offsets(4)
    tx = RingSet(4, TX_N, extra_words=off["end"]); rx = RingSet(4, RX_N)
    tx.extra[off["preempt"] + 2] = seq          # ask worker 2 to stop request `seq`
"""

from __future__ import annotations

# dispatcher -> worker entry fields
TX_SEQ, TX_REQ_ID, TX_TYPE, TX_RUN_NS, TX_IP, TX_PORT, TX_RID, TX_N = range(8)
# worker -> dispatcher notice fields
RX_SEQ, RX_STATUS, RX_LEFT_NS, RX_END_NS, RX_RID, RX_N = range(6)
# RX_STATUS values
DONE, PREEMPTED = 0, 1
# control flags, then the per-worker arrays from C_HDR on
C_STOP, C_DISP_SLEEPING, C_SLICE_NS = 0, 1, 2
C_HDR = 8


def ctl_offsets(n: int) -> dict[str, int]:
    """Start of each per-worker array among the control words of ``n`` workers; ``end``: how many
    control words there are."""
    return {"preempt": C_HDR, "ready": C_HDR + n, "sent": C_HDR + 2 * n, "send_err": C_HDR + 3 * n,
            "busy_ns": C_HDR + 4 * n, "parked": C_HDR + 5 * n, "end": C_HDR + 6 * n}
