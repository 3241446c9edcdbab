"""The dispatcher's pieces in one process: the Python path's preemption hand-over played by hand
(the test writes the worker's notices), the request table's size, the counters' merge."""

from __future__ import annotations

import numpy as np

from tailgate.dispatch.live.build import open_rings
from tailgate.dispatch.live.counters import ServerCounters
from tailgate.dispatch.live.fastpath import R_DISPATCHED, R_DROPPED, R_N, R_NEXT_SEQ
from tailgate.dispatch.live.layout import (
    DONE,
    PREEMPTED,
    RX_LEFT_NS,
    RX_RID,
    RX_SEQ,
    RX_STATUS,
    TX_RID,
    TX_SEQ,
)
from tailgate.dispatch.live.pypath import PythonPath
from tailgate.dispatch.live.tables import RequestTable, WorkerTable, table_slots
from tailgate.dispatch.policy import make_policy
from tailgate.dispatch.workloads import get_workload


class _NoSocket:
    """Counts what would be sent."""

    def __init__(self):
        self.rows = 0

    def send(self, rows, ip, port):
        self.rows += len(rows)
        return len(rows)

    def drop(self, req_id, type_id, ip, port):
        raise AssertionError("nothing is dropped here")


def _path(slice_ns=1000, preempt_cost_ns=7):
    wl = get_workload("disp2")
    pol = make_policy("ts", wl, 1, slice_ns=slice_ns, preempt_cost_ns=preempt_cost_ns)
    table = RequestTable(table_slots(64, 1, len(wl.types)))
    workers = WorkerTable(1)
    reg = np.zeros(R_N, np.int64)
    reg[R_NEXT_SEQ] = 1
    counters = ServerCounters(reg)
    tx, rx, off = open_rings(1)
    st_rid, st_ptype = np.zeros(8, np.int64), np.zeros(8, np.int64)
    py = PythonPath(pol, table, workers, counters, _NoSocket(), reg=reg, st_rid=st_rid, st_ptype=st_ptype,
                    tx=tx, rx=rx, ctl_offsets=off, reply="dispatcher", worker_idle="poll")
    return py, table, workers, tx, rx, off, wl


def _stage(py, table, rids, type_id, run_ns):
    for i, rid in enumerate(rids):
        slot = rid & table.t_mask
        table.t_req_id[slot], table.t_type[slot], table.t_run[slot] = 100 + rid, type_id, run_ns
        table.t_live[slot] = True
        py.st_rid[i], py.st_ptype[i] = rid, type_id


def _notice(rx, seq, status, left_ns, rid):
    note = np.zeros(rx.n_fields, np.int64)
    note[RX_SEQ], note[RX_STATUS], note[RX_LEFT_NS], note[RX_RID] = seq, status, left_ns, rid
    assert rx.push1(0, note)


def test_a_preempted_request_waits_for_its_hand_over_and_resumes_with_what_is_left():
    py, table, workers, tx, rx, off, wl = _path()
    try:
        t = wl.types[0].type_id
        _stage(py, table, [0, 1], t, 50_000)
        assert py.round(2, 2, now=10) is True
        py.assign(10)
        first = tx.pop1(0)
        assert first[TX_RID] == 0 and workers.w_running[0]
        # a slice later the policy takes request 0 back: the worker is asked to stop it
        assert py.check_slices(10 + 1000) is True
        assert tx.extra[off["preempt"]] == first[TX_SEQ] and workers.w_draining[0]
        py.assign(1010)                      # nothing may go to a draining worker: held
        assert tx.pop1(0) is None and py.held
        _notice(rx, first[TX_SEQ], PREEMPTED, 30_000, 0)
        assert py.poll_notices(1500) is True
        assert not workers.w_draining[0] and py.c["preempted"] == 1
        assert table.t_run[0 & table.t_mask] == 30_000 + 7          # what is left, plus the cost
        py.assign(1500)
        second = tx.pop1(0)
        assert second is not None and second[TX_SEQ] > first[TX_SEQ]
        _notice(rx, second[TX_SEQ], DONE, 0, second[TX_RID])
        py.poll_notices(2000)
        assert py.c["completed"] == 1 and py.replies.rows == 1       # answered once, by the dispatcher
        assert py.c["dispatched"] == 2 and py.reg[R_NEXT_SEQ] == 3
    finally:
        tx.close()
        rx.close()


def test_the_request_table_holds_every_queue_full_at_once():
    for queue_len, n_workers, n_types in ((4096, 4, 2), (64, 1, 2), (10, 16, 1)):
        size = table_slots(queue_len, n_workers, n_types)
        assert size & (size - 1) == 0
        assert size >= 2 * (max(n_workers, n_types + 1) * queue_len + n_workers)


def test_counters_add_the_fast_loops_registers():
    reg = np.zeros(R_N, np.int64)
    counters = ServerCounters(reg)
    counters.c["dispatched"] = 3
    reg[R_DISPATCHED], reg[R_DROPPED] = 5, 2
    snap = counters.snapshot()
    assert snap["dispatched"] == 8 and snap["dropped"] == 2 and snap["drop_answers"] == 2
    assert list(snap)[: len(counters.c)] == list(counters.c)
