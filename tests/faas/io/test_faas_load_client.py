"""The replayer's own HTTP client: answers chunked or delimited by the close, a peer that is not HTTP,
connections opened before the schedule starts."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from tailgate.core.errors import ArgError
from tailgate.faas.io.load import LoadConfig, poisson_trace, replay

TIMING = {"exec_s": 0.001, "e2e_s": 0.002}


class RawServer:
    """A thread answering each request by its path: ``chunked``, ``close`` (no length, then closes),
    ``garbage`` (not HTTP); counts connections and the connections open when the first request came."""

    def __init__(self) -> None:
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(256)
        self.port = self.srv.getsockname()[1]
        self.accepted = 0
        self.open_at_first_request: int | None = None
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = int(next((ln.split(b":")[1] for ln in head.split(b"\r\n")
                                   if ln.lower().startswith(b"content-length")), 0))  # a GET /metrics: none
                while len(rest) < length:
                    rest += conn.recv(65536)
                buf = rest[length:]
                with self.lock:
                    if self.open_at_first_request is None:
                        self.open_at_first_request = self.accepted
                path = head.split(b" ")[1].decode()
                body = json.dumps({"result": 1, "timing": TIMING}).encode()
                if path.endswith("/chunked"):
                    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[k:k + 7]), body[k:k + 7]) for k in range(0, len(body), 7))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
                elif path.endswith("/close"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)
                    return
                elif path.endswith("/garbage"):
                    conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
                    return
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def close(self) -> None:
        self.srv.close()


@pytest.fixture
def server():
    s = RawServer()
    yield s
    s.close()


def test_chunked_and_close_delimited_answers_are_read(server):
    s, _ = replay(poisson_trace(100, 0.2, names=["chunked", "close"], seed=4),
                  LoadConfig(port=server.port, timeout_s=3, connections=4))
    assert s["ok"] == s["invocations"] > 0, s["first_errors"]
    assert s["exec_mean_ms"] == pytest.approx(1.0)


def test_a_peer_that_is_not_http_is_an_error_naming_it_not_a_hang(server):
    s, _ = replay(poisson_trace(50, 0.2, names=["fine", "garbage"], seed=4),
                  LoadConfig(port=server.port, timeout_s=3, connections=8))
    assert s["error"] > 0 and s["ok"] > 0 and s["timeout"] == 0
    assert s["ok"] + s["error"] == s["invocations"]
    assert any("bad HTTP answer" in e and "status line" in e for e in s["first_errors"]), s["first_errors"]


def test_preconnect_opens_the_connections_before_the_first_send(server):
    s, _ = replay(poisson_trace(50, 0.2, names=["fine"], seed=4),
                  LoadConfig(port=server.port, connections=20, preconnect=12))
    assert s["ok"] == s["invocations"]
    assert server.open_at_first_request >= 12
    with pytest.raises(ArgError, match="preconnect"):
        LoadConfig(preconnect=-1)
