"""The hello: the server tells a client its configuration; the client refuses a server it is not
sized for (one line naming both values) unless forced, and loads a server that does not answer
hellos unchecked."""

import socket

import pytest

from tailgate.dispatch.live.loadgen import (
    LoadConfig,
    NoAnswer,
    ServerMismatch,
    hello,
    load,
    server_mismatches,
)
from tailgate.dispatch.live.process import ServerProcess
from tailgate.dispatch.live.wire import (
    HELLO_BYTES,
    HELLO_MAGIC,
    decode_hello_reply,
    encode_hello,
    encode_hello_reply,
    udp_socket,
)


def _dead_port() -> int:
    s = udp_socket()
    port = s.getsockname()[1]
    s.close()
    return port


def test_hello_round_trips_on_the_wire():
    h = encode_hello(7)
    assert len(h) == HELLO_BYTES and int.from_bytes(h[:4], "little") == HELLO_MAGIC
    reply = encode_hello_reply(7, {"n_workers": 3})
    assert decode_hello_reply(reply, 7) == {"n_workers": 3}
    assert decode_hello_reply(reply, 8) is None                   # another hello's answer
    assert decode_hello_reply(b"\x00" * 12, 7) is None            # a PSP response
    assert decode_hello_reply(reply[:8] + b"{not json", 7) is None


def test_a_server_answers_a_hello_with_its_configuration():
    with ServerProcess("darc", "disp2", 3, worker_kind="sleep", run_scale=2.0) as srv:
        cfg = hello("127.0.0.1", srv.port)
    assert cfg["server"] == "tailgate" and cfg["policy"] == "darc" and cfg["n_workers"] == 3
    assert cfg["workload"] == "disp2" and cfg["run_scale"] == 2.0 and cfg["worker_kind"] == "sleep"
    assert cfg["types"] == [[1, "SHORT", 1000.0], [2, "LONG", 100000.0]]
    s = srv.stats
    assert s["hellos"] == 1 and s["malformed"] == 0 and s["accepted"] == 0 and s["accounted"]


def test_a_matching_client_loads_and_reports_the_server():
    with ServerProcess("cfcfs", "disp2", 2, worker_kind="sleep") as srv:
        r = load(LoadConfig("disp2", 0.3, 2, port=srv.port, duration_s=0.3, run_scale=100), quiet=True)
    assert r["answered"] == r["n_requests"] and r["server"]["n_workers"] == 2


def test_a_mismatched_client_is_refused_in_one_line_naming_both_values():
    with ServerProcess("cfcfs", "disp2", 2, worker_kind="sleep", run_scale=5.0) as srv:
        with pytest.raises(ServerMismatch) as e:
            load(LoadConfig("sbim2", 0.3, 4, port=srv.port, duration_s=0.3, run_scale=100), quiet=True)
        msg = str(e.value)
        assert "\n" not in msg and f"127.0.0.1:{srv.port}" in msg and "--force" in msg
        assert "the server's workload is 'disp2'" in msg and "this client's 'sbim2'" in msg
        assert "the server has 2 workers, this client was told --workers 4" in msg
        assert "--run-scale 5" in msg
        # --force loads it anyway
        r = load(LoadConfig("disp2", 0.3, 4, port=srv.port, duration_s=0.2, run_scale=100, force=True), quiet=True)
        assert r["answered"] == r["n_requests"] and r["server"]["n_workers"] == 2
    assert srv.stats["accepted"] == r["n_requests"]


def test_what_counts_as_a_mismatch():
    server = {"workload": "disp2", "types": [[1, "SHORT", 1000.0], [2, "LONG", 100000.0]], "n_workers": 2,
              "run_scale": 1.0}
    assert server_mismatches(LoadConfig("disp2", 0.5, 2, port=9), server) == []
    # with --rate, the workers and the server's run scale do not set the load
    assert server_mismatches(LoadConfig("disp2", 0.5, 8, port=9, rate_rps=100), server | {"run_scale": 3.0}) == []
    assert len(server_mismatches(LoadConfig("disp2", 0.5, 8, port=9), server)) == 1
    # same name, other types (a YAML workload edited on one side)
    other = server | {"types": [[1, "SHORT", 2000.0], [2, "LONG", 100000.0]]}
    assert "SHORT (id 1) 2 µs" in server_mismatches(LoadConfig("disp2", 0.5, 2, port=9), other)[0]


def test_a_server_that_does_not_answer_hellos_is_loaded_unchecked():
    """A PSP server that knows no hello (here: one that answers every 16-byte request, ignores the rest)."""
    import threading

    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(0.05)
    port = srv.getsockname()[1]
    stop = threading.Event()
    seen = []

    def serve():
        while not stop.is_set():
            try:
                data, addr = srv.recvfrom(64)
            except TimeoutError:
                continue
            seen.append(len(data))
            if len(data) == 16:
                srv.sendto(data[:8] + b"\0\0\0\0", addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = load(LoadConfig("disp2", 0.5, 4, port=port, duration_s=0.1, rate_rps=200, zero_work=True), quiet=True)
    finally:
        stop.set()
        t.join(2)
        srv.close()
    assert r["server"] is None and r["answered"] == r["n_requests"] == 20
    assert seen.count(HELLO_BYTES) >= 1


def test_no_server_at_all_is_still_no_answer():
    port = _dead_port()
    with pytest.raises(NoAnswer, match=rf"^no answer from 127\.0\.0\.1:{port}"):
        load(LoadConfig("disp2", 0.5, 2, port=port, duration_s=0.05, rate_rps=200, timeout_s=0.05), quiet=True)
    assert hello("127.0.0.1", port, timeout_s=0.05) is None
