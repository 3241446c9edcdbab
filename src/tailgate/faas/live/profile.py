"""Profile this machine's sandboxes: cold start and exec time of the example functions, as a simulator profile.

Manual
------
::

    prof = asyncio.run(measure(manifest, repeats=10))       # or: tailgate faas profile -n 10
    write_profile(out_dir, prof)                             # profile.json (+ samples.json)
    simulate(trace, strategy, profile=out_dir / "profile.json")   # or: tailgate faas sim --profile FILE

:func:`measure` starts a ``process`` sandbox backend over the manifest (by default
``examples/faas/manifest.yaml``) with a local S3 server (:mod:`tailgate.faas.io.s3server`, its
endpoint in the sandboxes' environment, the boto3 reuse hook on in io sandboxes) and, ``repeats``
times each:

- **cold start** (create → first reply) of a sandbox of the CPU function and of the I/O function;
- **exec** of ``fib(n)`` for every ``n`` of ``fib_n`` (default the reference's anchors 20, 30, 34,
  35), each in a warm CPU sandbox (a forked child per invocation, as served);
- **exec** of the I/O function (``s3io``: a real put and get of ``size_bytes`` against the local
  server) as the first invocation of a fresh sandbox (the client is built: ``exec_ms``,
  ``mem_mb``) and as the second (the client comes from the reuse cache: ``exec_cached_ms``,
  ``mem_cached_mb``), and, in a sandbox without the reuse hook (as the baselines serve), as the
  second (the client is rebuilt with the libraries' own caches warm: ``exec_warm_ms``,
  ``mem_warm_mb``; the cold start of such a sandbox: ``cold_start_native_ms``); the same first and cached measurements for ``s3construct`` (the original's client-construction-only
  function) and of ``noop`` (the sandbox's own overhead);
- the machine's **capacity** for sandboxed work (``cpu.capacity_cores``): :data:`CAPACITY_PER_CORE`
  invocations of fib per core at once, one per fresh sandbox, their work alone over the wall time
  (less than the core count where parallel sandboxes run less efficiently than one alone);
- the **CPU time** of the processes involved (the caller, the zygote, the S3 server, the sandbox
  and the children it reaped) over each cold start and each I/O invocation, and the **hand-over** of an invocation (its round
  trip, run frame out → answer in, less its exec: for CPU functions the fork, the child's exit and
  the frames; for I/O the thread hand-off and the frames).

The CPU part (the cold starts of the CPU function, the exec of ``fib``, the capacity) runs in
sandboxes of the kind ``cpu_sandbox`` (``process``, the default, the same backend as the I/O part;
``bwrap``; ``docker``, one container per sandbox, with no network); the I/O part always runs in
``process`` sandboxes. :func:`measure` starts no docker daemon: the caller does (``with
tailgate.faas.live.docker.daemon(): ...``; ``tailgate faas profile --cpu-sandbox docker`` does).
A docker sandbox's cold-start CPU time also counts the docker daemon's processes (``dockerd``,
``containerd``, ``containerd-shim*``, ``runc``, found by name) and the processes of the container
that appeared during the start: CPU the machine spends on a start. The profile records the kind
as ``measured.cpu_sandbox``.

The profile is the simulator's format (:func:`tailgate.faas.sim.load_profile`): per kind
``cold_start_ms``, ``exec_ms`` (and for I/O ``exec_warm_ms`` and ``cold_start_native_ms``) as ``empirical`` distributions of the samples, the CPU exec as
``{"dist": "fib", "anchors": [[n, median ms], ...], "sigma": S}`` (S: the spread of log exec time
around each median), ``exec_cached_ms``, ``mem_mb`` and ``mem_cached_mb`` (medians) for I/O,
``cpu_share`` for I/O (the CPU time over the I/O invocations' round trips, a ratio of sums),
``server_ms`` for I/O (the S3 server's CPU time per invocation, the mean over :data:`SERVER_RUN`
cached invocations, as a constant),
``capacity_cores`` for CPU (the capacity measured; ``faas report`` simulates with it as ``cores``),
``cold_start_cpu_share`` per kind (the CPU time over the cold starts) and ``answer_ms`` per kind
(the hand-over samples; empirical), and
under ``measured`` (ignored by the simulator) the medians of every function, ``repeats``, the
I/O function used and the machine. A function the manifest lacks, a sandbox that fails to start
or an invocation that fails is a :class:`ProfileRunError` naming the function.

Arguments (:data:`PROFILE_ARGS`):

{args}
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import psutil

from tailgate.core.args import Arg, bind_args, render_args
from tailgate.core.errors import TailgateError
from tailgate.faas.io.s3server import S3Server
from tailgate.faas.live.docker import daemon_processes
from tailgate.faas.live.registry import FunctionSpec, Manifest
from tailgate.faas.live.sandbox import SANDBOXES, Sandbox, SandboxDied, make_backend

PROFILE_ARGS = (
    Arg("repeats", int, 10, unit="samples", min=1, max=100_000, help="samples of every measurement"),
    Arg("fib_n", tuple, (20, 30, 34, 35), unit="n", help="fib inputs whose exec time is measured (>= 2 of them)"),
    Arg("cpu_function", str, "fib", unit="-", help="the manifest's CPU function (event {'n': N})"),
    Arg("io_function", str, "s3io", unit="-", help="the manifest's I/O function the io profile is made of"),
    Arg("construct_function", str, "s3construct", unit="-", help="the client-construction-only function ('' to skip)"),
    Arg("noop_function", str, "noop", unit="-", help="the no-op function ('' to skip)"),
    Arg("size_bytes", int, 65536, unit="bytes", min=0, help="object size of the I/O function's put and get"),
    Arg("timeout_s", float, 120.0, unit="s", min=0.1, help="one invocation's limit"),
    Arg("cpu_sandbox", str, "process", unit="-",
        help="the sandbox kind of the CPU part (process, bwrap or docker; the I/O part runs in process sandboxes)"),
)
__doc__ = __doc__.replace("{args}", render_args(PROFILE_ARGS))


#: cached I/O invocations over which the S3 server's CPU per invocation is measured
SERVER_RUN = 40
#: the capacity measurement: invocations per core run at once, and how many times
CAPACITY_PER_CORE = 4
CAPACITY_REPEATS = 5
#: the least exec time alone of the fib used (s): shorter, the overheads would be measured, not the work
CAPACITY_MIN_S = 0.05


class ProfileRunError(TailgateError):
    """A profile measurement that could not be made (missing function, failed sandbox or invocation)."""


def _spec(manifest: Manifest, name: str, kind: str) -> FunctionSpec:
    spec = manifest.functions.get(name)
    if spec is None:
        raise ProfileRunError(f"{manifest.source}: no function {name!r} to profile "
                              f"(functions: {', '.join(manifest.functions)})")
    if spec.kind != kind:
        raise ProfileRunError(f"{manifest.source}: function {name!r} is kind {spec.kind}, profiled as {kind}")
    return spec


async def _create(backend, spec: FunctionSpec, sid: int) -> Sandbox:
    """A new sandbox of ``spec``; one that does not start is a :class:`ProfileRunError`."""
    try:
        return await backend.create(spec, sid)
    except TailgateError as e:
        raise ProfileRunError(f"profile: a sandbox of {spec.name} did not start: {e}") from None


async def _invoke(sb: Sandbox, iid: int, event: dict, timeout_s: float) -> dict:
    (fut,) = sb.run([(iid, event)], "single")
    try:
        ans = await asyncio.wait_for(fut, timeout_s)
    except TimeoutError:
        raise ProfileRunError(f"profile: {sb.spec.name} {json.dumps(event)} ran past {timeout_s:g} s") from None
    except SandboxDied as e:
        raise ProfileRunError(f"profile: {sb.spec.name}: {e}") from None
    if not ans.get("ok"):
        raise ProfileRunError(f"profile: {sb.spec.name} {json.dumps(event)} failed: {ans.get('error')}")
    return ans


def tree_cpu_s(pids: list[int]) -> float:
    """CPU time (s) of processes ``pids`` and of the children they reaped (clock ticks, 10 ms): the
    caller, the zygote, the S3 server and a sandbox, not whatever else the machine runs."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


async def _timed(sb: Sandbox, iid: int, event: dict, timeout_s: float, pids: list[int]) -> tuple[dict, float, float]:
    """:func:`_invoke` plus its round trip (s: run frame out → answer in) and the CPU time of
    ``pids`` and the sandbox over it (s)."""
    who = [*pids, sb.pid]
    c0, t0 = tree_cpu_s(who), time.perf_counter()
    ans = await _invoke(sb, iid, event, timeout_s)
    return ans, time.perf_counter() - t0, tree_cpu_s(who) - c0


def daemon_pids() -> list[int]:
    """The docker daemons' processes (:func:`tailgate.faas.live.docker.daemon_processes`) and, under
    every ``containerd-shim*``, the containers' processes (a docker sandbox's zygote)."""
    out = []
    for p in daemon_processes():
        out.append(p.pid)
        if (p.info.get("name") or "").startswith("containerd-shim"):
            try:
                out.extend(c.pid for c in p.children(recursive=True))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    return list(dict.fromkeys(out))


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU time (s) of each of ``pids`` with the children it reaped (those gone are left out)."""
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out[pid] = t.user + t.system + t.children_user + t.children_system
    return out


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU time (s) spent between two :func:`cpu_by_pid` snapshots: each process's growth, the whole
    time of one that appeared in between (a container's shim and zygote)."""
    return sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in after.items())


def _median(xs: list[float]) -> float:
    return float(np.median(np.asarray(xs, dtype=np.float64)))


async def _capacity(backend, cpu: FunctionSpec, fib_n: list[int], samples: dict, timeout_s: float, say,
                    next_id) -> float | None:
    """The machine's capacity for sandboxed work (cores): :data:`CAPACITY_PER_CORE` x cores
    invocations of fib (the largest profiled n up to 34), one per fresh sandbox, all at once; their
    work alone (its median exec, measured just before) over the wall time until the last ends.
    The median of :data:`CAPACITY_REPEATS`; None on one core or when that fib is shorter than
    :data:`CAPACITY_MIN_S`."""
    cores = os.cpu_count() or 1
    if cores < 2:
        return None
    n = max(k for k in fib_n if k <= 34) if min(fib_n) <= 34 else min(fib_n)
    alone_s = float(np.median(samples[f"{cpu.name}.{n}.exec_ms"])) / 1e3
    if alone_s < CAPACITY_MIN_S:  # the fork and the answer would weigh more than the work
        say(f"cpu: no capacity measured (fib({n}) takes {alone_s * 1e3:.1f} ms < {CAPACITY_MIN_S * 1e3:g} ms)")
        return None
    k = CAPACITY_PER_CORE * cores
    say(f"cpu: capacity, {k} x fib({n}) at once in {k} sandboxes x {CAPACITY_REPEATS}")
    out = []
    sid = 1 << 40  # ids of their own
    for _ in range(CAPACITY_REPEATS):
        sbs = []
        for _ in range(k):
            sid += 1
            sbs.append(await _create(backend, cpu, sid))
        t0 = time.perf_counter()
        await asyncio.gather(*(_invoke(sb, next_id(), {"n": n}, timeout_s) for sb in sbs))
        wall_s = time.perf_counter() - t0
        for sb in sbs:
            await backend.destroy(sb)
        out.append(min(float(cores), k * alone_s / wall_s))
    samples["cpu.capacity_cores"] = out
    return float(np.median(out))


async def measure(manifest: Manifest, progress=None, **kwargs) -> dict:
    """Measure the sandboxes (module manual); returns ``{"profile": ..., "samples": ...}``."""
    a = bind_args("faas profile", PROFILE_ARGS, kwargs)
    fib_n = sorted({int(n) for n in a["fib_n"]})
    if len(fib_n) < 2 or fib_n[0] < 0 or fib_n[-1] > 40:
        raise ProfileRunError(f"--fib-n {','.join(map(str, a['fib_n']))}: give at least two distinct n in 0..40")
    cpu = _spec(manifest, a["cpu_function"], "cpu")
    io = _spec(manifest, a["io_function"], "io")
    extra = [_spec(manifest, n, "io") for n in (a["construct_function"], a["noop_function"]) if n]
    reps = a["repeats"]
    kind = a["cpu_sandbox"]
    if kind not in SANDBOXES:
        raise ProfileRunError(f"--cpu-sandbox {kind!r}: must be one of {', '.join(SANDBOXES)}")
    say = progress or (lambda text: None)
    samples: dict[str, list[float]] = {}
    ids = iter(range(1 << 62))
    with S3Server() as s3:
        backend = make_backend("process", manifest, env=s3.endpoint_env(), reuse={}, keep_net=True)
        await backend.start()
        cpu_backend = backend  # the CPU part's: the same process backend, or one of --cpu-sandbox's kind
        try:
            if kind != "process":
                # made as the gateway makes it under --s3 local (host network: a container without
                # one needs a network namespace made at each start, which the served ones skip)
                other = make_backend(kind, manifest, env=s3.endpoint_env(), reuse={}, keep_net=True)
                try:
                    await other.start()
                except TailgateError as e:
                    raise ProfileRunError(f"--cpu-sandbox {kind}: {str(e).removeprefix(f'--sandbox {kind}: ')}") from None
                cpu_backend = other
            sid = 0
            pids = [os.getpid(), *(p.pid for p in (getattr(backend, "template", None), s3.proc) if p is not None)]
            cpu_pids = [os.getpid(), *(p.pid for p in (getattr(cpu_backend, "template", None), s3.proc)
                                       if p is not None)]

            async def fresh(spec: FunctionSpec, key: str, on=backend, who=pids) -> Sandbox:
                nonlocal sid
                sid += 1
                # a docker start is also the daemon's work (dockerd, containerd, the new shim, runc, the
                # container's zygote); found before the caller's clock starts, so the search is not counted
                d0 = cpu_by_pid(daemon_pids()) if on.kind == "docker" else {}
                c0 = tree_cpu_s(who)
                sb = await _create(on, spec, sid)
                c_s = tree_cpu_s([*who, sb.pid]) - c0  # the sandbox's CPU so far is all its start's
                if on.kind == "docker":
                    c_s += cpu_since(d0, cpu_by_pid(daemon_pids()))
                samples.setdefault(f"{key}.cold_start_ms", []).append(sb.cold_start_s * 1e3)
                samples.setdefault(f"{key}.cold_start_cpu_ms", []).append(c_s * 1e3)
                return sb

            say(f"cpu: {cpu.name} cold start and fib({','.join(map(str, fib_n))}) x {reps} in {kind} sandboxes")
            sb = None
            for r in range(reps):
                sb = await fresh(cpu, "cpu", cpu_backend, cpu_pids)
                if r < reps - 1:
                    await cpu_backend.destroy(sb)
            for n in fib_n:
                for _ in range(reps):
                    ans, rt_s, _ = await _timed(sb, next(ids), {"n": n}, a["timeout_s"], cpu_pids)
                    samples.setdefault(f"{cpu.name}.{n}.exec_ms", []).append(ans["exec_s"] * 1e3)
                    if n == fib_n[0]:  # the fork, the child's exit and the frames back: the hand-over
                        samples.setdefault("cpu.answer_ms", []).append(max(0.0, rt_s - ans["exec_s"]) * 1e3)
            await cpu_backend.destroy(sb)
            await _capacity(cpu_backend, cpu, fib_n, samples, a["timeout_s"], say, lambda: next(ids))
            if cpu_backend is not backend:
                await cpu_backend.stop()
                cpu_backend = backend
            for spec in (io, *extra):
                say(f"io: {spec.name} cold start, first and cached exec x {reps}")
                event = {"size_bytes": a["size_bytes"]} if spec is io else {}
                for _ in range(reps):
                    sb = await fresh(spec, "io" if spec is io else spec.name)
                    first, rt1, cpu1 = await _timed(sb, next(ids), event, a["timeout_s"], pids)
                    second, rt2, cpu2 = await _timed(sb, next(ids), event, a["timeout_s"], pids)
                    await backend.destroy(sb)
                    if spec is io:  # the CPU part of a real put/get (the client, the S3 server) and the hand-over
                        for key, ans, rt_s, c_s in (("exec", first, rt1, cpu1), ("exec_cached", second, rt2, cpu2)):
                            samples.setdefault(f"{spec.name}.{key}_cpu_ms", []).append(c_s * 1e3)
                            samples.setdefault(f"{spec.name}.{key}_rt_ms", []).append(rt_s * 1e3)
                        samples.setdefault("io.answer_ms", []).append(max(0.0, rt2 - second["exec_s"]) * 1e3)
                    for key, ans in (("exec_ms", first), ("exec_cached_ms", second)):
                        samples.setdefault(f"{spec.name}.{key}", []).append(ans["exec_s"] * 1e3)
                    for key, ans in (("mem_mb", first), ("mem_cached_mb", second)):
                        if ans.get("mem_mb") is not None:
                            samples.setdefault(f"{spec.name}.{key}", []).append(float(ans["mem_mb"]))
            # the S3 server's own CPU per invocation (its requests): over a run of cached invocations,
            # as /proc counts 10 ms ticks
            say(f"io: the S3 server's CPU over {SERVER_RUN} invocations of {io.name}")
            sid += 1
            sb = await _create(backend, io, sid)
            await _invoke(sb, next(ids), {"size_bytes": a["size_bytes"]}, a["timeout_s"])
            s0 = tree_cpu_s([s3.proc.pid])
            for _ in range(SERVER_RUN):
                await _invoke(sb, next(ids), {"size_bytes": a["size_bytes"]}, a["timeout_s"])
            samples["io.server_cpu_ms"] = [(tree_cpu_s([s3.proc.pid]) - s0) * 1e3 / SERVER_RUN]
            await backend.destroy(sb)
        finally:
            if cpu_backend is not backend:
                await cpu_backend.stop()
            await backend.stop()
        # the baselines serve without the reuse hook: a second invocation in a sandbox rebuilds its
        # client, but with the libraries' own caches warm (what the simulator's exec_warm_ms is)
        native = make_backend("process", manifest, env=s3.endpoint_env(), reuse=None, keep_net=True)
        await native.start()
        try:
            say(f"io: {io.name} without the reuse hook, second exec in a sandbox x {reps}")
            for _ in range(reps):
                sid += 1
                sb = await _create(native, io, sid)
                samples.setdefault("io.cold_start_native_ms", []).append(sb.cold_start_s * 1e3)
                await _invoke(sb, next(ids), {"size_bytes": a["size_bytes"]}, a["timeout_s"])
                warm = await _invoke(sb, next(ids), {"size_bytes": a["size_bytes"]}, a["timeout_s"])
                await native.destroy(sb)
                samples.setdefault(f"{io.name}.exec_warm_ms", []).append(warm["exec_s"] * 1e3)
                if warm.get("mem_mb") is not None:
                    samples.setdefault(f"{io.name}.mem_warm_mb", []).append(float(warm["mem_mb"]))
        finally:
            await native.stop()
    return {"profile": build_profile(samples, cpu.name, io.name, fib_n, reps, cpu_sandbox=kind), "samples": samples}


def build_profile(samples: dict[str, list[float]], cpu_name: str, io_name: str, fib_n: list[int], repeats: int,
                  cpu_sandbox: str = "process") -> dict:
    """The simulator's profile (module manual) from :func:`measure`'s samples; ``cpu_sandbox``: the
    kind the CPU part ran in (``measured.cpu_sandbox``)."""
    anchors, dev = [], []
    for n in fib_n:
        xs = np.asarray(samples[f"{cpu_name}.{n}.exec_ms"], dtype=np.float64)
        xs = np.maximum(xs, 1e-3)
        med = float(np.median(xs))
        anchors.append([n, med])
        dev.extend(np.log(xs / med).tolist())
    sigma = float(np.sqrt(np.mean(np.square(dev)))) if dev else 0.0
    io: dict = {"cold_start_ms": {"dist": "empirical", "samples": samples["io.cold_start_ms"]},
                "exec_ms": {"dist": "empirical", "samples": samples[f"{io_name}.exec_ms"]},
                "exec_cached_ms": {"dist": "empirical", "samples": samples[f"{io_name}.exec_cached_ms"]}}
    if samples.get("io.cold_start_native_ms"):
        io["cold_start_native_ms"] = {"dist": "empirical", "samples": samples["io.cold_start_native_ms"]}
    if samples.get(f"{io_name}.exec_warm_ms"):
        io["exec_warm_ms"] = {"dist": "empirical", "samples": samples[f"{io_name}.exec_warm_ms"]}
    for key in ("mem_mb", "mem_cached_mb", "mem_warm_mb"):
        if samples.get(f"{io_name}.{key}"):
            io[key] = _median(samples[f"{io_name}.{key}"])
    share = _ratio(samples, [f"{io_name}.exec_cpu_ms", f"{io_name}.exec_cached_cpu_ms"],
                   [f"{io_name}.exec_rt_ms", f"{io_name}.exec_cached_rt_ms"])
    if share is not None:
        io["cpu_share"] = round(min(1.0, share), 4)
    if samples.get("io.server_cpu_ms"):  # one mean over a run of invocations, as a constant
        io["server_ms"] = {"dist": "const", "value": round(float(np.mean(samples["io.server_cpu_ms"])), 3)}
    cpu_part: dict = {}
    if samples.get("cpu.capacity_cores"):
        cpu_part["capacity_cores"] = round(_median(samples["cpu.capacity_cores"]), 3)
    for kind, part in (("cpu", cpu_part), ("io", io)):
        cold = _ratio(samples, [f"{kind}.cold_start_cpu_ms"], [f"{kind}.cold_start_ms"])
        if cold is not None:
            part["cold_start_cpu_share"] = round(min(1.0, cold), 4)
        if samples.get(f"{kind}.answer_ms"):
            part["answer_ms"] = {"dist": "empirical", "samples": samples[f"{kind}.answer_ms"]}
    medians = {k: _median(v) for k, v in samples.items() if v}
    measured = {"repeats": repeats, "io_function": io_name, "cpu_function": cpu_name, "cpu_sandbox": cpu_sandbox,
                "medians": medians,
                "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
                "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    io["measured"] = measured
    return {"cpu": {"cold_start_ms": {"dist": "empirical", "samples": samples["cpu.cold_start_ms"]},
                    "exec_ms": {"dist": "fib", "anchors": anchors, "sigma": round(sigma, 4) if math.isfinite(sigma) else 0.0},
                    **cpu_part, "measured": measured},
            "io": io}


def _ratio(samples: dict[str, list[float]], num: list[str], den: list[str]) -> float | None:
    """Σ samples of ``num`` over Σ of ``den`` (a CPU share: a process's CPU time counts in 10 ms
    ticks, so a ratio of sums over every repeat, not a median of noisy ratios); None when either is missing."""
    if not all(samples.get(k) for k in num + den):
        return None
    d = sum(sum(samples[k]) for k in den)
    return sum(sum(samples[k]) for k in num) / d if d > 0 else None


def write_profile(out_dir: Path, result: dict) -> Path:
    """``profile.json`` (the simulator's input) and ``samples.json`` (every sample) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "profile.json").write_text(json.dumps(result["profile"], indent=1) + "\n")
    (out_dir / "samples.json").write_text(json.dumps(result["samples"], indent=1) + "\n")
    return out_dir / "profile.json"
