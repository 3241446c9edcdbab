"""FaaSBatch's reproduction: the paper's experiment simulated, the artifact's table beside it, a live check.

Manual
------
``tailgate faas report [--out DIR] [--live/--no-live] [--quick]`` (:func:`run_report`) writes
``faasbatch.md`` and ``faasbatch/`` (``simulated.json``, ``live.json``, ``profile.json``,
``provenance.json``, and each live run's gateway and load results) into a fresh results
directory (:func:`tailgate.bench.provenance.report_dir`) or ``--out`` (``--out docs/`` for the
committed one). The header names the date, the machine and the command.

**Simulated** — every strategy (faasbatch, vanilla, kraken with its perfect predictor, sfs) at every
dispatch interval (0.01, 0.05, 0.2, 0.5 s) on the paper's experiment: a generated Azure-like trace
of 800 CPU invocations (7 functions) and one of 400 I/O invocations (5 functions), 5 minutes,
seed :data:`SEED`, the simulator's reference profile (read off the paper's figures) and its
defaults (32 cores). Per point: sandboxes, memory per invocation, and p50/p98 of every component
(schedule, cold start, queue, exec, end-to-end), beside the artifact's numbers for the same
point (:data:`REFERENCE`, reference §10: containers, mean e2e, e2e P98, memory per invocation;
"–" where the artifact has none, e.g. every point at 0.05 s), and FaaSBatch's p98 reduction
against each baseline, simulated and the artifact's.

**Live** (``--live``, default on) — the model checked against this machine: a profile of the
sandboxes (:func:`tailgate.faas.live.profile.measure`), then for I/O (real put/get against the
local S3 server, ``s3func``) and CPU (``fib``) a reduced trace of the reference's shape
(:data:`LIVE_INVOCATIONS` invocations, one gateway function per trace function, over
:data:`LIVE_MINUTES` minutes) replayed through ``tailgate faas serve --s3 local`` with faasbatch and
with vanilla at di = 0.2 s (``tailgate faas load``, open loop), and the simulator run on the same
trace with the measured profile, this machine's core count and the gateway's pool bounds. The
table gives the live and simulated p50/p98 and their difference; a point is "within 15 %" when
both |differences| are ≤ 15 % (the issue's criterion). ``--quick`` (for tests): a few
invocations, I/O only, a 0.2 s interval only in the simulated part.

Reference values are in one cited data table, :data:`REFERENCE`; the prose numbers are computed
from the results.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tailgate.bench.provenance import describe, provenance
from tailgate.core.errors import TailgateError
from tailgate.faas.io.load import LoadConfig, replay
from tailgate.faas.live.profile import measure
from tailgate.faas.live.registry import load_manifest
from tailgate.faas.sim import run_strategies
from tailgate.faas.trace import generate

STRATEGIES = ("faasbatch", "vanilla", "kraken", "sfs")
INTERVALS_S = (0.01, 0.05, 0.2, 0.5)
PAPER = {"cpu": {"invocations": 800, "functions": 7}, "io": {"invocations": 400, "functions": 5}}
SEED = 5432
COMPONENTS = ("schedule", "cold_start", "queue", "exec", "e2e")
LIVE_INVOCATIONS = {"io": 200, "cpu": 200}
LIVE_MINUTES = 1.0
LIVE_INTERVAL_S = 0.2
LIVE_POOL = {"max_per_function": 50, "max_total": 200, "idle_lifetime_s": 600.0}
WITHIN = 0.15
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "faas"

#: The artifact's per-strategy statistics of the dispatch-interval experiment (reference §10, from the
#: artifact's result files): (kind, di s, strategy) → n logged, containers, mean e2e ms, e2e P98 ms,
#: memory per invocation MB (None: not measured). No point at di = 0.05 s is in the files.
REFERENCE: dict[tuple[str, float, str], dict] = {
    (k, di, s): {"n": n, "containers": c, "e2e_mean_ms": e, "e2e_p98_ms": p, "mem_mb": m}
    for k, di, s, n, c, e, p, m in (
        ("cpu", 0.01, "vanilla", 800, 202, 4335.0, 23299.7, None),
        ("cpu", 0.01, "faasbatch", 800, 68, 1162.1, 7737.3, None),
        ("cpu", 0.01, "kraken", 800, 59, 1758.8, 9522.6, None),
        ("cpu", 0.01, "sfs", 800, 211, 5701.7, 31235.2, None),
        ("cpu", 0.2, "vanilla", 800, 292, 9328.4, 32504.3, None),
        ("cpu", 0.2, "faasbatch", 791, 45, 1136.5, 7024.9, None),
        ("cpu", 0.2, "kraken", 800, 51, 2313.2, 10791.0, None),
        ("cpu", 0.2, "sfs", 800, 389, 20021.2, 69363.0, None),
        ("cpu", 0.5, "vanilla", 800, 523, 36391.5, 103323.9, None),
        ("cpu", 0.5, "faasbatch", 769, 26, 1176.9, 6420.6, None),
        ("cpu", 0.5, "kraken", 800, 74, 4477.5, 17738.2, None),
        ("cpu", 0.5, "sfs", 800, 508, 37715.0, 100264.8, None),
        ("io", 0.01, "vanilla", 400, 136, 3814.3, 19256.9, 14.9),
        ("io", 0.01, "faasbatch", 400, 24, 209.7, 2791.1, 1.2),
        ("io", 0.01, "kraken", 400, 81, 1987.7, 8394.4, 14.9),
        ("io", 0.01, "sfs", 400, 151, 5343.6, 28445.3, 14.9),
        ("io", 0.2, "vanilla", 400, 273, 20205.6, 48811.4, 14.9),
        ("io", 0.2, "faasbatch", 400, 14, 258.8, 2109.3, 0.6),
        ("io", 0.2, "kraken", 400, 68, 4143.8, 13997.8, 14.9),
        ("io", 0.2, "sfs", 400, 248, 15703.2, 42578.1, 14.9),
        ("io", 0.5, "vanilla", 400, 340, 34558.0, 71151.8, 14.8),
        ("io", 0.5, "faasbatch", 400, 10, 397.3, 2143.1, 0.7),
        ("io", 0.5, "kraken", 400, 63, 5233.6, 14344.5, 14.9),
        ("io", 0.5, "sfs", 400, 339, 32585.8, 62813.4, 14.9),
    )
}


class ReportError(TailgateError):
    """A report part that could not run (the gateway did not start, a load found no answer)."""


def _point(res) -> dict:
    """A simulator result's summary plus p50 and p98 of every component (ms)."""
    out = dict(res.summary())
    cols = {"schedule": res.schedule_s, "cold_start": res.cold_start_s, "queue": res.queue_s, "exec": res.exec_s,
            "e2e": res.e2e_s}
    for name, v in cols.items():
        p50, p98 = np.percentile(v * 1e3, [50, 98])
        out[f"{name}_p50_ms"], out[f"{name}_p98_ms"] = float(p50), float(p98)
    return out


def simulated(quick: bool = False) -> list[dict]:
    """The paper's experiment in the simulator (manual): one point per kind, strategy and interval."""
    points = []
    intervals = (0.2,) if quick else INTERVALS_S
    for kind, size in PAPER.items():
        tr = generate(invocations=size["invocations"] // (10 if quick else 1), kind=kind,
                      functions=size["functions"], minutes=5.0, seed=SEED)
        for res in run_strategies(tr, list(STRATEGIES), list(intervals), seed=SEED):
            points.append({"kind": kind, **_point(res)})
    return points


def _live_manifest(path: Path, kind: str, n_functions: int) -> list[str]:
    names = [f"{'s3io' if kind == 'io' else 'fib'}_{k}" for k in range(n_functions)]
    handler = "s3func:handler" if kind == "io" else "handlers:fib"
    limits = "{memory_mb: 512, cpu_share: 1.0, timeout_s: 120}"
    lines = [f"path: [{EXAMPLES}]", "pool: {" + ", ".join(f"{k}: {v:g}" for k, v in LIVE_POOL.items()) + "}",
             "functions:"] + [f"  - {{name: {n}, handler: '{handler}', kind: {kind}, limits: {limits}}}" for n in names]
    path.write_text("\n".join(lines) + "\n")
    return names


def _serve(manifest: Path, strategy: str, out_dir: Path) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-c", "from tailgate.cli.main import app; app()", "faas", "serve", "--manifest",
           str(manifest), "--strategy", strategy, "--dispatch-interval-s", f"{LIVE_INTERVAL_S:g}", "--port", "0",
           "--s3", "local", "--out", str(out_dir)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 90
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line.strip())
        if "listening on" in line:
            return proc, int(line.split("http://127.0.0.1:")[1].split()[0])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    last = next((s for s in reversed(seen) if s), "no output")
    raise ReportError(f"faas report: the gateway ({strategy}) did not start: {last}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.read()
        proc.stderr.close()


def _diff(live: float | None, sim: float | None) -> float | None:
    if live is None or sim is None or not live > 0:
        return None
    return (sim - live) / live


def live(out_dir: Path, quick: bool = False, say: Callable[[str], None] | None = None) -> dict:
    """The live check (manual): profile, then per kind faasbatch and vanilla live and simulated."""
    say = say or (lambda text: None)
    say("profiling this machine's sandboxes")
    man = load_manifest(EXAMPLES / "manifest.yaml")
    prof = asyncio.run(measure(man, repeats=1 if quick else 5, fib_n=(12, 18) if quick else (20, 26, 30, 34)))
    profile = prof["profile"]
    kinds = ("io",) if quick else ("io", "cpu")
    rows = []
    cores = os.cpu_count() or 1
    for kind in kinds:
        n_inv = 12 if quick else LIVE_INVOCATIONS[kind]
        n_fn = PAPER[kind]["functions"]
        minutes = 0.05 if quick else LIVE_MINUTES
        tr = generate(invocations=n_inv, kind=kind, functions=n_fn, minutes=minutes, seed=SEED)
        kdir = out_dir / f"live-{kind}"
        kdir.mkdir(parents=True, exist_ok=True)
        names = _live_manifest(kdir / "manifest.yaml", kind, n_fn)
        sims = {r.strategy.name: _point(r) for r in run_strategies(
            tr, ["faasbatch", "vanilla"], [LIVE_INTERVAL_S], profile=profile, pool_args=LIVE_POOL, cores=cores,
            sandbox_cores=1.0, seed=SEED)}  # 1.0: the live manifest's cpu_share (a cgroup quota per sandbox)
        for strategy in ("faasbatch", "vanilla"):
            say(f"live {kind} {strategy}: {n_inv} invocations over {minutes * 60:g} s")
            proc, port = _serve(kdir / "manifest.yaml", strategy, kdir / f"serve-{strategy}")
            try:
                summary, _ = replay(tr, LoadConfig(port=port, functions=names, event={"size_bytes": 65536},
                                                   timeout_s=120.0))
            finally:
                _stop(proc)
            (kdir / f"load-{strategy}.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
            sim = sims[strategy]
            row = {"kind": kind, "strategy": strategy, "invocations": n_inv, "ok": summary["ok"],
                   "live_sandboxes": summary["sandboxes"], "sim_sandboxes": sim["sandboxes"]}
            for q in ("p50", "p98"):
                row[f"live_e2e_{q}_ms"] = summary[f"e2e_{q}_ms"]
                row[f"sim_e2e_{q}_ms"] = sim[f"e2e_{q}_ms"]
                row[f"diff_{q}"] = _diff(summary[f"e2e_{q}_ms"], sim[f"e2e_{q}_ms"])
            for c in ("schedule", "cold_start", "queue", "exec"):
                row[f"live_{c}_p98_ms"] = summary.get(f"{c}_p98_ms")
                row[f"sim_{c}_p98_ms"] = sim[f"{c}_p98_ms"]
            row["within"] = all(d is not None and abs(d) <= WITHIN for d in (row["diff_p50"], row["diff_p98"]))
            rows.append(row)
    return {"profile": profile, "rows": rows, "cores": cores, "interval_s": LIVE_INTERVAL_S}


# --- Markdown ------------------------------------------------------------------------------------

def _ms(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def _pct(v) -> str:
    return "–" if v is None else f"{v * 100:+.0f} %"


def _reduction(points: dict, kind: str, di: float, other: str, field: str = "e2e_p98_ms") -> float | None:
    fb, ot = points.get((kind, di, "faasbatch")), points.get((kind, di, other))
    if not fb or not ot or not ot.get(field):
        return None
    return fb[field] / ot[field] - 1.0


def markdown(sim_points: list[dict], live_part: dict | None, ran: dict, command: str) -> str:
    """The report's text (manual)."""
    lines = ["# FaaSBatch: function batching, simulated and live", "",
             f"Written by `{command}`, {describe(ran)}. Every number below comes from this run, except the "
             "artifact's columns (reference §10, `tailgate.bench.faas_report.REFERENCE`).", ""]
    by = {(p["kind"], p["interval_s"], p["strategy"]): p for p in sim_points}
    intervals = sorted({p["interval_s"] for p in sim_points})
    for kind in PAPER:
        n = next((p["invocations"] for p in sim_points if p["kind"] == kind), 0)
        lines += [f"## Simulated, {kind.upper()} functions ({n} invocations)", "",
                  "Latencies in ms, p50 / p98; `art.`: the artifact's (containers, mean e2e, e2e P98, MB per "
                  "invocation).", "",
                  "| di s | strategy | sandboxes | e2e | schedule | cold start | queue | exec | MB/inv | e2e mean "
                  "| art. ctr | art. e2e mean | art. e2e P98 | art. MB/inv |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for di in intervals:
            for s in STRATEGIES:
                p = by.get((kind, di, s))
                if p is None:
                    continue
                ref = REFERENCE.get((kind, di, s), {})
                comp = [f"{_ms(p[f'{c}_p50_ms'])} / {_ms(p[f'{c}_p98_ms'])}" for c in
                        ("e2e", "schedule", "cold_start", "queue", "exec")]
                mem = p.get("mem_per_invocation_mb")
                name = s + (f" ({p['predictor']})" if "predictor" in p else "")
                lines.append(f"| {di:g} | {name} | {p['sandboxes']} | " + " | ".join(comp) +
                             f" | {'–' if mem is None else f'{mem:.1f}'} | {_ms(p['e2e_mean_ms'])} | "
                             f"{ref.get('containers', '–')} | {_ms(ref.get('e2e_mean_ms'))} | "
                             f"{_ms(ref.get('e2e_p98_ms'))} | "
                             f"{'–' if ref.get('mem_mb') is None else ref['mem_mb']} |")
        lines += ["", "FaaSBatch's e2e P98 against each baseline (negative: FaaSBatch lower), simulated and the "
                  "artifact's:", "", "| di s | vs vanilla | art. | vs kraken | art. | vs sfs | art. |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        ref_pts = {k: {"e2e_p98_ms": v["e2e_p98_ms"]} for k, v in REFERENCE.items()}
        for di in intervals:
            cells = []
            for other in ("vanilla", "kraken", "sfs"):
                cells += [_pct(_reduction(by, kind, di, other)), _pct(_reduction(ref_pts, kind, di, other))]
            lines.append(f"| {di:g} | " + " | ".join(cells) + " |")
        lines.append("")
    if live_part is None:
        lines += ["## Live", "", "Not run (`--no-live`).", ""]
        return "\n".join(lines)
    rows = live_part["rows"]
    within = sum(r["within"] for r in rows)
    lines += ["## Live against the simulator", "",
              f"Reduced traces of the reference's shape replayed through `tailgate faas serve --s3 local` at "
              f"di = {live_part['interval_s']:g} s (open loop, `tailgate faas load`), and the simulator on the same "
              f"trace with this machine's profile (`profile.json` beside this file) and {live_part['cores']} cores. "
              f"Within {WITHIN:.0%} at both p50 and p98: {within} of {len(rows)} points.", "",
              "| kind | strategy | ok | sandboxes live / sim | e2e p50 live | sim | diff | e2e p98 live | sim | diff "
              "| within 15 % |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['strategy']} | {r['ok']} of {r['invocations']} | {r['live_sandboxes']} / "
                     f"{r['sim_sandboxes']} | {_ms(r['live_e2e_p50_ms'])} | {_ms(r['sim_e2e_p50_ms'])} | "
                     f"{_pct(r['diff_p50'])} | {_ms(r['live_e2e_p98_ms'])} | {_ms(r['sim_e2e_p98_ms'])} | "
                     f"{_pct(r['diff_p98'])} | {'yes' if r['within'] else 'no'} |")
    lines += ["", "p98 of each component, live / simulated (ms):", "",
              "| kind | strategy | schedule | cold start | queue | exec |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['strategy']} | " + " | ".join(
            f"{_ms(r[f'live_{c}_p98_ms'])} / {_ms(r[f'sim_{c}_p98_ms'])}"
            for c in ("schedule", "cold_start", "queue", "exec")) + " |")
    gaps = []
    for r in rows:
        if r["within"]:
            continue
        comp = max(("schedule", "cold_start", "queue", "exec"),
                   key=lambda c: abs((r[f"sim_{c}_p98_ms"] or 0.0) - (r[f"live_{c}_p98_ms"] or 0.0)))
        gaps.append(f"{r['kind']} {r['strategy']}: {comp.replace('_', ' ')} ({_ms(r[f'live_{comp}_p98_ms'])} ms live, "
                    f"{_ms(r[f'sim_{comp}_p98_ms'])} ms simulated)")
    if gaps:
        lines += ["", "Where the points outside the bound differ most (p98 of a component): " + "; ".join(gaps) + "."]
    lines.append("")
    return "\n".join(lines)


def run_report(out_dir: Path, with_live: bool = True, quick: bool = False, command: str = "tailgate faas report",
               say: Callable[[str], None] | None = None) -> Path:
    """Run the report's parts and write ``faasbatch.md`` and ``faasbatch/`` into ``out_dir``."""
    say = say or (lambda text: None)
    ran = provenance()
    data = out_dir / "faasbatch"
    data.mkdir(parents=True, exist_ok=True)
    say("simulating the paper's experiment")
    sim_points = simulated(quick)
    (data / "simulated.json").write_text(json.dumps(sim_points, indent=1) + "\n")
    live_part = live(data, quick, say) if with_live else None
    if live_part is not None:
        (data / "profile.json").write_text(json.dumps(live_part["profile"], indent=1) + "\n")
        (data / "live.json").write_text(json.dumps(live_part["rows"], indent=1) + "\n")
    (data / "provenance.json").write_text(json.dumps({**ran, "command": command}, indent=1) + "\n")
    md = out_dir / "faasbatch.md"
    md.write_text(markdown(sim_points, live_part, ran, command))
    return md
