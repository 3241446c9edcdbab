"""The live request server: one dispatcher process, N worker processes, shared-memory rings.

Manual
------
``serve(policy, workload, n_workers, port=..., worker_kind=..., duration_s=...)`` runs the
artifact's architecture (reference sheet §2) with processes instead of pinned cores:

* **Dispatcher** (the calling process): owns a non-blocking UDP socket and loops: receive up to
  ``burst`` datagrams (default 64; the artifact's 8 is too few to amortize Python's per-loop
  cost) in one ``recvmmsg`` (:class:`~tailgate.dispatch.live.wire.BatchSocket`), decode them into the
  request table, hand them to the policy, collect completion notices from every worker's ring,
  complete, assign and write the assignments onto the workers' rings. Without time slicing all
  of that after the receive is one compiled call (``_fast_loop``), which calls the policy's own
  kernels (``arrive_one``/``complete_one``/``assign_all``, the ones the simulator runs) and keeps
  cycling — notices, completions, assignments — while requests run and something moved within
  ``cycle_idle_ns`` (default 20 µs), at most ``cycle_budget_ns`` (200 µs) before the socket is
  read again: a zero-work request then costs a hand-off through shared memory, not a trip
  through the Python loop (which runs once per burst). Its clock is the CPU's cycle counter,
  calibrated against ``perf_counter_ns`` at start. Time slicing (``ts``) takes the Python path
  (``pol.arrive``/``complete``/``assign``/``preempt``, a few compiled kernels per burst).
* **Workers** (``n_workers`` processes, forked): each pops one request at a time from its ring,
  works and posts a completion notice (with the request's table id). Who answers the client
  (``reply``): ``'dispatcher'`` (default) — the dispatcher sends the 12-byte responses of the
  notices it collected, all of a loop's in one ``sendmmsg`` with the drop answers; ``'worker'``
  — each worker sends its response from its own connected UDP socket before posting the notice,
  as the artifact's workers do. Either way a response leaves after the work finished, so the
  client's latency is right. The dispatcher's way is the default because it leaves the worker
  no socket call, so a ``spin`` worker runs compiled (below): on the 2-vCPU guest, 2 workers
  polling 100 µs, A/B in turn: 92–114k req/s closed loop and 80k open loop answered in full,
  against 31–56k and 50k (80k offered: a third answered late or not at all) with worker
  replies. A loopback ``sendmmsg`` costs the dispatcher ~3.6 µs a datagram (the delivery to the
  client's socket included) against 4–11 µs for a worker's ``send`` plus its Python. (With the
  previous design's 8 parked Python workers, whose dispatcher core was the bottleneck, worker
  replies were faster, 41k against 34k.) Kinds (``worker_kind``):

  - ``spin``: busy-waits ``run_ns`` on ``perf_counter_ns`` (the artifact's ``fake_work``);
  - ``sleep``: sleeps ``run_ns`` so that many workers fit a small machine. ``time.sleep`` ends
    late: on the 2-vCPU development guest a 1–100 µs sleep overshot by ~90–105 µs (median) and
    ~200–260 µs (p99) with Linux's default 50 µs timer slack. The worker sets its slack to 1 ns
    (``prctl``), which brought that to ~30–60 µs median, ~45–150 µs p99. ``sleep_spin_ns`` spins
    the last part of each sleep for precision at the cost of CPU (default 0: pure sleep, so a
    service time is ``run_ns`` plus that overshoot — scale service times up, e.g. ×100, so the
    overshoot is small beside them);
  - ``rocksdb``: a real RocksDB through ``rocksdict``: one DB of 5000 keys ``key<i>`` → "value"
    built in a temporary directory at start and opened read-only by every worker; type GET (10)
    seeks to the first key and reads it, SCAN (11) iterates all 5000 keys, any other type spins
    ``run_ns``. Not preemptible (Shinjuku also disables preemption around library calls).

  A ``spin`` worker whose replies the dispatcher sends runs compiled (``_worker_loop``: pop, spin
  on the cycle counter, notice; ~1–3 µs of CPU a zero-work request against ~7–14 µs for the
  Python loop, and 51–77k against 26–44k req/s closed loop, A/B on the 2-vCPU guest).

  An idle worker polls its ring for ``worker_spin_ns`` (default 0; the benchmark's 2 workers use
  100 µs, so back-to-back requests find them awake instead of paying a futex wake-up each).
  ``worker_yield=True`` makes a compiled worker's idle polling yield the CPU every 5 µs (the
  client beside it lagged less, p99 ~0.5 ms against ~4 ms, but at 50–60k req/s open loop some
  requests were refused for full queues that the non-yielding run answered in full — likely
  because the client, scheduled sooner, sent smaller bursts and the dispatcher paid its
  per-loop cost on fewer requests; measured before the compiled client). Then it parks on its own
  semaphore (``worker_idle='block'``, the default: on a 2-core machine a polling worker steals
  the core the dispatcher or another worker needs); the dispatcher posts the semaphores of parked
  workers only (a Dekker hand-shake on a shared ``parked`` word, fenced on both sides by a lock's
  locked instruction, so no wake-up is lost); ``'poll'`` workers never block, as the
  artifact's pinned workers (for a machine with a core per worker). The dispatcher polls for
  ``idle_spin_ns`` (default 20 µs), then sleeps in ``select`` on its socket and a doorbell pipe
  that the workers write to when it sleeps.

  ``pin=True`` puts the dispatcher on the first CPU and the workers on the others. Waking a
  worker then sends it to another core instead of letting it preempt the dispatcher on the
  waker's core (Linux's wake-affine placement), which doubled the zero-work dispatch rate on the
  2-vCPU development guest, where a futex wake-up costs ~40 µs.
* **Time slicing** (policy ``ts``): workers run in chunks and watch a per-worker preempt word in
  shared memory. When a request has run ``pol.slice_ns`` the dispatcher calls ``pol.preempt``; if
  the policy takes it back, the dispatcher raises the worker's preempt word and holds back any
  new assignment to that worker, and any re-dispatch of that request, until the worker answers:
  ``preempted`` (with the exact remaining run time, to which ``pol.preempt_cost_ns`` is added) or
  ``done`` (it finished first: the request is then completed without running again). So a request
  is answered exactly once. A worker notices the flag within one chunk (continuously when
  spinning; ``slice_ns / 4`` when sleeping).

Bad input never stops the server; each case is counted in the stats dict:
``malformed`` by reason (``short``, ``oversize``, ``bad_run_ns`` — ``run_ns`` above
``max_run_ns``, default 1 s); ``unknown_type`` (an id the workload does not declare: it goes to the
policy's UNKNOWN queue, served by DARC's spillway worker); ``dropped`` (the policy's queue was full,
or the request table was: the request is answered with ``size = SIZE_DROPPED``); ``ring_full``
(a worker's ring refused an entry: it is retried, never lost).

The server stops on SIGINT/SIGTERM (in the main thread), after ``duration_s``, or when
``stop_event`` is set; it then stops and reaps the workers, unlinks the shared memory and prints
its counters. The return value is the stats dict (JSON-able): counters, ``dispatch_rate_rps``
(dispatched requests per second between the first request and the last completion), DARC's
reservation table.

:class:`ServerProcess` runs ``serve`` in a child process (tests, benchmarks, the report)::

    with ServerProcess("darc", "disp2", n_workers=4, worker_kind="sleep") as srv:
        ...  # send to ("127.0.0.1", srv.port)
    srv.stats["dispatched"]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import select
import shutil
import signal
import struct
import tempfile
import threading
import time
from collections.abc import Callable

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.experimental import structref
from numba.extending import intrinsic

from tailgate.core.errors import ArgError, TailgateError
from tailgate.dispatch.live.ring import RingSet
from tailgate.dispatch.live.wire import (
    REASONS,
    SIZE_DROPPED,
    BatchSocket,
    decode_requests,
    encode_responses,
    set_timer_slack_ns,
    udp_socket,
)
from tailgate.dispatch.policy import arrive_one, assign_all, complete_one, make_policy
from tailgate.dispatch.workloads import GET, SCAN, Workload, get_workload

WORKER_KINDS = ("spin", "sleep", "rocksdb")
REPLY_MODES = ("dispatcher", "worker")      # who sends a served request's response
MAX_SERVER_WORKERS = 64        # each worker is a process; the artifact's limit is 32
ROCKSDB_KEYS = 5000

# dispatcher -> worker entry fields
TX_SEQ, TX_REQ_ID, TX_TYPE, TX_RUN_NS, TX_IP, TX_PORT, TX_RID, TX_N = range(8)
# worker -> dispatcher notice fields
RX_SEQ, RX_STATUS, RX_LEFT_NS, RX_END_NS, RX_RID, RX_N = range(6)
DONE, PREEMPTED = 0, 1
# shared control words (RingSet.extra of the dispatcher -> worker set): flags, then per-worker arrays
C_STOP, C_DISP_SLEEPING, C_SLICE_NS = 0, 1, 2
C_HDR = 8


def _ctl_offsets(n: int) -> dict[str, int]:
    """Start of each per-worker array among the control words."""
    return {"preempt": C_HDR, "ready": C_HDR + n, "sent": C_HDR + 2 * n, "send_err": C_HDR + 3 * n,
            "busy_ns": C_HDR + 4 * n, "parked": C_HDR + 5 * n, "end": C_HDR + 6 * n}


# --------------------------------------------------------------------------------------------
# workers
# --------------------------------------------------------------------------------------------

def _pin(cpus) -> None:
    try:
        os.sched_setaffinity(0, set(cpus))
    except (AttributeError, OSError, ValueError):
        pass          # not Linux, or those CPUs are not ours: run unpinned


def _open_rocksdb(path: str):
    from rocksdict import AccessType, Rdict
    return Rdict(path, access_type=AccessType.read_only())


def build_rocksdb(path: str, n_keys: int = ROCKSDB_KEYS) -> None:
    """The artifact's database: ``key<i>`` -> "value" for i < n_keys."""
    try:
        from rocksdict import Rdict
    except ImportError:  # pragma: no cover - a declared dependency
        raise ArgError("worker kind 'rocksdb' needs the rocksdict package (pip install rocksdict)") from None
    db = Rdict(path)
    for i in range(n_keys):
        db[f"key{i}"] = "value"
    db.close()


def _worker_main(w: int, kind: str, tx: RingSet, rx: RingSet, sem, wake_fd: int, idle: str,
                 spin_ns: int, sleep_spin_ns: int, db_path: str | None, close_fds: tuple[int, ...],
                 cpus: tuple[int, ...] = (), reply: str = "dispatcher", ns_per_tsc: float = 0.0,
                 yielding: bool = False) -> None:
    """One worker process: pop, work, post a completion notice (and with ``reply='worker'``
    answer the client itself first)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C is the dispatcher's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    import socket

    ctl = tx.extra
    off = _ctl_offsets(tx.n_rings)
    words = tx._words
    extra0 = tx._extra_base
    pre_idx = extra0 + off["preempt"] + w
    stop_idx = extra0 + C_STOP
    sleeping_idx = extra0 + C_DISP_SLEEPING
    slice_ns = int(ctl[C_SLICE_NS])
    set_timer_slack_ns(1)
    if cpus:
        _pin(cpus)
    db = _open_rocksdb(db_path) if kind == "rocksdb" else None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if reply == "worker" else None
    pack = struct.Struct("<III").pack
    peer = None
    sent_idx, err_idx, busy_idx = (extra0 + off[k] + w for k in ("sent", "send_err", "busy_ns"))
    pc = time.perf_counter_ns
    parent = os.getppid()
    sent = send_err = busy_ns = 0
    ctl[off["ready"] + w] = 1

    def spin(seq: int, run_ns: int) -> tuple[int, int]:
        end = pc() + run_ns
        if slice_ns:
            while (now := pc()) < end:
                if words[pre_idx] == seq:
                    return PREEMPTED, end - now
        else:
            while pc() < end:
                pass
        return DONE, 0

    def nap(seq: int, run_ns: int) -> tuple[int, int]:
        end = pc() + run_ns
        chunk = max(slice_ns // 4, 1_000) if slice_ns else run_ns
        while True:
            now = pc()
            left = end - now
            if left <= 0:
                return DONE, 0
            if slice_ns and words[pre_idx] == seq:
                return PREEMPTED, left
            if left <= sleep_spin_ns:
                continue
            time.sleep(min(chunk, left - sleep_spin_ns) / 1e9)

    def rocks(seq: int, run_ns: int, type_id: int) -> tuple[int, int]:
        if type_id == GET:
            it = db.iter()
            it.seek_to_first()
            it.key(), it.value()
        elif type_id == SCAN:
            it = db.iter()
            it.seek_to_first()
            while it.valid():
                it.key(), it.value()
                it.next()
        else:
            return spin(seq, run_ns)
        return DONE, 0

    parked_idx = extra0 + off["parked"] + w
    fence = threading.Lock()
    idle_since = 0
    head_idx, tail_idx = w * 16, w * 16 + 8

    def park() -> bool:
        """Dekker hand-shake with the dispatcher (which publishes its tail, fences, then reads
        this word): raise `parked`, fence, look again; one of us sees the other. Then sleep on
        the semaphore unless work came. False: time to stop."""
        words[parked_idx] = 1
        with fence:
            pass           # a locked instruction: a full memory barrier on x86
        if words[tail_idx] == words[head_idx] and not sem.acquire(timeout=0.25) and (
                words[stop_idx] or os.getppid() != parent):
            return False
        words[parked_idx] = 0
        return True

    # Spin workers that leave the reply to the dispatcher run compiled: pop, spin, notice, for as
    # long as requests keep coming within spin_ns (a Python round is ~5 us a request here).
    # With ``yielding`` an idle one polls in rounds of YIELD_POLL_NS and yields the CPU between
    # them, so a client or another worker sharing the core runs at once instead of after a
    # scheduler slice (lower send lag beside it, but measured slower: the client then sends
    # smaller bursts and the dispatcher pays its per-loop cost on fewer requests).
    compiled = kind == "spin" and sock is None and ns_per_tsc > 0
    busy_word = off["busy_ns"] + w
    served = np.zeros(1, np.int64)
    poll_ns = min(spin_ns, YIELD_POLL_NS) if yielding else spin_ns
    try:
        while compiled:
            before = served[0]
            rc = _worker_loop(tx.idx, tx.entries, rx.idx, rx.entries, ctl, w, off["preempt"] + w, busy_word,
                              poll_ns, ns_per_tsc, pc(), slice_ns > 0, served)
            if rc == W_DOORBELL:
                try:
                    os.write(wake_fd, b"\0")
                except OSError:
                    pass       # the pipe is full: the dispatcher is awake enough
                continue
            if words[stop_idx] or rc == W_STOP:
                break
            now = pc()
            if served[0] != before or idle_since == 0:
                idle_since = now - poll_ns         # the kernel has polled that long already
            if idle == "poll" or now - idle_since < spin_ns:
                if yielding:
                    os.sched_yield()
                continue
            idle_since = 0
            if not park():
                break
        while not compiled:
            e = tx.pop1(w)
            if e is None:
                # Idle: poll for spin_ns, then park on the semaphore, which the dispatcher posts
                # only for parked workers (a futex wake-up costs it ~20-40 us on a small VM).
                # 'poll' workers never park, as the artifact's pinned ones. (Napping in short
                # sleeps instead was measured slower here: timer wake-ups cost as much.)
                now = pc()
                if idle_since == 0:
                    idle_since = now
                if idle == "poll" or now - idle_since < spin_ns:
                    if words[stop_idx]:
                        break
                    continue
                if not park():
                    break
                continue
            idle_since = 0
            seq, req_id, type_id, run_ns = e[TX_SEQ], e[TX_REQ_ID], e[TX_TYPE], e[TX_RUN_NS]
            t0 = pc()
            if run_ns <= 0 and kind != "rocksdb":
                status, left = DONE, 0
            elif kind == "spin":
                status, left = spin(seq, run_ns)
            elif kind == "sleep":
                status, left = nap(seq, run_ns)
            else:
                status, left = rocks(seq, run_ns, type_id)
            if status == DONE and sock is not None:
                key = (e[TX_IP], e[TX_PORT])
                try:
                    if key != peer:
                        # A connected UDP socket skips the per-send address lookup (~15 % of a send).
                        sock.connect((socket.inet_ntoa(key[0].to_bytes(4, "big")), key[1]))
                        peer = key
                    sock.send(pack(req_id, type_id, 0))
                    sent += 1
                except OSError:
                    send_err += 1
                    peer = None
            end = pc()
            busy_ns += end - t0
            while not rx.push1(w, (seq, status, left, end, e[TX_RID])):
                time.sleep(0)          # cannot happen with one outstanding request; never lose it
            words[sent_idx] = sent
            words[err_idx] = send_err
            words[busy_idx] = busy_ns
            if words[sleeping_idx]:
                try:
                    os.write(wake_fd, b"\0")
                except OSError:
                    pass       # the pipe is full: the dispatcher is awake enough
    except KeyboardInterrupt:  # pragma: no cover - SIGINT is ignored
        pass
    finally:
        if sock is not None:
            sock.close()
        if db is not None:
            db.close()



# --------------------------------------------------------------------------------------------
# compiled per-burst bookkeeping (one call per burst instead of ~30 numpy calls)
# --------------------------------------------------------------------------------------------

# counts of _stage_requests
K_SHORT, K_OVERSIZE, K_BAD_RUN, K_UNKNOWN, K_TABLE_FULL, K_N = range(6)


@njit(cache=True)
def _u32(row, off):
    return np.int64(row[off]) | (np.int64(row[off + 1]) << 8) | (np.int64(row[off + 2]) << 16) | (np.int64(row[off + 3]) << 24)


@njit(cache=True)
def _stage_requests(data, lengths, src_ip, src_port, n, max_run_ns, known_type, run_scale, next_rid, t_mask,
                    t_req_id, t_type, t_run, t_ip, t_port, t_live, t_done, t_stopping,
                    out_rid, out_ptype, out_refused, counts):
    """Decode ``n`` received datagrams (PSP, little-endian) and put the well-formed ones in the
    request table. Returns ``(staged, refused)``: ``out_rid/out_ptype[:staged]`` go to the policy
    (type 0 for an undeclared id), ``out_refused[:refused]`` are burst indices refused because
    their table slot is still live. Malformed ones are only counted."""
    slot_bytes = data.shape[1]
    k = 0
    n_ref = 0
    rid = next_rid
    for i in range(n):
        length = lengths[i]
        if length < 16:
            counts[K_SHORT] += 1
            continue
        if length > slot_bytes:
            counts[K_OVERSIZE] += 1
            continue
        row = data[i]
        run = _u32(row, 12)
        if run > max_run_ns:
            counts[K_BAD_RUN] += 1
            continue
        slot = rid & t_mask
        rid += 1
        if t_live[slot]:
            counts[K_TABLE_FULL] += 1
            out_refused[n_ref] = i
            n_ref += 1
            continue
        type_id = _u32(row, 4)
        ptype = type_id
        if type_id >= known_type.shape[0] or not known_type[type_id]:
            counts[K_UNKNOWN] += 1
            ptype = 0
        t_req_id[slot] = _u32(row, 0)
        t_type[slot] = type_id
        t_run[slot] = run if run_scale == 1.0 else np.int64(run * run_scale)
        t_ip[slot] = src_ip[i]
        t_port[slot] = src_port[i]
        t_live[slot] = True
        t_done[slot] = False
        t_stopping[slot] = False
        out_rid[k] = rid - 1
        out_ptype[k] = ptype
        k += 1
    return k, n_ref, rid


@njit(cache=True)
def _take_notices(idx, entries, out_w, out_notes, taken):
    """Copy every waiting completion notice (oldest first per ring); ``taken[r]`` per ring. The
    caller publishes the heads afterwards (``idx[:, 0] += taken``), after this copy returned."""
    cap = entries.shape[1]
    k = 0
    for r in range(idx.shape[0]):
        head = idx[r, 0]
        m = idx[r, 8] - head
        taken[r] = m
        for j in range(m):
            if k >= out_w.shape[0]:
                taken[r] = j
                break
            e = entries[r, (head + j) % cap]
            out_w[k] = r
            for f in range(e.shape[0]):
                out_notes[k, f] = e[f]
            k += 1
    return k


@njit(cache=True)
def _fill_tx(workers, rids, t_mask, t_req_id, t_type, t_run, t_ip, t_port, idx, entries, seq0,
             w_seq, w_rid, w_slice_start, w_running, now, pushed):
    """Write each assignment into its worker's ring (entries only: the caller publishes the
    tails after this returns). ``pushed[i]`` is False where the ring is full."""
    cap = entries.shape[1]
    seq = seq0
    n_ok = 0
    for i in range(workers.shape[0]):
        w = workers[i]
        tail = idx[w, 8]
        if tail - idx[w, 0] >= cap:
            pushed[i] = False
            continue
        slot = rids[i] & t_mask
        e = entries[w, tail % cap]
        e[0] = seq
        e[1] = t_req_id[slot]
        e[2] = t_type[slot]
        e[3] = t_run[slot]
        e[4] = t_ip[slot]
        e[5] = t_port[slot]
        e[6] = rids[i]
        w_seq[w] = seq
        w_rid[w] = rids[i]
        w_slice_start[w] = now
        w_running[w] = True
        pushed[i] = True
        seq += 1
        n_ok += 1
    return n_ok

@intrinsic
def _fence(typingctx):
    """A full memory barrier (a locked instruction on x86), which the compiler does not move loads
    or stores across either: shared-memory words are read afresh after it."""
    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def _rdtsc(typingctx):
    """The CPU's cycle counter (0 where there is none): the fast loop's clock, ~10 ns a read."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@njit(cache=True)
def _tsc():
    return _rdtsc()


# registers of the fast loop (Loop.reg)
(R_COMPLETED, R_DISPATCHED, R_STALE, R_DROPPED, R_NRESP, R_NWAKE, R_NEXT_SEQ, R_NHELD, R_RING_FULL,
 R_CYCLES, R_N) = range(11)

#: The fast loop's arrays, one struct reference: a compiled call unboxes one object instead of ~25
#: arrays (~100 ns each).
LOOP_FIELDS = ("reg", "t_mask", "rx_idx", "rx_ent", "tx_idx", "tx_ent", "parked", "w_seq", "w_rid",
               "w_slice_start", "w_running", "t_req_id", "t_type", "t_run", "t_ip", "t_port", "t_live",
               "st_rid", "st_ptype", "resp", "resp_ip", "resp_port", "wake", "held")


@structref.register
class _LoopType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class LoopRef(structref.StructRefProxy):
    """The dispatcher's arrays as the fast loop sees them (same arrays, no copy)."""


structref.define_proxy(LoopRef, _LoopType, list(LOOP_FIELDS))


@njit(cache=True)
def _respond(d, slot, size):
    """Queue the response to the request in table slot ``slot`` (sent by the caller, one
    ``sendmmsg`` per loop)."""
    i = d.reg[R_NRESP]
    d.resp[i, 0] = d.t_req_id[slot]
    d.resp[i, 1] = d.t_type[slot]
    d.resp[i, 2] = size
    d.resp_ip[i] = d.t_ip[slot]
    d.resp_port[i] = d.t_port[slot]
    d.reg[R_NRESP] = i + 1


@njit(cache=True)
def _fast_loop(pst, d, k, now0, ns_per_tsc, reply, idle_ns, budget_ns):
    """One dispatcher loop without time slicing, compiled: hand the ``k`` staged requests to the
    policy (refused ones get a SIZE_DROPPED answer), then cycle — take completion notices
    (queueing the responses when ``reply``), complete, assign, write and publish the workers'
    entries — for as long as requests are running and something moved within ``idle_ns``, at
    most ``budget_ns``. So back-to-back zero-work requests cost a worker hand-off through shared
    memory, not a trip through the Python loop. Stops early when a parked worker must be woken
    (``wake[:reg[R_NWAKE]]``: the caller posts their semaphores) or the response buffer is
    nearly full. Returns True if anything moved."""
    reg = d.reg
    mask = d.t_mask
    tsc0 = _rdtsc()
    moved_any = False
    for i in range(k):
        rid = d.st_rid[i]
        if not arrive_one(pst, rid, d.st_ptype[i], now0):
            slot = rid & mask
            d.t_live[slot] = False
            _respond(d, slot, SIZE_DROPPED)
            reg[R_DROPPED] += 1
    n_w = d.rx_idx.shape[0]
    rcap = d.rx_ent.shape[1]
    tcap = d.tx_ent.shape[1]
    last = tsc0
    while True:
        reg[R_CYCLES] += 1
        _fence()
        moved = False
        for r in range(n_w):
            head = d.rx_idx[r, 0]
            tail = d.rx_idx[r, 8]
            if tail == head:
                continue
            _fence()                       # the entries are read after the tail
            for j in range(head, tail):
                e = d.rx_ent[r, j % rcap]
                if e[1] != DONE:           # no preemption without time slicing
                    reg[R_STALE] += 1
                    continue
                if reply:
                    _respond(d, e[4] & mask, 0)
                if e[0] != d.w_seq[r]:
                    reg[R_STALE] += 1
                    continue
                d.w_running[r] = False
                d.t_live[d.w_rid[r] & mask] = False
                complete_one(pst, r, e[3])
                reg[R_COMPLETED] += 1
            _fence()                       # free the slots only after the copy
            d.rx_idx[r, 0] = tail
            moved = True
        t = _rdtsc()
        n = assign_all(pst, now0 + np.int64((t - tsc0) * ns_per_tsc))
        for i in range(n):
            w = pst.out_w[i]
            rid = pst.out_r[i]
            tail = d.tx_idx[w, 8]
            if tail - d.tx_idx[w, 0] >= tcap:
                d.held[reg[R_NHELD], 0] = w
                d.held[reg[R_NHELD], 1] = rid
                reg[R_NHELD] += 1
                reg[R_RING_FULL] += 1
                continue
            slot = rid & mask
            e = d.tx_ent[w, tail % tcap]
            seq = reg[R_NEXT_SEQ]
            e[0] = seq
            e[1] = d.t_req_id[slot]
            e[2] = d.t_type[slot]
            e[3] = d.t_run[slot]
            e[4] = d.t_ip[slot]
            e[5] = d.t_port[slot]
            e[6] = rid
            reg[R_NEXT_SEQ] = seq + 1
            d.w_seq[w] = seq
            d.w_rid[w] = rid
            d.w_slice_start[w] = now0
            d.w_running[w] = True
            _fence()                       # publish after the entry is written
            d.tx_idx[w, 8] = tail + 1
            reg[R_DISPATCHED] += 1
        if n:
            _fence()                       # Dekker: the tails are visible before `parked` is read
            for i in range(n):
                w = pst.out_w[i]
                if d.parked[w] != 0:
                    d.wake[reg[R_NWAKE]] = w
                    reg[R_NWAKE] += 1
            moved = True
        if moved:
            last = t
            moved_any = True
        if reg[R_NWAKE] or reg[R_NHELD] or reg[R_NRESP] + n_w > d.resp.shape[0] or ns_per_tsc <= 0:
            break
        running = False
        for w in range(n_w):
            if d.w_running[w]:
                running = True
                break
        if not running or (t - last) * ns_per_tsc >= idle_ns or (t - tsc0) * ns_per_tsc >= budget_ns:
            break
    return moved_any


W_IDLE, W_DOORBELL, W_STOP = 0, 1, 2
YIELD_POLL_NS = 5_000          # an idle compiled worker polls this long between sched_yield calls


@njit(cache=True)
def _worker_loop(tx_idx, tx_ent, rx_idx, rx_ent, ctl, w, pre_i, busy_i, spin_ns, ns_per_tsc, now0, slicing,
                 served):
    """A spin worker's loop, compiled: pop an entry of ring ``w``, spin its ``run_ns`` (watching
    the preempt word when ``slicing``), post the notice; again while entries come within
    ``spin_ns`` (``served[0]`` counts them). Returns W_IDLE (nothing came: park), W_DOORBELL (the dispatcher sleeps: ring
    it, then call again) or W_STOP."""
    tcap = tx_ent.shape[1]
    rcap = rx_ent.shape[1]
    tsc0 = _rdtsc()
    last = tsc0
    while True:
        _fence()
        head = tx_idx[w, 0]
        if tx_idx[w, 8] == head:
            if ctl[C_STOP]:
                return W_STOP
            if (_rdtsc() - last) * ns_per_tsc >= spin_ns:
                return W_IDLE
            continue
        _fence()                               # the entry is read after the tail
        e = tx_ent[w, head % tcap]
        seq = e[0]
        run = e[3]
        rid = e[6]
        _fence()
        tx_idx[w, 0] = head + 1
        t0 = _rdtsc()
        status = DONE
        left = 0
        t = t0
        if run > 0:
            end = t0 + np.int64(run / ns_per_tsc)
            while t < end:
                t = _rdtsc()
                if slicing:
                    _fence()
                    if ctl[pre_i] == seq:
                        status = PREEMPTED
                        left = max(np.int64((end - t) * ns_per_tsc), 0)
                        break
        t = _rdtsc()
        ctl[busy_i] += np.int64((t - t0) * ns_per_tsc)
        rtail = rx_idx[w, 8]
        while rtail - rx_idx[w, 0] >= rcap:    # cannot happen with one request outstanding
            _fence()
        n = rx_ent[w, rtail % rcap]
        n[0] = seq
        n[1] = status
        n[2] = left
        n[3] = now0 + np.int64((t - tsc0) * ns_per_tsc)
        n[4] = rid
        _fence()                               # publish after the notice is written
        rx_idx[w, 8] = rtail + 1
        served[0] += 1
        last = t
        if ctl[C_DISP_SLEEPING]:
            return W_DOORBELL


# --------------------------------------------------------------------------------------------
# dispatcher
# --------------------------------------------------------------------------------------------

def warm_policy(policy: str, workload: Workload, n_workers: int, params: dict | None = None) -> None:
    """Run every policy call once on a throwaway policy: numba loads (or compiles) the kernels on
    first use, ~1 s here, which would otherwise stall the first requests. A process forked
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


class Server:
    """The dispatcher's state; :func:`serve` is the usual entry point (see the module manual)."""

    def __init__(self, policy: str, workload: Workload | str, n_workers: int, *, host: str = "127.0.0.1",
                 port: int = 0, worker_kind: str = "spin", burst: int = 64, max_run_ns: int = 1_000_000_000,
                 worker_idle: str = "block", idle_spin_ns: int = 20_000, sleep_spin_ns: int = 0,
                 run_scale: float = 1.0, policy_params: dict | None = None, pin: bool = False,
                 worker_spin_ns: int = 0, reply: str = "dispatcher", cycle_idle_ns: int = 20_000,
                 cycle_budget_ns: int = 200_000, worker_yield: bool = False):
        self.workload = get_workload(workload) if isinstance(workload, str) else workload
        if not isinstance(n_workers, (int, np.integer)) or not 1 <= n_workers <= MAX_SERVER_WORKERS:
            raise ArgError(f"serve: n_workers must be an integer in 1..{MAX_SERVER_WORKERS}, got {n_workers!r}")
        if worker_kind not in WORKER_KINDS:
            raise ArgError(f"serve: unknown worker kind {worker_kind!r} (kinds: {', '.join(WORKER_KINDS)})")
        if reply not in REPLY_MODES:
            raise ArgError(f"serve: reply must be one of {', '.join(REPLY_MODES)}, got {reply!r}")
        if worker_idle not in ("block", "poll"):
            raise ArgError(f"serve: worker_idle must be 'block' or 'poll', got {worker_idle!r}")
        if not 1 <= burst <= 1024:
            raise ArgError(f"serve: burst must be in 1..1024, got {burst!r}")
        if not 0 <= port < 65536:
            raise ArgError(f"serve: port {port!r} is outside 0..65535")
        if not run_scale > 0:
            raise ArgError(f"serve: run_scale must be > 0, got {run_scale!r}")
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
        # Request table, indexed by rid % size: large enough for every queue to be full at once.
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
        n = self.n_workers
        self.w_seq = np.zeros(n, np.int64)
        self.w_rid = np.full(n, -1, np.int64)
        self.w_slice_start = np.zeros(n, np.int64)
        self.w_running = np.zeros(n, bool)
        self.w_draining = np.zeros(n, bool)
        self.held: list[tuple[int, int]] = []          # assignments waiting (ts hand-over, full ring)
        self.again = False                             # ts: assign again next loop
        # scratch arrays of the compiled kernels
        self._counts = np.zeros(K_N, np.int64)
        self._st_rid = np.zeros(burst, np.int64)
        self._st_ptype = np.zeros(burst, np.int64)
        self._st_refused = np.zeros(burst, np.int64)
        self._nt_w = np.zeros(n * 64, np.int64)
        self._nt_notes = np.zeros((n * 64, RX_N), np.int64)
        self._nt_taken = np.zeros(n, np.int64)
        self._done = np.zeros(n * 64, np.int64)
        # the fast loop (no time slicing): counters, responses to send, workers to wake
        self.fast = self.slice_ns == 0
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
        self.procs: list = []
        self.sems: list = []
        self.db_dir: str | None = None
        self._stop = False

    # -- lifetime ------------------------------------------------------------------------------
    def _warm(self) -> None:
        warm_policy(self.policy_name, self.workload, self.n_workers, self.policy_params)

    def _warm_kernels(self) -> None:
        """Load (or compile) the dispatcher's kernels before the first request, not during it."""
        self._counts[:] = 0
        _stage_requests(self.bs.data, self.bs.lengths, self.bs.src_ip, self.bs.src_port, 0, self.max_run_ns,
                        self.known_type, self.run_scale, 0, self.t_mask, self.t_req_id, self.t_type, self.t_run,
                        self.t_ip, self.t_port, self.t_live, self.t_done, self.t_stopping, self._st_rid,
                        self._st_ptype, self._st_refused, self._counts)
        _take_notices(self.rx.idx, self.rx.entries, self._nt_w, self._nt_notes, self._nt_taken)
        self._make_loop()
        _fast_loop(self.pol.ref, self.loop, 0, 0, self.ns_per_tsc, False, 0, 0)   # nothing runs: one pass
        _worker_loop(self.tx.idx, self.tx.entries, self.rx.idx, self.rx.entries, self.ctl, 0, 0, 0, 0, 1.0, 0,
                     False, np.zeros(1, np.int64))             # ring 0 is empty: returns at once
        none = np.zeros(0, np.int64)
        _fill_tx(none, none, self.t_mask, self.t_req_id, self.t_type, self.t_run, self.t_ip, self.t_port,
                 self.tx.idx, self.tx.entries, 0, self.w_seq, self.w_rid, self.w_slice_start, self.w_running, 0,
                 self._pushed[:0])

    def _make_loop(self) -> None:
        parked = self.ctl[self.off["parked"]: self.off["parked"] + self.n_workers]
        self.loop = LoopRef(self.reg, self.t_mask, self.rx.idx, self.rx.entries, self.tx.idx, self.tx.entries, parked,
                            self.w_seq, self.w_rid, self.w_slice_start, self.w_running, self.t_req_id, self.t_type,
                            self.t_run, self.t_ip, self.t_port, self.t_live, self._st_rid, self._st_ptype, self.resp,
                            self.resp_ip, self.resp_port, self._wake, self._held)
        # The fast loop's clock: cycle-counter ticks -> ns (0 where there is no counter: one pass a call).
        c0, t0 = _tsc(), time.perf_counter_ns()
        time.sleep(0.01)
        c1, t1 = _tsc(), time.perf_counter_ns()
        self.ns_per_tsc = (t1 - t0) / (c1 - c0) if c1 > c0 else 0.0

    def start(self, ready_timeout_s: float = 60.0) -> int:
        """Bind, create the rings, start the workers; returns the bound UDP port."""
        self._warm()
        try:
            self.sock = udp_socket(self.host, self.port_wanted)
        except OSError as e:
            raise ArgError(f"serve: cannot bind UDP {self.host}:{self.port_wanted}: {e.strerror or e}") from None
        self.port = self.sock.getsockname()[1]
        self.bs = BatchSocket(self.sock, burst=self.burst)
        n = self.n_workers
        off = _ctl_offsets(n)
        self.off = off
        self.tx = RingSet(n, TX_N, capacity=4096, extra_words=off["end"])
        self.rx = RingSet(n, RX_N, capacity=4096)
        self.ctl = self.tx.extra
        self._warm_kernels()
        self.ctl[C_SLICE_NS] = self.slice_ns
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        if self.worker_kind == "rocksdb":
            self.db_dir = tempfile.mkdtemp(prefix="tailgate_rocksdb_")
            build_rocksdb(os.path.join(self.db_dir, "db"))
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.sems = [ctx.Semaphore(0) for _ in range(n)]
        close = (self.sock.fileno(), self.wake_r)
        worker_cpus: tuple[int, ...] = ()
        if self.pin:
            # The dispatcher on the first CPU, the workers on the others: waking a worker then
            # sends it to another core instead of preempting the dispatcher on its own.
            cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
            if len(cpus) >= 2:
                worker_cpus = tuple(cpus[1:])
                _pin(cpus[:1])
        for w in range(n):
            p = ctx.Process(target=_worker_main, name=f"tailgate-worker-{w}", daemon=True,
                            args=(w, self.worker_kind, self.tx, self.rx, self.sems[w], self.wake_w,
                                  self.worker_idle, self.worker_spin_ns, self.sleep_spin_ns,
                                  os.path.join(self.db_dir, "db") if self.db_dir else None, close,
                                  worker_cpus, self.reply, self.ns_per_tsc, self.worker_yield))
            p.start()
            self.procs.append(p)
        deadline = time.monotonic() + ready_timeout_s
        ready = self.ctl[off["ready"]: off["ready"] + n]
        while not ready.all():
            dead = [p.name for p in self.procs if not p.is_alive()]
            if dead:
                raise TailgateError(f"serve: worker {dead[0]} exited during start-up (exit code "
                                    f"{self.procs[int(dead[0].rsplit('-', 1)[1])].exitcode})")
            if time.monotonic() > deadline:
                raise TailgateError(f"serve: workers not ready after {ready_timeout_s:g} s")
            time.sleep(0.005)
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
        if self.tx is not None:
            self.ctl[C_STOP] = 1
            for s in self.sems:
                s.release()
        deadline = time.monotonic() + 3.0
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(1.0)
            if p.is_alive():   # pragma: no cover - a worker stuck in a library call
                p.kill()
                p.join(1.0)
        if self.tx is not None:
            self.worker_totals = {k: int(self.ctl[self.off[k]: self.off[k] + self.n_workers].sum())
                                  for k in ("sent", "send_err", "busy_ns")}
            self.tx.close()
            self.rx.close()
            self.tx = self.rx = None
            os.close(self.wake_r)
            os.close(self.wake_w)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.db_dir:
            shutil.rmtree(self.db_dir, ignore_errors=True)
            self.db_dir = None

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
        fds = [self.sock.fileno(), self.wake_r]
        sleeping = self.ctl
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
                if _fast_loop(pol_ref, loop, k, now, ns_per_tsc, reply, cycle_idle_ns, cycle_budget_ns) or n:
                    busy = True
                    self.last_event_ns = now
                self._flush_fast(now)
            else:
                if n:
                    self._on_requests(n, now, arrive=True)
                    busy = True
                if self._poll_notices(now):
                    busy = True
                if self.w_running.any():
                    busy |= self._check_slices(now)
            if busy or self.held or self.again:
                if not fast or self.held:
                    self._assign(now)
                idle_since = 0
            else:
                if idle_since == 0:
                    idle_since = now
                elif now - idle_since >= self.idle_spin_ns:
                    # Nothing to do for a while: block until a datagram or a worker's doorbell.
                    sleeping[C_DISP_SLEEPING] = 1
                    if len(self.rx) == 0:
                        timeout = 0.001 if self.w_running.any() else 0.05
                        if self.slice_ns and self.w_running.any():
                            # wake when the first running request has had its slice
                            due_ns = int(self.w_slice_start[self.w_running].min()) + self.slice_ns - now
                            timeout = min(timeout, max(due_ns, 0) / 1e9)
                        self.c["idle_waits"] += 1
                        try:
                            select.select(fds, (), (), timeout)
                        except InterruptedError:  # pragma: no cover - PEP 475 retries
                            pass
                    sleeping[C_DISP_SLEEPING] = 0
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                    idle_since = 0
            if now >= next_tick:
                next_tick = now + int(tick_s * 1e9)
                if end is not None and now >= end:
                    break
                if stop_event is not None and stop_event.is_set():
                    break
                if on_tick is not None:
                    on_tick(self, (now - start) / 1e9)
                if any(not p.is_alive() for p in self.procs):
                    dead = next(p for p in self.procs if not p.is_alive())
                    raise TailgateError(f"serve: worker {dead.name} died (exit code {dead.exitcode})")
            elif end is not None and now >= end:
                break

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
        k, n_ref, self.next_rid = _stage_requests(
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
        k = _take_notices(rx.idx, rx.entries, self._nt_w, self._nt_notes, self._nt_taken)
        if k == 0:
            return False
        rx.idx[:, 0] += self._nt_taken             # free the slots only after the copy
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
        slots = rids & self.t_mask
        if self.slice_ns:
            wait = self.w_draining[workers] | self.t_stopping[slots]
            if wait.any():
                self.held.extend(zip(workers[wait].tolist(), rids[wait].tolist()))
                workers, rids, slots = workers[~wait], rids[~wait], slots[~wait]
            finished = self.t_done[slots]
            if finished.any():
                # Answered already (it finished before it saw its preemption): complete it at
                # once instead of running it again, and assign those workers next loop.
                self.pol.complete(workers[finished], now)
                self.t_live[slots[finished]] = False
                self.t_done[slots[finished]] = False
                self.c["completed"] += int(finished.sum())
                self.again = True
                workers, rids, slots = workers[~finished], rids[~finished], slots[~finished]
            if len(workers) == 0:
                return
        pushed = self._pushed[: len(workers)]
        n_ok = _fill_tx(workers, rids, self.t_mask, self.t_req_id, self.t_type, self.t_run, self.t_ip, self.t_port,
                        self.tx.idx, self.tx.entries, int(self.reg[R_NEXT_SEQ]), self.w_seq, self.w_rid,
                        self.w_slice_start, self.w_running, now, pushed)
        self.reg[R_NEXT_SEQ] += n_ok
        if n_ok < len(workers):
            self.c["ring_full"] += len(workers) - n_ok
            self.held.extend(zip(workers[~pushed].tolist(), rids[~pushed].tolist()))
            workers = workers[pushed]
        self.tx.idx[workers, 8] += 1                # publish: after the entries were written
        self.c["dispatched"] += n_ok
        if self.worker_idle == "block" and len(workers):
            with self._fence:
                pass               # full barrier: the tails above are visible before `parked` is read
            parked = workers[self.ctl[self.off["parked"] + workers] != 0]
            sems = self.sems
            for w in parked.tolist():
                sems[w].release()

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
            totals = {k: int(self.ctl[self.off[k]: self.off[k] + self.n_workers].sum())
                      for k in ("sent", "send_err", "busy_ns")}
        if totals:
            # served responses, whoever sent them (the fast loop's drop answers go out with them)
            s["responses_sent"] = totals["sent"] + s["dispatcher_sent"] - int(self.reg[R_DROPPED])
            s["response_send_errors"] = totals["send_err"] + s["dispatcher_send_errors"]
            s["worker_busy_s"] = round(totals["busy_ns"] / 1e9, 6)
        return s


def _console(quiet: bool):
    from rich.console import Console
    return Console(stderr=True, quiet=quiet, highlight=False)


def _tick_line(srv: Server, elapsed_s: float) -> str:
    c = srv.counters()
    rate = c["dispatched"] / elapsed_s if elapsed_s > 0 else 0.0
    bad = c["malformed"] + c["unknown_type"]  # drops are a full queue, not bad input: shown apart
    return (f"{elapsed_s:7.1f} s  rx {c['rx_datagrams']:,}  dispatched {c['dispatched']:,} "
            f"({rate:,.0f}/s)  completed {c['completed']:,}  dropped {c['dropped']:,}  bad input {bad:,}")


def print_stats(stats: dict, console) -> None:
    """The counters table printed when a server stops."""
    from rich.table import Table
    t = Table(title=f"tailgate serve: {stats['policy']} on {stats['workload']}, {stats['n_workers']} "
                    f"{stats['worker_kind']} workers", title_justify="left", box=None, show_edge=False)
    t.add_column("counter")
    t.add_column("value", justify="right")
    for k in ("rx_datagrams", "accepted", "dispatched", "completed", "responses_sent", "dropped",
              "drop_answers", "unknown_type", "malformed", "preempted", "ring_full", "table_full",
              "response_send_errors"):
        if k in stats:
            v = stats[k]
            t.add_row(k, f"[red]{v:,}[/red]" if v and k in ("dropped", "malformed", "ring_full", "table_full",
                                                            "response_send_errors") else f"{v:,}")
    for k, v in stats.get("malformed_by_reason", {}).items():
        t.add_row(f"  malformed: {k}", f"{v:,}")
    t.add_row("dispatch rate", f"{stats['dispatch_rate_rps']:,.0f} req/s over {stats['active_s']:.3f} s")
    console.print(t)
    if stats.get("reservation"):
        for g in stats["reservation"]:
            console.print(f"  DARC group types {g['types']}: reserved {g['reserved']}, may steal {g['stealable']}")


def serve(policy: str, workload: Workload | str, n_workers: int, *, host: str = "127.0.0.1", port: int = 0,
          worker_kind: str = "spin", duration_s: float | None = None, burst: int = 64,
          max_run_ns: int = 1_000_000_000, worker_idle: str = "block", idle_spin_ns: int = 20_000,
          sleep_spin_ns: int = 0, run_scale: float = 1.0, policy_params: dict | None = None, pin: bool = False,
          worker_spin_ns: int = 0, reply: str = "dispatcher", cycle_idle_ns: int = 20_000,
          cycle_budget_ns: int = 200_000, worker_yield: bool = False, quiet: bool = False, console=None,
          on_ready: Callable[[int], None] | None = None,
          stop_event=None, tick_s: float = 1.0) -> dict:
    """Run the live server until SIGINT/SIGTERM, ``duration_s`` or ``stop_event``; returns its stats.

    ``run_scale`` multiplies every request's ``run_ns`` (so a client's µs workload can be run at
    a scale Python keeps up with). ``on_ready(port)`` is called once the workers are up."""
    console = console or _console(quiet)
    if duration_s is not None and not duration_s > 0:
        raise ArgError(f"serve: duration_s must be > 0, got {duration_s!r}")
    srv = Server(policy, workload, n_workers, host=host, port=port, worker_kind=worker_kind, burst=burst,
                 max_run_ns=max_run_ns, worker_idle=worker_idle, idle_spin_ns=idle_spin_ns,
                 sleep_spin_ns=sleep_spin_ns, run_scale=run_scale, policy_params=policy_params, pin=pin,
                 worker_spin_ns=worker_spin_ns, reply=reply, cycle_idle_ns=cycle_idle_ns,
                 cycle_budget_ns=cycle_budget_ns, worker_yield=worker_yield)
    old_handlers = {}
    interrupted = False

    def on_signal(signum, frame):
        nonlocal interrupted
        interrupted = True
        srv.stop()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, on_signal)
    try:
        bound = srv.start()
        console.print(f"serving {srv.policy_name} / {srv.workload.name} on udp://{host}:{bound} with "
                      f"{srv.n_workers} {worker_kind} workers (Ctrl-C stops)")
        if on_ready is not None:
            on_ready(bound)
        srv.run(duration_s, stop_event=stop_event, tick_s=tick_s,
                on_tick=None if quiet else (lambda s, el: console.print(_tick_line(s, el))))
    finally:
        srv.drain()
        srv.close()
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
    stats = srv.stats()
    stats["interrupted"] = interrupted
    print_stats(stats, console)
    return stats


# --------------------------------------------------------------------------------------------
# serve() in a child process
# --------------------------------------------------------------------------------------------

def _server_child(conn, args, kwargs) -> None:
    try:
        stats = serve(*args, on_ready=lambda port: conn.send(("ready", port)), quiet=True, **kwargs)
        conn.send(("stats", stats))
    except TailgateError as e:
        conn.send(("error", str(e)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(e).__name__}: {e}"))


class ServerProcess:
    """``serve(...)`` in a child process. ``with ServerProcess(...) as srv``: ``srv.port`` is bound
    and the workers are up; leaving the block stops it (SIGTERM) and puts its stats in ``srv.stats``."""

    def __init__(self, policy: str, workload: Workload | str, n_workers: int, start_timeout_s: float = 60.0,
                 **serve_kwargs):
        self.args = (policy, workload, n_workers)
        self.kwargs = serve_kwargs
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self.stats: dict | None = None
        self.proc = None

    def start(self) -> ServerProcess:
        policy, workload, n_workers = self.args
        wl = get_workload(workload) if isinstance(workload, str) else workload
        warm_policy(policy, wl, n_workers, self.kwargs.get("policy_params"))   # once, inherited by the fork
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.conn, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_server_child, args=(child, self.args, self.kwargs), name="tailgate-server")
        self.proc.start()
        child.close()
        if not self.conn.poll(self.start_timeout_s):
            self.stop()
            raise TailgateError(f"server did not start within {self.start_timeout_s:g} s")
        kind, value = self.conn.recv()
        if kind != "ready":
            self.proc.join(5)
            raise TailgateError(str(value))
        self.port = value
        return self

    def stop(self, timeout_s: float = 15.0) -> dict | None:
        if self.proc is None:
            return self.stats
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGTERM)
        if self.conn.poll(timeout_s):
            try:
                kind, value = self.conn.recv()
                if kind == "stats":
                    self.stats = value
                elif kind == "error":
                    raise TailgateError(value)
            except EOFError:
                pass
        self.proc.join(5)
        if self.proc.is_alive():   # pragma: no cover - a stuck server
            self.proc.kill()
            self.proc.join(2)
        self.proc = None
        return self.stats

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
