"""The dispatcher: receive a burst of requests, hand them to the policy, send the assignments to
the workers' rings, and answer the clients.

Manual
------
:class:`Server` is the dispatcher's state and loop; :func:`tailgate.dispatch.live.process.serve`
is the usual way to run one. A round of :meth:`Server.run`:

1. receive up to ``burst`` datagrams in one ``recvmmsg``
   (:class:`~tailgate.dispatch.live.wire.BatchSocket`) and decode them into the request table
   (:func:`~tailgate.dispatch.live.fastpath.stage_requests`), indexed by request id modulo its
   size (large enough for every queue to be full at once);
2. without time slicing: one compiled call, :func:`~tailgate.dispatch.live.fastpath.fast_loop`,
   does the rest — arrivals, completion notices, assignments, ring entries — then this class sends
   the responses it queued (one ``sendmmsg``) and posts the semaphores of parked workers it
   assigned to;
3. with time slicing (policy ``ts``): the Python path — ``pol.arrive``, the notices
   (:meth:`_poll_notices`), ``pol.preempt`` for requests that have run a slice (the worker's
   preempt word is raised and its next assignment, and the request's re-dispatch, wait until it
   answers ``preempted`` or ``done``, so a request is answered exactly once), ``pol.assign``;
4. idle for ``idle_spin_ns``: sleep in ``select`` on the socket and the workers' doorbell pipe.

Who sends a served request's response (``reply``): the dispatcher (default: the responses of
the notices it collected, in one ``sendmmsg`` with the drop answers) or the worker itself.

Bad input never stops the server; each case is counted: ``malformed`` by reason (``short``,
``oversize``, ``bad_run_ns`` — ``run_ns`` above ``max_run_ns``); ``unknown_type`` (an id the
workload does not declare: the policy's UNKNOWN queue, served by DARC's spillway worker);
``dropped`` (the policy's queue, or the request table, was full: answered with
``size = SIZE_DROPPED``); ``ring_full`` (a worker's ring refused an entry: retried, never lost).

Example::

    srv = Server("darc", "disp2", n_workers=4, worker_kind="sleep")
    port = srv.start()                 # bound, workers up
    srv.run(duration_s=5)
    srv.drain(); srv.close(); srv.stats()
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable

import numpy as np

from tailgate.core.errors import ArgError
from tailgate.dispatch.live.cpu import ns_per_tick, pin, split_cpus
from tailgate.dispatch.live.fastpath import (
    K_BAD_RUN,
    K_N,
    K_OVERSIZE,
    K_SHORT,
    K_TABLE_FULL,
    K_UNKNOWN,
    R_COMPLETED,
    R_CYCLES,
    R_DISPATCHED,
    R_DROPPED,
    R_N,
    R_NEXT_SEQ,
    R_NHELD,
    R_NRESP,
    R_NWAKE,
    R_RING_FULL,
    R_STALE,
    LoopRef,
    fast_loop,
    fill_tx,
    stage_requests,
    take_notices,
)
from tailgate.dispatch.live.layout import (
    C_DISP_SLEEPING,
    C_SLICE_NS,
    DONE,
    PREEMPTED,
    RX_LEFT_NS,
    RX_N,
    RX_RID,
    RX_SEQ,
    RX_STATUS,
    TX_N,
    ctl_offsets,
)
from tailgate.dispatch.live.ring import HEAD, TAIL, RingSet
from tailgate.dispatch.live.wire import (
    REASONS,
    SIZE_DROPPED,
    BatchSocket,
    decode_requests,
    encode_responses,
    udp_socket,
)
from tailgate.dispatch.live.worker import (
    IDLE_MODES,
    REPLY_MODES,
    WORKER_KINDS,
    WorkerPool,
    WorkerSpec,
    warm_worker_loop,
    worker_counters,
)
from tailgate.dispatch.policy import make_policy
from tailgate.dispatch.workloads import Workload, get_workload

MAX_SERVER_WORKERS = 64        # each worker is a process; the artifact's limit is 32
RING_CAPACITY = 4096           # entries per ring, as the artifact's LRPC rings


def warm_policy(policy: str, workload: Workload, n_workers: int, params: dict | None = None) -> None:
    """Run every policy call once on a throwaway policy: numba loads (or compiles) the kernels on
    first use, ~1 s, which would otherwise stall the first requests. A process forked
    afterwards inherits the loaded kernels."""
    pol = make_policy(policy, workload, n_workers, **(params or {}))
    ids = np.array([t.type_id for t in workload.types] + [0], np.int64)
    pol.arrive(np.arange(len(ids), dtype=np.int64), ids, 1)
    for now in range(2, 6):
        workers, _ = pol.assign(now)
        if pol.slice_ns and len(workers):
            pol.preempt(int(workers[0]), now)
        pol.complete(workers, now + 1)
    pol.reservation()
    pol.counters()


def check_server_args(n_workers, worker_kind: str, reply: str, worker_idle: str, burst: int, port: int,
                      run_scale: float) -> None:
    """ArgError, in one line, for the first argument of :class:`Server` that is out of range."""
    if not isinstance(n_workers, (int, np.integer)) or not 1 <= n_workers <= MAX_SERVER_WORKERS:
        raise ArgError(f"serve: n_workers must be an integer in 1..{MAX_SERVER_WORKERS}, got {n_workers!r}")
    if worker_kind not in WORKER_KINDS:
        raise ArgError(f"serve: unknown worker kind {worker_kind!r} (kinds: {', '.join(WORKER_KINDS)})")
    if reply not in REPLY_MODES:
        raise ArgError(f"serve: reply must be one of {', '.join(REPLY_MODES)}, got {reply!r}")
    if worker_idle not in IDLE_MODES:
        raise ArgError(f"serve: worker_idle must be 'block' or 'poll', got {worker_idle!r}")
    if not 1 <= burst <= 1024:
        raise ArgError(f"serve: burst must be in 1..1024, got {burst!r}")
    if not 0 <= port < 65536:
        raise ArgError(f"serve: port {port!r} is outside 0..65535")
    if not run_scale > 0:
        raise ArgError(f"serve: run_scale must be > 0, got {run_scale!r}")


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
        self._fence = threading.Lock()
        self.sleep_spin_ns, self.run_scale = int(sleep_spin_ns), float(run_scale)
        self.host, self.port_wanted = host, port
        self.pin = bool(pin)
        self.slice_ns = int(self.pol.slice_ns)
        self.preempt_cost_ns = int(self.pol.preempt_cost_ns)
        self.fast = self.slice_ns == 0           # no time slicing: the compiled fast loop
        self._alloc_request_table()
        self._alloc_worker_state()
        self._alloc_scratch()
        self.known_type = np.zeros(256, bool)
        for t in self.workload.types:
            self.known_type[t.type_id] = True
        self.c = {"rx_datagrams": 0, "accepted": 0, "malformed": 0, "unknown_type": 0, "dropped": 0,
                  "drop_answers": 0, "dispatched": 0, "completed": 0, "preempted": 0, "stale_notices": 0,
                  "ring_full": 0, "table_full": 0, "loops": 0, "idle_waits": 0, "dispatcher_sent": 0,
                  "dispatcher_send_errors": 0}
        self.malformed = {r: 0 for r in REASONS[1:]}
        self.first_rx_ns = 0
        self.last_event_ns = 0
        self.sock = None
        self.tx = self.rx = None
        self.pool: WorkerPool | None = None
        self.sems: list = []
        self._stop = False

    def _alloc_request_table(self) -> None:
        """Requests by ``rid & t_mask``: large enough for every queue to be full at once."""
        queue_len = int(self.pol.params.get("queue_len", 4096))
        live_max = max(self.n_workers, len(self.workload.types) + 1) * queue_len + self.n_workers
        size = 1 << int(np.ceil(np.log2(2 * live_max)))
        self.t_mask = size - 1
        self.t_req_id = np.zeros(size, np.int64)
        self.t_type = np.zeros(size, np.int64)
        self.t_run = np.zeros(size, np.int64)
        self.t_ip = np.zeros(size, np.int64)
        self.t_port = np.zeros(size, np.int64)
        self.t_live = np.zeros(size, bool)
        self.t_done = np.zeros(size, bool)        # ts: finished while being preempted
        self.t_stopping = np.zeros(size, bool)    # ts: a preempted run not yet acknowledged
        self.next_rid = 0

    def _alloc_worker_state(self) -> None:
        """What the dispatcher knows of each worker: its current assignment."""
        n = self.n_workers
        self.w_seq = np.zeros(n, np.int64)
        self.w_rid = np.full(n, -1, np.int64)
        self.w_slice_start = np.zeros(n, np.int64)
        self.w_running = np.zeros(n, bool)
        self.w_draining = np.zeros(n, bool)
        self.held: list[tuple[int, int]] = []          # assignments waiting (ts hand-over, full ring)
        self.again = False                             # ts: assign again next loop

    def _alloc_scratch(self) -> None:
        """The compiled kernels' scratch arrays and the fast loop's registers and buffers."""
        n, burst = self.n_workers, self.burst
        self._counts = np.zeros(K_N, np.int64)
        self._st_rid = np.zeros(burst, np.int64)
        self._st_ptype = np.zeros(burst, np.int64)
        self._st_refused = np.zeros(burst, np.int64)
        self._nt_w = np.zeros(n * 64, np.int64)
        self._nt_notes = np.zeros((n * 64, RX_N), np.int64)
        self._nt_taken = np.zeros(n, np.int64)
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
        self._pushed = np.zeros(2 * n + 1, bool)

    # -- lifetime ------------------------------------------------------------------------------
    def _warm_kernels(self) -> None:
        """Load (or compile) the dispatcher's and the workers' kernels before the first request."""
        self._counts[:] = 0
        stage_requests(self.bs.data, self.bs.lengths, self.bs.src_ip, self.bs.src_port, 0, self.max_run_ns,
                       self.known_type, self.run_scale, 0, self.t_mask, self.t_req_id, self.t_type, self.t_run,
                       self.t_ip, self.t_port, self.t_live, self.t_done, self.t_stopping, self._st_rid,
                       self._st_ptype, self._st_refused, self._counts)
        take_notices(self.rx.idx, self.rx.entries, self._nt_w, self._nt_notes, self._nt_taken)
        self._make_loop()
        fast_loop(self.pol.ref, self.loop, 0, 0, self.ns_per_tsc, False, 0, 0)   # nothing runs: one pass
        warm_worker_loop(self.tx, self.rx)
        none = np.zeros(0, np.int64)
        fill_tx(none, none, self.t_mask, self.t_req_id, self.t_type, self.t_run, self.t_ip, self.t_port,
                self.tx.idx, self.tx.entries, 0, self.w_seq, self.w_rid, self.w_slice_start, self.w_running, 0,
                self._pushed[:0])

    def _make_loop(self) -> None:
        parked = self.ctl[self.off["parked"]: self.off["parked"] + self.n_workers]
        self.loop = LoopRef(self.reg, self.t_mask, self.rx.idx, self.rx.entries, self.tx.idx, self.tx.entries, parked,
                            self.w_seq, self.w_rid, self.w_slice_start, self.w_running, self.t_req_id, self.t_type,
                            self.t_run, self.t_ip, self.t_port, self.t_live, self._st_rid, self._st_ptype, self.resp,
                            self.resp_ip, self.resp_port, self._wake, self._held)
        # The fast loop's clock: cycle-counter ticks -> ns (0 where there is no counter: one pass a call).
        self.ns_per_tsc = ns_per_tick()

    def start(self, ready_timeout_s: float = 60.0) -> int:
        """Bind, create the rings, start the workers; returns the bound UDP port."""
        warm_policy(self.policy_name, self.workload, self.n_workers, self.policy_params)
        try:
            self.sock = udp_socket(self.host, self.port_wanted)
        except OSError as e:
            raise ArgError(f"serve: cannot bind UDP {self.host}:{self.port_wanted}: {e.strerror or e}") from None
        self.port = self.sock.getsockname()[1]
        self.bs = BatchSocket(self.sock, burst=self.burst)
        n = self.n_workers
        self.off = ctl_offsets(n)
        self.tx = RingSet(n, TX_N, capacity=RING_CAPACITY, extra_words=self.off["end"])
        self.rx = RingSet(n, RX_N, capacity=RING_CAPACITY)
        self.ctl = self.tx.extra
        self._warm_kernels()
        self.ctl[C_SLICE_NS] = self.slice_ns
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
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
        self.pool = WorkerPool(n, spec, self.tx, self.rx, self.wake_w, close_fds=(self.sock.fileno(), self.wake_r))
        self.pool.start(ready_timeout_s)
        self.sems = self.pool.sems
        return self.port

    def stop(self) -> None:
        self._stop = True

    def drain(self, timeout_s: float = 0.2) -> None:
        """After the loop: take the notices of requests still running (up to ``timeout_s``), so that
        what was answered is also counted as completed. Nothing new is dispatched."""
        if self.rx is None:
            return
        deadline = time.perf_counter_ns() + int(timeout_s * 1e9)
        while self.w_running.any() and time.perf_counter_ns() < deadline:
            if not self._poll_notices(time.perf_counter_ns()):     # notices only, nothing new goes out
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
        bs = self.bs
        fast, pol_ref, loop, ns_per_tsc = self.fast, self.pol.ref, self.loop, self.ns_per_tsc
        reply = self.reply == "dispatcher"
        cycle_idle_ns, cycle_budget_ns = self.cycle_idle_ns, self.cycle_budget_ns
        while not self._stop:
            now = pc()
            self.c["loops"] += 1
            busy = False
            n = bs.recv_burst()
            if fast:
                k = self._on_requests(n, now) if n else 0
                if fast_loop(pol_ref, loop, k, now, ns_per_tsc, reply, cycle_idle_ns, cycle_budget_ns) or n:
                    busy = True
                    self.last_event_ns = now
                self._flush_fast(now)
            else:
                busy = self._slow_round(n, now)
            if busy or self.held or self.again:
                if not fast or self.held:
                    self._assign(now)
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

    def _slow_round(self, n: int, now: int) -> bool:
        """The Python path (time slicing): arrivals, notices, expired slices; True if busy."""
        busy = False
        if n:
            self._on_requests(n, now, arrive=True)
            busy = True
        if self._poll_notices(now):
            busy = True
        if self.w_running.any():
            busy |= self._check_slices(now)
        return busy

    def _sleep(self, now: int) -> None:
        """Nothing to do for a while: block until a datagram or a worker's doorbell."""
        sleeping = self.ctl
        sleeping[C_DISP_SLEEPING] = 1
        if len(self.rx) == 0:
            timeout = 0.001 if self.w_running.any() else 0.05
            if self.slice_ns and self.w_running.any():
                # wake when the first running request has had its slice
                due_ns = int(self.w_slice_start[self.w_running].min()) + self.slice_ns - now
                timeout = min(timeout, max(due_ns, 0) / 1e9)
            self.c["idle_waits"] += 1
            try:
                select.select([self.sock.fileno(), self.wake_r], (), (), timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                pass
        sleeping[C_DISP_SLEEPING] = 0
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass

    def _on_requests(self, n: int, now: int, arrive: bool = False) -> int:
        """Decode ``n`` received datagrams into the request table; returns how many were staged
        (``_st_rid/_st_ptype[:k]``) and, with ``arrive``, hands them to the policy here (the fast
        loop does that itself)."""
        c = self.c
        c["rx_datagrams"] += n
        if self.first_rx_ns == 0:
            self.first_rx_ns = now
        bs = self.bs
        counts = self._counts
        counts[:] = 0
        k, n_ref, self.next_rid = stage_requests(
            bs.data, bs.lengths, bs.src_ip, bs.src_port, n, self.max_run_ns, self.known_type, self.run_scale,
            self.next_rid, self.t_mask, self.t_req_id, self.t_type, self.t_run, self.t_ip, self.t_port,
            self.t_live, self.t_done, self.t_stopping, self._st_rid, self._st_ptype, self._st_refused, counts)
        if counts.any():
            for reason, i in (("short", K_SHORT), ("oversize", K_OVERSIZE), ("bad_run_ns", K_BAD_RUN)):
                self.malformed[reason] += int(counts[i])
            c["malformed"] += int(counts[K_SHORT] + counts[K_OVERSIZE] + counts[K_BAD_RUN])
            c["unknown_type"] += int(counts[K_UNKNOWN])
            c["table_full"] += int(counts[K_TABLE_FULL])
        c["accepted"] += k + n_ref
        if n_ref:
            f, _ = decode_requests(bs.data[self._st_refused[:n_ref]], np.full(n_ref, 16))
            self._answer_dropped(f["req_id"], f["type"], bs.src_ip[self._st_refused[:n_ref]],
                                 bs.src_port[self._st_refused[:n_ref]])
        if k == 0 or not arrive:
            return k
        rid = self._st_rid[:k]
        accepted = self.pol.arrive(rid, self._st_ptype[:k], now)
        if not accepted.all():
            slots = rid[~accepted] & self.t_mask
            self.t_live[slots] = False
            self._answer_dropped(self.t_req_id[slots], self.t_type[slots], self.t_ip[slots], self.t_port[slots])
        return k

    def _answer_dropped(self, req_id, type_id, ip, port) -> None:
        """Refused requests are answered with size = SIZE_DROPPED, so the client knows at once."""
        self.c["dropped"] += len(req_id)
        rows = encode_responses(req_id, type_id, SIZE_DROPPED)
        self.c["drop_answers"] += self.bs.send_burst(rows, None, ip, port)

    def _poll_notices(self, now: int) -> bool:
        """Take every waiting completion notice (the Python path: time slicing, and the drain);
        True if there were any."""
        rx = self.rx
        k = take_notices(rx.idx, rx.entries, self._nt_w, self._nt_notes, self._nt_taken)
        if k == 0:
            return False
        rx.idx[:, HEAD] += self._nt_taken             # free the slots only after the copy
        workers, notes = self._nt_w[:k].copy(), self._nt_notes[:k].copy()
        if self.reply == "dispatcher":
            served = notes[:, RX_STATUS] == DONE       # finished (even if it was being preempted)
            if served.any():
                slots = notes[served, RX_RID] & self.t_mask
                self._send_responses(encode_responses(self.t_req_id[slots], self.t_type[slots], 0),
                                     self.t_ip[slots], self.t_port[slots])
        self._on_notices(workers, notes, now)
        return True

    def _send_responses(self, rows, ip, port) -> int:
        """Send responses (one ``sendmmsg`` a burst); a full socket buffer is waited out briefly,
        then what still did not leave is counted in ``dispatcher_send_errors``."""
        m = len(rows)
        sent = self.bs.send_burst(rows, None, ip, port)
        tries = 0
        while sent < m and tries < 50:
            tries += 1
            select.select((), (self.bs.fd,), (), 0.001)
            sent += self.bs.send_burst(rows[sent:], None, ip[sent:], port[sent:])
        self.c["dispatcher_sent"] += sent
        self.c["dispatcher_send_errors"] += m - sent
        return sent

    def _flush_fast(self, now: int) -> None:
        """After a fast loop: send its responses, wake the parked workers it assigned to."""
        reg = self.reg
        m = int(reg[R_NRESP])
        if m:
            reg[R_NRESP] = 0
            self._send_responses(self.resp_rows[:m], self.resp_ip[:m], self.resp_port[:m])
        if reg[R_NWAKE]:
            sems = self.sems
            for w in self._wake[: reg[R_NWAKE]].tolist():
                sems[w].release()
            reg[R_NWAKE] = 0
        if reg[R_NHELD]:            # a full worker ring (cannot happen with one request each): retry
            h = int(reg[R_NHELD])
            self.held.extend(map(tuple, self._held[:h].tolist()))
            reg[R_NHELD] = 0
            self._assign(now)

    def _on_notices(self, workers: np.ndarray, notes: np.ndarray, now: int) -> None:
        self.last_event_ns = now
        current = self.w_seq[workers] == notes[:, RX_SEQ]
        if not current.all():
            self.c["stale_notices"] += int((~current).sum())
        if self.slice_ns:
            draining = self.w_draining[workers]       # a copy, taken before the hand-over clears it
            if draining.any():
                self._on_handover(workers, notes, now)
                current &= ~draining
        done = workers[current & (notes[:, RX_STATUS] == DONE)]
        if len(done):
            self.pol.complete(done, now)
            self.t_live[self.w_rid[done] & self.t_mask] = False
            self.w_running[done] = False
            self.c["completed"] += len(done)

    def _on_handover(self, workers, notes, now) -> None:
        """ts: a preempted worker answered; settle its request and let held assignments go."""
        for w, note in zip(workers.tolist(), notes.tolist()):
            if not self.w_draining[w] or note[RX_SEQ] != self.w_seq[w]:
                continue
            slot = self.w_rid[w] & self.t_mask
            if note[RX_STATUS] == PREEMPTED:
                self.t_run[slot] = note[RX_LEFT_NS] + self.preempt_cost_ns
                self.c["preempted"] += 1
            else:
                self.t_done[slot] = True       # it finished before seeing the flag: answered once
            self.t_stopping[slot] = False
            self.w_draining[w] = False
            self.w_running[w] = False
            self.w_rid[w] = -1

    def _check_slices(self, now: int) -> bool:
        """ts: offer every request that has run a slice back to the policy."""
        expired = np.flatnonzero(self.w_running & ~self.w_draining & (now - self.w_slice_start >= self.slice_ns))
        took = False
        for w in expired.tolist():
            if self.pol.preempt(w, now):
                self.w_draining[w] = True
                self.t_stopping[self.w_rid[w] & self.t_mask] = True
                self.ctl[self.off["preempt"] + w] = self.w_seq[w]
                took = True
            else:
                self.w_slice_start[w] = now
        return took

    def _assign(self, now: int) -> None:
        self.again = False
        workers, rids = self.pol.assign(now)
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
        pushed = self._pushed[: len(workers)]
        n_ok = fill_tx(workers, rids, self.t_mask, self.t_req_id, self.t_type, self.t_run, self.t_ip, self.t_port,
                       self.tx.idx, self.tx.entries, int(self.reg[R_NEXT_SEQ]), self.w_seq, self.w_rid,
                       self.w_slice_start, self.w_running, now, pushed)
        self.reg[R_NEXT_SEQ] += n_ok
        if n_ok < len(workers):
            self.c["ring_full"] += len(workers) - n_ok
            self.held.extend(zip(workers[~pushed].tolist(), rids[~pushed].tolist()))
            workers = workers[pushed]
        self.tx.idx[workers, TAIL] += 1             # publish: after the entries were written
        self.c["dispatched"] += n_ok
        if self.worker_idle == "block" and len(workers):
            with self._fence:
                pass               # full barrier: the tails above are visible before `parked` is read
            parked = workers[self.ctl[self.off["parked"] + workers] != 0]
            sems = self.sems
            for w in parked.tolist():
                sems[w].release()

    def _hold_back_draining(self, workers: np.ndarray, rids: np.ndarray, now: int):
        """ts: hold back assignments to a worker (or of a request) whose preemption is not yet
        acknowledged; complete at once a request that finished before it saw its preemption
        (answered already) and assign those workers next loop. Returns what may go now."""
        slots = rids & self.t_mask
        wait = self.w_draining[workers] | self.t_stopping[slots]
        if wait.any():
            self.held.extend(zip(workers[wait].tolist(), rids[wait].tolist()))
            workers, rids, slots = workers[~wait], rids[~wait], slots[~wait]
        finished = self.t_done[slots]
        if finished.any():
            self.pol.complete(workers[finished], now)
            self.t_live[slots[finished]] = False
            self.t_done[slots[finished]] = False
            self.c["completed"] += int(finished.sum())
            self.again = True
            workers, rids = workers[~finished], rids[~finished]
        return workers, rids

    # -- reporting -----------------------------------------------------------------------------
    def counters(self) -> dict:
        """The counters so far: the Python path's and the fast loop's together."""
        c = dict(self.c)
        reg = self.reg
        for key, r in (("dispatched", R_DISPATCHED), ("completed", R_COMPLETED), ("stale_notices", R_STALE),
                       ("dropped", R_DROPPED), ("drop_answers", R_DROPPED), ("ring_full", R_RING_FULL)):
            c[key] += int(reg[r])
        c["fast_cycles"] = int(reg[R_CYCLES])
        return c

    def stats(self) -> dict:
        """Counters and rates so far (JSON-able)."""
        s: dict = self.counters()
        s["reply"] = self.reply
        s["malformed_by_reason"] = {k: v for k, v in self.malformed.items() if v}
        s["policy"] = self.policy_name
        s["workload"] = self.workload.name
        s["n_workers"] = self.n_workers
        s["worker_kind"] = self.worker_kind
        s["port"] = getattr(self, "port", None)
        active_ns = self.last_event_ns - self.first_rx_ns
        s["active_s"] = round(active_ns / 1e9, 6) if active_ns > 0 else 0.0
        s["dispatch_rate_rps"] = round(s["dispatched"] / (active_ns / 1e9), 1) if active_ns > 0 else 0.0
        s["policy_counters"] = self.pol.counters()
        res = self.pol.reservation()
        s["reservation"] = res.table() if res is not None else None
        totals = getattr(self, "worker_totals", None)
        if totals is None and self.tx is not None:
            totals = worker_counters(self.tx)
        if totals:
            # served responses, whoever sent them (the fast loop's drop answers go out with them)
            s["responses_sent"] = totals["sent"] + s["dispatcher_sent"] - int(self.reg[R_DROPPED])
            s["response_send_errors"] = totals["send_err"] + s["dispatcher_send_errors"]
            s["worker_busy_s"] = round(totals["busy_ns"] / 1e9, 6)
        return s
