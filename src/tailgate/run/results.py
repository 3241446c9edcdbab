"""The results directory of a run: what ran, on what, and what came out.

Manual
------
Every ``tailgate run`` leaves one directory (``--out DIR``, default
``results/<script stem>-<YYYYmmdd-HHMMSS>``) that a person and a program can both read:

``config.json``
    the script path and its arguments, clock, burst and limits, tailgate/python/numpy/numba
    versions, the machine (platform, CPU model, CPU count), and each module's class, gates,
    modeled cost and ``config()``; workers and their tasks. Written when the run starts.
``counters.csv``
    ``module,class,counter,value`` — one row per module per counter. The long format stays valid
    whatever counters the modules have.
``plot.png`` (``tailgate run --plot``)
    per module its time share and mean batch size, per Measure its delay percentiles
    (:func:`write_plot`).
``summary.json``
    packets (that entered from sources), clock time (ns), wall seconds, ``rate_pps`` on the run's
    clock, ``task_packets`` (packets of every task round: one that passes a queue counts twice),
    why the run stopped,
    every module's counters, every measuring module's ``summary()`` and warnings (such as a
    PcapSource's capture error, or a source that sent under nine tenths of the packets its
    ``rate_pps`` offered); for a Batchy script, ``batchy``: the controller's summary (flow
    rates and delays, means of the rounds ``mean_of_rounds`` names). Packets, rate and counters
    cover the whole run (a Batchy run's warm-up and rounds). Written at the end — also when the
    run stopped on an error or an interrupt after it started, with ``error`` saying what happened.

Files are written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

import tailgate

if TYPE_CHECKING:  # pragma: no cover
    from tailgate.dataplane.graph import Pipeline
    from tailgate.dataplane.module import Module
    from tailgate.dataplane.runtime import Runtime


def default_out_dir(script: str | os.PathLike, base: str | os.PathLike = "results") -> Path:
    """``results/<stem>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3`` ... if that already exists."""
    stem = Path(script).stem or "run"
    first = Path(base) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, k = first, 2
    while out.exists():
        out = first.with_name(f"{first.name}-{k}")
        k += 1
    return out


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model", "Processor"):
                    if value.strip():
                        return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "node": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
    }


def versions() -> dict[str, str]:
    out = {"tailgate": tailgate.__version__, "python": platform.python_version(), "numpy": np.__version__}
    try:
        import numba

        out["numba"] = numba.__version__
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    return out


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays become Python ones, NaN/inf become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    _write_atomic(Path(path), json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")


def module_config(pipeline: "Pipeline") -> list[dict[str, Any]]:
    out = []
    for m in pipeline:
        out.append(
            {
                "name": m.name,
                "class": type(m).__name__,
                "igates": m.n_igates,
                "ogates": m.n_ogates,
                "task_root": bool(m.task_root),
                "cost_ns": list(m.cost_ns),
                "config": m.config(),
                "connections": [
                    {"ogate": g, "to": dst.name, "igate": ig} for g, dst, ig in m.connected_ogates()
                ],
            }
        )
    return out


def workers_config(runtime: "Runtime") -> list[dict[str, Any]]:
    return [
        {
            "name": w.name,
            "policy": w.policy,
            "resource": w.resource,
            "tasks": [{"root": t.name, "share": t.share, "modules": [m.name for m in t.modules]} for t in w.tasks],
        }
        for w in runtime.workers
    ]


def write_config(
    out_dir: Path,
    *,
    script: str,
    args: dict[str, str],
    clock: str,
    burst: int,
    limits: dict[str, Any],
    pipeline: "Pipeline",
    runtime: "Runtime | None" = None,
) -> Path:
    cfg = {
        "script": os.path.abspath(script),
        "args": dict(args),
        "clock": clock,
        "burst": burst,
        "limits": limits,
        "command": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "machine": machine_info(),
        "modules": module_config(pipeline),
    }
    if runtime is not None:
        cfg["workers"] = workers_config(runtime)
    path = Path(out_dir) / "config.json"
    write_json(path, cfg)
    return path


def dataflow_order(pipeline: Iterable["Module"]) -> list["Module"]:
    """The modules in data-flow order: by longest path from a source (sources first), ties in
    creation order.

    A cycle can only pass through a queue (a task root; the graph check refuses any other), so when
    only cycles are left, the earliest-created queue among them is released next, at one step
    below the deepest module already placed that feeds it.
    """
    mods = list(pipeline)
    index = {id(m): i for i, m in enumerate(mods)}
    succ: dict[int, list["Module"]] = {id(m): [] for m in mods}
    indeg = {id(m): 0 for m in mods}
    for m in mods:
        for _, dst, _ in m.connected_ogates():
            if id(dst) in indeg:
                succ[id(m)].append(dst)
                indeg[id(dst)] += 1
    depth = {id(m): 0 for m in mods}
    placed: set[int] = set()
    ready = [m for m in mods if indeg[id(m)] == 0]
    while len(placed) < len(mods):
        if not ready:  # only cycles through queues are left: release the earliest queue among them
            rest = [m for m in mods if id(m) not in placed]
            ready = [next((m for m in rest if m.task_root), rest[0])]
        m = ready.pop()
        if id(m) in placed:
            continue
        placed.add(id(m))
        for dst in succ[id(m)]:
            if id(dst) in placed:  # a queue released early keeps its depth
                continue
            depth[id(dst)] = max(depth[id(dst)], depth[id(m)] + 1)
            indeg[id(dst)] -= 1
            if indeg[id(dst)] == 0 and id(dst) not in placed:
                ready.append(dst)
    return sorted(mods, key=lambda m: (depth[id(m)], index[id(m)]))


def counter_rows(pipeline: "Pipeline") -> list[tuple[str, str, str, Any]]:
    rows = []
    for m in pipeline:
        cls = type(m).__name__
        for name, value in m.counters().items():
            rows.append((m.name, cls, name, jsonable(value)))
    return rows


def write_counters(out_dir: Path, pipeline: "Pipeline") -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("module", "class", "counter", "value"))
    for row in counter_rows(pipeline):
        w.writerow(row)
    path = Path(out_dir) / "counters.csv"
    _write_atomic(path, buf.getvalue())
    return path


def warnings_of(pipeline: "Pipeline") -> list[str]:
    """Problems modules report without stopping the run (a capture error, pool exhaustion)."""
    out = []
    for m in pipeline:
        err = getattr(m, "error", None)
        if err:
            out.append(f"{m.label}: {err}")
        out.extend(f"{m.label}: {w}" for w in getattr(m, "capture_warnings", ()))
        if "pool_exhausted" in m.drop_reasons:
            n = int(m.counters().get("drops.pool_exhausted", 0))
            if n:
                out.append(f"{m.label}: {n} packets not generated: the packet pool was exhausted")
    return out


#: a source whose sent packets fall below this share of those due at its offered rate gets a warning
BEHIND_SHARE = 0.9


def rate_warnings(runtime: "Runtime") -> list[str]:
    """One warning per source that fell behind its offered rate (``rate_pps``) by more than a
    tenth and by more than one burst: the pipeline did not keep up, so packets waited at the
    source, and their delays (measured from the scheduled arrival) include that wait."""
    end_ns = int(runtime.stopped_ns) if runtime.steps else int(runtime.clock.now_ns())
    out = []
    for m in runtime.roots:
        fn = getattr(m, "offered_and_sent", None)
        if not callable(fn):
            continue
        due, sent, span_ns = fn(end_ns)
        if due <= 0 or span_ns <= 0 or sent >= BEHIND_SHARE * due or due - sent <= runtime.burst:
            continue
        offered_mpps = m.rate_pps / 1e6
        sent_mpps = sent * 1e3 / span_ns
        out.append(
            f"{m.label}: fell behind its offered rate: {offered_mpps:.3f} Mpps offered, {sent_mpps:.3f} Mpps sent "
            f"({sent:,} of {due:,} packets due); the pipeline did not keep up, and measured delays include the wait"
        )
    return out


def source_packets(runtime: "Runtime") -> int:
    """Packets that entered the pipeline: produced by sources (task roots without input gates).

    ``runtime.packets`` counts every task round's packets, so a packet that passes a queue is
    counted again there.
    """
    return int(sum(int(r.packets_in) for r in runtime.roots if r.n_igates == 0))


def summarize(
    runtime: "Runtime | None",
    pipeline: "Pipeline",
    *,
    stop_reason: str | None = None,
    error: str | None = None,
    runs: int = 0,
) -> dict[str, Any]:
    """The run summary (what ``summary.json`` holds and the script's ``run()`` returns)."""
    if runtime is not None:
        clock_ns = int(runtime.stopped_ns - runtime.started_ns) if runtime.steps else 0
        packets = source_packets(runtime)
        wall_s = float(runtime.wall_s)
        reason = stop_reason or runtime.stop_reason
        clock = runtime.clock.name
    else:
        clock_ns, packets, wall_s, reason, clock = 0, 0, 0.0, stop_reason or "not started", None
    s: dict[str, Any] = {
        "packets": packets,
        "clock": clock,
        "clock_ns": clock_ns,
        "wall_s": wall_s,
        "rate_pps": packets * 1e9 / clock_ns if clock_ns > 0 else None,
        "task_packets": int(runtime.packets) if runtime is not None else 0,
        "stop_reason": reason,
        "runs": runs,
    }
    if error:
        s["error"] = error
    s["modules"] = {m.name: {"class": type(m).__name__, "counters": m.counters()} for m in pipeline}
    measures = {}
    for m in pipeline:
        fn = getattr(m, "summary", None)
        if callable(fn):
            try:
                measures[m.name] = fn()
            except Exception as e:  # a broken summary must not lose the rest of the results
                measures[m.name] = {"error": f"{type(e).__name__}: {e}"}
    s["measures"] = measures
    input_warnings = warnings_of(pipeline)
    s["warnings"] = input_warnings + (rate_warnings(runtime) if runtime is not None else [])
    # damaged input (a capture cut short, an exhausted pool) makes `tailgate run` exit 1; a source
    # that fell behind is a fact about the machine, reported but not an error
    s["damaged_input"] = bool(input_warnings)
    return jsonable(s)


def write_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    path = Path(out_dir) / "summary.json"
    write_json(path, summary)
    return path


def write_results(out_dir: Path, pipeline: "Pipeline", summary: dict[str, Any]) -> None:
    """counters.csv and summary.json; the summary goes first, as it is the one a reader needs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_summary(out_dir, summary)
    write_counters(out_dir, pipeline)


#: the picture ``tailgate run --plot`` leaves in the results directory
PLOT_NAME = "plot.png"


def write_plot(out_dir: Path, pipeline: "Pipeline", summary: dict[str, Any]) -> Path:
    """``plot.png``: per module (data-flow order) its share of the modules' time (%) and its mean
    batch size (packets per batch in), and per Measure its delay percentiles (p50 ... p99.9, µs).

    Raises ``ImportError`` without matplotlib and ``OSError`` when the file cannot be written.
    """
    import matplotlib  # heavy: imported only when a plot is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy, as above

    mods = dataflow_order(pipeline)
    names = [m.name for m in mods]
    counters = [m.counters() for m in mods]
    total_ns = sum(int(c.get("time_ns", 0)) for c in counters) or 1
    share_pct = [100.0 * int(c.get("time_ns", 0)) / total_ns for c in counters]
    batch_packets = [c["packets_in"] / c["batches_in"] if c.get("batches_in") else 0.0 for c in counters]
    measures = {k: v["all"] for k, v in (summary.get("measures") or {}).items()
                if isinstance(v, dict) and isinstance(v.get("all"), dict)}
    pcts = (("p50", "p50_ns"), ("p95", "p95_ns"), ("p99", "p99_ns"), ("p99.9", "p999_ns"))

    height_in = max(3.0, 0.28 * len(names) + 1.2)
    fig, axes = plt.subplots(1, 3, figsize=(15, height_in), constrained_layout=True)
    y = np.arange(len(names))
    for ax, values, title in (
        (axes[0], share_pct, f"time share, % ({summary.get('clock') or '?'} clock)"),
        (axes[1], batch_packets, "mean batch size, packets"),
    ):
        ax.barh(y, values, color="tab:blue")
        ax.set_yticks(y, names)
        ax.invert_yaxis()  # the source on top, as the packets flow
        ax.set_title(title, fontsize=10)
    ax = axes[2]
    if measures:
        width = 0.8 / len(measures)
        for i, (name, m) in enumerate(measures.items()):
            us = [(m.get(key) or 0.0) / 1e3 for _, key in pcts]
            ax.bar(np.arange(len(pcts)) + i * width, us, width, label=f"{name} ({m.get('packets', 0):,} packets)")
        ax.set_xticks(np.arange(len(pcts)) + 0.4 - width / 2, [p for p, _ in pcts])
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no Measure in this pipeline", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("delay percentiles per Measure, µs", fontsize=10)
    fig.suptitle(f"{Path(str(summary.get('script', 'run'))).name}: {summary.get('packets', 0):,} packets, "
                 f"stopped: {summary.get('stop_reason')}", fontsize=11)
    path = Path(out_dir) / PLOT_NAME
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    os.replace(tmp, path)
    return path
