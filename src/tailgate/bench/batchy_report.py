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
run is made anew (nothing is reused), and the header says so, with the date and machine (also in
``OUT/batchy/provenance.json``).

The virtual clock is deterministic: each run is made once. The wall clock is not: its part (a
probe and the four controllers per pipeline) runs ``wall_runs`` times (default 3), and its tables
give the median and the range (min–max) over the runs of each number; its CSVs and plots are the
last run's. Next to the results, a table sets them beside the reference sheet's figures
(:data:`REFERENCE`, each value with the place in the sheet it comes from; "–" where the sheet
has none).

``quick=True`` runs fewer rounds and only the virtual clock (for tests).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from tailgate.bench.provenance import describe, provenance
from tailgate.bench.spread import spread
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
    less than 0.5 % of the task's time;
  - on the wall clock a buffer's own cost (Python's, per arriving batch, measured at the start
    of each run) counts against what it saves.
- **Where it falls short.** `onoff` cannot buffer L2L3 at all (32 packets per next hop do not
  fit the budget at once). On simple_pipeline and dag_test the tight objective leaves `projgrad`
  little to gain: the reference's rule q ≥ b_in + 4 makes the smallest useful trigger cost more
  than the budget, and on the wall clock a buffer there costs more than it saves.
"""

#: the wall-clock paragraph of the notes; its numbers are filled in from the results
#: (:func:`wall_notes`), none is written here
WALL_NOTES = """- **Wall clock (this machine, Python; {runs}).** Each module call costs microseconds of Python
  and numpy (see `tailgate profile`), and so do the sources, queues and measurement modules that
  the model counts as free; the objectives are scaled by how much slower the null run is here. A
  buffer's flush timeout is the tightest objective of its flows. The pipeline's clock stands
  still while the controller works (Batchy's controller has a core of its own; without the pause,
  every packet in a queue or buffer would age by a control round). Python's cyclic garbage
  collector is kept off what was built before the first round, and this report's progress bar
  redraws between runs only (a redraw takes the interpreter from the pipeline being measured).
  The rate wanders by more than 5 % from round to round even under `null` (*rate settled* late
  or "None"), and a late flow-round or a late 4-packet step can come and go between runs: the
  wall tables give each number's median and range over the runs, and the ratios to `null`, not
  the absolute rates, are the result. {robot}{mgw}
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
    terminal and gathered here). A wall-clock result run several times gives a row per run,
    its clock written ``wall (run k/n)``."""

    rows = []
    for case, by_clock in results.items():
        for clk, by_ctrl in by_clock.items():
            for ctrl, s in by_ctrl.items():
                runs = passes(s)
                for k, one in enumerate(runs):
                    label = f"{clk} (run {k + 1}/{len(runs)})" if len(runs) > 1 else clk
                    for f, v in one.get("infeasible_flagged", {}).items():
                        rows.append((case, label, ctrl, f, v["objective_ns"], v["best_ns"], v["rounds"]))
    return rows


def _null_delay(s: dict) -> float:
    """The median over flows of the null controller's delay percentile (ns)."""
    ds = sorted(v["delay_ns"] for v in s.get("flows", {}).values() if v.get("delay_ns", math.nan) == v.get("delay_ns"))
    return ds[len(ds) // 2] if ds else math.nan


def build_report(out_md: str | Path, quick: bool = False, clocks=("virtual", "wall"),
                 cases=None, progress=None, finished=None, wall_runs: int = 3) -> dict:
    """Run every case on every clock with every controller; write the report, plots, CSVs,
    ``results.json`` and ``provenance.json``. On the wall clock the objectives are the virtual
    clock's scaled by how much slower this machine's null run is than the virtual one (the median
    flow's null delay), so that an objective is as tight relative to what the pipeline can do on
    either clock; the wall part runs ``wall_runs`` times (each with its own probe), and each
    wall result keeps every run's summary under ``passes`` (the result itself is the last run's).

    ``progress(i, n, what)`` is called before each run (``i`` from 0), ``finished(line)`` after
    it with its :func:`run_line`. The ``tailgate.batchy`` logger is held at ERROR while the report
    runs (its per-round "infeasible" warnings go to :func:`infeasible_rows` and the report's table
    instead) and restored after."""
    if wall_runs < 1:
        raise ValueError(f"wall_runs must be at least 1, got {wall_runs}")
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
        results = _run_all(base, quick, clocks, cases, progress, finished, wall_runs)
    finally:
        logger.setLevel(level)
    (base / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (base / "provenance.json").write_text(json.dumps(
        {**ran, "clocks": list(clocks), "wall_runs": wall_runs if "wall" in clocks else 0, "reused": None}, indent=1))
    out_md.write_text(_markdown(results, clocks, quick, ran, wall_runs, cases))
    return results


def _run_all(base: Path, quick: bool, clocks, cases, progress, finished, wall_runs: int = 1) -> dict:
    """Every run of the report, in order; returns results[case][clock][controller] = summary
    (on the wall clock the last run's, with every run's under ``passes``)."""
    results: dict = {}
    per_clock = {"virtual": len(CONTROLLERS), "wall": wall_runs * (len(CONTROLLERS) + 1)}   # + the wall probe
    n_runs = len(cases) * sum(per_clock[c] for c in clocks)
    count = [0]
    for case, args in cases:
        virtual_null = virtual_rate = math.nan
        for clk in clocks:
            rounds = 12 if quick else 40
            period = 0.01 if clk == "virtual" else 0.02
            n_pass = wall_runs if clk == "wall" else 1
            passes: dict[str, list] = {}
            for k in range(n_pass):
                tag = f" (run {k + 1}/{n_pass})" if n_pass > 1 else ""
                run_args, scale, rate_scale = dict(args), 1.0, 1.0
                if clk == "wall":
                    run_args, scale, rate_scale = _probe(base, case, args, clk, rounds, period, virtual_null,
                                                         virtual_rate, count, n_runs, tag, progress, finished)
                for ctrl in CONTROLLERS:
                    if progress:
                        progress(count[0], n_runs, f"{case} {clk} {ctrl}{tag}")
                    count[0] += 1
                    try:
                        s = run_case(case, run_args, ctrl, clk, base / case / f"{clk}-{ctrl}", rounds, period)
                    except Exception as e:       # one broken case must not lose the others' results
                        s = {"error": f"{type(e).__name__}: {e}"}
                    s["slo_scale"] = scale
                    s["rate_scale"] = rate_scale
                    passes.setdefault(ctrl, []).append(s)
                    null = passes["null"][k] if len(passes.get("null", [])) > k else None
                    if finished:
                        finished(run_line(count[0], n_runs, f"{case} {clk} {ctrl}{tag}", s, null))
                    if clk == "virtual" and ctrl == "null" and "error" not in s:
                        virtual_null = _null_delay(s)
                        virtual_rate = s["sum_fpps"]
            for ctrl, ss in passes.items():
                last = dict(ss[-1])
                if n_pass > 1:
                    last["passes"] = ss
                results.setdefault(case, {}).setdefault(clk, {})[ctrl] = last
    return results


def _probe(base, case, args, clk, rounds, period, virtual_null, virtual_rate, count, n_runs, tag, progress,
           finished) -> tuple[dict, float, float]:
    """A null run on this machine: how much slower than the model. Returns the arguments for the
    wall runs (objectives, and QoS rates where the case has them, scaled) and both scales."""
    if progress:
        progress(count[0], n_runs, f"{case} {clk} null (probe){tag}")
    count[0] += 1
    probe_args = dict(args)
    scale = rate_scale = 1.0
    try:
        probe = run_case(case, probe_args, "null", clk, base / case / f"{clk}-probe", rounds // 2, period)
        if any(k in RATE_ARGS for k in args):
            # QoS sources at the model's rates would overload this machine (their packets would
            # queue for the whole run); scale them first, then probe the delay again
            rate_scale = min(probe["sum_fpps"] / virtual_rate, 1.0)
            if not rate_scale > 0:       # no virtual run to compare with (nan) or no traffic
                rate_scale = 1.0
            probe_args = {k: (v * rate_scale if k in RATE_ARGS else v) for k, v in args.items()}
            probe = run_case(case, probe_args, "null", clk, base / case / f"{clk}-probe", rounds // 2, period)
        scale = _null_delay(probe) / virtual_null
        if finished:
            finished(f"[{count[0]}/{n_runs}] {case} {clk} null (probe){tag}: done")
    except Exception as e:
        scale = math.nan
        if finished:
            finished(f"[{count[0]}/{n_runs}] {case} {clk} null (probe){tag}: error: {type(e).__name__}: {e}")
    if not scale == scale or scale <= 0:
        scale = 1.0
    return {k: (v * scale if k in SLO_ARGS else v) for k, v in probe_args.items()}, scale, rate_scale


def _worst(s: dict) -> tuple[float, str]:
    worst, name = -math.inf, ""
    for f, v in s.get("flows", {}).items():
        d = v.get("delay_ns", math.nan)
        if d == d and d / v["delay_slo_ns"] > worst:
            worst, name = d / v["delay_slo_ns"], f
    return worst, name


def passes(s: dict | None) -> list[dict]:
    """Every run behind one result: its ``passes`` (the wall clock's repeated runs), else itself."""
    if not s:
        return []
    return s.get("passes") or [s]


def _count(v: float) -> str:
    """A count or a round number; a median of two may be half-way."""
    return f"{v:g}"


def _late(s: dict) -> int:
    return sum(v.get("violations", 0) for v in s.get("flows", {}).values())


def wall_numbers(rows: dict, ctrl: str) -> dict | None:
    """One controller's wall-clock numbers over its runs, each a list with one value per run:
    ``mpps``, ``ratio`` (to the same run's ``null``), ``worst`` (delay/SLO of the worst flow),
    ``worst_flow``, ``late``, ``settled``, ``rate_settled``, ``slo_scale``; None if it has no
    run without an error."""
    runs = passes(rows.get(ctrl))
    nulls = passes(rows.get("null"))
    ok = [(k, s) for k, s in enumerate(runs) if "error" not in s]
    if not ok:
        return None
    out: dict = {k: [] for k in ("mpps", "ratio", "worst", "worst_flow", "late", "settled", "rate_settled",
                                 "slo_scale")}
    for k, s in ok:
        null = nulls[k] if k < len(nulls) and "error" not in nulls[k] else None
        w, name = _worst(s)
        out["mpps"].append(s["sum_fpps"] / 1e6)
        out["ratio"].append(s["sum_fpps"] / null["sum_fpps"] if null and null.get("sum_fpps") else math.nan)
        out["worst"].append(w)
        out["worst_flow"].append(name)
        out["late"].append(_late(s))
        out["settled"].append(s.get("converged_round"))
        out["rate_settled"].append(s.get("rate_settled_round"))
        out["slo_scale"].append(s.get("slo_scale", 1.0))
    out["runs"] = len(ok)
    return out


def _infeasible_over_runs(runs: list[dict]) -> str:
    """Flows declared infeasible in any run: in how many runs, and the best delay reachable."""
    seen: dict[str, list[float]] = {}
    for s in runs:
        for f, b in s.get("infeasible", {}).items():
            seen.setdefault(f, []).append(b / 1e3)
    if not seen:
        return "–"
    return ", ".join(f"{f} ({len(b)}/{len(runs)} runs, best ≈ {spread(b, lambda v: f'{v:,.1f}')} µs)"
                     for f, b in seen.items())


def _summary(results: dict, clocks, wall_runs: int = 1) -> list[str]:
    """One line per pipeline and clock: what projgrad reached and whether max kept the objectives."""
    L = ["## Summary", "",
         "`projgrad` per pipeline and clock: throughput × `null`, late flow-rounds after convergence, the round "
         "its triggers settled, and the worst flow's delay/SLO under `max` (over 1.05: `max` breaks an "
         "objective that `projgrad` holds).", ""]
    if "wall" in clocks and wall_runs > 1:
        L += [f"Wall-clock cells: the median over {wall_runs} runs and, in brackets, the range (min–max) over "
              "them; a single value: every run gave it.", ""]
    L += ["<!-- summary: begin -->",
          "| pipeline | clock | projgrad × null | late | settled | max: worst delay/SLO | infeasible (projgrad) |",
          "|---|---|---:|---:|---:|---:|---|"]
    for case, by_clock in results.items():
        for clk in clocks:
            rows = by_clock.get(clk, {})
            pg, null, mx = rows.get("projgrad"), rows.get("null"), rows.get("max")
            if not pg or "error" in pg or not null or "error" in null:
                continue
            if clk == "wall" and "passes" in pg:
                w = wall_numbers(rows, "projgrad")
                wm = wall_numbers(rows, "max")
                L.append(f"| {case} | {clk} | {spread(w['ratio'])} | {spread(w['late'], _count)} | "
                         f"{spread(w['settled'], _count)} | {spread(wm['worst']) if wm else '–'} | "
                         f"{_infeasible_over_runs(passes(pg))} |")
                continue
            late = _late(pg)
            w_max = f"{_worst(mx)[0]:.2f}" if mx and "error" not in mx else "–"
            inf = ", ".join(pg.get("infeasible", {})) or "–"
            L.append(f"| {case} | {clk} | {pg['sum_fpps'] / null['sum_fpps']:.2f} | {late} | "
                     f"{pg.get('converged_round')} | {w_max} | {inf} |")
    return L + ["<!-- summary: end -->", ""]


#: The reference sheet's figures for each pipeline (/work/shared/reference/batchy.md), each as
#: (value, where in the sheet); None where the sheet has none. ``objective``: the delay
#: objective(s) of the reference's configuration or evaluation (ns); ``gain``: the paper's
#: throughput gain; ``rate``: a throughput the sheet quotes; ``settled``: when the reference's
#: controller stopped moving.
_FIVE_USE_CASES = "§16: on five use cases (likely L2L3, L3VRF, MGW, RC; reported, not confirmed)"
REFERENCE: dict[str, dict[str, tuple]] = {
    "simple_pipeline": {
        "objective": ("15,000 / 100,000", "§12 simple_pipeline: flow1 15 µs by default, flow2 100 µs"),
        "gain": (None, "§16: none quoted for this pipeline"),
        "rate": ("≈ 6.86 Mpps (flow1 SLO 55 µs)", "§16 README example: ≈ 6.86 Mpps by round 40"),
        "settled": ("3", "§16 README example: a KKT point from round 3"),
    },
    "dag_test": {
        "objective": ("25,000 / 30,000", "§12 dag_test: SLOs 25 / 30 µs"),
        "gain": (None, "§16: none quoted"), "rate": (None, "§16: none quoted"), "settled": (None, "–"),
    },
    "simpletree": {
        "objective": (None, "§13 Batchiness: run without an objective"),
        "gain": (None, "§16: none quoted"), "rate": (None, "§16: none quoted"), "settled": (None, "–"),
    },
    "rc_static": {
        "objective": ("35,000", "§13 RC (rc-static): 35 000 ns"),
        "gain": ("2–3× over prior work", _FIVE_USE_CASES),
        "rate": (None, "§16: throughput per use case not confirmed"), "settled": (None, "§16: not confirmed"),
    },
    "l2l3": {
        "objective": ("477,653", "§13 L2L3 + ACL + NAT, 64 next hops: 477 653 ns"),
        "gain": ("2–3× over prior work", _FIVE_USE_CASES),
        "rate": (None, "§16: throughput per use case not confirmed"), "settled": (None, "§16: not confirmed"),
    },
    "l3vrf": {
        "objective": ("72,840", "§13 L3VRF, 2 VLANs × 4 next hops: 72 840 ns"),
        "gain": ("2–3× over prior work", _FIVE_USE_CASES),
        "rate": (None, "§16: throughput per use case not confirmed"), "settled": (None, "§16: not confirmed"),
    },
    "mgw": {
        "objective": ("193,342", "§13 MGW (mgwcomplex, 4 users), 4 bearers: 193 342 ns"),
        "gain": ("2–3× over prior work", _FIVE_USE_CASES),
        "rate": (None, "§16: throughput per use case not confirmed"), "settled": (None, "§16: not confirmed"),
    },
}


def _objectives(args: dict) -> str:
    """The delay objectives (ns) of a case's arguments, as the reference sheet writes them."""
    return " / ".join(f"{args[k]:,.0f}" for k in SLO_ARGS if k in args) or "–"


def reference_table(results: dict, clocks, cases) -> list[str]:
    """tailgate's numbers beside the reference sheet's (:data:`REFERENCE`), one row per pipeline;
    "–" where the sheet (or this run) has none; then where in the sheet each value comes from."""
    def ref(case: str, key: str) -> str:
        return REFERENCE.get(case, {}).get(key, (None, ""))[0] or "–"

    L = ["## Side by side with the reference", "",
         "The reference sheet's figures for each pipeline (objective, gain, rate and convergence, where it "
         "has them) beside tailgate's `projgrad`: throughput × `null` and the round its triggers settled, "
         "on each clock (wall: median (min–max) over the runs). The paper's gain is over prior work (its "
         "WFQ/NFVnice-like baseline and the fixed policies), tailgate's over `null`; the paper's rate is on "
         "its testbed.", "",
         "| pipeline | objective ns, reference | objective ns, tailgate | gain, reference | projgrad × null, virtual "
         "| projgrad × null, wall | rate, reference | projgrad Mpps, virtual | settled, reference | settled, virtual "
         "| settled, wall |",
         "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|"]
    args_of = dict(cases)
    for case in results:
        by_clock = results[case]
        v = by_clock.get("virtual", {}) if "virtual" in clocks else {}
        pg, null = v.get("projgrad"), v.get("null")
        v_ok = pg and null and "error" not in pg and "error" not in null
        w = wall_numbers(by_clock.get("wall", {}), "projgrad") if "wall" in clocks and by_clock.get("wall") else None
        v_ratio = f"{pg['sum_fpps'] / null['sum_fpps']:.2f}" if v_ok else "–"
        v_mpps = f"{pg['sum_fpps'] / 1e6:.3f}" if v_ok else "–"
        v_settled = pg.get("converged_round") if v_ok else "–"
        L.append(f"| {case} | {ref(case, 'objective')} | {_objectives(args_of.get(case, {}))} | {ref(case, 'gain')} | "
                 f"{v_ratio} | {spread(w['ratio']) if w else '–'} | {ref(case, 'rate')} | {v_mpps} | "
                 f"{ref(case, 'settled')} | {v_settled} | {spread(w['settled'], _count) if w else '–'} |")
    L += ["", "Where in the reference sheet (`batchy.md`) each value comes from:", ""]
    for case in results:
        cites = [f"{key}: {REFERENCE[case][key][1]}" for key in ("objective", "gain", "rate", "settled")
                 if case in REFERENCE and REFERENCE[case][key][0] is not None]
        if cites:
            L.append(f"- {case}: " + "; ".join(cites))
    L.append("- The headline 2–3× is the paper's for its five use cases (§16, reported, not confirmed); the "
             "2022 follow-up claims up to 10× for single-core Batchy (§16). tailgate's objectives differ from "
             "the reference's where the pipeline's costs differ (`CASES` in `tailgate.bench.batchy_report`).")
    return L + [""]


def wall_notes(results: dict, clocks, wall_runs: int) -> str:
    """The wall-clock paragraph of the notes, its numbers taken from ``results``."""
    if "wall" not in clocks:
        return ""
    runs = f"{wall_runs} runs" if wall_runs > 1 else "one run"
    robot = ""
    rc = results.get("rc_static", {}).get("wall", {})
    if rc:
        flagged = [c for c in CONTROLLERS if any("robot" in s.get("infeasible", {}) for s in passes(rc.get(c)))]
        if flagged:
            robot = (f"The robot flow was declared infeasible on the wall clock under "
                     f"{', '.join(f'`{c}`' for c in flagged)} in some run (its packets wait behind task rounds "
                     "of bulk packets in the shared 64-packet ingress queue, "
                     "and a round costs far more in Python than in the model). ")
    mgw = ""
    rows = results.get("mgw", {}).get("wall", {})
    pg, mx = wall_numbers(rows, "projgrad") if rows else None, wall_numbers(rows, "max") if rows else None
    if pg:
        mgw = ("On the mobile gateway the QoS sources' rates are scaled by the null run's throughput over the "
               f"model's (at the model's rates they would overload the pipeline); `projgrad` reaches "
               f"{spread(pg['ratio'])}× `null` there"
               + (f", `max` {spread(mx['ratio'])}×" if mx else "")
               + f", with {spread(pg['late'], _count)} late flow-rounds: Python's per-packet work leaves less "
               "for batching to save than the reference's costs do.")
    return WALL_NOTES.format(runs=runs, robot=robot, mgw=mgw).rstrip() + "\n"


def _markdown(results: dict, clocks, quick: bool, ran: dict, wall_runs: int = 1, cases=None) -> str:
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
    if "wall" in clocks and wall_runs > 1:
        L += [f"The virtual clock is deterministic: one run each. The wall clock is not: its part ran {wall_runs} "
              "times (each with its own probe of this machine), and its tables give each number's median and, in "
              "brackets, its range (min–max) over the runs; its plots are the last run's.", ""]
    if quick:
        L += ["(Quick run: fewer rounds, virtual clock only.)", ""]
    L += _summary(results, clocks, wall_runs)
    L += reference_table(results, clocks, cases or CASES)
    for case, by_clock in results.items():
        L += [f"## {case}", ""]
        for clk in clocks:
            rows = by_clock.get(clk, {})
            if not rows:
                continue
            if clk == "wall" and any("passes" in r for r in rows.values()):
                L += _wall_table(case, rows, wall_runs)
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
                late = _late(s)
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
    L.append(NOTES.rstrip("\n"))
    L.append(wall_notes(results, clocks, wall_runs))
    return "\n".join(L) + "\n"


def _wall_table(case: str, rows: dict, wall_runs: int) -> list[str]:
    """The wall clock's table of one pipeline: per controller, each number's median (min–max)
    over the runs."""
    any_run = next(iter(passes(next(iter(rows.values())))), {})
    scales = [s.get("slo_scale", 1.0) for s in passes(rows.get("null"))]
    rscale = any_run.get("rate_scale", 1.0)
    note = (f" ({wall_runs} runs; objectives × {spread(scales, lambda v: f'{v:.1f}')}, this machine's null delay "
            "over the model's")
    if rscale != 1.0:
        rscales = [s.get("rate_scale", 1.0) for s in passes(rows.get("null"))]
        note += f"; QoS rates × {spread(rscales, lambda v: f'{v:.3f}')}, its null throughput over the model's"
    L = [f"**wall clock**{note})", "",
         "| controller | Mpps | × null | delay/SLO (worst flow) | late | settled | rate settled | infeasible |",
         "|---|---:|---:|---:|---:|---:|---:|---|"]
    for ctrl in CONTROLLERS:
        if ctrl not in rows:
            continue
        w = wall_numbers(rows, ctrl)
        errors = [s["error"] for s in passes(rows[ctrl]) if "error" in s]
        if w is None:
            L.append(f"| {ctrl} | – | – | – | – | – | – | error: {errors[0]} |")
            continue
        worst_at = max(range(len(w["worst"])), key=lambda k: w["worst"][k])
        inf = _infeasible_over_runs([s for s in passes(rows[ctrl]) if "error" not in s])
        if errors:
            inf += f"; {len(errors)} run(s) failed: {errors[0]}"
        L.append(f"| {ctrl} | {spread(w['mpps'], lambda v: f'{v:.3f}')} | {spread(w['ratio'])} | "
                 f"{spread(w['worst'])} ({w['worst_flow'][worst_at]} in the worst run) | {spread(w['late'], _count)} | "
                 f"{spread(w['settled'], _count)} | {spread(w['rate_settled'], _count)} | {inf} |")
    png = Path("batchy") / case / "wall-projgrad" / f"{case}.png"
    return L + ["", f"![projgrad, wall clock, the last run]({png.as_posix()})", ""]
