"""Running the live server: in this process until a signal (:func:`serve`), or in a child process
(:class:`ServerProcess`, for tests, benchmarks and the report).

Manual
------
``serve(policy, workload, n_workers, port=..., worker_kind=..., duration_s=...)`` builds a
:class:`~tailgate.dispatch.live.dispatcher.Server`, starts its workers, prints a progress line a
second and serves until SIGINT/SIGTERM (in the main thread), ``duration_s`` or ``stop_event``;
it then collects the notices still coming, counts what is still queued or running as
``abandoned`` (so that ``accepted = completed + dropped + abandoned`` whatever stopped it), stops
and reaps the workers, unlinks the shared memory, prints its counters and returns the stats dict
(JSON-able): counters, ``dispatch_rate_rps`` (dispatched requests per second between the first
request and the last completion), DARC's reservation table, ``events`` (workers that died and
were restarted, also printed as they happen). The counters are printed even when the server
stops on an error (then raised). Its keyword arguments are the Server's (see the package manual,
:mod:`tailgate.dispatch.live`, for what they tune).

:class:`ServerProcess` runs ``serve`` in a forked child, warmed up first so the child inherits the
loaded kernels::

    with ServerProcess("darc", "disp2", n_workers=4, worker_kind="sleep") as srv:
        ...  # send to ("127.0.0.1", srv.port)
    srv.stats["dispatched"]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable

from tailgate.core.errors import ArgError, TailgateError
from tailgate.dispatch.live.build import warm_policy
from tailgate.dispatch.live.console import make_console, print_server_stats, tick_line
from tailgate.dispatch.live.dispatcher import Server
from tailgate.dispatch.workloads import Workload, get_workload


def serve(policy: str, workload: Workload | str, n_workers: int, *, host: str = "127.0.0.1", port: int = 0,
          worker_kind: str = "spin", duration_s: float | None = None, burst: int = 64,
          max_run_ns: int = 1_000_000_000, worker_idle: str = "block", idle_spin_ns: int = 20_000,
          sleep_spin_ns: int = 0, run_scale: float = 1.0, policy_params: dict | None = None, pin: bool = False,
          worker_spin_ns: int = 0, reply: str = "dispatcher", cycle_idle_ns: int = 20_000,
          cycle_budget_ns: int = 200_000, worker_yield: bool = False, max_queue_delay_us=None,
          quiet: bool = False, console=None,
          on_ready: Callable[[int], None] | None = None,
          stop_event=None, tick_s: float = 1.0) -> dict:
    """Run the live server until SIGINT/SIGTERM, ``duration_s`` or ``stop_event``; returns its stats.

    ``run_scale`` multiplies every request's ``run_ns`` (so a client's µs workload can be run at
    a scale Python keeps up with). ``on_ready(port)`` is called once the workers are up."""
    console = console or make_console(quiet)
    if duration_s is not None and not duration_s > 0:
        raise ArgError(f"serve: duration_s must be > 0, got {duration_s!r}")
    srv = Server(policy, workload, n_workers, host=host, port=port, worker_kind=worker_kind, burst=burst,
                 max_run_ns=max_run_ns, worker_idle=worker_idle, idle_spin_ns=idle_spin_ns,
                 sleep_spin_ns=sleep_spin_ns, run_scale=run_scale, policy_params=policy_params, pin=pin,
                 worker_spin_ns=worker_spin_ns, reply=reply, cycle_idle_ns=cycle_idle_ns,
                 cycle_budget_ns=cycle_budget_ns, worker_yield=worker_yield,
                 max_queue_delay_us=max_queue_delay_us, say=lambda line: console.print(line, markup=False))
    old_handlers = {}
    interrupted = False

    def on_signal(signum, frame):
        nonlocal interrupted
        interrupted = True
        srv.stop()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, on_signal)
    started = False
    try:
        bound = srv.start()
        started = True
        console.print(f"serving {srv.policy_name} / {srv.workload.name} on udp://{host}:{bound} with "
                      f"{srv.n_workers} {worker_kind} workers (Ctrl-C stops)")
        if on_ready is not None:
            on_ready(bound)
        srv.run(duration_s, stop_event=stop_event, tick_s=tick_s,
                on_tick=None if quiet else (lambda s, el: console.print(tick_line(s.counters(), el))))
    except (TailgateError, KeyboardInterrupt):
        if started:          # the counters so far, then the error
            _finish(srv, interrupted, console)
        raise
    finally:
        srv.drain()
        srv.close()
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
    return _finish(srv, interrupted, console)


def _finish(srv: Server, interrupted: bool, console) -> dict:
    """Drain, close (counting what is left as abandoned), print the counters; returns the stats."""
    srv.drain()
    srv.close()
    stats = srv.stats()
    stats["interrupted"] = interrupted
    print_server_stats(stats, console)
    return stats


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
