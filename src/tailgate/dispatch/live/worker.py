"""The server's worker processes: pop a request off the ring, work, post a completion notice.

Manual
------
:class:`WorkerPool` forks ``n`` workers (:func:`worker_main`), waits until each is ready, watches
them (:meth:`WorkerPool.dead`: the workers that died, and how), forks a new one in place of a dead
one (:meth:`WorkerPool.restart`: its rings emptied and control words cleared first) and stops and
reaps them. Each worker serves its own ring (:mod:`tailgate.dispatch.live.layout`),
one request at a time. Kinds (``WorkerSpec.kind``):

* ``spin`` busy-waits ``run_ns`` (the artifact's ``fake_work``);
* ``sleep`` sleeps ``run_ns``, so that many workers fit a small machine. A sleep ends late (with
  the timer slack set to 1 ns, tens of µs on a VM), so a service time is ``run_ns`` plus that:
  scale service times up (e.g. ×100). ``sleep_spin_ns`` spins the last part of each sleep, for
  precision at the cost of CPU;
* ``rocksdb`` reads a real RocksDB through ``rocksdict``: one DB of 5000 keys ``key<i>`` → "value",
  built by the pool in a temporary directory and opened read-only by every worker; type GET (10)
  seeks to the first key and reads it, SCAN (11) iterates all 5000, any other type spins
  ``run_ns``. Not preemptible (Shinjuku also disables preemption around library calls).

Who answers the client (``reply``): ``'dispatcher'`` (default; the worker only posts its notice)
or ``'worker'`` (the worker sends the 12-byte response from its own connected UDP socket first,
as the artifact's workers do). A ``spin`` worker that leaves the reply to the dispatcher runs
compiled (:func:`worker_loop`: pop, spin on the cycle counter, notice); the others run a Python loop.

Idle: a worker polls its ring for ``spin_ns``, then parks on its semaphore (``idle='block'``; the
dispatcher posts the semaphores of parked workers only, after a Dekker hand-shake on the shared
``parked`` word, so no wake-up is lost) or never parks (``idle='poll'``, for a machine with a core
per worker). ``yielding`` makes a compiled worker's idle polling yield the CPU every
``YIELD_POLL_NS``, so a client sharing its core runs sooner. When the dispatcher sleeps, a worker
that posts a notice writes a byte to its doorbell pipe.

Time slicing: a worker watches its ``preempt`` control word while it works (continuously when
spinning; every ``slice_ns / 4`` when sleeping) and, when it holds the request's sequence number,
stops and posts ``PREEMPTED`` with the exact work left.

Example::

    pool = WorkerPool(2, WorkerSpec(kind="sleep"), tx, rx, wake_fd, close_fds=())
    pool.start()            # forked; each sets its ready word
    ...
    pool.stop()             # C_STOP, wake, join (then terminate, kill)
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import shutil
import signal
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from tailgate.core.errors import ArgError, TailgateError
from tailgate.dispatch.live.cpu import fence, pin, rdtsc
from tailgate.dispatch.live.layout import (
    C_DISP_SLEEPING,
    C_SLICE_NS,
    C_STOP,
    DONE,
    PREEMPTED,
    TX_IP,
    TX_PORT,
    TX_REQ_ID,
    TX_RID,
    TX_RUN_NS,
    TX_SEQ,
    TX_TYPE,
    ctl_offsets,
)
from tailgate.dispatch.live.ring import HEAD, TAIL, RingSet
from tailgate.dispatch.live.wire import set_timer_slack_ns
from tailgate.dispatch.workloads import GET, SCAN

WORKER_KINDS = ("spin", "sleep", "rocksdb")
REPLY_MODES = ("dispatcher", "worker")      # who sends a served request's response
IDLE_MODES = ("block", "poll")
ROCKSDB_KEYS = 5000

# worker_loop's return codes
W_IDLE, W_DOORBELL, W_STOP = 0, 1, 2
YIELD_POLL_NS = 5_000          # an idle compiled worker polls this long between sched_yield calls


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker of a pool is told at start (see the module manual)."""
    kind: str = "spin"
    idle: str = "block"
    spin_ns: int = 0                   # poll an empty ring this long before parking
    sleep_spin_ns: int = 0             # 'sleep' workers spin the last part of each sleep
    reply: str = "dispatcher"
    ns_per_tsc: float = 0.0            # the cycle counter's scale (0: none; no compiled loop)
    yielding: bool = False
    cpus: tuple[int, ...] = ()         # pin the workers here (empty: unpinned)
    db_path: str | None = None         # 'rocksdb': the database (set by the pool)


# --------------------------------------------------------------------------------------------
# the pool (dispatcher side)
# --------------------------------------------------------------------------------------------

class WorkerPool:
    """``n`` forked worker processes serving rings ``tx``/``rx``; ``close_fds`` are closed in
    each child (the dispatcher's socket and doorbell read end); ``wake_fd`` is the doorbell."""

    def __init__(self, n: int, spec: WorkerSpec, tx: RingSet, rx: RingSet, wake_fd: int, close_fds=()):
        self.n, self.spec, self.tx, self.rx = n, spec, tx, rx
        self.wake_fd, self.close_fds = wake_fd, tuple(close_fds)
        self.procs: list = []
        self.sems: list = []
        self.db_dir: str | None = None

    def start(self, ready_timeout_s: float = 60.0) -> None:
        """Fork the workers and wait until each has set its ready word."""
        spec = self.spec
        if spec.kind == "rocksdb":
            self.db_dir = tempfile.mkdtemp(prefix="tailgate_rocksdb_")
            spec = dataclasses.replace(spec, db_path=os.path.join(self.db_dir, "db"))
            build_rocksdb(spec.db_path)
        self.ctx = ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.spec = spec
        self.sems = [ctx.Semaphore(0) for _ in range(self.n)]
        for w in range(self.n):
            self.procs.append(self._fork(w))
        self._wait_ready(ready_timeout_s)

    def _fork(self, w: int):
        p = self.ctx.Process(target=worker_main, name=f"tailgate-worker-{w}", daemon=True,
                             args=(w, self.spec, self.tx, self.rx, self.sems[w], self.wake_fd, self.close_fds))
        p.start()
        return p

    def _wait_ready(self, timeout_s: float, which: range | None = None) -> None:
        off = ctl_offsets(self.n)
        which = range(self.n) if which is None else which
        ready = self.tx.extra[off["ready"] + which.start: off["ready"] + which.stop]
        deadline = time.monotonic() + timeout_s
        while not ready.all():
            dead = [self.procs[w] for w in which if not self.procs[w].is_alive()]
            if dead:
                raise TailgateError(f"serve: worker {dead[0].name} exited during start-up "
                                    f"({exit_reason(dead[0].exitcode)})")
            if time.monotonic() > deadline:
                raise TailgateError(f"serve: workers not ready after {timeout_s:g} s")
            time.sleep(0.002)

    def dead(self) -> list[tuple[int, int | None]]:
        """``(worker, exit code)`` of every worker that is no longer running (a negative code is
        the signal that ended it), reaped."""
        return [(w, p.exitcode) for w, p in enumerate(self.procs) if not p.is_alive()]

    def restart(self, w: int, ready_timeout_s: float = 10.0) -> int:
        """Fork a new worker ``w`` in place of a dead one: its request ring and notice ring
        emptied (whatever was in them is the caller's to account for), its control words and
        counters cleared; returns the new pid once it is ready (TailgateError if it is not)."""
        off = ctl_offsets(self.n)
        ctl, tx, rx = self.tx.extra, self.tx, self.rx
        tx.idx[w, HEAD] = tx.idx[w, TAIL]
        rx.idx[w, HEAD] = rx.idx[w, TAIL]
        for k in ("preempt", "ready", "parked", "sent", "send_err", "busy_ns"):
            ctl[off[k] + w] = 0
        while self.sems[w].acquire(False):   # posts meant for the dead one
            pass
        self.procs[w] = self._fork(w)
        self._wait_ready(ready_timeout_s, range(w, w + 1))
        return self.procs[w].pid

    def check_alive(self) -> None:
        """TailgateError if a worker has died."""
        for p in self.procs:
            if not p.is_alive():
                raise TailgateError(f"serve: worker {p.name} died ({exit_reason(p.exitcode)})")

    def stop(self, grace_s: float = 3.0) -> None:
        """Ask every worker to stop (and wake the parked ones), join them within ``grace_s``, then
        terminate and kill what is left; remove the RocksDB directory. Idempotent."""
        if self.tx.extra is not None:
            self.tx.extra[C_STOP] = 1
        for s in self.sems:
            s.release()
        deadline = time.monotonic() + grace_s
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(1.0)
            if p.is_alive():   # pragma: no cover - a worker stuck in a library call
                p.kill()
                p.join(1.0)
        if self.db_dir:
            shutil.rmtree(self.db_dir, ignore_errors=True)
            self.db_dir = None


def exit_reason(exitcode: int | None) -> str:
    """How a process ended, in words: ``SIGKILL`` for a negative exit code, ``exit code 3``."""
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def worker_counters(tx: RingSet) -> dict[str, int]:
    """The workers' own counters in the control words of ``tx``, summed: responses ``sent``,
    ``send_err``, ``busy_ns``."""
    n = tx.n_rings
    off = ctl_offsets(n)
    return {k: int(tx.extra[off[k]: off[k] + n].sum()) for k in ("sent", "send_err", "busy_ns")}


def build_rocksdb(path: str, n_keys: int = ROCKSDB_KEYS) -> None:
    """The artifact's database: ``key<i>`` -> "value" for i < n_keys."""
    try:
        # deferred: an optional dependency, only 'rocksdb' workers need it
        from rocksdict import Rdict
    except ImportError:  # pragma: no cover - a declared dependency
        raise ArgError("worker kind 'rocksdb' needs the rocksdict package (pip install rocksdict)") from None
    db = Rdict(path)
    for i in range(n_keys):
        db[f"key{i}"] = "value"
    db.close()


def open_rocksdb(path: str):
    # deferred: an optional dependency, only 'rocksdb' workers need it
    from rocksdict import AccessType, Rdict

    return Rdict(path, access_type=AccessType.read_only())


def warm_worker_loop(tx: RingSet, rx: RingSet) -> None:
    """Load (or compile) :func:`worker_loop` in the dispatcher, so forked workers inherit it."""
    worker_loop(tx.idx, tx.entries, rx.idx, rx.entries, tx.extra, 0, 0, 0, 0, 1.0, 0, False,
                np.zeros(1, np.int64))             # ring 0 is empty: returns at once


# --------------------------------------------------------------------------------------------
# one worker (its own process)
# --------------------------------------------------------------------------------------------

class _Slots:
    """Indices into ``tx.words`` of worker ``w``'s ring and control words (plain ints: a
    worker reads them through a memoryview, no numpy per request)."""

    def __init__(self, tx: RingSet, w: int):
        off = ctl_offsets(tx.n_rings)
        base = tx.extra_base
        self.stop = base + C_STOP
        self.disp_sleeping = base + C_DISP_SLEEPING
        self.preempt = base + off["preempt"] + w
        self.parked = base + off["parked"] + w
        self.sent, self.send_err, self.busy_ns = (base + off[k] + w for k in ("sent", "send_err", "busy_ns"))
        self.head, self.tail = tx.head_word(w), tx.tail_word(w)


def worker_main(w: int, spec: WorkerSpec, tx: RingSet, rx: RingSet, sem, wake_fd: int,
                close_fds: tuple[int, ...] = ()) -> None:
    """Worker ``w``'s process: set up, then serve its ring until told to stop (or orphaned)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C is the dispatcher's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    set_timer_slack_ns(1)
    if spec.cpus:
        pin(spec.cpus)
    db = open_rocksdb(spec.db_path) if spec.kind == "rocksdb" else None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if spec.reply == "worker" else None
    slots = _Slots(tx, w)
    tx.extra[ctl_offsets(tx.n_rings)["ready"] + w] = 1
    park = _parker(tx.words, slots, sem, os.getppid())
    try:
        if spec.kind == "spin" and sock is None and spec.ns_per_tsc > 0:
            _serve_compiled(w, spec, tx, rx, slots, park, wake_fd)
        else:
            slice_ns = int(tx.extra[C_SLICE_NS])
            _serve_python(w, spec, tx, rx, slots, park, wake_fd,
                          _work_function(spec.kind, tx.words, slots.preempt, slice_ns, spec.sleep_spin_ns, db),
                          _replier(sock))
    except KeyboardInterrupt:  # pragma: no cover - SIGINT is ignored
        pass
    finally:
        if sock is not None:
            sock.close()
        if db is not None:
            db.close()


def _parker(words, slots: _Slots, sem, parent: int):
    """``park()``: sleep on the semaphore until the dispatcher posts it; False: time to stop."""
    fence_lock = threading.Lock()
    parked_idx, head_idx, tail_idx, stop_idx = slots.parked, slots.head, slots.tail, slots.stop

    def park() -> bool:
        """Dekker hand-shake with the dispatcher (which publishes its tail, fences, then reads
        this word): raise `parked`, fence, look again; one of us sees the other. Then sleep on
        the semaphore unless work came."""
        words[parked_idx] = 1
        with fence_lock:
            pass           # a locked instruction: a full memory barrier on x86
        if words[tail_idx] == words[head_idx] and not sem.acquire(timeout=0.25) and (
                words[stop_idx] or os.getppid() != parent):
            return False
        words[parked_idx] = 0
        return True

    return park


def _ring_doorbell(wake_fd: int) -> None:
    try:
        os.write(wake_fd, b"\0")
    except OSError:
        pass       # the pipe is full: the dispatcher is awake enough


def _serve_compiled(w: int, spec: WorkerSpec, tx: RingSet, rx: RingSet, slots: _Slots, park, wake_fd: int) -> None:
    """A compiled spin worker: :func:`worker_loop` serves requests for as long as they keep
    coming within ``spin_ns`` (a Python round is ~5 µs a request); between calls, poll on, yield
    or park. With ``yielding`` an idle worker polls in rounds of YIELD_POLL_NS and yields the
    CPU between them, so a process sharing its core runs at once instead of after a slice."""
    ctl = tx.extra
    off = ctl_offsets(tx.n_rings)
    words, stop_idx = tx.words, slots.stop
    pc = time.perf_counter_ns
    idle, spin_ns, yielding, ns_per_tsc = spec.idle, spec.spin_ns, spec.yielding, spec.ns_per_tsc
    slicing = int(ctl[C_SLICE_NS]) > 0
    pre_i, busy_i = off["preempt"] + w, off["busy_ns"] + w
    poll_ns = min(spin_ns, YIELD_POLL_NS) if yielding else spin_ns
    served = np.zeros(1, np.int64)
    idle_since = 0
    while True:
        before = served[0]
        rc = worker_loop(tx.idx, tx.entries, rx.idx, rx.entries, ctl, w, pre_i, busy_i, poll_ns, ns_per_tsc, pc(),
                         slicing, served)
        if rc == W_DOORBELL:
            _ring_doorbell(wake_fd)
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


def _serve_python(w: int, spec: WorkerSpec, tx: RingSet, rx: RingSet, slots: _Slots, park, wake_fd: int,
                  work, reply) -> None:
    """The Python worker loop: pop one entry, ``work`` it, ``reply`` when it is done (worker
    replies), post the notice and the counters, ring the doorbell if the dispatcher sleeps."""
    words = tx.words
    stop_idx, sleeping_idx = slots.stop, slots.disp_sleeping
    sent_idx, err_idx, busy_idx = slots.sent, slots.send_err, slots.busy_ns
    idle, spin_ns = spec.idle, spec.spin_ns
    zero_is_done = spec.kind != "rocksdb"      # a RocksDB request does its reads whatever run_ns says
    pc = time.perf_counter_ns
    sent = send_err = busy_ns = 0
    idle_since = 0
    while True:
        e = tx.pop1(w)
        if e is None:
            # Idle: poll for spin_ns, then park on the semaphore, which the dispatcher posts
            # only for parked workers. 'poll' workers never park, as the artifact's pinned ones.
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
        seq, run_ns = e[TX_SEQ], e[TX_RUN_NS]
        t0 = pc()
        if run_ns <= 0 and zero_is_done:
            status, left = DONE, 0
        else:
            status, left = work(seq, run_ns, e[TX_TYPE])
        if status == DONE and reply is not None:
            if reply(e):
                sent += 1
            else:
                send_err += 1
        end = pc()
        busy_ns += end - t0
        while not rx.push1(w, (seq, status, left, end, e[TX_RID])):
            time.sleep(0)          # cannot happen with one outstanding request; never lose it
        words[sent_idx] = sent
        words[err_idx] = send_err
        words[busy_idx] = busy_ns
        if words[sleeping_idx]:
            _ring_doorbell(wake_fd)


def _work_function(kind: str, words, pre_idx: int, slice_ns: int, sleep_spin_ns: int, db):
    """``work(seq, run_ns, type_id) -> (status, ns left)`` for a worker of ``kind``: it stops
    early (PREEMPTED) when the preempt word holds ``seq``."""
    pc = time.perf_counter_ns

    def spin(seq: int, run_ns: int, type_id: int = 0) -> tuple[int, int]:
        end = pc() + run_ns
        if slice_ns:
            while (now := pc()) < end:
                if words[pre_idx] == seq:
                    return PREEMPTED, end - now
        else:
            while pc() < end:
                pass
        return DONE, 0

    def nap(seq: int, run_ns: int, type_id: int = 0) -> tuple[int, int]:
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

    return {"spin": spin, "sleep": nap, "rocksdb": rocks}[kind]


def _replier(sock):
    """``reply(entry) -> bool`` that answers the entry's client from ``sock`` (None: no socket)."""
    if sock is None:
        return None
    pack = struct.Struct("<III").pack
    peer = None

    def reply(e) -> bool:
        nonlocal peer
        key = (e[TX_IP], e[TX_PORT])
        try:
            if key != peer:
                # A connected UDP socket skips the per-send address lookup.
                sock.connect((socket.inet_ntoa(key[0].to_bytes(4, "big")), key[1]))
                peer = key
            sock.send(pack(e[TX_REQ_ID], e[TX_TYPE], 0))
            return True
        except OSError:
            peer = None
            return False

    return reply


@njit(cache=True)
def worker_loop(tx_idx, tx_ent, rx_idx, rx_ent, ctl, w, pre_i, busy_i, spin_ns, ns_per_tsc, now0, slicing,
                served):
    """A spin worker's loop, compiled: pop an entry of ring ``w``, spin its ``run_ns`` (watching
    the preempt word when ``slicing``), post the notice; again while entries come within
    ``spin_ns`` (``served[0]`` counts them). Returns W_IDLE (nothing came: park), W_DOORBELL
    (the dispatcher sleeps: ring it, then call again) or W_STOP. One loop on purpose: it is the
    per-request path, and the pieces share the cycle-counter reads."""
    tcap = tx_ent.shape[1]
    rcap = rx_ent.shape[1]
    tsc0 = rdtsc()
    last = tsc0
    while True:
        fence()
        head = tx_idx[w, HEAD]
        if tx_idx[w, TAIL] == head:
            if ctl[C_STOP]:
                return W_STOP
            if (rdtsc() - last) * ns_per_tsc >= spin_ns:
                return W_IDLE
            continue
        fence()                                # the entry is read after the tail
        e = tx_ent[w, head % tcap]
        seq = e[0]
        run = e[3]
        rid = e[6]
        fence()
        tx_idx[w, HEAD] = head + 1
        t0 = rdtsc()
        status = DONE
        left = 0
        t = t0
        if run > 0:
            end = t0 + np.int64(run / ns_per_tsc)
            while t < end:
                t = rdtsc()
                if slicing:
                    fence()
                    if ctl[pre_i] == seq:
                        status = PREEMPTED
                        left = max(np.int64((end - t) * ns_per_tsc), 0)
                        break
        t = rdtsc()
        ctl[busy_i] += np.int64((t - t0) * ns_per_tsc)
        rtail = rx_idx[w, TAIL]
        while rtail - rx_idx[w, HEAD] >= rcap:    # cannot happen with one request outstanding
            fence()
        n = rx_ent[w, rtail % rcap]
        n[0] = seq
        n[1] = status
        n[2] = left
        n[3] = now0 + np.int64((t - tsc0) * ns_per_tsc)
        n[4] = rid
        fence()                                # publish after the notice is written
        rx_idx[w, TAIL] = rtail + 1
        served[0] += 1
        last = t
        if ctl[C_DISP_SLEEPING]:
            return W_DOORBELL
