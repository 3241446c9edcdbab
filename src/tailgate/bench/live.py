"""The live server's speed: zero-work requests dispatched per second, the client beside it.

Manual
------
:func:`bench_live` starts a :class:`~tailgate.dispatch.live.process.ServerProcess` (2 ``spin``
workers that poll 100 µs before they park, the dispatcher sending the responses; pinned: the
dispatcher on the first CPU, the workers on the others) and runs the client, the calling process,
beside it on the same machine, left to the scheduler:

* ``dispatch_rate_rps`` — closed loop: the best of ``repeats`` runs of :func:`saturate`, which
  keeps ``window`` zero-work requests outstanding and reports the answer rate, the most the
  server can dispatch (no pacing, so no send lag to speak of);
* ``open_loop_steps`` — the paced open-loop client (:func:`tailgate.dispatch.live.loadgen.load`)
  steps its offered rate up (``rates_rps``); each step reports the answer rate, losses and the
  send lag; ``open_loop_best_rps`` is the highest rate answered in full — the rate a *paced*
  client can offer and still be trusted.

:func:`bench_live_records` turns that into ``tailgate bench`` records. The issue's target:
≥ 50 000 requests/s on a 2-core machine, client beside the server. The committed measurement, its
date and machine: ``docs/bench.md`` (``tailgate bench --markdown``); how it got there: ``docs/notes.md``.

Example::

    r = bench_live(rates_rps=(10_000, 20_000), duration_s=0.5)
    r["dispatch_rate_rps"], r["open_loop_best_rps"]
"""

from __future__ import annotations

import os
import select
import time

import numpy as np

from tailgate.core.errors import ArgError
from tailgate.dispatch.live.loadgen import LoadConfig, load
from tailgate.dispatch.live.process import ServerProcess
from tailgate.dispatch.live.sender import LOST, record_responses
from tailgate.dispatch.live.wire import (
    BatchSocket,
    encode_requests,
    ip_to_int,
    udp_socket,
)

TARGET_RPS = 50_000


def bench_live_records(quick: bool = False) -> list[dict]:
    """The live server's zero-work dispatch rate (:func:`bench_live`) as records.

    One record for the closed-loop capacity (the client keeps a window of requests in flight)
    and one for the best open-loop paced rate that was answered in full, with the client's p50 and
    p99 send lag and the top of the ladder of offered rates (``offered_max_rps``: 100k; quick: 20k).
    """
    full = (10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000, 100_000)
    rates = (10_000, 20_000) if quick else full
    r = bench_live(rates_rps=rates,
                   duration_s=0.5 if quick else 1.5, capacity_requests=10_000 if quick else 60_000,
                   repeats=1 if quick else 2)
    lag = r["send_lag_ns_at_best"] or {}     # none: no step was answered in full, so no lag to show

    def lag_us(q: str) -> float | None:
        return lag[q] / 1e3 if lag.get(q) is not None else None

    common = {"name": "sched_live", "impl": "tailgate", "policy": r["policy"], "workers": r["n_workers"],
              "target_rps": r["target_rps"]}
    return [{**common, "mode": "closed_loop", "rps": r["dispatch_rate_rps"]},
            {**common, "mode": "open_loop", "rps": r["open_loop_best_rps"], "send_lag_p50_us": lag_us("p50"),
             "send_lag_p99_us": lag_us("p99"), "offered_max_rps": max(rates)}]


def saturate(host: str, port: int, n_requests: int = 50_000, window: int = 512, timeout_s: float = 30.0,
             type_id: int = 1, burst: int = 256) -> dict:
    """Closed-loop capacity probe: keep ``window`` zero-work requests outstanding until
    ``n_requests`` are answered; the answer rate is the server's maximum dispatch rate (the
    client blocks in ``select`` while it waits)."""
    if not 1 <= window <= 1 << 20 or n_requests < 1:
        raise ArgError(f"saturate: need window in 1..{1 << 20} and n_requests >= 1, got {window!r}, {n_requests!r}")
    rows = encode_requests(np.arange(n_requests, dtype=np.int64), np.full(n_requests, type_id), np.zeros(n_requests))
    sock = udp_socket("127.0.0.1" if host in ("127.0.0.1", "localhost") else "0.0.0.0", 0)
    bs = BatchSocket(sock, burst=burst)
    dst = ip_to_int(host)
    done_ns = np.full(n_requests, -1, np.int64)
    status = np.full(n_requests, LOST, np.int8)
    counts = np.zeros(4, np.int64)
    record_responses(bs.data, bs.lengths, 0, 0, done_ns, status, counts)    # load the kernel now
    pc = time.perf_counter_ns
    sent = answered = 0
    t0 = pc()
    deadline = t0 + int(timeout_s * 1e9)
    try:
        while answered < n_requests and pc() < deadline:
            want = min(n_requests, answered + window)
            if want > sent:
                sent += bs.send_burst(rows[sent:want], None, dst, port)
            m = bs.recv_burst()
            if m:
                record_responses(bs.data, bs.lengths, m, pc(), done_ns, status, counts)
                answered = int(np.count_nonzero(status != LOST))
            else:
                select.select((sock.fileno(),), (), (), 0.005)
    finally:
        sock.close()
    elapsed_s = (pc() - t0) / 1e9
    return {"window": window, "n_requests": n_requests, "answered": answered, "sent": sent,
            "elapsed_s": round(elapsed_s, 4), "rate_rps": round(answered / elapsed_s, 1) if elapsed_s > 0 else 0.0}


def bench_live(rates_rps=(10_000, 20_000, 30_000, 40_000, 50_000), duration_s: float = 1.5, n_workers: int = 2,
               policy: str = "cfcfs", workload: str = "disp2", worker_kind: str = "spin", burst: int = 64,
               window: int = 512, capacity_requests: int = 60_000, repeats: int = 2, pin: bool = True,
               worker_spin_ns: int = 100_000, reply: str = "dispatcher", seed: int = 1, quiet: bool = True,
               **server_kwargs) -> dict:
    """Zero-work requests through a live server with the client beside it (see the manual)."""
    capacity = []
    steps = []
    with ServerProcess(policy, workload, n_workers, worker_kind=worker_kind, burst=burst, pin=pin,
                       worker_spin_ns=worker_spin_ns, reply=reply, **server_kwargs) as srv:
        # Warm the path (first calls, page faults) before measuring.
        saturate("127.0.0.1", srv.port, 2_000, window)
        for _ in range(repeats):
            capacity.append(saturate("127.0.0.1", srv.port, capacity_requests, window))
        for rate in rates_rps:
            r = load(LoadConfig(workload, 0.5, n_workers, "127.0.0.1", srv.port, duration_s, seed, rate_rps=rate,
                                zero_work=True), quiet=quiet)
            steps.append({"offered_rps": rate, "send_rate_rps": r["send_rate_rps"],
                          "answer_rate_rps": r["answer_rate_rps"], "answered": r["answered"],
                          "n_requests": r["n_requests"], "lost": r["lost"], "dropped": r["dropped"],
                          "send_lag_ns": r["send_lag_ns"], "latency_ns": r["latency_ns"]})
    stats = srv.stats or {}
    good = [s for s in steps if s["answered"] >= 0.999 * s["n_requests"]]
    best = max(good, key=lambda s: s["answer_rate_rps"]) if good else None
    return {
        "benchmark": "live_dispatch", "policy": policy, "workload": workload, "n_workers": n_workers,
        "worker_kind": worker_kind, "burst": burst, "pin": pin, "worker_spin_ns": worker_spin_ns, "reply": reply,
        "cpus": os.cpu_count(),
        "dispatch_rate_rps": max(c["rate_rps"] for c in capacity),
        "capacity_runs": capacity,
        "open_loop_steps": steps,
        "open_loop_best_rps": best["answer_rate_rps"] if best else 0.0,
        "send_lag_ns_at_best": best["send_lag_ns"] if best else None,
        "server": {k: stats.get(k) for k in ("dispatched", "completed", "dropped", "malformed", "idle_waits", "loops")},
        "target_rps": TARGET_RPS,
    }
