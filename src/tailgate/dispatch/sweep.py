"""Load sweeps of the simulator: many (policy, load) points in parallel, then CSV, JSON and plots.

Manual
------
::

    points = sweep(get_workload("disp2"), ["darc", "cfcfs"], n_workers=14,
                   loads=parse_loads("0.05:1.0:0.05"), n_requests=1_000_000, jobs=2)
    write_results("results/sched", points, slowdown_target=10.0)

Each point is :func:`tailgate.dispatch.sim.run_point`: the same seed gives every policy the same
request stream at a load, so the policies are compared on identical arrivals. Points run in
separate processes (``jobs``, default: every core), with a progress bar on the terminal.

:func:`write_results` writes into a directory:

* ``points.csv``: one row per (policy, load): offered and achieved rate, saturation, drops,
  overall latency and slowdown at p50/p99/p99.9, and each type's p99.9 latency;
* ``summary.json``: the configuration, every point's full summary (DARC's reservation table
  included) and, per policy, the highest load sustained under the p99.9-slowdown target
  (:func:`tailgate.dispatch.metrics.max_sustainable_load`);
* ``slowdown.png``: overall p99.9 slowdown vs offered load, one line per policy, log scale,
  the target as a dashed line, saturated points left out (as the reference plots them off
  the chart);
* ``types.png``: per-type p99.9 latency vs offered load, one panel per type.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Sequence

from tailgate.core.errors import ArgError
from tailgate.dispatch.metrics import max_sustainable_load
from tailgate.dispatch.policy import make_policy
from tailgate.dispatch.sim import run_point

MAX_LOAD = 1.5


def parse_loads(spec: str) -> list[float]:
    """``0.8``, ``0.5,0.7,0.9`` or ``LO:HI:STEP`` (inclusive) → loads, each in (0, 1.5]."""
    text = str(spec).strip()
    try:
        if ":" in text:
            parts = [float(x) for x in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            lo, hi, step = parts
            if not step > 0 or hi < lo:
                raise ArgError(f"load range {spec!r}: need LO <= HI and STEP > 0")
            n = int(round((hi - lo) / step)) + 1
            loads = [round(lo + i * step, 10) for i in range(n) if lo + i * step <= hi + 1e-9]
        else:
            loads = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ArgError(f"load {spec!r}: expected a number, a list 'a,b,c' or a range 'LO:HI:STEP'") from None
    if not loads:
        raise ArgError(f"load {spec!r}: no loads given")
    for x in loads:
        if not 0 < x <= MAX_LOAD:
            raise ArgError(f"load {x:g} is outside (0, {MAX_LOAD:g}]")
    return loads


def _point(args: tuple) -> dict:
    workload, policy, n_workers, load, n_requests, seed, overhead_ns, params = args
    return run_point(workload, policy, n_workers, load, n_requests=n_requests, seed=seed,
                     overhead_ns=overhead_ns, **params)


def sweep(workload, policies: Sequence[str], n_workers: int, loads: Sequence[float], n_requests: int = 1_000_000,
          seed: int = 1, overhead_ns: int = 0, params: dict[str, dict] | None = None, jobs: int | None = None,
          on_point: Callable[[dict], None] | None = None) -> list[dict]:
    """Run every (policy, load) point; returns the summaries sorted by policy order, then load."""

    params = params or {}
    for pol in policies:
        make_policy(pol, workload, n_workers, **params.get(pol, {}))  # refuse bad input before forking
    tasks = [(workload, pol, n_workers, load, n_requests, seed, overhead_ns, params.get(pol, {}))
             for pol in policies for load in loads]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    results: list[dict] = []
    if jobs == 1:
        for t in tasks:
            results.append(_point(t))
            if on_point:
                on_point(results[-1])
    else:
        # spawn: the parent may hold a progress-bar thread, which fork would copy mid-flight.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_point, t) for t in tasks]
            for f in as_completed(futures):
                results.append(f.result())
                if on_point:
                    on_point(results[-1])
    order = {p: i for i, p in enumerate(policies)}
    results.sort(key=lambda s: (order[s["policy"]], s["load"]))
    return results


def sustainable(points: Sequence[dict], slowdown_target: float) -> dict[str, float | None]:
    """Per policy, the highest load it sustains with p99.9 slowdown ≤ ``slowdown_target``."""
    by_policy: dict[str, list] = {}
    for s in points:
        by_policy.setdefault(s["policy"], []).append((s["load"], s))
    return {p: max_sustainable_load(pts, slowdown_target) for p, pts in by_policy.items()}


CSV_COLUMNS = ["policy", "load", "offered_rps", "achieved_rps", "saturated", "dropped",
               "latency_p50_ns", "latency_p99_ns", "latency_p999_ns",
               "slowdown_p50", "slowdown_p99", "slowdown_p999"]


def write_results(out_dir, points: Sequence[dict], slowdown_target: float, config: dict | None = None) -> dict:
    """Write points.csv, summary.json, slowdown.png and types.png; returns the JSON summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    type_names = list(points[0]["types"]) if points else []
    with open(out / "points.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS + [f"{t}_latency_p999_ns" for t in type_names])
        for s in points:
            lat, sd = s["latency_ns"], s["slowdown"]
            w.writerow([s["policy"], s["load"], round(s["offered_rps"], 3), _r(s["achieved_rps"]), int(s["saturated"]),
                        s["dropped"], lat["p50"], lat["p99"], lat["p99.9"], sd["p50"], sd["p99"], sd["p99.9"]]
                       + [s["types"][t]["latency_ns"]["p99.9"] for t in type_names])
    summary = {"config": config or {}, "slowdown_target": slowdown_target,
               "max_sustainable_load": sustainable(points, slowdown_target), "points": list(points)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(points, out, slowdown_target)
    return summary


def _r(x):
    return None if x is None else round(x, 3)


def plot(points: Sequence[dict], out: Path, slowdown_target: float) -> None:
    """The two figures of a sweep (see the module manual)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(dict.fromkeys(s["policy"] for s in points))
    type_names = list(points[0]["types"]) if points else []
    title = f"{points[0]['workload']}, {points[0]['n_workers']} workers" if points else ""

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for pol in policies:
        pts = [s for s in points if s["policy"] == pol and not s["saturated"] and s["slowdown"]["p99.9"]]
        ax.plot([s["load"] for s in pts], [s["slowdown"]["p99.9"] for s in pts], marker="o", ms=3, label=pol)
    ax.axhline(slowdown_target, color="grey", ls="--", lw=1, label=f"target {slowdown_target:g}")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (fraction of worker capacity)")
    ax.set_ylabel("p99.9 slowdown")
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "slowdown.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, max(1, len(type_names)), figsize=(4.2 * max(1, len(type_names)), 3.8), squeeze=False)
    for ax, name in zip(axes[0], type_names):
        for pol in policies:
            pts = [s for s in points if s["policy"] == pol and not s["saturated"]
                   and s["types"][name]["latency_ns"]["p99.9"] is not None]
            ax.plot([s["load"] for s in pts], [s["types"][name]["latency_ns"]["p99.9"] / 1e3 for s in pts],
                    marker="o", ms=3, label=pol)
        ax.set_yscale("log")
        ax.set_title(f"{name} ({points[0]['types'][name]['nominal_ns'] / 1e3:g} µs)")
        ax.set_xlabel("offered load")
        ax.set_ylabel("p99.9 latency (µs)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "types.png", dpi=110)
    plt.close(fig)
