"""The PSP wire format: byte layout, vectorized round trips, malformed input, batched UDP I/O."""

import socket
import struct
import time

import numpy as np
import pytest

from tailgate.dispatch.live import wire
from tailgate.dispatch.live.wire import (
    BAD_RUN,
    OK,
    OVERSIZE,
    REQ_BYTES,
    RESP_BYTES,
    SHORT,
    SIZE_DROPPED,
    BatchSocket,
    count_reasons,
    decode_requests,
    decode_responses,
    encode_requests,
    encode_responses,
    ip_to_int,
    udp_socket,
)


def test_request_layout_is_the_artifacts_little_endian_struct():
    rows = encode_requests([7], [2], [100_000])
    assert rows.shape == (1, REQ_BYTES)
    assert rows[0].tobytes() == struct.pack("<IIII", 7, 2, 4, 100_000)
    assert encode_responses([7], [2])[0].tobytes() == struct.pack("<III", 7, 2, 0)


def test_round_trip_many():
    rng = np.random.default_rng(3)
    n = 1000
    ids = rng.integers(0, 2**32, n)
    types = rng.integers(0, 12, n)
    run = rng.integers(0, 10**9, n)
    f, reason = decode_requests(encode_requests(ids, types, run), np.full(n, REQ_BYTES))
    assert (reason == OK).all()
    assert (f["req_id"] == ids).all() and (f["type"] == types).all() and (f["run_ns"] == run).all()
    assert (f["size"] == 4).all()
    r, ok = decode_responses(encode_responses(ids, types, SIZE_DROPPED), np.full(n, RESP_BYTES))
    assert ok.all() and (r["req_id"] == ids).all() and (r["size"] == SIZE_DROPPED).all()


def test_malformed_datagrams_get_a_reason_never_an_exception():
    buf = np.zeros((5, 64), np.uint8)
    buf[:4, :16] = encode_requests([1, 2, 3, 4], [1, 1, 1, 1], [10, 10, 2_000_000_000, 10])
    lengths = np.array([16, 3, 16, 65, 0])
    f, reason = decode_requests(buf, lengths, max_run_ns=1_000_000_000, slot_bytes=64)
    assert reason.tolist() == [OK, SHORT, BAD_RUN, OVERSIZE, SHORT]
    assert f["req_id"][0] == 1 and (f["req_id"][1:] == 0).all()
    assert count_reasons(reason) == {"short": 2, "oversize": 1, "bad_run_ns": 1}
    # nothing at all, and a one-dimensional buffer, decode too
    assert len(decode_requests(np.zeros((0, 64), np.uint8), np.zeros(0, np.int64))[1]) == 0
    assert decode_requests(np.zeros(5, np.uint8), [5])[1].tolist() == [SHORT]
    _, ok = decode_responses(np.zeros((2, 64), np.uint8), [12, 11])
    assert ok.tolist() == [True, False]


@pytest.mark.parametrize("use_mmsg", [True, False])
def test_batch_socket_bursts_over_loopback(use_mmsg):
    if use_mmsg and not wire.COMPILED_IO:
        pytest.skip("no recvmmsg/sendmmsg here")
    rx_sock, tx_sock = udp_socket(), udp_socket()
    rx, tx = BatchSocket(rx_sock, burst=16, use_mmsg=use_mmsg), BatchSocket(tx_sock, burst=16, use_mmsg=use_mmsg)
    try:
        port = rx_sock.getsockname()[1]
        rows = encode_requests(np.arange(10), np.ones(10), np.zeros(10))
        assert tx.send_burst(rows, None, ip_to_int("127.0.0.1"), port) == 10
        tx_sock.sendto(b"\x01\x02\x03", ("127.0.0.1", port))
        tx_sock.sendto(b"y" * 100, ("127.0.0.1", port))
        got, lengths = [], []
        deadline = time.monotonic() + 2
        while len(got) < 12 and time.monotonic() < deadline:
            n = rx.recv_burst()
            got.extend(rx.data[:n, :16].copy())
            lengths.extend(rx.lengths[:n].tolist())
            if n:
                assert (rx.src_port[:n] == tx_sock.getsockname()[1]).all()
                assert (rx.src_ip[:n] == ip_to_int("127.0.0.1")).all()
        assert len(got) == 12
        f, reason = decode_requests(np.array(got), np.array(lengths), slot_bytes=rx.slot_bytes)
        assert f["req_id"][:10].tolist() == list(range(10))
        assert reason.tolist() == [OK] * 10 + [SHORT, OVERSIZE]
        # answers to per-datagram addresses
        back = encode_responses([5, 6], [1, 1])
        assert rx.send_burst(back, None, np.full(2, ip_to_int("127.0.0.1")), np.full(2, tx_sock.getsockname()[1])) == 2
        deadline = time.monotonic() + 2
        n = 0
        while n < 2 and time.monotonic() < deadline:
            n += tx.recv_burst()
        assert n == 2
        assert rx.recv_burst() == 0          # nothing waiting: returns at once
    finally:
        rx.close()
        tx.close()


def test_send_to_a_closed_port_does_not_raise():
    s = udp_socket()
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    bs = BatchSocket(s)
    try:
        for _ in range(3):
            assert bs.send_burst(encode_requests([1, 2], [1, 1], [0, 0]), None, ip_to_int("127.0.0.1"), port) == 2
    finally:
        bs.close()


def test_compiled_libc_calls_read_the_clock_and_errno():
    from numba import njit

    from tailgate.dispatch.live.wire import COMPILED_IO, c_errno, c_sendmmsg, clock_ns

    if not COMPILED_IO:
        pytest.skip("compiled socket calls are Linux-only")

    @njit
    def bad_send():
        return c_sendmmsg(np.int64(-1), np.int64(0), np.int64(1), np.int64(0)), c_errno()

    ts = np.zeros(2, np.int64)
    before = time.perf_counter_ns()
    now = clock_ns(ts)
    assert before <= now <= time.perf_counter_ns()          # the clock perf_counter_ns reads
    assert bad_send() == (-1, 9)                             # EBADF
