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

Queueing delay is bounded (``max_queue_delay_us``): a request that has waited in its queue
longer than its type's limit when its turn comes is *shed* — not run, answered ``SIZE_DROPPED``,
counted in ``shed`` (and ``dropped``) — so that an overloaded server answers late requests at
once instead of running them seconds late. ``None`` (default): the automatic limit, 20 × the
longest mean run time per type received so far, at least 1 s
(:func:`~tailgate.dispatch.live.fastpath.auto_queue_delay_ns`); a number: that many µs for every
type; a dict ``{type name or id: µs}``: per type (types left out get the automatic limit; 0 is
no limit); 0: no limit (4096-deep queues then hold seconds of work in an overload).

Accounting: every accepted request is completed, dropped or abandoned, exactly
(:mod:`~tailgate.dispatch.live.counters`): :meth:`Server.close` counts the requests still queued
or running when the server stops as ``abandoned`` and answers them ``SIZE_DROPPED``.

A worker that dies (``kill -9``, a crash) does not stop the server: within ``WORKER_CHECK_S``
its notices are taken, the request it held is counted ``abandoned`` (reason ``worker 2 died
(SIGKILL)``) and answered ``SIZE_DROPPED``, and a new worker is forked in its place (at most
``MAX_WORKER_RESTARTS`` times each; then the server stops, with its counters). ``say`` (a
callable, default none) is told each such event in one line; ``stats()["events"]`` keeps them.

A hello (:data:`~tailgate.dispatch.live.wire.HELLO_MAGIC`) is answered with the server's
configuration (:meth:`Server.hello_config`), so a client can check it is sized for this server.

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

from tailgate.core.errors import ArgError, TailgateError
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
    K_HELLO,
    K_N,
    QD_AUTO_MIN_NS,
    QD_LIMIT,
    QD_N,
    QD_TYPES,
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
from tailgate.dispatch.live.wire import (
    BatchSocket,
    decode_requests,
    encode_hello_reply,
    int_to_ip,
)
from tailgate.dispatch.live.worker import (
    WorkerPool,
    WorkerSpec,
    exit_reason,
    warm_worker_loop,
    worker_counters,
)
from tailgate.dispatch.policy import make_policy
from tailgate.dispatch.workloads import Workload, get_workload

WORKER_CHECK_S = 0.1          # how often the dispatcher looks for dead workers
MAX_WORKER_RESTARTS = 10      # per worker; one more death stops the server
HELLO_VERSION = 1


def queue_delay_limits(workload: Workload, max_queue_delay_us) -> np.ndarray:
    """``qd_lim`` (by wire type id, ns; -1 automatic, 0 none) from ``max_queue_delay_us``:
    None (automatic for every type), a number of µs (0: none) or ``{type name or id: µs}``."""
    lim = np.full(QD_TYPES, -1, np.int64)
    if max_queue_delay_us is None:
        return lim
    if not isinstance(max_queue_delay_us, dict):
        max_queue_delay_us = {t.type_id: max_queue_delay_us for t in workload.types} | {"*": max_queue_delay_us}
    ids = {t.name.lower(): t.type_id for t in workload.types} | {str(t.type_id): t.type_id for t in workload.types}
    for key, us in max_queue_delay_us.items():
        if isinstance(us, bool) or not isinstance(us, (int, float, np.integer, np.floating)) or not us >= 0:
            raise ArgError(f"serve: max_queue_delay_us for {key!r} must be a number of µs >= 0, got {us!r}")
        if key == "*":
            lim[:] = int(us * 1000)
            continue
        type_id = ids.get(str(key).lower())
        if type_id is None:
            raise ArgError(f"serve: max_queue_delay_us names type {key!r}, which workload {workload.name!r} "
                           f"does not have (types: {', '.join(t.name for t in workload.types)})")
        lim[type_id] = int(us * 1000)
    return lim


class Server:
    """The dispatcher's state and loop (see the module manual)."""

    def __init__(self, policy: str, workload: Workload | str, n_workers: int, *, host: str = "127.0.0.1",
                 port: int = 0, worker_kind: str = "spin", burst: int = 64, max_run_ns: int = 1_000_000_000,
                 worker_idle: str = "block", idle_spin_ns: int = 20_000, sleep_spin_ns: int = 0,
                 run_scale: float = 1.0, policy_params: dict | None = None, pin: bool = False,
                 worker_spin_ns: int = 0, reply: str = "dispatcher", cycle_idle_ns: int = 20_000,
                 cycle_budget_ns: int = 200_000, worker_yield: bool = False,
                 max_queue_delay_us: float | dict | None = None, say: Callable[[str], None] | None = None):
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
        self.max_queue_delay_us = max_queue_delay_us
        self.qd_lim = queue_delay_limits(self.workload, max_queue_delay_us)
        self.qd_obs = np.zeros((2, QD_TYPES), np.int64)       # run-time sums and counts per type
        self.qd_state = np.zeros(QD_N, np.int64)
        self.qd_state[QD_LIMIT] = QD_AUTO_MIN_NS
        self._alloc_buffers()
        self.counts = ServerCounters(self.reg)
        self.say = say or (lambda line: None)
        self.events: list[str] = []
        self.restarts = np.zeros(self.n_workers, np.int64)
        self.dead_totals = {"sent": 0, "send_err": 0, "busy_ns": 0}   # counters of workers that died
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
        self._st_hello = np.zeros(burst, np.int64)
        self._pushed = np.zeros(n, np.int64)
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
                             ctl_offsets=self.off, reply=self.reply, worker_idle=self.worker_idle,
                             qd_lim=self.qd_lim, qd_state=self.qd_state)
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
        self._prefault()
        self.sems = self.py.sems = self.pool.sems
        return self.port

    def _prefault(self) -> None:
        """Write one word of every page of the request table and the policy's arrays (after the
        workers forked: the pages are the dispatcher's own at once), so that there are no page
        faults on the request path and the server's memory does not creep up while the table's
        slots are first used."""
        arrays = [v for v in vars(self.table).values() if isinstance(v, np.ndarray)]
        arrays += [a for a in self.pol.state if isinstance(a, np.ndarray)]
        for a in arrays:
            flat = a.reshape(-1)
            step = max(1, 4096 // max(a.itemsize, 1))
            flat[::step] = flat[::step].copy()

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
                            self.resp_port, self._wake, self._held, t.t_arr, self.qd_lim, self.qd_state,
                            self._pushed)
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

    def abandon_live(self) -> int:
        """Count every request still live as ``abandoned`` (``running at stop`` if a worker holds
        it, else ``queued at stop``) and answer it ``SIZE_DROPPED``; returns how many. After the
        loop and :meth:`drain`: nothing will complete them now."""
        t, w = self.table, self.workers
        slots = t.live_slots()
        if len(slots) == 0:
            return 0
        running = np.isin(slots, w.w_rid[w.w_running] & t.t_mask)
        self.counts.abandon(int(running.sum()), "running at stop")
        self.counts.abandon(int((~running).sum()), "queued at stop")
        t.t_live[slots] = False
        if self.sock is not None:
            self.replies.refuse(t.t_req_id[slots], t.t_type[slots], t.t_ip[slots], t.t_port[slots])
        return len(slots)

    def close(self) -> None:
        """Count what is still live as abandoned (:meth:`abandon_live`), stop and reap the
        workers, unlink the shared memory, close the socket. Idempotent."""
        if self.sock is not None and self.rx is not None:
            self.abandon_live()
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        if self.tx is not None:
            self.worker_totals = worker_counters(self.tx)
            for k, v in self.dead_totals.items():
                self.worker_totals[k] += v
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
        check_ns = int(WORKER_CHECK_S * 1e9)
        next_check = start + check_ns
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
            if now >= next_check:
                next_check = now + check_ns
                for w, code in self.pool.dead():
                    self._on_worker_death(w, code, now)
            if now >= next_tick:
                next_tick = now + int(tick_s * 1e9)
                if end is not None and now >= end:
                    break
                if stop_event is not None and stop_event.is_set():
                    break
                if on_tick is not None:
                    on_tick(self, (now - start) / 1e9)
            elif end is not None and now >= end:
                break

    def _on_worker_death(self, w: int, exitcode: int | None, now: int) -> None:
        """Worker ``w`` died: take the notices it posted, count the request it held as abandoned
        (answered ``SIZE_DROPPED``), and fork a new worker in its place (see the module manual)."""
        reason = f"worker {w} died ({exit_reason(exitcode)})"
        self.counts.c["worker_deaths"] += 1
        self.py.poll_notices(now)                     # what it finished before it died still counts
        t, wt = self.table, self.workers
        lost = 0
        if wt.w_running[w]:
            slot = wt.w_rid[w] & t.t_mask
            if wt.w_draining[w]:
                # the policy took the request back already (a preemption): it runs again elsewhere
                t.t_stopping[slot] = False
            elif t.t_live[slot]:
                t.t_live[slot] = False
                lost = 1
                self.counts.abandon(1, reason)
                self.replies.refuse(t.t_req_id[slot: slot + 1], t.t_type[slot: slot + 1],
                                    t.t_ip[slot: slot + 1], t.t_port[slot: slot + 1])
                self.pol.release(w)
            wt.w_running[w] = wt.w_draining[w] = False
            wt.w_rid[w] = -1
        off = self.off
        for k in self.dead_totals:
            self.dead_totals[k] += int(self.ctl[off[k] + w])
        if self.restarts[w] >= MAX_WORKER_RESTARTS:
            self._event(f"{reason}, {lost} request(s) abandoned; it died {MAX_WORKER_RESTARTS + 1} times: "
                        "the server stops")
            raise TailgateError(f"serve: {reason} after {MAX_WORKER_RESTARTS} restarts; stopped")
        self.restarts[w] += 1
        self.counts.c["worker_restarts"] += 1
        pid = self.pool.restart(w)
        self._prefault()                              # the pages the fork shared are ours again at once
        self._event(f"{reason}: {lost} request(s) it held counted abandoned; restarted (pid {pid})")

    def _event(self, line: str) -> None:
        self.events.append(line)
        self.say(line)

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
            t.t_stopping, t.t_arr, now, self.qd_obs, self.qd_state, self._st_rid, self._st_ptype,
            self._st_refused, self._st_hello, refusals)
        if refusals.any():
            if refusals[K_HELLO]:
                self._answer_hellos(int(refusals[K_HELLO]))
            counts.add_staged(refusals)
        c["accepted"] += k + n_ref
        if n_ref:
            refused = self._st_refused[:n_ref]
            f, _ = decode_requests(bs.data[refused], np.full(n_ref, 16))
            self.replies.drop(f["req_id"], f["type"], bs.src_ip[refused], bs.src_port[refused])
        return k

    def hello_config(self) -> dict:
        """What a hello is answered with: the server's configuration (JSON-able)."""
        wl = self.workload
        lim = self.qd_lim
        return {"server": "tailgate", "version": HELLO_VERSION, "policy": self.policy_name,
                "n_workers": self.n_workers, "workload": wl.name,
                "types": [[t.type_id, t.name, float(t.service_ns)] for t in wl.types],
                "run_scale": self.run_scale, "worker_kind": self.worker_kind,
                "max_queue_delay_us": {t.name: (None if lim[t.type_id] < 0 else lim[t.type_id] / 1e3)
                                       for t in wl.types}}

    def _answer_hellos(self, m: int) -> None:
        bs = self.bs
        for i in self._st_hello[:m].tolist():
            nonce = int.from_bytes(bs.data[i, 4:8].tobytes(), "little")
            try:
                self.sock.sendto(encode_hello_reply(nonce, self.hello_config()),
                                 (int_to_ip(bs.src_ip[i]), int(bs.src_port[i])))
                self.counts.c["hellos"] += 1
            except OSError:
                pass                 # the client is gone; it asks again

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
            totals = {k: v + self.dead_totals[k] for k, v in worker_counters(self.tx).items()}
        header = {"reply": self.reply, "policy": self.policy_name, "workload": self.workload.name,
                  "n_workers": self.n_workers, "worker_kind": self.worker_kind, "port": self.port}
        s = self.counts.stats(header, self.pol, totals)
        s["events"] = list(self.events)
        s["queue_delay_limit_us"] = self.queue_delay_limits_us()
        return s

    def queue_delay_limits_us(self) -> dict:
        """Each declared type's queueing-delay limit now, in µs (None: no limit)."""
        out = {}
        for t in self.workload.types:
            lim = int(self.qd_lim[t.type_id])
            lim = int(self.qd_state[QD_LIMIT]) if lim < 0 else lim
            out[t.name] = lim / 1e3 if lim > 0 else None
        return out
