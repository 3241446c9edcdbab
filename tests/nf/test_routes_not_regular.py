"""A route file that is not a regular file (a FIFO, a device) is refused at once, never waited on."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tailgate.core.errors import ArgError
from tailgate.nf.lookup import load_routes

TAILGATE = Path(sys.executable).with_name("tailgate")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def test_fifo_route_file_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "routes.fifo"
    os.mkfifo(fifo)
    result = {}

    def target():
        try:
            load_routes(fifo)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["exc"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(10)
    hung = th.is_alive()
    if hung:
        os.close(os.open(fifo, os.O_RDWR))  # release the reader
        th.join(10)
    assert not hung, "load_routes waited on a FIFO"
    assert isinstance(result.get("exc"), ArgError)
    assert str(result["exc"]) == f"{fifo}: cannot read route file: it is a FIFO (named pipe), not a regular file"
    with pytest.raises(ArgError, match="it is a character device"):
        load_routes("/dev/null")
    with pytest.raises(ArgError, match="it is a directory, not a regular file"):
        load_routes(tmp_path)


def test_router_run_with_fifo_routes_says_one_line(tmp_path):
    fifo = tmp_path / "routes.fifo"
    os.mkfifo(fifo)
    cap = tmp_path / "in.pcap"
    subprocess.run([TAILGATE, "pcap", "gen", cap, "--packets", "10"], check=True, capture_output=True, timeout=120)
    res = subprocess.run(
        [TAILGATE, "run", EXAMPLES / "router.py", f"pcap={cap}", f"routes={fifo}", "--out", tmp_path / "out"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 2
    err = res.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    why = "cannot read route file: it is a FIFO (named pipe), not a regular file"
    assert err.endswith(f"IPv4Lookup(lookup): {fifo}: {why}"), err
