"""The dispatcher: receive a burst of requests, hand them to the policy, send the assignments to
the workers' rings, and answer the clients.

Manual
------
:class:`Server` is the dispatcher's state and loop; :func:`tailgate.dispatch.live.process.serve`
is the usual way to run one. A round of :meth:`Server.run`:

1. receive up to ``burst`` datagrams in one ``recvmmsg``
   (:class:`~tailgate.dispatch.live.wire.BatchSocket`) and decode them into the request table
   (:func:`~tailgate.dispatch.live.fastpath.stage_requests`,
   :class:`~tailgate.dispatch.live.tables.RequestTable`), indexed by request id modulo its size
   (large enough for every queue to be full at once);
2. without time slicing: one compiled call, :func:`~tailgate.dispatch.live.fastpath.fast_loop`,
   does the rest — arrivals, completion notices, assignments, ring entries — then this class sends
   the responses it queued (one ``sendmmsg``) and posts the semaphores of parked workers it
   assigned to;
3. with time slicing (policy ``ts``): the Python path,
   :class:`~tailgate.dispatch.live.pypath.PythonPath` — ``pol.arrive``, the notices,
   ``pol.preempt`` for requests that have run a slice (the worker's preempt word is raised and its
   next assignment, and the request's re-dispatch, wait until it answers ``preempted`` or
   ``done``, so a request is answered exactly once), ``pol.assign``;
4. idle for ``idle_spin_ns``: sleep in ``select`` on the socket and the workers' doorbell pipe.

Who sends a served request's response (``reply``): the dispatcher (default: the responses of
the notices it collected, in one ``sendmmsg`` with the drop answers,
:class:`~tailgate.dispatch.live.replies.Replies`) or the worker itself.

Bad input never stops the server; each case is counted
(:class:`~tailgate.dispatch.live.counters.ServerCounters`): ``malformed`` by reason (``short``,
``oversize``, ``bad_run_ns`` — ``run_ns`` above ``max_run_ns``); ``unknown_type`` (an id the
workload does not declare: the policy's UNKNOWN queue, served by DARC's spillway worker);
``dropped`` (the policy's queue, or the request table, was full: answered with
``size = SIZE_DROPPED``); ``ring_full`` (a worker's ring refused an entry: retried, never lost).
The arguments are checked, and the socket, rings and doorbell opened, by
:mod:`~tailgate.dispatch.live.build`.

Example::

    srv = Server("darc", "disp2", n_workers=4, worker_kind="sleep")
    port = srv.start()                 # bound, workers up
    srv.run(duration_s=5)
    srv.drain(); srv.close(); srv.stats()
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable

import numpy as np

from tailgate.dispatch.live.build import (
    bind_udp,
    check_server_args,
    known_type_mask,
    open_doorbell,
    open_rings,
    warm_policy,
)
from tailgate.dispatch.live.counters import ServerCounters
from tailgate.dispatch.live.cpu import ns_per_tick, pin, split_cpus
from tailgate.dispatch.live.fastpath import (
    K_N,
    R_N,
    R_NEXT_SEQ,
    R_NHELD,
    R_NRESP,
    R_NWAKE,
    LoopRef,
    fast_loop,
    stage_requests,
)
from tailgate.dispatch.live.layout import C_DISP_SLEEPING, C_SLICE_NS
from tailgate.dispatch.live.pypath import PythonPath
from tailgate.dispatch.live.replies import Replies
from tailgate.dispatch.live.tables import RequestTable, WorkerTable, table_slots
from tailgate.dispatch.live.wire import BatchSocket, decode_requests
from tailgate.dispatch.live.worker import (
    WorkerPool,
    WorkerSpec,
    warm_worker_loop,
    worker_counters,
)
from tailgate.dispatch.policy import make_policy
from tailgate.dispatch.workloads import Workload, get_workload


class Server:
    """The dispatcher's state and loop (see the module manual)."""

    def __init__(self, policy: str, workload: Workload | str, n_workers: int, *, host: str = "127.0.0.1",
                 port: int = 0, worker_kind: str = "spin", burst: int = 64, max_run_ns: int = 1_000_000_000,
                 worker_idle: str = "block", idle_spin_ns: int = 20_000, sleep_spin_ns: int = 0,
                 run_scale: float = 1.0, policy_params: dict | None = None, pin: bool = False,
                 worker_spin_ns: int = 0, reply: str = "dispatcher", cycle_idle_ns: int = 20_000,
                 cycle_budget_ns: int = 200_000, worker_yield: bool = False):
        self.workload = get_workload(workload) if isinstance(workload, str) else workload
        check_server_args(n_workers, worker_kind, reply, worker_idle, burst, port, run_scale)
        self.n_workers = int(n_workers)
        self.policy_name = policy
        self.policy_params = dict(policy_params or {})
        self.pol = make_policy(policy, self.workload, self.n_workers, **self.policy_params)
        self.worker_kind, self.worker_idle = worker_kind, worker_idle
        self.burst, self.max_run_ns, self.idle_spin_ns = burst, int(max_run_ns), int(idle_spin_ns)
        self.worker_spin_ns = int(worker_spin_ns)
        self.reply = reply
        self.worker_yield = bool(worker_yield)
        self.cycle_idle_ns, self.cycle_budget_ns = int(cycle_idle_ns), int(cycle_budget_ns)
        self.sleep_spin_ns, self.run_scale = int(sleep_spin_ns), float(run_scale)
        self.host, self.port_wanted = host, port
        self.pin = bool(pin)
        self.slice_ns = int(self.pol.slice_ns)
        self.fast = self.slice_ns == 0           # no time slicing: the compiled fast loop
        queue_len = int(self.pol.params.get("queue_len", 4096))
        self.table = RequestTable(table_slots(queue_len, self.n_workers, len(self.workload.types)))
        self.workers = WorkerTable(self.n_workers)
        self.known_type = known_type_mask(self.workload)
        self._alloc_buffers()
        self.counts = ServerCounters(self.reg)
        self.port: int | None = None
        self.sock = None
        self.tx = self.rx = None
        self.py: PythonPath | None = None
        self.pool: WorkerPool | None = None
        self.sems: list = []
        self.worker_totals: dict | None = None
        self._stop = False

    def _alloc_buffers(self) -> None:
        """The staging kernel's outputs and the fast loop's registers and buffers."""
        n, burst = self.n_workers, self.burst
        self._stage_counts = np.zeros(K_N, np.int64)
        self._st_rid = np.zeros(burst, np.int64)
        self._st_ptype = np.zeros(burst, np.int64)
        self._st_refused = np.zeros(burst, np.int64)
        self.reg = np.zeros(R_N, np.int64)
        self.reg[R_NEXT_SEQ] = 1
        self.resp = np.zeros((max(4 * burst, 64 * n), 3), np.uint32)
        self.resp_rows = self.resp.view(np.uint8).reshape(-1, 12)
        self.resp_ip = np.zeros(len(self.resp), np.int64)
        self.resp_port = np.zeros(len(self.resp), np.int64)
        self._wake = np.zeros(n, np.int64)
        self._held = np.zeros((n, 2), np.int64)
        self.loop = None
        self.ns_per_tsc = 0.0

    # -- lifetime ------------------------------------------------------------------------------
    def start(self, ready_timeout_s: float = 60.0) -> int:
        """Bind, create the rings, start the workers; returns the bound UDP port."""
        warm_policy(self.policy_name, self.workload, self.n_workers, self.policy_params)
        self.sock = bind_udp(self.host, self.port_wanted)
        self.port = self.sock.getsockname()[1]
        self.bs = BatchSocket(self.sock, burst=self.burst)
        self.replies = Replies(self.bs, self.counts.c)
        self.tx, self.rx, self.off = open_rings(self.n_workers)
        self.ctl = self.tx.extra
        self.py = PythonPath(self.pol, self.table, self.workers, self.counts, self.replies, reg=self.reg,
                             st_rid=self._st_rid, st_ptype=self._st_ptype, tx=self.tx, rx=self.rx,
                             ctl_offsets=self.off, reply=self.reply, worker_idle=self.worker_idle)
        self._warm_kernels()
        self.ctl[C_SLICE_NS] = self.slice_ns
        self.wake_r, self.wake_w = open_doorbell()
        worker_cpus: tuple[int, ...] = ()
        if self.pin:
            # The dispatcher on the first CPU, the workers on the others: waking a worker then
            # sends it to another core instead of preempting the dispatcher on its own.
            mine, worker_cpus = split_cpus()
            if mine:
                pin(mine)
        spec = WorkerSpec(kind=self.worker_kind, idle=self.worker_idle, spin_ns=self.worker_spin_ns,
                          sleep_spin_ns=self.sleep_spin_ns, reply=self.reply, ns_per_tsc=self.ns_per_tsc,
                          yielding=self.worker_yield, cpus=worker_cpus)
        self.pool = WorkerPool(self.n_workers, spec, self.tx, self.rx, self.wake_w,
                               close_fds=(self.sock.fileno(), self.wake_r))
        self.pool.start(ready_timeout_s)
        self.sems = self.py.sems = self.pool.sems
        return self.port

    def _warm_kernels(self) -> None:
        """Load (or compile) the dispatcher's and the workers' kernels before the first request."""
        self._on_requests(0, 0)      # an empty burst: stages nothing, counts nothing
        self._make_loop()
        fast_loop(self.pol.ref, self.loop, 0, 0, self.ns_per_tsc, False, 0, 0)   # nothing runs: one pass
        warm_worker_loop(self.tx, self.rx)
        self.py.warm()

    def _make_loop(self) -> None:
        t, w = self.table, self.workers
        parked = self.ctl[self.off["parked"]: self.off["parked"] + self.n_workers]
        self.loop = LoopRef(self.reg, t.t_mask, self.rx.idx, self.rx.entries, self.tx.idx, self.tx.entries, parked,
                            w.w_seq, w.w_rid, w.w_slice_start, w.w_running, t.t_req_id, t.t_type, t.t_run, t.t_ip,
                            t.t_port, t.t_live, self._st_rid, self._st_ptype, self.resp, self.resp_ip,
                            self.resp_port, self._wake, self._held)
        # The fast loop's clock: cycle-counter ticks -> ns (0 where there is no counter: one pass a call).
        self.ns_per_tsc = ns_per_tick()

    def stop(self) -> None:
        self._stop = True

    def drain(self, timeout_s: float = 0.2) -> None:
        """After the loop: take the notices of requests still running (up to ``timeout_s``), so that
        what was answered is also counted as completed. Nothing new is dispatched."""
        if self.rx is None:
            return
        deadline = time.perf_counter_ns() + int(timeout_s * 1e9)
        while self.workers.w_running.any() and time.perf_counter_ns() < deadline:
            if not self.py.poll_notices(time.perf_counter_ns()):     # notices only, nothing new goes out
                time.sleep(0.0005)

    def close(self) -> None:
        """Stop and reap the workers, unlink the shared memory, close the socket. Idempotent."""
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        if self.tx is not None:
            self.worker_totals = worker_counters(self.tx)
            self.tx.close()
            self.rx.close()
            self.tx = self.rx = None
            os.close(self.wake_r)
            os.close(self.wake_w)
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # -- the loop ------------------------------------------------------------------------------
    def run(self, duration_s: float | None = None, stop_event=None,
            on_tick: Callable[[Server, float], None] | None = None, tick_s: float = 1.0) -> None:
        """Serve until ``stop()``, ``duration_s`` or ``stop_event``; ``on_tick`` every ``tick_s``."""
        pc = time.perf_counter_ns
        start = pc()
        end = start + int(duration_s * 1e9) if duration_s else None
        next_tick = start + int(tick_s * 1e9)
        idle_since = 0
        bs, py, counts, c = self.bs, self.py, self.counts, self.counts.c
        fast, pol_ref, loop, ns_per_tsc = self.fast, self.pol.ref, self.loop, self.ns_per_tsc
        reply = self.reply == "dispatcher"
        cycle_idle_ns, cycle_budget_ns = self.cycle_idle_ns, self.cycle_budget_ns
        while not self._stop:
            now = pc()
            c["loops"] += 1
            busy = False
            n = bs.recv_burst()
            if fast:
                k = self._on_requests(n, now) if n else 0
                if fast_loop(pol_ref, loop, k, now, ns_per_tsc, reply, cycle_idle_ns, cycle_budget_ns) or n:
                    busy = True
                    counts.last_event_ns = now
                self._flush_fast(now)
            else:
                busy = py.round(n, self._on_requests(n, now) if n else 0, now)
            if busy or py.held or py.again:
                if not fast or py.held:
                    py.assign(now)
                idle_since = 0
            else:
                if idle_since == 0:
                    idle_since = now
                elif now - idle_since >= self.idle_spin_ns:
                    self._sleep(now)
                    idle_since = 0
            if now >= next_tick:
                next_tick = now + int(tick_s * 1e9)
                if end is not None and now >= end:
                    break
                if stop_event is not None and stop_event.is_set():
                    break
                if on_tick is not None:
                    on_tick(self, (now - start) / 1e9)
                self.pool.check_alive()
            elif end is not None and now >= end:
                break

    def _sleep(self, now: int) -> None:
        """Nothing to do for a while: block until a datagram or a worker's doorbell."""
        sleeping = self.ctl
        sleeping[C_DISP_SLEEPING] = 1
        if len(self.rx) == 0:
            w = self.workers
            timeout = 0.001 if w.w_running.any() else 0.05
            if self.slice_ns and w.w_running.any():
                # wake when the first running request has had its slice
                due_ns = int(w.w_slice_start[w.w_running].min()) + self.slice_ns - now
                timeout = min(timeout, max(due_ns, 0) / 1e9)
            self.counts.c["idle_waits"] += 1
            try:
                select.select([self.sock.fileno(), self.wake_r], (), (), timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                pass
        sleeping[C_DISP_SLEEPING] = 0
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass

    def _on_requests(self, n: int, now: int) -> int:
        """Decode ``n`` received datagrams into the request table; returns how many were staged
        (``_st_rid/_st_ptype[:k]``: the fast loop or the Python path hands them to the policy).
        Counts what was refused and answers the requests whose table slot is still live."""
        counts = self.counts
        c = counts.c
        c["rx_datagrams"] += n
        if counts.first_rx_ns == 0:
            counts.first_rx_ns = now
        bs, t = self.bs, self.table
        refusals = self._stage_counts
        refusals[:] = 0
        k, n_ref, t.next_rid = stage_requests(
            bs.data, bs.lengths, bs.src_ip, bs.src_port, n, self.max_run_ns, self.known_type, self.run_scale,
            t.next_rid, t.t_mask, t.t_req_id, t.t_type, t.t_run, t.t_ip, t.t_port, t.t_live, t.t_done,
            t.t_stopping, self._st_rid, self._st_ptype, self._st_refused, refusals)
        if refusals.any():
            counts.add_staged(refusals)
        c["accepted"] += k + n_ref
        if n_ref:
            refused = self._st_refused[:n_ref]
            f, _ = decode_requests(bs.data[refused], np.full(n_ref, 16))
            self.replies.drop(f["req_id"], f["type"], bs.src_ip[refused], bs.src_port[refused])
        return k

    def _flush_fast(self, now: int) -> None:
        """After a fast loop: send its responses, wake the parked workers it assigned to."""
        reg = self.reg
        m = int(reg[R_NRESP])
        if m:
            reg[R_NRESP] = 0
            self.replies.send(self.resp_rows[:m], self.resp_ip[:m], self.resp_port[:m])
        if reg[R_NWAKE]:
            sems = self.sems
            for w in self._wake[: reg[R_NWAKE]].tolist():
                sems[w].release()
            reg[R_NWAKE] = 0
        if reg[R_NHELD]:            # a full worker ring (cannot happen with one request each): retry
            h = int(reg[R_NHELD])
            self.py.hold(self._held[:h].tolist())
            reg[R_NHELD] = 0
            self.py.assign(now)

    # -- reporting -----------------------------------------------------------------------------
    def counters(self) -> dict:
        """The counters so far: the Python path's and the fast loop's together."""
        return self.counts.snapshot()

    def stats(self) -> dict:
        """Counters and rates so far (JSON-able)."""
        totals = self.worker_totals
        if totals is None and self.tx is not None:
            totals = worker_counters(self.tx)
        header = {"reply": self.reply, "policy": self.policy_name, "workload": self.workload.name,
                  "n_workers": self.n_workers, "worker_kind": self.worker_kind, "port": self.port}
        return self.counts.stats(header, self.pol, totals)
