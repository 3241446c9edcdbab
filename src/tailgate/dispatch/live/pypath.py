"""The dispatcher's Python path: a whole round under time slicing (policy ``ts``), and, for the
compiled fast path, the drain and the retry of assignments that a full ring refused.

Manual
------
A round of :meth:`PythonPath.round` (one per received burst, after the burst was staged into
the request table):

1. :meth:`~PythonPath.arrive` — hand the staged requests to the policy (``pol.arrive``); those it
   refuses (a full queue) get a drop answer at once;
2. :meth:`~PythonPath.poll_notices` — take every completion notice off the workers' rings; with
   ``reply='dispatcher'`` send the served requests' responses (one ``sendmmsg``); complete the
   current ones in the policy (a notice of an older assignment is ``stale_notices``);
3. :meth:`~PythonPath.check_slices` — offer every request that has run ``slice_ns`` back to the
   policy (``pol.preempt``): if it takes it, the worker's preempt word is raised and the worker
   is *draining*;

and then (the dispatcher calls it when the round was busy) :meth:`~PythonPath.assign` —
``pol.assign``, the entries written to the workers' rings, the tails published, parked workers'
semaphores posted after a full fence. An assignment whose request arrived longer ago than its
type's queueing-delay limit (:func:`~tailgate.dispatch.live.fastpath.queue_delay_limit_ns`) is
shed instead, as the fast loop does: the worker released, the client answered ``SIZE_DROPPED``,
``shed`` counted, and the policy asked again next loop. A preempted request counts from its
arrival too (so it may be shed after it ran a slice: an answered request's latency stays within
about the limit plus its run time); one whose preemption is not yet acknowledged is never shed.

A preemption is a hand-over. Until the worker answers ``preempted`` (the request goes back with
the run time it has left plus ``preempt_cost_ns``) or ``done`` (it finished before it saw the
flag; the response went out already), assignments *to* that worker and re-assignments *of* that
request are held back (``held``, retried next round). A request that finished that way and is
assigned again is completed at once instead, so every request is answered exactly once. An
assignment a full ring refused is held the same way (counted in ``ring_full``, never lost).

Example::

    py = PythonPath(pol, table, workers, counters, replies, reg=reg, st_rid=st_rid,
                    st_ptype=st_ptype, tx=tx, rx=rx, ctl_offsets=off, reply="dispatcher",
                    worker_idle="block")
    py.sems = pool.sems
    if py.round(n, k, now):
        py.assign(now)
"""

from __future__ import annotations

import threading

import numpy as np

from tailgate.dispatch.live.counters import ServerCounters
from tailgate.dispatch.live.fastpath import (
    QD_LIMIT,
    QD_TYPES,
    R_NEXT_SEQ,
    fill_tx,
    take_notices,
)
from tailgate.dispatch.live.layout import (
    DONE,
    PREEMPTED,
    RX_LEFT_NS,
    RX_N,
    RX_RID,
    RX_SEQ,
    RX_STATUS,
)
from tailgate.dispatch.live.replies import Replies
from tailgate.dispatch.live.ring import HEAD, TAIL, RingSet
from tailgate.dispatch.live.tables import RequestTable, WorkerTable
from tailgate.dispatch.live.wire import encode_responses


class PythonPath:
    """Arrivals, notices, preemptions and assignments in Python (see the module manual)."""

    def __init__(self, pol, table: RequestTable, workers: WorkerTable, counters: ServerCounters, replies: Replies, *,
                 reg: np.ndarray, st_rid: np.ndarray, st_ptype: np.ndarray, tx: RingSet, rx: RingSet,
                 ctl_offsets: dict, reply: str, worker_idle: str, qd_lim: np.ndarray | None = None,
                 qd_state: np.ndarray | None = None):
        self.pol = pol
        self.table, self.workers = table, workers
        self.counters, self.c = counters, counters.c
        self.replies = replies
        self.reg = reg                               # R_NEXT_SEQ is shared with the fast loop
        self.st_rid, self.st_ptype = st_rid, st_ptype    # the staged burst
        self.tx, self.rx, self.ctl = tx, rx, tx.extra
        self.parked_at, self.preempt_at = ctl_offsets["parked"], ctl_offsets["preempt"]
        self.reply_here = reply == "dispatcher"
        self.block = worker_idle == "block"
        self.slice_ns = int(pol.slice_ns)
        self.preempt_cost_ns = int(pol.preempt_cost_ns)
        # queueing-delay limits by wire type id (fastpath's qd_lim / qd_state; none by default)
        self.qd_lim = qd_lim if qd_lim is not None else np.zeros(QD_TYPES, np.int64)
        self.qd_state = qd_state if qd_state is not None else np.zeros(QD_LIMIT + 1, np.int64)
        self.sems: list = []                         # the workers' semaphores, once they run
        self.held: list[tuple[int, int]] = []        # assignments waiting (ts hand-over, full ring)
        self.again = False                           # ts: assign again next loop
        self._fence = threading.Lock()
        n = len(workers.w_seq)
        self._nt_w = np.zeros(n * 64, np.int64)
        self._nt_notes = np.zeros((n * 64, RX_N), np.int64)
        self._nt_taken = np.zeros(n, np.int64)
        self._pushed = np.zeros(2 * n + 1, bool)

    def warm(self) -> None:
        """Load (or compile) this path's kernels: one call each that changes nothing."""
        rx, t, w = self.rx, self.table, self.workers
        take_notices(rx.idx, rx.entries, self._nt_w, self._nt_notes, self._nt_taken)
        none = np.zeros(0, np.int64)
        fill_tx(none, none, t.t_mask, t.t_req_id, t.t_type, t.t_run, t.t_ip, t.t_port, self.tx.idx, self.tx.entries,
                0, w.w_seq, w.w_rid, w.w_slice_start, w.w_running, 0, self._pushed[:0])

    def round(self, n: int, k: int, now: int) -> bool:
        """Arrivals (``k`` staged of ``n`` received), notices, expired slices; True if busy."""
        busy = False
        if n:
            if k:
                self.arrive(k, now)
            busy = True
        if self.poll_notices(now):
            busy = True
        if self.workers.w_running.any():
            busy |= self.check_slices(now)
        return busy

    def arrive(self, k: int, now: int) -> None:
        """Hand the ``k`` staged requests to the policy; answer those it refuses."""
        t = self.table
        rid = self.st_rid[:k]
        accepted = self.pol.arrive(rid, self.st_ptype[:k], now)
        if not accepted.all():
            slots = rid[~accepted] & t.t_mask
            t.t_live[slots] = False
            self.replies.drop(t.t_req_id[slots], t.t_type[slots], t.t_ip[slots], t.t_port[slots])

    def poll_notices(self, now: int) -> bool:
        """Take every waiting completion notice; True if there were any."""
        rx, t = self.rx, self.table
        k = take_notices(rx.idx, rx.entries, self._nt_w, self._nt_notes, self._nt_taken)
        if k == 0:
            return False
        rx.idx[:, HEAD] += self._nt_taken             # free the slots only after the copy
        workers, notes = self._nt_w[:k].copy(), self._nt_notes[:k].copy()
        if self.reply_here:
            served = notes[:, RX_STATUS] == DONE       # finished (even if it was being preempted)
            if served.any():
                slots = notes[served, RX_RID] & t.t_mask
                self.replies.send(encode_responses(t.t_req_id[slots], t.t_type[slots], 0),
                                  t.t_ip[slots], t.t_port[slots])
        self._on_notices(workers, notes, now)
        return True

    def _on_notices(self, workers: np.ndarray, notes: np.ndarray, now: int) -> None:
        w = self.workers
        self.counters.last_event_ns = now
        current = w.w_seq[workers] == notes[:, RX_SEQ]
        if not current.all():
            self.c["stale_notices"] += int((~current).sum())
        if self.slice_ns:
            draining = w.w_draining[workers]           # a copy, taken before the hand-over clears it
            if draining.any():
                self._on_handover(workers, notes)
                current &= ~draining
        done = workers[current & (notes[:, RX_STATUS] == DONE)]
        if len(done):
            self.pol.complete(done, now)
            self.table.t_live[w.w_rid[done] & self.table.t_mask] = False
            w.w_running[done] = False
            self.c["completed"] += len(done)

    def _on_handover(self, workers: np.ndarray, notes: np.ndarray) -> None:
        """A preempted worker answered; settle its request and let held assignments go."""
        t, wt = self.table, self.workers
        for w, note in zip(workers.tolist(), notes.tolist()):
            if not wt.w_draining[w] or note[RX_SEQ] != wt.w_seq[w]:
                continue
            slot = wt.w_rid[w] & t.t_mask
            if note[RX_STATUS] == PREEMPTED:
                t.t_run[slot] = note[RX_LEFT_NS] + self.preempt_cost_ns
                self.c["preempted"] += 1
            else:
                t.t_done[slot] = True          # it finished before seeing the flag: answered once
            t.t_stopping[slot] = False
            wt.w_draining[w] = False
            wt.w_running[w] = False
            wt.w_rid[w] = -1

    def check_slices(self, now: int) -> bool:
        """Offer every request that has run a slice back to the policy; True if it took one."""
        wt = self.workers
        expired = np.flatnonzero(wt.w_running & ~wt.w_draining & (now - wt.w_slice_start >= self.slice_ns))
        took = False
        for w in expired.tolist():
            if self.pol.preempt(w, now):
                wt.w_draining[w] = True
                self.table.t_stopping[wt.w_rid[w] & self.table.t_mask] = True
                self.ctl[self.preempt_at + w] = wt.w_seq[w]
                took = True
            else:
                wt.w_slice_start[w] = now
        return took

    def hold(self, pairs) -> None:
        """Assignments (worker, rid) that the fast loop could not write: retried by :meth:`assign`."""
        self.held.extend(map(tuple, pairs))

    def assign(self, now: int) -> None:
        """The policy's assignments and the held ones, into the workers' rings."""
        self.again = False
        workers, rids = self.pol.assign(now)
        if len(workers):
            workers, rids = self._shed_late(workers, rids, now)
        if self.held:
            hw, hr = zip(*self.held)
            self.held = []
            workers = np.concatenate([np.array(hw, np.int64), workers])
            rids = np.concatenate([np.array(hr, np.int64), rids])
        if len(workers) == 0:
            return
        if self.slice_ns:
            workers, rids = self._hold_back_draining(workers, rids, now)
            if len(workers) == 0:
                return
        t, wt = self.table, self.workers
        pushed = self._pushed[: len(workers)]
        n_ok = fill_tx(workers, rids, t.t_mask, t.t_req_id, t.t_type, t.t_run, t.t_ip, t.t_port, self.tx.idx,
                       self.tx.entries, int(self.reg[R_NEXT_SEQ]), wt.w_seq, wt.w_rid, wt.w_slice_start,
                       wt.w_running, now, pushed)
        self.reg[R_NEXT_SEQ] += n_ok
        if n_ok < len(workers):
            self.c["ring_full"] += len(workers) - n_ok
            self.held.extend(zip(workers[~pushed].tolist(), rids[~pushed].tolist()))
            workers = workers[pushed]
        self.tx.idx[workers, TAIL] += 1             # publish: after the entries were written
        self.c["dispatched"] += n_ok
        if self.block and len(workers):
            with self._fence:
                pass               # full barrier: the tails above are visible before `parked` is read
            parked = workers[self.ctl[self.parked_at + workers] != 0]
            sems = self.sems
            for w in parked.tolist():
                sems[w].release()

    def _shed_late(self, workers: np.ndarray, rids: np.ndarray, now: int):
        """Shed the assignments whose request waited longer than its limit (see the manual);
        returns the others."""
        t = self.table
        slots = rids & t.t_mask
        type_ids = t.t_type[slots]
        lim = self.qd_lim[np.where(type_ids < len(self.qd_lim), type_ids, 0)]
        lim = np.where(lim < 0, self.qd_state[QD_LIMIT], lim)
        # a request still handing over from a preemption (or finished meanwhile) is not shed:
        # its worker may still answer it
        late = (lim > 0) & (now - t.t_arr[slots] > lim) & ~t.t_stopping[slots] & ~t.t_done[slots]
        if not late.any():
            return workers, rids
        for w in workers[late].tolist():
            self.pol.release(w)
        gone = slots[late]
        t.t_live[gone] = False
        self.replies.drop(t.t_req_id[gone], t.t_type[gone], t.t_ip[gone], t.t_port[gone])
        self.c["shed"] += len(gone)
        self.again = True
        return workers[~late], rids[~late]

    def _hold_back_draining(self, workers: np.ndarray, rids: np.ndarray, now: int):
        """Hold back assignments to a worker (or of a request) whose preemption is not yet
        acknowledged; complete at once a request that finished before it saw its preemption
        (answered already) and assign those workers next loop. Returns what may go now."""
        t = self.table
        slots = rids & t.t_mask
        wait = self.workers.w_draining[workers] | t.t_stopping[slots]
        if wait.any():
            self.held.extend(zip(workers[wait].tolist(), rids[wait].tolist()))
            workers, rids, slots = workers[~wait], rids[~wait], slots[~wait]
        finished = t.t_done[slots]
        if finished.any():
            self.pol.complete(workers[finished], now)
            t.t_live[slots[finished]] = False
            t.t_done[slots[finished]] = False
            self.c["completed"] += int(finished.sum())
            self.again = True
            workers, rids = workers[~finished], rids[~finished]
        return workers, rids
