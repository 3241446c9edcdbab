"""The docker sandbox's helpers: the daemon check, the image, the bind mounts, the container names.

Manual
------
``tailgate faas serve --sandbox docker`` runs one container per sandbox
(:class:`tailgate.faas.live.sandbox.DockerBackend`). Nothing is pulled or downloaded:

- the image (default :data:`IMAGE`) holds only mount points: made when missing by
  ``docker import`` of a tar built here (:func:`image_tar`: ``/proc``, ``/dev``, ``/sys``,
  ``/tmp``, ``/etc``, and ``/bin``, ``/lib``, ``/lib64``, ``/sbin`` as the host has them: links
  into ``/usr`` on a merged-usr system, folders otherwise), so it works with a daemon that
  reaches no registry; :func:`ensure_image` says whether it made it and how long that took;
- the container sees the host's files it needs read-only, at the same paths
  (:func:`bind_paths`): ``/usr`` (the system's interpreter and its libraries), the interpreter's
  prefix (``sys.base_prefix``), the virtual environment (``sys.prefix``), the source folder, the
  manifest's handler folders, and the few ``/etc`` files Python and TLS read
  (:data:`ETC_FILES`);
- every container is named ``tailgate-faas-<gateway pid>-<sandbox id>`` (:func:`container_name`),
  so a gateway removes its own at stop and the leftovers of a gateway that died (``kill -9``) are
  removed by the next one at start (:func:`reap_stale`), as the cgroup folders are.

Every docker call here goes through :func:`docker`; a failure comes back as a
:class:`DockerError` of one line that holds docker's own message.

A daemon on demand
------------------
::

    with daemon(say=print) as env:     # {} or {"DOCKER_HOST": "unix:///tmp/tg-dockerd-XXXX/docker.sock"}
        prof = asyncio.run(measure(manifest, cpu_sandbox="docker"))

:func:`daemon` uses the daemon that answers ``docker version`` (an existing ``DOCKER_HOST`` is
honoured) and yields ``{}``. When none answers and ``start`` is true, as root, with ``dockerd``
installed, it starts a private one: ``dockerd --bridge=none --iptables=false --ip6tables=false``
(:data:`DOCKERD_FLAGS`: the host's network and firewall untouched), its socket, ``--data-root``,
``--exec-root``, pid file and log (``dockerd.log``) in a new folder ``/tmp/tg-dockerd-*``, in a
session of its own; it waits up to :data:`DOCKERD_START_TIMEOUT_S` for it to answer, sets
``DOCKER_HOST`` in ``os.environ`` for the block (every docker call here and every sandbox's
``docker run`` inherit it) and yields ``{"DOCKER_HOST": ...}``. At the block's end it restores
``DOCKER_HOST``, stops the daemon (SIGTERM, then SIGKILL of its process group after
:data:`DOCKERD_STOP_GRACE_S`), unmounts what it left mounted under its folder and removes the
folder. ``say`` (a callable taking one line) hears when it starts and stops one. Each failure is a
one-line :class:`DockerError`: no client (``apt-get install docker.io``), no daemon answers and
``start`` is false, or not root, or no ``dockerd``; the daemon exited or did not answer in time
(with the last line of its log). :func:`daemon_answers` says whether a daemon answers under an
environment; :func:`daemon_processes` finds a daemon's processes by name (``faas profile`` counts
their CPU in a docker sandbox's cold start).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import psutil

from tailgate.core.errors import TailgateError
from tailgate.core.procs import stop_group

#: The default image of the docker sandbox (mount points only; made on first use).
IMAGE = "tailgate-faas"
#: Every sandbox container's name starts with this, then ``<gateway pid>-<sandbox id>``.
CONTAINER_PREFIX = "tailgate-faas-"
#: The folders of the image: mount points docker fills (proc, dev, sys) or binds over.
IMAGE_DIRS = ("proc", "dev", "sys", "tmp", "etc", "usr", "root", "var", "run")
#: Top-level entries that are links into /usr on a merged-usr system (a folder to bind otherwise).
USR_LINKS = ("bin", "lib", "lib64", "sbin")
#: The /etc entries a Python process and its TLS read (bound read-only when the host has them).
ETC_FILES = ("/etc/ssl", "/etc/ca-certificates", "/etc/ca-certificates.conf", "/etc/passwd", "/etc/group",
             "/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
             "/etc/mime.types", "/etc/protocols", "/etc/services")
#: How long one docker client call (not ``docker run``) may take.
DOCKER_CALL_TIMEOUT_S = 60.0
#: How long :func:`daemon_answers` waits for ``docker version``.
DAEMON_ANSWER_TIMEOUT_S = 10.0
#: How long :func:`daemon` waits for the dockerd it started to answer.
DOCKERD_START_TIMEOUT_S = 30.0
#: How long :func:`daemon` waits after SIGTERM before it kills the dockerd's process group.
DOCKERD_STOP_GRACE_S = 20.0
#: The flags of the dockerd :func:`daemon` starts: no bridge, no firewall rules (the host's network untouched).
DOCKERD_FLAGS = ("--bridge=none", "--iptables=false", "--ip6tables=false")
#: The names of a docker daemon's processes (plus every ``containerd-shim*``): CPU the machine spends on a start.
DAEMON_PROCESS_NAMES = ("dockerd", "containerd", "runc")


class DockerError(TailgateError):
    """A docker call that failed; the message is one line with docker's own words."""


def one_line(text: str) -> str:
    """``text`` folded onto one line (docker's messages span several)."""
    return " ".join(text.split())


async def docker(*args: str, stdin: bytes | None = None, timeout_s: float = DOCKER_CALL_TIMEOUT_S) -> str:
    """Run ``docker ARGS``; its stdout, or :class:`DockerError` with its stderr on one line."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "docker", *args, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise DockerError(f"docker {args[0]}: cannot run the docker client ({e.strerror})") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise DockerError(f"docker {args[0]}: no answer within {timeout_s:g} s") from None
    if proc.returncode != 0:
        raise DockerError(f"docker {args[0]}: {one_line(err.decode(errors='replace')) or f'exit {proc.returncode}'}")
    return out.decode(errors="replace")


async def daemon_probe() -> tuple[bool, str]:
    """(True, "") when a docker daemon answers ``docker version``; else (False, docker's message)."""
    try:
        await docker("version", "--format", "{{.Server.Version}}", timeout_s=15)
    except DockerError as e:
        return False, str(e).removeprefix("docker version: ")
    return True, ""


def _version(env: dict[str, str] | None) -> subprocess.CompletedProcess | None:
    """``docker version`` of the server under ``env`` (the whole environment; None: this process's);
    None when the client cannot run or gives no answer within :data:`DAEMON_ANSWER_TIMEOUT_S`."""
    try:
        return subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              text=True, timeout=DAEMON_ANSWER_TIMEOUT_S, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def daemon_answers(env: dict[str, str] | None = None) -> bool:
    """Whether a docker daemon answers ``docker version`` under the environment ``env`` (the whole
    environment; None: this process's, so an existing ``DOCKER_HOST`` is honoured)."""
    r = _version(env)
    return r is not None and r.returncode == 0


def daemon_processes() -> list[psutil.Process]:
    """The processes of the docker daemons running here, found by name (:data:`DAEMON_PROCESS_NAMES`:
    ``dockerd``, ``containerd``, every ``containerd-shim*``, ``runc``), of any daemon."""
    out = []
    for p in psutil.process_iter(["name"]):
        name = p.info["name"] or ""
        if name in DAEMON_PROCESS_NAMES or name.startswith("containerd-shim"):
            out.append(p)
    return out


def _log_tail(path: str) -> str:
    try:
        lines = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return one_line(lines[-1]) if lines else "(empty log)"


def _stop_dockerd(proc: subprocess.Popen, folder: str) -> None:
    """SIGTERM ``proc``, SIGKILL its process group after :data:`DOCKERD_STOP_GRACE_S`; unmount what
    it left mounted under ``folder`` (deepest first) and remove ``folder``."""
    stop_group(proc, DOCKERD_STOP_GRACE_S, term_group=False)  # dockerd stops its containerd itself
    try:
        with open("/proc/self/mounts") as f:  # what dockerd leaves mounted (its netns file, overlays)
            mounts = [line.split()[1] for line in f if line.split()[1].startswith(folder + "/")]
    except OSError:
        mounts = []
    for m in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True, check=False)
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def daemon(start: bool = True, say=None):
    """A docker daemon for the ``with`` block (module manual, "A daemon on demand"); yields the
    environment additions it needs: ``{}`` when the daemon that answers is used, ``{"DOCKER_HOST":
    "unix://..."}`` for one started here (also set in ``os.environ`` for the block, then restored).
    :class:`DockerError` of one line when no daemon can be had."""
    say = say or (lambda text: None)
    if shutil.which("docker") is None:
        raise DockerError("docker: no docker client (apt-get install docker.io)")
    r = _version(None)
    if r is not None and r.returncode == 0:
        yield {}
        return
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    why = one_line(r.stderr) if r is not None and r.stderr.strip() else "no answer"
    if not start:
        raise DockerError(f"docker: no docker daemon answers at {where} ({why}) and starting one was not asked")
    if os.geteuid() != 0:
        raise DockerError(f"docker: no docker daemon answers at {where} ({why}), and starting one needs root")
    if shutil.which("dockerd") is None:
        raise DockerError(f"docker: no docker daemon answers at {where} and dockerd is not installed "
                          f"(apt-get install docker.io)")
    folder = tempfile.mkdtemp(prefix="tg-dockerd-", dir="/tmp")  # short: a socket path has a length limit
    host = f"unix://{folder}/docker.sock"
    log_path = os.path.join(folder, "dockerd.log")
    try:
        with open(log_path, "wb") as log:  # dockerd holds its own copy of the file
            proc = subprocess.Popen(["dockerd", *DOCKERD_FLAGS, "--data-root", f"{folder}/data",
                                     "--exec-root", f"{folder}/exec", "--pidfile", f"{folder}/dockerd.pid",
                                     "-H", host], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
    except OSError as e:
        shutil.rmtree(folder, ignore_errors=True)
        raise DockerError(f"docker: cannot run dockerd ({e.strerror})") from None
    env = {**os.environ, "DOCKER_HOST": host}
    old = os.environ.get("DOCKER_HOST")
    try:
        say(f"docker: no daemon answers at {where}; starting dockerd at {host} (log {log_path})")
        deadline = time.monotonic() + DOCKERD_START_TIMEOUT_S
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            if daemon_answers(env):
                up = True
                break
            time.sleep(0.2)
        if not up:
            what = (f"exited with status {proc.returncode}" if proc.poll() is not None
                    else f"did not answer within {DOCKERD_START_TIMEOUT_S:g} s")
            raise DockerError(f"docker: dockerd {what}: {_log_tail(log_path)}")
        os.environ["DOCKER_HOST"] = host
        yield {"DOCKER_HOST": host}
    finally:
        if old is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = old
        say(f"docker: stopping the dockerd at {host}")
        _stop_dockerd(proc, folder)


def image_tar(root: str = "/") -> bytes:
    """The image's file system as a tar: the :data:`IMAGE_DIRS` folders, and each of
    :data:`USR_LINKS` as ``root`` has it (the same link, or a folder to bind over)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in IMAGE_DIRS:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        for name in USR_LINKS:
            host = os.path.join(root, name)
            info = tarfile.TarInfo(name)
            if os.path.islink(host):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(host)
            else:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    return buf.getvalue()


async def ensure_image(image: str) -> float | None:
    """Make ``image`` by ``docker import`` of :func:`image_tar` when the daemon lacks it; the time
    that took (s), or None when it was there. :class:`DockerError` when the import fails."""
    try:
        await docker("image", "inspect", "--format", "{{.Id}}", image)
        return None
    except DockerError:
        pass
    t0 = time.perf_counter()
    try:
        await docker("import", "-", image, stdin=image_tar())
    except DockerError as e:
        raise DockerError(f"cannot create the image {image} ({str(e).removeprefix('docker import: ')})") from None
    return time.perf_counter() - t0


def bind_paths(source_root: str, handler_paths: list[str]) -> list[str]:
    """The host paths a sandbox container sees read-only at the same place: the interpreter, its
    virtual environment, ``source_root``, ``handler_paths`` and :data:`ETC_FILES` (those present;
    each once; never ``/``)."""
    want = ["/usr", *(f"/{n}" for n in USR_LINKS if not os.path.islink(f"/{n}")), sys.base_prefix, sys.prefix,
            str(Path(sys.executable).resolve().parent), source_root, *handler_paths, *ETC_FILES]
    out = []
    for p in want:
        p = os.path.abspath(p)
        if p != "/" and os.path.exists(p) and p not in out:
            out.append(p)
    return out


def container_name(gateway_pid: int, sid: int) -> str:
    """The name of sandbox ``sid``'s container of the gateway with pid ``gateway_pid``."""
    return f"{CONTAINER_PREFIX}{gateway_pid}-{sid}"


async def containers(gateway_pid: int | None = None) -> list[str]:
    """The names of the sandbox containers (running or not) of gateway ``gateway_pid``, or of all gateways."""
    prefix = CONTAINER_PREFIX + (f"{gateway_pid}-" if gateway_pid is not None else "")
    out = await docker("ps", "-a", "--filter", f"name=^{prefix}", "--format", "{{.Names}}")
    return [n for n in out.split() if n.startswith(prefix)]


async def remove(names: list[str]) -> None:
    """``docker rm -f`` the containers ``names`` (those already gone or going, ``--rm``, are no error)."""
    if not names:
        return
    try:
        await docker("rm", "-f", *names)
    except DockerError as e:
        if not any(gone in str(e) for gone in ("No such container", "already in progress")):
            raise


async def reap_stale() -> list[str]:
    """Remove the sandbox containers of gateways no longer running (named for a pid with no
    process); the names removed."""
    stale = []
    for n in await containers():
        m = re.fullmatch(re.escape(CONTAINER_PREFIX) + r"(\d+)-\d+", n)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            stale.append(n)
    await remove(stale)
    return stale
