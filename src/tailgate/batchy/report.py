"""The Batchy reproduction report: ``tailgate batchy report`` writes ``docs/batchy.md``.

Manual
------
Runs every example under ``examples/batchy/`` with the controllers ``null``, ``max``, ``onoff``
and ``projgrad``, under the virtual clock (the reference sheet's module costs, where it has them)
and under the wall clock of this machine, each through the same path as ``tailgate run``
(:class:`tailgate.script.ScriptRun`). Per pipeline it tabulates the throughput (the mean total
flow rate over the second half of the rounds) and its ratio to ``null`` of the same clock, each
flow's delay percentile against its objective (the worst ratio over the flows, and how many
rounds after convergence exceeded the objective by more than 5 %), the round from which the
triggers stopped moving, and any flow the controller reported infeasible with the best delay it
could reach. Each run's CSV (``dump``) and PNG (``plot``) go to ``docs/batchy/<case>/``.

``quick=True`` runs fewer rounds and only the virtual clock (for tests).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

CONTROLLERS = ("null", "max", "onoff", "projgrad")

#: (example, its arguments): the objectives are the reference's evaluation values where it has
#: them (§13), scaled to this pipeline's costs otherwise.
CASES: list[tuple[str, dict]] = [
    ("simple_pipeline", {"delay_slo1": 15_000}),
    ("dag_test", {}),
    ("simpletree", {"leaves": 16}),
    ("rc_static", {}),
    ("l2l3", {"branches": 1, "nhops": 64, "acl": True, "nat": True, "max_delay": 477_653}),
    ("l3vrf", {"vlans": 2, "nhops": 4, "max_delay": 72_840}),
    ("mgw", {"users": 4, "bearers": 4, "delay_slo": 193_342}),
]


def _examples_dir() -> Path:
    here = Path(__file__).resolve()
    for p in (here.parents[3] / "examples" / "batchy", Path.cwd() / "examples" / "batchy"):
        if p.is_dir():
            return p
    raise FileNotFoundError("examples/batchy not found (run from the repository)")


def run_case(example: str, args: dict, controller: str, clock: str, out_dir: Path, rounds: int,
             period_s: float) -> dict:
    """One example with one controller on one clock; returns Batchy's summary plus timing."""
    from tailgate.script import ScriptRun

    a = dict(args, controller=controller, rounds=rounds, period=period_s)
    words = [f"{k}={v}" for k, v in a.items()]
    sr = ScriptRun(_examples_dir() / f"{example}.py", words, clock=clock, out_dir=out_dir)
    w0 = time.perf_counter()
    sr.execute()
    s = sr.batchy.summary()
    s["wall_s"] = time.perf_counter() - w0
    return s


def build_report(out_md: str | Path = "docs/batchy.md", quick: bool = False, clocks=("virtual", "wall"),
                 cases=None, progress=None) -> dict:
    out_md = Path(out_md)
    base = out_md.parent / "batchy"
    base.mkdir(parents=True, exist_ok=True)
    logging.getLogger("tailgate.batchy").setLevel(logging.WARNING)
    clocks = ("virtual",) if quick else tuple(clocks)
    results: dict = {}
    todo = [(c, a, k, ck) for c, a in (cases or CASES) for ck in clocks for k in CONTROLLERS]
    for i, (case, args, ctrl, clk) in enumerate(todo):
        rounds = 12 if quick else 40
        period = 0.005 if clk == "virtual" else 0.02
        if progress:
            progress(i, len(todo), f"{case} {clk} {ctrl}")
        try:
            s = run_case(case, args, ctrl, clk, base / case / f"{clk}-{ctrl}", rounds, period)
        except Exception as e:       # one broken case must not lose the others' results
            s = {"error": f"{type(e).__name__}: {e}"}
        results.setdefault(case, {}).setdefault(clk, {})[ctrl] = s
    (base / "results.json").write_text(json.dumps(results, indent=1, default=str))
    out_md.write_text(_markdown(results, clocks, quick))
    return results


def _worst(s: dict) -> tuple[float, str]:
    worst, name = -math.inf, ""
    for f, v in s.get("flows", {}).items():
        d = v.get("delay_ns", math.nan)
        if d == d and d / v["delay_slo_ns"] > worst:
            worst, name = d / v["delay_slo_ns"], f
    return worst, name


def _markdown(results: dict, clocks, quick: bool) -> str:
    L = ["# Batchy in tailgate: reproduction report", "",
         "Produced by `tailgate batchy report` from the scripts in `examples/batchy/`. Every pipeline runs "
         "with the `null` (never buffer), `max` (always 32), `onoff` and `projgrad` controllers. "
         "Throughput is the mean total flow rate over the second half of the control rounds and its ratio "
         "to `null` on the same clock; *delay/SLO* is the worst flow's mean delay percentile (p95) over "
         "those rounds divided by its objective; *late rounds* counts rounds in that half where some flow "
         "was more than 5 % over its objective; *settled* is the round from which no trigger moved by "
         "more than one packet.", ""]
    if quick:
        L += ["(Quick run: fewer rounds, virtual clock only.)", ""]
    for case, by_clock in results.items():
        L += [f"## {case}", ""]
        for clk in clocks:
            rows = by_clock.get(clk, {})
            if not rows:
                continue
            null = rows.get("null", {}).get("sum_fpps")
            L += [f"**{clk} clock**", "",
                  "| controller | Mpps | × null | delay/SLO (worst flow) | late rounds | settled | infeasible |",
                  "|---|---:|---:|---:|---:|---:|---|"]
            for ctrl in CONTROLLERS:
                s = rows.get(ctrl)
                if s is None:
                    continue
                if "error" in s:
                    L.append(f"| {ctrl} | – | – | – | – | – | error: {s['error']} |")
                    continue
                w, fname = _worst(s)
                late = sum(v.get("violations", 0) for v in s["flows"].values())
                ratio = s["sum_fpps"] / null if null else math.nan
                inf = ", ".join(f"{f} (best ≈ {b / 1e3:,.1f} µs)" for f, b in s.get("infeasible", {}).items()) or "–"
                L.append(f"| {ctrl} | {s['sum_fpps'] / 1e6:.3f} | {ratio:.2f} | {w:.2f} ({fname}) | {late} | "
                         f"{s.get('converged_round')} | {inf} |")
            png = Path("batchy") / case / f"{clk}-projgrad" / f"{case}.png"
            L += ["", f"![projgrad, {clk} clock]({png.as_posix()})", ""]
    return "\n".join(L) + "\n"
