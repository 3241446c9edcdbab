"""The open-loop load client, and the live benchmark.

Manual
------
``load(workload, load, n_workers, host, port, duration_s, seed)`` plays the artifact's client
(reference sheet §11) against a server speaking the PSP wire format
(:mod:`tailgate.dispatch.live.wire`) — tailgate's own (:mod:`tailgate.dispatch.live.server`) or another:

* **Schedule up front.** ``round(rate × duration_s)`` requests at ``rate_rps =
  workload.rate_rps(load, n_workers) / run_scale`` (or ``rate_rps=`` given directly), drawn by
  :func:`tailgate.dispatch.requests.generate`: Poisson arrivals, types i.i.d. by share, and each
  request's ``run_ns`` = its drawn service time × ``run_scale`` (0 with ``zero_work=True``).
  The request id on the wire is the request's index.
* **One loop sends and receives** (as the artifact's client polls RX between sends; two threads
  would fight over the GIL, two processes over this machine's two cores). A request goes out
  as soon as ``now ≥ its scheduled time``: all requests due are sent in one ``sendmmsg``; the
  loop spins on ``perf_counter_ns`` when the next send is near and blocks in ``select`` (still
  receiving; timer slack 1 ns) when it is more than ``spin_ns`` (30 µs) away. A client that
  spins all the time takes a whole core, and on a 2-core machine that core is the server's:
  the default gives it back between sends (measured here: 300 µs of spinning served 10k req/s
  open-loop, 30 µs served 20k). A send's *actual* time is taken around the
  system call (interpolated across a burst); a response's receive time is taken when its receive
  burst returns. One round — find what is due, send it, stamp it, receive and record — is one
  compiled call (``_client_step``) that calls libc's ``sendmmsg``/``recvmmsg``/``clock_gettime``
  itself (Linux; elsewhere the same round runs in Python). Measured here: a one-datagram send
  cost ~12.8 µs through ``BatchSocket.send_burst`` and ~5.8 µs from compiled code (the kernel's
  ~4–5 µs included), and the Python round's numpy bookkeeping ~6 µs more; the client's own send
  lag, alone at 50k req/s, went from p50 ~80 µs to ~20 µs.
* **Records** per request: id, type, scheduled send, actual send, completion (``-1``: none),
  status (``answered``, ``dropped`` — the server answered ``size = SIZE_DROPPED`` —, ``lost`` — no
  answer within ``timeout_s`` after the last send —, ``unsent``). ``csv_path`` writes them.
* **Metrics** are the simulator's (:func:`tailgate.dispatch.metrics.summarize`): latency from the
  actual send to the response (as the artifact measures it), slowdown against each type's nominal
  service time × ``run_scale``, the first 10 % discarded; dropped and lost requests count as drops.
* **Send lag** = actual − scheduled send, p50/p99/p99.9/max. The measurement is called
  *trustworthy* when the p99 lag is at most ``lag_budget`` (default 10 %) of the shortest type's
  service time as run, every request left, and the sender kept up with the offered rate (sent
  rate ≥ 99 % of offered); otherwise ``verdict`` says which test failed. A lagging client sends
  late, in bursts, and so measures a different (burstier, lighter) load than the one it names.

``saturate(host, port, n_requests, window)`` is the closed-loop capacity probe: it keeps ``window``
zero-work requests outstanding and reports the answer rate, the most the server can dispatch.

``bench_live(...)`` starts :class:`~tailgate.dispatch.live.server.ServerProcess` (2 ``spin`` workers
that poll 100 µs before they park, the dispatcher sending the responses; pinned: dispatcher on
the first CPU, workers on the others; the client, the calling process, is left to the
scheduler — pinned beside the dispatcher it halved the rate, beside the workers it changed
nothing) with the client beside it on the same machine. ``dispatch_rate_rps`` is the best closed-loop capacity of ``repeats`` runs; then the
open-loop client steps its offered rate up (``rates_rps``) and each step reports the answer
rate, losses and the send lag — the rate a *paced* client can offer and still be trusted.

Measured on the 2-vCPU development guest (KVM/Firecracker, "AMD EPYC", shared with other jobs,
2026-11-22, ``tailgate bench --suite live --json``, the previous design and this one run in turn):
before, 8 parked workers that sent their own responses, a Python dispatcher round per request
and a Python client: closed loop 25–29k req/s, open loop 20k answered in full (send lag p99
3–7 ms). Now: closed loop 131–137k req/s, open loop 70k answered in full (the top of the ladder
then), send lag p50 ~0.2–0.35 ms, p99 ~1.4–3 ms — the issue's 50k req/s is reached with the
client beside the server. CPU per zero-work request in the closed loop: dispatcher ~9 µs (its own
core; a loopback ``sendmmsg`` is ~3.6 µs a datagram of it, the rest the receive, the compiled loop
and its spinning while workers run), workers ~3.5 µs, client ~6 µs. A µs-scale live measurement
is still not trustworthy here (the lag is far above 10 % of a 1 µs service time), and the verdict
says so; an idle server's round trip is ~0.2–0.5 ms, the wake-ups of client, dispatcher and
worker on this VM.
"""

from __future__ import annotations

import csv
import errno
import os
import select
import time

import numpy as np
from numba import njit

from tailgate.core.errors import ArgError
from tailgate.dispatch.live.server import ServerProcess
from tailgate.dispatch.live.wire import (
    _MSG_DONTWAIT,
    _NO_LENGTHS,
    COMPILED_IO,
    REQ_BYTES,
    RESP_BYTES,
    SIZE_DROPPED,
    BatchSocket,
    _c_recvmmsg,
    _c_sendmmsg,
    _pack_mmsg,
    _scalar_or_array,
    _unpack_mmsg,
    c_errno,
    clock_ns,
    encode_requests,
    ip_to_int,
    set_timer_slack_ns,
    udp_socket,
)
from tailgate.dispatch.metrics import summarize
from tailgate.dispatch.requests import generate
from tailgate.dispatch.workloads import Workload, get_workload

ANSWERED, DROPPED, LOST, UNSENT = 0, 1, 2, 3
STATUS_NAMES = ("answered", "dropped", "lost", "unsent")
# the client learns how late select wakes it: the p98 of its last OVER_WINDOW waits
OVER_WINDOW = 128
OVER_RANK = int(0.98 * OVER_WINDOW)
U32_MAX = 0xFFFFFFFF


@njit(cache=True)
def _record_responses(data, lengths, m, t_ns, done_ns, status, counts):
    """Record ``m`` received responses at ``t_ns``: answered, or refused (size = SIZE_DROPPED).
    counts: [malformed, foreign id, duplicate, settled]."""
    n = done_ns.shape[0]
    for i in range(m):
        if lengths[i] != RESP_BYTES:
            counts[0] += 1
            continue
        row = data[i]
        rid = np.int64(row[0]) | (np.int64(row[1]) << 8) | (np.int64(row[2]) << 16) | (np.int64(row[3]) << 24)
        size = np.int64(row[8]) | (np.int64(row[9]) << 8) | (np.int64(row[10]) << 16) | (np.int64(row[11]) << 24)
        if rid >= n:
            counts[1] += 1
            continue
        if done_ns[rid] >= 0 or status[rid] == DROPPED:
            counts[2] += 1
            continue
        if size == SIZE_DROPPED:
            status[rid] = DROPPED
        else:
            done_ns[rid] = t_ns
            status[rid] = ANSWERED
        counts[3] += 1


# _client_step's out[]: sent, due, received, errno of a failed receive
O_SENT, O_DUE, O_RECV, O_ERRNO = range(4)
_LOST_ERRNOS = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM)
_RETRY_ERRNOS = (errno.EAGAIN, errno.EINTR)


@njit(cache=True)
def _client_step(fd, tx_hdr_addr, tx_iov, rows_addr, width, sched, sent_ns, i, n, burst, rx_hdr_addr, rx_words,
                 rx_addr, data, lengths, src_ip, src_port, done_ns, status, counts, ts, out):
    """One round of the open-loop client, compiled (libc called directly): send every request
    due (at most ``burst``, one sendmmsg; each stamped by the call's time spread over the burst),
    then take every waiting response (one recvmmsg, stamped when it returned). The send
    headers already hold the destination; only their payload pointers are set here."""
    now = clock_ns(ts)
    k = 0
    while i + k < n and k < burst and sched[i + k] <= now:
        k += 1
    got = 0
    if k:
        for j in range(k):
            tx_iov[j, 0] = rows_addr + (i + j) * width
        before = clock_ns(ts)
        r = _c_sendmmsg(fd, tx_hdr_addr, k, _MSG_DONTWAIT)
        after = clock_ns(ts)
        if r > 0:
            got = r
        elif r < 0:
            e = c_errno()
            for lost in _LOST_ERRNOS:
                if e == lost:
                    got = 1          # that datagram is lost (no one listens); go on with the rest
        for j in range(got):
            sent_ns[i + j] = before + (after - before) * (j + 1) // got
            status[i + j] = LOST
    out[O_SENT] = got
    out[O_DUE] = k
    out[O_ERRNO] = 0
    m = _c_recvmmsg(fd, rx_hdr_addr, lengths.shape[0], _MSG_DONTWAIT, 0)
    if m > 0:
        t = clock_ns(ts)
        _unpack_mmsg(rx_words, rx_addr, m, data.shape[1], lengths, src_ip, src_port)
        _record_responses(data, lengths, m, t, done_ns, status, counts)
    elif m < 0:
        e = c_errno()
        retry = False
        for ok in _RETRY_ERRNOS:
            if e == ok:
                retry = True
        if not retry:
            out[O_ERRNO] = e
    out[O_RECV] = max(m, 0)
    return got


def _schedule(workload: Workload, load: float, n_workers: int, n: int, seed: int, rate_rps: float | None):
    """``(arrival_ns from 0, type_idx, service_ns, offered_rps, types)`` for ``n`` requests."""
    reqs = generate(workload, load, n_workers, n, seed)
    arrival, type_idx, service = reqs.arrival_ns, reqs.type_idx, reqs.service_ns
    offered, types = reqs.offered_rps, reqs.types
    if rate_rps is not None:
        # Same draws, time axis stretched to the asked rate (a Poisson process scaled is one).
        arrival = np.floor(arrival * (offered / rate_rps)).astype(np.int64)
        offered = float(rate_rps)
    return arrival, type_idx, service, float(offered), tuple(types)


def _lag_stats(lag_ns: np.ndarray) -> dict:
    if len(lag_ns) == 0:
        return {"p50": None, "p99": None, "p99.9": None, "max": None, "mean": None}
    q = np.percentile(lag_ns, [50, 99, 99.9], method="inverted_cdf")
    return {"p50": int(q[0]), "p99": int(q[1]), "p99.9": int(q[2]), "max": int(lag_ns.max()),
            "mean": float(lag_ns.mean())}


def _summary(type_idx, sent_ns, completion_ns, nominal_ns, names, offered_rps, warmup_frac) -> dict | None:
    return summarize(type_idx, sent_ns, completion_ns, nominal_ns, names, offered_rps, warmup_frac=warmup_frac)


def load(workload: Workload | str, load: float, n_workers: int, host: str = "127.0.0.1", port: int = 0,
         duration_s: float = 1.0, seed: int = 1, *, rate_rps: float | None = None, run_scale: float = 1.0,
         zero_work: bool = False, timeout_s: float = 1.0, warmup_frac: float = 0.1, lag_budget: float = 0.1,
         csv_path: str | None = None, burst: int = 64, spin_ns: int = 30_000, lead_ns: int = 5_000_000,
         adaptive_wake: bool = True, max_early_us: int = 2_000, max_requests: int = 50_000_000, quiet: bool = False, console=None) -> dict:
    """Run the open-loop client against ``host:port``; returns its summary dict (see the manual)."""
    wl = get_workload(workload) if isinstance(workload, str) else workload
    if not 0 < load <= 1.5:
        raise ArgError(f"load {load!r} is outside (0, 1.5]")
    if not duration_s > 0:
        raise ArgError(f"load: duration_s must be > 0, got {duration_s!r}")
    if rate_rps is not None and not rate_rps > 0:
        raise ArgError(f"load: rate_rps must be > 0, got {rate_rps!r}")
    if not run_scale >= 0:
        raise ArgError(f"load: run_scale must be >= 0, got {run_scale!r}")
    if not 0 < port < 65536:
        raise ArgError(f"load: port {port!r} is outside 1..65535")
    if not timeout_s > 0:
        raise ArgError(f"load: timeout_s must be > 0, got {timeout_s!r}")
    try:
        dst_ip = ip_to_int(host)
    except OSError:
        raise ArgError(f"load: host {host!r} is not an IPv4 address") from None
    if rate_rps is None and not zero_work and run_scale > 0 and run_scale != 1.0:
        # ``load`` is a fraction of what the workers can do at the service times as run.
        rate_rps = wl.rate_rps(load, n_workers) / run_scale
    offered_guess = rate_rps if rate_rps is not None else wl.rate_rps(load, n_workers)
    n = int(round(offered_guess * duration_s))
    if n < 1:
        raise ArgError(f"load: {duration_s:g} s at {offered_guess:,.1f} req/s is no request at all")
    if n > max_requests:
        raise ArgError(f"load: {n:,} requests is more than max_requests={max_requests:,}; shorten duration_s")
    if console is None:
        from rich.console import Console
        console = Console(stderr=True, quiet=quiet, highlight=False)

    arrival, type_idx, service, offered, types = _schedule(wl, load, n_workers, n, seed, rate_rps)
    type_ids = np.array([t.type_id for t in types], np.int64)
    run_ns = np.zeros(n, np.int64) if zero_work else np.minimum((service * run_scale).astype(np.int64), U32_MAX)
    rows = encode_requests(np.arange(n, dtype=np.int64), type_ids[type_idx], run_ns)

    sock = udp_socket("0.0.0.0" if host not in ("127.0.0.1", "localhost") else "127.0.0.1", 0)
    bs = BatchSocket(sock, burst=burst)
    sched = np.empty(n, np.int64)
    sent_ns = np.full(n, -1, np.int64)
    done_ns = np.full(n, -1, np.int64)
    status = np.full(n, UNSENT, np.int8)
    c = {"send_stalls": 0}
    pc = time.perf_counter_ns
    fd = sock.fileno()

    counts = np.zeros(4, np.int64)       # malformed, foreign, duplicates, settled (answered or refused)

    _record_responses(bs.data, bs.lengths, 0, 0, done_ns, status, counts)    # load the kernel now
    set_timer_slack_ns(1)        # the select() between sends must wake on time

    def receive(now_ns: int) -> int:
        m = bs.recv_burst()
        if m:
            _record_responses(bs.data, bs.lengths, m, pc(), done_ns, status, counts)
        return m

    def send_due_python(i: int, now: int) -> tuple[int, int]:
        """Send what is due from request ``i`` and receive: (sent, due). Without COMPILED_IO."""
        got = k = 0
        if sched[i] <= now:
            hi = min(i + burst, n)
            k = int(np.searchsorted(sched[i:hi], now, side="right"))
            before = pc()
            got = bs.send_burst(rows[i: i + k], None, dst_ip, port)
            after = pc()
            if got:
                # Each datagram of a burst leaves in turn: spread the call's time over them.
                sent_ns[i: i + got] = before + (after - before) * np.arange(1, got + 1) // got
                status[i: i + got] = LOST
        receive(now)
        return got, k

    if COMPILED_IO and bs._calls is not None:
        # The headers of a whole burst point at the server once; a round sets payload pointers only.
        _pack_mmsg(bs._tx_words, bs._tx_iov_words, bs._tx_addr_bytes, burst, rows.ctypes.data, REQ_BYTES,
                   _NO_LENGTHS, _scalar_or_array(dst_ip), _scalar_or_array(port), False, bs._tx_addr0)
        ts = np.zeros(2, np.int64)
        out = np.zeros(4, np.int64)
        step_args = (bs.fd, bs._tx_hdr_addr, bs._tx_iov_words, rows.ctypes.data, REQ_BYTES, sched, sent_ns)
        rx_args = (n, burst, bs._rx_hdr_addr, bs._rx_words, bs._rx_addr_bytes, bs.data, bs.lengths, bs.src_ip,
                   bs.src_port, done_ns, status, counts, ts, out)

        def send_due(i: int, now: int) -> tuple[int, int]:
            got = _client_step(*step_args, i, *rx_args)
            if out[O_ERRNO]:
                raise OSError(int(out[O_ERRNO]), os.strerror(int(out[O_ERRNO])))
            return got, int(out[O_DUE])

        send_due(n, 0)           # load the kernel now (request n does not exist: nothing is sent)
    else:
        send_due = send_due_python

    progress = None
    if not quiet:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        progress = Progress(TextColumn("load {task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                            TimeRemainingColumn(), console=console, transient=True)
        task = progress.add_task(f"{wl.name} {offered:,.0f} req/s", total=n)
        progress.start()
    interrupted = False
    t0 = pc() + lead_ns
    sched[:] = t0 + arrival
    i = 0
    over_ring = np.zeros(OVER_WINDOW, dtype=np.int64)     # select's recent overshoots (ns)
    n_over = 0
    early_ns = 0
    max_early_ns = max_early_us * 1000 if adaptive_wake else 0
    try:
        next_ui = t0
        while i < n:
            now = pc()
            got, k = send_due(i, now)
            i += got
            if got < k:
                c["send_stalls"] += 1        # the socket buffer is full: retry, lag grows
                select.select((fd,), (fd,), (), 0.0005)
            if i < n:
                gap = sched[i] - pc()
                if gap > spin_ns + early_ns:
                    # wake early by what select has been overshooting here (its recent p98),
                    # then spin the rest: a VM's timer wake-up is ~75 us late at the median
                    want = gap - spin_ns // 2 - early_ns
                    t_sel = pc()
                    select.select((fd,), (), (), want / 1e9)
                    over_ring[n_over % OVER_WINDOW] = pc() - t_sel - want
                    n_over += 1
                    if n_over % OVER_WINDOW == 0:
                        early_ns = min(max_early_ns, max(0, int(np.partition(over_ring, OVER_RANK)[OVER_RANK])))
            if progress is not None and now >= next_ui:
                progress.update(task, completed=i)
                next_ui = now + 100_000_000
        last_send = pc()
        deadline = last_send + int(timeout_s * 1e9)
        while counts[3] < i:                 # some sent request is still unanswered
            now = pc()
            if now >= deadline:
                break
            if receive(now) == 0:
                select.select((fd,), (), (), min(0.01, (deadline - now) / 1e9))
    except KeyboardInterrupt:
        interrupted = True                   # Ctrl-C: report what was measured so far
    finally:
        if progress is not None:
            progress.stop()
        sock.close()

    # -- results ---------------------------------------------------------------------------------
    c.update(malformed_responses=int(counts[0]), foreign_responses=int(counts[1]), duplicates=int(counts[2]))
    was_sent = sent_ns >= 0
    lag = (sent_ns - sched)[was_sent]
    lag_stats = _lag_stats(lag)
    nominal = np.array([t.service_ns for t in types], np.float64)
    run_nominal = nominal * (run_scale if run_scale > 0 and not zero_work else 1.0)
    send_span_ns = int(sent_ns[was_sent].max() - sent_ns[was_sent].min()) if was_sent.sum() > 1 else 0
    send_rate = (int(was_sent.sum()) - 1) / (send_span_ns / 1e9) if send_span_ns > 0 else 0.0
    sched_span = int(sched[-1] - sched[0]) if n > 1 else 0
    sched_rate = (n - 1) / (sched_span / 1e9) if sched_span > 0 else offered
    answered = int((status == ANSWERED).sum())
    counts = {name: int((status == k).sum()) for k, name in enumerate(STATUS_NAMES)}
    budget_ns = lag_budget * (float(run_nominal.min()) if not zero_work else 1_000.0)
    reasons = []
    if counts["unsent"]:
        reasons.append(f"{counts['unsent']:,} requests never left")
    if lag_stats["p99"] is not None and lag_stats["p99"] > budget_ns:
        reasons.append(f"p99 send lag {lag_stats['p99'] / 1e3:,.1f} us > {budget_ns / 1e3:,.2f} us "
                       f"({lag_budget:.0%} of the shortest service time)")
    if send_rate < 0.99 * sched_rate:
        reasons.append(f"sent at {send_rate:,.0f} req/s, below the schedule's {sched_rate:,.0f}")
    trustworthy = not reasons
    completion = np.where(status == ANSWERED, done_ns - t0, -1)
    # Metrics over the requests that left (all of them unless the run was interrupted).
    metrics = _summary(type_idx[was_sent], sent_ns[was_sent] - t0, completion[was_sent], run_nominal,
                       [t.name for t in types], offered, warmup_frac) if was_sent.any() else None
    if csv_path:
        _write_csv(csv_path, type_ids[type_idx], [types[k].name for k in range(len(types))], type_idx,
                   sched - t0, np.where(was_sent, sent_ns - t0, -1), completion, status)
    lat = (done_ns - sent_ns)[status == ANSWERED]
    out = {
        "workload": wl.name, "load": load, "offered_rps": round(offered, 3), "n_requests": n,
        "host": host, "port": port, "duration_s": duration_s, "seed": seed, "run_scale": 0.0 if zero_work else run_scale,
        **counts, **c,
        "send_rate_rps": round(send_rate, 1),
        "answer_rate_rps": round(answered / ((done_ns.max() - sent_ns[was_sent].min()) / 1e9), 1)
        if answered and was_sent.any() else 0.0,
        "send_lag_ns": lag_stats,
        "latency_ns": {"p50": int(np.percentile(lat, 50, method="inverted_cdf")) if len(lat) else None,
                       "p99": int(np.percentile(lat, 99, method="inverted_cdf")) if len(lat) else None},
        "interrupted": interrupted,
        "trustworthy": trustworthy and not interrupted,
        "verdict": "trustworthy" if trustworthy else "not trustworthy: " + "; ".join(reasons),
        "metrics": metrics,
    }
    if csv_path:
        out["csv"] = str(csv_path)
    _print_summary(out, console)
    return out


def _write_csv(path, wire_type, names, type_idx, sched, sent, completion, status) -> None:
    try:
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["req_id", "type", "type_name", "scheduled_ns", "sent_ns", "completed_ns", "latency_ns", "status"])
            lat = np.where(completion >= 0, completion - sent, -1)
            name_col = np.array(names, dtype=object)[type_idx]
            status_col = np.array(STATUS_NAMES, dtype=object)[status]
            w.writerows(zip(range(len(sched)), wire_type.tolist(), name_col.tolist(), sched.tolist(), sent.tolist(),
                            completion.tolist(), lat.tolist(), status_col.tolist()))
    except OSError as e:
        raise ArgError(f"load: cannot write {path}: {e.strerror or e}") from None


def _print_summary(s: dict, console) -> None:
    lag = s["send_lag_ns"]
    us = (lambda v: "-" if v is None else f"{v / 1e3:,.1f}")
    console.print(f"load {s['workload']}: offered {s['offered_rps']:,.0f} req/s, sent {s['send_rate_rps']:,.0f}/s; "
                  f"answered {s['answered']:,}/{s['n_requests']:,}, dropped {s['dropped']:,}, lost {s['lost']:,}")
    console.print(f"  send lag us: p50 {us(lag['p50'])}  p99 {us(lag['p99'])}  p99.9 {us(lag['p99.9'])}  "
                  f"max {us(lag['max'])}  -> {s['verdict']}")
    m = s.get("metrics")
    if m and m.get("latency_ns"):
        la = m["latency_ns"]
        console.print(f"  latency us: p50 {us(la.get('p50'))}  p99 {us(la.get('p99'))}  p99.9 {us(la.get('p99.9'))}")


# ------------------------------------------------------------------------------------------------
# benchmark
# ------------------------------------------------------------------------------------------------

def saturate(host: str, port: int, n_requests: int = 50_000, window: int = 512, timeout_s: float = 30.0,
             type_id: int = 1, burst: int = 256) -> dict:
    """Closed-loop capacity probe: keep ``window`` zero-work requests outstanding until
    ``n_requests`` are answered; the answer rate is the server's maximum dispatch rate (no pacing,
    so no send lag to speak of; the client blocks in ``select`` while it waits)."""
    if not 1 <= window <= 1 << 20 or n_requests < 1:
        raise ArgError(f"saturate: need window in 1..{1 << 20} and n_requests >= 1, got {window!r}, {n_requests!r}")
    rows = encode_requests(np.arange(n_requests, dtype=np.int64), np.full(n_requests, type_id), np.zeros(n_requests))
    sock = udp_socket("127.0.0.1" if host in ("127.0.0.1", "localhost") else "0.0.0.0", 0)
    bs = BatchSocket(sock, burst=burst)
    dst = ip_to_int(host)
    done_ns = np.full(n_requests, -1, np.int64)
    status = np.full(n_requests, LOST, np.int8)
    counts = np.zeros(4, np.int64)
    _record_responses(bs.data, bs.lengths, 0, 0, done_ns, status, counts)    # load the kernel now
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
                _record_responses(bs.data, bs.lengths, m, pc(), done_ns, status, counts)
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
            r = load(workload, 0.5, n_workers, "127.0.0.1", srv.port, duration_s, seed, rate_rps=rate,
                     zero_work=True, quiet=quiet)
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
        "target_rps": 50_000,
    }
