"""What a Batchy run leaves: the per-round CSV, the plot, the summary, when it settled.

Manual
------
The control loop (:mod:`tailgate.batchy.loop`) keeps one row per control round, a dict of
columns in the reference sheet's §14 names: ``t`` (the round), per controlled module
``NAME:control`` (its trigger), ``:x_v``, ``:R_v`` (batches and packets per second), ``:b_v``,
``:b_in``; per flow ``NAME:delay`` (its delay percentile, ns), ``:delay_estimate``, ``:pps``;
per task ``NAME:task_pps``, ``:t_0``, ``:t_0_estimate``, ``:b_0``, ``:cyc_per_packet``; then
``sum_fpps`` and ``ctrlr_deadtime`` (s; 0 under the virtual clock).

- :func:`dump_csv` writes the rows comma separated, every column any row has, in order of first
  appearance; floats with 6 significant digits, ``nan`` as ``nan``, a missing cell empty;
- :func:`plot` draws three panels against the round: the triggers, each flow's delay against its
  estimate and objective (log scale), the rates; with more than :data:`PLOT_EACH_MAX` flows they
  are drawn as one band (min–max, median) and only the worst few are named (:func:`plot_figure`);
- :func:`summary` gives the means over the last rounds (default: the second half; which ones:
  ``mean_of_rounds``, first and last) per flow and in total, late rounds (more than 5 % over the
  objective), the last triggers, and
- :func:`converged_round`: the round from which no trigger moves by more than
  :data:`CONVERGED_TOLERANCE` packets to the end; :func:`rate_settled_round`: the round from which
  the total rate stays within :data:`RATE_SETTLED_TOLERANCE` of its second-half mean.

Example::

    dump_csv(rows, Path("out/stats.csv"))
    summary(rows, flows, controlled=["nf1"], controller_name="projgrad", infeasible={})["sum_fpps"]
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

log = logging.getLogger("tailgate.batchy")

#: a run has converged from the round after which no trigger moves more than this (packets: 10 %
#: of the largest trigger Batchy sets, tailgate.packet.pool.DEFAULT_BURST)
CONVERGED_TOLERANCE = 3
#: the total rate counts as settled within this fraction of its second-half mean (wall-clock
#: rates wander by a few %)
RATE_SETTLED_TOLERANCE = 0.05
#: a flow-round is late when the flow's delay is more than this factor over its objective
LATE_FACTOR = 1.05


def dump_csv(rows: list[dict], out: Path) -> Path:
    """One row per control round, comma separated; returns ``out``."""
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(",".join(cols) + "\n")
        for r in rows:
            fh.write(",".join(_fmt(r.get(c)) for c in cols) + "\n")
    log.info('dump: dumping statistics to CSV file: "%s"', out)
    return out


#: up to this many flows (or controlled modules) a plot draws and names each one; above it, it
#: draws them as one grey band (min–max over them, median line) and names only the worst few
PLOT_EACH_MAX = 8
#: how many of the worst flows a grouped plot names (by their highest delay/objective ratio)
PLOT_WORST = 3


def plot(rows: list[dict], flows: list, controlled: list[str], controller_name: str, out: Path) -> Path:
    """Three panels against the round: triggers, flow delay vs estimate vs objective, rates;
    written to ``out`` (PNG). See :func:`plot_figure` for what a panel shows with many flows."""
    import matplotlib  # deferred: matplotlib is heavy and only a plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_figure(rows, flows, controlled, controller_name)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    log.info('plot: plotting statistics to file: "%s"', out)
    return out


def worst_flows(rows: list[dict], flows: list, n: int = PLOT_WORST) -> list:
    """The ``n`` flows with the highest delay/objective ratio in any round, worst first (flows
    with no delay reading last)."""

    def ratio(f) -> float:
        ds = [r.get(f"{f.name}:delay", math.nan) for r in rows]
        ds = [d for d in ds if d == d]
        return max(ds) / f.delay_slo_ns if ds and f.delay_slo_ns > 0 else -math.inf

    return sorted(flows, key=ratio, reverse=True)[:n]


def plot_figure(rows: list[dict], flows: list, controlled: list[str], controller_name: str):
    """The figure of :func:`plot` (a matplotlib Figure; the caller closes it).

    Up to :data:`PLOT_EACH_MAX` flows, every flow has its own colour and legend entry (delay,
    estimate dotted, objective dashed; rate). With more (L2L3 with 64 next hops has 64 flows),
    the flows are one group: each a thin grey line, their min–max over the flows a shaded band
    and their median a line, and only the :data:`PLOT_WORST` worst flows (:func:`worst_flows`)
    drawn in colour and named, with their objectives; the triggers panel likewise groups more
    than :data:`PLOT_EACH_MAX` controlled modules. No legend has more than about ten entries."""
    import matplotlib  # deferred: matplotlib is heavy and only a plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rounds = [r["t"] for r in rows]
    fig, ax = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    if len(controlled) <= PLOT_EACH_MAX:
        for name in controlled:
            ax[0].step(rounds, [r.get(f"{name}:control", 0) for r in rows], where="post", label=name)
    else:
        q = np.array([[r.get(f"{name}:control", 0) for r in rows] for name in controlled], dtype=float)
        _band(ax[0], rounds, q, f"{len(controlled)} modules", step=True)
    ax[0].set_ylabel("trigger (packets)")
    ax[0].set_title(f"controller {controller_name}")
    if len(flows) <= PLOT_EACH_MAX:
        named = list(flows)
    else:
        named = worst_flows(rows, flows)
        d = np.array([[r.get(f"{f.name}:delay", math.nan) / 1e3 for r in rows] for f in flows], dtype=float)
        pps = np.array([[r.get(f"{f.name}:pps", 0) / 1e6 for r in rows] for f in flows], dtype=float)
        _band(ax[1], rounds, d, f"{len(flows)} flows")
        _band(ax[2], rounds, pps, f"{len(flows)} flows")
    for k, f in enumerate(named):
        c = f"C{k % 10}"
        tag = f" (worst {k + 1})" if len(named) < len(flows) else ""
        ax[1].plot(rounds, [r.get(f"{f.name}:delay", math.nan) / 1e3 for r in rows], color=c,
                   label=f"{f.name}{tag} p{f.percentile:g}")
        ax[1].plot(rounds, [r.get(f"{f.name}:delay_estimate", math.nan) / 1e3 for r in rows], color=c,
                   ls=":", label=f"{f.name} estimate")
        ax[1].axhline(f.delay_slo_ns / 1e3, color=c, ls="--", lw=0.8)
        ax[2].plot(rounds, [r.get(f"{f.name}:pps", 0) / 1e6 for r in rows], color=c, label=f"{f.name}{tag}")
    ax[2].plot(rounds, [r["sum_fpps"] / 1e6 for r in rows], color="k", lw=2, label="total")
    ax[1].set_ylabel("delay (µs; dashed: objective)")
    ax[1].set_yscale("log")
    ax[2].set_ylabel("rate (Mpps)")
    ax[2].set_xlabel("control round")
    for a in ax:
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7, loc="best")
        a.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _band(ax, rounds: list, values, what: str, step: bool = False) -> None:
    """Each row of ``values`` (one per flow or module, one column per round) as a thin grey
    line; their min–max as a shaded band and their median as a line, two legend entries."""
    import numpy as np

    def draw(y, **kw):
        return ax.step(rounds, y, where="post", **kw) if step else ax.plot(rounds, y, **kw)

    for y in values:
        draw(y, color="0.75", lw=0.4)
    with np.errstate(all="ignore"):
        ok = ~np.all(np.isnan(values), axis=0)
        lo = np.where(ok, np.nanmin(np.where(ok, values, 0.0), axis=0), np.nan)
        hi = np.where(ok, np.nanmax(np.where(ok, values, 0.0), axis=0), np.nan)
        med = np.where(ok, np.nanmedian(np.where(ok, values, 0.0), axis=0), np.nan)
    ax.fill_between(rounds, lo, hi, color="0.6", alpha=0.3, step="post" if step else None,
                    label=f"{what}: min–max")
    draw(med, color="0.3", lw=1.2, label=f"{what}: median")


def summary(rows: list[dict], flows: list, *, controlled: list[str], controller_name: str, infeasible: dict,
            last: int | None = None) -> dict:
    """Means over the last ``last`` rounds (default: the second half) per flow and in total."""
    if not rows:
        return {}
    n = last or max(1, len(rows) // 2)
    tail = rows[-n:]
    out = {"controller": controller_name, "rounds": len(rows), "mean_of_rounds": [tail[0]["t"], tail[-1]["t"]],
           "sum_fpps": _mean(r["sum_fpps"] for r in tail), "flows": {}, "infeasible": dict(infeasible)}
    for f in flows:
        ds = [r.get(f"{f.name}:delay", math.nan) for r in tail]
        out["flows"][f.name] = {
            "delay_slo_ns": f.delay_slo_ns, "percentile": f.percentile,
            "delay_ns": _mean(ds), "delay_max_ns": max((d for d in ds if d == d), default=math.nan),
            "pps": _mean(r.get(f"{f.name}:pps", 0) for r in tail),
            "violations": sum(1 for d in ds if d == d and d > f.delay_slo_ns * LATE_FACTOR),
        }
    out["triggers"] = {n: rows[-1].get(f"{n}:control") for n in controlled}
    out["converged_round"] = converged_round(rows, controlled)
    out["rate_settled_round"] = rate_settled_round(rows)
    return out


def rate_settled_round(rows: list[dict], tolerance: float = RATE_SETTLED_TOLERANCE) -> int | None:
    """The round from which the total flow rate stays within ``tolerance`` of its mean over the
    second half of the run, to the end: convergence of what the controller optimizes, where
    :func:`converged_round` asks it of every trigger."""
    if not rows:
        return None
    ref = _mean(r["sum_fpps"] for r in rows[len(rows) // 2:])
    if not ref > 0:
        return None
    last = len(rows)
    for k in range(len(rows) - 1, -1, -1):
        if abs(rows[k]["sum_fpps"] / ref - 1) > tolerance:
            break
        last = k
    return rows[last]["t"] if last < len(rows) else None


def converged_round(rows: list[dict], controlled: list[str], tolerance: int = CONVERGED_TOLERANCE) -> int | None:
    """The round from which no trigger of the ``controlled`` modules moved by more than
    ``tolerance`` packets from one round to the next, to the end of the run."""
    if not rows:
        return None
    last = len(rows)
    for k in range(len(rows) - 1, 0, -1):
        a, b = rows[k - 1], rows[k]
        if any(abs(a.get(f"{n}:control", 0) - b.get(f"{n}:control", 0)) > tolerance for n in controlled):
            break
        last = k
    return rows[last - 1]["t"]


def _mean(xs) -> float:
    v = [x for x in xs if x == x]
    return sum(v) / len(v) if v else math.nan


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.6g}"
    return str(v)
