"""Sandboxes, gateway side: one interface, three kinds (process, bwrap, docker), and their cgroups.

Manual
------
::

    backend = make_backend("process", manifest)      # or "bwrap", "docker"
    await backend.start()                            # says on stderr what isolation it has
    sb = await backend.create(spec, sid)             # cold start: create -> first reply, sb.cold_start_s
    futs = sb.run(items, inside="parallel")          # one future per item: the sandbox's answer dict
    await backend.destroy(sb); await backend.stop()

Kinds:

- ``process`` (default): a zygote process (:mod:`tailgate.faas.live.zygote`, ``template``) that
  imported every handler module; a sandbox is a child forked from it on request, in new
  net/ipc/uts/mount namespaces when the gateway runs as root.
- ``bwrap``: one ``bwrap --unshare-all`` per sandbox running the zygote on stdin/stdout, with
  the system, the virtual environment, the source and the handlers' folders bound read-only.
- ``docker``: one ``docker run -i`` per sandbox (:mod:`tailgate.faas.live.docker`): an image of
  mount points only (``tailgate-faas``, made by ``docker import`` when missing), the host's
  interpreter, venv, source and handler folders bound read-only at the same paths, docker's
  ``--memory``/``--cpus`` as limits, containers named ``tailgate-faas-<gateway pid>-<sid>``
  (removed at destroy and stop, and by the next gateway when one dies); only when a daemon answers.

Each sandbox goes into a cgroup of its own (cpu quota = the function's ``cpu_share`` cores,
memory limit = its ``memory_mb``) when the machine lets the gateway make one: cgroup v1
(``/sys/fs/cgroup/cpu``, ``/sys/fs/cgroup/memory``) or v2 (``cpu.max``, ``memory.max``). When
not, :meth:`Backend.start` says so on stderr and sandboxes run without limits. The cpu folder has a
child, ``inv`` (:data:`INVOCATIONS_CGROUP`), that a process sandbox's forked invocations move into;
on v2, where a folder with children holds no processes, the sandbox's process goes to a second
child, ``ctl``, so there its own threads compete with its invocations as one entity. On v1 the
process sandboxes' control threads go further (:class:`tailgate.faas.live.zygote.ControlClass`):
into ``<gateway>/ctl``, a folder of weight :data:`CONTROL_CPU_SHARES` beside the sandboxes', so a
control thread that wakes runs before the invocations of every sandbox.

``make_backend(kind, manifest, env=..., reuse=..., keep_net=...)``: ``env`` is added to every
sandbox's environment (``tailgate faas serve --s3 local`` puts the local S3 server's endpoint and
test credentials there); ``reuse`` (the arguments of :func:`tailgate.faas.io.reuse.enable`, or
None) turns the boto3 client-reuse hook on inside every ``io`` sandbox; ``keep_net`` leaves the
sandboxes in the host's network namespace (``bwrap --share-net``, ``docker --network host``) so
they reach a server on 127.0.0.1.

``backend.enable_sfs(slice_s)`` (strategy ``sfs``, before the first sandbox) gives the process
sandboxes SFS's scheduling (:mod:`tailgate.faas.live.zygote`, "SFS"): on cgroup v1 with RT group
scheduling it makes ``<gateway>/rt`` with RT runtime :data:`SFS_RT_SHARE` of each CPU (the
gateway's folder gets the same, so all sandboxes' SCHED_FIFO invocations together never take
more and the gateway and the load client keep running), probes SCHED_FIFO there, else nice -10;
it returns the means and says it on stderr. Other kinds get ``none``. The control plane then goes
above the invocations (:meth:`Backend.enable_control`, one more line on stderr): with SCHED_FIFO
invocations it gives ``<gateway>/ctl`` RT runtime :data:`CONTROL_RT_SHARE` of each CPU
(the gateway's folder then holds both budgets) and puts the calling thread (the gateway's event
loop) and the template's main thread there at SCHED_FIFO RT priority
:data:`~tailgate.faas.live.zygote.CONTROL_RT_PRIORITY`; every sandbox's control threads follow as
they start. When that budget cannot be had it is nice
:data:`~tailgate.faas.live.zygote.CONTROL_NICE` (also when the invocations get nice), else
nothing. :meth:`Backend.stop` puts the gateway's thread back (SCHED_OTHER, nice 0, its cgroup)
before removing the folders. The kernel lets the cgroups
hold at most ``cpu.rt_runtime_us`` of the cpu root (95 % here) together, so while one sfs gateway
holds its budget a second one on the same machine gets ``nice`` (and says why).

A sandbox whose channel closes while invocations are in it (killed, crashed, OOM-killed) fails
each of them with :class:`SandboxDied` and a reason; none is lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tailgate.core.errors import TailgateError
from tailgate.faas.live.docker import (
    IMAGE,
    DockerError,
    bind_paths,
    container_name,
    containers,
    daemon_probe,
    ensure_image,
    reap_stale,
    remove,
)
from tailgate.faas.live.registry import FunctionSpec, Manifest
from tailgate.faas.live.zygote import (
    CONTROL_NICE,
    CONTROL_RT_PRIORITY,
    HEADER,
    MAX_FRAME_BYTES,
    SFS_NICE_BOOST,
    SFS_RT_PRIORITY,
    cpu_cgroup_dir,
    encode,
    enter_control,
    leave_control,
    probe_sfs_means,
)

SANDBOXES = ("process", "bwrap", "docker")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
#: The share of every CPU's time that all sandboxes' SCHED_FIFO invocations may take together (sfs).
SFS_RT_SHARE = 0.5
#: The share of every CPU's time the control plane (gateway, template, sandboxes' control threads) may
#: take in SCHED_FIFO under sfs, beside the invocations' :data:`SFS_RT_SHARE`.
CONTROL_RT_SHARE = 0.2
#: The cgroup v1 cpu weight (``cpu.shares``) of ``<gateway>/ctl``, the folder of every sandbox's control
#: threads, beside each sandbox's folder at 1024: a control thread that wakes is run before the invocations.
CONTROL_CPU_SHARES = 8192
#: The child cgroup of a sandbox's cpu folder that its forked invocations move into.
INVOCATIONS_CGROUP = "inv"
#: cgroup v2 only (no processes in a folder with children there): the child folder the sandbox's own
#: process goes into, beside :data:`INVOCATIONS_CGROUP`.
CONTROL_CGROUP = "ctl"


class SandboxError(TailgateError):
    """A sandbox kind that cannot run here, or a sandbox that failed to start."""


class SandboxDied(Exception):
    """The sandbox running an invocation went away; the message says how."""


class Cgroups:
    """One cgroup per sandbox (v1 or v2), under a folder named for this gateway."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version, self.reason = self._detect()
        self.made: list[Path] = []
        if self.version is not None:
            self.reap_stale()

    def reap_stale(self) -> int:
        """Remove the folders of gateways that died without cleaning up (``kill -9``): named
        ``<prefix>-PID`` for a PID no longer running, and empty of processes. A dead gateway's
        folder could otherwise hold cgroup RT time that a live one needs. Returns how many went."""
        prefix, _, _ = self.name.rpartition("-")
        roots = [CGROUP_ROOT / "cpu", CGROUP_ROOT / "memory"] if self.version == 1 else [CGROUP_ROOT]
        gone = 0
        for root in roots:
            for top in root.glob(f"{prefix}-*"):
                pid = top.name[len(prefix) + 1:]
                if not pid.isdigit() or Path(f"/proc/{pid}").exists():
                    continue
                for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]:
                    try:
                        d.rmdir()
                    except OSError:
                        break  # a process still in it: leave this gateway's folders alone
                else:
                    gone += 1
        return gone

    def _detect(self) -> tuple[int | None, str]:
        if os.geteuid() != 0:
            return None, "not root"
        v1 = [CGROUP_ROOT / "cpu", CGROUP_ROOT / "memory"]
        if all((d / "cgroup.procs").exists() and os.access(d, os.W_OK) for d in v1):
            return 1, "cgroup v1 (cpu, memory)"
        ctl = CGROUP_ROOT / "cgroup.controllers"
        if ctl.exists() and {"cpu", "memory"} <= set(ctl.read_text().split()) and os.access(CGROUP_ROOT, os.W_OK):
            return 2, "cgroup v2 (cpu.max, memory.max)"
        return None, "no writable cgroup v1 cpu+memory controllers nor a v2 hierarchy with them"

    def create(self, sid: int, spec: FunctionSpec) -> list[Path]:
        """Make ``sid``'s cgroup(s) with ``spec``'s limits; the folders (empty when unavailable)."""
        if self.version is None:
            return []
        quota = max(1000, int(spec.cpu_share * CPU_PERIOD_US))
        mem = spec.memory_mb << 20
        try:
            if self.version == 1:
                cpu = CGROUP_ROOT / "cpu" / self.name / f"sb{sid}"
                memory = CGROUP_ROOT / "memory" / self.name / f"sb{sid}"
                for d in (cpu, memory):
                    d.mkdir(parents=True, exist_ok=True)
                    self.made.append(d)
                (cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (cpu / "cpu.cfs_quota_us").write_text(str(quota))
                (memory / "memory.limit_in_bytes").write_text(str(mem))
                self._children(cpu, [INVOCATIONS_CGROUP])
                return [cpu, memory]
            top = CGROUP_ROOT / self.name
            if not top.exists():
                top.mkdir()
                self.made.append(top)
                (CGROUP_ROOT / "cgroup.subtree_control").write_text("+cpu +memory")
                (top / "cgroup.subtree_control").write_text("+cpu +memory")
            d = top / f"sb{sid}"
            d.mkdir(exist_ok=True)
            self.made.append(d)
            (d / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
            (d / "memory.max").write_text(str(mem))
            self._children(d, [CONTROL_CGROUP, INVOCATIONS_CGROUP], "+cpu")
            return [d]
        except OSError as e:
            self.version, self.reason = None, f"cgroup setup failed ({e}); sandboxes run without limits"
            print(f"faas: {self.reason}", file=sys.stderr)
            return []

    def _children(self, d: Path, names: list[str], subtree: str = "") -> None:
        """Make the child folders ``names`` of ``d`` (after enabling ``subtree`` controllers in ``d``,
        v2); none when the kernel refuses one (the sandbox then stays in ``d`` as a whole)."""
        made = []
        try:
            if subtree:
                (d / "cgroup.subtree_control").write_text(subtree)
            for n in names:
                (d / n).mkdir(exist_ok=True)
                made.append(d / n)
        except OSError:
            for c in made:
                try:
                    c.rmdir()
                except OSError:
                    pass
            return
        self.made.extend(made)

    def members(self, dirs: list[Path]) -> list[Path]:
        """The folders a sandbox's own process goes into, for its folders ``dirs`` (of :meth:`create`)."""
        if self.version == 2:
            return [d / CONTROL_CGROUP if (d / CONTROL_CGROUP) in self.made else d for d in dirs]
        return dirs

    def invocations_dir(self, dirs: list[Path]) -> Path | None:
        """The folder a sandbox's forked invocations go into (a child of its cpu folder), or None."""
        inv = dirs[0] / INVOCATIONS_CGROUP if dirs else None
        return inv if inv is not None and inv in self.made else None

    def control_folder(self) -> Path | None:
        """The cgroup v1 cpu folder ``<gateway>/ctl`` for the sandboxes' control threads, weight
        :data:`CONTROL_CPU_SHARES`; None without cgroup v1 (on v2 a process's threads share a folder)."""
        if self.version != 1:
            return None
        ctl = CGROUP_ROOT / "cpu" / self.name / "ctl"
        try:
            ctl.mkdir(parents=True, exist_ok=True)
            if ctl not in self.made:
                self.made.append(ctl)
            (ctl / "cpu.shares").write_text(str(CONTROL_CPU_SHARES))
        except OSError:
            return None
        return ctl

    def enable_control(self, share: float) -> tuple[Path | None, str]:
        """Give ``<gateway>/ctl`` (:meth:`control_folder`) ``share`` of every CPU's time for the control
        plane's SCHED_FIFO (sfs), beside ``rt`` (:meth:`enable_rt`, first): the gateway's folder holds
        both budgets. (folder, "") or (None, why not); the gateway's budget is left as it was when
        refused."""
        top = CGROUP_ROOT / "cpu" / self.name
        ctl = top / "ctl"
        if self.version != 1 or not (top / "cpu.rt_runtime_us").exists():
            return None, "the control plane's RT runtime needs the invocations' (cgroup v1 RT group scheduling)"
        try:
            before = int((top / "cpu.rt_runtime_us").read_text())
            (top / "cpu.rt_runtime_us").write_text(str(before + int(share * CPU_PERIOD_US)))
        except (OSError, ValueError) as e:
            why = getattr(e, "strerror", None) or e
            return None, (f"cannot give {top} RT runtime for the control plane ({why}: other cgroups may hold "
                          f"the RT time)")
        try:
            ctl.mkdir(exist_ok=True)
            if ctl not in self.made:
                self.made.append(ctl)
            (ctl / "cpu.rt_period_us").write_text(str(CPU_PERIOD_US))
            (ctl / "cpu.rt_runtime_us").write_text(str(int(share * CPU_PERIOD_US)))
        except OSError as e:
            try:
                (top / "cpu.rt_runtime_us").write_text(str(before))
            except OSError:
                pass
            return None, f"cannot give {ctl} RT runtime ({e.strerror})"
        return ctl, ""

    def enable_rt(self, share: float) -> tuple[Path | None, str]:
        """A cgroup v1 cpu folder ``<gateway>/rt`` holding ``share`` of every CPU's time for SCHED_FIFO
        (of each :data:`CPU_PERIOD_US` period), shared by all sandboxes' invocations in their first
        slice; the gateway's folder gets the same, so together they can never take more. (folder,
        "") or (None, why not)."""
        if self.version != 1:
            return None, ("RT group scheduling needs the cgroup v1 cpu controller" if self.version else self.reason)
        top = CGROUP_ROOT / "cpu" / self.name
        rt = top / "rt"
        if not (CGROUP_ROOT / "cpu" / "cpu.rt_runtime_us").exists():
            return None, "the kernel has no RT group scheduling (no cpu.rt_runtime_us)"
        try:
            top.mkdir(exist_ok=True)
            rt.mkdir(exist_ok=True)
            self.made.append(rt)
            for d in (top, rt):
                (d / "cpu.rt_period_us").write_text(str(CPU_PERIOD_US))
                (d / "cpu.rt_runtime_us").write_text(str(int(share * CPU_PERIOD_US)))
        except OSError as e:
            for d in (rt, top):  # give back what was given, so nothing holds RT time for nothing
                try:
                    (d / "cpu.rt_runtime_us").write_text("0")
                except OSError:
                    pass
            return None, f"cannot give {top} RT runtime ({e.strerror}: other cgroups may hold the RT time)"
        return rt, ""

    @staticmethod
    def add(dirs: list[Path], pids: list[int]) -> None:
        for d in dirs:
            for pid in pids:
                try:
                    (d / "cgroup.procs").write_text(str(pid))
                except OSError:
                    pass  # the process already exited

    def remove(self, dirs: list[Path]) -> None:
        """Remove a sandbox's folders ``dirs`` (of :meth:`create`) and their children."""
        for top in dirs:
            for d in [c for c in self.made if c.parent == top] + [top]:
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    break  # still has processes: retried by cleanup()
                if d in self.made:
                    self.made.remove(d)

    def cleanup(self) -> None:
        """Remove every folder made (deepest first), giving back their RT runtime first: the kernel
        counts a removed folder's until it has released it, which would refuse the next gateway's."""
        if self.version == 1:
            top = CGROUP_ROOT / "cpu" / self.name
            for d in sorted((p for p in self.made if top in p.parents), key=lambda p: -len(p.parts)) + [top]:
                try:
                    if int((d / "cpu.rt_runtime_us").read_text()):
                        (d / "cpu.rt_runtime_us").write_text("0")
                except (OSError, ValueError):
                    pass
        for d in sorted(self.made, key=lambda p: -len(p.parts)):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
        for base in ([CGROUP_ROOT / "cpu" / self.name, CGROUP_ROOT / "memory" / self.name] if self.version == 1 else []):
            try:
                base.rmdir()
            except OSError:
                pass
        self.made.clear()


class Sandbox:
    """One live sandbox of one function; :meth:`run` sends items, the reader completes their futures."""

    def __init__(self, sid: int, spec: FunctionSpec, reader: asyncio.StreamReader, writer, pid: int,
                 cold_start_s: float, unshared: bool) -> None:
        self.sid = sid
        self.spec = spec
        self.reader = reader
        self.writer = writer
        self.pid = pid
        self.cold_start_s = cold_start_s
        self.unshared = unshared
        self.pending: dict[int, asyncio.Future] = {}
        self.dead: str | None = None
        self.cgroups: list[Path] = []
        self.proc: asyncio.subprocess.Process | None = None  # bwrap/docker: our child
        self.container: str | None = None  # docker: the container's name
        self.read_task = asyncio.get_running_loop().create_task(self._read_loop())

    def run(self, items: list[tuple[int, dict]], inside: str) -> list[asyncio.Future]:
        """Send ``(id, event)`` items; one future per item, resolved with the sandbox's answer."""
        loop = asyncio.get_running_loop()
        futs = []
        for iid, _ in items:
            fut = loop.create_future()
            if self.dead:
                fut.set_exception(SandboxDied(self.dead))
            else:
                self.pending[iid] = fut
            futs.append(fut)
        if not self.dead:
            msg = {"op": "run", "inside": inside, "items": [{"id": i, "event": e} for i, e in items]}
            self.writer.write(encode(msg))
        return futs

    async def _read_loop(self) -> None:
        # whatever has arrived is read at once and every whole frame in it handled: one wake-up
        # for the many answers of a batch, not two awaits per answer
        buf = bytearray()
        try:
            while True:
                data = await self.reader.read(1 << 20)
                if not data:
                    raise asyncio.IncompleteReadError(bytes(buf), None)
                buf += data
                pos, end = 0, len(buf)
                while end - pos >= HEADER.size:
                    (n,) = HEADER.unpack_from(buf, pos)
                    if n > MAX_FRAME_BYTES:
                        raise ValueError(f"frame of {n} bytes")
                    if end - pos - HEADER.size < n:
                        break
                    msg = json.loads(buf[pos + HEADER.size:pos + HEADER.size + n])
                    pos += HEADER.size + n
                    if not isinstance(msg, dict):
                        raise ValueError(f"a frame holding {type(msg).__name__}, not an object")
                    fut = self.pending.pop(msg.get("id"), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                del buf[:pos]
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as e:
            why = "closed its channel (killed or crashed)" if isinstance(e, (asyncio.IncompleteReadError,
                                                                            ConnectionError)) else f"sent a bad frame ({e})"
            self.fail_all(f"sandbox {self.sid} (pid {self.pid}) of {self.spec.name} {why}")
        except asyncio.CancelledError:
            self.fail_all(self.dead or f"sandbox {self.sid} of {self.spec.name} was torn down")
            raise

    def fail_all(self, reason: str) -> None:
        self.dead = self.dead or reason
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(SandboxDied(self.dead))
                fut.exception()  # whoever timed out on it already answered: no "never retrieved" noise
        self.pending.clear()

    @property
    def busy(self) -> int:
        return len(self.pending)


async def _read_ready(reader: asyncio.StreamReader, what: str, timeout_s: float) -> dict:
    try:
        head = await asyncio.wait_for(reader.readexactly(HEADER.size), timeout_s)
        (n,) = HEADER.unpack(head)
        msg = json.loads(await asyncio.wait_for(reader.readexactly(n), timeout_s))
    except TimeoutError:
        raise SandboxError(f"{what}: no ready reply within {timeout_s:g} s") from None
    except (asyncio.IncompleteReadError, ConnectionError):
        raise SandboxError(f"{what}: exited before its first reply") from None
    if msg.get("op") != "ready":
        raise SandboxError(f"{what}: first reply was {msg!r}, not ready")
    return msg


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


class Backend:
    """Creates and destroys sandboxes of one kind."""

    kind = "?"

    def __init__(self, manifest: Manifest, create_timeout_s: float = 30.0, env: dict[str, str] | None = None,
                 reuse: dict | None = None, keep_net: bool = False) -> None:
        self.manifest = manifest
        self.create_timeout_s = create_timeout_s
        self.cgroups = Cgroups(f"tailgate-faas-{os.getpid()}")
        self.root = os.geteuid() == 0
        self.env = dict(env or {})      # extra environment of every sandbox (e.g. the local S3 endpoint)
        self.keep_net = keep_net        # sandboxes stay in the host's network namespace (to reach 127.0.0.1)
        self.sfs: dict | None = None    # SFS's scheduling inside every sandbox (enable_sfs), or None
        self.control: dict | None = None  # the sandboxes' control threads' class (ControlClass's config)
        self.controlled: list[tuple[int, str | None]] = []  # sfs: this process's control threads, their home
        self.spec_json = {"path": manifest.path, "reuse": reuse, "keep_net": keep_net,
                          "functions": {n: {"name": n, **f.to_json()} for n, f in manifest.functions.items()}}

    def isolation(self) -> str:
        """One line: what isolation and limits the sandboxes get."""
        cg = self.cgroups.reason if self.cgroups.version else f"no cgroup limits ({self.cgroups.reason})"
        return f"faas: sandbox {self.kind}: {self.namespaces()}; {cg}"

    def namespaces(self) -> str:
        return "?"

    def enable_sfs(self, slice_s: float) -> str:
        """Set up SFS's scheduling for every sandbox made from now on; the means in effect
        (``sched_fifo``, ``nice`` or ``none: why``), also said in one line on stderr."""
        if self.kind != "process":
            means = f"none: live SFS scheduling needs --sandbox process (not {self.kind})"
        else:
            rt, why_rt = self.cgroups.enable_rt(SFS_RT_SHARE)
            got, why_probe = probe_sfs_means(str(rt) if rt else None, str(CGROUP_ROOT / "cpu"))
            why = "; ".join(w for w in (why_rt, why_probe) if w)
            means = f"none: {why}" if got == "none" else got
            if got != "none":
                self.sfs = {"slice_s": slice_s, "means": got, "rt_dir": str(rt) if rt else None,
                            "cpu_root": str(CGROUP_ROOT / "cpu")}
            if got == "sched_fifo":
                print(f"faas: sfs: each invocation SCHED_FIFO (RT priority {SFS_RT_PRIORITY}) for its first "
                      f"{slice_s:g} s of CPU time, then SCHED_OTHER nice 0; all sandboxes together at most "
                      f"{SFS_RT_SHARE:.0%} of each CPU's time in SCHED_FIFO ({rt})", file=sys.stderr, flush=True)
            elif got == "nice":
                print(f"faas: sfs: each invocation nice {SFS_NICE_BOOST} for its first {slice_s:g} s of CPU time, "
                      f"then nice 0 (no SCHED_FIFO: {why})", file=sys.stderr, flush=True)
            if self.sfs is not None:
                self.enable_control(got)
                return means
        print(f"faas: sfs: invocations are not prioritised ({means})", file=sys.stderr, flush=True)
        return means

    def enable_control(self, invocations: str) -> str:
        """Put the control plane above the invocations' class ``invocations`` (sfs): this thread (the
        gateway's event loop) and the template's main thread now, every sandbox's control threads
        as they start (:class:`tailgate.faas.live.zygote.ControlClass`); says it in one line on
        stderr. The means it got."""
        rt, why = (self.cgroups.enable_control(CONTROL_RT_SHARE) if invocations == "sched_fifo"
                   else (None, "the invocations have no SCHED_FIFO"))
        ctl = rt or (Path(self.control["ctl_dir"]) if self.control else None)
        want = "sched_fifo" if rt is not None else "nice"
        tid = threading.get_native_id()
        home = cpu_cgroup_dir(str(CGROUP_ROOT / "cpu"), tid) if ctl is not None else None
        got = enter_control(want, str(ctl) if ctl else None, tid)
        if got != "none":
            self.controlled.append((tid, home))
            tpl = getattr(self, "template", None)
            if tpl is not None and tpl.returncode is None:
                enter_control(got, str(ctl) if ctl else None, tpl.pid)
        if got == "sched_fifo":
            text = (f"SCHED_FIFO (RT priority {CONTROL_RT_PRIORITY}), at most {CONTROL_RT_SHARE:.0%} of each CPU's "
                    f"time ({ctl})")
        elif got == "nice":
            text = f"nice {CONTROL_NICE}" + (f" (no SCHED_FIFO: {why})" if why else "")
        else:
            text = f"not prioritised (no SCHED_FIFO: {why}; nice {CONTROL_NICE} refused)"
        if invocations == "sched_fifo" and got != "sched_fifo":
            text += "; invocations in their first slice can delay it"
        print(f"faas: sfs: control plane (gateway, template, sandboxes' control threads) {text}",
              file=sys.stderr, flush=True)
        self.control = {"means": got, "ctl_dir": str(ctl) if ctl else None}
        return got

    def disable_control(self) -> None:
        """Undo :meth:`enable_control` for this process's threads (the template and sandboxes go with
        their processes)."""
        for tid, home in self.controlled:
            leave_control(tid, home)
        self.controlled.clear()

    async def start(self) -> None:
        print(self.isolation(), file=sys.stderr, flush=True)

    async def create(self, spec: FunctionSpec, sid: int) -> Sandbox:
        raise NotImplementedError

    async def destroy(self, sb: Sandbox) -> None:
        """Kill ``sb`` and what runs in it; fail what was pending."""
        sb.fail_all(sb.dead or f"sandbox {sb.sid} of {sb.spec.name} was torn down")
        pids = descendants(sb.proc.pid if sb.proc else sb.pid)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            sb.writer.close()
        except Exception:
            pass
        if sb.proc is not None:
            await sb.proc.wait()
        else:
            for _ in range(200):  # the zygote reaps it; wait until it is gone
                if not os.path.exists(f"/proc/{sb.pid}"):
                    break
                await asyncio.sleep(0.005)
        sb.read_task.cancel()
        self.cgroups.remove(sb.cgroups)

    async def stop(self) -> None:
        self.disable_control()
        self.cgroups.cleanup()


class ProcessBackend(Backend):
    kind = "process"

    def namespaces(self) -> str:
        if not self.root:
            return "forked from a zygote, no namespaces (not root)"
        return ("forked from a zygote, own ipc/uts/mount namespaces (host network: --s3 local)" if self.keep_net
                else "forked from a zygote, own net/ipc/uts/mount namespaces")

    async def start(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="tailgate-faas-")
        self.socket = os.path.join(self.tmp, "zygote.sock")
        spec = dict(self.spec_json, socket=self.socket)
        self.template = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tailgate.faas.live.zygote", "template", json.dumps(spec),
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env={**os.environ, **self.env})
        try:
            line = await asyncio.wait_for(self.template.stdout.readline(), self.create_timeout_s)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            await self.stop()
            raise SandboxError(line.decode().strip().removeprefix("error: ") or "the process zygote did not start")
        ctl = self.cgroups.control_folder()
        self.control = {"means": "cfs", "ctl_dir": str(ctl)} if ctl else None
        await super().start()

    async def create(self, spec: FunctionSpec, sid: int) -> Sandbox:
        t0 = time.perf_counter()
        dirs = self.cgroups.create(sid, spec)
        reader, writer = await asyncio.open_unix_connection(self.socket, limit=MAX_FRAME_BYTES)
        inv = self.cgroups.invocations_dir(dirs)
        writer.write(encode({"op": "start", "function": spec.name, "unshare": self.root, "sfs": self.sfs,
                             "control": self.control,
                             "invocations_cgroup": str(inv) if inv else None,
                             "sandbox_cgroup": str(dirs[0]) if self.cgroups.version == 1 else None}))
        msg = await _read_ready(reader, f"sandbox {sid} of {spec.name}", self.create_timeout_s)
        Cgroups.add(self.cgroups.members(dirs), [msg["pid"]])
        sb = Sandbox(sid, spec, reader, writer, msg["pid"], time.perf_counter() - t0, msg["unshared"])
        sb.cgroups = dirs
        return sb

    async def stop(self) -> None:
        tpl = getattr(self, "template", None)
        if tpl is not None and tpl.returncode is None:
            tpl.kill()
            await tpl.wait()
        if getattr(self, "tmp", None):
            shutil.rmtree(self.tmp, ignore_errors=True)
        await super().stop()


class StdioBackend(Backend):
    """A sandbox is one child process running the zygote on stdin/stdout under a wrapper command."""

    def command(self, spec: FunctionSpec, sid: int) -> list[str]:
        raise NotImplementedError

    async def create(self, spec: FunctionSpec, sid: int) -> Sandbox:
        t0 = time.perf_counter()
        dirs = self.cgroups.create(sid, spec)
        proc = await asyncio.create_subprocess_exec(*self.command(spec, sid), stdin=subprocess.PIPE,
                                                    stdout=subprocess.PIPE, limit=MAX_FRAME_BYTES)
        Cgroups.add(self.cgroups.members(dirs), [proc.pid])
        try:
            msg = await _read_ready(proc.stdout, f"{self.kind} sandbox {sid} of {spec.name}", self.create_timeout_s)
        except SandboxError:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            self.cgroups.remove(dirs)
            raise
        Cgroups.add(self.cgroups.members(dirs), descendants(proc.pid))
        sb = Sandbox(sid, spec, proc.stdout, proc.stdin, proc.pid, time.perf_counter() - t0, msg["unshared"])
        sb.proc = proc
        sb.cgroups = dirs
        return sb

    def zygote_argv(self, spec: FunctionSpec) -> list[str]:
        return [sys.executable, "-m", "tailgate.faas.live.zygote", "stdio",
                json.dumps(dict(self.spec_json, function=spec.name))]


def source_root() -> str:
    """The folder holding the ``tailgate`` package."""
    return str(Path(__file__).resolve().parents[3])


class BwrapBackend(StdioBackend):
    kind = "bwrap"

    def namespaces(self) -> str:
        return "bwrap --unshare-all, system/venv/source read-only"

    async def start(self) -> None:
        if shutil.which("bwrap") is None:
            raise SandboxError("--sandbox bwrap: bubblewrap is not installed (apt-get install bubblewrap)")
        await super().start()

    def command(self, spec: FunctionSpec, sid: int) -> list[str]:
        ro = ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", sys.prefix, sys.base_prefix, source_root(),
              *self.manifest.path]
        argv = ["bwrap", "--unshare-all", *(["--share-net"] if self.keep_net else []), "--die-with-parent",
                "--new-session", "--tmpfs", "/tmp"]
        for k, v in self.env.items():
            argv += ["--setenv", k, v]
        for p in dict.fromkeys(ro):  # after the /tmp tmpfs, so handler folders under /tmp show through
            argv += ["--ro-bind-try", p, p]
        argv += ["--proc", "/proc", "--dev", "/dev", "--setenv", "PYTHONPATH", source_root(),
                 "--hostname", f"sb{sid}", "--"]
        return argv + self.zygote_argv(spec)


class DockerBackend(StdioBackend):
    """One ``docker run --rm -i`` per sandbox (:mod:`tailgate.faas.live.docker`): the image is made
    when missing, the host's interpreter, venv, source and handler folders are bound read-only,
    limits are docker's ``--memory``/``--cpus``, and each container is named
    ``tailgate-faas-<gateway pid>-<sid>`` so it is removed at destroy and stop (and by the next
    gateway, when this one dies)."""

    kind = "docker"

    def __init__(self, manifest: Manifest, image: str = IMAGE, **kw) -> None:
        super().__init__(manifest, **kw)
        self.image = image
        # docker's own cgroups hold the limits (--memory, --cpus); ours would only hold the client
        self.cgroups.version, self.cgroups.reason = None, "docker's --memory/--cpus per container"
        self.gateway_pid = os.getpid()

    def namespaces(self) -> str:
        net = "host network (--s3 local)" if self.keep_net else "no network"
        return f"docker run (image {self.image}), {net}, host interpreter/venv/source read-only"

    def isolation(self) -> str:
        return f"faas: sandbox {self.kind}: {self.namespaces()}; limits: {self.cgroups.reason}"

    async def start(self) -> None:
        if shutil.which("docker") is None:
            raise SandboxError("--sandbox docker: the docker client is not installed (apt-get install docker.io)")
        up, why = await daemon_probe()
        if not up:
            raise SandboxError(f"--sandbox docker: no docker daemon answers ({why}); start one, e.g. "
                               f"`dockerd --bridge=none --iptables=false &`")
        try:
            made_s = await ensure_image(self.image)
            stale = await reap_stale()
        except DockerError as e:
            raise SandboxError(f"--sandbox docker: {e}") from None
        if made_s is not None:
            print(f"faas: docker: created image {self.image} (docker import of mount points only, "
                  f"{made_s * 1e3:.0f} ms)", file=sys.stderr, flush=True)
        if stale:
            print(f"faas: docker: removed {len(stale)} container(s) of gateways that died", file=sys.stderr, flush=True)
        self.binds = bind_paths(source_root(), list(self.manifest.path))
        await super().start()

    def command(self, spec: FunctionSpec, sid: int) -> list[str]:
        env = [x for k, v in self.env.items() for x in ("-e", f"{k}={v}")]
        binds = [x for p in self.binds for x in ("-v", f"{p}:{p}:ro")]
        return ["docker", "run", "--rm", "-i", "--name", container_name(self.gateway_pid, sid),
                "--log-driver", "none", "--network", "host" if self.keep_net else "none",
                "--hostname", f"sb{sid}", *binds, *env,
                f"--memory={spec.memory_mb}m", f"--cpus={spec.cpu_share:g}", "-e", f"PYTHONPATH={source_root()}",
                self.image, *self.zygote_argv(spec)]

    async def create(self, spec: FunctionSpec, sid: int) -> Sandbox:
        try:
            sb = await super().create(spec, sid)
        except SandboxError:
            await self._remove([container_name(self.gateway_pid, sid)])
            raise
        sb.container = container_name(self.gateway_pid, sid)
        return sb

    async def destroy(self, sb: Sandbox) -> None:
        """Remove ``sb``'s container (killing what runs in it), then its client process."""
        await self._remove([sb.container] if sb.container else [])
        await super().destroy(sb)

    async def stop(self) -> None:
        try:
            await self._remove(await containers(self.gateway_pid))
        except DockerError as e:
            print(f"faas: docker: {e}", file=sys.stderr, flush=True)
        await super().stop()

    async def _remove(self, names: list[str]) -> None:
        try:
            await remove(names)
        except DockerError as e:
            print(f"faas: docker: {e}", file=sys.stderr, flush=True)


def make_backend(kind: str, manifest: Manifest, **kw) -> Backend:
    """The sandbox backend ``kind`` (one of :data:`SANDBOXES`)."""
    classes = {"process": ProcessBackend, "bwrap": BwrapBackend, "docker": DockerBackend}
    if kind not in classes:
        raise SandboxError(f"--sandbox {kind!r}: must be one of {', '.join(SANDBOXES)}")
    return classes[kind](manifest, **kw)
