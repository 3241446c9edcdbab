"""What the dispatcher knows of its requests and workers: numpy arrays that the Python path and
the compiled kernels (:mod:`~tailgate.dispatch.live.fastpath`) share without copies.

Manual
------
* :class:`RequestTable` — every live request, by ``rid & t_mask``: its id and type as the client
  sent them, its run time, where to answer it, when it was received (``t_arr``, ns, for the
  queueing-delay limit), and two time-slicing flags. Its size is a power of
  two large enough for every policy queue to be full at once (:func:`table_slots`), so a slot
  still live when its turn comes again means the table is full (``table_full``).
* :class:`WorkerTable` — each worker's current assignment: sequence number, request id, when its
  slice began, whether it runs, whether a preemption is waiting for its answer (``draining``).

The attribute names are the kernels' parameter names (``t_run``, ``w_seq``, ...), so one name
finds an array everywhere it is used.

Example::

    table = RequestTable(table_slots(queue_len=4096, n_workers=4, n_types=2))
    slot = rid & table.t_mask
    workers = WorkerTable(4)
"""

from __future__ import annotations

import numpy as np


def table_slots(queue_len: int, n_workers: int, n_types: int) -> int:
    """The request table's size: a power of two at least twice the most requests that can be live
    (every queue full, including the UNKNOWN one, and one running on each worker)."""
    live_max = max(n_workers, n_types + 1) * queue_len + n_workers
    return 1 << int(np.ceil(np.log2(2 * live_max)))


class RequestTable:
    """Requests by ``rid & t_mask`` (see the module manual)."""

    def __init__(self, size: int):
        self.t_mask = size - 1
        self.t_req_id = np.zeros(size, np.int64)
        self.t_type = np.zeros(size, np.int64)
        self.t_run = np.zeros(size, np.int64)
        self.t_ip = np.zeros(size, np.int64)
        self.t_port = np.zeros(size, np.int64)
        self.t_arr = np.zeros(size, np.int64)      # when it was received (ns)
        self.t_live = np.zeros(size, bool)
        self.t_done = np.zeros(size, bool)        # ts: finished while being preempted
        self.t_stopping = np.zeros(size, bool)    # ts: a preempted run not yet acknowledged
        self.next_rid = 0

    def live_slots(self) -> np.ndarray:
        """The slots of every request still live (accepted, neither answered nor dropped)."""
        return np.flatnonzero(self.t_live)


class WorkerTable:
    """What the dispatcher knows of each worker: its current assignment."""

    def __init__(self, n_workers: int):
        n = n_workers
        self.w_seq = np.zeros(n, np.int64)
        self.w_rid = np.full(n, -1, np.int64)
        self.w_slice_start = np.zeros(n, np.int64)
        self.w_running = np.zeros(n, bool)
        self.w_draining = np.zeros(n, bool)
