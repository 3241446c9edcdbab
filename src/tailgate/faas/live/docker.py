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
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from tailgate.core.errors import TailgateError

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


async def daemon_answers() -> tuple[bool, str]:
    """(True, "") when a docker daemon answers ``docker version``; else (False, docker's message)."""
    try:
        await docker("version", "--format", "{{.Server.Version}}", timeout_s=15)
    except DockerError as e:
        return False, str(e).removeprefix("docker version: ")
    return True, ""


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
