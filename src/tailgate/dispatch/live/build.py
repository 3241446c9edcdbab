"""Building a dispatcher: its arguments checked, the policy's kernels warmed, the socket bound,
the rings and the doorbell opened.

Manual
------
* :func:`check_server_args` — an :class:`~tailgate.core.errors.ArgError`, in one line, for the
  first argument of :class:`~tailgate.dispatch.live.dispatcher.Server` that is out of range;
* :func:`warm_policy` — every policy call once on a throwaway policy, so that the first requests
  do not wait ~1 s for numba to load the kernels (a process forked afterwards inherits them);
* :func:`known_type_mask` — which of the 256 type ids the workload declares;
* :func:`bind_udp` — the server's socket, or a one-line error (``cannot bind``);
* :func:`open_rings` — the workers' request rings (``tx``, with the control words after them:
  :func:`~tailgate.dispatch.live.layout.ctl_offsets`) and notice rings (``rx``);
* :func:`open_doorbell` — the non-blocking pipe a worker writes to wake a sleeping dispatcher.

Example::

    check_server_args(4, "spin", "dispatcher", "block", burst=64, port=0, run_scale=1.0)
    tx, rx, off = open_rings(4)
"""

from __future__ import annotations

import os
import socket

import numpy as np

from tailgate.core.errors import ArgError
from tailgate.dispatch.live.layout import RX_N, TX_N, ctl_offsets
from tailgate.dispatch.live.ring import RingSet
from tailgate.dispatch.live.wire import udp_socket
from tailgate.dispatch.live.worker import IDLE_MODES, REPLY_MODES, WORKER_KINDS
from tailgate.dispatch.policy import make_policy
from tailgate.dispatch.workloads import Workload

MAX_SERVER_WORKERS = 64        # each worker is a process; the artifact's limit is 32
RING_CAPACITY = 4096           # entries per ring, as the artifact's LRPC rings


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
    pol.release(0)                    # a shed request's, or a dead worker's (a no-op when idle)
    pol.reservation()
    pol.counters()


def known_type_mask(workload: Workload) -> np.ndarray:
    """``mask[type_id]``: True for the workload's declared types (the rest go to UNKNOWN)."""
    mask = np.zeros(256, bool)
    for t in workload.types:
        mask[t.type_id] = True
    return mask


def bind_udp(host: str, port: int) -> socket.socket:
    """The server's UDP socket bound to ``host:port`` (0: any free port)."""
    try:
        return udp_socket(host, port)
    except OSError as e:
        raise ArgError(f"serve: cannot bind UDP {host}:{port}: {e.strerror or e}") from None


def open_rings(n_workers: int) -> tuple[RingSet, RingSet, dict]:
    """``(tx, rx, ctl_offsets)``: one request ring and one notice ring per worker, in shared
    memory; the control words (``tx.extra``) sit after the request rings."""
    off = ctl_offsets(n_workers)
    tx = RingSet(n_workers, TX_N, capacity=RING_CAPACITY, extra_words=off["end"])
    rx = RingSet(n_workers, RX_N, capacity=RING_CAPACITY)
    return tx, rx, off


def open_doorbell() -> tuple[int, int]:
    """``(read_fd, write_fd)`` of a pipe, both ends non-blocking (a full pipe is rung enough)."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    return wake_r, wake_w
