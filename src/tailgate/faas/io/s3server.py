"""A real S3-compatible server on 127.0.0.1 for the I/O functions: start, wait until it answers, stop.

Manual
------
::

    with S3Server() as s3:                 # moto's server mode in a child process, on a free port
        s3.endpoint_url                    # 'http://127.0.0.1:PORT'
        s3.client().put_object(Bucket="b", Key="k", Body=b"...")   # a boto3 client for it

:class:`S3Server` runs ``python -m moto.server -H 127.0.0.1 -p PORT`` (the ``moto[server]``
package) as a child process in its own process group. ``port=0`` (default) takes a free port
from the kernel. :meth:`S3Server.start` returns once the server answers an HTTP request, waiting at
most ``ready_timeout_s``; if the child exits first, or does not answer in time, it is stopped and
:class:`S3ServerError` says so in one line (with the last line the child wrote), as it does when
moto is not installed or the port is taken. :meth:`S3Server.stop` ends the process group
(SIGTERM, then SIGKILL after ``stop_timeout_s``); it runs on leaving the ``with`` block, whatever
ends it, and at interpreter exit (``atexit``) for a server never stopped. Stopping twice is harmless.

The server keeps objects in memory, in the moto process: a stopped server's buckets are gone.
Its credentials are any (moto accepts every key); :data:`TEST_CREDENTIALS` are the ones
:meth:`S3Server.client` and the examples use, so nothing is read from the user's AWS configuration.
``endpoint_env()`` gives the environment (``S3_ENDPOINT_URL``, ``AWS_*``) that
``examples/faas/s3func.py`` and a sandbox read.

Arguments of :class:`S3Server`:

{args}
"""

from __future__ import annotations

import atexit
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from tailgate.core.args import Arg, bind_args, render_args
from tailgate.core.errors import TailgateError
from tailgate.core.procs import stop_group

#: Credentials for the local server (moto accepts any), and the region the examples use.
TEST_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}

S3SERVER_ARGS = (
    Arg("host", str, "127.0.0.1", unit="-", help="address to listen on"),
    Arg("port", int, 0, unit="port", min=0, max=65535, help="TCP port (0: a free one)"),
    Arg("ready_timeout_s", float, 30.0, unit="s", min=0.1, help="how long start() waits for the first answer"),
    Arg("stop_timeout_s", float, 5.0, unit="s", min=0.1, help="how long stop() waits after SIGTERM before SIGKILL"),
)
__doc__ = __doc__.replace("{args}", render_args(S3SERVER_ARGS))


class S3ServerError(TailgateError):
    """The local S3 server could not start (not installed, port taken, no answer in time)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the kernel says is free now (another process may take it before it is used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class S3Server:
    """A moto S3 server in a child process (module manual)."""

    def __init__(self, **kwargs) -> None:
        a = bind_args("s3 server", S3SERVER_ARGS, kwargs)
        self.host = a["host"]
        self.port = a["port"]
        self.ready_timeout_s = a["ready_timeout_s"]
        self.stop_timeout_s = a["stop_timeout_s"]
        self.proc: subprocess.Popen | None = None
        self.start_s: float | None = None  # start() to the first answer
        self.log = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def endpoint_env(self) -> dict[str, str]:
        """Environment variables that point a function (``examples/faas/s3func.py``) at this server."""
        return {"S3_ENDPOINT_URL": self.endpoint_url,
                "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS["aws_secret_access_key"],
                "AWS_DEFAULT_REGION": TEST_CREDENTIALS["region_name"]}

    def _last_line(self) -> str:
        if self.log is None:
            return ""
        try:
            self.log.seek(0)
            lines = [ln.strip() for ln in self.log.read().decode(errors="replace").splitlines() if ln.strip()]
        except (OSError, ValueError):
            return ""
        return lines[-1] if lines else ""

    def start(self) -> "S3Server":
        """Start the server and wait until it answers (at most ``ready_timeout_s``)."""
        if self.running:
            return self
        if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
            raise S3ServerError("local S3 server: moto's server mode is not installed (pip install 'moto[server]')")
        if self.port == 0:
            self.port = free_port(self.host)
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((self.host, self.port))
                except OSError as e:
                    raise S3ServerError(f"local S3 server: cannot listen on {self.host}:{self.port} ({e.strerror})") from None
        self.log = tempfile.TemporaryFile()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        atexit.register(self.stop)
        deadline = t0 + self.ready_timeout_s
        while True:
            code = self.proc.poll()
            if code is not None:
                last = self._last_line()
                self.stop()
                raise S3ServerError(f"local S3 server on {self.host}:{self.port} exited with code {code} before it "
                                    f"answered" + (f": {last}" if last else ""))
            try:
                with urllib.request.urlopen(self.endpoint_url + "/", timeout=1.0):
                    break
            except urllib.error.HTTPError:
                break  # any HTTP answer means it listens
            except (urllib.error.URLError, OSError):
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise S3ServerError(f"local S3 server on {self.host}:{self.port} did not answer within "
                                    f"{self.ready_timeout_s:g} s")
            time.sleep(0.05)
        self.start_s = time.perf_counter() - t0
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); harmless when it is not running."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, self.stop_timeout_s)
        try:
            atexit.unregister(self.stop)
        except Exception:  # noqa: BLE001 - at interpreter exit
            pass
        if self.log is not None:
            self.log.close()
            self.log = None

    def client(self, service: str = "s3"):
        """A boto3 client for this server (the test credentials; nothing read from ~/.aws)."""
        import boto3

        return boto3.session.Session(**TEST_CREDENTIALS).client(service, endpoint_url=self.endpoint_url)

    def __enter__(self) -> "S3Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
