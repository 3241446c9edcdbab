"""The PSP request wire format, encoded and decoded many datagrams at a time, and batched UDP I/O.

Manual
------
A request is one UDP datagram whose payload is 16 bytes (reference sheet §12; the artifact adds
Ethernet + IPv4 + UDP headers in front, the kernel does that here)::

    offset  0  u32 req_id   the client's id, echoed in the response
    offset  4  u32 type     request type id (0 UNKNOWN, 1 SHORT, 2 LONG, ... 10 GET, 11 SCAN)
    offset  8  u32 size     payload size the artifact puts there (= 4); not checked
    offset 12  u32 run_ns   how long a spin/sleep worker works on it, in ns

A response is 12 bytes: ``req_id, type, size``. ``size`` is 0 for a served request. tailgate adds
one value the artifact does not have, so that a refused request is answered rather than lost
silently: ``size = SIZE_DROPPED`` (0xFFFFFFFF) means "the server dropped it (queue full)".

The hello (a tailgate extension, so that a client can check it is sized for this server): the
client sends ``HELLO_BYTES`` (8) bytes, ``u32 HELLO_MAGIC, u32 nonce``; a tailgate server answers
``u32 HELLO_REPLY_MAGIC, u32 nonce`` followed by its configuration as UTF-8 JSON (policy,
workers, workload and its types, run scale, worker kind, queueing-delay limits:
:func:`encode_hello_reply`). A hello is shorter than a request, so a server that does not know
it counts it as malformed (``short``) and does not answer: the client then goes on unchecked.

Byte order is little-endian: the artifact writes its C structs in host order on x86, so these
fields are little-endian on the wire (not network order) — a tailgate client speaks to the
original server and back.

Decoding never raises. :func:`decode_requests` returns a reason code per datagram:
``OK``, ``SHORT`` (fewer than 16 bytes), ``OVERSIZE`` (longer than the receive slot: truncated by
the kernel), ``BAD_RUN`` (``run_ns`` above the server's ``max_run_ns``); ``REASONS`` names them.

Batched socket I/O: :class:`BatchSocket` wraps a non-blocking UDP socket and receives up to
``burst`` datagrams per call into one ``(burst, slot)`` uint8 array (``recv_burst``), and sends
many (``send_burst``), with Linux ``recvmmsg``/``sendmmsg`` through ctypes — one system call per
burst instead of one per datagram, which is what lets one Python process move tens of thousands
of requests per second. Elsewhere it falls back to a loop of ``recvfrom_into``/``sendto``.

Compiled code can make those calls itself: :func:`c_sendmmsg`/:func:`c_recvmmsg` are numba
intrinsics that call libc by symbol name (so numba's on-disk cache stays valid, unlike a ctypes
pointer), :func:`clock_ns` reads CLOCK_MONOTONIC (what ``time.perf_counter_ns`` reads on Linux)
and :func:`c_errno` the errno of the last call. ``COMPILED_IO`` says whether they are usable
(Linux, 64-bit). :meth:`BatchSocket.compiled_io` aims a socket's send headers at a destination
and hands compiled code the header arrays (:class:`MmsgHeaders`); :func:`unpack_mmsg` reads what
a ``recvmmsg`` filled in. The load client's compiled round uses them (it costs less than half of
a :meth:`BatchSocket.send_burst` call, which goes through Python and ctypes).

Example::

    data = encode_requests(np.arange(3), np.array([1, 2, 1]), np.array([1000, 100000, 1000]))
    f, reason = decode_requests(data, np.full(3, REQ_BYTES))
    f["req_id"], f["type"], f["run_ns"], reason      # reason all OK
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import sys
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

REQ_BYTES = 16
RESP_BYTES = 12
REQ_DTYPE = np.dtype([("req_id", "<u4"), ("type", "<u4"), ("size", "<u4"), ("run_ns", "<u4")])
RESP_DTYPE = np.dtype([("req_id", "<u4"), ("type", "<u4"), ("size", "<u4")])
REQ_SIZE_FIELD = 4            # what the artifact's client puts in `size`
SIZE_DROPPED = 0xFFFFFFFF     # response `size`: the server refused the request (tailgate extension)

HELLO_BYTES = 8
HELLO_MAGIC = 0x31484754      # b"TGH1" little-endian: a client's hello
HELLO_REPLY_MAGIC = 0x32484754   # b"TGH2": the server's answer, JSON after 8 bytes
HELLO_REPLY_MAX_BYTES = 8192

OK, SHORT, OVERSIZE, BAD_RUN = 0, 1, 2, 3
REASONS = ("ok", "short", "oversize", "bad_run_ns")

#: Receive slot: a PSP datagram is 16 bytes; anything beyond 64 is not one.
SLOT_BYTES = 64


def encode_requests(req_id, type_id, run_ns, size: int = REQ_SIZE_FIELD) -> np.ndarray:
    """``(n, 16)`` uint8: one request payload per row."""
    req_id = np.asarray(req_id)
    out = np.empty(len(req_id), REQ_DTYPE)
    out["req_id"] = req_id
    out["type"] = type_id
    out["size"] = size
    out["run_ns"] = run_ns
    return out.view(np.uint8).reshape(-1, REQ_BYTES)


def encode_responses(req_id, type_id, size=0) -> np.ndarray:
    """``(n, 12)`` uint8: one response payload per row (``size`` 0 = served, SIZE_DROPPED = refused)."""
    req_id = np.asarray(req_id)
    out = np.empty(len(req_id), RESP_DTYPE)
    out["req_id"] = req_id
    out["type"] = type_id
    out["size"] = size
    return out.view(np.uint8).reshape(-1, RESP_BYTES)


def encode_hello(nonce: int) -> bytes:
    """A client's hello datagram."""
    return int(HELLO_MAGIC).to_bytes(4, "little") + (int(nonce) & 0xFFFFFFFF).to_bytes(4, "little")


def encode_hello_reply(nonce: int, config: dict) -> bytes:
    """The server's answer to hello ``nonce``: magic, nonce, ``config`` as compact JSON."""
    body = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    return (int(HELLO_REPLY_MAGIC).to_bytes(4, "little") + (int(nonce) & 0xFFFFFFFF).to_bytes(4, "little")
            + body)[:HELLO_REPLY_MAX_BYTES]


def decode_hello_reply(payload: bytes, nonce: int) -> dict | None:
    """The configuration in a hello answer to ``nonce``; None if ``payload`` is not one."""
    if len(payload) < 9 or int.from_bytes(payload[:4], "little") != HELLO_REPLY_MAGIC:
        return None
    if int.from_bytes(payload[4:8], "little") != (int(nonce) & 0xFFFFFFFF):
        return None
    try:
        config = json.loads(payload[8:].decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _fields(buf: np.ndarray, n_words: int) -> np.ndarray:
    """``buf`` rows as little-endian u32 words: ``(n, n_words)``. Rows shorter than that read 0."""
    if buf.shape[1] < 4 * n_words:
        pad = np.zeros((buf.shape[0], 4 * n_words), np.uint8)
        pad[:, : buf.shape[1]] = buf
        buf = pad
    return np.ascontiguousarray(buf[:, : 4 * n_words]).view("<u4").reshape(-1, n_words)


def decode_requests(buf: np.ndarray, lengths: np.ndarray, max_run_ns: int = 0xFFFFFFFF,
                    slot_bytes: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fields of ``len(lengths)`` received datagrams, rows of ``buf`` ((n, slot) uint8), and a reason
    code per datagram (``OK`` or why it is malformed). Fields of a malformed row are garbage (0)."""
    lengths = np.asarray(lengths)
    n = len(lengths)
    buf = buf.reshape(1, -1) if buf.ndim == 1 else buf
    w = _fields(buf[:n], 4).astype(np.int64)
    slot = buf.shape[1] if slot_bytes is None else slot_bytes
    reason = np.zeros(n, np.int8)
    reason[lengths < REQ_BYTES] = SHORT
    reason[lengths > slot] = OVERSIZE
    reason[(reason == OK) & (w[:, 3] > max_run_ns)] = BAD_RUN
    bad = reason != OK
    if bad.any():
        w[bad] = 0
    return {"req_id": w[:, 0], "type": w[:, 1], "size": w[:, 2], "run_ns": w[:, 3]}, reason


def decode_responses(buf: np.ndarray, lengths: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fields of received responses and a bool mask of the well-formed ones (exactly 12 bytes)."""
    lengths = np.asarray(lengths)
    n = len(lengths)
    buf = buf.reshape(1, -1) if buf.ndim == 1 else buf
    w = _fields(buf[:n], 3).astype(np.int64)
    ok = lengths == RESP_BYTES
    return {"req_id": w[:, 0], "type": w[:, 1], "size": w[:, 2]}, ok


def count_reasons(reason: np.ndarray) -> dict[str, int]:
    """``{"short": n, ...}`` for the malformed reasons present (OK is not listed)."""
    counts = np.bincount(reason.astype(np.int64), minlength=len(REASONS))
    return {REASONS[i]: int(counts[i]) for i in range(1, len(REASONS)) if counts[i]}


# --- addresses --------------------------------------------------------------------------------

def ip_to_int(host: str) -> int:
    """IPv4 dotted quad -> u32 in host order (``'127.0.0.1'`` -> 0x7F000001)."""
    return int.from_bytes(socket.inet_aton(host), "big")


def int_to_ip(ip: int) -> str:
    return socket.inet_ntoa(int(ip).to_bytes(4, "big"))


# --- batched UDP I/O (recvmmsg / sendmmsg through ctypes) ----------------------------------------

# struct mmsghdr on x86-64/aarch64 Linux: struct msghdr (56 bytes) + unsigned msg_len + padding.
_MMSG = np.dtype({
    "names": ["name", "namelen", "iov", "iovlen", "control", "controllen", "flags", "msg_len"],
    "formats": ["<u8", "<u4", "<u8", "<u8", "<u8", "<u8", "<i4", "<u4"],
    "offsets": [0, 8, 16, 24, 32, 40, 48, 56],
    "itemsize": 64,
})
_IOVEC = np.dtype([("base", "<u8"), ("len", "<u8")])
# struct sockaddr_in: family (host order u16), port (network order), addr (network order), zero[8].
_SOCKADDR = np.dtype([("family", "<u2"), ("port", ">u2"), ("addr", ">u4"), ("zero", "<u8")])
_MSG_TRUNC = 0x20
MSG_DONTWAIT = 0x40


def _load_mmsg():
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        recv, send = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    recv.restype = ctypes.c_int
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    send.restype = ctypes.c_int
    return recv, send


_MMSG_CALLS = _load_mmsg()
#: Compiled code may call libc's recvmmsg/sendmmsg/clock_gettime itself (Linux, 64-bit): the
#: symbols are resolved by name when a kernel is loaded, so the on-disk cache stays valid.
COMPILED_IO = _MMSG_CALLS is not None


_I32, _I64, _PTR = ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()


def _libc_codegen(name: str, params):
    """Lowering of a call to libc's int-returning ``name`` with int64 arguments (addresses for
    pointers), the result widened to int64."""
    def codegen(context, builder, signature, llargs):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, params), name)
        conv = [builder.inttoptr(a, t) if isinstance(t, ir.PointerType) else builder.trunc(a, t)
                for a, t in zip(llargs, params)]
        return builder.sext(builder.call(fn, conv), _I64)
    return codegen


@intrinsic
def c_sendmmsg(typingctx, fd, hdr, n, flags):
    """libc ``sendmmsg(fd, hdr, n, flags)`` from compiled code (``hdr``: an address); -1 sets errno."""
    return types.int64(fd, hdr, n, flags), _libc_codegen("sendmmsg", [_I32, _PTR, _I32, _I32])


@intrinsic
def c_recvmmsg(typingctx, fd, hdr, n, flags, timeout):
    """libc ``recvmmsg(fd, hdr, n, flags, timeout)`` from compiled code (addresses; timeout 0: none)."""
    return types.int64(fd, hdr, n, flags, timeout), _libc_codegen("recvmmsg", [_I32, _PTR, _I32, _I32, _PTR])


@intrinsic
def _c_clock_gettime(typingctx, clock, ts):
    return types.int64(clock, ts), _libc_codegen("clock_gettime", [_I32, _PTR])


_CLOCK_MONOTONIC = 1          # what time.perf_counter_ns reads on Linux


@njit(cache=True)
def clock_ns(ts) -> int:
    """CLOCK_MONOTONIC in ns (= ``time.perf_counter_ns()`` on Linux); ``ts`` is int64[2] scratch."""
    _c_clock_gettime(np.int64(_CLOCK_MONOTONIC), ts.ctypes.data)
    return ts[0] * 1_000_000_000 + ts[1]


@intrinsic
def _errno_value(typingctx):
    """This thread's ``errno`` after a libc call from compiled code."""
    def codegen(context, builder, signature, llargs):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32.as_pointer(), []),
                                            "__errno_location")
        return builder.sext(builder.load(builder.call(fn, [])), _I64)
    return types.int64(), codegen


@njit(cache=True)
def c_errno() -> int:
    return _errno_value()


@njit(cache=True)
def unpack_mmsg(words, addr, n, slot_bytes, lengths, src_ip, src_port):
    """After recvmmsg: lengths (a truncated datagram reads as slot_bytes + 1) and senders of the
    first ``n`` messages; resets each ``msg_namelen`` (value-result) for the next call."""
    for i in range(n):
        length = words[i, 14]                       # msg_len, byte offset 56
        if words[i, 12] & _MSG_TRUNC:               # msg_flags, byte offset 48
            length = slot_bytes + 1
        lengths[i] = length
        words[i, 2] = 16                            # msg_namelen, byte offset 8
        src_port[i] = (np.int64(addr[i, 2]) << 8) | addr[i, 3]
        src_ip[i] = (np.int64(addr[i, 4]) << 24) | (np.int64(addr[i, 5]) << 16) | (np.int64(addr[i, 6]) << 8) | addr[i, 7]


_NO_LENGTHS = np.zeros(0, np.int64)


class MmsgHeaders(NamedTuple):
    """A :class:`BatchSocket`'s message headers, for compiled code that calls ``sendmmsg`` /
    ``recvmmsg`` on it itself (:meth:`BatchSocket.compiled_io`). Valid until a ``send_burst`` of
    more than ``burst`` datagrams reallocates the send side."""
    fd: int
    tx_hdr_addr: int           # struct mmsghdr[burst] to send, each aimed at the destination
    tx_iov: np.ndarray         # (burst, 2) u64: each datagram's payload address and length
    rx_hdr_addr: int           # struct mmsghdr[burst] to receive into ``data``
    rx_words: np.ndarray       # (burst, 16) u32 view of the receive headers (for unpack_mmsg)
    rx_addr: np.ndarray        # (burst, 16) u8: the senders' sockaddr_in (for unpack_mmsg)


def _scalar_or_array(v) -> np.ndarray:
    """A 1-element array broadcasts in the packer: ip/port may be a scalar or one per datagram."""
    a = np.asarray(v, dtype=np.int64)
    return a.reshape(1) if a.ndim == 0 else a


@njit(cache=True)
def _pack_mmsg(words, iov, addr, n, rows_addr, width, lengths, ips, ports, connected, addr0):
    """Fill the first ``n`` sendmmsg headers: datagram i is row i of a (n, width) uint8 array at
    ``rows_addr`` (``lengths[i]`` bytes if given), to ``ips[i]:ports[i]`` (or index 0 for all)."""
    for i in range(n):
        iov[i, 0] = rows_addr + i * width
        iov[i, 1] = lengths[i] if lengths.shape[0] else width
        if connected:
            words[i, 0] = 0                          # msg_name
            words[i, 1] = 0                          # msg_namelen
        else:
            ip = ips[i] if ips.shape[0] > 1 else ips[0]
            port = ports[i] if ports.shape[0] > 1 else ports[0]
            addr[i, 2] = (port >> 8) & 0xFF
            addr[i, 3] = port & 0xFF
            addr[i, 4] = (ip >> 24) & 0xFF
            addr[i, 5] = (ip >> 16) & 0xFF
            addr[i, 6] = (ip >> 8) & 0xFF
            addr[i, 7] = ip & 0xFF
            words[i, 0] = addr0 + i * 16
            words[i, 1] = 16


class BatchSocket:
    """A non-blocking IPv4 UDP socket that receives and sends bursts of datagrams.

    After ``n = recv_burst()``: ``data[:n]`` holds the datagrams (``(burst, slot_bytes)`` uint8),
    ``lengths[:n]`` their true lengths (a length above ``slot_bytes`` was truncated), and
    ``src_ip[:n]`` / ``src_port[:n]`` the senders (u32 and u16, host order).
    ``send_burst(rows, lengths, ip, port)`` sends rows of a uint8 array; ``ip``/``port`` may be
    scalars or arrays (None: the connected peer). ``use_mmsg=False`` forces the portable loop.
    """

    def __init__(self, sock: socket.socket, burst: int = 64, slot_bytes: int = SLOT_BYTES, use_mmsg: bool = True):
        self.sock = sock
        sock.setblocking(False)
        self.fd = sock.fileno()
        self.burst = burst
        self.slot_bytes = slot_bytes
        self.data = np.zeros((burst, slot_bytes), np.uint8)
        self.lengths = np.zeros(burst, np.int64)
        self.src_ip = np.zeros(burst, np.int64)
        self.src_port = np.zeros(burst, np.int64)
        self._calls = _MMSG_CALLS if use_mmsg else None
        # The receive side reads one byte past the slot so that an oversize datagram is seen
        # as longer than the slot (MSG_TRUNC then reports its real length anyway).
        if self._calls is not None:
            self._rx_hdr = np.zeros(burst, _MMSG)
            self._rx_iov = np.zeros(burst, _IOVEC)
            self._rx_addr = np.zeros(burst, _SOCKADDR)
            self._rx_iov["base"] = self.data.ctypes.data + np.arange(burst, dtype=np.uint64) * slot_bytes
            self._rx_iov["len"] = slot_bytes
            self._rx_hdr["iov"] = self._rx_iov.ctypes.data + np.arange(burst, dtype=np.uint64) * _IOVEC.itemsize
            self._rx_hdr["iovlen"] = 1
            self._rx_hdr["name"] = self._rx_addr.ctypes.data + np.arange(burst, dtype=np.uint64) * _SOCKADDR.itemsize
            self._rx_hdr["namelen"] = _SOCKADDR.itemsize
            self.rx_hdr_addr = self._rx_hdr.ctypes.data
            # Raw views for the compiled unpacker: u32 words of each 64-byte mmsghdr, sockaddr bytes.
            self.rx_words = self._rx_hdr.view(np.uint32).reshape(burst, _MMSG.itemsize // 4)
            self.rx_addr_bytes = self._rx_addr.view(np.uint8).reshape(burst, _SOCKADDR.itemsize)
            self._rx_buf = None
            self._alloc_tx(burst)
            # Load (or compile) both packers now, not on the first datagram of a measurement.
            unpack_mmsg(self.rx_words, self.rx_addr_bytes, 0, slot_bytes, self.lengths, self.src_ip, self.src_port)
            _pack_mmsg(self._tx_words, self.tx_iov, self._tx_addr_bytes, 0, 0, 16, _NO_LENGTHS,
                       _scalar_or_array(0), _scalar_or_array(0), False, self._tx_addr0)
        else:
            self._rx_buf = bytearray(slot_bytes + 1)
            self._rx_view = memoryview(self._rx_buf)

    def _alloc_tx(self, cap: int) -> None:
        self._tx_cap = cap
        self._tx_hdr = np.zeros(cap, _MMSG)
        self._tx_iov = np.zeros(cap, _IOVEC)
        self._tx_addr = np.zeros(cap, _SOCKADDR)
        self._tx_addr["family"] = socket.AF_INET
        self._tx_hdr["iov"] = self._tx_iov.ctypes.data + np.arange(cap, dtype=np.uint64) * _IOVEC.itemsize
        self._tx_hdr["iovlen"] = 1
        self.tx_hdr_addr = self._tx_hdr.ctypes.data
        self._tx_addr0 = self._tx_addr.ctypes.data
        self._tx_words = self._tx_hdr.view(np.uint64).reshape(cap, _MMSG.itemsize // 8)
        self.tx_iov = self._tx_iov.view(np.uint64).reshape(cap, 2)
        self._tx_addr_bytes = self._tx_addr.view(np.uint8).reshape(cap, _SOCKADDR.itemsize)

    @property
    def uses_mmsg(self) -> bool:
        """Whether bursts go through ``recvmmsg``/``sendmmsg`` (else a portable loop)."""
        return self._calls is not None

    def compiled_io(self, rows_addr: int, width: int, ip: int, port: int) -> MmsgHeaders:
        """Aim every send header at ``ip:port``, datagram ``i`` at row ``i`` of a ``(k, width)``
        uint8 array at ``rows_addr``, and return the headers for compiled code (which then sets
        only payload pointers, ``tx_iov[j, 0]``). Needs :attr:`uses_mmsg`."""
        if self._calls is None:
            raise RuntimeError("compiled_io needs recvmmsg/sendmmsg")
        _pack_mmsg(self._tx_words, self.tx_iov, self._tx_addr_bytes, self.burst, rows_addr, width,
                  _NO_LENGTHS, _scalar_or_array(ip), _scalar_or_array(port), False, self._tx_addr0)
        return MmsgHeaders(self.fd, self.tx_hdr_addr, self.tx_iov, self.rx_hdr_addr, self.rx_words, self.rx_addr_bytes)

    # -- receive ---------------------------------------------------------------------------------
    def recv_burst(self, max_n: int | None = None) -> int:
        """Receive up to ``max_n`` (default ``burst``) waiting datagrams without blocking; returns n."""
        max_n = self.burst if max_n is None else min(max_n, self.burst)
        if self._calls is None:
            return self._recv_loop(max_n)
        n = self._calls[0](self.fd, self.rx_hdr_addr, max_n, MSG_DONTWAIT, None)
        if n <= 0:
            if n < 0:
                e = ctypes.get_errno()
                if e not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    raise OSError(e, os.strerror(e))
            return 0
        unpack_mmsg(self.rx_words, self.rx_addr_bytes, n, self.slot_bytes, self.lengths, self.src_ip, self.src_port)
        return n

    def _recv_loop(self, max_n: int) -> int:
        n = 0
        recv = self.sock.recvfrom_into
        while n < max_n:
            try:
                length, addr = recv(self._rx_buf)
            except (BlockingIOError, InterruptedError):
                break
            k = min(length, self.slot_bytes)
            self.data[n, :k] = np.frombuffer(self._rx_buf, np.uint8, k)
            self.lengths[n] = length
            self.src_ip[n] = ip_to_int(addr[0])
            self.src_port[n] = addr[1]
            n += 1
        return n

    # -- send ------------------------------------------------------------------------------------
    def send_burst(self, rows: np.ndarray, lengths=None, ip=None, port=None) -> int:
        """Send each row of ``rows`` (uint8, contiguous) as one datagram; returns how many left.

        A full socket buffer stops the burst early (the caller counts the rest); nothing raises
        for EAGAIN/ENOBUFS/ECONNREFUSED."""
        if rows.dtype != np.uint8 or not rows.flags.c_contiguous:
            rows = np.ascontiguousarray(rows, dtype=np.uint8)
        n = rows.shape[0]
        if n == 0:
            return 0
        width = rows.shape[1]
        if self._calls is None:
            lengths = np.full(n, width, np.int64) if lengths is None else np.asarray(lengths)
            return self._send_loop(rows, lengths, ip, port)
        if n > self._tx_cap:
            self._alloc_tx(max(n, self.burst))
        if lengths is None:
            lengths = _NO_LENGTHS
        connected = ip is None
        ips = _scalar_or_array(0 if connected else ip)
        ports = _scalar_or_array(0 if connected else port)
        _pack_mmsg(self._tx_words, self.tx_iov, self._tx_addr_bytes, n, rows.__array_interface__["data"][0],
                   width, lengths, ips, ports, connected, self._tx_addr0)
        hdr_addr = self.tx_hdr_addr
        sent = 0
        while sent < n:
            k = self._calls[1](self.fd, hdr_addr + sent * _MMSG.itemsize, n - sent, MSG_DONTWAIT)
            if k <= 0:
                e = ctypes.get_errno()
                if k < 0 and e == errno.EINTR:
                    continue
                if k < 0 and e in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM):
                    sent += 1        # that datagram is lost (the peer is gone); go on with the rest
                    continue
                break
            sent += k
        return sent

    def _send_loop(self, rows, lengths, ip, port) -> int:
        sent = 0
        n = rows.shape[0]
        ips = np.broadcast_to(np.asarray(ip if ip is not None else 0), (n,))
        ports = np.broadcast_to(np.asarray(port if port is not None else 0), (n,))
        for i in range(n):
            payload = rows[i, : lengths[i]].tobytes()
            try:
                if ip is None:
                    self.sock.send(payload)
                else:
                    self.sock.sendto(payload, (int_to_ip(ips[i]), int(ports[i])))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                pass         # refused / unreachable: this one is lost, go on
            sent += 1
        return sent

    def close(self) -> None:
        self.sock.close()


def set_timer_slack_ns(ns: int) -> None:
    """Linux: let this process's sleeps and ``select`` timeouts end within ``ns`` of their deadline
    (the default slack is 50 µs, which makes every short sleep ~50-100 µs late)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(29, ns, 0, 0, 0)   # PR_SET_TIMERSLACK
        except (OSError, AttributeError):
            pass


def udp_socket(host: str = "127.0.0.1", port: int = 0, rcvbuf_bytes: int = 4 << 20) -> socket.socket:
    """A bound IPv4 UDP socket with a large receive buffer (bursts of requests must not be lost)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            s.setsockopt(socket.SOL_SOCKET, opt, rcvbuf_bytes)
        except OSError:
            pass
    s.bind((host, port))
    return s
