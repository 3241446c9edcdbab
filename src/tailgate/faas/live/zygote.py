"""The code that runs inside a sandbox: the zygote, its framed channel, and the invocation runner.

Manual
------
A sandbox talks to the gateway over one byte stream (a unix socket, or stdin/stdout) in frames:
a 4-byte big-endian length, then that many bytes of UTF-8 JSON. The gateway sends::

    {"op": "run", "inside": "parallel"|"serial"|"single", "items": [{"id": I, "event": {...}}, ...]}

and the sandbox answers one frame per item, as each finishes::

    {"op": "done", "id": I, "ok": true, "result": ..., "exec_s": S, "queue_s": S, "mem_mb": MB|null}
    {"op": "done", "id": I, "ok": false, "error": "ValueError: ...", "exec_s": S, "queue_s": S, "mem_mb": null}

``parallel`` starts every item at once (up to :data:`MAX_PARALLEL`), ``serial`` runs them one
after another (``queue_s`` is each one's wait), ``single`` is one item. ``queue_s`` runs from the
frame's arrival to the fork, and for a forked invocation on from the child's first instruction to
its handler's start: its wait for a CPU in its class (under ``sfs``, its turn in the SCHED_FIFO
queue). The fork itself, and the answer's way back, are the control plane's. A ``cpu`` function's
invocation runs in a child forked from the sandbox (so invocations use several cores; ``mem_mb``
is null, as the reference measures I/O functions only), an ``io`` function's in a thread of the
sandbox (so they share what the sandbox built: ``context.shared(key, factory)``, backed by
:class:`tailgate.faas.cache.SharedCache`; ``mem_mb`` is the sandbox's resident-memory growth over
the call).

Two ways to start (``python -m tailgate.faas.live.zygote MODE SPEC_JSON``):

- ``template``: the process sandbox's zygote. It imports every handler module once, listens on
  the unix socket ``SPEC["socket"]``, prints ``ready`` and forks one sandbox per connection. The
  first frame on a connection is ``{"op": "start", "function": NAME, "unshare": bool}``; the
  child enters new net/ipc/uts/mount namespaces when asked (root only), imports nothing more
  and answers ``{"op": "ready", "pid": PID, "unshared": bool}`` — the first reply, which ends
  the cold start.
- ``stdio``: one sandbox on stdin/stdout for ``SPEC["function"]`` (bubblewrap and docker run
  this): it imports the handler and answers ``ready`` as above.

``SPEC["keep_net"]`` (true when the gateway serves a local S3 server) keeps the host's network
namespace, so the sandbox can reach 127.0.0.1; ``SPEC["reuse"]`` (the arguments of
:func:`tailgate.faas.io.reuse.enable`, or null) turns the boto3 client-reuse hook on in every ``io``
sandbox before its first invocation.

SFS (strategy ``sfs``, process sandbox only). The start frame may carry ``"sfs": {"slice_s": S,
"means": "sched_fifo"|"nice", "rt_dir": DIR, "cpu_root": DIR}`` (the gateway's
:meth:`tailgate.faas.live.sandbox.Backend.enable_sfs` sets it up and says the means on stderr);
the sandbox then schedules every invocation as SFS does (:class:`SfsScheduler`):

- it starts high: ``sched_fifo`` moves its thread into ``rt_dir`` (the one cgroup v1 cpu folder
  with RT runtime, shared by all sandboxes of the gateway and bounded there) and makes it
  SCHED_FIFO at RT priority :data:`SFS_RT_PRIORITY`; ``nice`` gives it nice :data:`SFS_NICE_BOOST`.
  When SCHED_FIFO is refused for one invocation, it gets nice; when that is refused too, nothing;
- after ``slice_s`` of its own CPU time it is demoted: SCHED_OTHER, nice 0, in its sandbox's
  invocations cgroup (the sandbox's own when it has none; "Control plane" below); an ``io``
  invocation whose thread goes back to a SCHED_FIFO control class after it stays in ``rt_dir``, in
  the fair class (so the thread only ever changes folders while SCHED_FIFO). A ``cpu``
  invocation (a forked child) arms ``ITIMER_PROF``, whose SIGPROF demotes it; an ``io``
  invocation (a thread) is demoted by the sandbox's demoter thread, which wakes at the earliest moment the slice can end (CPU time never runs ahead of wall time) and reads
  the thread's CPU clock. An invocation that ends within its slice is demoted as it ends;
- every answer says what the invocation got: ``"sfs": "sched_fifo"|"nice"|"none"``.

Approximations, against SFS's own scheduler: no new invocation preempts a running one beyond what
the kernel's FIFO class gives (FIFO ones queue behind each other at one priority; any of them
preempts the demoted ones); the slice is checked by a signal or a thread, so a demotion can come
late by a Python bytecode, a C call that holds the GIL, or (all CPUs in SCHED_FIFO) until the RT
budget throttles them; ``io`` invocations share the sandbox's GIL, which knows no priorities;
and the RT budget caps SCHED_FIFO for all sandboxes together
(:data:`tailgate.faas.live.sandbox.SFS_RT_SHARE` of each CPU), so under heavy load high-class
invocations are throttled, where SFS's would not be.

Control plane. A sandbox's control threads (the one reading the gateway's frames; for ``cpu``
functions those forking invocations, reading their answers and sending them; under ``sfs`` also
the ``io`` invocation threads while they are not running a handler, and the SFS demoter) must not
wait behind the invocations they run. The start frame's ``control`` (:class:`ControlClass`, null
when the gateway has no cgroup v1) names the gateway's control folder: each control thread moves
itself there as it starts, a cgroup with a large weight beside the sandboxes' own (so a control
thread that wakes runs before the invocations of every sandbox, not after its own sandbox's turn
comes round). Under ``sfs`` it is also SCHED_FIFO at :data:`CONTROL_RT_PRIORITY`, above every
invocation in its first slice, the folder then having an RT budget of its own (so the invocations'
budget cannot starve it, and it cannot take more than its own), or nice :data:`CONTROL_NICE` when
that is the means; then with ``SCHED_RESET_ON_FORK``, so what it forks starts in the fair class.
The gateway's event loop and the template get the same under ``sfs`` (the gateway sets them:
:meth:`tailgate.faas.live.sandbox.Backend.enable_control`). The start frame's
``invocations_cgroup`` (a child folder of the sandbox's cpu cgroup, v1 or v2, or null; else
``sandbox_cgroup``, the sandbox's own) is where each forked (``cpu``) invocation moves itself
before its handler runs; an ``io`` invocation thread outside ``sfs`` (started by a control thread,
so in the control folder) moves there once, before its first handler. A forked invocation writes
its answer, closes its pipe and exits; the sandbox sends the answer as soon as it has read it, and
reaps the process after.

Every process here asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), so a
gateway killed outright leaves no sandbox behind.
"""

from __future__ import annotations

import ctypes
import heapq
import importlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 << 20
#: Invocations one sandbox runs at once; more wait inside it (queue time).
MAX_PARALLEL = 1024
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET = 0x00020000, 0x04000000, 0x08000000, 0x40000000
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent exits."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def unshare_namespaces(keep_net: bool = False) -> bool:
    """Enter new net (unless ``keep_net``), ipc, uts and mount namespaces; False when the kernel refuses."""
    flags = CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS | (0 if keep_net else CLONE_NEWNET)
    return _libc.unshare(flags) == 0


def enable_reuse(spec: dict, function: dict) -> None:
    """Turn on the boto3 client-reuse hook in this sandbox when the gateway asks (``SPEC["reuse"]``, io only)."""
    if spec.get("reuse") is None or function["kind"] != "io":
        return
    # deferred: only a sandbox that reuses pays for the hook's import
    from tailgate.faas.io import reuse

    reuse.enable(**spec["reuse"])


def encode(msg: dict) -> bytes:
    body = json.dumps(msg, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


def read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(fd: int) -> dict | None:
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    (n,) = HEADER.unpack(head)
    if n > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {n} bytes")
    body = read_exact(fd, n)
    return None if body is None else json.loads(body)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


# --- SFS: first in first out for a slice, then the fair class --------------------------------------

#: The real-time priority of an invocation in its first slice (SCHED_FIFO; 1 is the lowest).
SFS_RT_PRIORITY = 1
#: The nice value of an invocation in its first slice when SCHED_FIFO cannot be had.
SFS_NICE_BOOST = -10
#: The real-time priority of the control plane under sfs (the gateway's event loop, the template, each
#: sandbox's control threads): above :data:`SFS_RT_PRIORITY`, so no invocation in its first slice
#: delays a sandbox's creation or an answer.
CONTROL_RT_PRIORITY = SFS_RT_PRIORITY + 1
#: The nice value of the control plane under sfs when SCHED_FIFO cannot be had for it.
CONTROL_NICE = -15


def cpu_cgroup_dir(cpu_root: str, tid: int) -> str | None:
    """The cgroup v1 cpu folder thread ``tid`` is in, under the mount ``cpu_root``; None when unknown."""
    try:
        with open(f"/proc/self/task/{tid}/cgroup") as f:
            for line in f:
                _, ctl, path = line.rstrip("\n").split(":", 2)
                if "cpu" in ctl.split(","):
                    return cpu_root + path.rstrip("/")
    except OSError:
        return None
    return None


def move_thread(cgroup_dir: str, tid: int) -> None:
    """Move thread ``tid`` (only it) into the cgroup v1 folder ``cgroup_dir``."""
    with open(os.path.join(cgroup_dir, "tasks"), "w") as f:
        f.write(str(tid))


def move_process(cgroup_dir: str, pid: int = 0) -> bool:
    """Move process ``pid`` (0: this one, all its threads) into the cgroup folder ``cgroup_dir``
    (v1 or v2); False when the kernel refuses."""
    try:
        with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
            f.write(str(pid or os.getpid()))
        return True
    except OSError:
        return False


class ControlClass:
    """Where and how the control threads run (the module manual, "Control plane").

    ``config`` comes from the gateway (the start frame's ``control``, null when none): ``ctl_dir``,
    the gateway's cgroup v1 cpu folder for control threads (one entity with a large weight beside
    the sandboxes' folders), and ``means``: ``cfs`` (only that folder), ``sched_fifo`` (sfs: also
    SCHED_FIFO at :data:`CONTROL_RT_PRIORITY`, the folder having RT runtime of its own), ``nice``
    (sfs without SCHED_FIFO: also nice :data:`CONTROL_NICE`) or ``none``. The last two with
    ``SCHED_RESET_ON_FORK``: what a control thread starts (a forked invocation, a thread) starts in
    SCHED_OTHER at nice 0.
    """

    def __init__(self, config: dict | None) -> None:
        config = config or {}
        self.means = config.get("means", "none")
        self.ctl_dir = config.get("ctl_dir")
        self.local = threading.local()

    def enter(self) -> str:
        """Put the calling thread in the control class (once, until :meth:`leave`); the means it got."""
        if getattr(self.local, "means", None) is None:
            self.local.means = enter_control(self.means, self.ctl_dir, threading.get_native_id())
        return self.local.means

    def leave(self) -> None:
        """The calling thread leaves the control class (for its invocation's own class); enter() again after."""
        self.local.means = None


def enter_control(means: str, ctl_dir: str | None, tid: int) -> str:
    """Put thread ``tid`` in the control class by ``means`` (:class:`ControlClass`); the means it got
    (``sched_fifo`` falls back to ``nice``, that to ``cfs`` when it is in ``ctl_dir``, else ``none``)."""
    fifo = (os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(CONTROL_RT_PRIORITY))
    moved = False
    if means == "sched_fifo" and ctl_dir:
        # SCHED_FIFO first where the thread's folder has RT runtime (the gateway's, the RT one): it then
        # moves at that priority, not holding the kernel's cgroup locks while invocations keep it off a CPU
        try:
            os.sched_setscheduler(tid, *fifo)
            move_thread(ctl_dir, tid)
            return "sched_fifo"
        except OSError:
            pass
    if ctl_dir and means != "none":
        try:
            move_thread(ctl_dir, tid)
            moved = True
        except OSError:
            pass
    if means == "sched_fifo" and moved:
        try:
            os.sched_setscheduler(tid, *fifo)
            return "sched_fifo"
        except OSError:
            pass
    if means in ("sched_fifo", "nice"):
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, CONTROL_NICE)
            return "nice"
        except OSError:
            pass
    return "cfs" if moved else "none"


def leave_control(tid: int, home: str | None) -> None:
    """Undo :func:`enter_control` for thread ``tid``: SCHED_OTHER, nice 0, back in the cgroup v1 cpu
    folder ``home`` (when given)."""
    try:
        os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, tid, 0)
        if home:
            move_thread(home, tid)
    except OSError:
        pass  # the thread is gone


class SfsSlot:
    """One invocation's stay in the high class: its thread, how it got there, its CPU clock."""

    __slots__ = ("clock", "cpu0_s", "demoted", "home", "means", "stay", "tid")

    def __init__(self, tid: int, means: str, home: str | None) -> None:
        self.tid, self.means, self.home = tid, means, home
        self.clock: int | None = None
        self.cpu0_s = 0.0
        self.demoted = False
        self.stay = False  # demoted where it is (an io thread that goes back to the control folder after)

    def cpu_s(self) -> float:
        """CPU time the thread used since it was promoted (OSError once the thread is gone)."""
        return time.clock_gettime(self.clock) - self.cpu0_s


class SfsScheduler:
    """SFS's two levels for the invocations of one sandbox (the module manual, "SFS").

    ``config`` comes from the gateway (the start frame's ``sfs``): ``slice_s``; ``means``
    (``sched_fifo`` or ``nice``: what the gateway's probe found); ``rt_dir``, the cgroup v1 cpu
    folder with RT runtime an invocation runs in while it is SCHED_FIFO; ``cpu_root``, the cpu
    controller's mount; ``home`` (set by the sandbox), the cgroup v1 cpu folder a demoted
    invocation goes to (its sandbox's invocations folder), or None: the one it was in when
    promoted. ``control``: the sandbox's control class (an ``io`` invocation's thread leaves it for
    the handler and comes back to send the answer).
    """

    def __init__(self, config: dict, control: ControlClass | None = None) -> None:
        self.slice_s = float(config["slice_s"])
        self.means = config["means"]
        self.rt_dir = config.get("rt_dir")
        self.cpu_root = config.get("cpu_root") or ""
        self.home: str | None = config.get("home")
        self.control = control or ControlClass(None)
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.heap: list[tuple[float, int, SfsSlot]] = []
        self.seq = 0
        self.demoter: threading.Thread | None = None

    def promote(self, tid: int) -> SfsSlot | None:
        """Put thread ``tid`` in the high class; its slot, or None when no means works (or slice_s is 0)."""
        if self.slice_s <= 0:
            return None
        if self.means == "sched_fifo" and self.rt_dir:
            home = self.home or cpu_cgroup_dir(self.cpu_root, tid)
            try:
                move_thread(self.rt_dir, tid)
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(SFS_RT_PRIORITY))
                return SfsSlot(tid, "sched_fifo", home)
            except OSError:  # e.g. the RT budget is gone: this invocation falls back to nice
                if home:
                    try:
                        move_thread(home, tid)
                    except OSError:
                        pass
        try:
            os.setpriority(os.PRIO_PROCESS, tid, SFS_NICE_BOOST)
            return SfsSlot(tid, "nice", None)
        except OSError:
            return None

    def place(self, slot: SfsSlot | None) -> None:
        """An invocation that got no SCHED_FIFO (so is not in ``rt_dir``) goes to its home."""
        if (slot is None or slot.means != "sched_fifo") and self.home:
            try:
                move_thread(self.home, threading.get_native_id())
            except OSError:
                pass

    @staticmethod
    def demote(slot: SfsSlot) -> None:
        """Put ``slot``'s thread back in the fair class (SCHED_OTHER, nice 0) and its own cgroup."""
        if slot.demoted:
            return
        slot.demoted = True
        try:
            if slot.means == "sched_fifo":
                os.sched_setscheduler(slot.tid, os.SCHED_OTHER, os.sched_param(0))
                if slot.home and not slot.stay:
                    move_thread(slot.home, slot.tid)
            else:
                os.setpriority(os.PRIO_PROCESS, slot.tid, 0)
        except OSError:
            pass  # the thread is gone

    # an io invocation: a thread of the sandbox, demoted by the demoter thread

    def begin_thread(self) -> SfsSlot | None:
        """Promote the calling thread; the demoter demotes it after ``slice_s`` of its CPU time."""
        self.control.leave()
        tid = threading.get_native_id()
        if self.control.means != "none":  # the invocation's own class from here on: fair, nice 0, then promoted
            leave_control(tid, None)
        slot = self.promote(tid)
        if self.control.ctl_dir:  # out of the control folder, unless promoted into the RT one
            self.place(slot)
        if slot is None:
            return None
        # back to the control class at its end: demoted in the fair class inside the RT folder, so that it
        # never moves between folders while in the fair class (a move holds the kernel's cgroup locks, and a
        # fair-class thread holding them can be kept off every CPU by the SCHED_FIFO invocations)
        slot.stay = slot.means == "sched_fifo" and self.control.means == "sched_fifo"
        slot.clock = time.pthread_getcpuclockid(threading.get_ident())
        slot.cpu0_s = time.clock_gettime(slot.clock)
        with self.lock:
            if self.demoter is None:
                self.demoter = threading.Thread(target=self.demote_loop, name="sfs-demoter", daemon=True)
                self.demoter.start()
            self.push(time.monotonic() + self.slice_s, slot)
        return slot

    def end_thread(self, slot: SfsSlot | None) -> None:
        """The invocation ended: demote its thread now if its slice has not; it is a control thread
        again (it sends the answer)."""
        if slot is not None:
            with self.lock:
                if slot.stay:
                    slot.demoted = True  # straight back to the control class (below), from wherever it is
                else:
                    self.demote(slot)
        self.control.enter()

    def push(self, at_s: float, slot: SfsSlot) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at_s, self.seq, slot))
        self.wake.notify()

    def demote_loop(self) -> None:
        """Wake at each slot's earliest possible end (CPU time <= wall time); demote it or wait again."""
        self.control.enter()  # a control thread: a demotion must not wait behind the invocations
        with self.lock:
            while True:
                if not self.heap:
                    self.wake.wait()
                    continue
                at_s, _, slot = self.heap[0]
                wait_s = at_s - time.monotonic()
                if wait_s > 0:
                    self.wake.wait(wait_s)
                    continue
                heapq.heappop(self.heap)
                if slot.demoted:
                    continue
                try:
                    left_s = self.slice_s - slot.cpu_s()
                except OSError:
                    left_s = 0.0
                if left_s > 1e-4:
                    self.push(time.monotonic() + left_s, slot)
                else:
                    self.demote(slot)

    # a cpu invocation: a forked child, demoted by its own CPU-time timer

    def begin_process(self) -> str | None:
        """In a just-forked child: promote it and arm ITIMER_PROF (its CPU time) to demote it after
        ``slice_s``; the means it got, or None."""
        slot = self.promote(threading.get_native_id())
        self.place(slot)
        if slot is None:
            return None
        signal.signal(signal.SIGPROF, lambda signum, frame: self.demote(slot))
        signal.setitimer(signal.ITIMER_PROF, self.slice_s)
        return slot.means


def probe_sfs_means(rt_dir: str | None, cpu_root: str) -> tuple[str, str]:
    """What an invocation of this process can get: (``sched_fifo``|``nice``|``none``, why not better).

    Tries it on a short-lived thread: SCHED_FIFO inside ``rt_dir`` (when given), else nice
    :data:`SFS_NICE_BOOST`; each is undone at once.
    """
    out: list[tuple[str, str]] = []

    def probe() -> None:
        tid = threading.get_native_id()
        why = ""
        if rt_dir:
            home = cpu_cgroup_dir(cpu_root, tid)
            try:
                move_thread(rt_dir, tid)
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(SFS_RT_PRIORITY))
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                out.append(("sched_fifo", ""))
            except OSError as e:
                why = f"SCHED_FIFO refused ({e.strerror})"
            if home:
                try:
                    move_thread(home, tid)
                except OSError:
                    pass
            if out:
                return
        try:
            os.setpriority(os.PRIO_PROCESS, tid, SFS_NICE_BOOST)
            os.setpriority(os.PRIO_PROCESS, tid, 0)
            out.append(("nice", why))
        except OSError as e:
            out.append(("none", "; ".join(w for w in (why, f"nice {SFS_NICE_BOOST} refused ({e.strerror})") if w)))

    t = threading.Thread(target=probe, name="sfs-probe")
    t.start()
    t.join()
    return out[0]


class Context:
    """What a handler gets as ``context`` (Lambda-style)."""

    def __init__(self, function: dict, request_id, runner: Runner) -> None:
        self.function_name = function["name"]
        self.aws_request_id = str(request_id)
        self.memory_limit_in_mb = function["memory_mb"]
        self._deadline = time.monotonic() + function["timeout_s"]
        self._runner = runner

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1e3))

    def shared(self, key, factory):
        """An object shared by the invocations of this sandbox, built by ``factory()`` on first use."""
        return self._runner.shared_cache().shared(key, factory)


class Runner:
    """Runs one function's invocations inside a sandbox and writes their answers to ``out_fd``.

    ``invocations_dir``: the cgroup folder (v1 or v2) each forked invocation moves itself into (a
    child of its sandbox's), or None: they stay where they were forked. ``control``: the class of the
    sandbox's control threads (:class:`ControlClass`; the SFS scheduler's when ``sfs``)."""

    def __init__(self, function: dict, handler, out_fd: int, sfs: SfsScheduler | None = None,
                 invocations_dir: str | None = None, control: ControlClass | None = None) -> None:
        self.function = function
        self.handler = handler
        self.out_fd = out_fd
        self.sfs = sfs  # SFS's two-level scheduling of each invocation, or None
        self.invocations_dir = invocations_dir
        self.control = sfs.control if sfs is not None else (control or ControlClass(None))
        self.local = threading.local()
        self.lock = threading.Lock()
        self.fork_lock = threading.Lock()
        self.out_lock = threading.Lock()   # guards outbox and writing (send)
        self.outbox: list[bytes] = []
        self.writing = False
        self.cache = None
        # threads are reused across batches (a new thread per invocation costs ~0.1 ms of a core)
        self.threads = ThreadPoolExecutor(max_workers=MAX_PARALLEL)

    def place_worker(self) -> None:
        """An ``io`` thread outside sfs runs handlers: it leaves the control folder it was started in
        for the invocations' folder (once per thread; cgroup v1, where threads move alone)."""
        if self.control.ctl_dir and self.invocations_dir and not getattr(self.local, "placed", False):
            self.local.placed = True
            try:
                move_thread(self.invocations_dir, threading.get_native_id())
            except OSError:
                pass

    def shared_cache(self):
        """The sandbox's shared-object cache (LRU, 10 entries), made on first use."""
        with self.lock:
            if self.cache is None:
                # deferred: the cache pulls in numpy (~0.2 s), which a sandbox that never shares should not pay
                from tailgate.faas.cache import SharedCache
                self.cache = SharedCache(policy="lru", capacity=10)
            return self.cache

    def send(self, msg: dict) -> None:
        """Write one frame. Answers that finish together leave in one write: the thread that finds
        no write in progress writes every frame queued meanwhile, in order; the others only queue."""
        data = encode(msg)
        with self.out_lock:
            self.outbox.append(data)
            if self.writing:
                return
            self.writing = True
        while True:
            with self.out_lock:
                if not self.outbox:
                    self.writing = False
                    return
                chunk = b"".join(self.outbox)
                self.outbox.clear()
            try:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self.out_fd, view):]
            except BaseException:
                with self.out_lock:
                    self.writing = False
                raise

    def call(self, item: dict, born_s: float | None = None) -> dict:
        """Run the handler on ``item`` here; the answer's fields (without op/id/queue). In a forked
        invocation ``born_s`` (``time.perf_counter()`` as the child first ran) gives ``start_wait_s``,
        the child's wait from then to the handler's start (its promotion, and its wait for a CPU in
        the class it got)."""
        ctx = Context(self.function, item["id"], self)
        io = self.function["kind"] == "io"
        mem0 = rss_mb() if io else None
        slot = self.sfs.begin_thread() if self.sfs is not None and io else None
        t0 = time.perf_counter()
        try:
            result = self.handler(item["event"], ctx)
            json.dumps(result)
            ok, payload = True, {"result": result}
        except Exception as e:  # the handler's error goes back to the caller as text
            ok, payload = False, {"error": f"{type(e).__name__}: {e}"}
        exec_s = time.perf_counter() - t0
        if slot is not None:
            self.sfs.end_thread(slot)
        mem = None if mem0 is None else max(0.0, rss_mb() - mem0)
        ans = {"ok": ok, **payload, "exec_s": exec_s, "mem_mb": mem}
        if born_s is not None:
            ans["start_wait_s"] = max(0.0, t0 - born_s)
        if self.sfs is not None and io:
            ans["sfs"] = slot.means if slot is not None else "none"
        return ans

    def call_forked(self, item: dict, answer) -> None:
        """Run the handler in a child forked from this sandbox (cpu functions); ``answer(fields)`` as
        soon as the child has written them (before it has finished exiting), or once it is reaped
        when it wrote none."""
        # pipe, fork and closing our write end under one lock: a child forked by another thread in
        # between would inherit this write end and hold off our EOF until it exits (a short
        # invocation batched with a long one was answered when the long one ended)
        with self.fork_lock:
            r, w = os.pipe()
            pid = os.fork()
            if pid != 0:
                os.close(w)
        if pid == 0:  # the child: compute, write, exit without cleanup
            born_s = time.perf_counter()
            # a lock another thread of the sandbox held at the fork stays held in this copy: fresh ones
            self.lock = threading.Lock()
            try:
                os.close(r)
                die_with_parent()
                if self.sfs is not None:
                    means = self.sfs.begin_process()
                elif self.invocations_dir:
                    move_process(self.invocations_dir)
                try:
                    ans = self.call(item, born_s)
                except Exception as e:  # the sandbox's own failure (not the handler's): said, not lost
                    ans = {"ok": False, "error": f"sandbox: {type(e).__name__}: {e}", "exec_s": 0.0, "mem_mb": None}
                if self.sfs is not None:
                    ans["sfs"] = means or "none"
                body = json.dumps(ans).encode()
                view = memoryview(body)
                while view:
                    view = view[os.write(w, view):]
                os.close(w)  # the parent's EOF now, not once this address space is torn down
            finally:
                os._exit(0)
        chunks = []
        while True:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(r)
        if chunks:
            answer(json.loads(b"".join(chunks)))
        _, status = os.waitpid(pid, 0)
        if not chunks:
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            why = f"killed by signal {sig}" if sig else f"exit status {os.WEXITSTATUS(status)}"
            answer({"ok": False, "error": f"invocation process died ({why})", "exec_s": 0.0, "mem_mb": None})

    def run_items(self, items: list[dict], received: float) -> None:
        cpu = self.function["kind"] == "cpu"
        if cpu or self.sfs is not None:
            self.control.enter()  # once per thread: this one forks invocations (cpu) and sends answers
        else:
            self.place_worker()
        for item in items:
            queue_s = time.perf_counter() - received

            def answer(ans: dict, item=item, queue_s=queue_s) -> None:
                wait_s = ans.pop("start_wait_s", 0.0)  # a forked invocation's wait for its start is queue time
                self.send({"op": "done", "id": item["id"], "queue_s": queue_s + wait_s, **ans})

            if cpu:
                self.call_forked(item, answer)
            else:
                answer(self.call(item))

    def serve(self, in_fd: int) -> None:
        """Read run frames until the gateway closes the channel."""
        while True:
            msg = read_frame(in_fd)
            if msg is None:
                return
            received = time.perf_counter()
            self.control.enter()  # once: the sandbox's cgroups are in place by its first run frame
            items = msg["items"]
            if msg.get("inside") == "serial":
                groups = [items]
            else:
                groups = [[it] for it in items]
            for g in groups:
                self.threads.submit(self.run_items, g, received)


def load_handler(handler: str, paths: list[str]):
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    module, _, attr = handler.partition(":")
    return getattr(importlib.import_module(module), attr)


def template_main(spec: dict) -> None:
    """The process sandbox's zygote: import every handler, then fork a sandbox per connection."""
    die_with_parent()
    handlers = {}
    for name, f in spec["functions"].items():
        try:
            handlers[name] = load_handler(f["handler"], spec["path"])
        except Exception as e:  # reported to the gateway in one line, which refuses to start
            print(f"error: function {name}: cannot import handler {f['handler']}: {type(e).__name__}: {e}",
                  flush=True)
            sys.exit(2)
    # deferred: the template pays the shared cache's import (numpy) once, for every sandbox it forks
    from tailgate.faas.cache import SharedCache  # noqa: F401
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps sandboxes that exit
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(spec["socket"])
    srv.listen(256)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        pid = os.fork()
        if pid == 0:
            srv.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            die_with_parent()
            fd = conn.fileno()
            try:
                start = read_frame(fd)
                if start is None:
                    os._exit(0)
                unshared = unshare_namespaces(spec.get("keep_net", False)) if start.get("unshare") else False
                f = spec["functions"][start["function"]]
                enable_reuse(spec, f)
                inv = start.get("invocations_cgroup") or start.get("sandbox_cgroup")
                control = ControlClass(start.get("control"))
                sfs = SfsScheduler(dict(start["sfs"], home=inv), control) if start.get("sfs") else None
                runner = Runner(f, handlers[start["function"]], fd, sfs, inv, control)
                runner.send({"op": "ready", "pid": os.getpid(), "unshared": unshared})
                runner.serve(fd)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(0)
        conn.close()


def stdio_main(spec: dict) -> None:
    """One sandbox on stdin/stdout (inside bubblewrap or a container)."""
    die_with_parent()
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a handler's print goes to stderr, not into the channel
    f = spec["functions"][spec["function"]]
    try:
        handler = load_handler(f["handler"], spec["path"])
    except Exception as e:
        print(f"error: function {f['name']}: cannot import handler {f['handler']}: {type(e).__name__}: {e}",
              file=sys.stderr, flush=True)
        sys.exit(2)
    enable_reuse(spec, f)
    runner = Runner(f, handler, out_fd)
    runner.send({"op": "ready", "pid": os.getpid(), "unshared": True})
    runner.serve(0)
    os._exit(0)  # the gateway closed the channel: do not wait for a handler that hangs


if __name__ == "__main__":
    mode, spec_json = sys.argv[1], sys.argv[2]
    (template_main if mode == "template" else stdio_main)(json.loads(spec_json))
