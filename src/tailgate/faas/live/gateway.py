"""The live FaaS gateway: HTTP in, per-function dispatch ticks, a strategy, a warm pool of sandboxes.

Manual
------
::

    gw = Gateway(manifest, make_strategy("faasbatch", dispatch_interval_s=0.2), sandbox="process")
    await gw.start(port=8080)          # starts the sandbox backend, the dispatchers, the cleaner, HTTP
    ...
    summary = await gw.stop()          # stop accepting, finish or fail what is in flight, tear down

HTTP (aiohttp):

=============================  ===========================================================================
``POST /invoke/{function}``    body: the JSON event. 200 ``{"result": R, "timing": {...}}``; 500 with
                               ``{"error": "ExcType: text", "timing": ...}`` when the handler raised;
                               502 when its sandbox died; 504 when it ran past the function's
                               ``timeout_s``; 503 once the gateway is stopping. Unknown function → 404,
                               a body that is not JSON → 400, a body over ``max_body_bytes`` → 413
                               (all JSON ``{"error": ...}``)
``GET /functions``             the manifest's functions (name, handler, kind, limits)
``GET /metrics``               counters (accepted = completed + failed + abandoned + in flight), the
                               sandboxes (created, used, live, peak, cold start p50/p98) and per
                               function the end-to-end latency percentiles (ms) and the dispatch
                               interval in effect (``interval_s``: faasbatch-slo's choice)
=============================  ===========================================================================

``backend_options`` go to :func:`tailgate.faas.live.sandbox.make_backend` (``env``, ``reuse``,
``keep_net``: what ``tailgate faas serve --s3 local`` sets).

Strategy ``sfs``: at start the gateway sets up SFS's scheduling in the sandboxes
(:meth:`tailgate.faas.live.sandbox.Backend.enable_sfs`, one line on stderr) and ``/metrics`` and
``summary.json`` carry ``sfs_means`` (``"sched_fifo"``, ``"nice"`` or ``"none: why"``) and
``sfs_invocations`` (how many invocations got each means; one refused SCHED_FIFO gets nice).
The gateway's own event loop, the template and the sandboxes' control threads then run above the
invocations (:meth:`tailgate.faas.live.sandbox.Backend.enable_control`, a second line on stderr),
so sandbox creation and answers do not wait behind invocations in their first slice; undone at stop.

Dispatch: every function has its own dispatcher. Each tick (the strategy's ``interval_s`` for the
function) it takes the invocations queued since the last tick as one batch, asks the strategy for
a plan (``sandboxes``, ``inside``), splits the batch round robin over as many sandboxes as the
plan asks and the bounds allow, acquires them one after another from the warm pool (a cold one is
created before the next is asked for, as the original did) and hands each its share as soon as it
is ready; then it waits for its next tick. A function's dispatches are serialised
(acquisition of one ends before the next tick's starts); batches run concurrently. When a bound
leaves no room for all the planned sandboxes, the batch shares the ones it got (a strategy of one
invocation per sandbox then runs them serially, which is queue time). After a batch, the strategy
``observe``\\ s its cold start and mean exec.

Per invocation the gateway records the simulator's columns (:data:`tailgate.faas.sim.INVOCATION_COLUMNS`
plus ``function``, ``status``, ``error``): ``schedule_s`` (arrival → its sandbox ready, less its
own cold start), ``cold_start_s`` (0 when warm), ``queue_s`` (wait inside the sandbox),
``exec_s`` (measured in the sandbox), ``e2e_s`` (arrival → answer, as the gateway saw it),
``mem_mb`` (I/O functions). The answer's ``timing`` carries them; :meth:`Gateway.write` puts
every invocation in ``invocations.csv``, every dispatch in ``batches.csv`` and the counters in
``summary.json`` (its ``strategy`` is the strategy's name and arguments).

``batches.csv`` (:data:`BATCH_COLUMNS`) has one row per dispatch, in the order the dispatches
happened: ``tick_s`` (the tick, s on the clock of ``arrival_s``: since the gateway was made),
``func`` and ``function`` (the manifest's index and name), ``invocations`` (the batch's size: the
load of that dispatch), ``sandboxes_planned`` (what the strategy's plan asked for) and
``sandboxes_got`` (what the pool gave: fewer at a bound, 0 when a sandbox could not start). A
Vanilla run's ``batches.csv`` is what Kraken's perfect predictor replays
(:mod:`tailgate.faas.live.calibrate`).

Timeouts and faults: an invocation still running ``timeout_s`` after its batch started fails
(504) and its sandbox is destroyed (a hung handler may hold it); the others in that sandbox fail
with the reason. A sandbox that dies fails its invocations (502) with the reason; the pool
replaces it on the next batch. Stopping: new invocations get 503; those accepted get up to
``grace_s`` to finish; the rest fail as ``abandoned``; every sandbox and the zygote are
destroyed. Nothing accepted goes unaccounted.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiohttp import web

from tailgate.faas.live.pool import WarmPool
from tailgate.faas.live.registry import FunctionSpec, Manifest
from tailgate.faas.live.sandbox import Backend, Sandbox, SandboxDied, make_backend
from tailgate.faas.strategies import Pool, Strategy
from tailgate.measure.percentile import percentiles

#: The per-invocation columns written to invocations.csv (the simulator's, plus who and how it ended).
COLUMNS = ("arrival_s", "func", "function", "input_n", "schedule_s", "cold_start_s", "queue_s", "exec_s",
           "e2e_s", "mem_mb", "sandbox", "status", "error")
STATUS_HTTP = {"completed": 200, "failed": 500, "died": 502, "timeout": 504, "abandoned": 503}
#: The per-dispatch columns written to batches.csv (module manual).
BATCH_COLUMNS = ("tick_s", "func", "function", "invocations", "sandboxes_planned", "sandboxes_got")
PCTS = (50, 90, 98, 99)
CLEANER_PERIOD_S = 5.0
#: Connections the kernel holds for the gateway before it accepts them (aiohttp's default, 128, drops
#: the SYNs of a client that opens hundreds at once: each such connect then waits 1 s, 3 s ... for a retry).
LISTEN_BACKLOG = 2048


@dataclass
class Invocation:
    """One accepted invocation and what happened to it."""

    id: int
    spec: FunctionSpec
    event: object
    arrival: float                      # monotonic s
    future: asyncio.Future
    status: str = ""                    # completed | failed | died | timeout | abandoned
    result: object = None
    error: str = ""
    timing: dict = field(default_factory=dict)
    sandbox: int = -1


def _json_response(status: int, body: dict) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


class Gateway:
    """See the module manual."""

    def __init__(self, manifest: Manifest, strategy: Strategy, sandbox: str = "process", pool: Pool | None = None,
                 max_body_bytes: int = 1 << 20, grace_s: float = 10.0, backend: Backend | None = None,
                 backend_options: dict | None = None) -> None:
        self.manifest = manifest
        self.specs = manifest.functions
        self.strategy = strategy
        self.backend = backend or make_backend(sandbox, manifest, **(backend_options or {}))
        self.pool = WarmPool(self.backend, pool or Pool(**manifest.pool))
        self.max_body_bytes = max_body_bytes
        self.grace_s = grace_s
        self.queues: dict[str, list[Invocation]] = {n: [] for n in self.specs}
        self.open: dict[int, Invocation] = {}
        self.done: list[Invocation] = []
        self.ids = itertools.count()
        self.counts = {k: 0 for k in ("accepted", "completed", "failed", "abandoned", "timed_out", "sandbox_died")}
        self.per_function = {n: {"accepted": 0, "completed": 0, "failed": 0, "abandoned": 0} for n in self.specs}
        self.batches = 0
        self.dispatch_log: list[tuple[float, int, str, int, int, int]] = []  # BATCH_COLUMNS, in dispatch order
        self.accepting = False
        self.tasks: list[asyncio.Task] = []
        self.batch_tasks: set[asyncio.Task] = set()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.t0 = time.monotonic()
        self.sfs_means: str | None = None          # strategy sfs: the scheduling means in effect (start)
        self.sfs_invocations: dict[str, int] = {}  # strategy sfs: invocations per means they actually got

    # --- HTTP ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post("/invoke/{function}", self.h_invoke)
        app.router.add_get("/functions", self.h_functions)
        app.router.add_get("/metrics", self.h_metrics)
        return app

    async def h_functions(self, request: web.Request) -> web.Response:
        return _json_response(200, {"functions": [s.to_json() for s in self.specs.values()]})

    async def h_metrics(self, request: web.Request) -> web.Response:
        return _json_response(200, self.metrics())

    async def h_invoke(self, request: web.Request) -> web.Response:
        name = request.match_info["function"]
        spec = self.specs.get(name)
        if spec is None:
            return _json_response(404, {"error": f"unknown function {name!r}", "functions": sorted(self.specs)})
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return _json_response(413, {"error": f"body of {request.content_length} bytes is over the limit of "
                                                 f"{self.max_body_bytes} bytes"})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json_response(413, {"error": f"body is over the limit of {self.max_body_bytes} bytes"})
        try:
            event = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError) as e:
            return _json_response(400, {"error": f"body is not JSON: {e}"})
        if not self.accepting:
            return _json_response(503, {"error": "the gateway is stopping"})
        inv = self.accept(spec, event)
        await asyncio.shield(inv.future)
        body = {"result": inv.result, "timing": inv.timing} if inv.status == "completed" else \
            {"error": inv.error, "status": inv.status, "timing": inv.timing}
        return _json_response(STATUS_HTTP[inv.status], body)

    # --- invocations ----------------------------------------------------------------------------

    def accept(self, spec: FunctionSpec, event) -> Invocation:
        inv = Invocation(next(self.ids), spec, event, time.monotonic(), asyncio.get_running_loop().create_future())
        self.counts["accepted"] += 1
        self.per_function[spec.name]["accepted"] += 1
        self.open[inv.id] = inv
        self.queues[spec.name].append(inv)
        return inv

    def finish(self, inv: Invocation, status: str, *, result=None, error: str = "", timing: dict | None = None) -> None:
        """Account ``inv`` once: completed, failed (failed/died/timeout) or abandoned."""
        if inv.future.done():
            return
        inv.status, inv.result, inv.error = status, result, error
        t = {"schedule_s": math.nan, "cold_start_s": math.nan, "queue_s": math.nan, "exec_s": math.nan,
             "mem_mb": None}
        t.update(timing or {})
        t["e2e_s"] = time.monotonic() - inv.arrival
        inv.timing = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in t.items()}
        kind = status if status in ("completed", "abandoned") else "failed"
        self.counts[kind] += 1
        self.per_function[inv.spec.name][kind] += 1
        if status == "timeout":
            self.counts["timed_out"] += 1
        elif status == "died":
            self.counts["sandbox_died"] += 1
        self.open.pop(inv.id, None)
        self.done.append(inv)
        inv.future.set_result(None)

    # --- dispatch ------------------------------------------------------------------------------

    async def dispatcher(self, spec: FunctionSpec) -> None:
        """The function's tick loop (serialised dispatches)."""
        next_tick = time.monotonic()
        while True:
            next_tick += self.strategy.interval_s(spec.index)
            delay = next_tick - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_tick = time.monotonic()  # a slow dispatch: the next tick counts from now
            batch, self.queues[spec.name] = self.queues[spec.name], []
            if batch:
                await self.dispatch(spec, batch)

    async def dispatch(self, spec: FunctionSpec, batch: list[Invocation]) -> None:
        self.batches += 1
        tick_s = time.monotonic() - self.t0
        plan = self.strategy.plan(spec.index, len(batch), self.pool.now_s())
        want = max(1, min(plan.sandboxes, len(batch), self.pool.pool.max_per_function))
        # the first sandbox (waiting for room at a bound), then as many more as the plan asks and the
        # bounds give now; the batch is split over them round robin, and each share starts as soon as
        # its sandbox is ready, not when the last of the batch's is
        m, got, shares, inside = 1, 0, [batch], plan.inside
        last: Sandbox | None = None
        while got < m:
            try:
                acq = await (self.pool.acquire(spec) if not got else self.pool.try_acquire(spec))
            except Exception as e:  # a sandbox that cannot start fails the invocations not yet handed over
                self.dispatch_log.append((tick_s, spec.index, spec.name, len(batch), plan.sandboxes, got))
                for share in shares[got:]:
                    for inv in share:
                        self.finish(inv, "died", error=f"sandbox of {spec.name} could not start: {e}")
                return
            if acq is None:  # room went to another function meanwhile: the rest share the last one
                self.launch(last, False, time.monotonic(), [inv for sh in shares[got:] for inv in sh], "serial")
                break
            if not got:
                m = max(1, min(want, 1 + self.pool.pool.available(spec.index)))
                if inside == "single" and m < len(batch):
                    inside = "serial"
                shares = [batch[k::m] for k in range(m)]
            last = acq[0]
            self.launch(acq[0], acq[1], time.monotonic(), shares[got], inside)
            got += 1
        self.dispatch_log.append((tick_s, spec.index, spec.name, len(batch), plan.sandboxes, got))

    def launch(self, sb: Sandbox, cold: bool, ready: float, share: list[Invocation], inside: str) -> None:
        """Hand ``share`` to ``sb`` now (a task of :meth:`run_share`)."""
        task = asyncio.get_running_loop().create_task(self.run_share(sb, cold, ready, share, inside))
        self.batch_tasks.add(task)
        task.add_done_callback(self.batch_tasks.discard)

    async def run_share(self, sb: Sandbox, cold: bool, ready: float, share: list[Invocation], inside: str) -> None:
        """Run ``share`` in ``sb``; answer each invocation as soon as its own result is back."""
        cold_s = sb.cold_start_s if cold else 0.0
        futs = sb.run([(inv.id, inv.event) for inv in share], inside)
        timeout_s = sb.spec.timeout_s
        execs: list[float] = []
        timed_out = False
        # callbacks, not a task per invocation: each answer settles its invocation as it comes back,
        # and one timer at a time times out those past their limit
        loop = asyncio.get_running_loop()
        t_start = loop.time()
        # serial: each one's clock starts when the one before it ended (at worst k timeouts in)
        deadlines = [t_start + (timeout_s * (k + 1) if inside == "serial" else timeout_s) for k in range(len(share))]
        settled = [False] * len(share)
        left = len(share)
        all_done = loop.create_future()
        timer: asyncio.TimerHandle | None = None

        def base(inv: Invocation) -> dict:
            inv.sandbox = sb.sid
            return {"schedule_s": max(0.0, ready - inv.arrival - cold_s), "cold_start_s": cold_s}

        def settle(k: int) -> None:
            nonlocal left
            settled[k] = True
            left -= 1
            if left == 0 and not all_done.done():
                all_done.set_result(None)

        def answered(k: int, fut: asyncio.Future) -> None:
            exc = fut.exception() if not fut.cancelled() else SandboxDied(f"sandbox {sb.sid} of {sb.spec.name} was torn down")
            if settled[k]:
                return  # timed out before: a late answer (or the recycling's SandboxDied) is dropped
            inv = share[k]
            settle(k)
            if exc is not None:
                self.finish(inv, "died", error=str(exc), timing=base(inv))
                return
            ans = fut.result()
            timing = {**base(inv), "queue_s": ans.get("queue_s", 0.0), "exec_s": ans.get("exec_s", 0.0),
                      "mem_mb": ans.get("mem_mb")}
            execs.append(timing["exec_s"])
            if "sfs" in ans:
                self.sfs_invocations[ans["sfs"]] = self.sfs_invocations.get(ans["sfs"], 0) + 1
            if ans.get("ok"):
                self.finish(inv, "completed", result=ans.get("result"), timing=timing)
            else:
                self.finish(inv, "failed", error=ans.get("error", "?"), timing=timing)

        def expire() -> None:
            nonlocal timed_out, timer
            now = loop.time()
            for k, inv in enumerate(share):
                if not settled[k] and deadlines[k] <= now:
                    timed_out = True
                    settle(k)
                    self.finish(inv, "timeout", error=f"{inv.spec.name}: timed out after {timeout_s:g} s "
                                                      f"(sandbox {sb.sid} recycled)", timing=base(inv))
            rest = [d for k, d in enumerate(deadlines) if not settled[k]]
            timer = loop.call_at(min(rest), expire) if rest else None

        for k, fut in enumerate(futs):
            fut.add_done_callback(lambda f, k=k: answered(k, f))
        if share:
            timer = loop.call_at(min(deadlines), expire)
            try:
                await all_done
            finally:
                if timer is not None:
                    timer.cancel()
        if timed_out:
            sb.fail_all(f"sandbox {sb.sid} of {sb.spec.name} recycled after an invocation timed out")
            await self.pool.retire(sb)
        else:
            await self.pool.release(sb)
        if execs:
            self.strategy.observe(sb.spec.index, cold_s, float(np.mean(execs)))

    async def cleaner(self) -> None:
        while True:
            await asyncio.sleep(CLEANER_PERIOD_S)
            await self.pool.expire()

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start the sandboxes' backend, the dispatchers and HTTP; returns the port."""
        await self.backend.start()
        if self.strategy.name == "sfs":
            self.sfs_means = self.backend.enable_sfs(self.strategy.params["slice_s"])
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self.dispatcher(s)) for s in self.specs.values()]
        self.tasks.append(loop.create_task(self.cleaner()))
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, backlog=LISTEN_BACKLOG)
        await site.start()
        self.port = self.runner.addresses[0][1]
        self.accepting = True
        return self.port

    async def stop(self) -> dict:
        """Stop accepting, let in-flight invocations finish (``grace_s``), fail the rest, tear down."""
        self.accepting = False
        deadline = time.monotonic() + self.grace_s
        while self.open and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for inv in list(self.open.values()):
            self.finish(inv, "abandoned", error="the gateway stopped before it finished")
        for t in list(self.batch_tasks):
            t.cancel()
        await asyncio.gather(*self.batch_tasks, return_exceptions=True)
        await self.pool.close()
        await self.backend.stop()
        await asyncio.sleep(0)  # let the HTTP handlers answer
        if self.runner is not None:
            await self.runner.cleanup()
        return self.metrics()

    # --- results -------------------------------------------------------------------------------

    def metrics(self) -> dict:
        funcs = {}
        for name, c in self.per_function.items():
            e2e = np.array([inv.timing["e2e_s"] for inv in self.done if inv.spec.name == name
                            and inv.status == "completed"], dtype=np.float64)
            lat = ({f"p{p}": float(v) * 1e3 for p, v in zip(PCTS, percentiles(e2e, PCTS))} if len(e2e) else {})
            # the dispatch interval in effect now (faasbatch-slo chooses one per function)
            funcs[name] = {**c, "e2e_ms": lat, "interval_s": self.strategy.interval_s(self.specs[name].index)}
        cs = np.array(self.pool.cold_starts_s, dtype=np.float64)
        cold = ({f"p{p}": float(v) * 1e3 for p, v in zip((50, 98), percentiles(cs, (50, 98)))} if len(cs) else {})
        return {"strategy": self.strategy.describe(), "sandbox": self.backend.kind,
                "reuse": getattr(self.backend, "spec_json", {}).get("reuse") is not None, **self.counts,
                "in_flight": len(self.open), "batches": self.batches,
                "sandboxes": {**self.pool.stats(), "cold_start_ms": cold}, "functions": funcs,
                **({"sfs_means": self.sfs_means, "sfs_invocations": dict(self.sfs_invocations)}
                   if self.sfs_means is not None else {})}

    def rows(self) -> list[dict]:
        out = []
        for inv in sorted(self.done, key=lambda i: i.arrival):
            t = inv.timing
            ev = inv.event if isinstance(inv.event, dict) else {}
            out.append({"arrival_s": inv.arrival - self.t0, "func": inv.spec.index, "function": inv.spec.name,
                        "input_n": ev.get("n", ""), **{k: t.get(k) for k in ("schedule_s", "cold_start_s", "queue_s",
                                                                                "exec_s", "e2e_s", "mem_mb")},
                        "sandbox": inv.sandbox, "status": inv.status, "error": inv.error})
        return out

    def write(self, out_dir: Path) -> None:
        """``invocations.csv`` (:data:`COLUMNS`), ``batches.csv`` (:data:`BATCH_COLUMNS`) and
        ``summary.json`` (:meth:`metrics`) into ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "invocations.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            for r in self.rows():
                w.writerow({k: ("" if v is None else v) for k, v in r.items()})
        with open(out_dir / "batches.csv", "w", newline="") as f:
            bw = csv.writer(f)
            bw.writerow(BATCH_COLUMNS)
            bw.writerows(self.dispatch_log)
        (out_dir / "summary.json").write_text(json.dumps(self.metrics(), indent=1) + "\n")


async def serve(gw: Gateway, host: str, port: int, duration_s: float | None, stop_event: asyncio.Event,
                ready=None) -> dict:
    """Run ``gw`` until ``stop_event`` is set or ``duration_s`` passes; returns the final metrics."""
    port = await gw.start(host, port)
    if ready is not None:
        ready(port)
    try:
        await asyncio.wait_for(stop_event.wait(), duration_s)
    except TimeoutError:
        pass
    finally:
        summary = await gw.stop()
    print(f"faas serve: accepted {summary['accepted']} = completed {summary['completed']} + failed "
          f"{summary['failed']} + abandoned {summary['abandoned']}; sandboxes created {summary['sandboxes']['created']}",
          file=sys.stderr, flush=True)
    return summary
