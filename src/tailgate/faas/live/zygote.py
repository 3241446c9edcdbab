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

Every process here asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), so a
gateway killed outright leaves no sandbox behind.
"""

from __future__ import annotations

import ctypes
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

    def __init__(self, function: dict, handler, out_fd: int) -> None:
        self.function = function
        self.handler = handler
        self.out_fd = out_fd
        self.lock = threading.Lock()
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
        data = encode(msg)
        with self.lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self.out_fd, view):]

    def call(self, item: dict) -> dict:
        """Run the handler on ``item`` here; the answer's fields (without op/id/queue)."""
        ctx = Context(self.function, item["id"], self)
        mem0 = rss_mb() if self.function["kind"] == "io" else None
        t0 = time.perf_counter()
        try:
            result = self.handler(item["event"], ctx)
            json.dumps(result)
            ok, payload = True, {"result": result}
        except Exception as e:  # the handler's error goes back to the caller as text
            ok, payload = False, {"error": f"{type(e).__name__}: {e}"}
        exec_s = time.perf_counter() - t0
        mem = None if mem0 is None else max(0.0, rss_mb() - mem0)
        return {"ok": ok, **payload, "exec_s": exec_s, "mem_mb": mem}

    def call_forked(self, item: dict) -> dict:
        """Run the handler in a child forked from this sandbox (cpu functions)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: compute, write, exit without cleanup
            try:
                os.close(r)
                die_with_parent()
                body = json.dumps(self.call(item)).encode()
                view = memoryview(body)
                while view:
                    view = view[os.write(w, view):]
            finally:
                os._exit(0)
        os.close(w)
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
                runner = Runner(f, handlers[start["function"]], fd)
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
