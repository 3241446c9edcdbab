"""The load client's round: send every request that is due, stamp it, record the responses.

Manual
------
:class:`Sender` plays one run's requests (``rows``, scheduled at ``sched[i]`` ns on the
``perf_counter_ns`` clock) at a server over one UDP socket. ``send_due(i, now)`` sends the
requests from index ``i`` on whose time has come (at most ``burst``, one ``sendmmsg``), stamps
each with the call's time spread over the burst (each datagram of a burst leaves in turn), then
takes every waiting response (one ``recvmmsg``) and records it, stamped when the receive returned:
answered, or refused by the server (``size = SIZE_DROPPED``). It returns ``(sent, due)``; fewer
sent than due means the socket buffer was full. ``receive()`` only takes responses.

Where libc can be called from compiled code (``COMPILED_IO``: Linux, 64-bit) the whole round is
one compiled call, :func:`client_step`; elsewhere, or with ``compiled=False``, the same round runs
in Python through :class:`~tailgate.dispatch.live.wire.BatchSocket`.

Records, one element per request, in arrays the caller owns: ``sent_ns`` (-1: not sent),
``done_ns`` (-1: no answer), ``status`` (``ANSWERED``, ``DROPPED``, ``LOST`` = sent and not yet
answered, ``UNSENT``) and ``counts`` of odd responses (``N_MALFORMED``, ``N_FOREIGN`` — an id
that is not ours —, ``N_DUPLICATE``) and of settled requests (``N_SETTLED``: answered or refused).

Example::

    tx = Sender(sock, rows, sched, sent_ns, done_ns, status, counts, ip_to_int("127.0.0.1"), port)
    sent, due = tx.send_due(0, time.perf_counter_ns())
"""

from __future__ import annotations

import errno
import os
import time

import numpy as np
from numba import njit

from tailgate.dispatch.live.wire import (
    COMPILED_IO,
    MSG_DONTWAIT,
    REQ_BYTES,
    RESP_BYTES,
    SIZE_DROPPED,
    BatchSocket,
    c_errno,
    c_recvmmsg,
    c_sendmmsg,
    clock_ns,
    unpack_mmsg,
)

ANSWERED, DROPPED, LOST, UNSENT = 0, 1, 2, 3
STATUS_NAMES = ("answered", "dropped", "lost", "unsent")
# record_responses' counts
N_MALFORMED, N_FOREIGN, N_DUPLICATE, N_SETTLED = range(4)
# client_step's out[]: sent, due, received, errno of a failed receive
O_SENT, O_DUE, O_RECV, O_ERRNO = range(4)
_LOST_ERRNOS = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM)
_RETRY_ERRNOS = (errno.EAGAIN, errno.EINTR)


@njit(cache=True)
def record_responses(data, lengths, m, t_ns, done_ns, status, counts):
    """Record ``m`` received responses (rows of ``data``) at ``t_ns``: answered, or refused
    (size = SIZE_DROPPED); odd ones are counted in ``counts`` (see the module manual)."""
    n = done_ns.shape[0]
    for i in range(m):
        if lengths[i] != RESP_BYTES:
            counts[N_MALFORMED] += 1
            continue
        row = data[i]
        rid = np.int64(row[0]) | (np.int64(row[1]) << 8) | (np.int64(row[2]) << 16) | (np.int64(row[3]) << 24)
        size = np.int64(row[8]) | (np.int64(row[9]) << 8) | (np.int64(row[10]) << 16) | (np.int64(row[11]) << 24)
        if rid >= n:
            counts[N_FOREIGN] += 1
            continue
        if done_ns[rid] >= 0 or status[rid] == DROPPED:
            counts[N_DUPLICATE] += 1
            continue
        if size == SIZE_DROPPED:
            status[rid] = DROPPED
        else:
            done_ns[rid] = t_ns
            status[rid] = ANSWERED
        counts[N_SETTLED] += 1


@njit(cache=True)
def client_step(fd, tx_hdr_addr, tx_iov, rows_addr, width, sched, sent_ns, i, n, burst, rx_hdr_addr, rx_words,
                rx_addr, data, lengths, src_ip, src_port, done_ns, status, counts, ts, out):
    """One round, compiled (libc called directly): send every request due (at most ``burst``, one
    sendmmsg; each stamped by the call's time spread over the burst), then take every waiting
    response (one recvmmsg, stamped when it returned). The send headers already hold the
    destination; only their payload pointers are set here."""
    now = clock_ns(ts)
    k = 0
    while i + k < n and k < burst and sched[i + k] <= now:
        k += 1
    got = 0
    if k:
        for j in range(k):
            tx_iov[j, 0] = rows_addr + (i + j) * width
        before = clock_ns(ts)
        r = c_sendmmsg(fd, tx_hdr_addr, k, MSG_DONTWAIT)
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
    m = c_recvmmsg(fd, rx_hdr_addr, lengths.shape[0], MSG_DONTWAIT, 0)
    if m > 0:
        t = clock_ns(ts)
        unpack_mmsg(rx_words, rx_addr, m, data.shape[1], lengths, src_ip, src_port)
        record_responses(data, lengths, m, t, done_ns, status, counts)
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


class Sender:
    """Sends ``rows`` (``(n, REQ_BYTES)`` uint8) on schedule from socket ``sock`` to ``ip:port``
    and records the responses (see the module manual). ``send_due`` and ``receive`` are plain
    closures: the client calls them once per round."""

    def __init__(self, sock, rows: np.ndarray, sched: np.ndarray, sent_ns: np.ndarray, done_ns: np.ndarray,
                 status: np.ndarray, counts: np.ndarray, ip: int, port: int, burst: int = 64,
                 compiled: bool | None = None):
        self.bs = bs = BatchSocket(sock, burst=burst)
        record_responses(bs.data, bs.lengths, 0, 0, done_ns, status, counts)    # load the kernel now
        self.receive = self._python_receive(done_ns, status, counts)
        if compiled is None:
            compiled = COMPILED_IO
        if compiled and bs.uses_mmsg:
            self.send_due = self._compiled_round(rows, sched, sent_ns, done_ns, status, counts, ip, port, burst)
            self.send_due(len(rows), 0)    # load the kernel now (request n does not exist: nothing is sent)
        else:
            self.send_due = self._python_round(rows, sched, sent_ns, status, ip, port, burst)

    def _python_receive(self, done_ns, status, counts):
        bs, pc = self.bs, time.perf_counter_ns

        def receive() -> int:
            m = bs.recv_burst()
            if m:
                record_responses(bs.data, bs.lengths, m, pc(), done_ns, status, counts)
            return m

        return receive

    def _python_round(self, rows, sched, sent_ns, status, ip, port, burst):
        bs, pc, receive, n = self.bs, time.perf_counter_ns, self.receive, len(rows)

        def send_due(i: int, now: int) -> tuple[int, int]:
            got = k = 0
            if sched[i] <= now:
                hi = min(i + burst, n)
                k = int(np.searchsorted(sched[i:hi], now, side="right"))
                before = pc()
                got = bs.send_burst(rows[i: i + k], None, ip, port)
                after = pc()
                if got:
                    # Each datagram of a burst leaves in turn: spread the call's time over them.
                    sent_ns[i: i + got] = before + (after - before) * np.arange(1, got + 1) // got
                    status[i: i + got] = LOST
            receive()
            return got, k

        return send_due

    def _compiled_round(self, rows, sched, sent_ns, done_ns, status, counts, ip, port, burst):
        bs = self.bs
        h = bs.compiled_io(rows.ctypes.data, REQ_BYTES, ip, port)
        ts = np.zeros(2, np.int64)
        out = np.zeros(4, np.int64)
        step_args = (h.fd, h.tx_hdr_addr, h.tx_iov, rows.ctypes.data, REQ_BYTES, sched, sent_ns)
        rx_args = (len(rows), burst, h.rx_hdr_addr, h.rx_words, h.rx_addr, bs.data, bs.lengths, bs.src_ip,
                   bs.src_port, done_ns, status, counts, ts, out)

        def send_due(i: int, now: int) -> tuple[int, int]:
            got = client_step(*step_args, i, *rx_args)
            if out[O_ERRNO]:
                raise OSError(int(out[O_ERRNO]), os.strerror(int(out[O_ERRNO])))
            return got, int(out[O_DUE])

        return send_due

    def close(self) -> None:
        self.bs.close()
