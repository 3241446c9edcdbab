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
after another (``queue_s`` is each one's wait), ``single`` is one item. A ``cpu`` function's
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
- after ``slice_s`` of its own CPU time it is demoted: SCHED_OTHER, nice 0, back in its
  sandbox's cgroup. A ``cpu`` invocation (a forked child) arms ``ITIMER_PROF``, whose SIGPROF
  demotes it; an ``io`` invocation (a thread) is demoted by the sandbox's demoter thread, which
  wakes at the earliest moment the slice can end (CPU time never runs ahead of wall time) and reads
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


class SfsSlot:
    """One invocation's stay in the high class: its thread, how it got there, its CPU clock."""

    __slots__ = ("clock", "cpu0_s", "demoted", "home", "means", "tid")

    def __init__(self, tid: int, means: str, home: str | None) -> None:
        self.tid, self.means, self.home = tid, means, home
        self.clock: int | None = None
        self.cpu0_s = 0.0
        self.demoted = False

    def cpu_s(self) -> float:
        """CPU time the thread used since it was promoted (OSError once the thread is gone)."""
        return time.clock_gettime(self.clock) - self.cpu0_s


class SfsScheduler:
    """SFS's two levels for the invocations of one sandbox (the module manual, "SFS").

    ``config`` comes from the gateway (the start frame's ``sfs``): ``slice_s``; ``means``
    (``sched_fifo`` or ``nice``: what the gateway's probe found); ``rt_dir``, the cgroup v1 cpu
    folder with RT runtime an invocation runs in while it is SCHED_FIFO; ``cpu_root``, the cpu
    controller's mount.
    """

    def __init__(self, config: dict) -> None:
        self.slice_s = float(config["slice_s"])
        self.means = config["means"]
        self.rt_dir = config.get("rt_dir")
        self.cpu_root = config.get("cpu_root") or ""
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
            home = cpu_cgroup_dir(self.cpu_root, tid)
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

    @staticmethod
    def demote(slot: SfsSlot) -> None:
        """Put ``slot``'s thread back in the fair class (SCHED_OTHER, nice 0) and its own cgroup."""
        if slot.demoted:
            return
        slot.demoted = True
        try:
            if slot.means == "sched_fifo":
                os.sched_setscheduler(slot.tid, os.SCHED_OTHER, os.sched_param(0))
                if slot.home:
                    move_thread(slot.home, slot.tid)
            else:
                os.setpriority(os.PRIO_PROCESS, slot.tid, 0)
        except OSError:
            pass  # the thread is gone

    # an io invocation: a thread of the sandbox, demoted by the demoter thread

    def begin_thread(self) -> SfsSlot | None:
        """Promote the calling thread; the demoter demotes it after ``slice_s`` of its CPU time."""
        slot = self.promote(threading.get_native_id())
        if slot is None:
            return None
        slot.clock = time.pthread_getcpuclockid(threading.get_ident())
        slot.cpu0_s = time.clock_gettime(slot.clock)
        with self.lock:
            if self.demoter is None:
                self.demoter = threading.Thread(target=self.demote_loop, name="sfs-demoter", daemon=True)
                self.demoter.start()
            self.push(time.monotonic() + self.slice_s, slot)
        return slot

    def end_thread(self, slot: SfsSlot | None) -> None:
        """The invocation ended: demote its thread now if its slice has not."""
        if slot is not None:
            with self.lock:
                self.demote(slot)

    def push(self, at_s: float, slot: SfsSlot) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at_s, self.seq, slot))
        self.wake.notify()

    def demote_loop(self) -> None:
        """Wake at each slot's earliest possible end (CPU time <= wall time); demote it or wait again."""
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
    """Runs one function's invocations inside a sandbox and writes their answers to ``out_fd``."""

    def __init__(self, function: dict, handler, out_fd: int, sfs: SfsScheduler | None = None) -> None:
        self.function = function
        self.handler = handler
        self.out_fd = out_fd
        self.sfs = sfs  # SFS's two-level scheduling of each invocation, or None
        self.lock = threading.Lock()
        self.fork_lock = threading.Lock()
        self.out_lock = threading.Lock()   # guards outbox and writing (send)
        self.outbox: list[bytes] = []
        self.writing = False
        self.cache = None
        # threads are reused across batches (a new thread per invocation costs ~0.1 ms of a core)
        self.threads = ThreadPoolExecutor(max_workers=MAX_PARALLEL)

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

    def call(self, item: dict) -> dict:
        """Run the handler on ``item`` here; the answer's fields (without op/id/queue)."""
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
        if self.sfs is not None and io:
            ans["sfs"] = slot.means if slot is not None else "none"
        return ans

    def call_forked(self, item: dict) -> dict:
        """Run the handler in a child forked from this sandbox (cpu functions)."""
        # pipe, fork and closing our write end under one lock: a child forked by another thread in
        # between would inherit this write end and hold off our EOF until it exits (a short
        # invocation batched with a long one was answered when the long one ended)
        with self.fork_lock:
            r, w = os.pipe()
            pid = os.fork()
            if pid != 0:
                os.close(w)
        if pid == 0:  # the child: compute, write, exit without cleanup
            try:
                os.close(r)
                die_with_parent()
                means = self.sfs.begin_process() if self.sfs is not None else None
                ans = self.call(item)
                if self.sfs is not None:
                    ans["sfs"] = means or "none"
                body = json.dumps(ans).encode()
                view = memoryview(body)
                while view:
                    view = view[os.write(w, view):]
            finally:
                os._exit(0)
        chunks = []
        while True:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        if not chunks:
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            why = f"killed by signal {sig}" if sig else f"exit status {os.WEXITSTATUS(status)}"
            return {"ok": False, "error": f"invocation process died ({why})", "exec_s": 0.0, "mem_mb": None}
        return json.loads(b"".join(chunks))

    def run_items(self, items: list[dict], received: float) -> None:
        run = self.call_forked if self.function["kind"] == "cpu" else self.call
        for item in items:
            queue_s = time.perf_counter() - received
            ans = run(item)
            self.send({"op": "done", "id": item["id"], "queue_s": queue_s, **ans})

    def serve(self, in_fd: int) -> None:
        """Read run frames until the gateway closes the channel."""
        while True:
            msg = read_frame(in_fd)
            if msg is None:
                return
            received = time.perf_counter()
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
                sfs = SfsScheduler(start["sfs"]) if start.get("sfs") else None
                runner = Runner(f, handlers[start["function"]], fd, sfs)
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
